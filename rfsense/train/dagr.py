"""DAGR: dispersion + agreement-band geometric regulariser (arXiv 2601.21670), training only.

Acts on the L2-normalised pooled per-modality embeddings ``z̃ = z / ‖z‖₂`` (Eq. 5), counting only the
modalities present in each sample:

- dispersion (Eq. 6), per modality over the samples where it is present (needs >= 2):
  ``L_d^m = log( 1/(B_m(B_m-1)) Σ_{i≠j} exp(-t ‖z̃_i^m - z̃_j^m‖²) )``, ``L_d`` = mean over those modalities;
- agreement-band anchoring (Eq. 7), over ordered pairs m≠n present in sample i:
  ``L_a = mean_i mean_{m≠n} ( ‖z̃_i^m - z̃_i^n‖₂ - τ )₊²`` over samples with >= 2 present modalities;
- ``fixed``: ``L = L_task + λ_d L_d + λ_a L_a`` (Eq. 8);
- ``pareto`` (default, Eq. 9-11, Alg. 1): ``g_d, g_a`` = gradients of ``L_d, L_a`` on the encoder
  parameters, ``α* = clip[0,1]((‖g_d‖² - <g_a, g_d>) / ‖g_a - g_d‖²)``; encoders get
  ``∇L_task + β(α* g_a + (1-α*) g_d)``, fusion and head get ``∇L_task`` only.
  ``pareto_space="embeddings"`` computes α* from the gradients w.r.t. ``z`` instead (nearly free)
  and then backpropagates ``L_task + β(α* L_a + (1-α*) L_d)`` in one pass. That is an approximation:
  α* of Eq. 10 is defined on θ_e, and the two differ (measured in benchmarks/RESULTS.md, learning).

How ``pareto_space="params"`` is computed (exactly; the same α* and update as three separate backward
passes, up to float rounding): ``L_d`` and ``L_a`` depend on the parameters only through z, so
``g = Jᵀ ∂L/∂z`` with J = ∂z/∂θ_e. The two z-cotangents are cheap (the losses are tiny functions of z);
``g_d, g_a`` come from ONE batched vector-Jacobian product through the encoders
(``autograd.grad(..., is_grads_batched=True)``), and after α* the update is ONE backward pass of
``L_task`` with ``β(α* ∂L_a/∂z + (1-α*) ∂L_d/∂z)`` added to z's gradient (linearity of Jᵀ). What stays
is the price of α* itself: two encoder vector-Jacobian products, which no exact method avoids, since
α* needs ``‖g_a‖², ‖g_d‖², <g_a, g_d>`` in parameter space.

The trainer does::

    optimizer.zero_grad()
    logits, z = model.forward_features(mmwave, wifi, rfid, present)
    loss_task = F.cross_entropy(logits, y)
    stats = dagr_backward(loss_task, z, present, list(model.encoder_parameters()), cfg)
    clip_grad_norm_(...); optimizer.step()

DAGR has no parameters and is not part of the network: nothing of it exists in ``eval()`` or export.
The losses are computed in float32 with autocast disabled (safe under bf16 autocast on CUDA).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from rfsense.train.config import DagrConfig

__all__ = [
    "DagrConfig",
    "anchoring_loss",
    "dagr_backward",
    "dispersion_loss",
    "pareto_alpha",
]

_DEGENERATE_REL = 1e-12  # ‖g_a - g_d‖² below this fraction of ‖g_a‖² + ‖g_d‖²: every α gives the same vector


# ----------------------------------------------------------------------------------------------- losses


def _normalize(z: Tensor, present: Tensor) -> Tensor:
    """Eq. 5 in float32; absent rows are replaced before normalising so they cannot produce NaN."""
    z = torch.where(present[..., None], z.float(), torch.ones((), dtype=torch.float32, device=z.device))
    return F.normalize(z, dim=-1, eps=1e-12)  # (B, M, d)


def _dispersion(zn: Tensor, present: Tensor, t: float) -> tuple[Tensor, Tensor]:
    """Eq. 6 on normalised zn (B, M, d); returns (L_d, number of modalities with >= 2 present samples)."""
    zm = zn.transpose(0, 1)  # (M, B, d)
    p = present.t()  # (M, B)
    n_batch = zn.shape[0]
    # ‖z̃_i - z̃_j‖² = ‖z̃_i‖² + ‖z̃_j‖² - 2<z̃_i, z̃_j>: O(B²) memory, and its gradient is the
    # exact 2(z̃_i - z̃_j) (App. A.4), not just its tangential part as with "2 - 2<z̃_i, z̃_j>".
    sqn = zm.pow(2).sum(dim=-1)  # (M, B)
    sq = (sqn[:, :, None] + sqn[:, None, :] - 2.0 * (zm @ zm.transpose(1, 2))).clamp_min(0.0)  # (M, B, B)
    off_diag = ~torch.eye(n_batch, dtype=torch.bool, device=zn.device)
    pair = p[:, :, None] & p[:, None, :] & off_diag  # (M, B, B): i ≠ j, both present
    n_m = p.sum(dim=1)  # (M,)
    valid = n_m >= 2
    # Undefined modalities get a finite dummy row (0 scores) so logsumexp never sees an all -inf row.
    filler = torch.where(valid, float("-inf"), 0.0)[:, None, None]
    scores = torch.where(pair, -t * sq, filler)  # (M, B, B)
    count = (n_m * (n_m - 1)).clamp_min(1).to(scores.dtype)
    per_mod = torch.logsumexp(scores.flatten(1), dim=1) - torch.log(count)  # (M,) log of the mean kernel
    per_mod = torch.where(valid, per_mod, torch.zeros_like(per_mod))
    n_valid = valid.sum()
    return per_mod.sum() / n_valid.clamp_min(1), n_valid


def _anchoring(zn: Tensor, present: Tensor, tau: float) -> tuple[Tensor, Tensor]:
    """Eq. 7 on normalised zn (B, M, d); returns (L_a, number of samples with >= 2 present modalities)."""
    n_mod = zn.shape[1]
    sq = (zn[:, :, None, :] - zn[:, None, :, :]).pow(2).sum(dim=-1)  # (B, M, M)
    off_diag = ~torch.eye(n_mod, dtype=torch.bool, device=zn.device)
    pair = present[:, :, None] & present[:, None, :] & off_diag  # (B, M, M): ordered m ≠ n, both present
    # sqrt has an infinite derivative at 0: take it only where the distance is clearly positive.
    safe = pair & (sq > 1e-12)
    dist_ = torch.where(safe, torch.where(safe, sq, torch.ones_like(sq)).sqrt(), torch.zeros_like(sq))
    hinge = torch.where(pair, F.relu(dist_ - tau).pow(2), torch.zeros_like(sq))  # (‖·‖ - τ)₊², App. A.6
    k = present.sum(dim=1)  # (B,)
    valid = k >= 2
    per_sample = hinge.sum(dim=(1, 2)) / (k * (k - 1)).clamp_min(1).to(sq.dtype)  # mean over ordered pairs
    per_sample = torch.where(valid, per_sample, torch.zeros_like(per_sample))
    n_valid = valid.sum()
    return per_sample.sum() / n_valid.clamp_min(1), n_valid


def _losses(z: Tensor, present: Tensor, cfg: DagrConfig) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    present = present.to(device=z.device, dtype=torch.bool)
    if z.dim() != 3 or present.shape != z.shape[:2]:
        raise ValueError(
            f"expected z (B, M, d) and present (B, M), got {tuple(z.shape)} and {tuple(present.shape)}"
        )
    with torch.autocast(device_type=z.device.type, enabled=False):
        zn = _normalize(z, present)
        l_d, n_d = _dispersion(zn, present, cfg.t)
        l_a, n_a = _anchoring(zn, present, cfg.tau)
    return l_d, n_d, l_a, n_a


def dispersion_loss(z: Tensor, present: Tensor, t: float = 2.0) -> Tensor:
    """Dispersion term ``L_d`` (Eq. 6) on L2-normalised embeddings, present samples only.

    Args:
        z: (B, M, d) pooled embeddings (not normalised). present: (B, M) bool. t: kernel temperature
            (the paper gives no value; 2.0 is rfsense's default).

    Returns:
        Scalar float32. 0 (with an all-zero gradient) when no modality has >= 2 present samples.
    """
    return _losses(z, present, DagrConfig(t=t))[0]


def anchoring_loss(z: Tensor, present: Tensor, tau: float = 0.25) -> Tensor:
    """Agreement-band anchoring ``L_a`` (Eq. 7) on L2-normalised embeddings, present pairs only.

    Args:
        z: (B, M, d) pooled embeddings (not normalised). present: (B, M) bool. tau: band radius.

    Returns:
        Scalar float32. 0 (with an all-zero gradient) when no sample has >= 2 present modalities.
    """
    return _losses(z, present, DagrConfig(tau=tau))[2]


# ----------------------------------------------------------------------------------------------- pareto


def _alpha_from(num: Tensor, denom: Tensor, scale: Tensor) -> Tensor:
    """Eq. 10 from ``num = ‖g_d‖² - <g_a, g_d>``, ``denom = ‖g_a - g_d‖²``, ``scale = ‖g_a‖² + ‖g_d‖²``."""
    degenerate = denom <= _DEGENERATE_REL * scale + 1e-30
    ratio = num / torch.where(degenerate, torch.ones_like(denom), denom)
    return torch.where(degenerate, torch.full_like(ratio, 0.5), ratio.clamp(0.0, 1.0))


def _dots(g_a: list[Tensor], g_d: list[Tensor]) -> Tensor:
    """float64 [‖g_d‖² - <g_a,g_d>, ‖g_a - g_d‖², ‖g_a‖² + ‖g_d‖²] summed over a list of tensors."""
    rows = []
    for a, d in zip(g_a, g_d, strict=True):
        a, d = a.float(), d.float()
        diff = d - a
        rows.append(torch.stack([(d * diff).sum(), (diff * diff).sum(), (a * a).sum() + (d * d).sum()]))
    return torch.stack(rows).double().sum(dim=0)


def pareto_alpha(g_a: Tensor, g_d: Tensor) -> Tensor:
    """Minimum-norm convex weight (Eq. 10): ``argmin_{α∈[0,1]} ‖α g_a + (1-α) g_d‖``.

    Args:
        g_a, g_d: flattened gradient vectors of ``L_a`` and ``L_d`` (same shape).

    Returns:
        0-d float64 tensor α*; 0.5 when ``‖g_a - g_d‖²`` is negligible (every α gives the same vector).
    """
    num, denom, scale = _dots([g_a.reshape(-1)], [g_d.reshape(-1)])
    return _alpha_from(num, denom, scale)


def _world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _grads(loss: Tensor, params: Sequence[Tensor], defined: bool) -> list[Tensor]:
    if not defined:
        return [torch.zeros_like(p) for p in params]
    gs = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, gs, strict=True)]


def _select_alpha(dots: Tensor, has_a: bool, has_d: bool) -> Tensor:
    # A term undefined in this batch is dropped from the convex combination (MGDA over the defined
    # objectives) instead of entering with a zero gradient, which would drive α* to it and cancel the other.
    if has_a and has_d:
        return _alpha_from(dots[0], dots[1], dots[2])
    return torch.tensor(1.0 if has_a else 0.0 if has_d else 0.5, dtype=torch.float64, device=dots.device)


def dagr_backward(
    loss_task: Tensor,
    z: Tensor,
    present: Tensor,
    encoder_params: list[nn.Parameter],
    cfg: DagrConfig,
) -> dict[str, float]:
    """Backward pass of ``L_task`` plus DAGR, accumulated into ``.grad`` (like ``Tensor.backward``).

    All parameters receive ``∇L_task``; the encoder parameters additionally receive
    ``λ_d g_d + λ_a g_a`` (fixed, Eq. 8) or ``β(α* g_a + (1-α*) g_d)`` (pareto, Eq. 10-11). Fusion and
    head never see a DAGR gradient because ``z`` does not depend on them. A loss that is undefined in
    the batch (Eq. 6: no modality present in >= 2 samples; Eq. 7: no sample with >= 2 modalities)
    counts as 0 and contributes no gradient.

    Under ``torch.distributed`` the encoder gradients ``g_a, g_d`` (params space) or the α* dot
    products (embeddings space) are all-reduced, so α* and the update are the same on every rank.

    Args:
        loss_task: scalar task loss (e.g. cross-entropy) built from the same forward as ``z``.
        z: (B, M, d) pooled embeddings from ``RFSenseNet.forward_features``.
        present: (B, M) bool presence mask.
        encoder_params: the encoder parameters (``list(model.encoder_parameters())``), θ_e of Eq. 9.
        cfg: DAGR settings; ``enabled=False`` does a plain ``loss_task.backward()``.

    Returns:
        ``{"loss_task", "L_d", "L_a", "alpha"}`` as floats (L_d / L_a are 0.0 when undefined;
        alpha is NaN unless in pareto mode); pareto/params in one process adds ``alpha_embeddings``,
        the α* that ``pareto_space="embeddings"`` would use on the same batch (its gradients on z are cheap).
    """
    with torch.set_grad_enabled(cfg.enabled and torch.is_grad_enabled()):
        l_d, n_d, l_a, n_a = _losses(z, present, cfg)
    has_d, has_a = bool(n_d > 0), bool(n_a > 0)
    stats = {
        "loss_task": float(loss_task.detach()),
        "L_d": float(l_d.detach()),
        "L_a": float(l_a.detach()),
        "alpha": float("nan"),
    }
    if not cfg.enabled:
        loss_task.backward()
        return stats

    world = _world_size()
    if world > 1:  # every rank must take the same branches below (collectives must match)
        flags = torch.tensor([has_d, has_a], dtype=torch.float32, device=z.device)
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        has_d, has_a = bool(flags[0] > 0), bool(flags[1] > 0)

    if cfg.mode == "fixed":  # Eq. 8; z depends only on the encoders, so that is where the terms land
        total = loss_task
        if has_d:
            total = total + cfg.lambda_d * l_d
        if has_a:
            total = total + cfg.lambda_a * l_a
        total.backward()
        return stats

    if cfg.pareto_space == "embeddings":
        gz_d, gz_a = _grads(l_d, [z], has_d)[0], _grads(l_a, [z], has_a)[0]  # (B, M, d) each
        dots = _dots([gz_a], [gz_d])
        if world > 1:  # z is split across ranks: global dot products are the sums of local ones
            dist.all_reduce(dots)
        alpha = _select_alpha(dots, has_a, has_d)
        a = float(alpha)
        g_z = cfg.beta * (a * gz_a + (1.0 - a) * gz_d)  # (B, M, d)
        torch.autograd.backward([loss_task, z], [torch.ones_like(loss_task), g_z.to(z.dtype)])
        stats["alpha"] = a
        return stats

    params = [p for p in encoder_params if p.requires_grad]
    gz_d, gz_a = _grads(l_d, [z], has_d)[0], _grads(l_a, [z], has_a)[0]  # (B, M, d) each
    if world == 1:  # the embeddings approximation's alpha* on the same batch, logged to measure how far off it is
        stats["alpha_embeddings"] = float(_select_alpha(_dots([gz_a], [gz_d]), has_a, has_d))
    g_d, g_a = _encoder_vjp(z, params, gz_d, gz_a, has_d, has_a)  # Eq. 9
    if world > 1:  # average like DDP does for ∇L_task, in one collective
        flat = torch.cat([g.reshape(-1) for g in (*g_d, *g_a)])
        dist.all_reduce(flat)
        flat.div_(world)
        averaged = list(flat.split([g.numel() for g in (*g_d, *g_a)]))
        g_d = [v.view_as(g) for v, g in zip(averaged[: len(g_d)], g_d, strict=True)]
        g_a = [v.view_as(g) for v, g in zip(averaged[len(g_d) :], g_a, strict=True)]
    alpha = _select_alpha(_dots(g_a, g_d), has_a, has_d)  # Eq. 10
    a = float(alpha)
    g_z = cfg.beta * (a * gz_a + (1.0 - a) * gz_d)  # Eq. 11, as a z-cotangent: Jᵀ g_z = β(α* g_a + (1-α*) g_d)
    torch.autograd.backward([loss_task, z], [torch.ones_like(loss_task), g_z.to(z.dtype)])
    stats["alpha"] = a
    return stats


def _encoder_vjp(z: Tensor, params: list[Tensor], gz_d: Tensor, gz_a: Tensor, has_d: bool,
                 has_a: bool) -> tuple[list[Tensor], list[Tensor]]:
    """``Jᵀ gz_d`` and ``Jᵀ gz_a`` on `params` in one batched vector-Jacobian product (zeros for an
    undefined term, without computing it)."""
    todo = [g for g, on in ((gz_d, has_d), (gz_a, has_a)) if on]
    if not todo:
        return [torch.zeros_like(p) for p in params], [torch.zeros_like(p) for p in params]
    if len(todo) == 1:
        gs = torch.autograd.grad(z, params, grad_outputs=todo[0], retain_graph=True, allow_unused=True)
        batched = [None if g is None else g[None] for g in gs]
    else:
        batched = torch.autograd.grad(z, params, grad_outputs=torch.stack(todo), retain_graph=True,
                                      allow_unused=True, is_grads_batched=True)
    rows = [torch.zeros((len(todo), *p.shape), dtype=p.dtype, device=p.device) if g is None else g
            for p, g in zip(params, batched, strict=True)]
    out, k = [], 0
    for on in (has_d, has_a):
        out.append([r[k] for r in rows] if on else [torch.zeros_like(p) for p in params])
        k += on
    return out[0], out[1]
