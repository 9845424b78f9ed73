"""Export a trained run, check the graph and manifest, and run it through the torch-free runtime and CLI."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import onnx
import pytest
import yaml
from click.testing import CliRunner

from rfsense.cli import main
from rfsense.deploy.export import export_run
from rfsense.deploy.plausibility import PlausibilityConfig
from rfsense.deploy.runtime import Runtime
from rfsense.errors import ModelFileError
from rfsense.modalities import SUBSETS
from tests.conftest import RECORDINGS, tiny_config


def onnx_operator_profile(paths) -> dict:
    """Operator multiset and parameter count of ONNX graphs (DAGR must leave no trace here)."""
    ops: dict[str, int] = {}
    n_params = 0
    for path in paths:
        model = onnx.load(str(path))
        for node in model.graph.node:
            ops[node.op_type] = ops.get(node.op_type, 0) + 1
        n_params += int(sum(np.prod(t.dims) for t in model.graph.initializer))
    return {"ops": dict(sorted(ops.items())), "n_params": n_params}


def graph_paths(out, manifest) -> list:
    return [out / g["file"] for g in manifest["graphs"].values()]


MANIFEST_KEYS = {
    "format", "model_file", "graphs", "inputs", "tokens", "outputs", "modalities", "class_names", "plausibility",
    "preprocessing", "health", "raw_std", "run", "metrics", "parity", "size_bytes", "versions",
}


@pytest.fixture(scope="module")
def exported(trained_run, tmp_path_factory):
    """The tiny run exported (with int8), as if it had held out a validation slice of a quarter of its rows."""
    run = tmp_path_factory.mktemp("run") / "tiny"
    shutil.copytree(trained_run, run)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["train"]["val_fraction"] = 0.25  # the rows fit() would hold out with this fraction and seed
    (run / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    out = tmp_path_factory.mktemp("export")
    # 8 validation rows per modality: enough for this test (the default asks for 20 to calibrate a threshold)
    manifest = export_run(run, out=out, int8=True, plausibility=PlausibilityConfig(min_rows=8))
    return out, manifest


def test_manifest_schema_and_parity(exported):
    out, m = exported
    assert set(m) == MANIFEST_KEYS | {"int8"} and m["format"] == "rfsense-onnx/2"
    assert set(m["raw_std"]) == {"mmwave", "wifi", "rfid"} and all(v > 0 for v in m["raw_std"].values())
    on_disk = json.loads((out / "rfsense.json").read_text())
    assert set(on_disk["graphs"]) == {"fusion", "mmwave", "wifi", "rfid"}
    assert on_disk["graphs"]["fusion"]["file"] == "rfsense.onnx" == m["model_file"]
    for part, g in on_disk["graphs"].items():
        assert g["file"] == ("rfsense.onnx" if part == "fusion" else f"rfsense.{part}.onnx")
        assert g["sha256"] == hashlib.sha256((out / g["file"]).read_bytes()).hexdigest()
        assert g["gflop_per_sample"] > 0  # torch's flop counter at export: the runtime sizes thread pools by it
    int8 = json.loads((out / "rfsense-int8.json").read_text())["graphs"]
    assert {p: g["gflop_per_sample"] for p, g in int8.items()} == {p: g["gflop_per_sample"] for p, g in on_disk["graphs"].items()}
    assert m["inputs"]["mmwave"]["shape"] == ["batch", 17, 256, 128] and m["inputs"]["present"]["dtype"] == "bool"
    assert m["outputs"]["logits"]["shape"] == ["batch", 55] and len(m["class_names"]) == 55
    assert m["tokens"]["shape"] == ["batch", m["run"]["model"]["n_tokens"], m["run"]["model"]["d"]]
    assert m["modalities"] == ["mmwave", "wifi", "rfid"]
    p = m["parity"]
    assert p["ok"] and p["top1_equal"] and p["max_abs_diff"] < 1e-3
    assert {(c["subset"], c["batch"]) for c in p["cases"]} == {(s, b) for s, _ in SUBSETS for b in (1, 7)} | {("mixed", 7)}
    assert set(p["ood_max_rel_diff"]) == {"mmwave", "wifi", "rfid"} and max(p["ood_max_rel_diff"].values()) <= 1e-4
    assert set(m["metrics"]["subsets"]) == {s for s, _ in SUBSETS}
    assert not list(out.glob(".*.tmp")) and not list(out.glob("*.data"))  # single files, nothing half-written


def test_graph_inputs_and_outputs(exported):
    out, m = exported
    n, d = m["tokens"]["shape"][1:]
    for mod in ("mmwave", "wifi", "rfid"):
        g = onnx.load(str(out / f"rfsense.{mod}.onnx")).graph
        assert [i.name for i in g.input] == [mod] and [o.name for o in g.output] == ["tokens", "ood"]
    g = onnx.load(str(out / "rfsense.onnx"))
    assert [i.name for i in g.graph.input] == ["tokens_mmwave", "tokens_wifi", "tokens_rfid", "present"]
    assert [o.name for o in g.graph.output] == ["logits"]
    assert g.ir_version == 8 and g.opset_import[0].version == 18  # onnxruntime 1.16 loads it (edge_check)
    assert [dim.dim_value for dim in g.graph.input[0].type.tensor_type.shape.dim[1:]] == [n, d]


def test_ood_thresholds_are_set_on_the_validation_slice(exported, trained_run):
    """The thresholds come from the exported encoders' own scores on the rows fit() holds out (val_fraction 0.25)."""
    from rfsense.deploy.plausibility import distribution_scores
    from rfsense.train.loop import _split_rows
    from rfsense.train.rundir import load_run_config, open_run_pack

    out, m = exported
    cfg = load_run_config(trained_run)
    train = open_run_pack(cfg).split("train")
    _, val_rows = _split_rows(train.usable.any(axis=1), len(train), 0.25, cfg.train.seed)
    pc = PlausibilityConfig(min_rows=8)
    rt = Runtime(out / "rfsense.onnx", providers="cpu")
    for j, mod in enumerate(("mmwave", "wifi", "rfid")):
        entry = m["plausibility"]["ood"][mod]
        rows = val_rows[train.usable[val_rows, j]]
        assert entry["split"] == "validation" and entry["rows"] == len(rows) > 0
        x = np.asarray(train.arrays[mod][rows], dtype=np.float32)
        scores = rt.encode(mod, x)[1]
        assert entry["threshold"] == pytest.approx(np.quantile(scores, pc.quantile) * pc.margin, rel=1e-5)
        assert rt.plausibility.ood_threshold[mod] == entry["threshold"]
        dist = m["plausibility"]["distribution"][mod]
        assert np.array(dist["center"]).shape == (train.arrays[mod].shape[1], 3) and dist["fit_rows"] > 0
        center, scale, threshold = rt.plausibility.distribution[mod]
        fit_rows = np.setdiff1d(np.flatnonzero(train.usable[:, j]), val_rows)
        both = np.concatenate([np.asarray(train.arrays[mod][fit_rows], dtype=np.float32), x])
        assert dist["split"] == "train + validation" and dist["rows"] == len(both) and dist["fit_rows"] == len(fit_rows)
        assert threshold == dist["threshold"] == pytest.approx(
            np.quantile(distribution_scores(both, center, scale), pc.quantile) * pc.margin, rel=1e-9)


def test_int8_reported_beside_fp32(exported):
    out, m = exported
    q = m["int8"]
    assert (out / "rfsense-int8.onnx").is_file() and (out / "rfsense-int8.json").is_file()
    assert all((out / f"rfsense-int8.{mod}.onnx").is_file() for mod in ("mmwave", "wifi", "rfid"))
    assert 0.0 <= q["int8"]["accuracy"] <= 1.0 and 0.0 <= q["top1_agreement"] <= 1.0
    assert q["int8"]["size_bytes"] < q["fp32"]["size_bytes"]
    rt = Runtime(out / "rfsense-int8.onnx")  # its own manifest and sha256
    assert rt.providers == ["CPUExecutionProvider"]


def test_runtime_matches_training_eval(exported, trained_run, synth_root):
    """The runtime (numpy preprocessing + ONNX) reproduces the run's own R+W+RF test accuracy."""
    out, m = exported
    rt = Runtime(out / "rfsense.onnx", threads=2)
    runner = CliRunner()
    # Training's evaluation knows no plausibility checks; compare like with like.
    r = runner.invoke(main, ["infer", str(out / "rfsense.onnx"), str(synth_root), "--format", "jsonl",
                             "--no-plausibility"])
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
    for f in out.glob("rfsense.*"):
        shutil.copy(f, tmp_path / f.name)
    data = bytearray((tmp_path / "rfsense.mmwave.onnx").read_bytes())
    data[-10] ^= 0xFF
    (tmp_path / "rfsense.mmwave.onnx").write_bytes(bytes(data))
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
    pa, pb = onnx_operator_profile(graph_paths(tmp_path / "a", a)), onnx_operator_profile(graph_paths(tmp_path / "b", b))
    assert pa == pb and pa["n_params"] > 0
    # The training-only unimodal heads are not in the graphs: their parameters are the model's minus theirs
    # plus the OOD score's whitening (d x d) and class centres (K x d) per modality (buffers such as the WiFi
    # front end's fixed STFT kernels, and constants the exporter folds, add their own few values, never a
    # head's 55 x d weight).
    from rfsense.train.rundir import load_run_model

    model, _ = load_run_model(trained_run)
    heads = sum(p.numel() for p in model.unimodal_heads.parameters())
    total = sum(p.numel() for p in model.parameters())
    d = model.config.d
    ood = sum(d * d + a["plausibility"]["ood"][mod]["classes"] * d for mod in ("mmwave", "wifi", "rfid"))
    # val_fraction 0: no validation slice; 32 training rows give leave-one-out scores, and the manifest says so
    assert a["plausibility"]["ood"]["wifi"]["split"] == "train (leave-one-out)"
    fixed = sum(b.numel() for b in model.buffers())
    assert total - heads + ood <= pa["n_params"] < total - heads + ood + fixed + 1000, (pa["n_params"], total, heads, ood)


def test_too_few_rows_give_leave_one_out_thresholds_or_none():
    """A handful of rows calibrates nothing: below min_rows held-out rows the thresholds come from the training
    rows (leave-one-out OOD scores), and below min_rows of those too there is none (the check is off, noted)."""
    from types import SimpleNamespace

    from rfsense.deploy.export import _Fitted, _set_thresholds
    from rfsense.deploy.plausibility import OodFit

    split = SimpleNamespace(usable=np.ones((40, 3), bool))
    mods = ("mmwave", "wifi", "rfid")
    few = {m: _Fitted(OodFit(np.zeros((2, 4)), np.eye(4), 0.1, 6), np.arange(6.0), rows=6) for m in mods}
    ood, dist = _set_thresholds({}, split, np.arange(5), few, PlausibilityConfig())
    assert all(v["threshold"] is None and "fewer than 20" in v["note"] for v in (*ood.values(), *dist.values()))
    enough = {m: _Fitted(OodFit(np.zeros((2, 4)), np.eye(4), 0.1, 30), np.arange(30.0), center=np.zeros((3, 3)),
                         scale=np.ones((3, 3)), train_scores=np.linspace(0, 2, 30), rows=30) for m in mods}
    ood, dist = _set_thresholds({}, split, np.arange(5), enough, PlausibilityConfig())
    assert ood["wifi"]["split"] == "train (leave-one-out)" and ood["wifi"]["rows"] == 30
    assert ood["wifi"]["threshold"] == pytest.approx(np.quantile(np.arange(30.0), 0.995) * 1.25)
    assert dist["rfid"]["split"] == "train" and dist["rfid"]["threshold"] == pytest.approx(
        np.quantile(np.linspace(0, 2, 30), 0.995) * 1.25)
