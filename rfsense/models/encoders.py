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
import torch.nn.functional as F
from torch import Tensor, nn

from rfsense.modalities import SHAPES, Modality
from rfsense.models.presets import ModelConfig

__all__ = ["ChannelNorm", "ModalityEncoder", "build_encoder", "PATCH_STRIDE"]

# Stride (= kernel) of the "patch" stem per modality: WiFi 1000 -> 250, RFID 148 -> 74; mmWave's is
# ModelConfig.mmwave_patch (8: 256x128 -> 32x16).
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


class SpectralFrontend(nn.Module):
    """WiFi amplitude -> log Doppler spectrogram per receive antenna, a fixed (not learned) layer.

    (B, 270, T) -> [``ratio``: log amplitude minus, per packet, the mean over the 90 channels of its NIC]
    -> short-time Fourier power of every channel (Hann window ``window``, hop ``hop``, bins 1 .. n_bins,
    zero-mean kernels so a channel's level never leaks in) -> mean over the 30 subcarriers of each of the
    9 antennas -> log -> (B, 9 * n_bins, L). Body motion changes the amplitude at the Doppler rate
    2v/lambda; its energy per band and time is what separates actions, while the phase of the fluctuation
    on each subcarrier is nuisance. AGC steps and per-packet gain jitter multiply all 90 channels of a
    NIC alike: ``ratio`` cancels them (the log of the amplitude ratio to the NIC's geometric mean, the
    idea behind CSI-ratio methods) before they can spread white energy over the Doppler bands.
    Convolutions with fixed windowed-sinusoid kernels and elementwise ops: plain ONNX.
    """

    def __init__(self, channels: int = 270, group: int = 30, nic: int = 90, window: int = 128, hop: int = 16,
                 n_bins: int = 12, ratio: bool = True) -> None:
        super().__init__()
        self.group, self.nic, self.hop, self.n_bins, self.ratio = group, nic, hop, n_bins, ratio
        t = torch.arange(window, dtype=torch.float64)
        hann = 0.5 - 0.5 * torch.cos(2 * math.pi * (t + 0.5) / window)
        f = torch.arange(1, n_bins + 1, dtype=torch.float64)[:, None]
        kernel = torch.cat([hann * torch.cos(2 * math.pi * f * t / window), hann * torch.sin(2 * math.pi * f * t / window)])
        kernel = (kernel - kernel.mean(dim=1, keepdim=True)) / hann.sum()  # zero DC response
        self.register_buffer("kernel", kernel.float()[:, None, :])  # (2F, 1, window)
        self.out_channels = (channels // group) * n_bins

    def output_length(self, n: int) -> int:
        return (n - self.kernel.shape[-1]) // self.hop + 1

    def forward(self, x: Tensor) -> Tensor:
        b, c, t = x.shape
        if self.ratio:
            # A floor relative to the sample's level keeps log finite on zero reads (and on the zero fill of
            # an absent modality). clamp, not "+ 1e-12": the ONNX exporter folded that tiny add away.
            floor = (1e-3 * x.abs().mean(dim=(1, 2), keepdim=True)).clamp_min(1e-6)
            logs = torch.log(torch.maximum(x, floor)).reshape(b, c // self.nic, self.nic, t)
            x = (logs - logs.mean(dim=2, keepdim=True)).reshape(b, c, t)
        y = F.conv1d(x.reshape(b * c, 1, t), self.kernel, stride=self.hop)  # (B C, 2F, L)
        power = y[:, : self.n_bins].pow(2) + y[:, self.n_bins :].pow(2)  # (B C, F, L)
        power = power.reshape(b, c // self.group, self.group, self.n_bins, -1).mean(dim=2)  # (B, 9, F, L)
        # log(1 + P / 1e-6) ~ log P + 13.8 for motion power, and exactly 0 for the zero fill of an absent
        # modality: a constant -18 there made the exported GroupNorm's variance round below 0 (NaN).
        return torch.log1p(power * 1e6).flatten(1, 2)  # (B, 9 F, L)


class PhasorFrontend(nn.Module):
    """RFID phase -> (cos 2 theta, sin 2 theta) per tag, a fixed layer: (B, 23, T) -> (B, 46, T).

    The reader reports phase with a random 180-degree ambiguity and unknown per-tag offsets, and a
    shadowed tag's phase is too noisy to unwrap reliably; the doubled-angle phasor is blind to all three
    (the preprocessing's pi-folding and offset removal only rotate it), so a tag's motion shows up as
    its phasor wandering, with no unwrap errors to memorise. Scale-free: it reads the preprocessed phase
    directly (the per-channel input normalisation is skipped).
    """

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([torch.cos(2 * x), torch.sin(2 * x)], dim=1)


class DopplerFrontend(nn.Module):
    """mmWave heatmap -> Doppler-time profile, a fixed layer: (B, 17, 256, 128) -> (B, 17, 128).

    The maximum over the 256 range bins of each step and Doppler bin: the strongest echo at every radial
    velocity, wherever the volunteer stands. The body fills a few dozen of the range bins and the rest is
    noise and static clutter (at zero Doppler); the velocity pattern over time (micro-Doppler) is what
    separates actions. Reads the map as XRF55's range x Doppler (the axes `rfsense synth` documents and
    the DCA1000 reader computes). A max reduction: plain ONNX.
    """

    def forward(self, x: Tensor) -> Tensor:
        return x.amax(dim=2)  # (B, steps, Doppler)


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
        frontend: str = "raw",
        patch: int | None = None,
    ) -> None:
        super().__init__()
        self.modality = modality
        self.input_shape: tuple[int, ...] = SHAPES[modality]
        self.n_tokens = n_tokens
        self.d = d
        c_in, *spatial = self.input_shape
        dims = len(spatial)
        self.norm = ChannelNorm(c_in, dims)
        patch = patch or PATCH_STRIDE[modality]
        self.frontend: nn.Module = nn.Identity()
        self.normalise_input = True  # False: the front end reads the preprocessed input itself
        if frontend in ("spectrogram", "ratio_spectrogram"):
            if modality != "wifi":
                raise ValueError(f"the {frontend} front end is for wifi, not {modality}")
            self.frontend = SpectralFrontend(c_in, ratio=frontend == "ratio_spectrogram")
            # The ratio is scale-free and reads the amplitude itself; the plain spectrogram reads normalised input.
            self.normalise_input = frontend == "spectrogram"
            c_in, spatial, patch = self.frontend.out_channels, [self.frontend.output_length(spatial[0])], 1
        elif frontend == "doppler":
            if modality != "mmwave":
                raise ValueError(f"the doppler front end is for mmwave, not {modality}")
            self.frontend = DopplerFrontend()
            spatial, dims, patch = [spatial[1]], 1, 2  # a 1-D signal over the 128 Doppler bins, 17 steps as channels
        elif frontend == "phasor":
            if modality != "rfid":
                raise ValueError(f"the phasor front end is for rfid, not {modality}")
            self.frontend, self.normalise_input, c_in = PhasorFrontend(), False, 2 * c_in
        self.stem, steps = _stem(dims, c_in, widths[0], stem, patch)
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
        h = self.frontend(self.norm(x) if self.normalise_input else x)
        h = self.trunk(self.stem(h))  # (B, C, *spatial)
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
        frontend={"mmwave": cfg.mmwave_frontend, "wifi": cfg.wifi_frontend, "rfid": cfg.rfid_frontend}[modality],
        patch=cfg.mmwave_patch if modality == "mmwave" else None,
    )
