"""Every documented option value works: each click.Choice value of every command runs without a traceback.

A value may be refused for the data at hand (exit 1 with one `Error:` line, e.g. `--providers cuda` on a
CPU-only machine), but it must never end in a Python traceback (`--short refuse` once did).
"""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from rfsense.cli import main
from tests.conftest import RECORDINGS, TINY_SPLIT, tiny_config
from tests.deploy.conftest import write_toy_model


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    out = []
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            out += _commands(cmd, (*prefix, name))
        else:
            out.append(((*prefix, name), cmd))
    return out


def _choices() -> list[tuple[tuple[str, ...], str, str]]:
    cases = []
    for path, cmd in _commands(main):
        for p in cmd.params:
            if isinstance(p, click.Option) and isinstance(p.type, click.Choice):
                cases += [(path, p.opts[-1] if p.opts[-1].startswith("--") else p.opts[0], str(c)) for c in p.type.choices]
    return cases


def _tiny_config_file(root, tmp) -> str:
    """A one-epoch run config for the tiny set, as YAML (what `rfsense train` reads)."""
    import yaml

    from rfsense.train.config import config_tree

    path = tmp / "tiny.yaml"
    if not path.is_file():
        path.write_text(yaml.safe_dump(config_tree(tiny_config(root, tmp / "runs", epochs=1, threads=1))))
    return str(path)


@pytest.fixture(scope="module")
def base_args(synth_root, trained_run, tmp_path_factory):
    """Cheap, valid arguments for each command (the option under test is appended)."""
    tmp = tmp_path_factory.mktemp("choices")
    toy = write_toy_model(tmp / "export")
    train_trials = ",".join(map(str, TINY_SPLIT.train_trials))
    sample = str(synth_root / "WiFi" / "1_1_5.npy")
    args = {
        ("synth",): lambda: [str(tmp_path_factory.mktemp("s") / "out"), "--volunteers", "1", "--actions", "1",
                             "--trials", "2"],
        ("data", "check"): lambda: [str(synth_root), "--quick", "--train-trials", train_trials],
        ("data", "pack"): lambda: [str(synth_root), str(tmp_path_factory.mktemp("p") / "pack"), "--train-trials",
                                   train_trials],
        ("eval",): lambda: [str(trained_run)],
        ("train",): lambda: [_tiny_config_file(synth_root, tmp), "--set", "train.epochs=1", "--overwrite"],
        ("infer",): lambda: [str(toy.path), sample],
        ("stress",): lambda: [str(toy.path), "--data", str(synth_root), "--train-trials", train_trials, "--limit", "2",
                              "--faults", "missing", "--modalities", "wifi", "--severities", "0,1",
                              "--out", str(tmp_path_factory.mktemp("stress"))],
    }
    return args


@pytest.mark.parametrize(("path", "option", "value"), _choices(), ids=lambda v: v if isinstance(v, str) else "-".join(v))
def test_every_choice_runs_without_a_traceback(base_args, path, option, value):
    if path not in base_args:
        pytest.fail(f"no base arguments for `rfsense {' '.join(path)}`: add them to this test")
    extra = [option, value]
    if path == ("infer",) and option == "--input-format":  # a capture of some format; the forced one may refuse it
        extra = [str(RECORDINGS / "intel5300" / "sample_0x1_ap.dat"), *extra]
    r = CliRunner().invoke(main, [*path, *base_args[path](), *extra])
    assert r.exit_code in (0, 1), r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert "Traceback" not in r.output
    if r.exit_code == 1:
        assert r.output.strip().splitlines()[-1].startswith("Error: "), r.output


def test_the_walk_covers_the_documented_choices():
    seen = {(p, o) for p, o, _ in _choices()}
    assert (("infer",), "--short") in seen and (("infer",), "--providers") in seen and (("eval",), "--checkpoint") in seen
