"""rfsense.models: presets, shapes, presence-mask semantics, gradients, registry/config errors, ONNX parity.

Everything runs on the CPU. The ``xfi`` preset (32M parameters) is only built and run at batch 1
(marked ``slow``); ONNX export (about 10 s) is done once for ``edge``.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rfsense.config import to_data
from rfsense.errors import ConfigError
from rfsense.modalities import MODALITIES, N_CLASSES, SHAPES, SUBSETS, subset_mask
from rfsense.models import (
    ModelConfig,
    RFSenseNet,
    _registry,
    build_model,
    list_presets,
    model_config,
)
from rfsense.models._registry import register_preset

PRESETS = [pytest.param(p, marks=pytest.mark.slow) if p == "xfi" else p for p in list_presets()]
SUBSET_IDS = [name for name, _ in SUBSETS]
SUBSET_MASKS = [subset_mask(mods) for _, mods in SUBSETS]


def make_inputs(batch: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn((batch, *SHAPES[m]), generator=g) for m in MODALITIES]


def presence(rows: list[tuple[bool, bool, bool]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.bool)


@pytest.fixture(scope="module")
def edge() -> RFSenseNet:
    torch.manual_seed(0)
    return build_model("edge").eval()


# ------------------------------------------------------------------------------------------- presets


def test_registry_lists_exactly_the_presets() -> None:
    assert list_presets() == ["edge", "xfi"]


@pytest.mark.parametrize("preset", PRESETS)
def test_build_and_forward_shapes(preset: str) -> None:
    torch.manual_seed(0)
    model = build_model(preset).eval()
    cfg = model.config
    assert cfg.preset == preset and cfg.n_classes == N_CLASSES
    n_params = sum(p.numel() for p in model.parameters())
    if preset == "edge":
        assert n_params <= 5_000_000, f"edge has {n_params} parameters"
    else:
        assert cfg.d == 512 and cfg.n_tokens == 32 and cfg.depth == 5
    for m, enc in model.encoders.items():
        assert enc.modality == m and enc.input_shape == SHAPES[m] and enc.n_tokens == cfg.n_tokens
    batch = 2 if preset == "edge" else 1
    xs = make_inputs(batch)
    with torch.no_grad():
        for m, x in zip(MODALITIES, xs, strict=True):
            tokens, z = model.encoders[m](x)
            assert tokens.shape == (batch, cfg.n_tokens, cfg.d) and z.shape == (batch, cfg.d)
        logits, z = model.forward_features(*xs, torch.ones(batch, 3, dtype=torch.bool))
    assert logits.shape == (batch, N_CLASSES) and z.shape == (batch, 3, cfg.d)
    assert torch.isfinite(logits).all()


def test_parameter_groups_are_disjoint_and_complete(edge: RFSenseNet) -> None:
    enc = {id(p) for p in edge.encoder_parameters()}
    fus = {id(p) for p in edge.fusion_parameters()}
    assert enc and fus and not enc & fus
    assert enc | fus == {id(p) for p in edge.parameters()}


def test_forward_features_logits_equal_forward(edge: RFSenseNet) -> None:
    xs, p = make_inputs(3), presence([(1, 0, 1), (0, 1, 0), (1, 1, 1)])
    with torch.no_grad():
        logits, z = edge.forward_features(*xs, p)
        assert torch.equal(edge(*xs, p), logits)
        wrapped = edge(*xs, p, return_features=True)  # for DDP, which only syncs through __call__
        assert torch.equal(wrapped[0], logits) and torch.equal(wrapped[1], z)


def test_encode_once_then_fuse_per_subset_equals_full_forward(edge: RFSenseNet) -> None:
    """Evaluation encodes a batch once with everything present and fuses it per subset."""
    xs = make_inputs(2, seed=3)
    with torch.no_grad():
        tokens, _ = edge.encode(*xs, presence([(1, 1, 1)] * 2))
        for mask in SUBSET_MASKS:
            p = presence([mask] * 2)
            torch.testing.assert_close(edge.fuse(tokens, p), edge(*xs, p), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------ presence mask


@pytest.mark.parametrize("mask", SUBSET_MASKS, ids=SUBSET_IDS)
def test_absent_inputs_do_not_change_logits(edge: RFSenseNet, mask: tuple[bool, bool, bool]) -> None:
    # One row per kind of garbage in the absent inputs: random, huge, NaN, -Inf.
    fills = [None, 3e38, float("nan"), -float("inf")]
    xs = make_inputs(len(fills))
    p = torch.tensor([mask] * len(fills))
    g = torch.Generator().manual_seed(1)
    ys = []
    for x, here in zip(xs, mask, strict=True):
        y = x.clone()
        if not here:
            for row, fill in enumerate(fills):
                y[row] = 100 * torch.randn(x.shape[1:], generator=g) if fill is None else fill
        ys.append(y)
    with torch.no_grad():
        ref, out = edge(*xs, p), edge(*ys, p)
    for row, fill in enumerate(fills):
        assert torch.equal(out[row], ref[row]), f"{fill or 'random'} in absent inputs changed the logits"


def test_absent_inputs_do_not_change_logits_in_train_mode() -> None:
    torch.manual_seed(0)
    model = build_model("edge", dropout=0.0).train()  # per-sample norms: no batch coupling in training
    xs = make_inputs(3)
    p = presence([(1, 0, 0), (0, 1, 1), (1, 0, 1)])
    garbage = [torch.where(p[:, i].view(-1, *[1] * (x.dim() - 1)), x, float("nan")) for i, x in enumerate(xs)]
    with torch.no_grad():
        assert torch.equal(model(*xs, p), model(*garbage, p))


def test_mixed_subset_batch_matches_per_sample(edge: RFSenseNet) -> None:
    masks = SUBSET_MASKS
    xs, p = make_inputs(len(masks)), torch.tensor(masks)
    with torch.no_grad():
        batched = edge(*xs, p)
        single = torch.cat([edge(*(x[i : i + 1] for x in xs), p[i : i + 1]) for i in range(len(masks))])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-5)


def test_all_absent_sample_is_finite_and_isolated(edge: RFSenseNet) -> None:
    xs = make_inputs(3)
    for x in xs:
        x[0] = float("nan")  # the all-absent sample may hold anything
    p = presence([(0, 0, 0), (1, 0, 1), (0, 1, 0)])
    with torch.no_grad():
        logits = edge(*xs, p)
        rest = edge(*(x[1:] for x in xs), p[1:])
    assert torch.isfinite(logits).all()
    torch.testing.assert_close(logits[1:], rest, atol=1e-5, rtol=1e-5)


def test_present_accepts_float_mask(edge: RFSenseNet) -> None:
    xs, p = make_inputs(2), presence([(1, 0, 1), (0, 1, 1)])
    with torch.no_grad():
        assert torch.equal(edge(*xs, p), edge(*xs, p.float()))


# --------------------------------------------------------------------------------------- gradients


def test_every_parameter_gets_a_gradient_with_dagr() -> None:
    from rfsense.train.dagr import DagrConfig, dagr_backward

    torch.manual_seed(0)
    model = build_model("edge").train()
    xs, p = make_inputs(4), torch.ones(4, 3, dtype=torch.bool)
    y = torch.tensor([0, 1, 2, 3])
    logits, z = model.forward_features(*xs, p)
    from rfsense.train.loop import task_loss  # fused + unimodal heads' cross-entropy, as in training

    stats = dagr_backward(task_loss(model, logits, z, p, y, 0.5), z, p, list(model.encoder_parameters()), DagrConfig())
    assert all(np.isfinite(v) for v in stats.values()), stats
    for name, param in model.named_parameters():
        assert param.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(param.grad).all(), f"{name} has a non-finite gradient"
        assert param.grad.abs().sum() > 0, f"{name} has an all-zero gradient"


def test_absent_modality_encoder_gets_no_task_gradient() -> None:
    torch.manual_seed(0)
    model = build_model("edge", dropout=0.0).train()
    xs, p = make_inputs(2), presence([(1, 0, 1), (1, 0, 0)])  # wifi absent everywhere
    F.cross_entropy(model(*xs, p), torch.tensor([3, 4])).backward()
    for name, param in model.encoders["wifi"].named_parameters():
        assert param.grad is None or not param.grad.any(), f"wifi.{name} got a gradient while absent"
    assert any(q.grad is not None and q.grad.any() for q in model.encoders["rfid"].parameters())


# -------------------------------------------------------------------------------- inputs and stats


def test_wrong_input_shape_names_the_modality(edge: RFSenseNet) -> None:
    xs = make_inputs(1)
    xs[1] = torch.zeros(1, 270, 999)
    with pytest.raises(ValueError, match=r"wifi input has shape \(1, 270, 999\)"):
        edge(*xs, torch.ones(1, 3, dtype=torch.bool))


def test_scale_free_front_ends_read_the_preprocessed_input_unnormalised() -> None:
    torch.manual_seed(0)
    model = build_model("edge").eval()  # ratio spectrogram (WiFi) and phasor (RFID) front ends
    xs, p = make_inputs(2), torch.ones(2, 3, dtype=torch.bool)
    xs[1] = 20 + 3 * xs[1]  # an amplitude
    with torch.no_grad():
        before = model.encode(*xs, p)[1]
        model.set_norm_stats({m: np.full(SHAPES[m][0], 5.0) for m in ("wifi", "rfid")},
                             {m: np.full(SHAPES[m][0], 3.0) for m in ("wifi", "rfid")})
        after = model.encode(*xs, p)[1]
        torch.testing.assert_close(after[:, 1:], before[:, 1:])
        xs[1] = 7.0 * xs[1]  # the NIC-gain ratio is blind to the amplitude's unit
        torch.testing.assert_close(model.encode(*xs, p)[1][:, 1], before[:, 1], atol=1e-4, rtol=1e-4)


def test_set_norm_stats_normalises_per_channel() -> None:
    torch.manual_seed(0)
    a = build_model("edge", wifi_frontend="raw", rfid_frontend="raw").eval()
    b = build_model("edge", wifi_frontend="raw", rfid_frontend="raw").eval()
    b.load_state_dict(a.state_dict())
    rng = np.random.default_rng(0)
    mean = {m: rng.normal(size=SHAPES[m][0]).astype(np.float32) for m in MODALITIES}
    std = {m: rng.uniform(0.5, 2.0, size=SHAPES[m][0]).astype(np.float32) for m in MODALITIES}
    std["rfid"][0] = 0.0  # constant channel: std -> 1
    a.set_norm_stats(mean, {m: torch.from_numpy(s) for m, s in std.items()})
    xs, p = make_inputs(2), torch.ones(2, 3, dtype=torch.bool)
    std["rfid"][0] = 1.0
    normed = [
        (x - torch.from_numpy(mean[m]).view(-1, *[1] * (x.dim() - 2)))
        / torch.from_numpy(std[m]).view(-1, *[1] * (x.dim() - 2))
        for m, x in zip(MODALITIES, xs, strict=True)
    ]
    with torch.no_grad():
        torch.testing.assert_close(a(*xs, p), b(*normed, p), atol=1e-4, rtol=1e-4)
    assert "encoders.wifi.norm.mean" in a.state_dict()  # buffers travel with checkpoints and export
    with pytest.raises(ValueError, match="wifi mean has 269 values"):
        a.set_norm_stats({"wifi": np.zeros(269)}, {"wifi": np.ones(269)})
    with pytest.raises(ValueError, match="unknown modality"):
        a.set_norm_stats({"lidar": np.zeros(3)}, {"lidar": np.ones(3)})


# ------------------------------------------------------------------------------- registry and config


def test_unknown_preset_lists_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"^unknown preset 'edg'; available: edge, xfi$"):
        build_model("edg")


def test_registering_a_taken_name_fails() -> None:
    def edge() -> ModelConfig:
        return ModelConfig()

    with pytest.raises(ValueError, match="'edge' is already registered"):
        register_preset(edge)
    assert _registry._PRESETS["edge"] is not edge


def test_config_unknown_key_names_it_and_lists_allowed() -> None:
    with pytest.raises(ConfigError) as err:
        model_config({"preset": "edge", "dpth": 3})
    msg = str(err.value)
    assert "'model.dpth'" in msg and "allowed:" in msg
    assert all(f.name in msg for f in dataclasses.fields(ModelConfig))


def test_config_from_dict_starts_from_the_preset() -> None:
    cfg = model_config({"preset": "xfi", "depth": 2, "wifi_widths": [8, 16], "dropout": 0})
    assert cfg.d == 512 and cfg.depth == 2 and cfg.wifi_widths == (8, 16) and cfg.dropout == 0.0
    assert model_config({}) == build_model("edge").config
    assert model_config(to_data(cfg)) == cfg


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"depth": "2"}, "model.depth: must be a valid integer"),
        ({"d": 100, "heads": 8}, "divisible"),
        ({"stem": "vit"}, "model.stem: must be 'patch' or 'resnet'"),
        ({"share_depth": 1}, "model.share_depth: must be a valid boolean"),
        ({"dropout": 1.0}, "model.dropout: must be less than 1"),
        ({"mmwave_widths": []}, "model.mmwave_widths"),
        ({"preset": "edg"}, "unknown preset"),
    ],
)
def test_config_rejects_bad_values(values: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        model_config(values)


def test_build_model_overrides() -> None:
    model = build_model("edge", depth=1, n_tokens=4, heads=None)  # None = unset, ignored
    assert model.config.depth == 1 and model.config.n_tokens == 4 and model.config.heads == 4
    with pytest.raises(ConfigError, match=r"unknown key 'model.width'; allowed: .*depth"):
        build_model("edge", width=3)
    tied = build_model("edge", share_depth=True)
    assert len(tied.fusion.cmt) == 1 and len(tied.fusion.ca) == 1
    assert len(build_model("edge").fusion.cmt) == 3


# ------------------------------------------------------------------------------------------ ONNX


def export_onnx(model: RFSenseNet, path):
    """Dynamo export with a dynamic batch dimension; checks the graph's input names, shapes and dtypes."""
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    batch = torch.export.Dim("batch", min=1, max=4096)
    names = [*MODALITIES, "present"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            model.eval(),
            model.example_inputs(3),
            input_names=names,
            output_names=["logits"],
            dynamic_shapes={n: {0: batch} for n in names},
            dynamo=True,
            verbose=False,
        )
    program.save(str(path))
    graph = onnx.load(str(path)).graph
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.input}
    assert dims == {
        "mmwave": ["batch", 17, 256, 128],
        "wifi": ["batch", 270, 1000],
        "rfid": ["batch", 23, 148],
        "present": ["batch", 3],
    }
    assert {i.name: i.type.tensor_type.elem_type for i in graph.input}["present"] == onnx.TensorProto.BOOL
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def edge_onnx(edge: RFSenseNet, tmp_path_factory: pytest.TempPathFactory):
    return export_onnx(edge, tmp_path_factory.mktemp("onnx") / "edge.onnx")


def _run(sess, xs: list[torch.Tensor], p: torch.Tensor) -> np.ndarray:
    feeds = {m: x.numpy() for m, x in zip(MODALITIES, xs, strict=True)}
    return sess.run(["logits"], {**feeds, "present": p.numpy()})[0]


@pytest.mark.parametrize("batch", [1, 7])
@pytest.mark.parametrize("mask", SUBSET_MASKS, ids=SUBSET_IDS)
def test_onnx_matches_torch_on_every_subset(edge: RFSenseNet, edge_onnx, mask, batch: int) -> None:
    xs, p = make_inputs(batch, seed=batch), torch.tensor([mask] * batch)
    for i, here in enumerate(mask):
        if not here:
            xs[i] = torch.full_like(xs[i], float("nan"))  # absent inputs must not leak in ONNX either
    with torch.no_grad():
        ref = edge(*xs, p).numpy()
    out = _run(edge_onnx, xs, p)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, ref, atol=1e-4, rtol=1e-4)
    assert (out.argmax(1) == ref.argmax(1)).all()


@pytest.mark.parametrize("batch", [1, 3])
def test_onnx_matches_torch_on_mixed_subsets(edge: RFSenseNet, edge_onnx, batch: int) -> None:
    xs = make_inputs(batch, seed=10 + batch)
    p = presence([(1, 0, 1), (0, 1, 0), (0, 0, 0)][:batch])
    with torch.no_grad():
        ref = edge(*xs, p).numpy()
    np.testing.assert_allclose(_run(edge_onnx, xs, p), ref, atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_onnx_matches_torch_xfi(tmp_path) -> None:
    torch.manual_seed(0)
    model = build_model("xfi").eval()
    sess = export_onnx(model, tmp_path / "xfi.onnx")
    for batch in (1, 3):
        xs = make_inputs(batch, seed=batch)
        p = presence([(1, 0, 1), (0, 1, 0), (1, 1, 1)][:batch])
        with torch.no_grad():
            ref = model(*xs, p).numpy()
        np.testing.assert_allclose(_run(sess, xs, p), ref, atol=1e-4, rtol=1e-4)

