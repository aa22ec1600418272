"""Depth x breadth evaluation of a reasoner in one pass over the data (metrics: docs/evaluation.md).

Each batch runs once to the largest requested depth; the metrics of every requested depth
are recorded as the pass goes by it. The RNG is seeded per batch, so a batch's random draws
(random initial states and noise) do not depend on earlier batches and the numbers at depth d
equal a separate run with `halt_max_steps=d`. Breadth repeats each puzzle B times in the same
batch, and with B > 1 every restart starts from its own truncated-normal draw of z_H and z_L
(`restart_std`, for every architecture, as the reference does); augmentation breadth (TTA)
additionally transforms the copies and maps their predictions back before voting. Only the
current state, the convergence window and one prediction per trajectory are kept, never the
logits of all segments. Counting, clean or the reference's way, is in evaluation/counting.py.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from dataset.symmetries import TransformSet, identity
from evaluation.accumulator import MetricSums, TrajectoryRecords
from evaluation.counting import Counting, DepthView, count_depth, merge_counted, trajectory_columns
from evaluation.outputs import OutputRecorder
from evaluation.trajectories import BatchRun, ElasticExit, rng_devices
from models.act import ACTModel, Batch, latent_residual

__all__ = ["ElasticExit", "EvalResult", "evaluate_depths", "run_evaluation"]


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


def _view(run: BatchRun, depth: int, labels: torch.Tensor, copies: int, valid_puzzles: int,
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
    tensors kept per depth (evaluation/outputs.py). A progress bar over batches x segments runs on
    rank 0 (`total_batches` gives it an end and an ETA).
    """
    depths = sorted(set(depths))
    if not depths or depths[0] < 1:
        raise ValueError(f"depths (halt_max_steps): every depth must be >= 1, got {list(depths)}")
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
    with torch.random.fork_rng(devices=rng_devices(device)), torch.inference_mode():
        for index, (batch, num_valid) in enumerate(batches):
            rows = batch["inputs"].shape[0] if "reference" in modes else num_valid
            if rows == 0:
                bar.update(depths[-1])
                continue
            data, labels, transform_index = _expand(batch, rows, copies, different_init, transforms, device)
            torch.manual_seed(_batch_seed(seed, rank, index))
            run = BatchRun(act_model, data, elastic, window, modes, restart)
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
                        residual = latent_residual(*run.state, previous_final if fits else
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
