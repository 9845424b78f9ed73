"""Forward+backward time per training step of a preset on the CPU, DAGR off vs on.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_model.py                 # edge, batch 16
    PYTHONPATH=. .venv/bin/python benchmarks/bench_model.py --steps 20 --json out.json

Variants, timed in the same run and interleaved round-robin (so load from other processes on a
shared machine hits all of them alike): DAGR off (plain CE backward), pareto/params (faithful:
three backward passes through the encoders), pareto/embeddings (alpha from z-gradients, one
backward), fixed weights. Reports p50/mean ms per step and the p50 ratio to DAGR off; the table goes
to stdout, the numbers also to JSON. Mixed modality subsets per batch, as in training.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rfsense.modalities import MODALITIES, N_CLASSES, SHAPES  # noqa: E402
from rfsense.models import build_model  # noqa: E402
from rfsense.train.dagr import DagrConfig, dagr_backward  # noqa: E402

VARIANTS: dict[str, DagrConfig | None] = {
    "dagr_off": None,
    "pareto_params": DagrConfig(mode="pareto", pareto_space="params"),
    "pareto_embeddings": DagrConfig(mode="pareto", pareto_space="embeddings"),
    "fixed": DagrConfig(mode="fixed"),
}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="edge")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per variant")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--json", type=Path, default=None, help="also write results here")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    model = build_model(args.preset).train()
    n_params = sum(p.numel() for p in model.parameters())
    enc_params = list(model.encoder_parameters())
    xs = [torch.randn(args.batch, *SHAPES[m]) for m in MODALITIES]
    present = torch.rand(args.batch, len(MODALITIES)) < 0.7
    present[:, 1] |= ~present.any(dim=1)  # no empty samples
    y = torch.randint(0, N_CLASSES, (args.batch,))

    def step(cfg: DagrConfig | None) -> float:
        model.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        logits, z = model.forward_features(*xs, present)
        loss = F.cross_entropy(logits, y)
        if cfg is None:
            loss.backward()
        else:
            dagr_backward(loss, z, present, enc_params, cfg)
        return (time.perf_counter() - t0) * 1e3

    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(args.warmup):
        for cfg in VARIANTS.values():
            step(cfg)
    for _ in range(args.steps):
        for name, cfg in VARIANTS.items():
            times[name].append(step(cfg))

    base = statistics.median(times["dagr_off"])
    rows = {
        name: {
            "p50_ms": statistics.median(ts),
            "mean_ms": statistics.fmean(ts),
            "min_ms": min(ts),
            "ratio_vs_off_p50": statistics.median(ts) / base,
        }
        for name, ts in times.items()
    }
    result = {
        "preset": args.preset,
        "batch": args.batch,
        "steps": args.steps,
        "parameters": n_params,
        "encoder_parameters": sum(p.numel() for p in enc_params),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "variants": rows,
    }
    print(
        f"{args.preset}: {n_params / 1e6:.2f}M params, batch {args.batch}, {args.steps} steps, "
        f"{torch.get_num_threads()} threads, forward+backward per step"
    )
    print(f"{'variant':<20}{'p50 ms':>10}{'mean ms':>10}{'min ms':>10}{'x off':>8}")
    for name, r in rows.items():
        print(
            f"{name:<20}{r['p50_ms']:>10.1f}{r['mean_ms']:>10.1f}{r['min_ms']:>10.1f}{r['ratio_vs_off_p50']:>8.2f}"
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
