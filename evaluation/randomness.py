"""Per-trajectory random numbers: every draw a pure function of (seed, puzzle, restart, segment, call, element).

A trajectory's random initial state, its noise at every update and its restart then do not depend
on the batch it runs in, its slot, the batch size or the number of ranks. The draws come from a
counter-based generator: a 32-bit integer hash (`lowbias32`) of the trajectory's two keys, a
stream number (segment x 256 + call) and the element index, turned into uniforms, Gaussians
(Box-Muller) or truncated Gaussians (inverse CDF, as `trunc_normal_init_` draws them). All of it is
tensor arithmetic on the trajectories' device, vectorised over rows and elements; products stay
below 2^63 so int64 never overflows.
"""

from __future__ import annotations

import math

import numpy as np
import torch

MASK32 = 0xFFFFFFFF
CALLS_PER_SEGMENT = 256  # stream = segment * 256 + call
INIT_H, INIT_L = 254, 255  # the calls of segment 0 that draw a trajectory's initial z_H and z_L


def _mul32(x: torch.Tensor, constant: int) -> torch.Tensor:
    """(x * constant) mod 2^32 for 32-bit x, split in 16-bit halves so no product reaches 2^63."""
    low = x * (constant & 0xFFFF)
    high = ((x * (constant >> 16)) & 0xFFFF) << 16
    return (low + high) & MASK32


def hash32(x: torch.Tensor) -> torch.Tensor:
    """lowbias32: a 32-bit integer hash with full avalanche (int64 tensors holding 32-bit values)."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def trajectory_keys(seed: int, puzzles: torch.Tensor, restarts: torch.Tensor) -> torch.Tensor:
    """[R, 2] int64 keys of the trajectories (puzzle index, restart index) under `seed`."""
    rows = [np.random.SeedSequence([seed, int(p), int(r)]).generate_state(2) for p, r in
            zip(puzzles.tolist(), restarts.tolist(), strict=True)]
    return torch.tensor(np.array(rows, dtype=np.int64).reshape(-1, 2), dtype=torch.int64, device=puzzles.device)


def uniform(keys: torch.Tensor, stream: torch.Tensor, numel: int, offset: int = 0) -> torch.Tensor:
    """[R, numel] float32 in (0, 1): element e of row r is a hash of (keys[r], stream[r], offset + e)."""
    elements = torch.arange(offset, offset + numel, dtype=torch.int64, device=keys.device)
    x = hash32(elements.unsqueeze(0) ^ keys[:, :1])
    x = hash32(x ^ stream.to(torch.int64).unsqueeze(1))
    x = hash32(x ^ keys[:, 1:])
    return (x.to(torch.float64) + 0.5).mul_(2.0**-32).to(torch.float32)


def normal(keys: torch.Tensor, stream: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """[R, *shape] standard normals (Box-Muller on two uniforms per element)."""
    numel = math.prod(shape)
    u1, u2 = uniform(keys, stream, numel), uniform(keys, stream, numel, offset=numel)
    z = torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * math.pi * u2)
    return z.view(-1, *shape)


def trunc_normal(keys: torch.Tensor, stream: torch.Tensor, shape: tuple[int, ...], std: float) -> torch.Tensor:
    """[R, *shape] truncated at +-2 sigma with actual std `std` (the inverse CDF of `trunc_normal_init_`)."""
    if std == 0:
        return torch.zeros(keys.shape[0], *shape, device=keys.device)
    z = math.erf(2.0 / math.sqrt(2.0))
    sigma = std / math.sqrt(1.0 - 4.0 * (math.exp(-2.0) / math.sqrt(2.0 * math.pi)) / z)
    u = uniform(keys, stream, math.prod(shape)) * (2 * z) - z
    return (torch.erfinv(u) * (math.sqrt(2.0) * sigma)).clamp_(-2.0 * sigma, 2.0 * sigma).view(-1, *shape)


class TrajectoryNoise:
    """The noise source EqR's update draws from during evaluation (`EqRInner.noise_source`).

    Call k of segment s of a trajectory gets stream s * 256 + k, so the noise of every update is
    the trajectory's own. `start_segment` is called once per segment with each row's segment number.
    """

    def __init__(self, keys: torch.Tensor) -> None:
        self.keys = keys
        self.segments = torch.zeros(keys.shape[0], dtype=torch.int64, device=keys.device)
        self.call = 0

    def start_segment(self, keys: torch.Tensor, segments: torch.Tensor) -> None:
        self.keys, self.segments, self.call = keys, segments.to(torch.int64), 0

    def __call__(self, like: torch.Tensor) -> torch.Tensor:
        if self.call >= INIT_H:
            raise RuntimeError(f"more than {INIT_H} noise draws in one segment")
        stream = self.segments * CALLS_PER_SEGMENT + self.call
        self.call += 1
        return normal(self.keys, stream, tuple(like.shape[1:])).to(like.dtype)


def initial_state(keys: torch.Tensor, shape: tuple[int, ...], stds: tuple[float, float],
                  dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Each trajectory's random initial (z_H, z_L): streams INIT_H and INIT_L of segment 0."""
    rows = keys.shape[0]
    streams = (torch.full((rows,), INIT_H, device=keys.device), torch.full((rows,), INIT_L, device=keys.device))
    return tuple(trunc_normal(keys, s, shape, std).to(dtype) for s, std in zip(streams, stds, strict=True))
