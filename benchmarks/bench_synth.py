"""Speed of the synthetic XRF55 generator (rfsense.data.synth), and optionally its difficulty probe.

    .venv/bin/python benchmarks/bench_synth.py                        # 400-sample quick-start set, 2 workers
    .venv/bin/python benchmarks/bench_synth.py --workers 1 --json out.json
    .venv/bin/python benchmarks/bench_synth.py --volunteers 3 --probe  # 600 samples + probe accuracies

Rows:
- `<modality> simulate`: one modality's simulation alone, in-process (median over --repeats samples).
- `generate_sample`: all three modalities of one sample in memory, in-process, no disk.
- `synthesize`: the whole set written to disk by `synthesize(..., workers=W)` into a fresh folder
  (wall time, samples/s, MB written); `rerun` is the same call again (must write nothing).
- with --probe, the probe accuracies (rfsense.data.probe.probe_accuracy) on the written set.

Prints a table, then the same numbers as JSON (also written to --json if given), then the headline
(samples/s written) last; --results writes this benchmark's section of RESULTS.md. The machine is
shared, so compare rows of one run only. The output folder is a temporary one unless --out is given.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import report  # noqa: E402

from rfsense.data import synth as S  # noqa: E402
from rfsense.data.probe import probe_accuracy  # noqa: E402
from rfsense.data.synth.config import rng_for  # noqa: E402
from rfsense.data.synth.constants import RCS  # noqa: E402
from rfsense.data.synth.mmwave import simulate_mmwave  # noqa: E402
from rfsense.data.synth.motion import body_track, programmes  # noqa: E402
from rfsense.data.synth.rfid import simulate_rfid  # noqa: E402
from rfsense.data.synth.scene import scene_geometry, volunteer_traits  # noqa: E402
from rfsense.data.synth.wifi import simulate_wifi  # noqa: E402


def _median_seconds(fn, repeats: int) -> float:
    times = []
    for i in range(repeats):
        t = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _per_modality(cfg: S.SynthConfig, repeats: int) -> dict[str, float]:
    """Median seconds of each sensor simulation for one sample (in-process)."""
    scene, vol = scene_geometry(cfg.seed, 1), volunteer_traits(cfg.seed, 1)
    tracks = [body_track(programmes()[i % 10], vol, scene, rng_for(99, i)) for i in range(repeats)]
    out = {}
    for name, fn in (("mmwave", simulate_mmwave), ("wifi", simulate_wifi), ("rfid", simulate_rfid)):
        out[name] = _median_seconds(
            lambda i, fn=fn, name=name: fn(scene, tracks[i][0], RCS[name] * tracks[i][1], rng_for(7, i)),
            repeats,
        )
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--volunteers", type=int, default=2)
    ap.add_argument("--actions", type=int, default=10)
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=10, help="samples timed in-process per row")
    ap.add_argument("--out", type=Path, default=None, help="write the set here and keep it")
    ap.add_argument("--probe", action="store_true", help="also run the difficulty probe (needs >= 15 trials)")
    ap.add_argument("--json", type=Path, default=None, help="also write results here")
    ap.add_argument("--results", action="store_true", help="write this benchmark's section of RESULTS.md")
    args = ap.parse_args(argv)
    cfg = S.SynthConfig(volunteers=args.volunteers, actions=args.actions, trials=args.trials, seed=args.seed)

    S.generate_sample(cfg, 1, 1, 1)  # warm-up: builds the cached programmes and scene
    rows: list[tuple[str, float, str]] = []
    for name, sec in _per_modality(cfg, args.repeats).items():
        rows.append((f"{name} simulate", sec * 1e3, f"{1 / sec:.1f} samples/s"))
    keys = cfg.keys()
    sec = _median_seconds(lambda i: S.generate_sample(cfg, *keys[i % len(keys)]), args.repeats)
    rows.append(("generate_sample", sec * 1e3, f"{1 / sec:.1f} samples/s (1 process, no disk)"))

    tmp = None
    out = args.out
    if out is None:
        tmp = tempfile.mkdtemp(prefix="bench_synth_")
        out = Path(tmp) / "xrf55"
    try:
        summary = S.synthesize(out, cfg, workers=args.workers)
        mb = summary["bytes_written"] / 1e6
        rows.append(
            (
                f"synthesize x{args.workers}",
                summary["seconds"] * 1e3,
                f"{summary['n_written']} samples, {summary['n_written'] / summary['seconds']:.1f} samples/s, "
                f"{mb:.0f} MB ({mb / max(summary['n_written'], 1):.2f} MB/sample)",
            )
        )
        again = S.synthesize(out, cfg, workers=args.workers)
        rows.append(("rerun (no-op)", again["seconds"] * 1e3, f"{again['n_written']} written"))
        probe = None
        if args.probe:
            t = time.perf_counter()
            probe = probe_accuracy(out)
            rows.append(
                (
                    "probe_accuracy",
                    (time.perf_counter() - t) * 1e3,
                    " ".join(f"{k}={v:.3f}" for k, v in probe.items()),
                )
            )
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)

    width = max(len(r[0]) for r in rows)
    lines = [f"{'row':<{width}}  {'ms':>10}  note"]
    lines += [f"{name:<{width}}  {ms:>10.1f}  {note}" for name, ms, note in rows]
    rate = summary["n_written"] / summary["seconds"]
    headline = (f"synthesis: {rate:.1f} samples/s with {args.workers} worker(s) "
                f"({summary['n_written']} samples, {mb / max(summary['n_written'], 1):.2f} MB/sample)")
    result = {
        "config": {**asdict(cfg), "workers": args.workers},
        "generator_version": S.GENERATOR_VERSION,
        "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine()},
        "rows": [{"name": n, "ms": round(ms, 2), "note": note} for n, ms, note in rows],
        "synthesize": {
            "seconds": round(summary["seconds"], 2),
            "samples_per_s": round(rate, 2),
            "mb_written": round(mb, 1),
        },
        "probe": probe,
        "headline": headline,
    }
    cmd = (f"python benchmarks/bench_synth.py --volunteers {args.volunteers} --actions {args.actions} "
           f"--trials {args.trials} --workers {args.workers} --repeats {args.repeats}"
           f"{' --probe' if args.probe else ''} --results")
    report("synth", "Synthetic generator (bench_synth)", cmd, lines, headline, result, json_path=args.json,
           results=args.results)
    return result


if __name__ == "__main__":
    main()
