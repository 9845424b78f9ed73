"""Training protocol: DML partners from training rows only, per-batch presence, X-Fi's two stages,
per-epoch geometry diagnostics and their plots."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rfsense.errors import ConfigError
from rfsense.train import batches as batches_mod
from rfsense.train.batches import draw_presence, sample_batch_presence
from rfsense.train.checkpoint import load_checkpoint
from rfsense.train.loop import _split_rows, fit
from tests.conftest import tiny_config


def test_dml_never_reads_a_validation_row(synth_root, synth_pack, tmp_path, monkeypatch):
    """Every row any training step reads (own or DML partner, any modality) is a training row."""
    read: list[np.ndarray] = []
    real = batches_mod.read_rows

    def spy(split, rows):
        if len(split) == 32:  # the training split of the tiny set (evaluation reads the test split too)
            read.append(np.asarray(rows).ravel().copy())
        return real(split, rows)

    monkeypatch.setattr("rfsense.train.loader.read_rows", spy)
    cfg = tiny_config(synth_root, tmp_path, epochs=2, val_fraction=0.25, pairing="dml", threads=1)
    fit(cfg)
    train_rows, val_rows = _split_rows(np.ones(32, bool), 32, 0.25, cfg.train.seed)
    seen = np.concatenate(read)
    assert len(val_rows) == 8 and seen.size >= 2 * 3 * len(train_rows)  # 2 epochs x 3 modalities, every row
    assert not np.isin(seen, val_rows).any(), sorted(set(seen[np.isin(seen, val_rows)].tolist()))
    assert set(seen.tolist()) <= set(train_rows.tolist())


def test_per_batch_presence_is_one_subset_per_batch():
    rng = np.random.default_rng(0)
    usable = np.ones((16, 3), dtype=bool)
    draws = [sample_batch_presence(rng, usable, (0.5, 0.9, 0.6)) for _ in range(400)]
    for p in draws:
        assert (p == p[0]).all() and p[0].any()  # one non-empty subset for the whole batch
    firsts = np.array([p[0] for p in draws])
    assert len({tuple(r) for r in firsts}) >= 5  # the subset changes from batch to batch
    assert abs(firsts[:, 0].mean() - 0.5 / (1 - 0.5 * 0.1 * 0.4)) < 0.08  # Bernoulli(0.5), empty draws redrawn
    per_sample = draw_presence(rng, usable, (0.5, 0.9, 0.6), "per_sample")
    assert len({tuple(r) for r in per_sample}) > 1  # the other mode really draws per sample


def test_per_batch_presence_keeps_samples_with_data():
    rng = np.random.default_rng(1)
    usable = np.array([[1, 1, 1], [0, 0, 1], [0, 0, 0]], dtype=bool)
    for _ in range(50):
        p = sample_batch_presence(rng, usable, (0.5, 0.9, 0.0))  # RFID never drawn
        assert not (p & ~usable).any() and p[0].any() and p[1, 2] and not p[2].any()


def test_per_epoch_geometry_and_plots(synth_root, synth_pack, tmp_path):
    from click.testing import CliRunner

    from rfsense.cli import main

    cfg = tiny_config(synth_root, tmp_path, epochs=2, val_fraction=0.25, threads=1, presence="per_batch")
    fit(cfg)
    rows = [json.loads(line) for line in (cfg.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    for r in rows:
        geo = r["geometry"]
        assert set(geo["effective_rank"]) == {"mmwave", "wifi", "rfid"} and geo["n"] == 8
        assert geo["semantic_margin"] is not None and geo["drift"] >= 0 and 0 <= geo["outside_tau"] <= 1
        assert 0 <= r["alpha_gap"] <= 1  # |alpha*(embeddings) - alpha*(params)|, logged in pareto/params
    r = CliRunner().invoke(main, ["eval", str(cfg.run_dir), "--plots"])
    assert r.exit_code == 0, r.output
    png = cfg.run_dir / "geometry.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_xfi_protocol_freezes_exactly_the_backbones(synth_root, synth_pack, tmp_path):
    cfg = tiny_config(synth_root, tmp_path, name="xfi", epochs=1, threads=1, stage="xfi", backbones_epochs=2)
    result = fit(cfg)
    stage1 = load_checkpoint(cfg.run_dir / "backbones" / "best.pt")["model"]
    stage2 = load_checkpoint(cfg.run_dir / "best.pt")["model"]
    from rfsense.models import build_model

    model = build_model(cfg.model)
    names = {id(p): n for n, p in model.named_parameters()}
    backbone = {names[id(p)] for p in model.backbone_parameters()}
    projector = {names[id(p)] for p in model.projector_parameters()}
    fusion = {names[id(p)] for p in model.fusion.parameters()} | {names[id(p)] for p in model.head.parameters()}
    assert backbone and projector and not backbone & projector
    for n in backbone:  # frozen in stage 2: bit-identical to stage 1
        assert torch.equal(stage1[n], stage2[n]), n
    assert all(not torch.equal(stage1[n], stage2[n]) for n in projector)  # DAGR's theta_e: trained
    assert sum(not torch.equal(stage1[n], stage2[n]) for n in fusion) == len(fusion)
    # Stage 1 trains only the encoders and their unimodal heads; the fusion keeps its initial values.
    torch.manual_seed(cfg.train.seed)
    init = build_model(cfg.model).state_dict()
    assert all(torch.equal(stage1[n], init[n]) for n in fusion)
    assert set(result["subsets"]) == {"R", "W", "RF", "R+W", "R+RF", "W+RF", "R+W+RF"}
    rows = [json.loads(line) for line in (cfg.run_dir / "backbones" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(r["alpha"] is None for r in rows)  # no DAGR in stage 1


def test_fusion_stage_needs_a_backbones_run(synth_root, trained_run, tmp_path):
    with pytest.raises(ConfigError, match="stage fusion needs backbones"):
        tiny_config(synth_root, tmp_path, stage="fusion")
    cfg = tiny_config(synth_root, tmp_path, stage="fusion", backbones=str(trained_run))
    with pytest.raises(ConfigError, match="is a 'joint' run; expected a backbones-stage run"):
        fit(cfg)
