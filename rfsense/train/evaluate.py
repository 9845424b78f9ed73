"""Evaluation: accuracy on the 7 modality subsets, test embeddings for the geometry diagnostics, and
`evaluate_run` (`rfsense eval RUN`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from rfsense.data.pack import PackedSplit
from rfsense.modalities import SUBSETS, subset_mask
from rfsense.train.batches import read_rows
from rfsense.train.diagnostics import geometry_diagnostics
from rfsense.train.report import aggregate_seeds
from rfsense.train.rundir import load_run_model, open_run_pack, seed_runs, write_results

__all__ = ["collect_embeddings", "eval_head", "evaluate_run", "evaluate_subsets", "mean_accuracy", "validation_report"]


@torch.no_grad()
def _score(model: torch.nn.Module, split: PackedSplit, rows: np.ndarray, masks: np.ndarray,
           device: torch.device, batch_size: int, head: str = "fusion") -> tuple[np.ndarray, np.ndarray]:
    """Logits (S, N, C) under each of the S presence masks (S, 3), and embeddings z (N, 3, d).

    Each batch is encoded once, with every usable modality, and fused once per mask: the fusion
    ignores absent modalities' tokens, so this equals a full forward per mask at 1/S of the cost.
    ``head="unimodal"`` scores with the unimodal heads averaged over the mask (``RFSenseNet.unimodal_average``),
    how a backbones-stage run is evaluated.
    """
    model.eval()
    fuse = model.unimodal_average if head == "unimodal" else model.fuse
    logits, zs = [], []
    for start in range(0, len(rows), batch_size):
        r = rows[start : start + batch_size]
        x = {m: t.to(device) for m, t in read_rows(split, r).items()}
        usable = torch.from_numpy(split.usable[r]).to(device)
        tokens, z = model.encode(x["mmwave"], x["wifi"], x["rfid"], usable)
        per_mask = [fuse(tokens, usable & torch.from_numpy(m).to(device)).float().cpu().numpy() for m in masks]
        logits.append(np.stack(per_mask) if per_mask else np.zeros((0, len(r), 0)))
        zs.append(z.float().cpu().numpy())
    if not logits:
        return np.zeros((len(masks), 0, 0)), np.zeros((0, 3, 0))
    return np.concatenate(logits, axis=1), np.concatenate(zs)


def _subset_scores(
    model: torch.nn.Module, split: PackedSplit, rows: np.ndarray | None, device: torch.device | str,
    batch_size: int, head: str,
) -> tuple[dict[str, dict[str, float | int]], np.ndarray, np.ndarray]:
    """({subset: {'acc', 'n'}}, z (N, 3, d), rows scored (N,)) in one pass over `rows`."""
    rows = np.arange(len(split)) if rows is None else np.asarray(rows)
    rows = rows[split.usable[rows].any(axis=1)]
    masks = np.array([subset_mask(mods) for _, mods in SUBSETS])
    logits, z = _score(model, split, rows, masks, torch.device(device), batch_size, head)
    usable = split.usable[rows]
    out = {}
    for (name, _), mask, lg in zip(SUBSETS, masks, logits, strict=True):
        keep = (usable | ~mask).all(axis=1)
        n = int(keep.sum())
        acc = float(np.mean(lg[keep].argmax(1) == split.labels[rows[keep]])) if n else float("nan")
        out[name] = {"acc": acc, "n": n}
    return out, z, rows


def evaluate_subsets(
    model: torch.nn.Module, split: PackedSplit, rows: np.ndarray | None = None,
    device: torch.device | str = "cpu", batch_size: int = 32, head: str = "fusion",
) -> dict[str, dict[str, float | int]]:
    """Top-1 accuracy per subset (R, W, RF, R+W, R+RF, W+RF, R+W+RF).

    A subset is scored on the samples whose files for all its modalities are usable, with exactly
    those modalities present. ``head``: "fusion" (the model's output) or "unimodal" (the unimodal heads
    averaged over the subset; backbones-stage runs). Returns {subset: {'acc': float, 'n': int}}.
    """
    return _subset_scores(model, split, rows, device, batch_size, head)[0]


def validation_report(
    model: torch.nn.Module, split: PackedSplit, rows: np.ndarray, device: torch.device | str = "cpu",
    batch_size: int = 32, tau: float = 0.25, head: str = "fusion",
) -> tuple[dict[str, dict[str, float | int]], dict[str, Any] | None]:
    """Subset accuracies and the geometry diagnostics (Δsem, r_eff, drift, fraction outside τ) of `rows`,
    from one pass: what the loop logs per epoch on its validation slice. Geometry is None with < 2 rows."""
    subsets, z, scored = _subset_scores(model, split, rows, device, batch_size, head)
    if len(scored) < 2:
        return subsets, None
    return subsets, geometry_diagnostics(z, split.usable[scored], split.labels[scored], tau=tau)


def collect_embeddings(
    model: torch.nn.Module, split: PackedSplit, device: torch.device | str = "cpu", batch_size: int = 32
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z (N, 3, d), present (N, 3), labels (N,)) with every usable modality present."""
    rows = np.flatnonzero(split.usable.any(axis=1))
    _, z = _score(model, split, rows, np.zeros((0, 3), bool), torch.device(device), batch_size)
    return z, split.usable[rows].copy(), split.labels[rows]


def eval_head(stage: str) -> str:
    """How a run of `train.stage` is scored: a backbones-stage run has only its unimodal heads trained."""
    return "unimodal" if stage == "backbones" else "fusion"


def mean_accuracy(result: dict[str, dict[str, float | int]]) -> float:
    """Mean accuracy over the subsets that could be scored (the model-selection criterion)."""
    vals = [v["acc"] for v in result.values() if v["n"]]
    return float(np.mean(vals)) if vals else float("nan")



def evaluate_run(run_dir: str | Path, device: torch.device | str = "cpu", which: str = "best") -> dict[str, Any]:
    """Evaluate a finished run's checkpoint on the test split; writes results.json and results.txt.

    A folder of seed runs (seed*/ with results) is aggregated into mean ± std instead.
    """
    run_dir = Path(run_dir)
    seeds = seed_runs(run_dir)
    if seeds and not (run_dir / "config.yaml").is_file():
        agg = aggregate_seeds([evaluate_run(p, device, which) for p in seeds])
        agg["seeds"] = [p.name for p in seeds]
        return write_results(run_dir, agg, title=f"{run_dir.name} ({len(seeds)} seeds)")
    model, cfg = load_run_model(run_dir, which)
    device = torch.device(device)
    model.to(device)
    test = open_run_pack(cfg).split("test")
    subsets = evaluate_subsets(model, test, None, device, cfg.train.eval_batch_size, eval_head(cfg.train.stage))
    z, present, labels = collect_embeddings(model, test, device, cfg.train.eval_batch_size)
    result = {
        "run": str(run_dir),
        "checkpoint": which,
        "subsets": {k: v["acc"] for k, v in subsets.items()},
        "n": {k: v["n"] for k, v in subsets.items()},
        "geometry": geometry_diagnostics(z, present, labels, tau=cfg.dagr.tau),
    }
    return write_results(run_dir, result, title=run_dir.name)
