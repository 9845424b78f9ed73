"""Decision-level (late) fusion, `model.fusion: late`: mask invariance, the averaging rule, ONNX parity."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rfsense.modalities import MODALITIES, SHAPES, SUBSETS, subset_mask
from rfsense.models import build_model

SUBSET_MASKS = [subset_mask(mods) for _, mods in SUBSETS]


def _inputs(batch: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn((batch, *SHAPES[m]), generator=g) for m in MODALITIES]


@pytest.fixture(scope="module")
def late():
    torch.manual_seed(0)
    model = build_model("edge", fusion="late").eval()
    with torch.no_grad():  # non-trivial heads: the default LayerNorm/bias init would hide ordering bugs
        for p in model.fusion.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


def test_late_fusion_is_the_mean_of_present_heads(late):
    xs = _inputs(4)
    with torch.no_grad():
        tokens, z = late.encode(*xs, torch.ones(4, 3, dtype=torch.bool))
        per = torch.stack([late.fusion.heads[m](z[:, m]) for m in range(3)], dim=1)  # (B, 3, C)
        for mask in SUBSET_MASKS:
            p = torch.tensor([mask] * 4)
            want = per[:, list(np.flatnonzero(mask))].mean(dim=1)
            torch.testing.assert_close(late.fuse(tokens, p), want, rtol=1e-5, atol=1e-5)
    assert late.head is None and "head" not in {n.split(".")[0] for n, _ in late.named_parameters()}


@pytest.mark.parametrize("mask", SUBSET_MASKS, ids=[n for n, _ in SUBSETS])
def test_late_fusion_ignores_absent_inputs_and_tokens(late, mask):
    xs = _inputs(3, seed=1)
    p = torch.tensor([mask] * 3)
    garbage = [x if here else torch.full_like(x, v) for x, here, v in
               zip(xs, mask, (float("nan"), 3e38, -float("inf")), strict=True)]
    with torch.no_grad():
        ref = late(*xs, p)
        assert torch.equal(late(*garbage, p), ref)
        tokens, _ = late.encode(*xs, p)
        bad = tokens.clone()
        bad[:, ~torch.tensor(mask)] = float("nan")  # the split export's fusion graph may get anything there
        assert torch.equal(late.fuse(bad, p), ref)
    assert torch.isfinite(ref).all()


def test_late_fusion_exports_with_parity(late, tmp_path):
    """Exported as the deployment contract (an encoder graph per sensor + the fusion graph), run as the runtime
    runs it (absent encoders skipped), it gives the PyTorch logits on every subset."""
    from rfsense.deploy.export import _export_graphs, _Graphs
    from rfsense.deploy.manifest import GRAPHS, graph_file
    from rfsense.deploy.plausibility import fit_ood

    xs = _inputs(6, seed=5)
    with torch.no_grad():
        _, z = late.encode(*xs, torch.ones(6, 3, dtype=torch.bool))
    fits = {m: fit_ood(z[:, j].numpy(), np.arange(6) % 2) for j, m in enumerate(MODALITIES)}
    paths = {part: tmp_path / graph_file("late", part) for part in GRAPHS}
    _export_graphs(late, fits, paths)
    graphs = _Graphs(paths, late.config.n_tokens, late.config.d)
    for batch in (1, 3):
        xs = _inputs(batch, seed=batch)
        for mask in SUBSET_MASKS:
            present = np.broadcast_to(np.array(mask), (batch, 3)).copy()
            with torch.no_grad():
                ref = late(*xs, torch.from_numpy(present)).numpy()
            got = graphs.logits({m: x.numpy() for m, x in zip(MODALITIES, xs, strict=True)}, present)
            assert got.shape == (batch, 55)
            np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
