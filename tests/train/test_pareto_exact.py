"""The cheaper exact Pareto (one batched vector-Jacobian product for g_d, g_a; one backward for the update)
gives the alpha* and update of the textbook three backward passes, on the real network.

Tolerance: alpha* to 1e-6 absolute; every gradient entry to rtol 1e-4 and atol 1e-6 x the largest entry
(float32 rounding: Jᵀ(u + v) is summed in another order than Jᵀu + Jᵀv; entries whose exact gradient is 0,
such as the token projections' biases under LayerNorm, hold rounding noise of ~1e-8 in both).
"""

from __future__ import annotations

import pytest
import torch

from rfsense.modalities import MODALITIES, SHAPES
from rfsense.models import build_model
from rfsense.train.dagr import DagrConfig, anchoring_loss, dagr_backward, dispersion_loss, pareto_alpha
from rfsense.train.loop import task_loss


def _three_passes(model, x, present, y, cfg: DagrConfig) -> tuple[float, dict[str, torch.Tensor]]:
    """The textbook Eq. 9-11: g_d and g_a by two backward passes, the task gradient by a third."""
    enc = list(model.encoder_parameters())
    logits, z = model.forward_features(*x, present)
    loss = task_loss(model, logits, z, present, y, 0.5)
    g_d = torch.autograd.grad(dispersion_loss(z, present, cfg.t), enc, retain_graph=True)
    g_a = torch.autograd.grad(anchoring_loss(z, present, cfg.tau), enc, retain_graph=True)
    alpha = float(pareto_alpha(torch.cat([g.reshape(-1) for g in g_a]), torch.cat([g.reshape(-1) for g in g_d])))
    loss.backward()
    extra = {id(p): cfg.beta * (alpha * a + (1 - alpha) * d) for p, a, d in zip(enc, g_a, g_d, strict=True)}
    return alpha, {n: p.grad + extra.get(id(p), 0) for n, p in model.named_parameters()}


@pytest.mark.parametrize("seed", [0, 1])
def test_batched_vjp_equals_three_backward_passes(seed):
    torch.manual_seed(seed)
    model = build_model("edge", dropout=0.0, d=64, heads=2).train()
    g = torch.Generator().manual_seed(seed)
    x = [torch.randn(6, *SHAPES[m], generator=g) for m in MODALITIES]
    present = torch.rand(6, 3, generator=g) < 0.6
    present[:, 1] |= ~present.any(dim=1)
    y = torch.randint(0, 55, (6,), generator=g)
    cfg = DagrConfig(beta=0.3)

    alpha_ref, want = _three_passes(model, x, present, y, cfg)
    model.zero_grad(set_to_none=True)
    logits, z = model.forward_features(*x, present)
    stats = dagr_backward(task_loss(model, logits, z, present, y, 0.5), z, present, list(model.encoder_parameters()), cfg)

    assert 0.0 < alpha_ref < 1.0 and stats["alpha"] == pytest.approx(alpha_ref, abs=1e-6)
    scale = max(float(w.abs().max()) for w in want.values())
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, want[name], rtol=1e-4, atol=1e-6 * scale, msg=name)
