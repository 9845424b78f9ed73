"""The full network (three encoders, X-Fi-style masked fusion, head) and ``build_model``.

``build_model("edge")`` (or ``build_model(cfg, depth=3)``) gives an ``RFSenseNet``;
``model(mmwave, wifi, rfid, present)`` is the ONNX export signature and returns logits;
``model.forward_features(...)`` returns ``(logits, z)`` for training, z feeding DAGR.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rfsense.errors import ConfigError
from rfsense.modalities import MODALITIES, SHAPE_MEANING, SHAPES
from rfsense.models._registry import get_preset
from rfsense.models.encoders import ModalityEncoder, build_encoder
from rfsense.models.fusion import ClassificationHead, LateFusion, XFiFusion
from rfsense.models.presets import ModelConfig, model_config

__all__ = ["RFSenseNet", "build_model"]


class RFSenseNet(nn.Module):
    """One model for every modality subset: per-sample ``present`` mask, no branching on presence.

    Args:
        cfg: sizes of encoders and fusion.

    Attributes:
        config: the ``ModelConfig`` it was built from.
        encoders: ``nn.ModuleDict`` modality -> ``ModalityEncoder``, in ``MODALITIES`` order.
        fusion: ``XFiFusion`` (``cfg.fusion == "xfi"``) or ``LateFusion`` (``"late"``, which holds its
            own per-modality classifiers); head: ``ClassificationHead`` after ``XFiFusion``, None for late.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        self.encoders = nn.ModuleDict({m: build_encoder(m, cfg) for m in MODALITIES})
        self.fusion: nn.Module
        self.head: ClassificationHead | None
        if cfg.fusion == "late":
            self.fusion = LateFusion(len(MODALITIES), cfg.d, cfg.n_classes)
            self.head = None
        else:
            self.fusion = XFiFusion(
                n_modalities=len(MODALITIES),
                d=cfg.d,
                depth=cfg.depth,
                heads=cfg.heads,
                mlp_ratio=cfg.mlp_ratio,
                dropout=cfg.dropout,
                share_depth=cfg.share_depth,
            )
            self.head = ClassificationHead(cfg.d, cfg.n_classes)
        # Training-only linear classifiers on each modality's pooled embedding (train.unimodal_weight):
        # they give every encoder its own label signal, so a strong modality cannot starve a weak one.
        # forward() never uses them, so they are not in the exported graph.
        self.unimodal_heads = nn.ModuleList(nn.Linear(cfg.d, cfg.n_classes) for _ in MODALITIES)

    def forward_features(
        self, mmwave: Tensor, wifi: Tensor, rfid: Tensor, present: Tensor, skip_absent: bool = False
    ) -> tuple[Tensor, Tensor]:
        """Logits and the pooled per-modality embeddings.

        Args:
            mmwave: (B, 17, 256, 128) float32. wifi: (B, 270, 1000). rfid: (B, 23, 148). Preprocessed,
                not normalised (the per-channel normalisation is the network's first layer). The values
                of an absent modality are ignored entirely (may be zeros, garbage, NaN or Inf).
            present: (B, 3) bool in ``MODALITIES`` order (mmwave, wifi, rfid).
            skip_absent: see ``encode`` (training speed-up; the logits are the same).

        Returns:
            logits (B, n_classes) and z (B, 3, d): the encoders' pooled embeddings before any L2
            normalisation, in ``MODALITIES`` order. Rows of absent modalities are the encoder's output
            on a zero input; mask them with ``present``.

        Raises:
            ValueError: an input has the wrong per-sample shape.
        """
        tokens, z = self.encode(mmwave, wifi, rfid, present, skip_absent=skip_absent)
        return self.fuse(tokens, present), z

    def encode(
        self, mmwave: Tensor, wifi: Tensor, rfid: Tensor, present: Tensor, skip_absent: bool = False
    ) -> tuple[Tensor, Tensor]:
        """Encoder outputs: tokens (B, 3, n_tokens, d) and pooled z (B, 3, d), absent inputs zeroed first.

        Split from ``fuse`` so evaluation can encode a batch once and score all 7 subsets on it: the
        fusion ignores the tokens of absent modalities, so any ``present`` that is a subset of the one
        used here gives the same logits as ``forward_features`` would.

        ``skip_absent=True`` (training only; it branches in Python on ``present``, so never for export)
        does not run the encoder of a modality absent from every sample of the batch and gives it zero
        tokens and z instead: the fusion, DAGR and the unimodal loss all ignore absent modalities, so
        the logits and losses are unchanged, at a fraction of the cost when batches share a subset.
        """
        present = present.to(torch.bool)
        tokens: list[Tensor | None] = []
        zs: list[Tensor | None] = []
        for i, (m, x) in enumerate(zip(MODALITIES, (mmwave, wifi, rfid), strict=True)):
            enc: ModalityEncoder = self.encoders[m]  # type: ignore[assignment]
            if tuple(x.shape[1:]) != enc.input_shape:
                raise ValueError(
                    f"{m} input has shape {tuple(x.shape)}; expected (batch, {', '.join(map(str, enc.input_shape))}) "
                    f"= {SHAPE_MEANING[m]}"
                )
            if skip_absent and not bool(present[:, i].any()):
                tokens.append(None)
                zs.append(None)
                continue
            keep = present[:, i].reshape((-1,) + (1,) * (x.dim() - 1))
            x = torch.where(keep, x, torch.zeros_like(x))  # where, not multiply: 0 * NaN = NaN
            t, z = enc(x)  # (B, n_tok, d), (B, d)
            tokens.append(t)
            zs.append(z)
        ref = next((t for t in tokens if t is not None), None)
        if ref is None:  # nothing present anywhere: zeros of the float32 shape the encoders would give
            ref = mmwave.new_zeros((mmwave.shape[0], self.config.n_tokens, self.config.d), dtype=torch.float32)
        full = [torch.zeros_like(ref) if t is None else t for t in tokens]
        pooled = [torch.zeros_like(ref[:, 0]) if z is None else z for z in zs]
        return torch.stack(full, dim=1), torch.stack(pooled, dim=1)

    def fuse(self, tokens: Tensor, present: Tensor) -> Tensor:
        """Logits (B, n_classes) from encoder tokens (B, 3, n_tokens, d) under ``present`` (B, 3).

        The contract of a split export (one graph per encoder, one for the fusion): the pooled z of a
        modality is ``tokens.mean`` over its tokens, and tokens of absent modalities do not change the logits.
        """
        present = present.to(torch.bool)
        fused = self.fusion(tokens, present)
        return fused if self.head is None else self.head(fused, present)

    def forward(
        self, mmwave: Tensor, wifi: Tensor, rfid: Tensor, present: Tensor, return_features: bool = False,
        skip_absent: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Logits (B, n_classes); see ``forward_features`` for the inputs.

        ``return_features=True`` returns ``forward_features``'s ``(logits, z)`` instead: use it when
        the model is wrapped (DistributedDataParallel only synchronises gradients of computations that
        go through the wrapper's ``__call__``). Export uses the defaults (``skip_absent`` is training-only).
        """
        logits, z = self.forward_features(mmwave, wifi, rfid, present, skip_absent=skip_absent)
        return (logits, z) if return_features else logits

    def unimodal_logits(self, z: Tensor) -> Tensor:
        """Per-modality logits (B, 3, n_classes) from pooled embeddings z (B, 3, d); training only."""
        return torch.stack([head(z[:, i]) for i, head in enumerate(self.unimodal_heads)], dim=1)

    def unimodal_average(self, tokens: Tensor, present: Tensor) -> Tensor:
        """Logits (B, n_classes): the training-only unimodal heads averaged over the present modalities.

        How a run of the X-Fi protocol's first stage (backbones alone, each with its own classifier) is
        scored on the 7 subsets: decision-level fusion of the separately trained single-modality models.
        """
        present = present.to(torch.bool)
        logits = self.unimodal_logits(tokens.mean(dim=2))  # (B, 3, C)
        count = present.to(logits.dtype).sum(dim=1).clamp_min(1.0)[:, None]
        return torch.where(present[:, :, None], logits, torch.zeros_like(logits)).sum(dim=1) / count

    def encoder_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the three encoders (DAGR's theta_e in joint training)."""
        return self.encoders.parameters()

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        """The encoders' feature extractors (stem + trunk): what the X-Fi protocol's second stage freezes."""
        return itertools.chain.from_iterable(e.backbone_parameters() for e in self.encoders.values())

    def projector_parameters(self) -> Iterator[nn.Parameter]:
        """The encoders' token projectors: DAGR's theta_e when the backbones are frozen."""
        return itertools.chain.from_iterable(e.projector_parameters() for e in self.encoders.values())

    def fusion_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of fusion and heads; disjoint from ``encoder_parameters``, together all of them."""
        head = self.head.parameters() if self.head is not None else iter(())
        return itertools.chain(self.fusion.parameters(), head, self.unimodal_heads.parameters())

    def set_norm_stats(
        self,
        mean: Mapping[str, np.ndarray | Tensor],
        std: Mapping[str, np.ndarray | Tensor],
    ) -> None:
        """Set the per-channel input normalisation (channel = axis 1) from training-split statistics.

        Args:
            mean, std: modality -> array with one value per channel (mmwave 17, wifi 270, rfid 23).
                Any subset of modalities; the same keys in both. A std below 1e-6 is replaced by 1.

        Raises:
            ValueError: unknown modality, mismatched keys, wrong length, NaN/Inf or negative std.
        """
        if set(mean) != set(std):
            raise ValueError(
                f"mean and std must have the same modalities, got {sorted(mean)} and {sorted(std)}"
            )
        unknown = set(mean) - set(MODALITIES)
        if unknown:
            raise ValueError(f"unknown modality {sorted(unknown)}; expected some of {list(MODALITIES)}")
        for m in mean:
            self.encoders[m].norm.set_stats(mean[m], std[m], name=m)

    def example_inputs(self, batch: int = 2) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Zero inputs of the right shapes and an all-True ``present``, for export and smoke tests."""
        xs = tuple(torch.zeros((batch, *SHAPES[m])) for m in MODALITIES)
        return (*xs, torch.ones(batch, len(MODALITIES), dtype=torch.bool))  # type: ignore[return-value]


def build_model(cfg_or_name: ModelConfig | str = "edge", **overrides: Any) -> RFSenseNet:
    """Build an ``RFSenseNet`` from a config or a preset name.

    Args:
        cfg_or_name: a ``ModelConfig`` or a registered preset name ("edge", "xfi").
        **overrides: ``ModelConfig`` fields to replace; ``None`` values are ignored (unset CLI options).

    Returns:
        The model in training mode, randomly initialised, normalisation statistics 0/1.

    Raises:
        ConfigError: unknown preset, unknown override key (the allowed ones are listed), bad value.
    """
    cfg = get_preset(cfg_or_name) if isinstance(cfg_or_name, str) else cfg_or_name
    if not isinstance(cfg, ModelConfig):
        raise ConfigError(f"expected a ModelConfig or a preset name, got {type(cfg_or_name).__name__}")
    changes = {k: v for k, v in overrides.items() if v is not None}
    return RFSenseNet(model_config({**dataclasses.asdict(cfg), **changes}) if changes else cfg)
