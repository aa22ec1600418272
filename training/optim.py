"""Optimizers and the learning-rate schedule of the paper's training recipe.

`AdamATan2` reproduces the `adam-atan2` CUDA kernel in plain PyTorch so that CPU runs, tests
and machines without the package train with the same update rule; `make_adam_atan2` picks the
kernel when it can. `SignSGDSparse` trains the puzzle embedding (HRM, TRM), a buffer the dense optimizer
never sees, on the rows used by each batch.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from config.schema import PretrainConfig
from models.blocks import PuzzleEmbedding
from utils.safe_load import CheckpointError

log = logging.getLogger(__name__)

Params = Iterable[torch.Tensor] | Iterable[dict[str, Any]]


class AdamATan2(torch.optim.Optimizer):
    """Adam with `atan2(m, sqrt(v))` in place of `m / (sqrt(v) + eps)`: no epsilon to tune.

    atan2 is bounded by pi/2, so the step is bounded too, and atan2(0, 0) = 0 makes an element
    that never received a gradient move by weight decay only. State keys (`step` as a float32
    scalar tensor, `exp_avg`, `exp_avg_sq`) are the package's, so state dicts interchange.
    """

    def __init__(
        self,
        params: Params,
        lr: float | torch.Tensor = 1e-4,
        betas: tuple[float, float] = (0.9, 0.95),
        weight_decay: float = 1.0,
    ) -> None:
        if float(lr) < 0.0:
            raise ValueError(f"lr must be >= 0, got {float(lr)}")
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"betas must lie in [0, 1), got {betas}")
        if weight_decay < 0.0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """One update of every parameter that has a gradient; bias corrections use the new step."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr = group["lr"]
            beta1, beta2 = group["betas"]
            weight_decay = group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if grad.is_sparse:
                    raise RuntimeError("AdamATan2 does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0, dtype=torch.float32, device=p.device)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                step, exp_avg, exp_avg_sq = state["step"], state["exp_avg"], state["exp_avg_sq"]
                step += 1
                # Tensor arithmetic on `step` keeps a CUDA run free of host synchronisation.
                bias_correction1 = 1 - beta1**step
                bias_correction2 = 1 - beta2**step
                p.mul_(1 - lr * weight_decay)
                exp_avg.lerp_(grad, 1 - beta1)
                exp_avg_sq.lerp_(grad * grad, 1 - beta2)
                denom = exp_avg_sq.sqrt() / bias_correction2.sqrt()
                p.sub_(torch.atan2(exp_avg, denom).mul_(lr / bias_correction1))
        return loss


def _tensors(params: list[Any]) -> list[torch.Tensor]:
    """The parameter tensors of a list of tensors or of param-group dicts."""
    out: list[torch.Tensor] = []
    for item in params:
        if isinstance(item, dict):
            group = item["params"]
            out.extend([group] if isinstance(group, torch.Tensor) else group)
        else:
            out.append(item)
    return out


def make_adam_atan2(
    params: Params, lr: float | torch.Tensor, betas: tuple[float, float], weight_decay: float
) -> torch.optim.Optimizer:
    """The `adam-atan2` kernel for CUDA parameters when the package imports, else `AdamATan2`.

    The kernel is the reference's; the fallback applies the same rule, so a missing package or
    a CPU run changes speed, not results beyond float rounding.
    """
    params = list(params)
    reason = None
    try:
        from adam_atan2 import AdamATan2 as KernelAdamATan2
    except (ImportError, OSError, RuntimeError) as exc:
        reason = f"adam-atan2 unavailable ({type(exc).__name__}: {exc})"
    if reason is None and not torch.cuda.is_available():
        reason = "CUDA unavailable"
    if reason is None and not all(t.is_cuda for t in _tensors(params)):
        reason = "parameters not on CUDA"
    if reason is None:
        log.info("AdamATan2 backend: adam-atan2 CUDA kernel")
        return KernelAdamATan2(params, lr=lr, betas=betas, weight_decay=weight_decay)
    log.info("AdamATan2 backend: pure PyTorch (%s)", reason)
    return AdamATan2(params, lr=lr, betas=betas, weight_decay=weight_decay)


def cosine_schedule_with_warmup_lr(
    step: int, base_lr: float, warmup_steps: int, total_steps: int, min_ratio: float
) -> float:
    """Linear warm-up to `base_lr`, then a half cosine down to `base_lr * min_ratio` at `total_steps`.

    `step` counts updates from 1. Past `total_steps` the cosine is not clamped (as in the
    reference). `min_ratio` 1.0 gives a constant rate after warm-up.
    """
    if step < warmup_steps:
        return base_lr * step / max(1, warmup_steps)
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return base_lr * (min_ratio + max(0.0, (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))))


@dataclass(frozen=True)
class LRSchedule:
    """`cosine_schedule_with_warmup_lr` for every optimizer (one base learning rate each)."""

    base_lrs: list[float]
    warmup_steps: int
    total_steps: int
    min_ratio: float

    def lrs(self, step: int) -> list[float]:
        return [cosine_schedule_with_warmup_lr(step, base, self.warmup_steps, self.total_steps, self.min_ratio)
                for base in self.base_lrs]


@dataclass
class ScheduledOptimizers:
    """The run's optimizers (AdamATan2 for the dense weights, sign-SGD for each puzzle embedding), each with
    its base learning rate, under one schedule: what a step applies and a checkpoint saves."""

    optimizers: list[Any]
    schedule: LRSchedule

    def __getitem__(self, index: int) -> Any:
        return self.optimizers[index]

    def lrs(self, step: int) -> list[float]:
        return self.schedule.lrs(step)

    def step(self, step: int) -> None:
        """Step `step`'s learning rates set, every optimizer steps and clears its gradients."""
        for optimizer, lr in zip(self.optimizers, self.lrs(step), strict=True):
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    def state_dict(self) -> list[dict[str, Any]]:
        return [optimizer.state_dict() for optimizer in self.optimizers]

    def load_state_dict(self, saved: list[dict[str, Any]], source: str) -> None:
        """Every optimizer's saved state; a count or a moment's shape that does not fit is one CheckpointError."""
        if len(saved) != len(self.optimizers):
            raise CheckpointError(f"{source}: {len(saved)} optimizer states for {len(self.optimizers)}")
        for optimizer, state in zip(self.optimizers, saved, strict=True):
            _check_moments(optimizer, state, source)
            optimizer.load_state_dict(state)


def _check_moments(optimizer: Any, state: dict[str, Any], source: str) -> None:
    """Moment tensors must have their parameter's shape (torch checks only the group sizes)."""
    params = [p for group in getattr(optimizer, "param_groups", []) for p in group.get("params", [])]
    for index, param_state in (state.get("state") or {}).items():
        for key, value in param_state.items():
            if isinstance(value, torch.Tensor) and value.ndim and index < len(params) \
                    and value.shape != params[index].shape:
                raise CheckpointError(f"{source}: optimizer state {index}.{key} has shape {tuple(value.shape)}, "
                                      f"the parameter {tuple(params[index].shape)}")


def build_optimizers(model: torch.nn.Module, config: PretrainConfig, total_steps: int) -> ScheduledOptimizers:
    """AdamATan2 over `model`'s trainable weights, then sign-SGD for each puzzle embedding, under warmup-cosine,
    as the reference's trainer builds them (`lr`, `beta1`, `beta2`, `weight_decay`, `puzzle_emb_lr`,
    `puzzle_emb_weight_decay`, `lr_warmup_steps`, `lr_min_ratio`)."""
    optimizers: list[Any] = [make_adam_atan2([p for p in model.parameters() if p.requires_grad], lr=config.lr,
                                             betas=(config.beta1, config.beta2), weight_decay=config.weight_decay)]
    base_lrs = [config.lr]
    for emb in (m for m in model.modules() if isinstance(m, PuzzleEmbedding)):
        optimizers.append(SignSGDSparse(emb, lr=config.puzzle_emb_lr, weight_decay=config.puzzle_emb_weight_decay))
        base_lrs.append(config.puzzle_emb_lr)
    return ScheduledOptimizers(optimizers, LRSchedule(base_lrs, config.lr_warmup_steps, total_steps,
                                                      config.lr_min_ratio))


class SignSGDSparse:
    """Sign-SGD with decoupled weight decay on the puzzle-embedding rows a batch used.

    Per unique id the gradients of its rows are summed (over the batch and, under
    torch.distributed, over ranks), then `w = w * (1 - lr * wd) - lr * sign(grad)` on those rows
    only; every other row is left as it is. `param_groups` mirrors torch optimizers so one loop
    can set the scheduled lr of every optimizer; `lr` reads and writes the same value.
    """

    def __init__(self, embedding: PuzzleEmbedding, lr: float, weight_decay: float) -> None:
        if lr < 0.0 or weight_decay < 0.0:
            raise ValueError(f"lr and weight_decay must be >= 0, got {lr} and {weight_decay}")
        self.embedding = embedding
        self.param_groups: list[dict[str, float]] = [{"lr": float(lr), "weight_decay": float(weight_decay)}]

    @property
    def lr(self) -> float:
        return self.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value: float) -> None:
        self.param_groups[0]["lr"] = float(value)

    @property
    def weight_decay(self) -> float:
        return self.param_groups[0]["weight_decay"]

    def _gathered(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Ids [N] and gradients [N, dim] of the rows used, from every rank; None without a gradient."""
        local = self.embedding.local_weights
        if local is None or local.grad is None or self.embedding.local_ids is None:
            return None
        grad = local.grad.reshape(-1, local.shape[-1])
        ids = self.embedding.local_ids.reshape(-1).to(device=grad.device, dtype=torch.int64)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            world = dist.get_world_size()
            all_ids = [torch.empty_like(ids) for _ in range(world)]
            all_grads = [torch.empty_like(grad) for _ in range(world)]
            dist.all_gather(all_ids, ids)
            dist.all_gather(all_grads, grad.contiguous())
            ids, grad = torch.cat(all_ids), torch.cat(all_grads)
        return ids, grad

    @torch.no_grad()
    def step(self) -> None:
        """Apply the sparse sign update; a no-op when the last forward left no gradient."""
        gathered = self._gathered()
        if gathered is None:
            return
        ids, grad = gathered
        weights = self.embedding.weights
        unique_ids, inverse = torch.unique(ids, return_inverse=True)
        summed = torch.zeros(unique_ids.numel(), grad.shape[-1], dtype=torch.float32, device=grad.device)
        summed.index_add_(0, inverse, grad.float())
        unique_ids = unique_ids.to(weights.device)
        rows = weights[unique_ids] * (1.0 - self.lr * self.weight_decay) - self.lr * summed.sign().to(weights.device)
        weights[unique_ids] = rows.to(weights.dtype)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop the gradient of the gathered rows so a later `step` without a backward does nothing."""
        local = self.embedding.local_weights
        if local is None or local.grad is None:
            return
        if set_to_none:
            local.grad = None
        else:
            local.grad.zero_()

    def state_dict(self) -> dict[str, float]:
        return {"lr": self.lr, "weight_decay": self.weight_decay}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.param_groups[0].update(lr=float(state["lr"]), weight_decay=float(state["weight_decay"]))
