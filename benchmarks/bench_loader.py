"""Feeding the training loop: batch reads, time spent waiting for data per step, and parallel packing.

    .venv/bin/python benchmarks/bench_loader.py                       # 160-sample synthetic set, batch 16
    .venv/bin/python benchmarks/bench_loader.py --data data/XRF55 --batch 32 --results

Rows (one run, side by side; page cache warm: every reader runs once untimed first, so the read rows
compare CPU cost; a cold read moves the MB/sample shown, and XRF55's 285 GB do not stay in a page cache):
- `per-file np.load`: the loader of the XRF55 / X-Fi repositories: per sample, np.load of its three .npy
  files, `torch.from_numpy(...).float()`, stacked into a batch (raw arrays: their loader does no
  preprocessing).
- `packed rows`: `read_rows` on the memory-mapped pack (preprocessed float16 rows -> float32), synchronous.
- `packed + prefetch`: the training loader (`Prefetcher`, 2 threads reading ahead) drained as fast as it
  delivers: its read throughput with nothing to overlap (the thread hand-off costs a little; its gain is
  the overlap with compute, in the data-wait rows).
- `data wait`: a real `train_one_epoch` (edge, DAGR off: the fastest step, so the hardest case) with the
  loader reading synchronously (prefetch 0) and ahead (prefetch 2): the share of step time the loop spent
  waiting for data.
- `pack xN`: `pack(..., workers=N)` of the whole set into a fresh folder, samples/s and CPU time per
  sample of all processes; the packs are checked to be byte-identical. Each extra worker is a spawned
  interpreter that imports numpy and scipy first (about a second), which a small set does not amortise.

Prints the table, then JSON, then the headline last; --results writes this benchmark's section of
RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import report  # noqa: E402

from rfsense.data.layout import SplitSpec, discover, split_samples  # noqa: E402
from rfsense.data.pack import pack  # noqa: E402
from rfsense.modalities import MODALITIES, SHAPES  # noqa: E402
from rfsense.train.batches import read_rows  # noqa: E402
from rfsense.train.config import config_from_tree  # noqa: E402
from rfsense.train.distributed import DistEnv  # noqa: E402
from rfsense.train.loader import Prefetcher, StepPlan  # noqa: E402

SPLIT = SplitSpec(train_trials=(1, 2, 3, 4))


def per_file_batch(files: list[dict[str, Path]]) -> dict[str, torch.Tensor]:
    """The XRF55/X-Fi Dataset + default collate: np.load per file, .float(), reshape (mmWave), stack."""
    return {m: torch.stack([torch.from_numpy(np.load(f[m])).float().reshape(SHAPES[m]) for f in files])
            for m in MODALITIES}


def _rate(n_samples: int, seconds: float) -> float:
    return n_samples / seconds if seconds > 0 else float("inf")


def _batches(n: int, batch: int, count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.choice(n, size=min(batch, n), replace=False) for _ in range(count)]


def bench_reads(root: Path, packed, batch: int, count: int) -> dict[str, float]:
    split = packed.split("train")
    samples = split_samples(discover(root).samples, SPLIT)["train"]
    files = [{m: s.files[m] for m in MODALITIES} for s in samples]
    batches = _batches(len(split), batch, count)
    per_file = [[files[i] for i in b] for b in batches]
    for b in per_file[:2]:  # warm the page cache for every reader
        per_file_batch(b)
    read_rows(split, np.arange(len(split)))

    t0 = time.perf_counter()
    for b in per_file:
        per_file_batch(b)
    t_file = time.perf_counter() - t0
    t0 = time.perf_counter()
    for b in batches:
        read_rows(split, b)
    t_rows = time.perf_counter() - t0
    plans = [StepPlan(b, b, np.ones((len(b), 3), dtype=bool)) for b in batches]
    t0 = time.perf_counter()
    for _ in Prefetcher(split, iter(plans), torch.device("cpu"), DistEnv(), depth=2):
        pass
    t_ahead = time.perf_counter() - t0
    n = sum(len(b) for b in batches)
    mb_file = sum(f[m].stat().st_size for f in files for m in MODALITIES) / len(files) / 1e6
    mb_row = sum(split.arrays[m][0].nbytes for m in MODALITIES) / 1e6
    return {"per_file": _rate(n, t_file), "packed": _rate(n, t_rows), "prefetch": _rate(n, t_ahead),
            "mb_per_file_sample": mb_file, "mb_per_packed_row": mb_row}


def bench_data_wait(root: Path, pack_dir: Path, batch: int, steps: int) -> dict[str, dict[str, float]]:
    from rfsense.models import build_model
    from rfsense.train.loop import _lr_lambda, train_one_epoch
    from rfsense.train.rundir import open_run_pack

    out = {}
    for depth in (0, 2):
        cfg = config_from_tree({
            "data": {"root": str(root), "pack_dir": str(pack_dir), "split": {"train_trials": list(SPLIT.train_trials)}},
            "model": {"preset": "edge"}, "dagr": {"enabled": False},
            "train": {"batch_size": batch, "prefetch": depth, "log_every": 0},
        })
        data = open_run_pack(cfg)
        train = data.split("train")
        rows = np.resize(np.arange(len(train)), batch * steps)  # `steps` full batches
        torch.manual_seed(0)
        model = build_model(cfg.model)
        model.set_norm_stats(data.stats.mean, data.stats.std)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(steps, 1))
        train_one_epoch(model, opt, sched, train, rows[: 2 * batch], cfg, 0, torch.device("cpu"))  # warm-up
        t0 = time.perf_counter()
        stats = train_one_epoch(model, opt, sched, train, rows, cfg, 1, torch.device("cpu"))
        seconds = time.perf_counter() - t0
        out[f"prefetch {depth}"] = {"wait_share": stats["data_wait"], "step_ms": 1e3 * seconds / steps}
    return out


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the pack workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def bench_pack(root: Path, tmp: Path, workers: list[int], chunk: int) -> tuple[dict[int, float], dict[int, float]]:
    """samples/s (wall) and CPU milliseconds per sample (all processes) of packing with each worker count."""
    n = sum(len(v) for v in split_samples(discover(root).samples, SPLIT).values())
    rates, cpu, first = {}, {}, None
    for w in workers:
        out = tmp / f"pack{w}"
        t0, c0 = time.perf_counter(), _cpu_seconds()
        p = pack(root, out, spec=SPLIT, chunk=chunk, workers=w)
        rates[w] = _rate(n, time.perf_counter() - t0)
        cpu[w] = 1e3 * (_cpu_seconds() - c0) / n
        content = ([(out / s / f"{m}.npy").read_bytes() for s in p.meta["splits"] for m in MODALITIES],
                   p.meta["raw_std"], p.meta["status_counts"])
        if first is None:
            first = content
        elif content != first:
            raise SystemExit(f"the pack made with {w} workers differs from the one made with {workers[0]}")
    return rates, cpu


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None, help="an XRF55-layout tree (default: synthesise one)")
    ap.add_argument("--volunteers", type=int, default=2)
    ap.add_argument("--actions", type=int, default=10)
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--read-batches", type=int, default=12, help="batches per read-throughput row")
    ap.add_argument("--steps", type=int, default=12, help="training steps per data-wait row")
    ap.add_argument("--pack-workers", default="1,2", help="worker counts to pack with")
    ap.add_argument("--chunk", type=int, default=8, help="pack chunk size (samples)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (default 1: the fastest step on a busy machine, so the hardest case "
                         "for data wait; 0: torch's default)")
    ap.add_argument("--json", type=Path, default=None, help="also write results here")
    ap.add_argument("--results", action="store_true", help="write this benchmark's section of RESULTS.md")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    workers = [int(w) for w in args.pack_workers.split(",")]

    tmp = Path(tempfile.mkdtemp(prefix="bench_loader_"))
    try:
        root = args.data
        if root is None:
            from rfsense.data.synth import SynthConfig, synthesize

            root = tmp / "xrf55"
            synthesize(root, SynthConfig(volunteers=args.volunteers, actions=args.actions, trials=args.trials),
                       workers=2)
        packs, pack_cpu = bench_pack(root, tmp, workers, args.chunk)
        from rfsense.data.pack import open_pack

        packed = open_pack(tmp / f"pack{workers[0]}")
        reads = bench_reads(root, packed, args.batch, args.read_batches)
        wait = bench_data_wait(root, tmp / f"pack{workers[0]}", args.batch, args.steps)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    n_samples = sum(packed.meta["splits"].values())
    lines = [f"{'row':<26}{'samples/s':>11}  note"]
    lines.append(f"{'per-file np.load':<26}{reads['per_file']:>11.1f}  3 raw files per sample, .float(), stack; "
                 f"{reads['mb_per_file_sample']:.2f} MB/sample; no preprocessing")
    lines.append(f"{'packed rows':<26}{reads['packed']:>11.1f}  {reads['packed'] / reads['per_file']:.1f}x per-file, "
                 f"synchronous; {reads['mb_per_packed_row']:.2f} MB/sample, preprocessed")
    lines.append(f"{'packed + prefetch':<26}{reads['prefetch']:>11.1f}  {reads['prefetch'] / reads['per_file']:.1f}x "
                 "per-file, 2 reader threads")
    for k, v in wait.items():
        lines.append(f"{'data wait, ' + k:<26}{'':>11}  {100 * v['wait_share']:.1f}% of step time "
                     f"({v['step_ms']:.0f} ms/step, edge, batch {args.batch}, DAGR off)")
    for w, r in packs.items():
        lines.append(f"{f'pack x{w}':<26}{r:>11.1f}  {n_samples} samples, chunk {args.chunk}, "
                     f"{pack_cpu[w]:.0f} CPU ms/sample (all processes)"
                     + (f", {r / packs[workers[0]]:.2f}x x{workers[0]}, byte-identical" if w != workers[0] else ""))
    head = (f"loader and packing: {n_samples} samples ({'synthetic' if args.data is None else args.data}), batch "
            f"{args.batch}, {torch.get_num_threads()} torch threads, load average {os.getloadavg()[0]:.1f} on "
            f"{os.cpu_count()} cores at the end")
    w2 = wait["prefetch 2"]["wait_share"]
    best = max(packs)
    headline = (f"data wait {100 * w2:.1f}% of step time with prefetch (goal <= 5%; {100 * wait['prefetch 0']['wait_share']:.1f}% "
                f"reading synchronously); packed rows read {reads['packed'] / reads['per_file']:.1f}x per-file np.load "
                f"({reads['packed']:.0f} vs {reads['per_file']:.0f} samples/s); pack x{best} "
                f"{packs[best] / packs[workers[0]]:.2f}x x{workers[0]} ({packs[best]:.1f} vs {packs[workers[0]]:.1f} samples/s)")
    result = {"samples": n_samples, "batch": args.batch, "reads_samples_per_s": reads, "data_wait": wait,
              "pack_samples_per_s": {str(k): v for k, v in packs.items()},
              "pack_cpu_ms_per_sample": {str(k): v for k, v in pack_cpu.items()}, "headline": headline}
    cmd = (f"python benchmarks/bench_loader.py --batch {args.batch} --steps {args.steps} --threads {args.threads} "
           f"--pack-workers {args.pack_workers} --chunk {args.chunk} --results")
    report("loader", "Loader and packing (bench_loader)", cmd, lines, headline, result, head=head,
           json_path=args.json, results=args.results)
    return result


if __name__ == "__main__":
    main()
