"""Speed of the fault injectors (rfsense.data.faults) on a batch, per fault, modality and severity.

    .venv/bin/python benchmarks/bench_faults.py                      # batch 32, severities 1-5, 3 repeats
    .venv/bin/python benchmarks/bench_faults.py --batch 8 --repeats 1 --results

Rows: every (fault, modality) on raw streams and, where it has one, its preprocessed variant (joint faults
act on all three streams at once). For each, the slowest severity's median time over repeats after one
warm-up, and that time as a multiple of copying the same batch (the floor every injector pays: it returns a
new array). Prints a table, then JSON (also written to --json); --results writes the table into
benchmarks/RESULTS.md. The headline (printed last) is the slowest mmWave injector at this batch size.
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import machine_line, median_seconds, write_section  # noqa: E402

from rfsense.data.faults import (  # noqa: E402
    FAULTS,
    apply_fault,
    apply_joint,
    apply_joint_preprocessed,
    apply_preprocessed,
)
from rfsense.modalities import MODALITIES, SHAPES  # noqa: E402

DTYPES = {"mmwave": np.float32, "wifi": np.float64, "rfid": np.float64}  # as the files store them
SCALE = {"mmwave": 3.5, "wifi": 12.0, "rfid": 1.9}  # raw stds of the synthetic set; any positive number works


def make_batch(modality: str, b: int, preprocessed: bool) -> np.ndarray:
    rng = np.random.default_rng(0)
    shape = (b, *SHAPES[modality])
    if modality == "rfid":
        x = rng.uniform(0, 2 * np.pi, shape)
    else:
        x = rng.exponential(5.0, shape)
    return x.astype(np.float32 if preprocessed else DTYPES[modality])




def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", help="also write the results to this file")
    ap.add_argument("--results", action="store_true", help="write the table into benchmarks/RESULTS.md")
    args = ap.parse_args()
    b, reps = args.batch, args.repeats
    ids = np.arange(b)
    raw = {m: make_batch(m, b, False) for m in MODALITIES}
    pre = {m: make_batch(m, b, True) for m in MODALITIES}
    copy = {m: median_seconds(lambda m=m: raw[m].copy(), reps) for m in MODALITIES}
    copy["all"] = sum(copy.values())
    rows: list[dict[str, object]] = []
    for f in FAULTS.values():
        if f.kind == "features":
            continue
        for m in ("all",) if f.kind == "joint" else f.modalities:
            row: dict[str, object] = {"fault": f.name, "modality": m}
            for domain, data in (("raw", raw), ("preprocessed", pre)):
                if domain == "preprocessed" and not f.has_preprocessed:
                    row[domain] = None
                    continue
                worst = 0.0
                for s in range(1, 6):
                    if f.kind == "joint":
                        fn = apply_joint if domain == "raw" else apply_joint_preprocessed
                        call = partial(fn, f.name, data, s, seed=0, sample_ids=ids)
                    else:
                        fn = apply_fault if domain == "raw" else apply_preprocessed
                        call = partial(fn, f.name, m, data[m], s, seed=0, sample_ids=ids, scale=SCALE)
                    worst = max(worst, median_seconds(call, reps))
                row[domain] = worst
            row["x_copy"] = float(row["raw"]) / copy[m]  # type: ignore[arg-type]
            rows.append(row)

    head = f"fault injectors, batch {b}, slowest of severities 1-5, median of {reps}"
    lines = [
        "| fault | modality | raw (ms) | x batch copy | preprocessed (ms) |",
        "|---|---|---:|---:|---:|",
    ]
    for r in rows:
        p = "-" if r["preprocessed"] is None else f"{1000 * float(r['preprocessed']):.1f}"  # type: ignore[arg-type]
        lines.append(
            f"| {r['fault']} | {r['modality']} | {1000 * float(r['raw']):.1f} | {float(r['x_copy']):.1f} | {p} |"  # type: ignore[arg-type]
        )
    mm = max((r for r in rows if r["modality"] in ("mmwave", "all")), key=lambda r: float(r["raw"]))  # type: ignore[arg-type]
    headline = (
        f"slowest mmWave injector at batch {b}: {mm['fault']} {1000 * float(mm['raw']):.0f} ms "  # type: ignore[arg-type]
        f"({float(mm['x_copy']):.1f}x a batch copy of {1000 * copy['mmwave']:.0f} ms)"  # type: ignore[arg-type]
    )
    print(head)
    print("\n".join(lines))
    result = {"batch": b, "repeats": reps, "copy_seconds": copy, "rows": rows, "headline": headline}
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as fh:
            fh.write(text + "\n")
    if args.results:
        body = f"## Fault injectors\n\n{head}; {machine_line()}\n\n" + "\n".join(lines) + f"\n\n{headline}\n"
        write_section("faults", body)
    print(headline)


if __name__ == "__main__":
    main()
