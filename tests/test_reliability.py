"""Regression tests of the reliability issue's defects that have no better home (each failed before its fix).

Elsewhere: --overwrite outside the runs folder (tests/test_cli.py), the 2**31 us clock jump and the
half-hour gap (tests/data/test_intel5300.py), two packers at once (tests/data/test_pack.py), config values
checked where they are defined (tests/test_cli.py).
"""

from __future__ import annotations

import fcntl
import json
import os
import struct

import numpy as np
import pytest
from click.testing import CliRunner

from rfsense._io import clean_stale_temporaries, locked_temporary
from rfsense.cli import main
from rfsense.data.layout import discover, parse_key
from rfsense.data.validate import load_npy, load_npz
from rfsense.errors import DataError, ModelFileError
from tests.data.helpers import flat_tree
from tests.deploy.conftest import write_toy_model, write_toy_model_v1


def _npy_promising(path, shape, dtype="<f8", payload=b"\0" * 64) -> None:
    """A .npy whose header promises `shape` but holds only `payload`."""
    header = repr({"descr": dtype, "fortran_order": False, "shape": tuple(shape)}).encode()
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + payload)


@pytest.mark.parametrize("shape", [(270, 10**9), (2**40, 2**40, 2**40)])
def test_huge_promised_shape_is_refused_before_allocating(tmp_path, shape):
    f = tmp_path / "WiFi" / "1_1_1.npy"
    f.parent.mkdir()
    _npy_promising(f, shape)
    with pytest.raises(DataError, match="truncated"):
        load_npy(f)
    toy = write_toy_model(tmp_path / "export")
    r = CliRunner().invoke(main, ["infer", str(toy.path), str(f), "--format", "jsonl"])
    assert r.exit_code == 0 and "Traceback" not in r.output and "MemoryError" not in r.output
    row = json.loads(next(line for line in r.output.splitlines() if line.startswith("{")))
    assert row["status"] == "no_prediction" and "truncated" in row["reason"]


def test_npz_member_with_a_huge_shape_is_refused(tmp_path):
    import zipfile

    inner = tmp_path / "wifi.npy"
    _npy_promising(inner, (270, 10**9))
    bundle = tmp_path / "b.npz"
    with zipfile.ZipFile(bundle, "w") as zf:
        zf.write(inner, "wifi.npy")
    with pytest.raises(DataError, match="promises"):
        load_npz(bundle)
    np.savez(tmp_path / "ok.npz", wifi=np.ones((2, 3)))
    assert load_npz(tmp_path / "ok.npz")["wifi"].shape == (2, 3)


def test_non_ascii_digits_are_bad_names(tmp_path):
    assert parse_key("²_1_1.npy") is None and parse_key("１_1_21.npy") is None and parse_key("1_1_21.npy") == (1, 1, 21)
    flat_tree(tmp_path)
    for bad in ("²_1_1.npy", "１_1_21.npy"):
        np.save(tmp_path / "WiFi" / bad, np.zeros((270, 1000)))
    found = discover(tmp_path)
    assert {p.path.rsplit("/", 1)[-1] for p in found.problems if p.kind == "bad_name"} == {"²_1_1.npy", "１_1_21.npy"}
    r = CliRunner().invoke(main, ["data", "check", str(tmp_path), "--quick"])
    assert r.exit_code == 1 and "bad_name" in r.output and "Traceback" not in r.output


def test_dangling_symlink_is_a_problem_not_a_crash(tmp_path):
    flat_tree(tmp_path)
    os.symlink(tmp_path / "gone.npy", tmp_path / "WiFi" / "2_2_2.npy")
    r = CliRunner().invoke(main, ["data", "check", str(tmp_path)])
    assert r.exit_code == 1 and "dangling symlink" in r.output and "Traceback" not in r.output


def test_deeply_nested_manifest_is_a_one_line_error(tmp_path):
    toy = write_toy_model(tmp_path / "export")
    toy.manifest_path.write_text("[" * 100_000 + "]" * 100_000)
    r = CliRunner().invoke(main, ["infer", str(toy.path), str(tmp_path)])
    assert r.exit_code == 1 and "nested too deeply" in r.output and "Traceback" not in r.output


def test_graph_output_width_must_match_the_class_names(tmp_path):
    import onnx

    from rfsense.deploy.manifest import sha256_bytes
    from rfsense.deploy.runtime import Runtime

    toy = write_toy_model_v1(tmp_path / "export")  # one graph: its weights hold the class count
    proto = onnx.load(str(toy.path))
    for init in proto.graph.initializer:  # keep 54 of the 55 classes in the weights and the declared output
        arr = onnx.numpy_helper.to_array(init)
        if init.name in ("W", "b"):
            init.CopyFrom(onnx.numpy_helper.from_array(arr[..., :54], init.name))
    proto.graph.output[0].type.tensor_type.shape.dim[1].dim_value = 54
    data = proto.SerializeToString()
    toy.path.write_bytes(data)
    man = json.loads(toy.manifest_path.read_text())
    man["sha256"] = sha256_bytes(data)
    toy.manifest_path.write_text(json.dumps(man))
    with pytest.raises(ModelFileError, match="54 classes but its manifest lists 55"):
        Runtime(toy.path, providers="cpu")


def test_stale_temporaries_of_killed_runs_are_cleaned_live_ones_kept(tmp_path):
    final = tmp_path / "rfsense.onnx"
    stale = tmp_path / ".rfsense.onnx.abc123.tmp"  # a killed export left it; nobody holds its lock
    stale.write_bytes(b"half a model")
    with locked_temporary(final) as live:
        live.write_bytes(b"being written")
        removed = clean_stale_temporaries(tmp_path, "rfsense.onnx")
        assert removed == [stale] and live.exists()
        with open(live) as f, pytest.raises(BlockingIOError):
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert not live.exists()
