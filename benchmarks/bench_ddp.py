"""Multi-process training (torchrun's engine): one process against N, same global batch, same data.

    .venv/bin/python benchmarks/bench_ddp.py                      # CPU: 1 process x 2 threads vs 2 x 1 (gloo)
    .venv/bin/python benchmarks/bench_ddp.py --nproc 4 --results  # on a 4-GPU machine: NCCL, one GPU per rank

Trains the edge preset on a synthetic set for --epochs epochs three times: `rfsense train CONFIG` with one
thread, the same with all --threads threads, and `rfsense train CONFIG --nproc N` (N processes sharing the
threads; NCCL and one GPU each when CUDA is there, else gloo). Dropout is 0, so the runs see the same
batches, masks and gradients up to float rounding; the table shows training samples/s of each (from
metrics.jsonl, epoch 1 excluded as warm-up) and how far the per-step losses and alpha* of the N-process run
drift from the one-process run with all threads. On a busy machine a multi-threaded process can be much
slower than a single-threaded one (its threads wait for each other at every operation), which is why
the one-thread row is there. Prints the
table, JSON, and the headline last; --results writes this benchmark's section of RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import report  # noqa: E402

from rfsense.data.layout import SplitSpec, discover, split_samples  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _train(cfg: Path, nproc: int, threads: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-m", "rfsense", "-q", "train", str(cfg), "--overwrite"] + (
        ["--nproc", str(nproc)] if nproc > 1 else [])
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"training with {nproc} process(es) failed:\n{r.stderr[-2000:]}")


def _rows(run: Path, name: str) -> list[dict]:
    return [json.loads(line) for line in (run / name).read_text().splitlines()]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2, help="CPU threads in all (each of N processes gets threads/N)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=16, help="global batch")
    ap.add_argument("--volunteers", type=int, default=2)
    ap.add_argument("--actions", type=int, default=8)
    ap.add_argument("--trials", type=int, default=6)
    ap.add_argument("--json", type=Path, default=None, help="also write results here")
    ap.add_argument("--results", action="store_true", help="write this benchmark's section of RESULTS.md")
    args = ap.parse_args(argv)
    cuda = torch.cuda.is_available() and torch.cuda.device_count() >= args.nproc
    backend = "nccl" if cuda else "gloo"

    tmp = Path(tempfile.mkdtemp(prefix="bench_ddp_"))
    try:
        from rfsense.data.synth import SynthConfig, synthesize

        root = tmp / "xrf55"
        synthesize(root, SynthConfig(volunteers=args.volunteers, actions=args.actions, trials=args.trials), workers=2)
        runs: dict[str, Path] = {}
        plan = {"1x1": (1, 1), f"1x{args.threads}": (1, args.threads),
                f"{args.nproc}x{max(1, args.threads // args.nproc)}": (args.nproc, max(1, args.threads // args.nproc))}
        for key, (nproc, threads) in plan.items():
            tree = {"name": f"p{key}", "out_dir": str(tmp / "runs"),
                    "data": {"root": str(root), "split": {"train_trials": [1, 2, 3, 4]}},
                    "model": {"preset": "edge", "dropout": 0.0},
                    "train": {"epochs": args.epochs, "batch_size": args.batch, "val_fraction": 0.0, "log_every": 0,
                              "threads": threads, "device": "cuda" if cuda else "cpu"}}
            cfg = tmp / f"p{key}.yaml"
            cfg.write_text(yaml.safe_dump(tree))
            _train(cfg, nproc, threads)
            runs[key] = tmp / "runs" / f"p{key}"
        n_train = len(split_samples(discover(root).samples, SplitSpec(train_trials=(1, 2, 3, 4)))["train"])
        out: dict[str, dict[str, float]] = {}
        for key, run in runs.items():
            epochs = _rows(run, "metrics.jsonl")[1:] or _rows(run, "metrics.jsonl")
            seconds = sum(r["seconds"] for r in epochs) / len(epochs)
            out[key] = {"samples_per_s": n_train / seconds, "epoch_s": seconds,
                        "data_wait": sum(r["data_wait"] for r in epochs) / len(epochs)}
        k1, kt, kn = plan
        one, many = _rows(runs[kt], "steps.jsonl"), _rows(runs[kn], "steps.jsonl")
        d_loss = max(abs(a["loss_task"] - b["loss_task"]) / abs(b["loss_task"]) for a, b in zip(many, one, strict=True))
        d_alpha = max(abs(a["alpha"] - b["alpha"]) for a, b in zip(many, one, strict=True))
        first = abs(many[0]["loss_task"] - one[0]["loss_task"]) / abs(one[0]["loss_task"])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    where = torch.cuda.get_device_name(0) if cuda else "cpu"
    head = (f"edge, global batch {args.batch}, {n_train} training samples, {args.epochs} epochs, DAGR pareto/params, "
            f"device {where}, {args.threads} CPU threads in all, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} "
            "cores")
    lines = [f"{'run':<40}{'samples/s':>10}{'epoch s':>9}{'data wait':>11}"]
    for key, r in out.items():
        nproc, threads = plan[key]
        label = (f"1 process x {threads} thread(s)" if nproc == 1
                 else f"{nproc} processes x {threads} ({backend}, torchrun)")
        lines.append(f"{label:<40}{r['samples_per_s']:>10.1f}{r['epoch_s']:>9.1f}{100 * r['data_wait']:>10.1f}%")
    lines.append(f"agreement over {len(one)} steps: loss max rel diff {d_loss:.1e} (step 1: {first:.1e}), "
                 f"alpha* max abs diff {d_alpha:.1e}")
    speed = out[kn]["samples_per_s"] / out[kt]["samples_per_s"]
    headline = (f"DDP {args.nproc} processes ({backend}, {where}): {speed:.2f}x the samples/s of 1 process with the "
                f"same {args.threads} threads, {out[kn]['samples_per_s'] / out[k1]['samples_per_s']:.2f}x 1 process x 1 "
                f"thread ({out[kn]['samples_per_s']:.1f} vs {out[kt]['samples_per_s']:.1f} vs "
                f"{out[k1]['samples_per_s']:.1f} samples/s); same training to {first:.0e} on step 1, {d_loss:.0e} after "
                f"{len(one)} AdamW steps")
    result = {"nproc": args.nproc, "backend": backend, "device": where, "runs": out,
              "loss_max_rel_diff": d_loss, "alpha_max_abs_diff": d_alpha, "headline": headline}
    cmd = f"python benchmarks/bench_ddp.py --nproc {args.nproc} --threads {args.threads} --epochs {args.epochs} --results"
    note = ("On a CPU, N processes share the machine's cores: this shows that DDP trains the same model "
            "(gloo all-reduce and all-gather included) and what one thread per process gains over one "
            "multi-threaded process on this machine; on N GPUs each rank brings its own device.") if not cuda else ""
    report("ddp", "Multi-process training (bench_ddp)", cmd, lines, headline, result, head=head, note=note,
           json_path=args.json, results=args.results)
    return result


if __name__ == "__main__":
    main()
