"""Depth x breadth evaluation of a reasoner in one pass over the data (metrics: docs/evaluation.md).

Each batch runs once to the largest requested depth; the metrics of every requested depth
are recorded as the pass goes by it. The RNG is seeded per batch, so a batch's random draws
(EqR's random initial state and noise) do not depend on earlier batches and the numbers at
depth d equal a separate run with `halt_max_steps=d`. Breadth repeats each puzzle B times in
the same batch; augmentation breadth (TTA) additionally transforms the copies and maps their
predictions back before voting. Only the current state, the convergence window and one
prediction per trajectory are kept, never the logits of all segments.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from models.act import ACTModel, Batch, Carry
from utils.breadth_metrics import IGNORE_LABEL_ID, ConvergenceTracker, breadth_metrics
from utils.eval_accumulator import MetricSums, TrajectoryRecords
from utils.tta import TransformSet, identity

__all__ = ["ElasticExit", "EvalResult", "evaluate_depths", "run_evaluation"]


@dataclass(frozen=True)
class ElasticExit:
    """Stop a trajectory early: its prediction unchanged for `patience` segments and its latent
    residual below `tol` (or, with `use_q`, its q_halt logit above 0). Never before segment 2,
    so that every trajectory has a convergence score."""

    patience: int = 2
    tol: float = 1e-2
    use_q: bool = False


@dataclass
class EvalResult:
    """Per-depth metrics plus the cost of the pass (summed over ranks)."""

    metrics: dict[int, dict[str, float]]
    trajectory_segments: int  # segments run, summed over trajectories: the compute actually spent
    trajectories: int
    wall_s: float
    per_trajectory: dict[int, dict[str, list[float]]] | None = None  # depth -> TRAJECTORY_COLUMNS


def _batch_seed(seed: int, rank: int, index: int) -> int:
    """A well-mixed seed per (seed, rank, batch), independent of what earlier batches consumed."""
    return int(np.random.SeedSequence([seed, rank, index]).generate_state(1)[0])


def _residual(z_H: torch.Tensor, z_L: torch.Tensor, prev: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """[R] norm of the change of the whole latent state (z_H and z_L together) over one segment."""
    dH = (z_H.float() - prev[0].float()).flatten(1)
    dL = (z_L.float() - prev[1].float()).flatten(1)
    return (dH.square().sum(1) + dL.square().sum(1)).sqrt()


class _BatchRun:
    """One batch's trajectories run segment by segment; exited rows keep their last outputs."""

    def __init__(self, model: ACTModel, data: Batch, elastic: ElasticExit | None, track: int | None) -> None:
        self.model, self.elastic = model, elastic
        rows = data["inputs"].shape[0]
        device = data["inputs"].device
        self.carry = model.initial_carry(data)
        self.data = data
        self.active = torch.arange(rows, device=device)
        with torch.random.fork_rng(devices=_rng_devices(device)):  # replay the first reset's draw
            self.state = model.inner.reset(self.carry.halted, self.carry.z_H, self.carry.z_L)
        self.logits: torch.Tensor | None = None
        self.q_halt = torch.zeros(rows, device=device)
        self.exit_step = torch.full((rows,), torch.iinfo(torch.int32).max, dtype=torch.int32, device=device)
        self.last_residual = torch.zeros(rows, device=device)
        self.stable = torch.zeros(rows, dtype=torch.int32, device=device)
        self.tracker = ConvergenceTracker(track) if track else None
        self.frozen_scores = torch.zeros(rows, device=device)
        self.segments = 0

    @property
    def done(self) -> bool:
        return self.active.numel() == 0

    def step(self, index: int) -> torch.Tensor:
        """Run segment `index` (1-based) on the active rows; returns their latent residuals."""
        carry, outputs = self.model(self.carry, self.carry.current_data if index > 1 else self.data)
        self.carry = replace(carry, halted=torch.zeros_like(carry.halted))  # depth is ours, not halt_max_steps
        residual = _residual(carry.z_H, carry.z_L, self.state)
        self.state = (carry.z_H, carry.z_L)
        self.segments += self.active.numel()
        logits, q_halt = outputs["logits"], outputs["q_halt_logits"].float()
        whole = self.active.numel() == self.exit_step.numel()
        previous = self.logits
        if whole:
            self.logits, self.q_halt, self.last_residual = logits, q_halt, residual
        else:
            self.logits = previous.index_put((self.active,), logits)
            self.q_halt = self.q_halt.index_put((self.active,), q_halt)
            self.last_residual = self.last_residual.index_put((self.active,), residual)
        if self.tracker is not None:
            self.tracker.update(self.logits)
        if self.elastic is not None and index >= 2:
            self._exit(index, previous, logits, q_halt, residual)
        return residual

    def _exit(self, index: int, previous: torch.Tensor, logits: torch.Tensor, q_halt: torch.Tensor,
              residual: torch.Tensor) -> None:
        same = (logits.argmax(-1) == previous[self.active].argmax(-1)).all(-1)
        stable = torch.where(same, self.stable[self.active] + 1, 0)
        self.stable = self.stable.index_put((self.active,), stable)
        cfg = self.elastic
        leaving = q_halt > 0 if cfg.use_q else (stable >= cfg.patience) & (residual < cfg.tol)
        if not bool(leaving.any()):
            return
        gone = self.active[leaving]
        self.exit_step[gone] = index
        if self.tracker is not None:
            self.frozen_scores[gone] = self.tracker.scores()[gone]
        keep = ~leaving
        self.active = self.active[keep]
        self.carry = Carry(
            z_H=self.carry.z_H[keep], z_L=self.carry.z_L[keep], steps=self.carry.steps[keep],
            halted=self.carry.halted[keep], current_data={k: v[keep] for k, v in self.carry.current_data.items()},
        )
        self.state = (self.state[0][keep], self.state[1][keep])

    def scores(self, depth: int) -> torch.Tensor:
        exited = self.exit_step <= depth
        return torch.where(exited, self.frozen_scores, self.tracker.scores())


def _rng_devices(device: torch.device) -> list[int]:
    return [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []


def _record_depth(
    sums: MetricSums, run: _BatchRun, depth: int, labels: torch.Tensor, copies: int,
    inverse: TransformSet, transform_index: torch.Tensor, top_k: int | None,
    records: TrajectoryRecords | None = None, batch_index: int = 0,
) -> None:
    """Add one batch's contribution to the metrics at `depth` (all counts, reduced later)."""
    preds = inverse.apply(run.logits.argmax(-1).to(labels.dtype), transform_index)
    row_labels = labels.repeat_interleave(copies, dim=0)
    mask = row_labels != IGNORE_LABEL_ID
    counts = mask.sum(-1)
    valid = counts > 0
    token_correct = (preds == row_labels) & mask
    seq_correct = token_correct.sum(-1) == counts
    token_accuracy = token_correct.sum(-1).double() / counts.clamp_min(1)
    halt_pred = run.q_halt >= 0
    used = torch.clamp(run.exit_step, max=depth)
    count = valid.sum()
    sums.ratio("exact_accuracy", (valid & seq_correct).sum(), count)
    sums.ratio("accuracy", torch.where(valid, token_accuracy, 0).sum(), count)
    sums.ratio("q_halt_accuracy", (valid & (halt_pred == seq_correct)).sum(), count)
    true_positive = (valid & halt_pred & seq_correct).sum()
    sums.ratio("q_halt_precision", true_positive, (valid & halt_pred).sum())
    sums.ratio("q_halt_recall", true_positive, (valid & seq_correct).sum())
    sums.ratio("steps", torch.where(valid, used, 0).sum(), count)
    sums.ratio("final_residual", torch.where(valid, run.last_residual.double(), 0).sum(), count)
    sums.total("count", count)
    sums.total("num_puzzles", labels.shape[0])
    if run.elastic is not None:
        sums.ratio("elastic/exit_rate", (valid & (run.exit_step <= depth)).sum(), count)
        sums.maximum("elastic/max_segments", torch.where(valid, used, 0).max())
    scores = run.scores(depth) if top_k is not None and copies > 1 and depth >= 2 else None
    if records is not None:  # rows without a scored token count in no metric, so they are left out here too
        rows = torch.arange(preds.shape[0], device=preds.device)
        nan = torch.full((preds.shape[0],), float("nan"), device=preds.device)
        columns = {
            "batch": torch.full_like(rows, batch_index), "puzzle": rows // copies, "restart": rows % copies,
            "exact": seq_correct, "accuracy": token_accuracy,
            "final_residual": run.last_residual, "convergence_score": nan if scores is None else scores,
            "steps": used,
        }
        records.add(depth, **{k: v[valid] for k, v in columns.items()})
    if copies == 1:
        return
    metrics = breadth_metrics(preds, labels, copies, scores=scores, top_k=top_k if scores is not None else None)
    puzzles, tokens = labels.shape[0], int((labels != IGNORE_LABEL_ID).sum())
    for key, value in metrics.items():
        if key.endswith(("/total_samples", "/num_samples")):
            sums.total(key, value)
        elif key in ("different_init/n", "convergence_top_k/k"):
            sums.maximum(key, value)
        else:
            weight = tokens if key == "majority_vote/accuracy" else puzzles
            sums.ratio(key, value * weight, weight)


def _expand(batch: Batch, num_valid: int, copies: int, breadth: int, transforms: TransformSet,
            device: torch.device) -> tuple[Batch, torch.Tensor, torch.Tensor]:
    """Valid rows only, each puzzle repeated `copies` times, inputs transformed per copy."""
    data = {k: v[:num_valid].to(device) for k, v in batch.items()}
    labels = data["labels"]
    rows = {k: v.repeat_interleave(copies, dim=0) for k, v in data.items()}
    index = transforms.row_index(num_valid * copies, breadth)
    rows["inputs"] = transforms.apply(rows["inputs"], index)
    rows["labels"] = transforms.apply(rows["labels"], index)
    return rows, labels, index


def run_evaluation(
    act_model: ACTModel,
    batches: Iterable[tuple[dict[str, torch.Tensor], int]],
    depths: Sequence[int],
    different_init: int = 1,
    convergence_top_k: int | None = None,
    convergence_window: int = 3,
    seed: int = 0,
    tta: TransformSet | None = None,
    elastic: ElasticExit | None = None,
    per_trajectory: bool = False,
) -> EvalResult:
    """Evaluate at every depth in `depths` in one pass; see `evaluate_depths`. With `per_trajectory`
    the result also holds one row per trajectory and depth (`TrajectoryRecords`)."""
    depths = sorted(set(depths))
    if not depths or depths[0] < 1:
        raise ValueError(f"halt_max_steps: every depth must be >= 1, got {list(depths)}")
    if different_init < 1:
        raise ValueError(f"different_init: must be >= 1, got {different_init}")
    if act_model.training:
        raise ValueError("evaluation needs act_model.eval(): training mode halts and explores at random")
    device = next(act_model.parameters()).device
    cfg = act_model.config
    transforms = (tta or identity(cfg.seq_len, cfg.vocab_size)).to(device)
    copies = different_init * transforms.size
    if convergence_top_k is not None and not 1 <= convergence_top_k <= copies:
        raise ValueError(f"convergence_top_k: must lie in 1..{copies} (trajectories per puzzle), "
                         f"got {convergence_top_k}")
    track = convergence_window if convergence_top_k is not None and copies > 1 else None
    inverse = transforms.inverse()
    rank = dist.get_rank() if dist.is_initialized() else 0
    per_depth = {d: MetricSums() for d in depths}
    shared, cost = MetricSums(), MetricSums()
    records = TrajectoryRecords(depths) if per_trajectory else None
    start = time.perf_counter()
    with torch.random.fork_rng(devices=_rng_devices(device)), torch.inference_mode():
        for index, (batch, num_valid) in enumerate(batches):
            if num_valid == 0:
                continue
            data, labels, transform_index = _expand(batch, num_valid, copies, different_init, transforms, device)
            torch.manual_seed(_batch_seed(seed, rank, index))
            run = _BatchRun(act_model, data, elastic, track)
            pending = list(depths)
            for step in range(1, depths[-1] + 1):
                if run.done:
                    break
                residual = run.step(step)
                shared.ratio(f"residual_of_{step}_steps", residual.double().sum(), residual.numel())
                while pending and (pending[0] == step or run.done):
                    depth = pending.pop(0)
                    _record_depth(per_depth[depth], run, depth, labels, copies, inverse, transform_index,
                                  convergence_top_k, records, index)
            cost.total("trajectory_segments", run.segments)
            cost.total("trajectories", labels.shape[0] * copies)
    residuals = shared.reduce(device)
    totals = cost.reduce(device)
    metrics = {}
    for d in depths:
        values = per_depth[d].reduce(device)
        for i in range(1, d + 1):
            key = f"residual_of_{i}_steps"
            if key in residuals:
                values[key] = residuals[key]
        if elastic is not None and values.get("count"):
            values["elastic/mean_segments"] = values["steps"]
            values["elastic/segments_saved"] = 1.0 - values["steps"] / d
        metrics[d] = values
    return EvalResult(metrics, int(totals.get("trajectory_segments", 0)), int(totals.get("trajectories", 0)),
                      time.perf_counter() - start, records.gather() if records is not None else None)


def evaluate_depths(
    act_model: ACTModel,
    batches: Iterable[tuple[dict[str, torch.Tensor], int]],
    depths: Sequence[int],
    **options: Any,
) -> dict[int, dict[str, float]]:
    """Metrics per depth (the reference's names) for `batches` of `(batch, num_valid_rows)`.

    `options` are those of `run_evaluation` (different_init, convergence_top_k,
    convergence_window, seed, tta, elastic). The caller puts the model in eval mode (with EMA
    weights if wanted); its `halt_max_steps` is ignored, every trajectory runs exactly d
    segments for depth d (fewer with `elastic`). Rows beyond `num_valid_rows` are padding and
    are dropped before the model runs. With torch.distributed initialised, counts are summed
    over ranks, so every rank gets the totals. The global RNG state is restored afterwards, so
    a training run is not perturbed.
    """
    return run_evaluation(act_model, batches, depths, **options).metrics
