"""The training loop: `rfsense train CONFIG` ends here.

    run(load_config("configs/quickstart.yaml"))          # one seed
    run(cfg, seeds=[0, 42, 3407])                         # mean ± std over seeds

What a run folder holds and how it is opened, read and replaced: `rfsense.train.rundir`. Under torchrun
the same code runs in every process (`rfsense.train.distributed`); rank 0 alone writes the run folder.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import yaml

from rfsense._io import atomic_write_text
from rfsense.config import to_data
from rfsense.errors import ConfigError, DataError
from rfsense.modalities import MODALITIES
from rfsense.models import build_model
from rfsense.train.batches import draw_presence, draw_shift
from rfsense.train.checkpoint import load_checkpoint, save_checkpoint
from rfsense.train.config import RunConfig, config_tree
from rfsense.train.dagr import dagr_backward
from rfsense.train.distributed import DistEnv, env, gather_rows, joined, seed_rank, setup, unwrap, wrap
from rfsense.train.evaluate import eval_head, evaluate_run, mean_accuracy, validation_report
from rfsense.train.faults import corrupt_rows, plan_faults, preprocessed_scales
from rfsense.train.loader import Batch, Prefetcher, StepPlan, steps_per_epoch
from rfsense.train.pairing import SameClassPairer
from rfsense.train.report import aggregate_seeds
from rfsense.train.resume import restore_rng, rng_state, truncate_logs
from rfsense.train.rundir import (
    load_run_config,
    open_run_pack,
    prepare_run_dir,
    remove_run,
    run_pack_dir,
    write_results,
)
from rfsense.train.stages import fit_two_stage, prepare_stage, unimodal_loss

__all__ = ["fit", "resolve_device", "run", "task_loss", "train_one_epoch", "train_run", "train_step"]

_logger = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when a device is usable, else the CPU; 'cuda' without one is a ConfigError."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device: cuda requested but no CUDA device is available; use auto or cpu")
    if name in ("auto", "cuda") and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def _split_rows(labels_usable: np.ndarray, n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train/validation rows of the training split (rows with no usable modality are dropped)."""
    rows = np.flatnonzero(labels_usable)
    rng = np.random.default_rng([seed, 7919])
    perm = rng.permutation(rows)
    n_val = int(round(val_fraction * len(perm)))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def _lr_lambda(total_steps: int, warmup_steps: int):
    def f(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return f


def task_loss(model: torch.nn.Module, logits: torch.Tensor, z: torch.Tensor, present: torch.Tensor,
              y: torch.Tensor, unimodal_weight: float) -> torch.Tensor:
    """Fused cross-entropy + `unimodal_weight` x mean cross-entropy of each present modality's own head."""
    loss = F.cross_entropy(logits.float(), y)
    if unimodal_weight > 0:
        loss = loss + unimodal_weight * unimodal_loss(model, z, present, y)
    return loss


def _training_pairer(split: Any, rows: np.ndarray, seed: int) -> SameClassPairer:
    """DML pairer over `rows` only: partners are drawn from the training rows, never from validation rows."""
    in_rows = np.zeros(len(split), dtype=bool)
    in_rows[rows] = True
    return SameClassPairer(split.labels, split.usable & in_rows[:, None], seed=seed)


def _plan_steps(split: Any, rows: np.ndarray, tc: Any, epoch: int, n_steps: int) -> Iterator[StepPlan]:
    """Every random draw of an epoch, step by step, for the global batch: the same on every rank, for any
    prefetch depth (the loader reads ahead; the draws never depend on when it reads)."""
    rng = np.random.default_rng([tc.seed, epoch])
    order = rng.permutation(rows)
    pairer = _training_pairer(split, rows, tc.seed * 100_003 + epoch) if tc.pairing == "dml" else None
    for step in range(n_steps):
        idx = order[step * tc.batch_size : (step + 1) * tc.batch_size]
        read = pairer.pair(idx) if pairer is not None else idx
        shift = draw_shift(rng, len(idx), tc.time_shift)
        usable = split.usable[read, np.arange(3)] if np.ndim(read) == 2 else split.usable[idx]
        # stage backbones: every usable modality trains its own encoder and head; else X-Fi's presence draw
        present = usable.copy() if tc.stage == "backbones" else draw_presence(rng, usable, tc.keep_prob, tc.presence)
        yield StepPlan(idx, read, present, shift, plan_faults(rng, len(idx), tc.faults))


def train_step(model: torch.nn.Module, batch: Batch, cfg: RunConfig, e: DistEnv | None = None) -> dict[str, float]:
    """Forward and backward of one global batch (this rank's share of it under DDP); gradients land in .grad.

    The model's logits and z are gathered over ranks (`gather_rows`, the tensors themselves in one
    process), so the task loss and DAGR see the whole global batch on every rank, and the gradients DDP
    averages equal one process's gradients of that batch. Returns {"loss_task", "L_d", "L_a", "alpha"} (and
    "alpha_embeddings" where DAGR logs it).

    Stage backbones (X-Fi's stage 1) trains each present encoder with its own unimodal head, no fusion and
    no DAGR (one process: `fit` refuses it under torchrun).
    """
    e = e or env()
    tc, net = cfg.train, unwrap(model)
    device = batch.present.device
    # Skipping the encoders of modalities absent from a whole batch leaves their parameters unused, which
    # DistributedDataParallel does not allow: only in a single process.
    skip = e.world == 1
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=tc.amp and device.type == "cuda"):
        if tc.stage == "backbones":
            _, z_own = net.encode(batch.x["mmwave"], batch.x["wifi"], batch.x["rfid"], batch.present, skip_absent=skip)
        else:
            logits, z_own = model(batch.x["mmwave"], batch.x["wifi"], batch.x["rfid"], batch.present,
                                  return_features=True, skip_absent=skip)
    z = gather_rows(z_own, batch.n, e)
    present, y = batch.present_all, batch.y_all
    if tc.stage == "backbones":
        loss_task = unimodal_loss(net, z, present, y)
    else:
        loss_task = task_loss(net, gather_rows(logits, batch.n, e), z, present, y, tc.unimodal_weight)
    if cfg.dagr.enabled and tc.stage != "backbones":
        z_dagr, p_dagr = (z, present) if cfg.dagr.global_batch else (z_own, batch.present)
        # theta_e: the trainable encoder parameters (on frozen backbones, the projectors)
        enc = [p for p in net.encoder_parameters() if p.requires_grad]
        stats = dagr_backward(loss_task, z_dagr.float(), p_dagr, enc, cfg.dagr)
    else:
        loss_task.backward()
        stats = {"loss_task": float(loss_task.detach()), "L_d": float("nan"), "L_a": float("nan"), "alpha": float("nan")}
    if not skip:  # as one process skips them: an encoder absent from the whole batch takes no optimiser step
        for i, m in enumerate(MODALITIES):
            if not bool(present[:, i].any()):
                for p in net.encoders[m].parameters():
                    p.grad = None
    return stats


def train_one_epoch(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    split: Any,
    rows: np.ndarray,
    cfg: RunConfig,
    epoch: int,
    device: torch.device,
    step_log: Any = None,
    corrupt: Callable[..., Any] | None = None,
) -> dict[str, float]:
    """One pass over `rows` in a seeded order; returns the epoch's mean loss, L_d, L_a, α* and the share of
    the epoch spent waiting for data (`data_wait`). `corrupt` applies fault-aware training's planned faults
    (`rfsense.train.faults.corrupt_rows` bound to the pack's settings; None: off).

    `model` may be wrapped in DistributedDataParallel: each rank then trains on its share of every global
    batch, and the losses are computed on the gathered global batch (`rfsense.train.distributed`).
    """
    tc = cfg.train
    e = env()
    all_params = [p for p in model.parameters() if p.requires_grad]
    model.train()
    sums = {"loss": 0.0, "L_d": 0.0, "L_a": 0.0, "alpha": 0.0, "alpha_gap": 0.0}
    n_alpha = n_gap = 0
    n_steps = steps_per_epoch(len(rows), tc.batch_size, e.world)
    loader = Prefetcher(split, _plan_steps(split, rows, tc, epoch, n_steps), device, e, tc.prefetch, corrupt)
    t0 = time.monotonic()
    for step, batch in enumerate(loader):
        optimizer.zero_grad(set_to_none=True)
        stats = train_step(model, batch, cfg, e)
        if tc.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(all_params, tc.grad_clip)
        optimizer.step()
        scheduler.step()
        sums["loss"] += stats["loss_task"]
        for k in ("L_d", "L_a"):
            sums[k] += stats[k] if math.isfinite(stats[k]) else 0.0
        if math.isfinite(stats["alpha"]):
            sums["alpha"] += stats["alpha"]
            n_alpha += 1
        if "alpha_embeddings" in stats:  # how far pareto_space embeddings' alpha* is from the faithful one
            sums["alpha_gap"] += abs(stats["alpha_embeddings"] - stats["alpha"])
            n_gap += 1
        if step_log is not None:
            row = {"epoch": epoch, "step": step, "lr": scheduler.get_last_lr()[0], **stats}
            step_log.write(json.dumps(to_data(row)) + "\n")
        if tc.log_every and (step + 1) % tc.log_every == 0:
            rate = (step + 1) / (time.monotonic() - t0)
            _logger.info(
                "epoch %d [%d/%d] loss %.3f L_d %.3f L_a %.4f alpha %.2f  %.1f step/s",
                epoch + 1, step + 1, n_steps, stats["loss_task"], stats["L_d"], stats["L_a"], stats["alpha"], rate,
            )
    out = {k: v / max(1, n_steps) for k, v in sums.items() if not k.startswith("alpha")}
    out["alpha"] = sums["alpha"] / n_alpha if n_alpha else float("nan")
    if n_gap:  # mean |alpha*(embeddings) - alpha*(params)| over the epoch
        out["alpha_gap"] = sums["alpha_gap"] / n_gap
    out["data_wait"] = loader.wait_s / max(time.monotonic() - t0, 1e-9)
    return out


def _open_pack_once(cfg: RunConfig, e: DistEnv) -> Any:
    """The run's pack; on first use the first process of each machine packs it and the others wait for it
    on the file system (not in a collective: packing XRF55 takes far longer than a collective's timeout)."""
    if e.local_rank != 0:
        marker = run_pack_dir(cfg) / "pack.json"
        while not marker.is_file():
            time.sleep(0.5)
    return open_run_pack(cfg)


def fit(cfg: RunConfig, run_dir: Path | None = None, resume: bool = False, overwrite: bool = False,
        stop_after: int | None = None) -> dict[str, Any]:
    """Train one seed into `run_dir` and evaluate best.pt on the test split; returns the results dict.

    `stop_after` ends training after that many epochs in this call (used to test resume equivalence).
    Under torchrun every process calls it; rank 0 alone writes the run folder and returns the results
    (the other ranks return {}).
    """
    e = setup(resolve_device(cfg.train.device))
    if e.world > 1 and cfg.train.stage in ("backbones", "xfi"):  # every rank, before any collective or file
        raise ConfigError(f"train.stage {cfg.train.stage}: the backbones stage trains in one process (its encoders "
                          "bypass the DistributedDataParallel wrapper); run it without torchrun")
    run_dir = Path(run_dir or cfg.run_dir)
    busy = False
    if e.is_main:  # the run folder is rank 0's: the others wait until it is checked
        busy = prepare_run_dir(run_dir, run_dir.parent if run_dir != cfg.run_dir else Path(cfg.out_dir), resume,
                               overwrite)
        if resume and not busy:
            raise ConfigError(f"--resume: run folder {run_dir} does not exist")
    e.barrier()
    if resume:
        saved = load_run_config(run_dir)
        if saved != cfg:
            _logger.warning("--resume: the config differs from %s; continuing with the saved one", run_dir / "config.yaml")
            cfg = saved
    tc = cfg.train
    if tc.batch_size < e.world:
        raise ConfigError(f"train.batch_size {tc.batch_size} is below the {e.world} processes; it is the global "
                          "batch, split across them")
    data = _open_pack_once(cfg, e)  # before --overwrite deletes anything: a bad data root leaves the old run intact
    if e.is_main:
        if overwrite and busy:
            remove_run(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        if not resume:
            atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(config_tree(cfg), sort_keys=False))
    e.barrier()
    if tc.stage == "xfi":
        return fit_two_stage(cfg, run_dir, data, resume, stop_after)
    return train_run(cfg, run_dir, data, resume, stop_after)


def train_run(cfg: RunConfig, run_dir: Path, data: Any, resume: bool = False,
              stop_after: int | None = None) -> dict[str, Any]:
    """The training of `fit` in a prepared run folder (config.yaml written); `data` is the opened pack.
    Every process calls it under torchrun; rank 0 alone writes and returns the results."""
    e = env()
    tc = cfg.train
    if tc.threads:
        torch.set_num_threads(tc.threads)
    device = e.device if e.world > 1 else resolve_device(tc.device)
    train, test = data.split("train"), data.split("test")
    train_rows, val_rows = _split_rows(train.usable.any(axis=1), len(train), tc.val_fraction, tc.seed)
    if len(train_rows) == 0:
        raise DataError(f"no usable training samples in {data.path}")

    torch.manual_seed(tc.seed)
    model_cfg = cfg.model
    model = build_model(model_cfg)
    model.set_norm_stats(data.stats.mean, data.stats.std)
    model.to(device)
    seed_rank(tc.seed, e)  # dropout: each rank its own stream after the identical initialisation
    if e.world > 1 and tc.unimodal_weight == 0:  # DDP waits for a gradient of every trainable parameter
        model.unimodal_heads.requires_grad_(False)
    trainable = prepare_stage(model, cfg)  # stage fusion: loads and freezes the backbones
    optimizer = torch.optim.AdamW(trainable, lr=tc.lr, weight_decay=tc.weight_decay)
    n_steps = steps_per_epoch(len(train_rows), tc.batch_size, e.world)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _lr_lambda(tc.epochs * n_steps, max(1, int(tc.warmup_epochs * n_steps)))
    )
    start_epoch, best = 0, -1.0
    if resume and (run_dir / "last.pt").is_file():
        state = load_checkpoint(run_dir / "last.pt")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        restore_rng(state, e, device)
        start_epoch, best = int(state["epoch"]) + 1, float(state["best"])
        if e.is_main:
            truncate_logs(run_dir, int(state["epoch"]))  # rows a killed run wrote after its last checkpoint
        _logger.info("resuming %s at epoch %d", run_dir, start_epoch + 1)
    ddp = wrap(model, e)
    corrupt = None
    if tc.faults.names:  # fault-aware training: the pack's own settings decide what a fault leaves usable
        corrupt = functools.partial(corrupt_rows, cfg=tc.faults, scales=preprocessed_scales(data.stats),
                                    prep=data.preprocessing, quality=cfg.data.quality)
    n_params = sum(p.numel() for p in model.parameters())
    n_train = sum(p.numel() for p in trainable)
    use_dagr = cfg.dagr.enabled and tc.stage != "backbones"
    _logger.info(
        "training %s (stage %s): %s preset, %.2fM parameters (%.2fM trained), %d train / %d val / %d test samples, "
        "device %s%s, DAGR %s",
        run_dir, tc.stage, model_cfg.preset, n_params / 1e6, n_train / 1e6, len(train_rows), len(val_rows), len(test),
        device, f" x {e.world} processes" if e.world > 1 else "",
        f"{cfg.dagr.mode}/{cfg.dagr.pareto_space}" if use_dagr else "off",
    )
    head = eval_head(tc.stage)
    mode = "a" if resume else "w"
    with ExitStack() as logs:
        mlog = logs.enter_context(open(run_dir / "metrics.jsonl", mode)) if e.is_main else None
        slog = logs.enter_context(open(run_dir / "steps.jsonl", mode)) if e.is_main else None
        for epoch in range(start_epoch, tc.epochs):
            if stop_after is not None and epoch >= start_epoch + stop_after:
                return {}
            t0 = time.monotonic()
            stats = train_one_epoch(ddp, optimizer, scheduler, train, train_rows, cfg, epoch, device, slog, corrupt)
            rngs = rng_state(e, device)  # a collective: every rank, every epoch
            if not e.is_main:
                continue
            seconds = round(time.monotonic() - t0, 2)
            val, geometry = (
                validation_report(model, train, val_rows, device, tc.eval_batch_size, cfg.dagr.tau, head)
                if len(val_rows) else ({}, None)
            )
            score = mean_accuracy(val) if val else float(epoch)  # no validation rows: best = last
            row = {"epoch": epoch + 1, **stats, "lr": scheduler.get_last_lr()[0],
                   "val": {k: v["acc"] for k, v in val.items()}, "val_mean": score if val else None,
                   "seconds": seconds, "geometry": geometry}
            mlog.write(json.dumps(to_data(row)) + "\n")
            mlog.flush()
            slog.flush()
            state = {
                "model": model.state_dict(), "model_config": to_data(model_cfg),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                **rngs, "epoch": epoch, "best": max(best, score),
            }
            if score > best:
                best = score
                save_checkpoint(run_dir / "best.pt", {"model": state["model"], "model_config": state["model_config"],
                                                      "epoch": epoch, "val_mean": score})
            save_checkpoint(run_dir / "last.pt", state)
            _logger.info(
                "epoch %d/%d  loss %.3f  L_d %.3f  L_a %.4f  alpha %.2f  val %s  (%.0fs)",
                epoch + 1, tc.epochs, stats["loss"], stats["L_d"], stats["L_a"], stats["alpha"],
                f"{100 * score:.1f}%" if val else "-", row["seconds"],
            )
    return evaluate_run(run_dir, device=device) if e.is_main else {}


def run(cfg: RunConfig, seeds: list[int] | None = None, resume: bool = False, overwrite: bool = False) -> dict[str, Any]:
    """Train one run, or one per seed under RUN/seed<k>/ and aggregate them (mean ± std).

    Under torchrun every process calls it (the process group is joined here and left at the end); rank 0
    returns the results, the other ranks {}.
    """
    with joined(resolve_device(cfg.train.device)) as e:
        return _run_seeds(cfg, e, seeds, resume, overwrite)


def _run_seeds(cfg: RunConfig, e: DistEnv, seeds: list[int] | None, resume: bool, overwrite: bool) -> dict[str, Any]:
    """`run`'s body, inside the process group."""
    if not seeds:
        return fit(cfg, resume=resume, overwrite=overwrite)
    root = cfg.run_dir
    busy = False
    if e.is_main:
        busy = prepare_run_dir(root, Path(cfg.out_dir), resume, overwrite)
    _open_pack_once(cfg, e)  # before --overwrite deletes anything (packs once; the seeds reuse it)
    if e.is_main and overwrite and busy:
        remove_run(root)
    e.barrier()
    results = []
    for seed in seeds:
        seeded = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=seed))
        sub = root / f"seed{seed}"
        results.append(fit(seeded, run_dir=sub, resume=resume and sub.exists(), overwrite=False))
    if not e.is_main:
        return {}
    agg = aggregate_seeds(results)
    agg["seeds"] = [f"seed{s}" for s in seeds]
    return write_results(root, agg, title=f"{root.name} ({len(seeds)} seeds)")
