"""Packing in parallel (`pack(..., workers=N)`, `rfsense data pack --workers N`): the same bytes as one process,
quality counts and raw scales included, and resumable after kill -9."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from rfsense.cli import main
from rfsense.data.pack import pack
from tests.conftest import TINY_SPLIT

REPO = Path(__file__).resolve().parents[2]
CHUNK = 4  # 8 train + 4 test chunks, so the workers interleave


@pytest.fixture(scope="module")
def messy_root(synth_root, tmp_path_factory) -> Path:
    """The tiny set with an unreadable WiFi file (skipped) and a flat-lined one (fails the quality rule)."""
    root = tmp_path_factory.mktemp("messy") / "xrf55"
    shutil.copytree(synth_root, root)
    (root / "WiFi" / "1_2_3.npy").write_bytes(b"")
    np.save(root / "WiFi" / "2_1_2.npy", np.full((270, 1000), 12.0))
    return root


@pytest.fixture(scope="module")
def serial_pack(messy_root, tmp_path_factory):
    return pack(messy_root, tmp_path_factory.mktemp("serial") / "p", spec=TINY_SPLIT, chunk=CHUNK, skip_bad=True)


def _assert_same_pack(a: Path, b: Path) -> None:
    ja, jb = json.loads((a / "pack.json").read_text()), json.loads((b / "pack.json").read_text())
    assert ja == jb  # status counts, raw-domain scales, fingerprint
    assert (a / "stats.npz").read_bytes() == (b / "stats.npz").read_bytes()
    for split in ja["splits"]:
        for f in sorted(p.name for p in (a / split).iterdir()):
            if f.endswith(".npz"):  # a zip: compare the arrays, not the archive's timestamps
                with np.load(a / split / f) as x, np.load(b / split / f) as y:
                    assert x.files == y.files and all(np.array_equal(x[k], y[k]) for k in x.files), f
            else:
                assert (a / split / f).read_bytes() == (b / split / f).read_bytes(), f"{split}/{f}"


def test_two_workers_write_the_same_bytes(messy_root, serial_pack, tmp_path):
    parallel = pack(messy_root, tmp_path / "p", spec=TINY_SPLIT, chunk=CHUNK, skip_bad=True, workers=2)
    _assert_same_pack(serial_pack.path, parallel.path)
    counts = parallel.meta["status_counts"]["train"]["wifi"]
    assert counts["absent"] == 1 and counts["failed"] == 1  # the skipped file and the flat line, counted once


def test_kill9_mid_pack_then_resume_is_byte_identical(messy_root, serial_pack, tmp_path):
    out = tmp_path / "p"
    code = (f"from rfsense.data.pack import pack; from tests.conftest import TINY_SPLIT; "
            f"pack({str(messy_root)!r}, {str(out)!r}, spec=TINY_SPLIT, chunk={CHUNK}, skip_bad=True, workers=2)")
    job = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, start_new_session=True)
    progress = out.with_name("p.partial") / "train" / "progress.json"
    try:
        deadline = time.monotonic() + 300
        while not progress.is_file():  # the first chunk is committed
            assert job.poll() is None and time.monotonic() < deadline, "the packer ended before its first chunk"
            time.sleep(0.02)
    finally:
        os.killpg(job.pid, signal.SIGKILL)  # the parent and its worker processes, mid-pack
        job.wait(timeout=60)
    assert not (out / "pack.json").exists()
    done = json.loads(progress.read_text())["done"]
    assert 0 < done < 32
    resumed = pack(messy_root, out, spec=TINY_SPLIT, chunk=CHUNK, skip_bad=True, workers=2)
    _assert_same_pack(serial_pack.path, resumed.path)
    assert not out.with_name("p.partial").exists()


def test_cli_workers_option(synth_root, tmp_path):
    r = CliRunner().invoke(main, ["data", "pack", str(synth_root), str(tmp_path / "p"), "--workers", "2",
                                  "--train-trials", "1-4"])
    assert r.exit_code == 0, r.output
    assert "train 32, test 16" in r.output
    r = CliRunner().invoke(main, ["data", "pack", str(synth_root), str(tmp_path / "q"), "--workers", "0"])
    assert r.exit_code == 2 and "--workers" in r.output


def test_workers_must_be_a_positive_integer(synth_root, tmp_path):
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="workers must be a positive integer"):
            pack(synth_root, tmp_path / "p", spec=TINY_SPLIT, workers=bad)
