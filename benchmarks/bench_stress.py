"""Wall time of `rfsense stress` on the quick-start artifacts: the default suite (every fault, health on and
off, all 120 test samples) and the short run `make demo` ends with.

    .venv/bin/python benchmarks/bench_stress.py [--results] [--workers 2]

Needs the quick start's data set and exported model (`make demo` makes them: data/synth-quickstart,
export/rfsense.onnx, runs/quickstart); it says so when they are missing. Goal (issue 10): the default suite
for one model in <= 10 minutes on a 2-core CPU, the demo run in under a minute.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import machine_line, write_section  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA, MODEL, RUN = REPO / "data/synth-quickstart", REPO / "export/rfsense.onnx", REPO / "runs/quickstart"
# The short run `make demo` ends with (keep in step with the Makefile).
DEMO = ["--limit", "24", "--faults", "missing,gaussian,nan-inf,dead-receiver,sensor-lost", "--severities", "0,3,5"]


def _run(args: list[str], out: Path) -> tuple[float, dict]:
    t0 = time.perf_counter()
    subprocess.run([str(REPO / ".venv/bin/rfsense"), "-q", "stress", *args, "--out", str(out)], check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0, json.loads((out / "results.json").read_text())


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--results", action="store_true", help="write the section of benchmarks/RESULTS.md")
    args = ap.parse_args(argv)
    missing = [str(p) for p in (DATA, MODEL, RUN) if not p.exists()]
    if missing:
        sys.exit(f"bench_stress: missing {', '.join(missing)}; run `make demo` first")
    tmp = Path(tempfile.mkdtemp(prefix="bench-stress-"))
    try:
        base = [str(MODEL), "--data", str(DATA), "--workers", str(args.workers)]
        demo_s, demo = _run([*base[:1], str(RUN), *base[1:], *DEMO], tmp / "demo")
        full_s, full = _run(base, tmp / "full")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    cells = len({(c["fault"], c["targets"], c["severity"]) for c in full["cells"]})
    evals = len(full["cells"])
    s = full["summary"][0]
    lines = [
        "## Stress suite speed",
        "",
        f"`python benchmarks/bench_stress.py --workers {args.workers} --results` on the quick-start artifacts "
        "(120 test samples, edge model).",
        "",
        machine_line(),
        "",
        "| run | what | wall s | goal |",
        "|---|---|---|---|",
        f"| default suite | every fault x target x severity 0-5, health on and off, {full['options']['n_samples']} samples, "
        f"{cells} cells, {evals} model readings | {full_s:.0f} | <= 600 |",
        f"| demo run (`make demo`) | {' '.join(DEMO)}, ONNX + run folder | {demo_s:.0f} | < 60 |",
        "",
        f"Default suite summary: clean {100 * s['clean_accuracy']:.1f} %, mean under corruption "
        f"{100 * s['mean_corrupted_accuracy']:.1f} %, relative robustness {s['relative_robustness']:.3f}.",
        "",
        f"headline: default stress suite {full_s / 60:.1f} min (goal <= 10), demo run {demo_s:.0f} s (goal < 60)",
    ]
    text = "\n".join(lines)
    print(text)
    if args.results:
        write_section("stress", text)
    return {"full_s": full_s, "demo_s": demo_s, "cells": cells}


if __name__ == "__main__":
    main()
