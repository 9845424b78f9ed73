"""CLI wiring: exit codes, one-line errors, no tracebacks. The logic is tested at the library level."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from rfsense import __version__
from rfsense.cli import main
from tests.data.helpers import flat_tree


@pytest.fixture
def runner():
    return CliRunner()


def test_help_and_version(runner):
    r = runner.invoke(main, ["-h"])
    assert r.exit_code == 0 and "rfsense train configs/xrf55.yaml" in r.output
    for cmd in (["synth"], ["data", "check"], ["data", "pack"], ["train"], ["eval"], ["compare"], ["export"], ["infer"], ["stress"], ["convert"]):
        assert runner.invoke(main, [*cmd, "--help"]).exit_code == 0, cmd
    r = runner.invoke(main, ["--version"])
    assert r.exit_code == 0 and __version__ in r.output


def test_data_check_clean_and_json(runner, tmp_path):
    flat_tree(tmp_path)
    r = runner.invoke(main, ["data", "check", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert "no problems found" in r.output
    r = runner.invoke(main, ["data", "check", str(tmp_path), "--json", "--quick"])
    assert r.exit_code == 0 and json.loads(r.output)["splits"] == {"train": 4, "test": 4}


def test_data_check_problems_exit_1(runner, tmp_path):
    flat_tree(tmp_path)
    np.save(tmp_path / "WiFi" / "1_1_1.npy", np.zeros((270, 999)))
    r = runner.invoke(main, ["data", "check", str(tmp_path)])
    assert r.exit_code == 1
    assert "bad_shape" in r.output and "WiFi/1_1_1.npy" in r.output


def test_library_errors_are_one_line(runner, tmp_path):
    (tmp_path / "empty").mkdir()
    r = runner.invoke(main, ["data", "check", str(tmp_path / "empty")])
    assert r.exit_code == 1
    assert r.output.startswith("Error: no mmWave/WiFi/RFID folders under")
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1


def test_train_config_errors(runner, tmp_path):
    r = runner.invoke(main, ["train", "configs/quickstart.yaml", "--set", "train.lrr=1"])
    assert r.exit_code == 1 and "unknown key 'train.lrr'; allowed:" in r.output
    r = runner.invoke(main, ["train", "configs/quickstart.yaml", "--set", "oops"])
    assert r.exit_code == 2 and "expected key=value" in r.output
    missing = ["--set", f"data.root={tmp_path / 'none'}", "--set", f"out_dir={tmp_path / 'runs'}"]
    r = runner.invoke(main, ["train", "configs/quickstart.yaml", *missing])
    assert r.exit_code == 1 and "rfsense synth" in r.output and "Traceback" not in r.output
    old_run = tmp_path / "runs" / "quickstart"
    old_run.mkdir(parents=True)
    for f in ("config.yaml", "metrics.jsonl", "best.pt"):
        (old_run / f).write_text("earlier work")
    r = runner.invoke(main, ["train", "configs/quickstart.yaml", *missing, "--overwrite"])
    assert r.exit_code == 1 and "rfsense synth" in r.output
    assert (old_run / "best.pt").read_text() == "earlier work"  # a bad data root deletes nothing
    r = runner.invoke(main, ["train", "configs/quickstart.yaml", "--seeds", "a,b"])
    assert r.exit_code == 2 and "expected integers" in r.output


@pytest.mark.parametrize("name", ["..", "/abs/path", "a/b", "."])
def test_run_name_must_be_one_folder_name(runner, tmp_path, name):
    """`--set name=.. --overwrite` once deleted the parent of the runs folder."""
    (tmp_path / "runs").mkdir()
    keep = tmp_path / "precious.txt"
    keep.write_text("mine")
    r = runner.invoke(main, ["train", "configs/quickstart.yaml", "--set", f"name={name}", "--set",
                             f"out_dir={tmp_path / 'runs'}", "--overwrite"])
    assert r.exit_code == 1 and "name: must be one plain folder name" in r.output and "Traceback" not in r.output
    assert keep.read_text() == "mine"


def test_overwrite_deletes_only_rfsense_runs(runner, tmp_path, synth_root):
    """A folder that holds something else is never deleted by --overwrite, whatever its name."""
    other = tmp_path / "runs" / "quickstart"
    other.mkdir(parents=True)
    (other / "thesis.tex").write_text("mine")
    args = ["train", "configs/quickstart.yaml", "--set", f"data.root={synth_root}", "--set",
            f"out_dir={tmp_path / 'runs'}", "--set", "data.split.train_trials=[1,2,3,4]", "--overwrite"]
    r = runner.invoke(main, args)
    assert r.exit_code == 1 and "refuses to delete" in r.output and (other / "thesis.tex").read_text() == "mine"
    (tmp_path / "file").write_text("x")
    r = runner.invoke(main, ["train", "configs/quickstart.yaml", "--set", f"out_dir={tmp_path / 'file'}"])
    assert r.exit_code == 1 and "is a file" in r.output


@pytest.mark.parametrize(("override", "message"), [
    ("train.lr=-0.1", "train.lr: must be greater than 0"), ("train.lr=.nan", "train.lr: must be a finite number"),
    ("train.epochs=0", "train.epochs: must be greater than or equal to 1"),
    ("train.batch_size=0", "train.batch_size: must be greater than or equal to 1"),
    ("train.seed=-1", "train.seed: must be greater than or equal to 0"),
    ("train.unimodal_weight=.inf", "train.unimodal_weight: must be a finite number"),
    ("train.time_shift=1.0", "train.time_shift: must be less than 1"), ("data.root=", "data.root"),
])
def test_config_values_are_checked_where_they_are_defined(runner, override, message):
    r = runner.invoke(main, ["train", "configs/quickstart.yaml", "--set", override])
    assert r.exit_code == 1 and message in r.output and len(r.output.strip().splitlines()) == 1


def test_synth_bad_arguments(runner, tmp_path):
    r = runner.invoke(main, ["synth", str(tmp_path / "s"), "--actions", "56"])
    assert r.exit_code == 2 and "56" in r.output


def test_export_without_runs(runner, tmp_path):
    r = runner.invoke(main, ["export", "--runs", str(tmp_path)])
    assert r.exit_code == 1 and "no trained run" in r.output
