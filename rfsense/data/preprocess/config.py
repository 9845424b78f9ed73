"""Preprocessing settings: validated, saved in run configs, packs and export manifests."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from rfsense.config import NonNegativeInt, PositiveFloat, PositiveInt, StrictBool, schema

__all__ = ["MmwavePrep", "PreprocessConfig", "RfidPrep", "WifiPrep"]


@schema
class WifiPrep:
    """WiFi CSI amplitude settings.

    hampel_window is the HALF-window k: each sample is compared with the median of the 2k+1 samples
    centred on it (k=7 -> 15 samples = 75 ms at 200 Hz, the 7-8 range used by xrf55 benchmarks).
    0 disables the Hampel step. Edges use reflected padding so every window is full.
    """

    hampel_window: NonNegativeInt = 7
    hampel_sigmas: PositiveFloat = 3.0  # replace when |x - median| > sigmas * 1.4826 * MAD
    # 20 Hz keeps the torso/limb Doppler band of everyday actions and drops the per-packet noise floor;
    # None disables the filter.
    lowpass_hz: PositiveFloat | None = 20.0
    order: PositiveInt = 4  # Butterworth order per pass; sosfiltfilt runs it twice (zero phase, 2x the dB)
    fs: PositiveFloat = 200.0  # XRF55 packet rate (one packet every 5000 us)
    # Subtract each channel's per-sample median: the static paths (scene, position, AGC level) set the
    # amplitude's level, the body's motion only its fluctuation. Off by default until measured more widely:
    # WiFi-only on the quick start (one seed, 12 epochs) it gave W 25.8% against 18.3% without.
    remove_static: StrictBool = False

    def __post_init__(self) -> None:
        if self.lowpass_hz is not None and not self.lowpass_hz < self.fs / 2:
            raise ValueError(f"lowpass_hz must be below fs/2 = {self.fs / 2:g}, got {self.lowpass_hz}")


@schema
class RfidPrep:
    """RFID phase settings.

    fix_jumps handles the reader's random 180-degree ambiguity by folding modulo pi: the phase is
    doubled (theta and theta+pi both map to 2*theta mod 2*pi), unwrapped, and halved. The result is
    continuous but defined up to a constant multiple of pi, which the offset removal makes irrelevant.
    The price: the true phase may move at most pi/2 between reads (plain unwrap allows pi); at 30 Hz
    and 922 MHz that is ~1.2 m/s radial tag speed.
    """

    unwrap: StrictBool = True  # False: result re-wrapped into [0, 2*pi) (or [0, pi) with fix_jumps)
    remove_offset: StrictBool = True  # subtract each tag's median phase (robust to a bad first read)
    fix_jumps: StrictBool = True


@schema
class MmwavePrep:
    """mmWave heatmap settings.

    log: sign(x) * log1p(|x|) -- monotone and finite for any real input (XRF55 heatmaps are
    non-negative magnitudes, where it is plain log1p), compressing the radar's large dynamic range.
    clip_percentile: per-sample upper clip at this percentile of the (log) heatmap, so rare saturated
    cells do not dominate; per sample because absolute gain varies between sessions. None disables.
    clip_max: absolute upper clip in output units (after log). None disables.
    """

    log: StrictBool = True
    clip_percentile: Annotated[float, Field(gt=0, le=100)] | None = 99.9
    clip_max: float | None = None


@schema
class PreprocessConfig:
    """All preprocessing settings. Which samples are usable is not decided here: `rfsense.data.quality`."""

    wifi: WifiPrep = WifiPrep()
    rfid: RfidPrep = RfidPrep()
    mmwave: MmwavePrep = MmwavePrep()
