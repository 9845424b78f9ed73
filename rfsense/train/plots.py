"""Training-time geometry diagnostics against epochs, as in the DAGR paper's Fig. 2 (`rfsense eval RUN --plots`).

The loop logs, every epoch, the diagnostics of the validation slice to metrics.jsonl (``geometry``:
Δsem, r_eff per modality, drift, fraction of paired distances outside τ); this draws them, with the
validation accuracy, into ``RUN/geometry.png``. matplotlib comes with the ``plots`` extra.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rfsense.errors import DataError, RFSenseError
from rfsense.modalities import LETTERS, MODALITIES

__all__ = ["geometry_curves", "plot_geometry"]


def geometry_curves(run_dir: str | Path) -> dict[str, Any]:
    """Per-epoch series from RUN/metrics.jsonl: epoch, val_mean, semantic_margin (+ per modality),
    effective_rank per modality, drift, outside_tau (None where undefined).

    Raises:
        DataError: no metrics.jsonl, or no epoch with geometry diagnostics (a run without validation rows).
    """
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise DataError(f"{run_dir} has no metrics.jsonl; is it a run folder?")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r.get("geometry")]
    if not rows:
        raise DataError(f"{path} has no per-epoch geometry diagnostics (train.val_fraction 0, or an older run)")
    geo = [r["geometry"] for r in rows]
    return {
        "epoch": [r["epoch"] for r in rows],
        "val_mean": [r.get("val_mean") for r in rows],
        "semantic_margin": [g.get("semantic_margin") for g in geo],
        "semantic_margin_per_modality": {
            m: [(g.get("semantic_margin_per_modality") or {}).get(m) for g in geo] for m in MODALITIES
        },
        "effective_rank": {m: [(g.get("effective_rank") or {}).get(m) for g in geo] for m in MODALITIES},
        "drift": [g.get("drift") for g in geo],
        "outside_tau": [g.get("outside_tau") for g in geo],
        "tau": geo[-1].get("tau"),
    }


def _nan(values: list[Any]) -> list[float]:
    return [float("nan") if v is None else float(v) for v in values]


def plot_geometry(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Draw Δsem, r_eff, drift, fraction outside τ and the validation accuracy against epochs into a PNG.

    Args:
        run_dir: a single run folder (with metrics.jsonl).
        out: the PNG to write; default RUN/geometry.png.

    Returns:
        The path written.

    Raises:
        RFSenseError: matplotlib is not installed (the message names the extra).
        DataError: see ``geometry_curves``.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RFSenseError("plots need matplotlib, which the 'plots' extra installs: pip install 'rfsense[plots]'") from None
    c = geometry_curves(run_dir)
    out = Path(out) if out is not None else Path(run_dir) / "geometry.png"
    ep = c["epoch"]
    fig, axes = plt.subplots(1, 5, figsize=(20, 3.6))
    ax = axes[0]
    ax.plot(ep, _nan(c["semantic_margin"]), "k-", lw=2, label="mean")
    for m in MODALITIES:
        ax.plot(ep, _nan(c["semantic_margin_per_modality"][m]), "--", label=LETTERS[m])
    ax.set_title("(a) semantic margin $\\Delta_{sem}$")
    ax.legend(fontsize=8)
    ax = axes[1]
    for m in MODALITIES:
        ax.plot(ep, _nan(c["effective_rank"][m]), label=LETTERS[m])
    ax.set_title("(b) effective rank $r_{eff}$")
    ax.legend(fontsize=8)
    axes[2].plot(ep, _nan(c["drift"]), "C3")
    axes[2].set_title("(c) cross-modal drift $d_{drift}$")
    axes[3].plot(ep, _nan(c["outside_tau"]), "C4")
    axes[3].set_ylim(-0.02, 1.02)
    axes[3].set_title(f"(d) fraction of pairs outside $\\tau$ = {c['tau']:g}" if c["tau"] is not None else "(d) outside tau")
    axes[4].plot(ep, [100 * v for v in _nan(c["val_mean"])], "C2")
    axes[4].set_title("validation accuracy, mean of 7 subsets (%)")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    fig.suptitle(f"{Path(run_dir).name}: geometry of the validation slice per epoch (DAGR Fig. 2)", fontsize=10)
    fig.tight_layout()
    tmp = out.with_name(out.name + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(out)
    return out
