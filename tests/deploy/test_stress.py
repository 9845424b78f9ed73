"""`rfsense stress`: the plan, the metrics, end to end on a trained model, and one-line errors."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter

import pytest
from click.testing import CliRunner

from rfsense.cli import main
from rfsense.deploy.stress.data import select_samples
from rfsense.deploy.stress.report import summarise
from rfsense.deploy.stress.runner import Cell, Tally, plan_cells
from rfsense.errors import ConfigError, DataError
from rfsense.modalities import MODALITIES
from tests.conftest import TINY_SPLIT
from tests.deploy.conftest import write_toy_model

TRIALS = ",".join(map(str, TINY_SPLIT.train_trials))


def test_plan_has_baseline_absence_and_every_target():
    cells = plan_cells(["missing", "agc-step", "sensor-lost", "desync"], MODALITIES, (0, 1, 5), features=False)
    assert cells[0] == Cell("clean", (), 0) and {c for c in cells if c.fault == "absent"} == {
        Cell("absent", (m,), 0) for m in MODALITIES}
    assert {c.targets for c in cells if c.fault == "missing"} == {(m,) for m in MODALITIES}
    assert {c.targets for c in cells if c.fault == "agc-step"} == {("wifi",)}  # WiFi only
    assert len({c.targets for c in cells if c.fault == "sensor-lost"}) == 6  # the 6 proper subsets kept
    assert {c.severity for c in cells if c.fault == "missing"} == {1, 5}
    with pytest.raises(ConfigError, match="unknown fault 'mising'"):
        plan_cells(["mising"], MODALITIES, (1,), features=False)
    with pytest.raises(ConfigError, match="applies to wifi; not to the chosen modalities mmwave"):
        plan_cells(["agc-step"], ("mmwave",), (1,), features=False)


def test_mce_follows_the_imagenet_c_definition():
    cells = [Cell("missing", ("wifi",), s) for s in (1, 2)]
    acc = {"a": [0.8, 0.6], "b": [0.9, 0.8]}  # errors a: 0.2 + 0.4 = 0.6, b: 0.1 + 0.2 = 0.3
    tallies = {("a", Cell("clean", (), 0), "on"): Tally(10, 9), ("b", Cell("clean", (), 0), "on"): Tally(10, 10)}
    for name, accs in acc.items():
        for c, a in zip(cells, accs, strict=True):
            tallies[(name, c, "on")] = Tally(100, round(100 * a))
    a, b = summarise(tallies, ["a", "b"])
    assert a["mce"] == pytest.approx(1.0) and b["mce"] == pytest.approx(0.5)
    assert b["mean_corrupted_accuracy"] == pytest.approx(0.85) and b["relative_robustness"] == pytest.approx(0.85)
    assert a["clean_accuracy"] == pytest.approx(0.9)


def test_labels_outside_the_models_classes_are_refused(synth_root):
    with pytest.raises(DataError, match=r"labels \[3, 4\] \(actions\) lie outside the models' 2 classes"):
        select_samples(synth_root, TINY_SPLIT, "test", None, n_classes=2)


@pytest.fixture(scope="module")
def exported(trained_run, tmp_path_factory):
    from rfsense.deploy.export import export_run

    out = tmp_path_factory.mktemp("stress-export")
    export_run(trained_run, out=out)
    return out / "rfsense.onnx"


def test_two_models_one_call_one_set_of_files(trained_run, exported, synth_root, tmp_path):
    out = tmp_path / "report"
    r = CliRunner().invoke(main, ["stress", str(exported), str(trained_run), "--data", str(synth_root),
                                  "--train-trials", TRIALS, "--faults", "missing,nan-inf,dropout", "--modalities",
                                  "mmwave,wifi", "--severities", "0,3,5", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "clean %" in r.output and "mCE %" in r.output
    results = json.loads((out / "results.json").read_text())
    assert [m["name"] for m in results["models"]] == ["rfsense", trained_run.name]
    onnx_clean, run_clean = (s["clean_accuracy"] for s in results["summary"])
    assert onnx_clean == pytest.approx(run_clean, abs=1 / 16)  # one model, two runtimes: the same answers
    assert results["summary"][0]["mce"] == pytest.approx(1.0)  # the reference model against itself
    cells = {(c["model"], c["fault"], c["targets"], c["severity"], c["health"]): c for c in results["cells"]}
    # the feature-level protocol runs on the PyTorch model only
    assert (trained_run.name, "dropout", "R", 5, "on") in cells and ("rfsense", "dropout", "R", 5, "on") not in cells
    # a NaN-flooded stream is masked by the health checks: 90 % of WiFi packets lost fails every sample
    flooded = cells[("rfsense", "missing", "W", 5, "on")]
    assert Counter(flooded["statuses"])["wifi:failed"] == flooded["n"] > 0
    assert (out / "results.csv").read_text().startswith("model,fault,kind,targets,severity,health,")
    report = (out / "report.md").read_text()
    assert "## Summary" in report and "### missing" in report and "![curves_missing.png]" in report
    assert (out / "curves_missing.png").stat().st_size > 1000


@pytest.fixture(scope="module")
def mmwave_model(synth_root, synth_pack, tmp_path_factory):
    """A small model trained on mmWave alone (the strongest sensor), well above chance on the tiny set."""
    from rfsense.deploy.export import export_run
    from rfsense.train.loop import fit
    from tests.conftest import tiny_config

    out = tmp_path_factory.mktemp("mm")
    # 30 epochs = 120 steps: R 87.5 % on the 16 test samples (the probe's 87.5 %); at 10 it had not left chance.
    cfg = tiny_config(synth_root, out, name="mm", epochs=30, keep_prob=[1.0, 0.0, 0.0], unimodal_weight=0.5, seed=0)
    cfg = dataclasses.replace(cfg, dagr=dataclasses.replace(cfg.dagr, enabled=False))  # faster; not under test
    fit(cfg)
    export_run(out / "mm", out=out / "export")
    return out / "export" / "rfsense.onnx"


def test_strongest_modality_alone_falls_under_its_faults(mmwave_model, synth_root, tmp_path):
    r = CliRunner().invoke(main, ["stress", str(mmwave_model), "--data", str(synth_root), "--train-trials", TRIALS,
                                  "--faults", "missing,gaussian", "--modalities", "mmwave", "--alone",
                                  "--out", str(tmp_path), "--format", "json"])
    assert r.exit_code == 0, r.output
    cells = json.loads((tmp_path / "results.json").read_text())["cells"]
    acc = {(c["fault"], c["severity"], c["health"]): c["accuracy"] for c in cells}
    r_alone = next(c["accuracy"] for c in cells if c["fault"] == "clean" and c["targets"] == "R")  # R clean, alone
    assert r_alone >= 0.5, "the tiny model reads mmWave well above chance (4 classes)"
    assert acc[("missing", 5, "on")] <= r_alone - 0.25, (acc, r_alone)
    assert acc[("gaussian", 5, "on")] <= r_alone - 0.2, (acc, r_alone)


@pytest.mark.parametrize(("args", "message"), [
    (["--faults", "mising"], "unknown fault 'mising'"),
    (["--severities", "0-7"], "severities [0, 1, 2, 3, 4, 5, 6, 7]: each must be in 0..5"),
    (["--modalities", "radar"], "unknown modalities ['radar']"),
    (["--faults", "gaussian"], "needs each modality's raw-domain std s(m)"),
])
def test_bad_input_is_one_line(synth_root, tmp_path, args, message):
    toy = write_toy_model(tmp_path / "export")  # its manifest records no raw_std
    r = CliRunner().invoke(main, ["stress", str(toy.path), "--data", str(synth_root), "--train-trials", TRIALS,
                                  "--limit", "4", "--out", str(tmp_path / "o"), *args])
    assert r.exit_code == 1 and "Traceback" not in r.output
    errors = [line for line in r.output.strip().splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0], r.output  # progress lines may come first; one error line


def test_list_faults_and_usage():
    r = CliRunner().invoke(main, ["stress", "--list-faults"])
    assert r.exit_code == 0 and "missing (stream" in r.output and "5: p = 0.9:" in r.output
    r = CliRunner().invoke(main, ["stress"])
    assert r.exit_code == 2 and "--data" in r.output


def test_onnx_models_screen_preprocessed_rows_as_the_runtime_does(tmp_path):
    """The stress path masks what the runtime's checks after preprocessing mask (here: a non-finite row)."""
    import numpy as np

    from rfsense.deploy.stress.models import load_stress_model
    from rfsense.modalities import SHAPES

    model = load_stress_model(write_toy_model(tmp_path / "export").path)
    rows = np.zeros((3, *SHAPES["wifi"]), dtype=np.float32)
    rows[1, 0, 0] = np.nan
    assert model.screen("wifi", rows, np.ones(3, dtype=bool)).tolist() == [False, True, False]
