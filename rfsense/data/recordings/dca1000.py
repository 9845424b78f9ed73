"""TI radar + DCA1000 raw ADC captures (`<name>_Raw_0.bin`, ...) -> XRF55 mmWave windows (17, 256, 128).

    windows = read_dca1000(["adc_data_Raw_0.bin"], radar_config="adc_data.mmwave.json")
    x = np.stack([w.array for w in windows])          # (N, 17, 256, 128) float32

Byte layout, as XRF55's own reader reads it (aiotgroup/XRF55-repo, `hardware tutorial/mmWave/assets/
readDCA1000_6843.m`, IWR6843 over 2 LVDS lanes): the capture is a stream of little-endian int16 without
headers; complex samples come as two I values then two Q values, `I0 I1 Q0 Q1 I2 I3 Q2 Q3 ...` (sample
2m = x[4m] + j x[4m+2], sample 2m+1 = x[4m+1] + j x[4m+3]); within a chirp the samples are ordered receiver
by receiver (RX0's 256 samples, then RX1's, ...); chirps follow each other, 192 per frame, and frames follow
each other. Other boards and settings are configuration (`radar_config.RadarConfig`): `lanes` L (L I values
then L Q values, e.g. `I I I I Q Q Q Q` on 4 lanes), `iq_swap` (Q first), `interleaved` (sample by sample
over the receivers), `chirps_per_loop` (TDM-MIMO: the loop's chirp slots become extra channels), `adc_bits`
(12/14-bit codes sign-extended as XRF55's script does). The radar configuration is mmWave Studio's JSON
export or a small YAML; without one the XRF55 profile is assumed (flagged). A capture's config is looked
up beside it as `<name>.mmwave.json` or `<name>.radar.yaml` when none is given.

Split captures: the DCA1000 cuts long recordings into `<name>_Raw_0.bin`, `_Raw_1.bin`, ... at arbitrary byte
positions; they are one byte stream, read in order (naming any one of them reads them all).

Per frame, `radar_dsp.range_doppler` gives a (256 range x 128 Doppler) magnitude map: Hann-windowed range FFT
(bin i = i * 6.50 cm), optional static clutter removal, Hann-windowed Doppler FFT over the 192 chirps
zero-padded to 384 with the 128 bins around zero velocity kept (bin b = (b - 64) * 4.34 cm/s), |.| over
window gains, mean over the 4 receivers. Time: the file has no timestamps, so frames are 1 / frame rate
apart (50 ms); a 5 s window holds 100 frames, frame j of a window joins step j * 17 // 100 (steps of 5 or 6
frames: 0-5, 6-11, 12-17, 18-23, 24-29, 30-35, 36-41, 42-47, 48-52, ...) and a step is the mean of its
frames' maps. Windows start every hop_s (default 5 s) along the capture (`timeline.spans_to_windows`);
a capture shorter than one window is edge-held to 17 steps (flagged) or refused. These are the axes
synth.json documents, so maps read from captures and generated .npy files mean the same thing.

Memory: one frame of ADC data (0.8 MB at the XRF55 profile) plus one (17, 256, 128) float32 sum per window
being built (ceil(window / hop) of them); frames that no window needs are skipped by seeking, never read.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rfsense.data.recordings.radar_config import XRF55_RADAR, RadarConfig, load_radar_config
from rfsense.data.recordings.radar_dsp import N_DOPPLER, N_RANGE, range_doppler
from rfsense.data.recordings.timeline import Span, Window, WindowPlan, spans_to_windows
from rfsense.errors import DataError

__all__ = ["N_STEPS", "Capture", "capture_flags", "capture_windows", "decode_frames", "encode_frames",
           "open_capture", "read_dca1000"]

_log = logging.getLogger(__name__)

N_STEPS = 17
_SPLIT = re.compile(r"^(?P<name>.*)_Raw_(?P<index>\d+)\.bin$", re.IGNORECASE)
_CONFIG_NAMES = (".mmwave.json", ".radar.yaml", ".radar.yml")


@dataclass(frozen=True)
class Capture:
    """One recording: its name, its files in stream order with their sizes, and its radar configuration."""

    name: str
    files: tuple[Path, ...]
    sizes: tuple[int, ...]
    config: RadarConfig
    config_source: str  # the config file, or "" when the XRF55 profile was assumed

    @property
    def n_frames(self) -> int:
        return sum(self.sizes) // self.config.frame_bytes


def _parts(path: Path) -> tuple[str, list[Path]]:
    """(capture name, its files in order): `<name>_Raw_<i>.bin` siblings 0..n-1, else the file alone."""
    m = _SPLIT.match(path.name)
    if m is None:
        return path.stem, [path]
    name = m["name"]
    found = {}
    for p in path.parent.iterdir():
        mm = _SPLIT.match(p.name)
        if mm is not None and mm["name"] == name and p.is_file():
            found[int(mm["index"])] = p
    missing = [i for i in range(max(found) + 1) if i not in found]
    if missing:
        raise DataError(f"{path}: split capture {name}_Raw_*.bin lacks part {missing[0]} "
                        f"(found parts {sorted(found)}); the parts form one byte stream")
    return name, [found[i] for i in range(len(found))]


def _find_config(folder: Path, name: str) -> Path | None:
    for suffix in _CONFIG_NAMES:
        p = folder / f"{name}{suffix}"
        if p.is_file():
            return p
    return None


def open_capture(path: str | Path, radar_config: str | Path | RadarConfig | None = None) -> Capture:
    """Find a capture's parts and configuration and check that the bytes fit the configuration.

    Args:
        path: any file of the capture (`<name>_Raw_<i>.bin` or a single `.bin`).
        radar_config: a RadarConfig, a config file (mmWave Studio JSON or YAML), or None: look for
            `<name>.mmwave.json` / `<name>.radar.yaml` beside the capture, else assume XRF55's profile.

    Raises:
        DataError: missing file or split part, empty capture, unreadable or impossible config, or a total
            size that is not a whole number of frames of the configured size.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist or is not a file; expected a DCA1000 .bin capture")
    name, files = _parts(path)
    if isinstance(radar_config, RadarConfig):
        cfg, source = radar_config, "given"
        cfg.check("radar config")
    else:
        cfg_path = Path(radar_config) if radar_config is not None else _find_config(path.parent, name)
        if cfg_path is None:
            cfg, source = XRF55_RADAR, ""
        else:
            cfg, source = load_radar_config(cfg_path), str(cfg_path)
    sizes = tuple(p.stat().st_size for p in files)
    total = sum(sizes)
    what = files[0] if len(files) == 1 else f"{files[0]} (+{len(files) - 1} split parts, {total} bytes in all)"
    layout = (f"{cfg.chirps_per_frame} chirps x {cfg.rx_channels} RX x {cfg.adc_samples} samples x 4 bytes "
              f"(int16 I + Q) = {cfg.frame_bytes} bytes per frame")
    if total == 0:
        raise DataError(f"{what}: empty capture (0 bytes); expected frames of {layout}")
    if total % cfg.frame_bytes:
        raise DataError(
            f"{what}: {total} bytes is not a whole number of frames ({total / cfg.frame_bytes:.3f} frames of "
            f"{layout}, config: {source or 'XRF55 profile assumed'}); truncated capture or wrong radar config"
        )
    return Capture(name, tuple(files), sizes, cfg, source)


def decode_frames(raw: np.ndarray, cfg: RadarConfig) -> np.ndarray:
    """int16 ADC words of whole frames -> complex64 (frames, chirps per loop slot, channels, samples).

    Channels are the receivers, times the chirp slots of a loop in TDM-MIMO (slot-major). The lane
    de-interleave follows XRF55's readDCA1000_6843.m: groups of `lanes` I values then `lanes` Q values.
    """
    x = raw
    if cfg.adc_bits != 16:  # unsigned codes of a 12/14-bit ADC: values above the signed maximum wrap
        lim = 2 ** (cfg.adc_bits - 1) - 1
        x = np.where(x > lim, x.astype(np.int32) - 2**cfg.adc_bits, x)
    g = x.reshape(-1, 2, cfg.lanes)  # (groups, I/Q, lane)
    if cfg.iq_swap:
        g = g[:, ::-1]
    # (groups, lane, I/Q) float32 pairs viewed as complex64: sample order = group-major, lane-minor
    iq = np.ascontiguousarray(g.transpose(0, 2, 1), dtype=np.float32)
    c = iq.view(np.complex64).reshape(-1, cfg.loops, cfg.chirps_per_loop, *(
        (cfg.adc_samples, cfg.rx_channels) if cfg.interleaved else (cfg.rx_channels, cfg.adc_samples)))
    if cfg.interleaved:
        c = c.swapaxes(-1, -2)
    return c.reshape(len(c), cfg.loops, cfg.chirps_per_loop * cfg.rx_channels, cfg.adc_samples)


class _Stream:
    """Whole frames read from the capture's parts as one byte stream (open file handles, seek, read)."""

    def __init__(self, cap: Capture) -> None:
        self.cap = cap
        self.starts = np.cumsum((0, *cap.sizes))
        self.handles = [open(p, "rb") for p in cap.files]  # noqa: SIM115 - closed in close()

    def close(self) -> None:
        for h in self.handles:
            h.close()

    def frame(self, index: int) -> np.ndarray:
        size = self.cap.config.frame_bytes
        pos, end = index * size, (index + 1) * size
        buf = bytearray(size)
        view = memoryview(buf)
        got = 0
        while pos < end:
            part = int(np.searchsorted(self.starts, pos, side="right")) - 1
            h = self.handles[part]
            h.seek(pos - int(self.starts[part]))
            n = h.readinto(view[got : got + min(end - pos, int(self.starts[part + 1]) - pos)])
            if not n:
                raise DataError(f"{self.cap.files[part]}: file shrank while reading (frame {index})")
            got += n
            pos += n
        return np.frombuffer(buf, dtype="<i2")


def capture_flags(cap: Capture) -> list[str]:
    """What a capture's windows inherit: an assumed radar profile, a profile unlike XRF55's, a frame count off."""
    cfg = cap.config
    out = []
    if not cap.config_source:
        out.append(f"{cap.name}: no radar config given or found beside it ({cap.name}.mmwave.json / "
                   f"{cap.name}.radar.yaml): XRF55's IWR6843 profile assumed")
    r, v = cfg.range_bin_m(N_RANGE), cfg.doppler_bin_m_s()
    r0, v0 = XRF55_RADAR.range_bin_m(N_RANGE), XRF55_RADAR.doppler_bin_m_s()
    if abs(r / r0 - 1) > 0.01 or abs(v / v0 - 1) > 0.01:
        out.append(f"{cap.name}: radar profile differs from XRF55's: range bin {100 * r:.2f} cm (XRF55 "
                   f"{100 * r0:.2f}), Doppler bin {100 * v:.2f} cm/s (XRF55 {100 * v0:.2f}); a model trained on "
                   "XRF55-axis maps sees stretched axes")
    if cfg.frames and cap.n_frames != cfg.frames:
        out.append(f"{cap.name}: capture holds {cap.n_frames} frames, the config asked for {cfg.frames}")
    return out


def read_dca1000(
    paths: list[str | Path],
    *,
    radar_config: str | Path | RadarConfig | None = None,
    window_s: float = 5.0,
    hop_s: float | None = None,
    short: str = "pad",
    clutter_removal: bool = False,
) -> Iterator[Window]:
    """Read DCA1000 captures into XRF55 mmWave windows (17, 256, 128) float32, lazily.

    Args:
        paths: capture files; parts of one split capture are read once as one stream, different captures
            one after another.
        radar_config: see `open_capture` (one config for every capture given).
        window_s: window length (5 s = 100 frames at 20 frames/s); hop_s: step between window starts
            (default window_s); short: a capture shorter than one window: "pad" (edge-hold, flagged) or
            "refuse" (DataError). clutter_removal: subtract the mean over chirps (static reflectors) first.

    Returns:
        `timeline.Window`s (modality "mmwave"), in capture and time order; start_s/end_s in seconds from
        the capture's first frame.

    Raises:
        DataError: see `open_capture`; a capture shorter than one window with short="refuse".
        ValueError: non-positive window_s/hop_s or an unknown `short`.
    """
    if window_s <= 0 or (hop_s is not None and hop_s <= 0):
        raise ValueError(f"window_s={window_s}, hop_s={hop_s}: both must be > 0")
    captures: list[Capture] = []
    seen: set[Path] = set()
    for p in paths:
        cap = open_capture(p, radar_config)
        if cap.files[0].resolve() not in seen:
            seen.add(cap.files[0].resolve())
            captures.append(cap)
    # Plan every window now, so an unusable capture fails here, not at the first next().
    plans = []
    for cap in captures:
        fs = cap.config.frame_rate
        span = [Span(0.0, (cap.n_frames - 1) / fs)]
        what = f"{cap.files[0]} ({cap.n_frames} frames)"
        plans.append(list(spans_to_windows(span, fs=fs, window_s=window_s, hop_s=hop_s, short=short, what=what)))
    return _windows(captures, plans, window_s, clutter_removal)


def _windows(captures: list[Capture], plans: list[list[WindowPlan]], window_s: float,
             clutter_removal: bool) -> Iterator[Window]:
    for cap, cap_plans in zip(captures, plans, strict=True):
        flags = capture_flags(cap)
        for w in capture_windows(cap, cap_plans, window_s=window_s, clutter_removal=clutter_removal):
            w.flags[:0] = flags
            yield w


def capture_windows(cap: Capture, plans: Sequence[WindowPlan], *, window_s: float = 5.0,
                    clutter_removal: bool = False) -> Iterator[Window]:
    """Windows of one capture at planned frame offsets (sorted by offset), streamed frame by frame.

    A plan's window holds frames offset .. offset + window frames - 1; the offset may be negative and the
    window may run past the last frame (a window a session places partly outside the capture): steps
    without a frame hold the nearest measured step, and the window is flagged "padded". The flags hold only
    that note: the capture's own flags are `capture_flags(cap)`. start_s/end_s: seconds from frame 0.

    Raises:
        ValueError: a plan with no frame of the capture in its window.
    """
    cfg = cap.config
    win = int(round(window_s * cfg.frame_rate))
    of_step = np.arange(win) * N_STEPS // win  # frame j of a window -> its step
    sources = [str(p) for p in cap.files]
    # (plan, first frame, last frame) of the frames each window measures
    pending = [(p, max(p.offset, 0), min(p.offset + win, cap.n_frames) - 1) for p in plans]
    for plan, lo, hi in pending:
        if lo > hi:
            raise ValueError(f"{cap.name}: window at frame offset {plan.offset} holds none of its "
                             f"{cap.n_frames} frames")
    stream = _Stream(cap)
    try:
        active: list[tuple[WindowPlan, np.ndarray, np.ndarray, int]] = []  # plan, sums, counts, last frame
        frame = pending[0][1] if pending else 0
        while pending or active:
            while pending and pending[0][1] <= frame:
                plan, _, hi = pending.pop(0)
                active.append((plan, np.zeros((N_STEPS, N_RANGE, N_DOPPLER), np.float32),
                               np.zeros(N_STEPS, np.int64), hi))
            if not active:
                frame = pending[0][1]  # seek past frames no window needs
                continue
            adc = decode_frames(stream.frame(frame), cfg)[0]
            rd = range_doppler(adc, clutter_removal=clutter_removal)
            for plan, sums, counts, _ in active:
                step = of_step[frame - plan.offset]
                sums[step] += rd
                counts[step] += 1
            done = [a for a in active if a[3] == frame]
            active = [a for a in active if a[3] != frame]
            for plan, sums, counts, _ in done:
                yield _finish(plan, sums, counts, cfg.frame_rate, window_s, [], sources)
            frame += 1
    finally:
        stream.close()


def _finish(plan: WindowPlan, sums: np.ndarray, counts: np.ndarray, fs: float, window_s: float,
            flags: list[str], sources: list[str]) -> Window:
    """Step means; steps without frames (a short capture) hold the last step that has some."""
    out_flags = list(flags)
    filled = np.flatnonzero(counts)
    sums[filled] /= counts[filled, None, None]
    if len(filled) < N_STEPS:
        src = np.maximum.accumulate(np.where(counts > 0, np.arange(N_STEPS), -1))
        src = np.where(src < 0, filled[0], src)
        sums = sums[src]
        out_flags.append(f"padded: only {plan.covered_s:.2f} s of frames < window {window_s:.1f} s "
                         f"({len(filled)} of {N_STEPS} steps measured, the rest edge-held)")
    start = plan.start(fs)
    return Window("mmwave", sums, start, start + window_s, out_flags, sources)


def encode_frames(frames: np.ndarray, cfg: RadarConfig) -> np.ndarray:
    """Inverse of `decode_frames`: complex (frames, loops, slots x receivers, samples) -> int16 ADC words
    in the configured byte layout (rounded and clipped to the int16 range; 16-bit ADC only)."""
    if cfg.adc_bits != 16:
        raise ValueError("encode_frames writes 16-bit ADC words only")
    c = frames.reshape(-1, cfg.loops, cfg.chirps_per_loop, cfg.rx_channels, cfg.adc_samples)
    if cfg.interleaved:
        c = c.swapaxes(-1, -2)
    c = np.ascontiguousarray(c).reshape(-1, cfg.lanes)  # (groups, lane)
    iq = np.stack([c.real, c.imag], axis=1)  # (groups, I/Q, lane)
    if cfg.iq_swap:
        iq = iq[:, ::-1]
    return np.clip(np.rint(iq), -32768, 32767).astype("<i2").ravel()
