"""Depth x breadth evaluation of a reasoner in one pass over the data (metrics: docs/evaluation.md).

Each batch runs once to the largest requested depth; the metrics of every requested depth
are recorded as the pass goes by it. The RNG is seeded per batch, so a batch's random draws
(random initial states and noise) do not depend on earlier batches and the numbers at depth d
equal a separate run with `halt_max_steps=d`. Breadth repeats each puzzle B times in the same
batch, and with B > 1 every restart starts from its own truncated-normal draw of z_H and z_L
(`restart_std`, for every architecture, as the reference does); augmentation breadth (TTA)
additionally transforms the copies and maps their predictions back before voting. Only the
current state, the convergence window and one prediction per trajectory are kept, never the
logits of all segments. Counting, clean or the reference's way, is in utils/eval_counting.py.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from models.act import ACTModel, Batch, Carry
from models.layers import trunc_normal_like
from utils.breadth_metrics import ConvergenceTracker
from utils.eval_accumulator import MetricSums, TrajectoryRecords
from utils.eval_counting import Counting, DepthView, count_depth, merge_counted, trajectory_columns
from utils.eval_outputs import OutputRecorder
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
    outputs: dict[int, dict[str, torch.Tensor]] | None = None  # depth -> saved outputs (`save_outputs`)


def _batch_seed(seed: int, rank: int, index: int) -> int:
    """A well-mixed seed per (seed, rank, batch), independent of what earlier batches consumed."""
    return int(np.random.SeedSequence([seed, rank, index]).generate_state(1)[0])


def _residual(z_H: torch.Tensor, z_L: torch.Tensor, prev: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """[R] norm of the change of the whole latent state (z_H and z_L together) over one segment."""
    dH = (z_H.float() - prev[0].float()).flatten(1)
    dL = (z_L.float() - prev[1].float()).flatten(1)
    return (dH.square().sum(1) + dL.square().sum(1)).sqrt()


class _BatchRun:
    """One batch's trajectories run segment by segment; exited rows keep their last outputs.

    `restart_std` (breadth): every row starts from its own truncated-normal z_H and z_L instead of
    the model's reset. `trackers` name the convergence scores kept ("clean": float32; "reference":
    the forward dtype).
    """

    def __init__(self, model: ACTModel, data: Batch, elastic: ElasticExit | None, window: int | None,
                 trackers: Sequence[str], restart_std: float | None) -> None:
        self.model, self.elastic = model, elastic
        rows = data["inputs"].shape[0]
        device = data["inputs"].device
        self.carry = model.initial_carry(data)
        self.data = data
        self.active = torch.arange(rows, device=device)
        # Both draws replay the stream the model's first reset consumes (the RNG is restored after them),
        # so EqR's restarts at std 1 are exactly its own random initialisation.
        with torch.random.fork_rng(devices=_rng_devices(device)):
            if restart_std is None:
                self.state = model.inner.reset(self.carry.halted, self.carry.z_H, self.carry.z_L)
            else:
                self.state = (trunc_normal_like(self.carry.z_H, restart_std),
                              trunc_normal_like(self.carry.z_L, restart_std))
        if restart_std is not None:  # start from the draw: nothing is halted, so the model resets no row
            self.carry = replace(self.carry, z_H=self.state[0], z_L=self.state[1],
                                 halted=torch.zeros_like(self.carry.halted), current_data=data)
        self.logits: torch.Tensor | None = None
        self.q_halt = torch.zeros(rows, device=device)
        self.exit_step = torch.full((rows,), torch.iinfo(torch.int32).max, dtype=torch.int32, device=device)
        self.last_residual = torch.zeros(rows, device=device)
        self.stable = torch.zeros(rows, dtype=torch.int32, device=device)
        self.trackers = {name: ConvergenceTracker(window, native=name == "reference")
                         for name in (trackers if window else ())}
        self.frozen_scores = {name: torch.zeros(rows, device=device) for name in self.trackers}
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
        for tracker in self.trackers.values():
            tracker.update(self.logits)
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
        for name, tracker in self.trackers.items():
            self.frozen_scores[name][gone] = tracker.scores()[gone].float()
        keep = ~leaving
        self.active = self.active[keep]
        self.carry = Carry(
            z_H=self.carry.z_H[keep], z_L=self.carry.z_L[keep], steps=self.carry.steps[keep],
            halted=self.carry.halted[keep], current_data={k: v[keep] for k, v in self.carry.current_data.items()},
        )
        self.state = (self.state[0][keep], self.state[1][keep])

    def scores(self, depth: int) -> dict[str, torch.Tensor]:
        exited = self.exit_step <= depth
        out = {}
        for name, tracker in self.trackers.items():
            live = tracker.scores()
            out[name] = torch.where(exited, self.frozen_scores[name].to(live.dtype), live)
        return out


def _rng_devices(device: torch.device) -> list[int]:
    return [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []


def _view(run: _BatchRun, depth: int, labels: torch.Tensor, copies: int, valid_puzzles: int,
          inverse: TransformSet, transform_index: torch.Tensor, scored: bool) -> DepthView:
    """The batch at `depth` as the counting rules see it (predictions mapped back to the original frame)."""
    return DepthView(
        preds=inverse.apply(run.logits.argmax(-1).to(labels.dtype), transform_index), labels=labels,
        copies=copies, valid_puzzles=valid_puzzles, q_halt=run.q_halt, steps=torch.clamp(run.exit_step, max=depth),
        final_residual=run.last_residual, exited=(run.exit_step <= depth) if run.elastic is not None else None,
        scores=run.scores(depth) if scored and depth >= 2 else {},
    )


def _expand(batch: Batch, rows: int, copies: int, breadth: int, transforms: TransformSet,
            device: torch.device) -> tuple[Batch, torch.Tensor, torch.Tensor]:
    """The first `rows` rows, each puzzle repeated `copies` times, inputs transformed per copy."""
    data = {k: v[:rows].to(device) for k, v in batch.items()}
    labels = data["labels"]
    expanded = {k: v.repeat_interleave(copies, dim=0) for k, v in data.items()}
    index = transforms.row_index(rows * copies, breadth)
    expanded["inputs"] = transforms.apply(expanded["inputs"], index)
    expanded["labels"] = transforms.apply(expanded["labels"], index)
    return expanded, labels, index


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
    restart_std: float | None = 1.0,
    counting: Counting = "clean",
    save_outputs: Sequence[str] = (),
    total_batches: int | None = None,
    progress: bool = True,
) -> EvalResult:
    """Evaluate at every depth in `depths` in one pass; see `evaluate_depths`.

    `restart_std`: with `different_init` > 1, the std of each restart's z_H, z_L draw (None keeps
    the model's own reset). `counting`: "clean", "reference" (SPEC 5.1: padding rows are run and
    counted as the reference does) or "both" (reference-counted values under `ref/`). With
    `per_trajectory` the result holds one row per trajectory and depth; `save_outputs` names the
    tensors kept per depth (utils/eval_outputs.py). A progress bar over batches x segments runs on
    rank 0 (`total_batches` gives it an end and an ETA).
    """
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
    modes = {"clean": ["clean"], "reference": ["reference"], "both": ["clean", "reference"]}[counting]
    window = convergence_window if convergence_top_k is not None and copies > 1 else None
    restart = restart_std if different_init > 1 else None
    inverse = transforms.inverse()
    rank = dist.get_rank() if dist.is_initialized() else 0
    sums = {mode: {d: MetricSums() for d in depths} for mode in modes}
    residuals = {mode: MetricSums() for mode in modes}
    cost = MetricSums()
    records = TrajectoryRecords(depths) if per_trajectory else None
    outputs = OutputRecorder(save_outputs, depths) if save_outputs else None
    previous_final: tuple[torch.Tensor, torch.Tensor] | None = None  # the reference's residual_of_1 baseline
    bar = tqdm(total=total_batches * depths[-1] if total_batches else None, unit="segment", desc="evaluating",
               disable=not progress or rank != 0, mininterval=1.0, dynamic_ncols=True, leave=False)
    start = time.perf_counter()
    with torch.random.fork_rng(devices=_rng_devices(device)), torch.inference_mode():
        for index, (batch, num_valid) in enumerate(batches):
            rows = batch["inputs"].shape[0] if "reference" in modes else num_valid
            if rows == 0:
                bar.update(depths[-1])
                continue
            data, labels, transform_index = _expand(batch, rows, copies, different_init, transforms, device)
            torch.manual_seed(_batch_seed(seed, rank, index))
            run = _BatchRun(act_model, data, elastic, window, modes, restart)
            valid_rows = num_valid * copies
            pending = list(depths)
            executed = 0
            for step in range(1, depths[-1] + 1):
                if run.done:
                    break
                before = run.state
                residual = run.step(step)
                executed = step
                bar.update(1)
                key = f"residual_of_{step}_steps"
                if "clean" in modes:
                    residuals["clean"].ratio(key, residual[:valid_rows].double().sum(), valid_rows)
                if "reference" in modes:  # every row, padding included, over the real rows
                    if step == 1:  # measured from the state before the reset (SPEC 5.1)
                        fits = previous_final is not None and previous_final[0].shape == before[0].shape
                        residual = _residual(*run.state, previous_final if fits else
                                             (torch.zeros_like(before[0]), torch.zeros_like(before[1])))
                    residuals["reference"].ratio(key, residual.double().sum(), valid_rows)
                while pending and (pending[0] == step or run.done):
                    depth = pending.pop(0)
                    view = _view(run, depth, labels, copies, num_valid, inverse, transform_index, window is not None)
                    for mode in modes:
                        count_depth(sums[mode][depth], view, convergence_top_k, reference=mode == "reference")
                    if records is not None:
                        records.add(depth, **trajectory_columns(view, index))
                    if outputs is not None:
                        outputs.add(depth, index, run, data, valid_rows)
            bar.update(depths[-1] - executed)  # segments an elastic exit saved
            previous_final = run.state if run.state[0].shape[0] == rows * copies else None
            cost.total("trajectory_segments", run.segments)
            cost.total("trajectories", valid_rows)
    bar.close()
    totals = cost.reduce(device)
    counted = {mode: (residuals[mode].reduce(device), {d: sums[mode][d].reduce(device) for d in depths})
               for mode in modes}
    metrics = {}
    for d in depths:
        per_mode = {}
        for mode, (res, per_depth) in counted.items():
            values = per_depth[d]
            values.update({f"residual_of_{i}_steps": res[f"residual_of_{i}_steps"] for i in range(1, d + 1)
                           if f"residual_of_{i}_steps" in res})
            if elastic is not None and values.get("count"):
                values["elastic/mean_segments"] = values["steps"]
                values["elastic/segments_saved"] = 1.0 - values["steps"] / d
            per_mode[mode] = values
        metrics[d] = merge_counted(per_mode.get("clean"), per_mode.get("reference"))
    return EvalResult(metrics, int(totals.get("trajectory_segments", 0)), int(totals.get("trajectories", 0)),
                      time.perf_counter() - start, records.gather() if records is not None else None,
                      outputs.gather(copies) if outputs is not None else None)


def evaluate_depths(
    act_model: ACTModel,
    batches: Iterable[tuple[dict[str, torch.Tensor], int]],
    depths: Sequence[int],
    **options: Any,
) -> dict[int, dict[str, float]]:
    """Metrics per depth (the reference's names) for `batches` of `(batch, num_valid_rows)`.

    `options` are those of `run_evaluation` (different_init, convergence_top_k,
    convergence_window, seed, tta, elastic, restart_std, counting, ...). The caller puts the
    model in eval mode (with EMA weights if wanted); its `halt_max_steps` is ignored, every
    trajectory runs exactly d segments for depth d (fewer with `elastic`). With clean counting,
    rows beyond `num_valid_rows` are padding and are dropped before the model runs. With
    torch.distributed initialised, counts are summed over ranks, so every rank gets the totals.
    The global RNG state is restored afterwards, so a training run is not perturbed.
    """
    return run_evaluation(act_model, batches, depths, **options).metrics


def batches_in(num_examples: int, global_batch_size: int, limit: int | None = None) -> int:
    """Test batches of a split (the last one padded), at most `limit`: the progress bar's length."""
    count = math.ceil(num_examples / global_batch_size)
    return min(count, limit) if limit is not None else count
