"""Export a trained run, check the graph and manifest, and run it through the torch-free runtime and CLI."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from rfsense.cli import main
from rfsense.deploy.export import export_run
from rfsense.deploy.runtime import Runtime
from rfsense.errors import ModelFileError
from rfsense.modalities import SUBSETS
from tests.conftest import RECORDINGS, tiny_config


def onnx_operator_profile(path) -> dict:
    """Operator multiset and parameter count of an ONNX model (DAGR must leave no trace here)."""
    model = onnx.load(str(path))
    ops: dict[str, int] = {}
    for node in model.graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    return {"ops": dict(sorted(ops.items())), "n_params": int(sum(np.prod(t.dims) for t in model.graph.initializer))}

MANIFEST_KEYS = {
    "format", "model_file", "sha256", "inputs", "outputs", "modalities", "class_names", "preprocessing", "health",
    "run", "metrics", "parity", "size_bytes", "versions",
}


@pytest.fixture(scope="module")
def exported(trained_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    manifest = export_run(trained_run, out=out, int8=True)
    return out, manifest


def test_manifest_schema_and_parity(exported):
    out, m = exported
    assert set(m) == MANIFEST_KEYS | {"int8"}
    on_disk = json.loads((out / "rfsense.json").read_text())
    assert on_disk["sha256"] == hashlib.sha256((out / "rfsense.onnx").read_bytes()).hexdigest()
    assert m["inputs"]["mmwave"]["shape"] == ["batch", 17, 256, 128] and m["inputs"]["present"]["dtype"] == "bool"
    assert m["outputs"]["logits"]["shape"] == ["batch", 55] and len(m["class_names"]) == 55
    assert m["modalities"] == ["mmwave", "wifi", "rfid"]
    p = m["parity"]
    assert p["ok"] and p["top1_equal"] and p["max_abs_diff"] < 1e-3
    assert {(c["subset"], c["batch"]) for c in p["cases"]} == {(s, b) for s, _ in SUBSETS for b in (1, 7)}
    assert set(m["metrics"]["subsets"]) == {s for s, _ in SUBSETS}
    assert not list(out.glob("*.tmp")) and not list(out.glob("*.data"))  # one file, nothing half-written


def test_int8_reported_beside_fp32(exported):
    out, m = exported
    q = m["int8"]
    assert (out / "rfsense-int8.onnx").is_file() and (out / "rfsense-int8.json").is_file()
    assert 0.0 <= q["int8"]["accuracy"] <= 1.0 and 0.0 <= q["top1_agreement"] <= 1.0
    assert q["int8"]["size_bytes"] < q["fp32"]["size_bytes"]
    rt = Runtime(out / "rfsense-int8.onnx")  # its own manifest and sha256
    assert rt.providers == ["CPUExecutionProvider"]


def test_runtime_matches_training_eval(exported, trained_run, synth_root):
    """The runtime (numpy preprocessing + ONNX) reproduces the run's own R+W+RF test accuracy."""
    out, m = exported
    rt = Runtime(out / "rfsense.onnx", threads=2)
    runner = CliRunner()
    r = runner.invoke(main, ["infer", str(out / "rfsense.onnx"), str(synth_root), "--format", "jsonl"])
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.output.splitlines() if line.startswith("{")]
    test = [row for row in rows if int(row["id"].split("_")[-1]) >= 5]  # trials 5-6 are the test split
    assert len(rows) == 48 and len(test) == 16
    labels = [int(row["id"].split("_")[1]) - 1 for row in test]
    acc = np.mean([row["top"][0]["index"] == y for row, y in zip(test, labels, strict=True)])
    assert acc == pytest.approx(m["metrics"]["subsets"]["R+W+RF"], abs=1 / 16 + 1e-9)
    assert all(row["modalities_used"] == ["mmwave", "wifi", "rfid"] for row in rows)
    assert rt.n_classes == 55


def test_sha256_mismatch_refused(exported, tmp_path):
    out, _ = exported
    shutil.copy(out / "rfsense.onnx", tmp_path / "rfsense.onnx")
    shutil.copy(out / "rfsense.json", tmp_path / "rfsense.json")
    data = bytearray((tmp_path / "rfsense.onnx").read_bytes())
    data[-10] ^= 0xFF
    (tmp_path / "rfsense.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="sha256"):
        Runtime(tmp_path / "rfsense.onnx")
    r = CliRunner().invoke(main, ["infer", str(tmp_path / "rfsense.onnx"), str(tmp_path)])
    assert r.exit_code == 1 and "sha256" in r.output and "Traceback" not in r.output


def test_infer_on_real_intel5300_capture(exported):
    dat = RECORDINGS / "intel5300" / "sample_0x1_ap.dat"
    out, _ = exported
    r = CliRunner().invoke(main, ["infer", str(out / "rfsense.onnx"), str(dat), "--format", "jsonl"])
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in r.output.splitlines() if line.startswith("{")]
    assert len(rows) == 10  # 59.6 s capture split at two 0.6 s gaps, 5 s windows, no overlap
    assert all(row["verdicts"]["mmwave"]["status"] == "absent" for row in rows)
    assert all("rx2" in row["reason"] for row in rows)  # receivers 2 and 3 were not given: flagged
    for row in rows:
        if row["status"] == "ok":
            assert row["modalities_used"] == ["wifi"] and np.isfinite([t["prob"] for t in row["top"]]).all()
    r = CliRunner().invoke(main, ["infer", str(out / "rfsense.onnx"), str(dat), "--hop", "2.5"])
    assert r.exit_code == 0 and "20 samples" in r.output


def test_dagr_leaves_no_trace(trained_run, synth_root, tmp_path):
    """A model trained without DAGR exports to the same operators and parameter count."""
    import dataclasses

    from rfsense.train.loop import fit

    cfg = tiny_config(synth_root, tmp_path, name="nodagr", epochs=1)
    fit(dataclasses.replace(cfg, dagr=dataclasses.replace(cfg.dagr, enabled=False)))
    a = export_run(trained_run, out=tmp_path / "a")
    b = export_run(tmp_path / "nodagr", out=tmp_path / "b")
    pa, pb = onnx_operator_profile(tmp_path / "a" / a["model_file"]), onnx_operator_profile(tmp_path / "b" / b["model_file"])
    assert pa == pb and pa["n_params"] > 0
    # The training-only unimodal heads are not in the graph: its parameters are the model's minus theirs
    # (buffers such as the WiFi front end's fixed STFT kernels, and constants the exporter folds, can add
    # their own few values, never a head's 55 x d weight).
    from rfsense.train.rundir import load_run_model

    model, _ = load_run_model(trained_run)
    heads = sum(p.numel() for p in model.unimodal_heads.parameters())
    total = sum(p.numel() for p in model.parameters())
    fixed = sum(b.numel() for b in model.buffers())
    assert total - heads <= pa["n_params"] < total - heads + fixed + 1000, (pa["n_params"], total, heads, fixed)
