from __future__ import annotations

import pytest

from rfsense.config import to_data
from rfsense.errors import ConfigError
from rfsense.train.config import load_config


def test_shipped_configs_load():
    for name in ("xrf55", "xrf55-xfi", "quickstart"):
        cfg = load_config(f"configs/{name}.yaml")
        assert cfg.dagr.enabled and cfg.dagr.mode == "pareto" and cfg.dagr.pareto_space == "params"
    assert load_config("configs/xrf55-xfi.yaml").model.preset == "xfi"
    assert load_config("configs/xrf55-xfi.yaml").model.d == 512  # the preset's sizes, resolved
    assert load_config("configs/xrf55.yaml").data.split.train_trials == tuple(range(1, 15))


def test_overrides_typed(tmp_path):
    cfg = load_config("configs/quickstart.yaml", ["train.epochs=3", "dagr.tau=0.5", "train.keep_prob=[1, 1, 1]",
                                                  "data.split.protocol=volunteers", "model.d=64"])
    assert cfg.train.epochs == 3 and cfg.dagr.tau == 0.5 and cfg.train.keep_prob == (1.0, 1.0, 1.0)
    assert cfg.data.split.protocol == "volunteers" and cfg.model.d == 64
    assert load_config(None).train.epochs == 30  # dataclass defaults
    assert to_data(cfg)["train"]["keep_prob"] == [1.0, 1.0, 1.0]


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.lrr=0.1", r"unknown key 'train.lrr'; allowed: epochs, batch_size, lr"),
        ("dagr.temperature=2", r"unknown key 'dagr.temperature'; allowed: enabled, mode"),
        ("bogus=1", r"unknown key 'bogus'; allowed: name, out_dir, data, model, train, dagr"),
        ("train.epochs=ten", r"train.epochs: must be a valid integer, got 'ten'"),
        ("train.keep_prob=[1, 1]", r"train.keep_prob: tuple should have at least 3 items"),
        ("train.pairing=random", r"train.pairing: must be 'none' or 'dml', got 'random'"),
        ("model.dd=3", r"^unknown key .model.dd.; allowed:"),
        ("model.preset=edg", r"unknown preset 'edg'; available: edge, xfi"),
        ("data.split.protocol=random", r"protocol"),
        ("train.epochs", r"expected key=value"),
    ],
)
def test_config_errors_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config("configs/quickstart.yaml", [override])


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "a.yaml").write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "a.yaml")
    (tmp_path / "b.yaml").write_text("- 1\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(tmp_path / "b.yaml")
