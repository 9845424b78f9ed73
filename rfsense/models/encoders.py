"""One encoder per modality: per-channel normalisation, a residual conv trunk, token projection.

Every encoder maps its (already preprocessed) float32 input to ``n_tokens`` tokens of width ``d`` and
one pooled embedding ``z`` (the mean of its tokens; the representation DAGR acts on):

    mmwave (B, 17, 256, 128) -> 2-D trunk    -> (B, C, h, w) -> (B, C, h*w) -+
    wifi   (B, 270, 1000)    -> 1-D trunk    -> (B, C, L)                    +-> 1x1 conv to d, Linear(L -> n_tokens)
    rfid   (B, 23, 148)      -> 1-D trunk    -> (B, C, L)                    -+   over the token axis, LayerNorm

The ``Linear(L -> n_tokens)`` over the token axis is X-Fi's linear projector (learned pooling from
the feature-map length to a fixed token count). Normalisation layers are GroupNorm, not BatchNorm:
per-sample statistics keep a sample's output independent of the rest of the batch in training mode
too (zero-filled absent modalities would otherwise shift the batch statistics), and there are no
running statistics to drift or to fold at export.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor, nn

from rfsense.modalities import SHAPES, Modality
from rfsense.models.presets import ModelConfig

__all__ = ["ChannelNorm", "ModalityEncoder", "build_encoder", "PATCH_STRIDE"]

# Stride (= kernel) of the "patch" stem per modality: mmWave 256x128 -> 64x32, WiFi 1000 -> 250, RFID 148 -> 74.
PATCH_STRIDE: dict[Modality, int] = {"mmwave": 4, "wifi": 4, "rfid": 2}


class ChannelNorm(nn.Module):
    """``(x - mean[c]) / std[c]`` over channel axis 1; statistics are buffers set from the training split."""

    def __init__(self, channels: int, spatial_dims: int) -> None:
        super().__init__()
        self.channels = channels
        self._view = (channels,) + (1,) * spatial_dims
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("std", torch.ones(channels))

    def set_stats(self, mean: np.ndarray | Tensor, std: np.ndarray | Tensor, name: str = "input") -> None:
        """Copy per-channel statistics in; a (near-)zero std becomes 1 (a constant channel stays constant)."""
        stats = []
        for label, v in (("mean", mean), ("std", std)):
            t = torch.as_tensor(
                np.asarray(v.detach().cpu() if isinstance(v, Tensor) else v), dtype=torch.float32
            )
            if t.numel() != self.channels:
                raise ValueError(
                    f"{name} {label} has {t.numel()} values (shape {tuple(t.shape)}); expected {self.channels}, "
                    f"one per channel (axis 1)"
                )
            t = t.reshape(self.channels)
            if not torch.isfinite(t).all():
                raise ValueError(f"{name} {label} contains NaN or Inf")
            stats.append(t)
        m, s = stats
        if (s < 0).any():
            raise ValueError(f"{name} std has negative values")
        s = torch.where(s < 1e-6, torch.ones_like(s), s)
        self.mean.copy_(m)
        self.std.copy_(s)

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean.view(self._view)) / self.std.view(self._view)


def _conv(dims: int) -> type[nn.Conv1d] | type[nn.Conv2d]:
    return nn.Conv2d if dims == 2 else nn.Conv1d


def _gn(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(8, channels), channels)


class BasicBlock(nn.Module):
    """ResNet basic block (two 3-wide convs) with GroupNorm; 1x1 projection shortcut when the shape changes."""

    def __init__(self, dims: int, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        conv = _conv(dims)
        self.conv1 = conv(c_in, c_out, 3, stride, 1, bias=False)
        self.norm1 = _gn(c_out)
        self.conv2 = conv(c_out, c_out, 3, 1, 1, bias=False)
        self.norm2 = _gn(c_out)
        self.act = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(conv(c_in, c_out, 1, stride, bias=False), _gn(c_out))

    def forward(self, x: Tensor) -> Tensor:
        h = self.act(self.norm1(self.conv1(x)))
        h = self.norm2(self.conv2(h))
        return self.act(h + self.shortcut(x))


def _stem(
    dims: int, c_in: int, c_out: int, kind: str, patch: int
) -> tuple[nn.Sequential, list[tuple[int, int, int]]]:
    """The stem module and its (kernel, stride, padding) steps for output-size arithmetic."""
    conv = _conv(dims)
    if kind == "patch":
        layers = [conv(c_in, c_out, patch, patch, 0, bias=False), _gn(c_out), nn.ReLU(inplace=True)]
        return nn.Sequential(*layers), [(patch, patch, 0)]
    pool = nn.MaxPool2d if dims == 2 else nn.MaxPool1d
    layers = [conv(c_in, c_out, 7, 2, 3, bias=False), _gn(c_out), nn.ReLU(inplace=True), pool(3, 2, 1)]
    return nn.Sequential(*layers), [(7, 2, 3), (3, 2, 1)]


class ModalityEncoder(nn.Module):
    """Input of one modality -> (tokens ``[B, n_tokens, d]``, pooled ``z [B, d]``).

    Attributes:
        modality: "mmwave", "wifi" or "rfid".
        input_shape: per-sample input shape, e.g. (270, 1000).
        n_tokens: number of output tokens.
        d: token width.
    """

    def __init__(
        self,
        modality: Modality,
        d: int,
        n_tokens: int,
        widths: tuple[int, ...],
        blocks_per_stage: int,
        stem: str,
    ) -> None:
        super().__init__()
        self.modality = modality
        self.input_shape: tuple[int, ...] = SHAPES[modality]
        self.n_tokens = n_tokens
        self.d = d
        c_in, *spatial = self.input_shape
        dims = len(spatial)
        self.norm = ChannelNorm(c_in, dims)
        self.stem, steps = _stem(dims, c_in, widths[0], stem, PATCH_STRIDE[modality])
        blocks: list[nn.Module] = []
        c = widths[0]
        for i, w in enumerate(widths):
            for j in range(blocks_per_stage):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(BasicBlock(dims, c, w, stride))
                steps.append((3, stride, 1))
                c = w
        self.trunk = nn.Sequential(*blocks)
        for k, s, p in steps:
            spatial = [(n + 2 * p - k) // s + 1 for n in spatial]
        self.feature_shape: tuple[int, ...] = (c, *spatial)  # trunk output per sample
        length = math.prod(spatial)
        self.proj = nn.Sequential(nn.Conv1d(c, d, 1), nn.GELU())
        self.to_tokens = nn.Linear(length, n_tokens)  # learned pooling over the token axis (X-Fi projector)
        self.token_norm = nn.LayerNorm(d)

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        """The feature extractor (stem + residual trunk): X-Fi's frozen ResNet in its two-stage protocol."""
        return itertools.chain(self.stem.parameters(), self.trunk.parameters())

    def projector_parameters(self) -> Iterator[nn.Parameter]:
        """The token projector (1x1 conv, Linear over the token axis, LayerNorm): X-Fi's ``linear_projector``."""
        return itertools.chain(self.proj.parameters(), self.to_tokens.parameters(), self.token_norm.parameters())

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.trunk(self.stem(self.norm(x)))  # (B, C, *spatial)
        h = self.proj(h.flatten(2))  # (B, d, L)
        tokens = self.token_norm(self.to_tokens(h).transpose(1, 2))  # (B, n_tok, d)
        return tokens, tokens.mean(dim=1)  # (B, n_tok, d), (B, d)


def build_encoder(modality: Modality, cfg: ModelConfig) -> ModalityEncoder:
    """Encoder for ``modality`` with the sizes of ``cfg``."""
    widths = {"mmwave": cfg.mmwave_widths, "wifi": cfg.wifi_widths, "rfid": cfg.rfid_widths}[modality]
    return ModalityEncoder(
        modality,
        d=cfg.d,
        n_tokens=cfg.n_tokens,
        widths=widths,
        blocks_per_stage=cfg.blocks_per_stage,
        stem=cfg.stem,
    )
