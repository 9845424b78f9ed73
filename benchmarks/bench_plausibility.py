"""Plausibility checks of the deployed runtime: false alarms on clean windows, and catch rates of fuzz patterns.

    .venv/bin/python benchmarks/bench_plausibility.py                 # ~1,000 clean windows, 200 trials per pattern
    .venv/bin/python benchmarks/bench_plausibility.py --results       # + its section of benchmarks/RESULTS.md

A small edge model is trained CPU-only on a synthetic set with the quick start's recipe (2 volunteers x 10
actions, trials 1-14 train with a fifth held out as the validation slice, 15-16 test; a few minutes, cached
in --cache with the data) and exported: the export fits the distribution statistics and the OOD score on the training rows and sets the
OOD thresholds on the validation slice. Then, through `Runtime.predict`:

- false alarms: >= 1,000 clean synthetic windows the model never saw (trials 11 and up of the same
  volunteers and actions, generated in memory), all three sensors given; a false alarm is a stream the
  runtime masks (implausible or failed), counted per modality and per check that fired;
- fuzz patterns, each applied to --trials clean windows per modality (that modality alone given): white
  noise (physically valid: |N(mean, std)| of the window for amplitudes and magnitudes, uniform phases for
  RFID), negative values (the window minus its mean: a stream whose DC was removed; RFID: phase - 2pi),
  wrong scale (x 1000 or x 0.001, half each), spikes of 1e20 (0.1 % of values) and integer arrays (int16 and
  uint8 of the rounded window). Caught = the stream masked.

Goals (issue 9): false alarms <= 1 % per modality; each pattern caught in >= 90 % of trials.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _results import machine_line, write_section  # noqa: E402
from _synth_model import DEFAULT_CACHE, synth_set, train_config  # noqa: E402

from rfsense.modalities import MODALITIES  # noqa: E402

VOLUNTEERS, ACTIONS, TRAIN_TRIALS, TEST_TRIALS = 2, 10, 14, 2  # the quick start's set and recipe
PATTERNS = ("white noise", "negative values", "wrong scale", "spikes 1e20", "integer array")
_CHUNK = 24


def _generate(key: tuple[int, int, int], trials: int) -> dict[str, np.ndarray]:
    from rfsense.data.synth import SynthConfig
    from rfsense.data.synth.sample import generate_sample

    x = generate_sample(SynthConfig(seed=0, volunteers=VOLUNTEERS, actions=ACTIONS, trials=trials), *key)
    x["mmwave"] = x["mmwave"].reshape(x["mmwave"].shape[-3:])
    return x


def clean_windows(n: int, workers: int):
    """Yield (keys, {modality: (b, ...)}) chunks of held-out clean windows: trials after train and test."""
    first = TRAIN_TRIALS + TEST_TRIALS + 1
    per_trial = VOLUNTEERS * ACTIONS
    last = first + -(-n // per_trial) - 1
    keys = [(v, a, t) for t in range(first, last + 1) for v in range(1, VOLUNTEERS + 1) for a in range(1, ACTIONS + 1)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(keys), _CHUNK):
            part = keys[start : start + _CHUNK]
            samples = list(pool.map(_generate, part, [last] * len(part)))
            yield part, {m: np.stack([s[m] for s in samples]) for m in MODALITIES}


def fuzz(pattern: str, modality: str, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One fuzz pattern applied to a batch of clean raw windows of one modality."""
    axes = tuple(range(1, x.ndim))
    if pattern == "white noise":
        if modality == "rfid":
            return rng.uniform(0, 2 * np.pi, x.shape)
        mu, sd = x.mean(axis=axes, keepdims=True), x.std(axis=axes, keepdims=True)
        return np.abs(rng.normal(size=x.shape) * sd + mu).astype(x.dtype)
    if pattern == "negative values":
        return x - 2 * np.pi if modality == "rfid" else x - x.mean(axis=axes, keepdims=True)
    if pattern == "wrong scale":
        factor = np.where(rng.random(len(x)) < 0.5, 1e3, 1e-3).reshape((-1,) + (1,) * (x.ndim - 1))
        return (x * factor).astype(x.dtype)
    if pattern == "spikes 1e20":
        y = x.copy()
        flat = y.reshape(len(y), -1)
        for row in flat:
            row[rng.choice(row.size, max(1, row.size // 1000), replace=False)] = 1e20
        return y
    if pattern == "integer array":
        return np.round(x).astype(np.int16 if rng.random() < 0.5 else np.uint8)
    raise ValueError(pattern)


def run_patterns(rt, pool: dict[str, list[np.ndarray]], patterns: tuple[str, ...], trials: int
                 ) -> dict[tuple[str, str], Counter]:
    """Each pattern on `trials` clean windows per modality (that modality alone): counts of trials, caught, and
    caught by each check."""
    rng = np.random.default_rng(0)
    caught: dict[tuple[str, str], Counter] = {}
    for m in MODALITIES:
        base = np.concatenate(pool[m])[:trials]
        for pattern in patterns:
            c = caught.setdefault((pattern, m), Counter())
            for start in range(0, len(base), _CHUNK):
                x = fuzz(pattern, m, base[start : start + _CHUNK], rng)
                for p in rt.predict({m: x}, top_k=1, batch_size=_CHUNK):
                    v = p.verdicts[m]
                    c["trials"] += 1
                    if not v.usable:
                        c["caught"] += 1
                        c[_which(v.status, v.reasons)] += 1
    return caught


def _which(status: str, reasons: list[str]) -> str:
    text = " ".join(reasons)
    if status == "failed":
        return "health"
    if "out of distribution" in text:
        return "ood"
    if "distribution score" in text:
        return "distribution"
    return "physical"


def train_model(cache: Path, epochs: int, threads: int) -> tuple[Path, object]:
    from rfsense.train.loop import fit

    data = synth_set(cache, "plausibility", VOLUNTEERS, ACTIONS, TRAIN_TRIALS + TEST_TRIALS,
                     tuple(range(1, TRAIN_TRIALS + 1)))
    from rfsense.train.rundir import load_run_config

    run = data.root.parent / "runs" / f"edge-e{epochs}"
    cfg = train_config(data, run.parent, run.name, epochs=epochs, val_fraction=0.2, threads=threads)
    # The cached run only while it is what this code would train (a changed default model retrains it).
    if not (run / "best.pt").is_file() or load_run_config(run) != cfg:
        fit(cfg, overwrite=True)
    return run, data


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clean", type=int, default=1020, help="clean windows for the false-alarm rate (>= 1000)")
    ap.add_argument("--trials", type=int, default=200, help="fuzzed windows per pattern and modality")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2, help="processes generating the clean windows")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--results", action="store_true", help="write the tables into benchmarks/RESULTS.md")
    args = ap.parse_args(argv)

    import tempfile

    from rfsense.deploy import Runtime
    from rfsense.deploy.export import export_run

    run, _ = train_model(args.cache, args.epochs, args.threads)
    out = Path(tempfile.mkdtemp(prefix="rfsense-bench-plausibility-"))
    manifest = export_run(run, out=out)
    rt = Runtime(out / "rfsense.onnx", providers="cpu", threads=args.threads)
    ood = manifest["plausibility"]["ood"]

    alarms = {m: Counter() for m in MODALITIES}
    scores: dict[str, list[float]] = {m: [] for m in MODALITIES}
    correct = n_clean = 0
    fuzz_pool: dict[str, list[np.ndarray]] = {m: [] for m in MODALITIES}
    for keys, batch in clean_windows(args.clean, args.workers):
        preds = rt.predict(batch, top_k=1, batch_size=_CHUNK)
        for (_, action, _), p in zip(keys, preds, strict=True):
            n_clean += 1
            correct += bool(p.top) and p.top[0][0] == action - 1
            for m, v in p.verdicts.items():
                if v.ood is not None:
                    scores[m].append(v.ood)
                if not v.usable:
                    alarms[m][_which(v.status, v.reasons)] += 1
        for m in MODALITIES:  # keep clean windows to fuzz (enough for --trials)
            if sum(len(b) for b in fuzz_pool[m]) < args.trials:
                fuzz_pool[m].append(batch[m])
    caught = run_patterns(rt, fuzz_pool, PATTERNS, args.trials)
    # The OOD score is the last check, so it rarely fires above; what it catches on its own (distribution off):
    rt.plausibility.config = dataclasses.replace(rt.plausibility.config, distribution=False)
    alone = run_patterns(rt, fuzz_pool, ("white noise", "wrong scale"), args.trials)

    fa_rows = ["| modality | clean windows | false alarms | rate | by check | OOD threshold (rows, split) | OOD score p50 / p99 |",
               "|---|---:|---:|---:|---|---|---|"]
    fa = {}
    for m in MODALITIES:
        k = sum(alarms[m].values())
        fa[m] = k / n_clean
        by = ", ".join(f"{c} {n}" for c, n in sorted(alarms[m].items())) or "-"
        o = ood.get(m, {})
        s = np.array(scores[m]) if scores[m] else np.array([np.nan])
        fa_rows.append(f"| {m} | {n_clean} | {k} | {100 * fa[m]:.2f}% | {by} | {o.get('threshold', float('nan')):.2f} "
                       f"({o.get('rows')}, {o.get('split')}) | {np.median(s):.2f} / {np.quantile(s, 0.99):.2f} |")
    fz_rows = ["| pattern | " + " | ".join(MODALITIES) + " |", "|---|" + "---:|" * len(MODALITIES)]
    rates = {}
    for pattern in PATTERNS:
        cells = []
        for m in MODALITIES:
            c = caught[(pattern, m)]
            rates[(pattern, m)] = c["caught"] / max(c["trials"], 1)
            by = ", ".join(f"{k} {n}" for k, n in sorted(c.items()) if k not in ("trials", "caught"))
            cells.append(f"{100 * rates[(pattern, m)]:.1f}% ({by or '-'})")
        fz_rows.append(f"| {pattern} | " + " | ".join(cells) + " |")
    alone_rows = ["| pattern, distribution check off | modality | caught | by the OOD score |", "|---|---|---:|---:|"]
    for (pattern, m), c in sorted(alone.items()):
        alone_rows.append(f"| {pattern} | {m} | {100 * c['caught'] / max(c['trials'], 1):.1f}% | {c['ood']} |")
    worst_fa = max(fa.values())
    worst_catch = min(rates.values())
    acc = correct / max(n_clean, 1)
    headline = (f"false alarms <= {100 * worst_fa:.2f}% per modality on {n_clean} clean windows (goal <= 1%); "
                f"every fuzz pattern caught in >= {100 * worst_catch:.1f}% of {args.trials} trials (goal >= 90%)")
    notes = [f"model: edge, {args.epochs} epochs on {VOLUNTEERS} x {ACTIONS} x {TRAIN_TRIALS} synthetic samples "
             f"(a fifth held out); top-1 accuracy on the clean windows with every check on: {100 * acc:.1f}% "
             f"({ACTIONS} classes)",
             "checks: physical = the quality rule's check 0 on raw values; distribution = per-channel statistics "
             "after preprocessing; ood = the encoder's Mahalanobis score; health = the other quality checks"]
    print("\n".join(fa_rows))
    print()
    print("\n".join(fz_rows))
    print()
    print("\n".join(alone_rows))
    print("\n".join(notes))
    result = {"false_alarm_rate": fa, "catch_rate": {f"{p} / {m}": r for (p, m), r in rates.items()},
              "clean_windows": n_clean, "trials": args.trials, "clean_accuracy": acc, "ood": ood, "headline": headline}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    if args.results:
        body = (f"## Plausibility checks\n\n`python benchmarks/bench_plausibility.py {' '.join(sys.argv[1:] if argv is None else argv)}`\n\n{machine_line()}\n\n"
                + "False alarms on clean held-out windows (all three sensors given):\n\n" + "\n".join(fa_rows)
                + "\n\nFuzz patterns caught (the stream masked; by the check that fired):\n\n" + "\n".join(fz_rows)
                + "\n\nWhat the OOD score catches alone (the distribution check switched off):\n\n" + "\n".join(alone_rows)
                + "\n\n" + "\n".join(f"- {n}" for n in notes) + f"\n\nheadline: {headline}\n")
        write_section("plausibility", body)
    print(headline)
    return result


if __name__ == "__main__":
    main()
