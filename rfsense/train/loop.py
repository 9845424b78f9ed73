"""The training loop: `rfsense train CONFIG` ends here.

    run(load_config("configs/quickstart.yaml"))          # one seed
    run(cfg, seeds=[0, 42, 3407])                         # mean ± std over seeds

What a run folder holds and how it is opened, read and replaced: `rfsense.train.rundir`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import yaml

from rfsense._io import atomic_write_text
from rfsense.config import to_data
from rfsense.errors import ConfigError, DataError
from rfsense.models import build_model
from rfsense.train.batches import draw_presence, mixup, read_rows, time_shift
from rfsense.train.checkpoint import load_checkpoint, save_checkpoint
from rfsense.train.config import RunConfig, config_tree
from rfsense.train.dagr import dagr_backward
from rfsense.train.evaluate import eval_head, evaluate_run, mean_accuracy, validation_report
from rfsense.train.pairing import SameClassPairer
from rfsense.train.report import aggregate_seeds
from rfsense.train.rundir import load_run_config, open_run_pack, prepare_run_dir, remove_run, write_results
from rfsense.train.stages import fit_two_stage, prepare_stage, unimodal_loss

__all__ = ["fit", "resolve_device", "run", "task_loss", "train_one_epoch", "train_run"]

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
) -> dict[str, float]:
    """One pass over `rows` in a seeded order; returns the epoch's mean loss, L_d, L_a and α*."""
    tc = cfg.train
    rng = np.random.default_rng([tc.seed, epoch])
    order = rng.permutation(rows)
    pairer = _training_pairer(split, rows, tc.seed * 100_003 + epoch) if tc.pairing == "dml" else None
    enc_params = [p for p in model.encoder_parameters() if p.requires_grad]  # projectors only on frozen backbones
    all_params = [p for p in model.parameters() if p.requires_grad]
    use_amp = tc.amp and device.type == "cuda"
    backbones_only = tc.stage == "backbones"
    use_dagr = cfg.dagr.enabled and not backbones_only
    # Skipping the encoders of modalities absent from a whole batch leaves their parameters unused,
    # which DistributedDataParallel does not allow: only in a single process.
    skip_absent = not (torch.distributed.is_available() and torch.distributed.is_initialized())
    model.train()
    sums = {"loss": 0.0, "L_d": 0.0, "L_a": 0.0, "alpha": 0.0, "alpha_embeddings": 0.0}
    n_alpha = n_alpha_emb = 0
    n_steps = math.ceil(len(order) / tc.batch_size)
    t0 = time.monotonic()
    for step in range(n_steps):
        idx = order[step * tc.batch_size : (step + 1) * tc.batch_size]
        read = pairer.pair(idx) if pairer is not None else idx
        x = {m: t.to(device, non_blocking=True) for m, t in time_shift(read_rows(split, read), tc.time_shift, rng).items()}
        usable = split.usable[read, np.arange(3)] if np.ndim(read) == 2 else split.usable[idx]
        present_np = usable if backbones_only else draw_presence(rng, usable, tc.keep_prob, tc.presence)
        y = torch.from_numpy(split.labels[idx]).to(device)
        if tc.mixup > 0:
            x, present_np, y = mixup(x, present_np, usable, split.labels[idx], cfg.model.n_classes, tc.mixup, rng)
            y = y.to(device)
        present = torch.from_numpy(np.ascontiguousarray(present_np)).to(device)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            if backbones_only:  # stage 1 of X-Fi's protocol: no fusion, each encoder with its own head
                _, z = model.encode(x["mmwave"], x["wifi"], x["rfid"], present, skip_absent=skip_absent)
            else:
                logits, z = model.forward_features(x["mmwave"], x["wifi"], x["rfid"], present, skip_absent=skip_absent)
        if backbones_only:
            loss_task = unimodal_loss(model, z, present, y)
        else:
            loss_task = task_loss(model, logits, z, present, y, tc.unimodal_weight)
        if use_dagr:
            stats = dagr_backward(loss_task, z.float(), present, enc_params, cfg.dagr)
        else:
            loss_task.backward()
            stats = {"loss_task": float(loss_task.detach()), "L_d": float("nan"), "L_a": float("nan"), "alpha": float("nan")}
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
        if "alpha_embeddings" in stats:
            sums["alpha_embeddings"] += abs(stats["alpha_embeddings"] - stats["alpha"])
            n_alpha_emb += 1
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
    if n_alpha_emb:  # mean |α*(embeddings) - α*(params)|: how far the cheap approximation is off
        out["alpha_gap"] = sums["alpha_embeddings"] / n_alpha_emb
    return out


def fit(cfg: RunConfig, run_dir: Path | None = None, resume: bool = False, overwrite: bool = False,
        stop_after: int | None = None) -> dict[str, Any]:
    """Train one seed into `run_dir` and evaluate best.pt on the test split; returns the results dict.

    `stop_after` ends training after that many epochs in this call (used to test resume equivalence).
    """
    run_dir = Path(run_dir or cfg.run_dir)
    busy = prepare_run_dir(run_dir, run_dir.parent if run_dir != cfg.run_dir else Path(cfg.out_dir), resume, overwrite)
    if resume:
        if not busy:
            raise ConfigError(f"--resume: run folder {run_dir} does not exist")
        saved = load_run_config(run_dir)
        if saved != cfg:
            _logger.warning("--resume: the config differs from %s; continuing with the saved one", run_dir / "config.yaml")
            cfg = saved
    data = open_run_pack(cfg)  # before --overwrite deletes anything: a bad data root leaves the old run intact
    if overwrite and busy:
        remove_run(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if not resume:
        atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(config_tree(cfg), sort_keys=False))
    if cfg.train.stage == "xfi":
        return fit_two_stage(cfg, run_dir, data, resume, stop_after)
    return train_run(cfg, run_dir, data, resume, stop_after)


def train_run(cfg: RunConfig, run_dir: Path, data: Any, resume: bool = False,
              stop_after: int | None = None) -> dict[str, Any]:
    """The training of `fit` in a prepared run folder (config.yaml written); `data` is the opened pack."""
    tc = cfg.train
    if tc.threads:
        torch.set_num_threads(tc.threads)
    device = resolve_device(tc.device)
    train, test = data.split("train"), data.split("test")
    train_rows, val_rows = _split_rows(train.usable.any(axis=1), len(train), tc.val_fraction, tc.seed)
    if len(train_rows) == 0:
        raise DataError(f"no usable training samples in {data.path}")

    torch.manual_seed(tc.seed)
    model_cfg = cfg.model
    model = build_model(model_cfg)
    model.set_norm_stats(data.stats.mean, data.stats.std)
    trainable = prepare_stage(model, cfg)  # loads and freezes the backbones for stage fusion
    model.to(device)
    optimizer = torch.optim.AdamW(trainable, lr=tc.lr, weight_decay=tc.weight_decay)
    steps_per_epoch = math.ceil(len(train_rows) / tc.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _lr_lambda(tc.epochs * steps_per_epoch, max(1, int(tc.warmup_epochs * steps_per_epoch)))
    )
    start_epoch, best = 0, -1.0
    if resume and (run_dir / "last.pt").is_file():
        state = load_checkpoint(run_dir / "last.pt")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        start_epoch, best = int(state["epoch"]) + 1, float(state["best"])
        _logger.info("resuming %s at epoch %d", run_dir, start_epoch + 1)
    n_params = sum(p.numel() for p in model.parameters())
    n_train = sum(p.numel() for p in trainable)
    use_dagr = cfg.dagr.enabled and tc.stage != "backbones"
    _logger.info(
        "training %s (stage %s): %s preset, %.2fM parameters (%.2fM trained), %d train / %d val / %d test samples, "
        "device %s, DAGR %s",
        run_dir, tc.stage, model_cfg.preset, n_params / 1e6, n_train / 1e6, len(train_rows), len(val_rows), len(test),
        device, f"{cfg.dagr.mode}/{cfg.dagr.pareto_space}" if use_dagr else "off",
    )
    head = eval_head(tc.stage)
    mode = "a" if resume else "w"
    with open(run_dir / "metrics.jsonl", mode) as mlog, open(run_dir / "steps.jsonl", mode) as slog:
        for epoch in range(start_epoch, tc.epochs):
            if stop_after is not None and epoch >= start_epoch + stop_after:
                return {}
            t0 = time.monotonic()
            stats = train_one_epoch(model, optimizer, scheduler, train, train_rows, cfg, epoch, device, slog)
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
                "torch_rng": torch.get_rng_state(), "epoch": epoch, "best": max(best, score),
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
    return evaluate_run(run_dir, device=device)


def run(cfg: RunConfig, seeds: list[int] | None = None, resume: bool = False, overwrite: bool = False) -> dict[str, Any]:
    """Train one run, or one per seed under RUN/seed<k>/ and aggregate them (mean ± std)."""
    if not seeds:
        return fit(cfg, resume=resume, overwrite=overwrite)
    root = cfg.run_dir
    busy = prepare_run_dir(root, Path(cfg.out_dir), resume, overwrite)
    open_run_pack(cfg)  # before --overwrite deletes anything (packs once; the seeds reuse it)
    if overwrite and busy:
        remove_run(root)
    results = []
    for seed in seeds:
        seeded = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=seed))
        sub = root / f"seed{seed}"
        results.append(fit(seeded, run_dir=sub, resume=resume and sub.exists(), overwrite=False))
    agg = aggregate_seeds(results)
    agg["seeds"] = [f"seed{s}" for s in seeds]
    return write_results(root, agg, title=f"{root.name} ({len(seeds)} seeds)")
