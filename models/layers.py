"""Building blocks shared by every architecture, numerically matched to the reference.

All layers keep their parameters in float32 and cast them to the activation dtype at
call time, so one set of weights serves the float32 (CPU, golden tests) and bfloat16
(GPU training) paths.
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)

CosSin = tuple[torch.Tensor, torch.Tensor]


def trunc_normal_init_(tensor: torch.Tensor, std: float = 1.0) -> torch.Tensor:
    """Fill `tensor` in place with a normal truncated at +-2 sigma whose *actual* std is `std`.

    torch.nn.init.trunc_normal_ truncates a normal of std `std`, which leaves a smaller
    spread; the reference rescales sigma so the truncated distribution has std `std`.
    """
    with torch.no_grad():
        if std == 0:
            return tensor.zero_()
        sqrt2 = math.sqrt(2.0)
        z = math.erf(2.0 / sqrt2)  # mass of [-2, 2] under N(0, 1), = erf(sqrt 2)
        pdf_2 = math.exp(-2.0) / math.sqrt(2.0 * math.pi)
        sigma = std / math.sqrt(1.0 - 4.0 * pdf_2 / z)
        # Inverse-CDF sampling restricted to the [-2, 2] band.
        tensor.uniform_(-z, z)
        tensor.erfinv_()
        tensor.mul_(sqrt2 * sigma)
        tensor.clamp_(-2.0 * sigma, 2.0 * sigma)
        return tensor


def trunc_normal_like(like: torch.Tensor, std: float) -> torch.Tensor:
    """A fresh `trunc_normal_init_` draw shaped like `like`, sampled in float32 and cast to its dtype."""
    return trunc_normal_init_(torch.empty(like.shape, device=like.device), std).to(like.dtype)


def rms_norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    """Scale-free RMSNorm over the last axis, computed in float32."""
    dtype = x.dtype
    x = x.float()
    x = x * torch.rsqrt(x.square().mean(-1, keepdim=True) + eps)
    return x.to(dtype)


class CastedLinear(nn.Module):
    """Linear layer whose float32 weights are cast to the input dtype on every call."""

    def __init__(self, in_features: int, out_features: int, bias: bool) -> None:
        super().__init__()
        weight = torch.empty(out_features, in_features)
        self.weight = nn.Parameter(trunc_normal_init_(weight, 1.0 / math.sqrt(in_features)))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias.to(x.dtype) if self.bias is not None else None
        return F.linear(x, self.weight.to(x.dtype), bias)


class CastedEmbedding(nn.Module):
    """Embedding table kept in float32 and cast to `cast_to` at lookup."""

    def __init__(self, num_embeddings: int, embedding_dim: int, init_std: float, cast_to: torch.dtype) -> None:
        super().__init__()
        self.cast_to = cast_to
        self.embedding_weight = nn.Parameter(trunc_normal_init_(torch.empty(num_embeddings, embedding_dim), init_std))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.embedding_weight.to(self.cast_to))


def _rope_tables(positions: torch.Tensor, dim: int, base: float) -> CosSin:
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    angles = torch.outer(positions.float(), inv_freq)
    emb = torch.cat((angles, angles), dim=-1)
    return emb.cos(), emb.sin()


class RotaryEmbedding(nn.Module):
    """1D RoPE tables for positions 0..max_positions-1 (float32, not saved in checkpoints)."""

    def __init__(self, dim: int, max_positions: int, base: float) -> None:
        super().__init__()
        cos, sin = _rope_tables(torch.arange(max_positions), dim, base)
        self.register_buffer("cos_cached", cos, persistent=False)
        self.register_buffer("sin_cached", sin, persistent=False)

    def forward(self) -> CosSin:
        return self.cos_cached, self.sin_cached


class RotaryEmbedding2D(nn.Module):
    """2D RoPE: the first half of each head is rotated by the row, the second by the column.

    Token p sits at (p // width, p % width). The concatenated tables make the plain 1D
    `apply_rotary_pos_emb` perform both half-rotations, as long as rotate_half acts within
    each half; `half_split=True` on the tables tells the attention layer to do that.
    """

    def __init__(self, dim: int, height: int, width: int, base: float) -> None:
        super().__init__()
        half = dim // 2
        pos = torch.arange(height * width)
        cos_r, sin_r = _rope_tables(pos // width, half, base)
        cos_c, sin_c = _rope_tables(pos % width, half, base)
        self.register_buffer("cos_cached", torch.cat((cos_r, cos_c), dim=-1), persistent=False)
        self.register_buffer("sin_cached", torch.cat((sin_r, sin_c), dim=-1), persistent=False)

    def forward(self) -> CosSin:
        return self.cos_cached, self.sin_cached


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, halves: int = 1) -> torch.Tensor:
    """Rotate x [batch, seq, heads, head_dim] in the tables' dtype; `halves=2` rotates each half alone."""
    dtype = x.dtype
    x = x.to(cos.dtype)
    if halves == 1:
        rotated = rotate_half(x)
    else:
        rotated = torch.cat([rotate_half(part) for part in x.chunk(halves, dim=-1)], dim=-1)
    out = x * cos.unsqueeze(-2) + rotated * sin.unsqueeze(-2)
    return out.to(dtype)


def _select_attention_backend() -> tuple[str, object | None]:
    """FlashAttention-3, then FlashAttention-2, then PyTorch SDPA (the only CPU path)."""
    if torch.cuda.is_available():
        try:
            from flash_attn_interface import flash_attn_func  # FlashAttention-3 (Hopper)

            return "flash_attn_3", flash_attn_func
        except ImportError:
            pass
        try:
            from flash_attn import flash_attn_func  # FlashAttention-2

            return "flash_attn_2", flash_attn_func
        except ImportError:
            pass
    return "sdpa", None


_BACKEND: tuple[str, object | None] | None = None


def attention_backend() -> tuple[str, object | None]:
    """The attention kernel, chosen once per process and logged."""
    global _BACKEND
    if _BACKEND is None:
        _BACKEND = _select_attention_backend()
        log.info("attention backend: %s", _BACKEND[0])
    return _BACKEND


class Attention(nn.Module):
    """Non-causal multi-head self-attention with a fused [q | k | v] projection."""

    def __init__(self, hidden_size: int, num_heads: int, rope_halves: int = 1) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.rope_halves = rope_halves
        self.qkv_proj = CastedLinear(hidden_size, 3 * hidden_size, bias=False)
        self.o_proj = CastedLinear(hidden_size, hidden_size, bias=False)

    def forward(self, x: torch.Tensor, cos_sin: CosSin | None) -> torch.Tensor:
        batch, seq, hidden = x.shape
        qkv = self.qkv_proj(x).view(batch, seq, 3 * self.num_heads, self.head_dim)
        q, k, v = qkv.split(self.num_heads, dim=2)
        if cos_sin is not None:
            cos, sin = cos_sin
            q = apply_rotary_pos_emb(q, cos, sin, self.rope_halves)
            k = apply_rotary_pos_emb(k, cos, sin, self.rope_halves)
        name, kernel = attention_backend()
        if name != "sdpa" and x.is_cuda and x.dtype in (torch.float16, torch.bfloat16):
            out = kernel(q, k, v, causal=False)
            if isinstance(out, tuple):  # FlashAttention-3 also returns the log-sum-exp
                out = out[0]
        else:
            out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
            out = out.transpose(1, 2)
        return self.o_proj(out.reshape(batch, seq, hidden))


def _find_multiple(a: int, b: int) -> int:
    return -(a // -b) * b


class SwiGLU(nn.Module):
    """Gated MLP; intermediate width rounded up to a multiple of 256 as in the reference."""

    def __init__(self, dim: int, expansion: float) -> None:
        super().__init__()
        inter = _find_multiple(round(expansion * dim * 2 / 3), 256)
        self.gate_up_proj = CastedLinear(dim, 2 * inter, bias=False)
        self.down_proj = CastedLinear(inter, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
        return self.down_proj(F.silu(gate) * up)

    def padded(self, x: torch.Tensor, multiple: int) -> torch.Tensor:
        """`forward` with the feature axis zero-padded to a multiple of `multiple` (tensor-core tiles for
        the 81-long token axis of mlp_t). The padding meets zero weights, so the result is the same sum
        (up to the order in which a kernel adds it); the parameters keep their shapes."""
        dim = x.shape[-1]
        pad = -dim % multiple
        if pad == 0:
            return self(x)
        gate_up = F.pad(self.gate_up_proj.weight, (0, pad)).to(x.dtype)
        down = F.pad(self.down_proj.weight, (0, 0, 0, pad)).to(x.dtype)
        gate, up = F.linear(F.pad(x, (0, pad)), gate_up).chunk(2, dim=-1)
        return F.linear(F.silu(gate) * up, down)[..., :dim]
