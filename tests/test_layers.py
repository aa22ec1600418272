"""Building blocks against their reference definitions."""

from __future__ import annotations

import pytest
import torch

from models.layers import (
    RotaryEmbedding,
    RotaryEmbedding2D,
    SwiGLU,
    apply_rotary_pos_emb,
    attention_backend,
    rms_norm,
    trunc_normal_init_,
)


def test_trunc_normal_has_requested_std_and_bounds():
    torch.manual_seed(0)
    x = trunc_normal_init_(torch.empty(400_000), std=0.5)
    # The std of N(0, 1) truncated at +-2, by quadrature (0.87963): the sigma that gives std 0.5 after truncation.
    grid = torch.linspace(-2, 2, 400_001, dtype=torch.float64)
    density = torch.exp(-grid.square() / 2)
    truncated_std = (torch.trapezoid(grid.square() * density, grid) / torch.trapezoid(density, grid)).sqrt().item()
    sigma = 0.5 / truncated_std
    assert x.std().item() == pytest.approx(0.5, rel=5e-3)
    assert x.mean().abs().item() < 5e-3
    assert x.abs().max().item() <= 2 * sigma + 1e-6
    assert x.abs().max().item() > 1.999 * sigma  # the band is actually used, up to its edge
    assert torch.equal(trunc_normal_init_(torch.ones(5), std=0.0), torch.zeros(5))


def test_rms_norm_is_scale_free_and_computed_in_float32():
    x = torch.randn(3, 5, 8)
    y = rms_norm(x, 1e-5)
    torch.testing.assert_close(y.square().mean(-1), torch.ones(3, 5), rtol=1e-4, atol=1e-4)
    assert rms_norm(x.bfloat16(), 1e-5).dtype == torch.bfloat16


@pytest.mark.parametrize("dim,expansion,inter", [(64, 4, 256), (81, 4, 256), (512, 4, 1536), (128, 4, 512)])
def test_swiglu_intermediate_width(dim, expansion, inter):
    mlp = SwiGLU(dim, expansion)
    assert mlp.gate_up_proj.weight.shape == (2 * inter, dim)
    assert mlp.down_proj.weight.shape == (dim, inter)


def test_rope_preserves_norm_and_encodes_relative_position():
    rope = RotaryEmbedding(16, 10, 10000.0)
    cos, sin = rope()
    q = torch.randn(1, 10, 1, 16)
    torch.testing.assert_close(apply_rotary_pos_emb(q, cos, sin).norm(dim=-1), q.norm(dim=-1))
    # One query and one key vector placed at every position: <R_m q, R_n k> depends on m - n only.
    q0, k0 = torch.randn(16, dtype=torch.float64), torch.randn(16, dtype=torch.float64)
    rq = apply_rotary_pos_emb(q0.expand(1, 10, 1, 16), cos.double(), sin.double())[0, :, 0]
    rk = apply_rotary_pos_emb(k0.expand(1, 10, 1, 16), cos.double(), sin.double())[0, :, 0]
    dots = rq @ rk.T  # [m, n]
    for offset in range(-9, 10):
        diagonal = torch.diagonal(dots, offset=offset)
        torch.testing.assert_close(diagonal, diagonal[:1].expand_as(diagonal), rtol=1e-6, atol=1e-6)  # float32 tables
    assert len({round(torch.diagonal(dots, offset=o)[0].item(), 6) for o in range(-9, 10)}) == 19


def test_rope2d_rotates_halves_by_row_and_column():
    h, w, dim = 3, 4, 16
    cos, sin = RotaryEmbedding2D(dim, h, w, 10000.0)()
    cos_1d, sin_1d = RotaryEmbedding(dim // 2, max(h, w), 10000.0)()
    x = torch.randn(2, h * w, 2, dim)
    out = apply_rotary_pos_emb(x, cos, sin, halves=2)
    rows, cols = torch.arange(h * w) // w, torch.arange(h * w) % w
    first = apply_rotary_pos_emb(x[..., : dim // 2], cos_1d[rows], sin_1d[rows])
    second = apply_rotary_pos_emb(x[..., dim // 2 :], cos_1d[cols], sin_1d[cols])
    torch.testing.assert_close(out, torch.cat((first, second), -1))


@pytest.mark.skipif(torch.cuda.is_available(), reason="with CUDA a flash-attention kernel may be selected")
def test_cpu_attention_backend_is_sdpa():
    assert attention_backend()[0] == "sdpa"
