"""Per-trajectory random numbers: every draw a pure function of (seed, puzzle, restart, segment, call, element).

A trajectory's random initial state, its noise at every update and its restart then do not depend
on the batch it runs in, its slot, the batch size or the number of ranks. The draws come from a
counter-based generator: a 32-bit integer hash (`lowbias32`) of the trajectory's two keys, a
stream number (segment x 256 + call) and the element index, turned into uniforms, Gaussians
(Box-Muller) or truncated Gaussians (inverse CDF, as `trunc_normal_init_` draws them). All of it is
int32 tensor arithmetic on the trajectories' device, vectorised over rows and elements (products
wrap modulo 2^32, as the hash intends; a test checks them against exact 64-bit arithmetic).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from models.reasoner import Latents

CALLS_PER_SEGMENT = 256  # stream = segment * 256 + call
MAX_LATENTS = 16  # the last calls of segment 0 draw the initial latents (TRM's z_H, z_L: calls 254, 255)
NOISE_CALLS = CALLS_PER_SEGMENT - MAX_LATENTS  # noise draws per segment at most


def _signed(constant: int) -> int:
    return constant - (1 << 32) if constant >= 1 << 31 else constant


_C1, _C2 = _signed(0x7FEB352D), _signed(0x846CA68B)


def hash32(x: torch.Tensor) -> torch.Tensor:
    """lowbias32 on int32 tensors (32-bit patterns; products wrap modulo 2^32, shifts are made logical).
    Works in place on a copy, so a large tensor costs two buffers rather than ten."""
    x = x.clone()
    x.bitwise_xor_(x.bitwise_right_shift(16).bitwise_and_(0xFFFF)).mul_(_C1)
    x.bitwise_xor_(x.bitwise_right_shift(15).bitwise_and_(0x1FFFF)).mul_(_C2)
    return x.bitwise_xor_(x.bitwise_right_shift(16).bitwise_and_(0xFFFF))


def trajectory_keys(seed: int, puzzles: torch.Tensor, restarts: torch.Tensor) -> torch.Tensor:
    """[R, 2] int32 keys of the trajectories (puzzle index, restart index) under `seed`."""
    rows = [np.random.SeedSequence([seed, int(p), int(r)]).generate_state(2) for p, r in
            zip(puzzles.tolist(), restarts.tolist(), strict=True)]
    keys = np.array(rows, dtype=np.uint32).reshape(-1, 2).view(np.int32)
    return torch.from_numpy(keys.copy()).to(puzzles.device)


def uniform(keys: torch.Tensor, stream: torch.Tensor, numel: int) -> torch.Tensor:
    """[R, numel] float32 in (0, 1), 24-bit resolution: a hash of (keys[r], stream[r], element index)."""
    row = hash32(keys[:, 1] ^ stream.to(torch.int32)).unsqueeze(1)  # one stream seed per row
    elements = torch.arange(numel, dtype=torch.int32, device=keys.device).unsqueeze(0)
    x = hash32(elements ^ keys[:, :1])
    x = hash32(x.bitwise_xor_(row))
    return x.bitwise_right_shift_(8).bitwise_and_(0xFFFFFF).to(torch.float32).add_(0.5).mul_(2.0**-24)


def normal(keys: torch.Tensor, stream: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """[R, *shape] standard normals: Box-Muller, both outputs of each uniform pair used."""
    numel = math.prod(shape)
    half = (numel + 1) // 2
    u = uniform(keys, stream, 2 * half)
    radius = u[:, :half].log_().mul_(-2.0).sqrt_()
    angle = u[:, half:].mul_(2.0 * math.pi)
    out = torch.cat((angle.cos(), angle.sin_()), dim=1).mul_(radius.repeat(1, 2))
    return out[:, :numel].reshape(-1, *shape)


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
        if self.call >= NOISE_CALLS:
            raise RuntimeError(f"more than {NOISE_CALLS} noise draws in one segment")
        stream = self.segments * CALLS_PER_SEGMENT + self.call
        self.call += 1
        return normal(self.keys, stream, tuple(like.shape[1:])).to(like.dtype)


def initial_state(keys: torch.Tensor, stds: dict[str, float], shapes: dict[str, tuple[int, ...]],
                  dtype: torch.dtype) -> Latents:
    """Each trajectory's random initial latents, in the order of `stds`: latent i of n is drawn from stream
    256 - n + i of segment 0 (z_H and z_L: 254 and 255)."""
    if len(stds) > MAX_LATENTS:
        raise ValueError(f"a random initial state of {len(stds)} latents: at most {MAX_LATENTS}")
    rows, first = keys.shape[0], CALLS_PER_SEGMENT - len(stds)
    return {name: trunc_normal(keys, torch.full((rows,), first + i, device=keys.device), shapes[name], std).to(dtype)
            for i, (name, std) in enumerate(stds.items())}


@dataclass(frozen=True)
class SameStd:
    """Restarts draw every latent of every model with this std (`restart_std=reset_std`)."""

    std: float


RestartStd = float | SameStd | Mapping[str, float] | None


def restart_stds(own: dict[str, float] | None, names: tuple[str, ...], breadth: int,
                 restart_std: RestartStd) -> dict[str, float] | None:
    """The std of each latent's truncated-normal draw for every restart, in `names` order; None: the
    model's own reset (`own` are the stds a model declares for its random initialisation, EqR's H_init_std
    and L_init_std). At B = 1 every model keeps its own reset. At B > 1 a float is the reference's rule
    (SPEC 5.1): a model's declared stds, else max(|restart_std|, 1e-6) for every latent; `SameStd` is its
    std for every latent of every model; a mapping gives each latent's std by name."""
    if breadth == 1 or restart_std is None:
        return own
    if isinstance(restart_std, SameStd):
        return dict.fromkeys(names, restart_std.std)
    if isinstance(restart_std, Mapping):
        missing = [name for name in names if name not in restart_std]
        if missing:
            raise ValueError(f"restart_std: no std for latent(s) {', '.join(missing)} of this model")
        return {name: float(restart_std[name]) for name in names}
    return own if own is not None else dict.fromkeys(names, max(abs(restart_std), 1e-6))


def restart_argument(rule: str, reset_std: float) -> float | SameStd:
    """`run_evaluation`'s `restart_std` for the eval keys `restart_std` and `different_init_reset_std`:
    `model` is the reference's rule (a model's own restart stds where it declares them), `reset_std`
    uses `reset_std` (at least 1e-6) for every architecture."""
    if rule == "model":
        return reset_std
    if rule == "reset_std":
        return SameStd(max(abs(reset_std), 1e-6))
    raise ValueError(f"restart_std: expected model or reset_std, got {rule!r}")
