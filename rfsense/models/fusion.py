"""X-Fi-style fusion driven by a per-sample presence mask, and the classification head.

Structure (X-Fi, ``XRF55_HAR/X_Fi.py``; see reference/xfi-xrf55-notes.md §3):

    kv_m        = KVGenerator_m(tokens_m)                     once per modality, reused at every depth
    cls, slots  = CrossModalBlock([cls | tokens_m + e_m]_m)    masked self-attention, then pool to n slots
    repeat depth times:
        ca_m        = CrossAttention_m(slots, kv_m)            per-modality cross-attention, Q = fused slots
        cls, slots  = CrossModalBlock([cls | ca_m]_m)
    logits      = Linear(LayerNorm(masked mean over [cls, slots]))

Missing modalities (one graph for all 7 subsets, subsets may differ inside a batch):

- The caller zeroes absent inputs with ``torch.where`` before the encoders (network.py), so garbage,
  NaN or Inf in an absent tensor never reaches any arithmetic.
- Tokens of absent modalities are removed from every self-attention by a boolean key mask
  (``masked_fill(-inf)`` before softmax). A learned fusion token ``cls`` is always a valid key, so no
  attention row is ever fully masked (a fully masked row is NaN in torch and garbage in ONNX Runtime).
- "Pool back to n tokens" is a presence-masked mean over modalities at each token slot; the head's
  mean-pool ignores the slots when no modality is present. Every mask is arithmetic/``where`` on the
  ``present`` tensor: no Python branching on presence, no ``.item()``.
- Cross-attention rows need no mask: their keys are one modality's tokens, always finite, and the
  whole output of an absent modality's branch is masked out downstream.

X-Fi quirks, kept or dropped deliberately:

- Per-modality K/V generated once and reused at every depth: KEPT (cheap, and part of the design).
- Tied weights across depth (one cross-modal transformer and one set of cross-attention blocks
  applied ``depth`` times): OPTIONAL via ``share_depth``. ``xfi`` keeps it (faithful to the released
  model and its parameter budget); ``edge`` unties its 2 rounds (3 small CMTs), which costs few
  parameters and no compute and gives each round its own weights.
- Post-softmax scaling ``softmax(QK^T) / sqrt(512)`` in the cross-modal transformer: DROPPED. It leaves
  the logits unscaled (very peaked attention at d=512) and then shrinks the output by a constant
  that the next linear layer absorbs anyway; standard ``softmax(QK^T / sqrt(d_head))`` is used.
- ``AdaptiveAvgPool2d((32, None))`` back to 32 tokens over the concatenation of present modalities:
  REPLACED by the presence-masked mean over modalities per slot. X-Fi's window pool depends on how
  many modalities are present (windows of n adjacent tokens, some straddling modality blocks), which
  cannot be expressed with a fixed token count per sample; the masked mean is defined for every subset,
  equals X-Fi's pool when one modality is present, and keeps the shape fixed for export.
- The untrained WiFi convs (conv2/3/4 of ``children()[:-2]``) and the implicit-dim channel softmax
  on the mmWave feature map: DROPPED. Both are accidents of slicing ``children()`` of the backbones;
  our encoders are trained end to end and produce their tokens with a learned projector.
- Frozen, separately pretrained backbones with drifting BatchNorm statistics: DROPPED. Encoders are
  trained jointly (DAGR needs encoder gradients) and use GroupNorm (encoders.py).
- Pre-norm residual blocks everywhere (X-Fi's cross-modal attention has no pre-LN) and a learned
  modality embedding added to the first fusion input (X-Fi has none; with masking, a token's
  modality is otherwise only implicit): ADDED for stable training.
- X-Fi's unused layers (``to_qkv``/``norm`` in ``qkv_Attention``, the unused mask argument): not reproduced.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ClassificationHead", "CrossAttentionBlock", "CrossModalBlock", "KVGenerator", "LateFusion", "XFiFusion"]


def masked_attention(
    q: Tensor, k: Tensor, v: Tensor, key_mask: Tensor | None, dropout: float, training: bool
) -> Tensor:
    """Scaled dot-product attention with plain matmul/softmax (exports to basic ONNX ops).

    q (B, h, Nq, dh), k/v (B, h, Nk, dh); key_mask (B, Nk) bool, True = may be attended. The caller
    guarantees at least one True per row.
    """
    scores = (q @ k.transpose(-2, -1)) * (q.shape[-1] ** -0.5)  # (B, h, Nq, Nk)
    if key_mask is not None:
        scores = scores.masked_fill(~key_mask[:, None, None, :], float("-inf"))
    attn = F.dropout(scores.softmax(dim=-1), dropout, training)
    return attn @ v  # (B, h, Nq, dh)


def _heads(x: Tensor, heads: int) -> Tensor:
    return x.unflatten(-1, (heads, -1)).transpose(1, 2)  # (B, N, d) -> (B, h, N, dh)


def _merge(x: Tensor) -> Tensor:
    return x.transpose(1, 2).flatten(2)  # (B, h, N, dh) -> (B, N, d)


class FeedForward(nn.Sequential):
    def __init__(self, d: int, hidden: int, dropout: float) -> None:
        super().__init__(
            nn.Linear(d, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, d), nn.Dropout(dropout)
        )


class SelfAttention(nn.Module):
    def __init__(self, d: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.out_drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, key_mask: Tensor | None) -> Tensor:
        q, k, v = (_heads(t, self.heads) for t in self.qkv(x).chunk(3, dim=-1))
        h = masked_attention(q, k, v, key_mask, self.dropout, self.training)
        return self.out_drop(self.out(_merge(h)))


class KVGenerator(nn.Module):
    """X-Fi ``kv_projection``: MLP -> LayerNorm -> bias-free K and V, from one modality's tokens."""

    def __init__(self, d: int, hidden: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.mlp = nn.Sequential(nn.Linear(d, hidden), nn.LayerNorm(hidden), nn.ReLU(), nn.Linear(hidden, d))
        self.norm = nn.LayerNorm(d)
        self.to_k = nn.Linear(d, d, bias=False)
        self.to_v = nn.Linear(d, d, bias=False)

    def forward(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        h = self.norm(self.mlp(tokens))  # (B, n, d)
        return _heads(self.to_k(h), self.heads), _heads(self.to_v(h), self.heads)  # (B, h, n, dh) x2


class CrossAttentionBlock(nn.Module):
    """X-Fi ``fusion_transformer`` of one modality: fused slots query that modality's K/V, then FFN."""

    def __init__(self, d: int, heads: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.norm_q = nn.LayerNorm(d)
        self.to_q = nn.Linear(d, d, bias=False)
        self.out = nn.Sequential(nn.Linear(d, d), nn.Dropout(dropout))
        self.norm_ffn = nn.LayerNorm(d)
        self.ffn = FeedForward(d, hidden, dropout)

    def forward(self, x: Tensor, k: Tensor, v: Tensor) -> Tensor:
        q = _heads(self.to_q(self.norm_q(x)), self.heads)  # (B, h, n, dh)
        x = x + self.out(_merge(masked_attention(q, k, v, None, self.dropout, self.training)))
        return x + self.ffn(self.norm_ffn(x))  # (B, n, d)


class CrossModalBlock(nn.Module):
    """X-Fi ``cross_modal_transformer`` with masking: self-attention over [cls | all modality tokens]
    (absent modalities masked as keys), presence-masked mean over modalities per slot, then FFN."""

    def __init__(self, d: int, heads: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.norm_attn = nn.LayerNorm(d)
        self.attn = SelfAttention(d, heads, dropout)
        self.norm_ffn = nn.LayerNorm(d)
        self.ffn = FeedForward(d, hidden, dropout)

    def forward(self, cls: Tensor, blocks: Tensor, present: Tensor) -> tuple[Tensor, Tensor]:
        # cls (B, 1, d); blocks (B, M, n, d); present (B, M) bool
        n_mod, n_tok = blocks.shape[1], blocks.shape[2]
        seq = torch.cat([cls, blocks.flatten(1, 2)], dim=1)  # (B, 1 + M n, d)
        token_present = present[:, :, None].expand(-1, -1, n_tok).flatten(1)  # (B, M n)
        key_mask = torch.cat([torch.ones_like(present[:, :1]), token_present], dim=1)  # (B, 1 + M n)
        h = seq + self.attn(self.norm_attn(seq), key_mask)
        cls, blocks = h[:, :1], h[:, 1:].unflatten(1, (n_mod, n_tok))  # (B, 1, d), (B, M, n, d)
        keep = present[:, :, None, None]  # (B, M, 1, 1)
        count = present.to(h.dtype).sum(dim=1).clamp_min(1.0)[:, None, None]  # (B, 1, 1)
        slots = torch.where(keep, blocks, torch.zeros_like(blocks)).sum(dim=1) / count  # (B, n, d)
        x = torch.cat([cls, slots], dim=1)  # (B, 1 + n, d)
        x = x + self.ffn(self.norm_ffn(x))
        return x[:, :1], x[:, 1:]


class XFiFusion(nn.Module):
    """Tokens of all modalities + presence mask -> fused tokens ``[cls | slots]`` (B, 1 + n_tokens, d)."""

    def __init__(
        self,
        n_modalities: int,
        d: int,
        depth: int,
        heads: int,
        mlp_ratio: float,
        dropout: float,
        share_depth: bool,
    ) -> None:
        super().__init__()
        hidden = int(round(mlp_ratio * d))
        self.depth, self.share_depth, self.n_modalities = depth, share_depth, n_modalities
        self.cls = nn.Parameter(torch.zeros(1, 1, d))
        self.modality_embed = nn.Parameter(torch.zeros(n_modalities, 1, d))
        nn.init.trunc_normal_(self.cls, std=0.02)
        nn.init.trunc_normal_(self.modality_embed, std=0.02)
        self.kv = nn.ModuleList(KVGenerator(d, hidden, heads) for _ in range(n_modalities))
        # Tied (X-Fi): one cross-modal transformer and one cross-attention set, applied depth (+1) times.
        n_cmt, n_ca = (1, 1) if share_depth else (depth + 1, depth)
        self.cmt = nn.ModuleList(CrossModalBlock(d, heads, hidden, dropout) for _ in range(n_cmt))
        self.ca = nn.ModuleList(
            nn.ModuleList(CrossAttentionBlock(d, heads, hidden, dropout) for _ in range(n_modalities))
            for _ in range(n_ca)
        )

    def forward(self, tokens: Tensor, present: Tensor) -> Tensor:
        # tokens (B, M, n, d); present (B, M) bool
        # M x (K, V), each (B, h, n, dh): generated once, reused at every depth
        kv = [self.kv[m](tokens[:, m]) for m in range(self.n_modalities)]
        cls = self.cls.expand(tokens.shape[0], -1, -1)  # (B, 1, d)
        cls, slots = self.cmt[0](cls, tokens + self.modality_embed, present)  # (B, 1, d), (B, n, d)
        for i in range(self.depth):
            ca = self.ca[0 if self.share_depth else i]
            blocks = [ca[m](slots, *kv[m]) for m in range(self.n_modalities)]  # M x (B, n, d)
            blocks = torch.stack(blocks, dim=1)  # (B, M, n, d)
            cls, slots = self.cmt[0 if self.share_depth else i + 1](cls, blocks, present)
        return torch.cat([cls, slots], dim=1)  # (B, 1 + n, d)


class ClassificationHead(nn.Module):
    """X-Fi ``classification_Head``: masked mean over tokens, LayerNorm, Linear."""

    def __init__(self, d: int, n_classes: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.fc = nn.Linear(d, n_classes)

    def forward(self, x: Tensor, present: Tensor) -> Tensor:
        # x (B, 1 + n, d): the cls token is always valid, the slots only when some modality is present.
        any_present = present.to(x.dtype).sum(dim=1, keepdim=True) > 0  # (B, 1)
        valid = torch.cat([torch.ones_like(any_present), any_present.expand(-1, x.shape[1] - 1)], dim=1)
        pooled = torch.where(valid[:, :, None], x, torch.zeros_like(x)).sum(dim=1)
        pooled = pooled / valid.to(x.dtype).sum(dim=1, keepdim=True)  # (B, d)
        return self.fc(self.norm(pooled))  # (B, n_classes)


class LateFusion(nn.Module):
    """Decision-level (late) fusion, the baseline beside X-Fi: one classifier per modality on its pooled
    embedding ``z_m = tokens_m.mean(tokens)`` (LayerNorm + Linear, like X-Fi's head), logits averaged
    over the present modalities (X-Fi's ``baseline2`` averages its single-modality models the same way).

    Masking is a ``where`` on ``present``: an absent modality's tokens never reach the output, even
    when they are NaN or Inf, so one graph serves every subset. No modality present gives zero logits.
    """

    def __init__(self, n_modalities: int, d: int, n_classes: int) -> None:
        super().__init__()
        self.heads = nn.ModuleList(nn.Sequential(nn.LayerNorm(d), nn.Linear(d, n_classes)) for _ in range(n_modalities))

    def forward(self, tokens: Tensor, present: Tensor) -> Tensor:
        # tokens (B, M, n, d); present (B, M) bool -> logits (B, C)
        z = tokens.mean(dim=2)  # (B, M, d)
        logits = torch.stack([head(z[:, m]) for m, head in enumerate(self.heads)], dim=1)  # (B, M, C)
        keep = present[:, :, None]
        count = present.to(logits.dtype).sum(dim=1).clamp_min(1.0)[:, None]  # (B, 1)
        return torch.where(keep, logits, torch.zeros_like(logits)).sum(dim=1) / count
