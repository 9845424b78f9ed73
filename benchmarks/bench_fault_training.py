"""Fault-aware training against clean training, judged by `rfsense stress` (issue 10).

    .venv/bin/python benchmarks/bench_fault_training.py [--results] [--seed 0] [--workers 2]

Trains the quick start's recipe (`configs/quickstart.yaml`) twice on the quick start's synthetic set, with the
same seed: once clean, once with `train.faults` on (the faults below, at severities 1-5, on a quarter of every
batch). Both are exported and stressed together on the same corrupted test samples, health checks on (the
deployed behaviour). Runs and exports are cached under runs/bench-faults/ (delete the folder to redo them).
Needs the quick start's data set (`make demo` makes data/synth-quickstart).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import machine_line, write_section  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data/synth-quickstart"
OUT = REPO / "runs/bench-faults"
RFSENSE = str(REPO / ".venv/bin/rfsense")
# Trained on: the faults a deployment meets most, each with a preprocessed variant (rfsense stress --list-faults).
TRAIN_FAULTS = ["missing", "gaussian", "nan-inf", "dead-receiver", "sensor-lost", "lost-tags", "dropped-frames"]
# Judged on: those, and faults the faulty model never saw in training (held-out faults).
STRESS_FAULTS = [*TRAIN_FAULTS, "bursty-loss", "dropout-input", "agc-step", "stuck"]
SEVERITIES = "0-5"


def _train(name: str, seed: int, faults: list[str]) -> Path:
    run = OUT / name
    if (run / "results.json").is_file():
        return run
    cmd = [RFSENSE, "-q", "train", str(REPO / "configs/quickstart.yaml"), "--overwrite",
           "--set", f"name={name}", "--set", f"out_dir={OUT}", "--set", f"train.seed={seed}",
           "--set", f"data.root={DATA}"]
    if faults:
        cmd += ["--set", f"train.faults.names={json.dumps(faults)}"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return run


def _export(run: Path, name: str) -> Path:
    """Export under its own file name: the stress tables name models by file stem."""
    from rfsense.deploy.export import export_run

    model = OUT / f"export-{run.name}" / f"{name}.onnx"
    if not model.is_file():
        export_run(run, out=model.parent, name=name)
    return model


def _table(cells: list[dict], names: list[str]) -> str:
    """Per fault (summed over the corrupted sensors): accuracy per severity for each model, health on."""
    acc: dict[tuple[str, str, int], list[int]] = {}
    for c in cells:
        if c["health"] != "on" or c["fault"] in ("clean", "absent"):
            continue
        tally = acc.setdefault((c["model"], c["fault"], c["severity"]), [0, 0])
        tally[0] += c["n"]
        tally[1] += c["correct"]
    sev = sorted({s for _, _, s in acc})
    head = "| fault | model | " + " | ".join(f"sev {s}" for s in sev) + " | mean 1-5 |"
    lines = [head, "|" + "---|" * (len(sev) + 3)]
    for fault in STRESS_FAULTS:
        for name in names:
            vals = [acc.get((name, fault, s)) for s in sev]
            pct = [100 * v[1] / v[0] if v and v[0] else float("nan") for v in vals]
            hard = [p for s, p in zip(sev, pct, strict=True) if s >= 1]
            tag = fault if fault in TRAIN_FAULTS else f"{fault} (not trained on)"
            lines.append(f"| {tag} | {name} | " + " | ".join(f"{p:.1f}" for p in pct)
                         + f" | {sum(hard) / len(hard):.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--results", action="store_true", help="write the section of benchmarks/RESULTS.md")
    args = ap.parse_args(argv)
    if not DATA.is_dir():
        sys.exit(f"bench_fault_training: missing {DATA}; run `make demo` first")
    clean = _export(_train(f"clean-s{args.seed}", args.seed, []), "clean")
    faulty = _export(_train(f"faults-s{args.seed}", args.seed, TRAIN_FAULTS), "fault-aware")
    stress = OUT / f"stress-s{args.seed}"
    if stress.exists():
        shutil.rmtree(stress)
    models = [str(clean), str(faulty)]
    subprocess.run([RFSENSE, "-q", "stress", *models, "--data", str(DATA), "--faults", ",".join(STRESS_FAULTS),
                    "--severities", SEVERITIES, "--health", "on", "--workers", str(args.workers),
                    "--out", str(stress), "--format", "json"], check=True, stdout=subprocess.DEVNULL)
    res = json.loads((stress / "results.json").read_text())
    names = [s["model"] for s in res["summary"]]
    summary = ["| model | clean % | mean under corruption % | relative robustness | mCE vs clean model |",
               "|---|---|---|---|---|"]
    for s in res["summary"]:
        summary.append(f"| {s['model']} | {100 * s['clean_accuracy']:.1f} | {100 * s['mean_corrupted_accuracy']:.1f} | "
                       f"{s['relative_robustness']:.3f} | {100 * s['mce']:.1f} % |")
    a, b = res["summary"][0], res["summary"][1]
    lines = [
        "## Fault-aware training",
        "",
        f"`python benchmarks/bench_fault_training.py --seed {args.seed} --results`: the quick start's recipe trained "
        f"twice on the quick start's synthetic set (seed {args.seed}), clean and with `train.faults.names: "
        f"[{', '.join(TRAIN_FAULTS)}]` (a quarter of every batch, severities 1-5); both stressed on the same "
        f"corrupted test samples ({res['options']['n_samples']}), health checks on, every sensor the fault applies "
        "to, severities 0-5. Faults marked 'not trained on' were never applied in training.",
        "",
        machine_line(),
        "",
        "\n".join(summary),
        "",
        "Accuracy (%) per severity, summed over the sensors each fault was applied to (the curves):",
        "",
        _table(res["cells"], names),
        "",
        f"headline: fault-aware training {100 * b['mean_corrupted_accuracy']:.1f} % mean accuracy under corruption "
        f"vs {100 * a['mean_corrupted_accuracy']:.1f} % clean-trained (clean accuracy {100 * b['clean_accuracy']:.1f} "
        f"vs {100 * a['clean_accuracy']:.1f} %), mCE {100 * b['mce']:.1f} % of the clean-trained model's",
    ]
    text = "\n".join(lines)
    print(text)
    if args.results:
        write_section("fault_training", text)
    return res


if __name__ == "__main__":
    main()
