"""A stress run's numbers for people and programs: summary metrics, results.json/.csv, report.md, PNG curves.

Summary per model (health checks on, the deployed behaviour):

- clean accuracy: all sensors, no fault;
- mean accuracy under corruption: over every fault x target x severity >= 1 cell;
- relative robustness: mean corrupted accuracy / clean accuracy;
- mCE against the first model (ImageNet-C): per fault and target, the summed error over severities 1-5
  divided by the first model's; mCE is their mean (100 % = as robust as the first model, lower is better).
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rfsense._io import atomic_write_json, atomic_write_text
from rfsense.config import to_data
from rfsense.data.faults import FAULTS
from rfsense.deploy.stress.runner import Cell, Tally

__all__ = ["summarise", "summary_table", "write_report"]

_logger = logging.getLogger(__name__)


def _acc(t: Tally | None) -> float | None:
    return t.correct / t.n if t is not None and t.n else None


def _baseline(tallies: dict[tuple[str, Cell, str], Tally], name: str, targets: tuple[str, ...]) -> float | None:
    """Severity 0 of a curve: the target alone when the run measured sensors alone, else all sensors clean."""
    alone = tallies.get((name, Cell("clean", targets, 0), "on"))
    return _acc(alone) if alone is not None else _acc(tallies.get((name, Cell("clean", (), 0), "on")))


def summarise(tallies: dict[tuple[str, Cell, str], Tally], names: Sequence[str]) -> list[dict[str, Any]]:
    """Per model: clean accuracy, mean accuracy under corruption, relative robustness, mCE vs names[0]."""
    faulty = sorted({c for _, c, _ in tallies if c.kind not in ("clean", "absent")}, key=_cell_order)
    out = []
    for name in names:
        clean = _acc(tallies.get((name, Cell("clean", (), 0), "on")))
        accs = [a for c in faulty if (a := _acc(tallies.get((name, c, "on")))) is not None]
        mean = float(np.mean(accs)) if accs else None
        ces = []
        for fault, targets in sorted({(c.fault, c.targets) for c in faulty}):
            err = [1 - a for c in faulty if (c.fault, c.targets) == (fault, targets)
                   if (a := _acc(tallies.get((name, c, "on")))) is not None]
            ref = [1 - a for c in faulty if (c.fault, c.targets) == (fault, targets)
                   if (a := _acc(tallies.get((names[0], c, "on")))) is not None]
            if err and ref and len(err) == len(ref) and sum(ref) > 0:
                ces.append(sum(err) / sum(ref))
        out.append({
            "model": name,
            "clean_accuracy": clean,
            "mean_corrupted_accuracy": mean,
            "relative_robustness": mean / clean if mean is not None and clean else None,
            "mce": float(np.mean(ces)) if ces else None,
            "n_cells": len(accs),
        })
    return out


def _cell_order(c: Cell) -> tuple:
    kinds = ("clean", "absent", "features", "stream", "joint")
    names = list(FAULTS)
    return (kinds.index(c.kind), names.index(c.fault) if c.fault in names else -1, c.label, c.severity)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def summary_table(summary: list[dict[str, Any]]) -> str:
    head = f"{'model':<24}{'clean %':>9}{'corrupted %':>13}{'rel. robust.':>14}{'mCE %':>8}{'cells':>7}"
    lines = [head, "-" * len(head)]
    for s in summary:
        rr = "-" if s["relative_robustness"] is None else f"{s['relative_robustness']:.3f}"
        lines.append(f"{s['model'][:23]:<24}{_pct(s['clean_accuracy']):>9}{_pct(s['mean_corrupted_accuracy']):>13}"
                     f"{rr:>14}{_pct(s['mce']):>8}{s['n_cells']:>7}")
    return "\n".join(lines)


def _rows(tallies: dict[tuple[str, Cell, str], Tally]) -> list[dict[str, Any]]:
    rows = []
    for (name, cell, mode), t in sorted(tallies.items(), key=lambda kv: (kv[0][0], _cell_order(kv[0][1]), kv[0][2])):
        rows.append({
            "model": name, "fault": cell.fault, "kind": cell.kind, "targets": cell.label, "severity": cell.severity,
            "health": mode, "n": t.n, "correct": t.correct, "accuracy": _acc(t), "nonfinite": t.nonfinite,
            "statuses": dict(sorted(t.statuses.items())),
        })
    return rows


def _fault_tables(tallies: dict[tuple[str, Cell, str], Tally], names: Sequence[str], severities: Sequence[int]) -> str:
    """Markdown: per fault, a row per (target, model, health) with accuracy at each severity, and the target absent."""
    cells = sorted({c for _, c, _ in tallies}, key=_cell_order)
    out = []
    for fault in dict.fromkeys(c.fault for c in cells if c.kind not in ("clean", "absent")):
        f = FAULTS[fault]
        out += [f"### {fault}", "", f.summary, "",
                "| severity | " + " | ".join(str(s) for s in severities) + " |",
                "|---|" + "---|" * len(severities),
                "| meaning | " + " | ".join("clean" if s == 0 else f.levels[s - 1] for s in severities) + " |", "",
                "| target | model | health | " + " | ".join(f"s{s}" for s in severities) + " | target absent |",
                "|---|---|---|" + "---|" * (len(severities) + 1)]
        for targets in dict.fromkeys(c.targets for c in cells if c.fault == fault):
            label = Cell(fault, targets, 1).label
            absent = None if len(targets) != 1 else Cell("absent", targets, 0)
            for name in names:
                for mode in ("on", "off"):
                    vals = [_baseline(tallies, name, targets) if s == 0 else _acc(tallies.get((name, Cell(fault, targets, s), mode)))
                            for s in severities]
                    if all(v is None for v in vals[1:] if len(vals) > 1):
                        continue
                    ab = _acc(tallies.get((name, absent, "on"))) if absent else None
                    out.append(f"| {label} | {name} | {mode} | " + " | ".join(_pct(v) for v in vals) + f" | {_pct(ab)} |")
        out.append("")
    return "\n".join(out)


def _plots(tallies: dict[tuple[str, Cell, str], Tally], names: Sequence[str], severities: Sequence[int],
           out: Path) -> list[str]:
    """One PNG per fault: a panel per target (as the DAGR paper's Fig. 8-10), a line per model and health mode."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        _logger.warning("no curves drawn: matplotlib is missing (pip install 'rfsense[plots]')")
        return []
    cells = sorted({c for _, c, _ in tallies}, key=_cell_order)
    files = []
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for fault in dict.fromkeys(c.fault for c in cells if c.kind not in ("clean", "absent")):
        target_sets = list(dict.fromkeys(c.targets for c in cells if c.fault == fault))
        fig, axes = plt.subplots(1, len(target_sets), figsize=(3.6 * len(target_sets), 3.2), squeeze=False, sharey=True)
        for ax, targets in zip(axes[0], target_sets, strict=True):
            for k, name in enumerate(names):
                for mode, style in (("on", "-"), ("off", "--")):
                    ys = [_baseline(tallies, name, targets) if s == 0 else _acc(tallies.get((name, Cell(fault, targets, s), mode)))
                          for s in severities]
                    if all(y is None for y in ys[1:]):
                        continue
                    ax.plot(severities, [np.nan if y is None else 100 * y for y in ys], style, marker="o", ms=3,
                            color=colours[k % len(colours)], label=f"{name} (health {mode})")
                if len(targets) == 1 and (ab := _acc(tallies.get((name, Cell("absent", targets, 0), "on")))) is not None:
                    ax.axhline(100 * ab, ls=":", color=colours[k % len(colours)], lw=1, label=f"{name}: absent")
            ax.set_title(f"{fault}: {Cell(fault, targets, 1).label}")
            ax.set_xlabel("severity")
            ax.set_xticks(list(severities))
            ax.grid(alpha=0.3)
        axes[0][0].set_ylabel("accuracy (%)")
        axes[0][-1].legend(fontsize=6, loc="lower left")
        fig.tight_layout()
        path = out / f"curves_{fault}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        files.append(path.name)
    return files


def write_report(out: Path, tallies: dict[tuple[str, Cell, str], Tally], names: Sequence[str],
                 sources: Sequence[str], severities: Sequence[int], options: dict[str, Any]) -> dict[str, Any]:
    """Write results.json, results.csv, report.md and the curves into `out`; returns the results."""
    out.mkdir(parents=True, exist_ok=True)
    summary = summarise(tallies, names)
    rows = _rows(tallies)
    used = sorted({r["fault"] for r in rows if r["fault"] in FAULTS})
    results = to_data({
        "models": [{"name": n, "source": s} for n, s in zip(names, sources, strict=True)],
        "options": options,
        "summary": summary,
        "faults": {f: {"kind": FAULTS[f].kind, "param": FAULTS[f].param, "values": FAULTS[f].values,
                       "levels": FAULTS[f].levels, "summary": FAULTS[f].summary} for f in used},
        "cells": rows,
    })
    atomic_write_json(out / "results.json", results)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["model", "fault", "kind", "targets", "severity", "health", "n", "correct", "accuracy", "nonfinite", "statuses"])
    for r in rows:
        w.writerow([r["model"], r["fault"], r["kind"], r["targets"], r["severity"], r["health"], r["n"], r["correct"],
                    "" if r["accuracy"] is None else f"{r['accuracy']:.6f}", r["nonfinite"],
                    ";".join(f"{k}={v}" for k, v in r["statuses"].items())])
    atomic_write_text(out / "results.csv", buf.getvalue())
    pngs = _plots(tallies, names, severities, out)
    md = ["# Stress report", "", f"Models: {', '.join(f'`{n}` ({s})' for n, s in zip(names, sources, strict=True))}.",
          f"Options: {json.dumps(to_data(options))}", "",
          "How to read it: `health on` is the deployed behaviour (checks repair or mask a stream); `health off` feeds "
          "the corrupted stream as it is; `target absent` is the same sample without that sensor. Where `off` beats "
          "`on`, the checks mask too eagerly; where `absent` beats `on`, a corrupted stream hurts more than a missing "
          "one and the checks should catch it. mCE is relative to the first model (100 % = as robust).", "",
          "## Summary", "", "```", summary_table(summary), "```", ""]
    md += [f"![{p}]({p})" for p in pngs] + ([""] if pngs else [])
    md += ["## Accuracy (%) per fault", "", _fault_tables(tallies, names, severities)]
    atomic_write_text(out / "report.md", "\n".join(md) + "\n")
    return results
