"""Evaluation: accuracy on the 7 modality subsets, test embeddings for the geometry diagnostics."""

from __future__ import annotations

import numpy as np
import torch

from rfsense.data.pack import PackedSplit
from rfsense.modalities import SUBSETS, subset_mask
from rfsense.train.batches import read_rows

__all__ = ["collect_embeddings", "evaluate_subsets", "mean_accuracy"]


@torch.no_grad()
def _forward(model: torch.nn.Module, split: PackedSplit, rows: np.ndarray, present: np.ndarray,
             device: torch.device, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits (N, C) and pooled embeddings (N, 3, d) for `rows` under per-sample `present` masks."""
    model.eval()
    logits, zs = [], []
    for start in range(0, len(rows), batch_size):
        r = rows[start : start + batch_size]
        x = {m: t.to(device) for m, t in read_rows(split, r).items()}
        p = torch.from_numpy(present[start : start + batch_size]).to(device)
        out, z = model.forward_features(x["mmwave"], x["wifi"], x["rfid"], p)
        logits.append(out.float().cpu().numpy())
        zs.append(z.float().cpu().numpy())
    if not logits:
        return np.zeros((0, 0)), np.zeros((0, 3, 0))
    return np.concatenate(logits), np.concatenate(zs)


def evaluate_subsets(
    model: torch.nn.Module, split: PackedSplit, rows: np.ndarray | None = None,
    device: torch.device | str = "cpu", batch_size: int = 32,
) -> dict[str, dict[str, float | int]]:
    """Top-1 accuracy per subset (R, W, RF, R+W, R+RF, W+RF, R+W+RF).

    A subset is scored on the samples whose files for all its modalities are usable, with exactly
    those modalities present. Returns {subset: {'acc': float, 'n': int}}.
    """
    device = torch.device(device)
    rows = np.arange(len(split)) if rows is None else np.asarray(rows)
    usable = split.usable[rows]
    out = {}
    for name, mods in SUBSETS:
        mask = np.array(subset_mask(mods))
        keep = rows[(usable | ~mask).all(axis=1)]
        present = np.broadcast_to(mask, (len(keep), 3)).copy()
        logits, _ = _forward(model, split, keep, present, device, batch_size)
        acc = float((logits.argmax(1) == split.labels[keep]).mean()) if len(keep) else float("nan")
        out[name] = {"acc": acc, "n": int(len(keep))}
    return out


def collect_embeddings(
    model: torch.nn.Module, split: PackedSplit, device: torch.device | str = "cpu", batch_size: int = 32
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z (N, 3, d), present (N, 3), labels (N,)) with every usable modality present."""
    rows = np.flatnonzero(split.usable.any(axis=1))
    present = split.usable[rows].copy()
    _, z = _forward(model, split, rows, present, torch.device(device), batch_size)
    return z, present, split.labels[rows]


def mean_accuracy(result: dict[str, dict[str, float | int]]) -> float:
    """Mean accuracy over the subsets that could be scored (the model-selection criterion)."""
    vals = [v["acc"] for v in result.values() if v["n"]]
    return float(np.mean(vals)) if vals else float("nan")

