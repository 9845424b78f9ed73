"""What `--resume` needs beyond weights and optimizer: every rank's generator state, and logs cut back to the
checkpoint, so a run killed at any moment and resumed equals one that was never interrupted.

The data order, presence masks, pairing and time shifts are seeded per epoch (`loop._plan_steps`), so
they need no saved state; torch's generators (dropout) do, one per rank.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from rfsense._io import atomic_write_text
from rfsense.train.distributed import DistEnv, gather_rng_states, seed_rank

__all__ = ["restore_rng", "rng_state", "truncate_logs"]

_logger = logging.getLogger(__name__)


def rng_state(e: DistEnv, device: torch.device) -> dict[str, torch.Tensor]:
    """Checkpoint entries for the generators: 'torch_rng' (this process; rank 0's under torchrun), plus
    'rank_rng' (world, n) in a multi-process job and 'cuda_rng' (world, n) on CUDA.

    A collective under torchrun: every rank must call it.
    """
    out = {"torch_rng": torch.get_rng_state()}
    if e.world > 1:
        out["rank_rng"] = gather_rng_states(e, out["torch_rng"])
    if device.type == "cuda":
        out["cuda_rng"] = gather_rng_states(e, torch.cuda.get_rng_state(device))
    return out


def restore_rng(state: dict[str, Any], e: DistEnv, device: torch.device) -> None:
    """Put this rank's generators back as `rng_state` saved them.

    Resuming with another number of processes keeps the data and masks (they are drawn for the global
    batch) but not the dropout draws; that is logged.
    """
    ranks = state.get("rank_rng")
    if e.world == 1 and ranks is None:
        torch.set_rng_state(state["torch_rng"])
    elif ranks is not None and len(ranks) == e.world:
        torch.set_rng_state(ranks[e.rank].clone())
    else:
        saved = 1 if ranks is None else len(ranks)
        _logger.warning("--resume: the run was trained by %d process(es), now %d: dropout draws continue from new "
                        "seeds (data order and masks are unchanged)", saved, e.world)
        torch.set_rng_state(state["torch_rng"])
        seed_rank(int(state["epoch"]) + 1, e)
    cuda = state.get("cuda_rng")
    if device.type == "cuda" and cuda is not None and len(cuda) == e.world:
        torch.cuda.set_rng_state(cuda[e.rank].clone(), device)


def truncate_logs(run_dir: Path, epoch: int) -> None:
    """Drop metrics.jsonl and steps.jsonl rows written after the checkpoint of 0-based `epoch` (and a line a
    kill cut short), so the resumed run appends exactly where the checkpoint left off."""
    for name, last in (("metrics.jsonl", epoch + 1), ("steps.jsonl", epoch)):  # metrics count epochs from 1
        path = run_dir / name
        if not path.is_file():
            continue
        keep = []
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                break  # the line a kill cut short; nothing valid follows it
            if row.get("epoch", last + 1) > last:
                break
            keep.append(line + "\n")
        atomic_write_text(path, "".join(keep))
