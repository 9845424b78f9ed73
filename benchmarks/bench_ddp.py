"""Multi-process training (torchrun's engine): one process against N, same global batch, same data.

    .venv/bin/python benchmarks/bench_ddp.py                      # CPU: 1 process x 2 threads vs 2 x 1 (gloo)
    .venv/bin/python benchmarks/bench_ddp.py --nproc 4 --results  # on a 4-GPU machine: NCCL, one GPU per rank

Trains the edge preset on a synthetic set for --epochs epochs twice: `rfsense train CONFIG` (one process,
all --threads threads) and `rfsense train CONFIG --nproc N` (N processes sharing the threads; NCCL and one
GPU each when CUDA is there, else gloo). Dropout is 0, so both runs see the same batches, masks and
gradients up to float rounding; the table shows training samples/s of each (from metrics.jsonl, epoch 1
excluded as warm-up) and how far the per-step losses and alpha* of the two runs drift apart. Prints the
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

from _results import machine_line, write_section  # noqa: E402

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
        runs = {}
        for nproc in (1, args.nproc):
            threads = max(1, args.threads // nproc)
            tree = {"name": f"p{nproc}", "out_dir": str(tmp / "runs"),
                    "data": {"root": str(root), "split": {"train_trials": [1, 2, 3, 4]}},
                    "model": {"preset": "edge", "dropout": 0.0},
                    "train": {"epochs": args.epochs, "batch_size": args.batch, "val_fraction": 0.0, "log_every": 0,
                              "threads": threads, "device": "cuda" if cuda else "cpu"}}
            cfg = tmp / f"p{nproc}.yaml"
            cfg.write_text(yaml.safe_dump(tree))
            _train(cfg, nproc, threads)
            runs[nproc] = tmp / "runs" / f"p{nproc}"
        n_train = len(split_samples(discover(root).samples, SplitSpec(train_trials=(1, 2, 3, 4)))["train"])
        out: dict[int, dict[str, float]] = {}
        for nproc, run in runs.items():
            epochs = _rows(run, "metrics.jsonl")[1:] or _rows(run, "metrics.jsonl")
            seconds = sum(r["seconds"] for r in epochs) / len(epochs)
            out[nproc] = {"samples_per_s": n_train / seconds, "epoch_s": seconds,
                          "data_wait": sum(r["data_wait"] for r in epochs) / len(epochs)}
        one, many = _rows(runs[1], "steps.jsonl"), _rows(runs[args.nproc], "steps.jsonl")
        d_loss = max(abs(a["loss_task"] - b["loss_task"]) / abs(b["loss_task"]) for a, b in zip(many, one, strict=True))
        d_alpha = max(abs(a["alpha"] - b["alpha"]) for a, b in zip(many, one, strict=True))
        first = abs(many[0]["loss_task"] - one[0]["loss_task"]) / abs(one[0]["loss_task"])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    where = torch.cuda.get_device_name(0) if cuda else "cpu"
    head = (f"edge, global batch {args.batch}, {n_train} training samples, {args.epochs} epochs, DAGR pareto/params, "
            f"device {where}, {args.threads} CPU threads in all")
    lines = [f"{'run':<34}{'samples/s':>10}{'epoch s':>9}{'data wait':>11}"]
    for nproc, r in out.items():
        label = "1 process" if nproc == 1 else f"{nproc} processes ({backend}, torchrun)"
        lines.append(f"{label:<34}{r['samples_per_s']:>10.1f}{r['epoch_s']:>9.1f}{100 * r['data_wait']:>10.1f}%")
    lines.append(f"agreement over {len(one)} steps: loss max rel diff {d_loss:.1e} (step 1: {first:.1e}), "
                 f"alpha* max abs diff {d_alpha:.1e}")
    speed = out[args.nproc]["samples_per_s"] / out[1]["samples_per_s"]
    headline = (f"DDP {args.nproc} processes ({backend}, {where}): {speed:.2f}x the samples/s of 1 process "
                f"({out[args.nproc]['samples_per_s']:.1f} vs {out[1]['samples_per_s']:.1f}); same training to "
                f"{first:.0e} on step 1, {d_loss:.0e} after {len(one)} AdamW steps")
    result = {"nproc": args.nproc, "backend": backend, "device": where, "runs": {str(k): v for k, v in out.items()},
              "loss_max_rel_diff": d_loss, "alpha_max_abs_diff": d_alpha, "headline": headline}
    print(head)
    print("\n".join(lines))
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    if args.results:
        cmd = f"python benchmarks/bench_ddp.py --nproc {args.nproc} --threads {args.threads} --epochs {args.epochs} --results"
        note = ("On a 2-core CPU, N processes share the same 2 cores, so this row shows that DDP trains the same "
                "model at about the same speed (gloo all-reduce and the all-gather included), not a speed-up; on "
                "N GPUs each rank brings its own device.") if not cuda else ""
        write_section("ddp", f"## Multi-process training (bench_ddp)\n\n`{cmd}`\n\n{machine_line()}\n\n{head}\n\n"
                             "```\n" + "\n".join(lines) + f"\n```\n\n{note}\n\n{headline}\n")
    print(headline)
    return result


if __name__ == "__main__":
    main()
