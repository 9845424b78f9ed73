"""Property-based fuzzing of every file reader (bounded to about a minute in CI).

Each vendored or generated capture is truncated at an arbitrary byte and has arbitrary bits flipped; arbitrary
.npy/.npz files are made from arbitrary shapes and dtypes with mangled headers. Whatever comes in, a reader
either yields well-formed windows or raises rfsense's own error (one line for the CLI); it never raises
anything else, and its peak memory stays within a stated bound of the file size. The runtime's own fuzzing
(any shapes, dtypes, NaN/Inf patterns; probabilities always finite and normalised) is in
tests/deploy/test_runtime.py (test_predict_never_crashes_and_never_returns_non_finite).

RFSENSE_FUZZ_EXAMPLES=500 for a longer hunt.
"""

from __future__ import annotations

import dataclasses
import os
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rfsense.data.recordings.formats import CaptureOptions, get_format
from rfsense.data.validate import load_npy, load_npz
from rfsense.errors import RFSenseError
from rfsense.modalities import SHAPES
from tests.conftest import RECORDINGS

EXAMPLES = int(os.environ.get("RFSENSE_FUZZ_EXAMPLES", "200"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
# Peak memory of reading one capture: the records themselves plus one window at a time, so a small multiple
# of the file plus a few windows (a float64 WiFi window is 2.2 MB, an mmWave one 4.5 MB, the DCA1000 reader
# holds a few frames), never a function of what corrupt timestamps or headers claim.
MEMORY_FACTOR, MEMORY_SLACK = 40, 64e6


def _mutate(data: bytes, cut: float, flips: list[tuple[float, int]]) -> bytes:
    buf = bytearray(data[: max(0, int(cut * len(data)))])
    for where, bit in flips:
        if buf:
            buf[int(where * (len(buf) - 1))] ^= 1 << bit
    return bytes(buf)


_mutations = st.tuples(st.floats(0.0, 1.0), st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 7)), max_size=8))


def _read_all(fmt: str, path: Path, **extra) -> int:
    """Consume every window of a capture through the format registry; returns how many there were."""
    n = 0
    for w in get_format(fmt).windows([path], CaptureOptions(extra=extra)):
        assert w.array.shape == SHAPES[w.modality] and np.isfinite(w.array).all()
        n += 1
    return n


def _fuzz_one(fmt: str, original: Path, tmp: Path, mutation, **extra) -> None:
    cut, flips = mutation
    path = tmp / original.name
    path.write_bytes(_mutate(original.read_bytes(), cut, flips))
    for cfg in extra.values():  # a radar config travels with its capture
        if isinstance(cfg, Path) and cfg.parent != tmp:
            (tmp / cfg.name).write_bytes(cfg.read_bytes())
    tracemalloc.start()
    try:
        _read_all(fmt, path, **{k: (tmp / v.name if isinstance(v, Path) else v) for k, v in extra.items()})
    except RFSenseError as err:
        assert "\n" not in str(err), f"a multi-line error: {err}"
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < MEMORY_FACTOR * max(path.stat().st_size, 1) + MEMORY_SLACK, f"{peak / 1e6:.0f} MB for {path.stat().st_size} B"


CAPTURES = {
    "intel5300": RECORDINGS / "intel5300" / "sample_0x1_ap.dat",
    "atheros": RECORDINGS / "atheros" / "ath_csi_1.dat",
    "nexmon": RECORDINGS / "nexmon" / "example.pcap",
    "esp32": RECORDINGS / "esp32" / "example_csi.csv",
    "picoscenes": RECORDINGS / "picoscenes" / "rx_by_qca9300.csi",
}


@pytest.mark.parametrize("fmt", sorted(CAPTURES))
def test_wifi_captures_survive_truncation_and_bit_flips(fmt, tmp_path_factory):
    assert _read_all(fmt, CAPTURES[fmt]) >= 1  # the untouched capture reads

    @FUZZ
    @given(_mutations)
    def check(mutation):
        _fuzz_one(fmt, CAPTURES[fmt], tmp_path_factory.mktemp(fmt), mutation)

    check()


@pytest.fixture(scope="module")
def raw_captures(tmp_path_factory) -> dict[str, Path]:
    """An Impinj log from the generator's raw writer and a small DCA1000 capture with its config."""
    from rfsense.data.recordings.dca1000 import encode_frames
    from rfsense.data.recordings.radar_config import XRF55_RADAR
    from rfsense.data.synth import SynthConfig
    from rfsense.data.synth.raw_rfid import write_raw_rfid
    from rfsense.data.synth.sample import world

    tmp = tmp_path_factory.mktemp("raw")
    impinj = tmp / "1_1_1.csv"
    write_raw_rfid(world(SynthConfig(), 1, 1, 1), np.random.default_rng(0), impinj, seed=0, scene=1, start_s=0.0)
    small = dataclasses.replace(XRF55_RADAR, adc_samples=64, loops=32)
    rng = np.random.default_rng(0)
    shape = (110, small.loops, small.chirps_per_loop * small.rx_channels, small.adc_samples)
    frames = (rng.integers(-3000, 3000, shape) + 1j * rng.integers(-3000, 3000, shape)).astype(np.complex64)
    radar = tmp / "cap_Raw_0.bin"
    radar.write_bytes(encode_frames(frames, small).tobytes())
    cfg = tmp / "cap.radar.yaml"
    cfg.write_text("".join(f"{f.name}: {str(v).lower() if isinstance(v := getattr(small, f.name), bool) else v}\n"
                           for f in dataclasses.fields(small)))
    return {"impinj": impinj, "dca1000": radar, "dca1000_config": cfg}


def test_impinj_logs_survive_truncation_and_bit_flips(raw_captures, tmp_path_factory):
    assert _read_all("impinj", raw_captures["impinj"]) >= 1

    @FUZZ
    @given(_mutations)
    def check(mutation):
        _fuzz_one("impinj", raw_captures["impinj"], tmp_path_factory.mktemp("impinj"), mutation)

    check()


def test_dca1000_captures_survive_truncation_and_bit_flips(raw_captures, tmp_path_factory):
    cfg = raw_captures["dca1000_config"]
    assert _read_all("dca1000", raw_captures["dca1000"], radar_config=cfg) >= 1

    @FUZZ
    @given(_mutations)
    def check(mutation):
        _fuzz_one("dca1000", raw_captures["dca1000"], tmp_path_factory.mktemp("dca"), mutation, radar_config=cfg)

    check()


_dtypes = st.sampled_from(["<f8", "<f4", "<f2", "<i8", "<i2", "|u1", "|b1", "<c8", "|O", "<U3", ">f8"])


@FUZZ
@given(shape=st.lists(st.integers(0, 40), max_size=4).map(tuple), dtype=_dtypes, mutation=_mutations,
       huge=st.booleans())
def test_npy_and_npz_never_crash_or_overallocate(tmp_path_factory, shape, dtype, mutation, huge):
    tmp = tmp_path_factory.mktemp("npy")
    arr = np.zeros(shape, dtype=np.dtype(dtype).newbyteorder("=") if dtype != "|O" else object)
    path = tmp / "x.npy"
    np.save(path, arr, allow_pickle=True)
    data = path.read_bytes()
    if huge:  # a header that promises far more than the file holds
        data = data.replace(repr(tuple(shape)).encode(), repr((2**31, 2**31)).encode(), 1)
    path.write_bytes(_mutate(data, *mutation))
    np.savez(tmp / "b.npz", wifi=arr) if dtype != "|O" else None
    tracemalloc.start()
    try:
        for load, p in ((load_npy, path), (load_npz, tmp / "b.npz")):
            if p.exists():
                try:
                    out = load(p)
                    assert not isinstance(out, np.ndarray) or out.dtype != object
                except RFSenseError as err:
                    assert "\n" not in str(err)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < 10 * max(len(data), 1) + 1e6
