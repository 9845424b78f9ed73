"""`rfsense train CONFIG --nproc N`: start N training processes on this machine through torchrun's engine.

    rfsense train configs/xrf55.yaml --nproc 2
    # the same as: torchrun --standalone --nproc_per_node 2 -m rfsense train configs/xrf55.yaml

A process that fails stops the job: torch's elastic agent ends the others at once (no rank is left waiting
in a collective), and this launcher reports the failing rank's error as one line. A rank's expected error
(RFSenseError) reaches the launcher through torchelastic's error file (`record_rank_error`), so under
plain torchrun its summary names it too. Importing this module does not import torch.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
import uuid

from rfsense.errors import RFSenseError

__all__ = ["RankFailed", "launch", "record_rank_error"]

_LAUNCHED = "RFSENSE_LAUNCHED"  # set for the ranks `launch` starts: it prints their errors, once


class RankFailed(RFSenseError):
    """A training process of a multi-process job failed; the message names the rank and its error."""


def record_rank_error(message: str) -> bool:
    """In a torchrun worker, write `message` to torchelastic's error file for the agent to report.

    Returns:
        True when the rank was started by `launch`, which prints the message itself (the rank stays
        silent, so N failing ranks do not print N copies); False otherwise, including outside torchrun.
    """
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if not path:
        return False
    try:
        with open(path, "w") as f:
            json.dump({"message": message, "timestamp": int(time.time())}, f)
    except OSError:
        return False
    return os.environ.get(_LAUNCHED) == "1"


def launch(nproc: int, args: list[str]) -> None:
    """Run `python -m rfsense *args` in `nproc` processes (one machine) and wait for them.

    Args:
        nproc: processes (ranks); on a CUDA machine one per GPU.
        args: the rfsense command line for every rank, e.g. ["train", "cfg.yaml", "--set", "train.epochs=5"].

    Raises:
        RankFailed: a rank failed; names the first failure (an error in a rank before the SIGTERM the
            agent sends to the others).
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    for name in ("torch.distributed.elastic", "torch.distributed.launcher"):  # the agent's chatter
        logging.getLogger(name).setLevel(logging.CRITICAL)
    config = LaunchConfig(
        min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=f"rfsense-{uuid.uuid4().hex[:8]}",
        rdzv_backend="c10d", rdzv_endpoint="localhost:0",  # torchrun --standalone: a free port
        max_restarts=0, monitor_interval=0.1,
    )
    os.environ[_LAUNCHED] = "1"
    try:
        elastic_launch(config, entrypoint=sys.executable)("-u", "-m", "rfsense", *args)
    except ChildFailedError as err:
        raise RankFailed(_describe(err.failures)) from None
    finally:
        os.environ.pop(_LAUNCHED, None)


def _describe(failures: dict) -> str:
    """One line for the root cause among the failed ranks."""

    def rank_of(item: tuple) -> tuple:
        rank, f = item
        stopped = f.exitcode == -signal.SIGTERM  # ended by the agent because another rank failed
        no_message = f.message.startswith("To enable traceback")
        return (stopped, no_message, f.timestamp, rank)

    rank, f = min(failures.items(), key=rank_of)
    if f.exitcode < 0:
        return f"training process rank {rank} was killed ({f.message})"
    if f.message.startswith("To enable traceback"):
        return f"training process rank {rank} failed with exit code {f.exitcode}; its traceback is above"
    return f"rank {rank}: {f.message}"
