"""rfsense.train.dagr (Eq. 6, 7, 10, 11; App. A.4, A.6) and rfsense.train.pairing (DML §3.3).

The losses are checked against slow loops written straight from the equations; the backward pass
against a manual composition of ``torch.autograd.grad`` results on a toy encoders+fusion model.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rfsense.config import from_data
from rfsense.errors import ConfigError
from rfsense.train.dagr import (
    DagrConfig,
    _anchoring,
    _dispersion,
    anchoring_loss,
    dagr_backward,
    dispersion_loss,
    pareto_alpha,
)
from rfsense.train.pairing import SameClassPairer

# ------------------------------------------------------------------------------ reference loops


def ref_dispersion(z: torch.Tensor, present: torch.Tensor, t: float) -> float:
    """Eq. 6 with the per-modality batch restricted to present samples; float64 loops."""
    z = z.double()
    per_mod = []
    for m in range(z.shape[1]):
        idx = [i for i in range(z.shape[0]) if present[i, m]]
        if len(idx) < 2:
            continue
        zn = {i: z[i, m] / z[i, m].norm() for i in idx}
        s = sum(math.exp(-t * float((zn[i] - zn[j]).pow(2).sum())) for i in idx for j in idx if i != j)
        per_mod.append(math.log(s / (len(idx) * (len(idx) - 1))))
    return sum(per_mod) / len(per_mod) if per_mod else 0.0


def ref_anchoring(z: torch.Tensor, present: torch.Tensor, tau: float) -> float:
    """Eq. 7 over ordered pairs of present modalities, mean over samples with >= 2 of them."""
    z = z.double()
    per_sample = []
    for i in range(z.shape[0]):
        mods = [m for m in range(z.shape[1]) if present[i, m]]
        if len(mods) < 2:
            continue
        terms = []
        for m, n in itertools.permutations(mods, 2):
            d = float((z[i, m] / z[i, m].norm() - z[i, n] / z[i, n].norm()).norm())
            terms.append(max(d - tau, 0.0) ** 2)
        per_sample.append(sum(terms) / len(terms))
    return sum(per_sample) / len(per_sample) if per_sample else 0.0


def random_case(seed: int, batch: int = 9, n_mod: int = 3, dim: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(batch, n_mod, dim, generator=g) * (0.1 + 3 * torch.rand(batch, n_mod, 1, generator=g))
    present = torch.rand(batch, n_mod, generator=g) < 0.55
    present[0] = False  # a sample with no modality
    present[1] = torch.tensor([False, True, False])  # and one with a single modality
    return z, present


# ------------------------------------------------------------------------------------- losses


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize(("t", "tau"), [(2.0, 0.25), (0.5, 0.0), (8.0, 1.0)])
def test_losses_match_reference_loops(seed: int, t: float, tau: float) -> None:
    z, present = random_case(seed)
    assert dispersion_loss(z, present, t).item() == pytest.approx(ref_dispersion(z, present, t), abs=1e-5)
    assert anchoring_loss(z, present, tau).item() == pytest.approx(ref_anchoring(z, present, tau), abs=1e-5)


def test_losses_ignore_absent_rows_even_if_nan() -> None:
    z, present = random_case(0)
    z_bad = torch.where(present[..., None], z, float("nan"))
    assert dispersion_loss(z_bad, present).item() == pytest.approx(
        dispersion_loss(z, present).item(), abs=1e-6
    )
    assert anchoring_loss(z_bad, present).item() == pytest.approx(anchoring_loss(z, present).item(), abs=1e-6)


@pytest.mark.parametrize(
    "rows",
    [
        [(0, 0, 0), (0, 0, 0)],  # nothing present
        [(1, 0, 0), (0, 1, 0), (0, 0, 1)],  # one modality per sample, one sample per modality
        [(1, 1, 1)],  # batch of one
    ],
)
def test_undefined_losses_are_zero_with_zero_gradient(rows: list[tuple[int, int, int]]) -> None:
    present = torch.tensor(rows, dtype=torch.bool)
    z = torch.randn(len(rows), 3, 5, requires_grad=True)
    l_d, l_a = dispersion_loss(z, present), anchoring_loss(z, present)
    if not (present.sum(0) >= 2).any():
        assert l_d.item() == 0.0
    if not (present.sum(1) >= 2).any():
        assert l_a.item() == 0.0
    (l_d + l_a).backward()
    assert torch.isfinite(z.grad).all()
    if l_d.item() == 0.0 and l_a.item() == 0.0:
        assert not z.grad.any()


def test_losses_are_float32_under_bf16_inputs() -> None:
    z, present = random_case(3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        l_d = dispersion_loss(z.bfloat16(), present)
        l_a = anchoring_loss(z.bfloat16(), present)
    assert l_d.dtype == torch.float32 and l_a.dtype == torch.float32
    assert l_d.item() == pytest.approx(ref_dispersion(z.bfloat16().float(), present, 2.0), abs=1e-4)
    assert l_a.item() == pytest.approx(ref_anchoring(z.bfloat16().float(), present, 0.25), abs=1e-4)


# ------------------------------------------------------------------ gradient geometry (App. A.4, A.6)


def unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


def test_anchoring_gradient_is_exactly_zero_inside_the_band() -> None:
    g = torch.Generator().manual_seed(0)
    base = unit(torch.randn(5, 1, 8, generator=g))
    z = unit(base + 0.02 * torch.randn(5, 3, 8, generator=g))  # all pairwise distances << tau
    z.requires_grad_(True)
    present = torch.ones(5, 3, dtype=torch.bool)
    loss = anchoring_loss(z, present, tau=0.25)
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(z.grad, torch.zeros_like(z))


def test_anchoring_gradient_follows_app_a6() -> None:
    # One sample, two modalities, on the sphere; gradient w.r.t. z̃ of (d - τ)₊² (App. A.6), for
    # d > τ and d <= τ. L_a averages the 2 ordered pairs, each contributing the same term.
    g = torch.Generator().manual_seed(1)
    present = torch.ones(1, 2, dtype=torch.bool)
    for tau, scale in ((0.25, 1.0), (0.25, 0.05)):
        zm = unit(torch.randn(8, generator=g))
        zn_ = unit(zm + scale * torch.randn(8, generator=g))
        zt = torch.stack([zm, zn_])[None].clone().requires_grad_(True)  # (1, 2, 8) already normalised
        loss, _ = _anchoring(zt, present, tau)
        loss.backward()
        d = (zm - zn_).norm()
        expected = 2 * (d - tau) / d * (zm - zn_) if d > tau else torch.zeros(8)
        torch.testing.assert_close(zt.grad[0, 0], expected, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(zt.grad[0, 1], -expected, atol=1e-6, rtol=1e-5)


def test_dispersion_gradient_is_repulsive_app_a4() -> None:
    t, batch = 2.0, 6
    g = torch.Generator().manual_seed(2)
    eye = torch.eye(8)
    # A crowded pair (z0, z1 at distance ~0.5, where the RBF force d·exp(-t d²) peaks), the rest spread out.
    zs = torch.stack([eye[0], unit(eye[0] + 0.5 * eye[1]), -eye[0], eye[2], -eye[2], eye[3]])
    zs = unit(zs + 0.01 * torch.randn(batch, 8, generator=g))
    zt = zs[:, None, :].clone().requires_grad_(True)  # (B, 1, d) on the sphere
    present = torch.ones(batch, 1, dtype=torch.bool)
    loss, _ = _dispersion(zt, present, t)
    loss.backward()
    grad = zt.grad[:, 0]
    # -∇_{z_i} L_d = (4t / S) Σ_{j≠i} exp(-t‖z_i - z_j‖²)(z_i - z_j)
    diff = zs[:, None, :] - zs[None, :, :]  # (B, B, d)
    w = torch.exp(-t * diff.pow(2).sum(-1)) * (1 - torch.eye(batch))
    expected = 4 * t / w.sum() * (w[..., None] * diff).sum(1)
    torch.testing.assert_close(-grad, expected, atol=1e-6, rtol=1e-5)
    # The crowded pair is pushed apart, and a small descent step increases their distance.
    assert torch.dot(-grad[0], zs[0] - zs[1]) > 0 and torch.dot(-grad[1], zs[1] - zs[0]) > 0
    stepped = unit(zs - 0.01 * grad)
    assert (stepped[0] - stepped[1]).norm() > (zs[0] - zs[1]).norm()
    assert _dispersion(stepped[:, None], present, t)[0] < loss


# --------------------------------------------------------------------------------------- pareto


def brute_force_alpha(g_a: torch.Tensor, g_d: torch.Tensor) -> tuple[float, float]:
    alphas = torch.linspace(0, 1, 20001, dtype=torch.float64)
    norms = (alphas[:, None] * g_a.double() + (1 - alphas[:, None]) * g_d.double()).norm(dim=1)
    k = int(norms.argmin())
    return float(alphas[k]), float(norms[k])


@pytest.mark.parametrize("seed", range(6))
def test_pareto_alpha_is_the_minimum_norm_weight(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    g_a, g_d = torch.randn(50, generator=g), torch.randn(50, generator=g) * (0.2 + seed)
    alpha = pareto_alpha(g_a, g_d)
    best_alpha, best_norm = brute_force_alpha(g_a, g_d)
    assert 0.0 <= float(alpha) <= 1.0
    assert float(alpha) == pytest.approx(best_alpha, abs=1e-4)
    assert float((alpha * g_a.double() + (1 - alpha) * g_d.double()).norm()) <= best_norm + 1e-9


@pytest.mark.parametrize(
    ("g_a", "g_d", "expected"),
    [
        ([2.0, 0.0], [1.0, 0.0], 0.0),  # clip at 0: g_d alone is shorter
        ([0.5, 0.0], [1.0, 0.0], 1.0),  # clip at 1
        ([1.0, 0.0], [0.0, 1.0], 0.5),  # orthogonal, equal norms
        ([0.3, 0.4], [0.3, 0.4], 0.5),  # degenerate denominator
        ([0.0, 0.0], [0.0, 0.0], 0.5),
    ],
)
def test_pareto_alpha_edge_cases(g_a: list[float], g_d: list[float], expected: float) -> None:
    alpha = pareto_alpha(torch.tensor(g_a), torch.tensor(g_d))
    assert isinstance(alpha, torch.Tensor) and float(alpha) == pytest.approx(expected, abs=1e-9)
    if g_a != g_d:  # otherwise every α is a minimiser
        assert float(alpha) == pytest.approx(
            brute_force_alpha(torch.tensor(g_a), torch.tensor(g_d))[0], abs=1e-4
        )


# ------------------------------------------------------------------------------- dagr_backward


class Toy(nn.Module):
    """Three small encoders -> z (B, 3, d); fusion = masked mean + MLP head (stands in for RFSenseNet)."""

    def __init__(self, d_in: int = 7, d: int = 5, n_classes: int = 4) -> None:
        super().__init__()
        self.encoders = nn.ModuleList(
            nn.Sequential(nn.Linear(d_in, 16), nn.Tanh(), nn.Linear(16, d)) for _ in range(3)
        )
        self.fusion = nn.Sequential(nn.Linear(d, 16), nn.Tanh(), nn.Linear(16, n_classes))

    def forward_features(self, x: torch.Tensor, present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = torch.stack([enc(x[:, m]) for m, enc in enumerate(self.encoders)], dim=1)  # (B, 3, d)
        w = present.float()[..., None]
        pooled = (z * w).sum(1) / w.sum(1).clamp_min(1)
        return self.fusion(pooled), z

    def encoder_parameters(self) -> list[nn.Parameter]:
        return list(self.encoders.parameters())

    def fusion_parameters(self) -> list[nn.Parameter]:
        return list(self.fusion.parameters())


def toy_setup(rows: list[tuple[int, int, int]] | None = None, seed: int = 0):
    torch.manual_seed(seed)
    model = Toy()
    batch = 6 if rows is None else len(rows)
    x = torch.randn(batch, 3, 7)
    present = (
        torch.tensor(rows, dtype=torch.bool)
        if rows is not None
        else torch.tensor(
            [(1, 1, 1), (1, 0, 1), (0, 1, 1), (1, 1, 0), (0, 0, 1), (1, 1, 1)], dtype=torch.bool
        )
    )
    y = torch.randint(0, 4, (batch,))
    return model, x, present, y


def grads_of(model: nn.Module, params) -> list[torch.Tensor]:
    return [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in params]


def manual_terms(model: Toy, x, present, y, cfg: DagrConfig):
    """∇L_task on all params, g_d and g_a on encoder params, and the z-gradients, all by autograd.grad."""
    logits, z = model.forward_features(x, present)
    loss = F.cross_entropy(logits, y)
    enc, fus = model.encoder_parameters(), model.fusion_parameters()
    l_d, l_a = dispersion_loss(z, present, cfg.t), anchoring_loss(z, present, cfg.tau)

    def grad(loss_, inputs):
        gs = torch.autograd.grad(loss_, inputs, retain_graph=True, allow_unused=True)
        return [torch.zeros_like(i) if g_ is None else g_ for i, g_ in zip(inputs, gs, strict=True)]

    return {
        "task_enc": grad(loss, enc),
        "task_fus": grad(loss, fus),
        "g_d": grad(l_d, enc),
        "g_a": grad(l_a, enc),
        "gz_d": grad(l_d, [z])[0],
        "gz_a": grad(l_a, [z])[0],
        "L_d": l_d.item(),
        "L_a": l_a.item(),
    }


def run_dagr(model: Toy, x, present, y, cfg: DagrConfig) -> dict[str, float]:
    model.zero_grad(set_to_none=True)
    logits, z = model.forward_features(x, present)
    return dagr_backward(F.cross_entropy(logits, y), z, present, model.encoder_parameters(), cfg)


def flat(gs: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([g.reshape(-1) for g in gs])


def assert_grads(actual: list[torch.Tensor], expected: list[torch.Tensor]) -> None:
    for a, e in zip(actual, expected, strict=True):
        torch.testing.assert_close(a, e, atol=1e-6, rtol=1e-5)


def test_pareto_params_equals_manual_composition() -> None:
    model, x, present, y = toy_setup()
    cfg = DagrConfig()
    m = manual_terms(model, x, present, y, cfg)
    stats = run_dagr(model, x, present, y, cfg)
    alpha = float(pareto_alpha(flat(m["g_a"]), flat(m["g_d"])))
    assert 0.0 < alpha < 1.0 and stats["alpha"] == pytest.approx(alpha, abs=1e-6)
    assert stats["L_d"] == pytest.approx(m["L_d"]) and stats["L_a"] == pytest.approx(m["L_a"])
    expected_enc = [
        t + cfg.beta * (alpha * a + (1 - alpha) * d)
        for t, a, d in zip(m["task_enc"], m["g_a"], m["g_d"], strict=True)
    ]
    assert_grads(grads_of(model, model.encoder_parameters()), expected_enc)
    assert_grads(grads_of(model, model.fusion_parameters()), m["task_fus"])  # DAGR never reaches fusion/head


def test_fixed_mode_equals_weighted_sum() -> None:
    model, x, present, y = toy_setup(seed=1)
    cfg = DagrConfig(mode="fixed", lambda_d=0.3, lambda_a=0.7)
    m = manual_terms(model, x, present, y, cfg)
    stats = run_dagr(model, x, present, y, cfg)
    assert math.isnan(stats["alpha"])
    expected = [t + 0.3 * d + 0.7 * a for t, a, d in zip(m["task_enc"], m["g_a"], m["g_d"], strict=True)]
    assert_grads(grads_of(model, model.encoder_parameters()), expected)
    assert_grads(grads_of(model, model.fusion_parameters()), m["task_fus"])


def test_embeddings_mode_runs_and_uses_alpha_from_z_gradients() -> None:
    model, x, present, y = toy_setup(seed=2)
    cfg = DagrConfig(pareto_space="embeddings", beta=0.2)
    m = manual_terms(model, x, present, y, cfg)
    stats = run_dagr(model, x, present, y, cfg)
    alpha = float(pareto_alpha(m["gz_a"].reshape(-1), m["gz_d"].reshape(-1)))
    assert stats["alpha"] == pytest.approx(alpha, abs=1e-6)
    expected = [
        t + 0.2 * (alpha * a + (1 - alpha) * d)
        for t, a, d in zip(m["task_enc"], m["g_a"], m["g_d"], strict=True)
    ]
    assert_grads(grads_of(model, model.encoder_parameters()), expected)
    assert_grads(grads_of(model, model.fusion_parameters()), m["task_fus"])


def test_disabled_is_plain_backward_and_grads_accumulate() -> None:
    model, x, present, y = toy_setup(seed=3)
    m = manual_terms(model, x, present, y, DagrConfig())
    run_dagr(model, x, present, y, DagrConfig(enabled=False))
    assert_grads(grads_of(model, model.encoder_parameters()), m["task_enc"])
    # Accumulation semantics (like Tensor.backward): a second call adds on top.
    logits, z = model.forward_features(x, present)
    dagr_backward(
        F.cross_entropy(logits, y), z, present, model.encoder_parameters(), DagrConfig(enabled=False)
    )
    assert_grads(grads_of(model, model.encoder_parameters()), [2 * t for t in m["task_enc"]])


@pytest.mark.parametrize(
    ("rows", "expected_alpha", "term"),
    [
        ([(1, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1)], 0.0, "g_d"),  # L_a undefined -> dispersion only
        ([(1, 1, 0)], 1.0, "g_a"),  # L_d undefined (batch of one) -> anchoring only
        ([(0, 1, 0)], 0.5, None),  # both undefined -> task gradient only
    ],
)
@pytest.mark.parametrize("space", ["params", "embeddings"])
def test_undefined_terms_drop_out(rows, expected_alpha: float, term: str | None, space: str) -> None:
    model, x, present, y = toy_setup(rows, seed=4)
    cfg = DagrConfig(pareto_space=space, tau=0.0)
    m = manual_terms(model, x, present, y, cfg)
    stats = run_dagr(model, x, present, y, cfg)
    assert stats["alpha"] == expected_alpha
    expected = [
        t + (cfg.beta * g if term else 0) for t, g in zip(m["task_enc"], m[term or "g_d"], strict=True)
    ]
    assert_grads(grads_of(model, model.encoder_parameters()), expected)


def test_dagr_backward_on_rfsensenet_both_spaces() -> None:
    from rfsense.models import build_model
    from rfsense.train.loop import task_loss

    torch.manual_seed(0)
    model = build_model("edge", dropout=0.0, depth=1).train()
    g = torch.Generator().manual_seed(0)
    xs = [
        torch.randn(3, 17, 256, 128, generator=g),
        torch.randn(3, 270, 1000, generator=g),
        torch.randn(3, 23, 148, generator=g),
    ]
    present = torch.tensor([(1, 1, 0), (0, 1, 1), (1, 1, 1)])
    y = torch.tensor([1, 2, 3])
    alphas = {}
    for space in ("params", "embeddings"):
        model.zero_grad(set_to_none=True)
        logits, z = model.forward_features(*xs, present)
        stats = dagr_backward(
            task_loss(model, logits, z, present, y, 0.5),
            z,
            present,
            list(model.encoder_parameters()),
            DagrConfig(pareto_space=space),
        )
        # params also reports the alpha* the embeddings approximation would take on the same batch
        extra = {"alpha_embeddings"} if space == "params" else set()
        assert set(stats) == {"loss_task", "L_d", "L_a", "alpha"} | extra and all(
            math.isfinite(v) for v in stats.values()
        )
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
        alphas[space] = stats
    assert alphas["params"]["alpha_embeddings"] == pytest.approx(alphas["embeddings"]["alpha"], abs=1e-6)


# --------------------------------------------------------------------------------------- config


def test_dagr_config_validation() -> None:
    assert DagrConfig() == DagrConfig(True, "pareto", "params", 2.0, 0.25, 0.1, 0.1, 0.1)
    with pytest.raises(ConfigError, match="dagr.mode: must be 'pareto' or 'fixed'"):
        from_data(DagrConfig, {"mode": "pcgrad"}, "dagr")
    with pytest.raises(ConfigError, match="dagr.t: must be greater than 0"):
        from_data(DagrConfig, {"t": 0}, "dagr")
    with pytest.raises(ConfigError, match="dagr.beta: must be a finite number"):
        from_data(DagrConfig, {"beta": float("inf")}, "dagr")
    with pytest.raises(ConfigError, match=r"unknown key 'dagr.lamda_d'; allowed: .*lambda_d"):
        from_data(DagrConfig, {"lamda_d": 0.1}, "dagr")
    assert from_data(DagrConfig, {"tau": 0, "mode": "fixed"}) == DagrConfig(tau=0.0, mode="fixed")
    with pytest.raises(ValueError):  # direct construction is validated too
        DagrConfig(t=-1.0)


# --------------------------------------------------------------------------------------- pairing


def test_pairer_returns_same_class_available_indices() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, size=200)
    available = rng.random((200, 3)) < 0.7
    pairer = SameClassPairer(labels, available, seed=1)
    batch = rng.integers(0, 200, size=64)
    for _ in range(5):
        src = pairer.pair(batch)
        assert src.shape == (64, 3) and src.dtype == np.int64
        assert (labels[src] == labels[batch][:, None]).all()
        for m in range(3):
            assert available[src[:, m], m].all()
        assert not (src == batch[:, None]).all()  # actually re-paired


def test_pairer_falls_back_to_the_sample_itself() -> None:
    labels = np.array([0, 0, 1, 1, 2])
    available = np.array([[1, 1, 0], [1, 0, 0], [1, 1, 1], [0, 1, 1], [0, 0, 0]], dtype=bool)
    src = SameClassPairer(labels, available, seed=0).pair(np.array([0, 1, 4]))
    assert src[0, 2] == 0 and src[1, 2] == 1  # class 0 has no rfid anywhere
    assert src[0, 1] == 0 and src[1, 1] == 0  # only sample 0 of class 0 has wifi
    assert (src[2] == 4).all()  # class 2's only sample has nothing


def test_pairer_is_deterministic_uniform_and_independent_per_modality() -> None:
    labels = np.repeat(np.arange(3), 10)
    batch = np.arange(30)
    a = [SameClassPairer(labels, seed=7).pair(batch) for _ in range(2)]
    assert np.array_equal(a[0], a[1])
    pairer = SameClassPairer(labels, seed=7)
    draws = np.stack([pairer.pair(batch) for _ in range(200)])  # (200, 30, 3)
    assert np.array_equal(draws[0], a[0])
    assert not np.array_equal(draws[0], draws[1])  # successive calls differ
    assert not np.array_equal(draws[..., 0], draws[..., 1])  # modalities drawn independently
    for c in range(3):  # every same-class sample is reachable
        assert set(np.unique(draws[:, labels == c])) == set(np.flatnonzero(labels == c))
    assert not np.array_equal(SameClassPairer(labels, seed=8).pair(batch), a[0])


def test_pairer_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="labels must be a 1-D integer array"):
        SameClassPairer(np.zeros((3, 1), dtype=int))
    with pytest.raises(ValueError, match=r"available must be a bool array of shape \(3, 3\)"):
        SameClassPairer(np.zeros(3, dtype=int), np.ones((3, 2), dtype=bool))
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 3\)"):
        SameClassPairer(np.zeros(3, dtype=int)).pair(np.array([3]))
