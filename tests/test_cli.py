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
    for cmd in (["synth"], ["data", "check"], ["data", "pack"], ["train"], ["eval"], ["compare"], ["export"], ["infer"]):
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
    (old_run / "best.pt").write_bytes(b"earlier work")
    r = runner.invoke(main, ["train", "configs/quickstart.yaml", *missing, "--overwrite"])
    assert r.exit_code == 1 and "rfsense synth" in r.output
    assert (old_run / "best.pt").read_bytes() == b"earlier work"  # a bad data root deletes nothing
    r = runner.invoke(main, ["train", "configs/quickstart.yaml", "--seeds", "a,b"])
    assert r.exit_code == 2 and "expected integers" in r.output


def test_synth_bad_arguments(runner, tmp_path):
    r = runner.invoke(main, ["synth", str(tmp_path / "s"), "--actions", "56"])
    assert r.exit_code == 2 and "56" in r.output


def test_export_without_runs(runner, tmp_path):
    r = runner.invoke(main, ["export", "--runs", str(tmp_path)])
    assert r.exit_code == 1 and "no trained run" in r.output
