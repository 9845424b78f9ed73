"""Learning quality on synthetic data: the probe, every training recipe, all 7 subsets, training time.

    make bench-learning                                  # = python benchmarks/bench_learning.py --results
    python benchmarks/bench_learning.py --plan           # the grid, and which runs are cached
    python benchmarks/bench_learning.py --jobs 2 --results
    python benchmarks/bench_learning.py --only screen    # one phase: probe, study, screen, seeds

Two synthetic sets in the XRF55 layout, official trial split (trials 1-14 train, 15-20 test):
``small`` is the quick start's set (2 volunteers x 10 actions x 20 trials), ``medium`` 4 x 20 x 20.
For each set: the training-free probe, then the recipes below on all 7 modality subsets with their
training time. It screens: every recipe with one seed first, then 3 seeds (mean ± std) for the best two
recipes of the screen, the default, and the no-DAGR baseline (DAGR against no DAGR on the same seeds, in
the layout of the DAGR paper's Table 4). The studies (one seed, small set) measure single modalities
alone (why WiFi learns less than RFID), and the DAGR kernel temperature t.

Every run is an ordinary run folder under ``runs/bench-learning/<set>/<run>/``, trained by a
subprocess (``nice -n 15``, one torch thread each: the machine is shared) with
``rfsense train --resume`` when it was interrupted; a finished run (results.json) is never trained
again, so the benchmark resumes where it stopped. Delete a run folder to redo it. The grid is sized
for a 2-core CPU: about 5 hours with ``--jobs 2`` on a machine that other jobs share (see RESULTS.md).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import functools
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._results import machine_line, write_section  # noqa: E402
from rfsense.modalities import SUBSETS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "bench-learning"
RUNS = ROOT / "runs" / "bench-learning"
SUBSET_NAMES = [name for name, _ in SUBSETS]
SEEDS = (0, 1, 2)


@dataclass(frozen=True)
class DataSet:
    volunteers: int
    actions: int
    trials: int
    epochs: int  # epochs of a joint run on this set (sized for the CPU budget; see the module docstring)
    seed: int = 0


SETS: dict[str, DataSet] = {
    "small": DataSet(volunteers=2, actions=10, trials=20, epochs=30),
    "medium": DataSet(volunteers=4, actions=20, trials=20, epochs=20),
}


@dataclass(frozen=True)
class Recipe:
    """A training recipe: `--set` overrides on the base config below."""

    summary: str
    overrides: dict[str, Any] = field(default_factory=dict)
    sets: tuple[str, ...] = ("small", "medium")
    phase: str = "screen"  # "screen": compared on all 7 subsets; "study": one question, one seed, small set


# The base of every run: the shipped defaults (edge preset, DAGR pareto/params, ...) with the set's epochs.
BASE: dict[str, Any] = {
    "train": {"batch_size": 16, "lr": 1e-3, "warmup_epochs": 1, "val_fraction": 0.1, "threads": 1, "log_every": 0},
}

def _alone(m: int, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """One modality alone: the others never present, DAGR off (it needs two modalities)."""
    keep = [0.0, 0.0, 0.0]
    keep[m] = 1.0
    return {"train.keep_prob": keep, "dagr.enabled": False, **(extra or {})}


RECIPES: dict[str, Recipe] = {
    # Screened on both sets, all 7 subsets. One of them is the code's default (marked in the tables).
    "per-batch": Recipe("joint, X-Fi fusion, DAGR pareto/params, one modality subset per batch (X-Fi)",
                        {"train.presence": "per_batch"}),
    "per-sample": Recipe("as per-batch, but every sample draws its own subset", {"train.presence": "per_sample"}),
    # The variants below change one thing against per-batch (X-Fi's presence draw; it was the default when they
    # were first trained), so each compares with the per-batch row.
    "no-dagr": Recipe("per-batch without DAGR", {"train.presence": "per_batch", "dagr.enabled": False}),
    "dml": Recipe("per-batch with DML same-class re-pairing", {"train.presence": "per_batch", "train.pairing": "dml"}),
    "late": Recipe("per-batch with decision-level (late) fusion", {"train.presence": "per_batch", "model.fusion": "late"}),
    "xfi": Recipe("X-Fi protocol: backbones alone, then projectors + fusion on the frozen backbones, DAGR",
                  {"train.presence": "per_batch", "train.stage": "xfi"}),
    # Stage 2 without DAGR on the very backbones of `xfi` (same seed): DAGR is the only difference.
    "xfi-no-dagr": Recipe("X-Fi protocol without DAGR (stage 2 on xfi's backbones)",
                          {"train.presence": "per_batch", "train.stage": "fusion", "dagr.enabled": False}),
    # Studies: one question each, one seed, small set.
    "R-alone": Recipe("mmWave alone, Doppler-time profile (default)", _alone(0), ("small",), "study"),
    "R-heatmap": Recipe("mmWave alone, raw heatmap, patch 8",
                        _alone(0, {"model.mmwave_frontend": "raw"}), ("small",), "study"),
    "R-heatmap-patch4": Recipe("mmWave alone, raw heatmap, patch 4",
                               _alone(0, {"model.mmwave_frontend": "raw", "model.mmwave_patch": 4}), ("small",), "study"),
    "W-alone": Recipe("WiFi alone, ratio spectrogram (default)", _alone(1), ("small",), "study"),
    "W-spectrogram": Recipe("WiFi alone, spectrogram without the NIC-gain ratio",
                            _alone(1, {"model.wifi_frontend": "spectrogram"}), ("small",), "study"),
    "W-raw": Recipe("WiFi alone, raw amplitude (the old default)", _alone(1, {"model.wifi_frontend": "raw"}),
                    ("small",), "study"),
    "W-raw-static": Recipe("WiFi alone, raw amplitude, static paths removed",
                           _alone(1, {"model.wifi_frontend": "raw", "data.preprocessing.wifi.remove_static": True}),
                           ("small",), "study"),
    "RF-alone": Recipe("RFID alone, phasor (default)", _alone(2), ("small",), "study"),
    "RF-raw": Recipe("RFID alone, unwrapped phase (the old default)", _alone(2, {"model.rfid_frontend": "raw"}),
                     ("small",), "study"),
    "t=0.5": Recipe("DAGR t = 0.5", {"dagr.t": 0.5}, ("small",), "study"),
    "t=1": Recipe("DAGR t = 1", {"dagr.t": 1.0}, ("small",), "study"),
    "t=4": Recipe("DAGR t = 4", {"dagr.t": 4.0}, ("small",), "study"),
    "embeddings": Recipe("DAGR alpha* from z-gradients (approximation)", {"dagr.pareto_space": "embeddings"},
                         ("small",), "study"),
}
SINGLE = {"R-alone": "R", "R-heatmap": "R", "R-heatmap-patch4": "R", "W-alone": "W", "W-spectrogram": "W", "W-raw": "W",
          "W-raw-static": "W", "RF-alone": "RF", "RF-raw": "RF"}  # the one subset a single-modality study scores
ALWAYS_SEEDED = ("no-dagr",)  # besides the default: DAGR against no DAGR on the same seeds (Table 4 layout)
DEPENDS = {"xfi-no-dagr": "xfi"}  # trains stage 2 on the backbones of that recipe's run (same seed)


# ------------------------------------------------------------------------------------------------ runs


def run_name(recipe: str, seed: int) -> str:
    return f"{recipe.replace('=', '').replace('.', '')}-s{seed}"


def run_dir(set_name: str, recipe: str, seed: int) -> Path:
    return RUNS / set_name / run_name(recipe, seed)


def finished(path: Path) -> bool:
    return (path / "results.json").is_file()


def config_path(set_name: str) -> Path:
    """The base config of a set, written once (the runs' own config.yaml holds what each resolved to)."""
    ds = SETS[set_name]
    tree = json.loads(json.dumps(BASE))
    tree["name"] = "base"
    tree["out_dir"] = str(RUNS / set_name)
    tree["data"] = {"root": str(DATA / set_name)}
    tree["train"]["epochs"] = ds.epochs
    path = RUNS / set_name / "base.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(tree, sort_keys=False)
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)
    return path


def overrides(set_name: str, recipe: str, seed: int) -> list[str]:
    """The run's `--set` overrides on the set's base config."""
    sets: dict[str, Any] = {**RECIPES[recipe].overrides, "train.seed": seed, "name": run_name(recipe, seed)}
    if recipe in DEPENDS:
        sets["train.backbones"] = str(run_dir(set_name, DEPENDS[recipe], seed) / "backbones")
    return [f"{k}={json.dumps(v)}" for k, v in sets.items()]


def train_command(set_name: str, recipe: str, seed: int) -> list[str]:
    cmd = ["nice", "-n", "15", sys.executable, "-m", "rfsense", "-q", "train", str(config_path(set_name))]
    for item in overrides(set_name, recipe, seed):
        cmd += ["--set", item]
    if run_dir(set_name, recipe, seed).exists():
        cmd.append("--resume")
    return cmd


_DONE: dict[tuple[str, str, int], threading.Event] = {}


def train(set_name: str, recipe: str, seed: int) -> tuple[str, str, int, float, str]:
    """Train one run in a subprocess unless it is finished; returns (set, recipe, seed, seconds, error).

    A run that needs another one's backbones waits for it (the other worker is training it)."""
    path = run_dir(set_name, recipe, seed)
    try:
        if finished(path):
            return set_name, recipe, seed, 0.0, ""
        if recipe in DEPENDS:
            dep = (set_name, DEPENDS[recipe], seed)
            _DONE.setdefault(dep, threading.Event()).wait()
            if not finished(run_dir(*dep) / "backbones"):
                return set_name, recipe, seed, 0.0, f"needs the backbones of {run_name(*dep[1:])}, which failed"
        t0 = time.monotonic()
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
        proc = subprocess.run(train_command(set_name, recipe, seed), cwd=ROOT, env=env, capture_output=True, text=True)
        err = "" if proc.returncode == 0 else (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        return set_name, recipe, seed, time.monotonic() - t0, err
    finally:
        _DONE.setdefault((set_name, recipe, seed), threading.Event()).set()


@functools.cache
def default_recipe(set_name: str) -> str:
    """The screened recipe whose resolved config is the code's default (the base config unchanged)."""
    from rfsense.train.config import config_tree, load_config

    def tree(items: list[str]) -> dict[str, Any]:
        t = config_tree(load_config(config_path(set_name), items))
        t.pop("name")
        return t

    base = tree(["train.seed=0"])
    for name, rec in RECIPES.items():
        if rec.phase == "screen" and set_name in rec.sets and tree(overrides(set_name, name, 0)[:-1]) == base:
            return name
    raise SystemExit(f"no screened recipe equals the default config on {set_name}: add one")


def ensure_data(set_name: str) -> Path:
    from rfsense.data.synth import SynthConfig, synthesize

    ds = SETS[set_name]
    root = DATA / set_name
    synthesize(root, SynthConfig(seed=ds.seed, volunteers=ds.volunteers, actions=ds.actions, trials=ds.trials),
               workers=2)
    return root


def probe(set_name: str) -> dict[str, float]:
    """The nearest-class-mean probe of the set (cached in runs/bench-learning/<set>/probe.json)."""
    from rfsense.data.probe import probe_accuracy

    path = RUNS / set_name / "probe.json"
    if path.is_file():
        return json.loads(path.read_text())
    t0 = time.monotonic()
    acc = probe_accuracy(ensure_data(set_name))
    acc["seconds"] = round(time.monotonic() - t0, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(acc, indent=2))
    return acc


def _softmax_regression(x: np.ndarray, y: np.ndarray, n_classes: int, l2: float) -> np.ndarray:
    """(d + 1, C) weights of a multinomial logistic regression with an L2 penalty (L-BFGS, standardised x)."""
    from scipy.optimize import minimize

    n, d = x.shape
    xb = np.hstack([x, np.ones((n, 1))])
    onehot = np.eye(n_classes)[y]

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        w = w.reshape(d + 1, n_classes)
        z = xb @ w
        z -= z.max(1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(1, keepdims=True))
        reg = 0.5 * l2 * (w[:-1] ** 2).sum()
        grad = xb.T @ (np.exp(logp) - onehot) / n
        grad[:-1] += l2 * w[:-1]
        return float(-(onehot * logp).sum() / n + reg), grad.ravel()

    res = minimize(loss, np.zeros((d + 1) * n_classes), jac=True, method="L-BFGS-B", options={"maxiter": 300})
    return res.x.reshape(d + 1, n_classes)


def linear_probe(set_name: str) -> dict[str, float]:
    """A discriminative learner on the probe's own fixed features: softmax regression per modality, its L2
    weight chosen on a 10 % validation slice of the training split (like best.pt), scored on the test split.
    It shows how much of the gap between a trained network and the nearest-class-mean probe is the data
    size rather than the network (cached in runs/bench-learning/<set>/linear_probe.json)."""
    from rfsense.data.layout import SplitSpec, discover, split_samples
    from rfsense.data.probe import features
    from rfsense.modalities import MODALITIES

    path = RUNS / set_name / "linear_probe.json"
    if path.is_file():
        return json.loads(path.read_text())
    parts = split_samples(discover(ensure_data(set_name)).samples, SplitSpec())
    feats, labels = {}, {}
    for part, group in parts.items():
        rows = [features({m: np.load(s.files[m]) for m in MODALITIES}) for s in group]
        feats[part] = {m: np.stack([r[m] for r in rows]) for m in MODALITIES}
        labels[part] = np.array([s.label for s in group])
    classes = np.unique(labels["train"])
    y = np.searchsorted(classes, labels["train"])
    y_test = np.searchsorted(classes, labels["test"])
    rng = np.random.default_rng(0)
    val = rng.permutation(len(y))[: len(y) // 10]
    fit = np.setdiff1d(np.arange(len(y)), val)
    out: dict[str, float] = {}
    for m in MODALITIES:
        x, xt = feats["train"][m], feats["test"][m]
        mu, sd = x[fit].mean(0), x[fit].std(0) + 1e-6
        x, xt = (x - mu) / sd, (xt - mu) / sd
        best = (-1.0, 0.0)
        for l2 in (1e-4, 1e-3, 1e-2, 1e-1):
            w = _softmax_regression(x[fit], y[fit], len(classes), l2)
            acc = float(np.mean((np.hstack([x[val], np.ones((len(val), 1))]) @ w).argmax(1) == y[val]))
            if acc > best[0]:
                best = (acc, l2)
        w = _softmax_regression(x[fit], y[fit], len(classes), best[1])
        out[m] = float(np.mean((np.hstack([xt, np.ones((len(xt), 1))]) @ w).argmax(1) == y_test))
        out[f"{m}_l2"] = best[1]
    path.write_text(json.dumps(out, indent=2))
    return out


# --------------------------------------------------------------------------------------------- results


def load_run(path: Path) -> dict[str, Any] | None:
    """Accuracies, training time (s, both stages for the X-Fi protocol) and DAGR/geometry statistics of a
    finished run."""
    if not finished(path):
        return None
    res = json.loads((path / "results.json").read_text())
    cfg = yaml.safe_load((path / "config.yaml").read_text())
    seconds, gaps, epochs = 0.0, [], 0
    stage1 = Path(cfg["train"]["backbones"]) if cfg["train"].get("backbones") else path / "backbones"
    for metrics in [stage1 / "metrics.jsonl", path / "metrics.jsonl"]:
        if not metrics.is_file():
            continue
        for line in metrics.read_text().splitlines():
            row = json.loads(line)
            seconds += row.get("seconds") or 0.0
            epochs += 1
            if row.get("alpha_gap") is not None:
                gaps.append(row["alpha_gap"])
    step_gaps = []  # per step |alpha*(embeddings) - alpha*(params)|, on the same batch
    if (path / "steps.jsonl").is_file():
        for line in (path / "steps.jsonl").read_text().splitlines():
            row = json.loads(line)
            if row.get("alpha_embeddings") is not None and row.get("alpha") is not None:
                step_gaps.append(abs(row["alpha_embeddings"] - row["alpha"]))
    acc = res["subsets"]
    geo = res.get("geometry") or {}
    return {
        "subsets": acc,
        "mean": float(np.mean([acc[k] for k in SUBSET_NAMES])),
        "seconds": seconds,
        "epochs": epochs,
        "alpha_gap": float(np.mean(gaps)) if gaps else None,
        "alpha_gap_steps": step_gaps,
        "outside_tau": geo.get("outside_tau"),
        "drift": geo.get("drift"),
        "effective_rank": geo.get("effective_rank"),
        "semantic_margin": geo.get("semantic_margin"),
    }


def collect(set_name: str, recipe: str) -> list[dict[str, Any]]:
    return [r for s in SEEDS if (r := load_run(run_dir(set_name, recipe, s))) is not None]


def mean_std(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


def fmt(values: list[float], scale: float = 100.0) -> str:
    if not values:
        return "-"
    m, s = mean_std([v * scale for v in values])
    return f"{m:.1f}" if len(values) == 1 else f"{m:.1f} ± {s:.1f}"


def screened(set_name: str) -> list[str]:
    return [n for n, r in RECIPES.items() if r.phase == "screen" and set_name in r.sets]


def recipe_table(set_name: str, recipes: list[str]) -> tuple[str, dict[str, Any]]:
    """Markdown table: one row per recipe (mean ± std over its finished seeds), 7 subsets, mean, time."""
    default = default_recipe(set_name)
    head = "| recipe | seeds | " + " | ".join(SUBSET_NAMES) + " | mean | outside τ | train min |"
    lines = [head, "|" + "---|" * (len(SUBSET_NAMES) + 5)]
    data: dict[str, Any] = {}
    for name in recipes:
        runs = collect(set_name, name)
        if not runs:
            continue
        cells = [fmt([r["subsets"][k] for r in runs]) for k in SUBSET_NAMES]
        minutes = np.mean([r["seconds"] for r in runs]) / 60
        outside = [r["outside_tau"] for r in runs if r["outside_tau"] is not None]
        label = f"**{name}** (default)" if name == default else name
        lines.append(f"| {label} | {len(runs)} | " + " | ".join(cells) + f" | **{fmt([r['mean'] for r in runs])}** "
                     f"| {fmt(outside, 1.0) if outside else '-'} | {minutes:.0f} |")
        data[name] = {
            "summary": RECIPES[name].summary,
            "seeds": len(runs),
            "subsets": {k: [r["subsets"][k] for r in runs] for k in SUBSET_NAMES},
            "mean": [r["mean"] for r in runs],
            "train_seconds": [r["seconds"] for r in runs],
            "alpha_gap": [r["alpha_gap"] for r in runs if r["alpha_gap"] is not None],
            "outside_tau": outside,
        }
    return "\n".join(lines), data


def study_table(set_name: str) -> tuple[str, dict[str, Any]]:
    """Single-modality studies (the subset they train) and the DAGR studies (mean of the 7 subsets)."""
    lines = ["| study | what | accuracy (%) | train min |", "|---|---|---|---|"]
    data: dict[str, Any] = {}
    for name, rec in RECIPES.items():
        if rec.phase != "study" or set_name not in rec.sets:
            continue
        r = load_run(run_dir(set_name, name, SEEDS[0]))
        if r is None:
            continue
        key = SINGLE.get(name)
        acc = r["subsets"][key] if key else r["mean"]
        what = f"{key} alone" if key else "mean of 7 subsets"
        extra = f"; α* gap {r['alpha_gap']:.3f}" if r["alpha_gap"] is not None and name == "embeddings" else ""
        lines.append(f"| {name} | {rec.summary} ({what}{extra}) | {100 * acc:.1f} | {r['seconds'] / 60:.0f} |")
        data[name] = {"summary": rec.summary, "scored": what, "accuracy": acc, "train_seconds": r["seconds"]}
    return "\n".join(lines), data


def screen_ranking(set_name: str) -> list[str]:
    """Screened recipes by seed-0 mean accuracy over the 7 subsets, best first."""
    scores = {}
    for name in screened(set_name):
        r = load_run(run_dir(set_name, name, SEEDS[0]))
        if r is not None:
            scores[name] = r["mean"]
    return sorted(scores, key=lambda k: -scores[k])


def seeded_recipes(set_name: str) -> list[str]:
    """3 seeds for: the default, the no-DAGR baseline (Table 4 layout), and the best two of the screen."""
    picked = [default_recipe(set_name), *ALWAYS_SEEDED]
    return picked + [r for r in screen_ranking(set_name) if r not in picked and r not in DEPENDS][:2]


def goals(set_name: str, recipe: str, probe_acc: dict[str, float]) -> list[tuple[str, bool, str]]:
    """The issue's goals on `set_name` for `recipe` (its seed mean): (goal, met, measured)."""
    runs = collect(set_name, recipe)
    if not runs:
        return []
    acc = {k: float(np.mean([r["subsets"][k] for r in runs])) for k in SUBSET_NAMES}
    out = []
    for letter, m in (("R", "mmwave"), ("W", "wifi"), ("RF", "rfid")):
        out.append((f"{letter} >= probe's {m}", acc[letter] >= probe_acc[m],
                    f"{100 * acc[letter]:.1f} vs {100 * probe_acc[m]:.1f}"))
    best_single = max(acc["R"], acc["W"], acc["RF"])
    out.append(("R+W+RF >= best single + 5", acc["R+W+RF"] >= best_single + 0.05,
                f"{100 * acc['R+W+RF']:.1f} vs {100 * best_single:.1f} + 5"))
    for pair, (a, b) in (("R+W", ("R", "W")), ("R+RF", ("R", "RF")), ("W+RF", ("W", "RF"))):
        better = max(acc[a], acc[b])
        out.append((f"{pair} >= better member", acc[pair] >= better, f"{100 * acc[pair]:.1f} vs {100 * better:.1f}"))
    return out


def dagr_table(set_name: str, base: str, dagr: str, name_a: str, name_b: str) -> str:
    """Table 4 layout: base vs DAGR on the same seeds, Imp, and whether Imp exceeds the seed spread."""
    a = {s: load_run(run_dir(set_name, base, s)) for s in SEEDS}
    b = {s: load_run(run_dir(set_name, dagr, s)) for s in SEEDS}
    seeds = [s for s in SEEDS if a[s] is not None and b[s] is not None]
    if not seeds:
        return ""
    lines = [f"| Modality | {name_a} | {name_b} | Imp | > spread? |", "|---|---|---|---|---|"]
    for k in [*SUBSET_NAMES, "mean"]:
        va = [a[s]["subsets"][k] if k != "mean" else a[s]["mean"] for s in seeds]  # type: ignore[index]
        vb = [b[s]["subsets"][k] if k != "mean" else b[s]["mean"] for s in seeds]  # type: ignore[index]
        imp = 100 * (np.mean(vb) - np.mean(va))
        spread = 100 * max(mean_std(va)[1], mean_std(vb)[1])
        verdict = "-" if len(seeds) < 2 else ("yes" if abs(imp) > spread else "no")
        lines.append(f"| {k} | {fmt(va)} | {fmt(vb)} | {imp:+.1f} | {verdict} |")
    head = f"{len(seeds)} seed(s) ({', '.join(map(str, seeds))}); spread = the larger std of the two columns"
    return head + "\n\n" + "\n".join(lines)


# ------------------------------------------------------------------------------------------------- plan


def plan(phases: set[str]) -> list[tuple[str, str, int]]:
    """(set, recipe, seed) to train, in order: the medium default first (the goals), the studies and the
    small set (cheap), then the rest of the medium screen, then the seeds."""
    jobs: list[tuple[str, str, int]] = []
    if "screen" in phases:
        jobs += [("medium", default_recipe("medium"), SEEDS[0])]
    if "study" in phases:
        jobs += [("small", n, SEEDS[0]) for n, r in RECIPES.items() if r.phase == "study"]
    if "screen" in phases:
        for s in ("small", "medium"):
            jobs += [(s, n, SEEDS[0]) for n in screened(s) if (s, n, SEEDS[0]) not in jobs]
    if "seeds" in phases:
        jobs += [("medium", n, seed) for n in seeded_recipes("medium") for seed in SEEDS[1:]]
    if "seeds-xfi" in phases:  # the X-Fi protocol's Table 4 with 3 seeds, when there is time
        jobs += [("medium", n, seed) for n in ("xfi", "xfi-no-dagr") for seed in SEEDS[1:]]
    return jobs


def run_jobs(jobs: list[tuple[str, str, int]], n_jobs: int) -> None:
    todo = [j for j in jobs if not finished(run_dir(*j))]
    for s in sorted({j[0] for j in todo}):
        ensure_data(s)
    print(f"{len(jobs) - len(todo)} of {len(jobs)} runs cached; training {len(todo)} with {n_jobs} job(s)", flush=True)
    with cf.ThreadPoolExecutor(max_workers=n_jobs) as pool:
        for set_name, recipe, seed, sec, err in pool.map(lambda j: train(*j), todo):
            status = f"FAILED: {err}" if err else f"{sec / 60:.1f} min"
            print(f"  {set_name:>6} {recipe:<14} seed {seed}: {status}", flush=True)


# ---------------------------------------------------------------------------------------------- report


def report() -> tuple[str, dict[str, Any]]:
    parts = [
        "## Learning quality (synthetic data)",
        "",
        "`python benchmarks/bench_learning.py --jobs 2 --results` (`make bench-learning`; every run is cached "
        "under `runs/bench-learning/`, an interrupted benchmark resumes). Training: edge preset, batch 16, AdamW "
        "1e-3, cosine schedule, 10 % of the training split held out to pick `best.pt`, one torch thread per run, "
        "`nice -n 15`, two runs at a time on a 2-core machine shared with other jobs (times are wall time there).",
        "",
        machine_line(),
        "",
    ]
    out: dict[str, Any] = {"sets": {}}
    for set_name, ds in SETS.items():
        p_path = RUNS / set_name / "probe.json"
        if not p_path.is_file():
            continue
        pr = json.loads(p_path.read_text())
        default = default_recipe(set_name)
        n_train = ds.volunteers * ds.actions * 14
        parts += [
            f"### {set_name}: {ds.volunteers} volunteers x {ds.actions} actions x {ds.trials} trials "
            f"({n_train} train incl. the 10 % validation slice, {ds.volunteers * ds.actions * (ds.trials - 14)} "
            f"test; chance {100 / ds.actions:.0f} %; {ds.epochs} epochs per run and stage)",
            "",
            f"Probe (nearest class mean on fixed features, no training): mmWave {100 * pr['mmwave']:.1f}, "
            f"WiFi {100 * pr['wifi']:.1f}, RFID {100 * pr['rfid']:.1f}, fused {100 * pr['fusion']:.1f} %.",
            "",
        ]
        lp_path = RUNS / set_name / "linear_probe.json"
        if lp_path.is_file():
            lp = json.loads(lp_path.read_text())
            parts += [f"Softmax regression on the same features (L2 picked on a 10 % validation slice): mmWave "
                      f"{100 * lp['mmwave']:.1f}, WiFi {100 * lp['wifi']:.1f}, RFID {100 * lp['rfid']:.1f} %.", ""]
            pr = {**pr, "linear": lp}
        table, data = recipe_table(set_name, screened(set_name))
        parts += ["Test accuracy (%; mean ± std where 3 seeds ran), the mean of the 7 subsets, the fraction of "
                  "paired test embeddings outside τ, and training minutes per run:", "", table, ""]
        out["sets"][set_name] = {"probe": pr, "default": default, "recipes": data, "ranking": screen_ranking(set_name)}
        table, sdata = study_table(set_name)
        if sdata:
            parts += ["Studies (one seed):", "", table, ""]
            out["sets"][set_name]["studies"] = sdata
        gaps = [g for r in collect(set_name, default) for g in r["alpha_gap_steps"]]
        if gaps:
            q = np.percentile(gaps, [50, 90, 99])
            out["sets"][set_name]["alpha_gap"] = {"mean": float(np.mean(gaps)), "p50": q[0], "p90": q[1], "p99": q[2],
                                                  "max": float(np.max(gaps)), "steps": len(gaps)}
            parts += [f"`pareto_space: embeddings` is an approximation: on the same batches of the default's "
                      f"training ({len(gaps)} steps), |α*(embeddings) − α*(params)| has mean {np.mean(gaps):.3f}, "
                      f"median {q[0]:.3f}, 90th percentile {q[1]:.3f}, 99th {q[2]:.3f}, max {np.max(gaps):.3f}.", ""]
        if finished(run_dir(set_name, default, SEEDS[0])):
            verdicts = goals(set_name, default, pr)
            out["sets"][set_name]["goals"] = [{"goal": g, "met": m, "measured": v} for g, m, v in verdicts]
            parts += [f"Goals for the default (`{default}`) on {set_name}:", "", "| goal | met | measured |",
                      "|---|---|---|"]
            parts += [f"| {g} | {'yes' if m else 'no'} | {v} |" for g, m, v in verdicts] + [""]
        for base, dagr, a, b in (("no-dagr", "per-batch", "joint", "joint + DAGR"),
                                 ("xfi-no-dagr", "xfi", "X-Fi protocol", "X-Fi protocol + DAGR")):
            t = dagr_table(set_name, base, dagr, a, b)
            if t:
                parts += [f"DAGR against no DAGR ({a}) in the layout of the DAGR paper's Table 4:", "", t, ""]
    headline = ""
    med = out["sets"].get("medium", {})
    if med.get("recipes", {}).get(med.get("default")):
        m, s = mean_std(med["recipes"][med["default"]]["mean"])
        headline = (f"headline: default recipe on the medium set, mean accuracy over the 7 subsets "
                    f"{100 * m:.1f} ± {100 * s:.1f} %")
    return "\n".join(parts), {**out, "headline": headline}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2, help="runs trained at once (one torch thread each)")
    ap.add_argument("--only", choices=["probe", "study", "screen", "seeds", "seeds-xfi"], action="append",
                    help="run only these phases (repeatable; default: probe, study, screen, seeds)")
    ap.add_argument("--plan", action="store_true", help="print the grid and what is cached, train nothing")
    ap.add_argument("--results", action="store_true", help="write the section of benchmarks/RESULTS.md")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args(argv)
    phases = set(args.only or ["probe", "study", "screen", "seeds"])
    if args.plan:
        for job in plan(phases):
            print(f"{'cached ' if finished(run_dir(*job)) else 'to run '} {job[0]:>6} {job[1]:<14} seed {job[2]}")
        return {}
    if "probe" in phases:
        for s in SETS:
            print(f"probe {s}: {probe(s)}", flush=True)
            print(f"linear probe {s}: {linear_probe(s)}", flush=True)
    first = [p for p in ("study", "screen") if p in phases]
    if first:
        run_jobs(plan(set(first)), args.jobs)
    for phase in ("seeds", "seeds-xfi"):  # "seeds" reads the screen's ranking: after it
        if phase in phases:
            run_jobs(plan({phase}), args.jobs)
    text, out = report()
    print(text)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    if args.results:
        write_section("learning", text + ("\n\n" + out["headline"] if out["headline"] else ""))
    if out["headline"]:
        print(out["headline"])
    return out


if __name__ == "__main__":
    main()
