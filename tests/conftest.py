"""Shared fixtures: one tiny synthetic XRF55 tree per test session, made by the generator itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from rfsense.data.layout import SplitSpec

# 2 volunteers x 4 actions x 6 trials; trials 1-4 train, 5-6 test (the official 1-14 rule needs 15+ trials).
TINY = {"volunteers": 2, "actions": 4, "trials": 6}
TINY_SPLIT = SplitSpec(train_trials=(1, 2, 3, 4))
RECORDINGS = Path(__file__).resolve().parents[1] / "examples" / "recordings"  # vendored real captures


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    from rfsense.data.synth import SynthConfig, synthesize

    root = tmp_path_factory.mktemp("synth") / "xrf55"
    synthesize(root, SynthConfig(seed=0, **TINY), workers=1)
    return root


@pytest.fixture(scope="session")
def synth_pack(synth_root, tmp_path_factory):
    from rfsense.data.pack import pack

    return pack(synth_root, tmp_path_factory.mktemp("pack") / "p", spec=TINY_SPLIT)


def tiny_config(root: Path, out_dir: Path, name: str = "tiny", train_trials=TINY_SPLIT.train_trials, **train):
    """A run config for the tiny set: edge preset shrunk, DAGR on (pareto, params)."""
    from rfsense.train.config import config_from_tree

    tree = {
        "name": name,
        "out_dir": str(out_dir),
        "data": {"root": str(root), "split": {"train_trials": list(train_trials)}},
        "model": {"preset": "edge"},
        "train": {"epochs": 6, "batch_size": 8, "lr": 0.003, "warmup_epochs": 0.5, "val_fraction": 0.0,
                  "log_every": 0, "threads": 2, **train},
        "dagr": {"enabled": True, "mode": "pareto", "pareto_space": "params"},
    }
    return config_from_tree(tree)


@pytest.fixture(scope="session")
def trained_run(synth_root, synth_pack, tmp_path_factory) -> Path:
    """One short training run shared by the train, eval and export tests."""
    from rfsense.train.loop import fit

    out = tmp_path_factory.mktemp("runs")
    fit(tiny_config(synth_root, out))
    return out / "tiny"


# ---------------------------------------------------------------------------------------- skip policy
# A skipped test must never hide a missing fixture or dependency: the run fails on any skip except those of
# tests marked `gpu` (they need CUDA) or `cpu_only` (they check behaviour where CUDA cannot be used).
_ALLOWED_SKIPS = ("gpu", "cpu_only")
_unexpected_skips: list[str] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not any(item.get_closest_marker(m) for m in _ALLOWED_SKIPS):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _unexpected_skips.append(f"{item.nodeid}: {reason}")


def pytest_terminal_summary(terminalreporter):
    if _unexpected_skips:
        terminalreporter.section("skips that fail the run (only gpu/cpu_only tests may skip)", red=True)
        for line in _unexpected_skips:
            terminalreporter.line(line)


def pytest_sessionfinish(session, exitstatus):
    if _unexpected_skips and session.exitstatus == 0:
        session.exitstatus = 1
