"""DCA1000 reader: byte layout (against a transcription of XRF55's MATLAB reader), the axes of the maps,
windows and steps, split captures, bounded memory, radar configs, and broken input."""

from __future__ import annotations

import dataclasses
import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from rfsense.data.recordings.dca1000 import decode_frames, encode_frames, open_capture, read_dca1000
from rfsense.data.recordings.formats import _dca1000_sniff
from rfsense.data.recordings.radar_config import (
    XRF55_RADAR,
    RadarConfig,
    load_radar_config,
    mmwave_studio_json,
)
from rfsense.data.recordings.radar_dsp import range_doppler
from rfsense.errors import DataError

C = 299_792_458.0
# A small profile for fast tests: 32 chirps x 4 RX x 64 samples (32 KB per frame), 20 frames/s.
SMALL = dataclasses.replace(XRF55_RADAR, adc_samples=64, loops=32)


def _frames(cfg: RadarConfig, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (n, cfg.loops, cfg.chirps_per_loop * cfg.rx_channels, cfg.adc_samples)
    return (rng.integers(-3000, 3000, shape) + 1j * rng.integers(-3000, 3000, shape)).astype(np.complex64)


def _write(path: Path, frames: np.ndarray, cfg: RadarConfig) -> Path:
    path.write_bytes(encode_frames(frames, cfg).tobytes())
    return path


def _yaml(path: Path, cfg: RadarConfig) -> Path:
    path.write_text("".join(f"{f.name}: {str(getattr(cfg, f.name)).lower() if isinstance(getattr(cfg, f.name), bool) else getattr(cfg, f.name)}\n"
                            for f in dataclasses.fields(cfg)))
    return path


def _matlab_reference(adc: np.ndarray, n_samples: int, n_rx: int) -> np.ndarray:
    """readDCA1000_6843.m (XRF55-repo), line by line: 2 I then 2 Q; rows = chirps; RX blocks of samples."""
    lvds = np.zeros(len(adc) // 2, complex)
    counter = 0
    for i in range(0, len(adc) - 1, 4):
        lvds[counter] = adc[i] + 1j * adc[i + 2]
        lvds[counter + 1] = adc[i + 1] + 1j * adc[i + 3]
        counter += 2
    lvds = lvds.reshape(-1, n_samples * n_rx)  # MATLAB reshape(LVDS, S*RX, chirps) then transpose
    return np.stack([lvds[:, r * n_samples : (r + 1) * n_samples] for r in range(n_rx)], axis=1)  # (chirps, rx, S)


# ------------------------------------------------------------------------------------------ byte layout
def test_decode_matches_xrf55_matlab_reader():
    adc = np.random.default_rng(1).integers(-30000, 30000, SMALL.complex_per_frame * 2 * 2).astype(np.int16)
    got = decode_frames(adc, SMALL)  # two frames
    ref = _matlab_reference(adc, SMALL.adc_samples, SMALL.rx_channels)
    assert got.shape == (2, SMALL.loops, SMALL.rx_channels, SMALL.adc_samples)
    np.testing.assert_array_equal(got.reshape(-1, SMALL.rx_channels, SMALL.adc_samples), ref)


@pytest.mark.parametrize("change", [{}, {"lanes": 4}, {"lanes": 1}, {"iq_swap": True}, {"interleaved": True},
                                    {"chirps_per_loop": 3, "loops": 12}])
def test_layouts_round_trip(change):
    cfg = dataclasses.replace(SMALL, **change)
    frames = _frames(cfg, 2)
    assert np.array_equal(decode_frames(encode_frames(frames, cfg), cfg), frames)


def test_four_lanes_and_swap_put_words_where_ti_says():
    cfg = dataclasses.replace(SMALL, lanes=4)
    frames = np.zeros((1, cfg.loops, cfg.rx_channels, cfg.adc_samples), np.complex64)
    frames[0, 0, 0, :4] = [1 + 5j, 2 + 6j, 3 + 7j, 4 + 8j]
    assert encode_frames(frames, cfg)[:8].tolist() == [1, 2, 3, 4, 5, 6, 7, 8]  # I I I I Q Q Q Q
    swapped = dataclasses.replace(SMALL, iq_swap=True)
    assert encode_frames(frames, swapped)[:4].tolist() == [5, 6, 1, 2]  # Q0 Q1 I0 I1
    inter = dataclasses.replace(SMALL, interleaved=True)
    frames[0, 0, 1, 0] = 9 + 10j  # RX1 sample 0 follows RX0 sample 0
    assert encode_frames(frames, inter)[:4].tolist() == [1, 9, 5, 10]


def test_12_bit_codes_are_sign_extended_like_the_matlab_script():
    cfg = dataclasses.replace(SMALL, adc_bits=12)
    adc = np.zeros(cfg.complex_per_frame * 2, np.int16)
    adc[:4] = [4095, 2047, 2048, 5]  # I0 I1 Q0 Q1
    got = decode_frames(adc, cfg)[0, 0, 0, :2]
    assert got.tolist() == [-1 - 2048j, 2047 + 5j]


# ------------------------------------------------------------------------------------------ map axes
def _beat(cfg: RadarConfig, r_m: float, v_m_s: float, amp: float) -> np.ndarray:
    """One frame of a point target, written from the FMCW equations (not from the generator)."""
    f0 = (cfg.start_freq_ghz + cfg.slope_mhz_per_us * cfg.adc_start_time_us * 1e-3) * 1e9
    fs, slope = cfg.sample_rate_ksps * 1e3, cfg.slope_mhz_per_us * 1e12
    c = np.arange(cfg.loops)[:, None, None]
    n = np.arange(cfg.adc_samples)[None, None, :]
    r = r_m + v_m_s * c * cfg.chirp_period_s
    x = amp * np.exp(2j * np.pi * (f0 + slope * n / fs) * 2 * r / C)
    return np.broadcast_to(x, (cfg.loops, cfg.rx_channels, cfg.adc_samples))


@pytest.mark.parametrize("r_m, v_m_s", [(2.0, 1.0), (3.3, -0.62), (0.9, 0.0)])
def test_point_target_lands_on_the_documented_bins(r_m, v_m_s):
    cfg = XRF55_RADAR
    rd = range_doppler(_beat(cfg, r_m, v_m_s, 50.0))
    r_bin, d_bin = np.unravel_index(rd.argmax(), rd.shape)
    assert abs(r_bin - r_m / 0.06503) <= 0.6  # range bin i = i * 6.50 cm
    assert abs(d_bin - (64 + v_m_s / 0.04333)) <= 0.6  # Doppler bin b = (b - 64) * 4.33 cm/s, + = away
    assert 0.8 * 50 < rd.max() <= 50.5  # magnitude in ADC counts (window gains divided out)
    assert cfg.range_bin_m() == pytest.approx(0.06503, abs=1e-5)
    assert cfg.doppler_bin_m_s() == pytest.approx(0.04333, abs=1e-5)


def test_motion_beyond_the_map_leaves_it_and_clutter_removal_removes_statics():
    cfg = XRF55_RADAR
    fast = range_doppler(_beat(cfg, 2.0, 4.0, 50.0))  # beyond +-2.78 m/s, inside +-8.32: off the map
    assert fast.max() < 2.0
    static = _beat(cfg, 2.0, 0.0, 50.0) + _beat(cfg, 3.0, 1.0, 50.0)
    kept = range_doppler(static, clutter_removal=True)
    assert kept[31, 64] < 0.01 * range_doppler(static)[31, 64]  # the static target at 2 m is gone
    assert kept.max() > 40  # the moving one stays


# ------------------------------------------------------------------------------------------ windows
def _counting_capture(tmp_path: Path, n: int, cfg: RadarConfig = SMALL) -> Path:
    """Frame k holds a static tone of amplitude 100 * (k + 1) at range bin 40."""
    frames = np.zeros((n, cfg.loops, cfg.rx_channels, cfg.adc_samples), np.complex64)
    tone = np.exp(2j * np.pi * 10 / cfg.adc_samples * np.arange(cfg.adc_samples))  # bin 10 of 64 = 40 of 256
    frames += 100 * (np.arange(n) + 1)[:, None, None, None] * tone
    _yaml(tmp_path / "cnt.radar.yaml", cfg)
    return _write(tmp_path / "cnt_Raw_0.bin", frames, cfg)


def test_frames_become_17_steps_and_windows_hop(tmp_path):
    path = _counting_capture(tmp_path, 250)
    windows = list(read_dca1000([path], hop_s=2.5))
    assert [w.start_s for w in windows] == [0.0, 2.5, 5.0, 7.5]
    for w in windows:
        assert w.modality == "mmwave" and w.array.shape == (17, 256, 128) and w.array.dtype == np.float32
        first = int(round(w.start_s * 20))
        want = [100 * np.mean([first + j + 1 for j in range(100) if j * 17 // 100 == s]) for s in range(17)]
        np.testing.assert_allclose(w.array[:, 40, 64], want, rtol=2e-3)
        assert w.flags and "radar profile differs" in w.flags[0]  # 64 samples: 6.5 cm bins, other Doppler bin


def test_short_capture_is_padded_or_refused(tmp_path):
    path = _counting_capture(tmp_path, 30)
    (w,) = read_dca1000([path])
    assert any("padded" in f and "5 of 17 steps" in f for f in w.flags)  # frames 0-29: steps 0-4
    assert np.array_equal(w.array[4:], np.broadcast_to(w.array[4], (13, 256, 128)))
    assert w.array[3, 40, 64] < w.array[4, 40, 64]
    with pytest.raises(DataError, match="shorter than one 5.0 s window"):
        list(read_dca1000([path], short="refuse"))


def test_split_capture_is_one_stream(tmp_path):
    frames = _frames(SMALL, 130, seed=3)
    whole = encode_frames(frames, SMALL).tobytes()
    one = tmp_path / "one"
    one.mkdir()
    _yaml(one / "a.radar.yaml", SMALL)
    (one / "a_Raw_0.bin").write_bytes(whole)
    cuts = [0, 1_000_003, 2_345_678, len(whole)]  # not at frame or sample boundaries
    split = tmp_path / "split"
    split.mkdir()
    _yaml(split / "a.radar.yaml", SMALL)
    for i in range(3):
        (split / f"a_Raw_{i}.bin").write_bytes(whole[cuts[i] : cuts[i + 1]])
    ref = list(read_dca1000([one / "a_Raw_0.bin"], hop_s=1.0))
    for given in ([split / "a_Raw_1.bin"], [split / f"a_Raw_{i}.bin" for i in range(3)]):
        got = list(read_dca1000(given, hop_s=1.0))
        assert len(got) == len(ref) == 2
        for a, b in zip(got, ref, strict=True):
            assert np.array_equal(a.array, b.array) and len(a.sources) == 3
    (split / "a_Raw_1.bin").unlink()
    with pytest.raises(DataError, match="lacks part 1"):
        list(read_dca1000([split / "a_Raw_0.bin"]))


def test_memory_does_not_grow_with_capture_length(tmp_path):
    peaks = []
    for n in (300, 900):
        folder = tmp_path / str(n)
        folder.mkdir()
        path = _counting_capture(folder, n)
        tracemalloc.start()
        for _ in read_dca1000([path]):
            pass
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    size = (tmp_path / "900" / "cnt_Raw_0.bin").stat().st_size
    assert peaks[1] < 1.1 * peaks[0] + 5e5, peaks  # 3x the frames, same memory
    assert peaks[1] < 0.3 * size, (peaks, size)


# ------------------------------------------------------------------------------------------ configs
def test_mmwave_studio_json_round_trips_and_is_found_beside_the_capture(tmp_path):
    cfg = dataclasses.replace(XRF55_RADAR, loops=16, lanes=4, iq_swap=True, frames=3)
    data = mmwave_studio_json(cfg)
    assert data["mmWaveDevices"][0]["rfConfig"]["rlFrameCfg_t"]["numLoops"] == 16
    (tmp_path / "cap.mmwave.json").write_text(json.dumps(data))
    assert load_radar_config(tmp_path / "cap.mmwave.json") == cfg
    data["mmWaveDevices"] = data["mmWaveDevices"][0]  # some exports hold one device, not a list
    (tmp_path / "dict.json").write_text(json.dumps(data))
    assert load_radar_config(tmp_path / "dict.json") == cfg
    _write(tmp_path / "cap_Raw_0.bin", _frames(cfg, 2), cfg)
    cap = open_capture(tmp_path / "cap_Raw_0.bin")
    assert cap.config == cfg and cap.config_source.endswith("cap.mmwave.json") and cap.n_frames == 2
    (w,) = read_dca1000([tmp_path / "cap_Raw_0.bin"])
    assert any("capture holds 2 frames, the config asked for 3" in f for f in w.flags)


def test_yaml_sets_some_keys_and_missing_config_assumes_xrf55(tmp_path):
    (tmp_path / "r.yaml").write_text("loops: 64\nlanes: 4\n")
    assert load_radar_config(tmp_path / "r.yaml") == dataclasses.replace(XRF55_RADAR, loops=64, lanes=4)
    frames = _frames(XRF55_RADAR, 1)
    _write(tmp_path / "x.bin", frames, XRF55_RADAR)
    (w,) = read_dca1000([tmp_path / "x.bin"])
    assert any("XRF55's IWR6843 profile assumed" in f for f in w.flags)


@pytest.mark.parametrize("text, message", [
    ("loopz: 5\n", "unknown key 'loopz'; allowed: start_freq_ghz"),
    ("loops: many\n", "loops must be a int"),
    ("lanes: 3\n", "lanes must be 1, 2 or 4"),
    ("adc_samples: 512\n", "samples past the ramp"),
    ("frame_period_ms: 10\n", "shorter than its 192 chirps"),
    ("[1, 2]\n", "expected a mapping"),
    ("loops: [\n", "not valid YAML"),
])
def test_bad_yaml_config(tmp_path, text, message):
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(DataError, match=message) as err:
        load_radar_config(tmp_path / "bad.yaml")
    assert "bad.yaml" in str(err.value) and "\n" not in str(err.value)


def test_bad_mmwave_studio_json(tmp_path):
    data = mmwave_studio_json(XRF55_RADAR)
    del data["mmWaveDevices"][0]["rfConfig"]["rlFrameCfg_t"]["numLoops"]
    (tmp_path / "a.mmwave.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"a.mmwave.json: mmWave Studio JSON lacks 'numLoops'"):
        load_radar_config(tmp_path / "a.mmwave.json")
    data = mmwave_studio_json(XRF55_RADAR)
    data["mmWaveDevices"][0]["rfConfig"]["rlAdcOutCfg_t"]["fmt"]["b2AdcOutFmt"] = 0
    (tmp_path / "b.mmwave.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match="real-only ADC data"):
        load_radar_config(tmp_path / "b.mmwave.json")
    (tmp_path / "c.json").write_text("{not json")
    with pytest.raises(DataError, match="c.json: not valid JSON"):
        load_radar_config(tmp_path / "c.json")
    with pytest.raises(DataError, match="nope.yaml: cannot read"):
        load_radar_config(tmp_path / "nope.yaml")


# ------------------------------------------------------------------------------------------ broken captures
def test_size_that_does_not_fit_the_config(tmp_path):
    _write(tmp_path / "t.bin", _frames(XRF55_RADAR, 2), XRF55_RADAR)
    with open(tmp_path / "t.bin", "r+b") as f:
        f.truncate(XRF55_RADAR.frame_bytes * 2 - 1000)  # truncated capture
    with pytest.raises(DataError, match=r"t.bin: 1571864 bytes is not a whole number of frames \(1.999 frames of "
                                        r"192 chirps x 4 RX x 256 samples") as err:
        list(read_dca1000([tmp_path / "t.bin"]))
    assert "\n" not in str(err.value)
    (tmp_path / "w.yaml").write_text("loops: 100\n")  # the wrong config for a whole XRF55 capture
    _write(tmp_path / "u.bin", _frames(XRF55_RADAR, 1), XRF55_RADAR)
    with pytest.raises(DataError, match="u.bin: 786432 bytes is not a whole number of frames .* config: .*w.yaml"):
        list(read_dca1000([tmp_path / "u.bin"], radar_config=tmp_path / "w.yaml"))


def test_empty_or_missing_capture(tmp_path):
    (tmp_path / "e.bin").write_bytes(b"")
    with pytest.raises(DataError, match="e.bin: empty capture"):
        read_dca1000([tmp_path / "e.bin"])
    with pytest.raises(DataError, match="m.bin does not exist"):
        read_dca1000([tmp_path / "m.bin"])


def test_sniffer_takes_binary_bin_files_only(tmp_path):
    adc = encode_frames(_frames(SMALL, 1), SMALL).tobytes()[:4096]
    assert _dca1000_sniff(Path("x_Raw_0.bin"), adc)
    assert not _dca1000_sniff(Path("notes.bin"), b"just some text\n" * 100)
    assert not _dca1000_sniff(Path("x.dat"), adc)
