"""One `train_step` per DAGR variant in each process of a torchrun job; rank 0 saves the gradients.

    python -m torch.distributed.run --standalone --nproc_per_node 2 -m tests.train.ddp_step_worker OUT

Started by tests/train/test_distributed.py, which computes the same steps in one process and compares.
The global batch (GLOBAL_BATCH rows) does not divide evenly over 2 ranks on purpose.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from rfsense.modalities import MODALITIES, N_CLASSES, SHAPES
from rfsense.models import build_model
from rfsense.train.config import config_from_tree
from rfsense.train.distributed import DistEnv, joined, wrap
from rfsense.train.loader import Batch
from rfsense.train.loop import train_step

GLOBAL_BATCH = 5
VARIANTS = {
    "off": {"enabled": False},
    "fixed": {"mode": "fixed"},
    "params": {"mode": "pareto", "pareto_space": "params"},
    "embeddings": {"mode": "pareto", "pareto_space": "embeddings"},
    "params_per_rank": {"mode": "pareto", "pareto_space": "params", "global_batch": False},
}


def make_case(variant: str):
    """(model, run config, global inputs) for `variant`, identical in every process."""
    cfg = config_from_tree({"model": {"preset": "edge", "dropout": 0.0, "d": 32, "heads": 2},
                            "train": {"unimodal_weight": 0.5}, "dagr": VARIANTS[variant]})
    torch.manual_seed(0)
    model = build_model(cfg.model).train()
    g = torch.Generator().manual_seed(1)
    x = {m: torch.randn(GLOBAL_BATCH, *SHAPES[m], generator=g) for m in MODALITIES}
    present = torch.tensor([(1, 1, 1), (1, 0, 1), (0, 1, 1), (1, 1, 0), (1, 1, 1)], dtype=torch.bool)
    y = torch.randint(0, N_CLASSES, (GLOBAL_BATCH,), generator=g)
    return model, cfg, x, present, y


def batch_for(e: DistEnv, x: dict, present: torch.Tensor, y: torch.Tensor) -> Batch:
    """This rank's share of the global batch, as the loader hands it out."""
    sl = e.shard(len(y))
    return Batch({m: t[sl] for m, t in x.items()}, present[sl], present, y, len(y))


def main(out: Path) -> None:
    torch.set_num_threads(1)
    with joined(torch.device("cpu")) as e:
        for variant in VARIANTS:
            model, cfg, x, present, y = make_case(variant)
            stats = train_step(wrap(model, e), batch_for(e, x, present, y), cfg, e)
            if e.is_main:
                grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
                torch.save({"grads": grads, "stats": stats}, out / f"{variant}.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
