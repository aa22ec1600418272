"""Depth x breadth evaluation of a reasoner in one pass over the data (metrics: docs/evaluation.md).

Every puzzle of each evaluation batch is expanded into B x tta trajectories (restarts, and
transformed copies with TTA), which run in a fixed number of slots (continuous batching,
evaluation/trajectories.py): one segment advances every slot, a trajectory leaves at the largest
requested depth or when its elastic stop rule fires, and its slot takes the next one at once. The
outputs of every requested depth are recorded as a trajectory passes it, so one pass serves all
depths. Each trajectory draws its random numbers (initial state, noise) from its own stream keyed
by (seed, puzzle, restart, segment), so its result does not depend on batch size, slot or rank.
When all trajectories of a batch are done, its puzzles are counted, clean or the reference's way
(evaluation/counting.py).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
import torch.distributed as dist
from tqdm import tqdm

from dataset.symmetries import TransformSet, identity
from evaluation.accumulator import MetricSums, ResidualSums, TrajectoryRecords
from evaluation.adaptive_breadth import AdaptiveQueue
from evaluation.counting import Counting, DepthView, count_depth, merge_counted, trajectory_columns
from evaluation.outputs import OutputRecorder
from evaluation.randomness import restart_stds
from evaluation.stopping import StopRule
from evaluation.trajectories import SlotRunner, Trajectory
from models.act import ACTModel, Batch

__all__ = ["EvalResult", "StopRule", "evaluate_depths", "run_evaluation"]


@dataclass
class EvalResult:
    """Per-depth metrics plus the cost of the pass (summed over ranks)."""

    metrics: dict[int, dict[str, float]]
    trajectory_segments: int  # segments run, summed over trajectories: the compute actually spent
    trajectories: int
    wall_s: float
    per_trajectory: dict[int, dict[str, list[float]]] | None = None  # depth -> TRAJECTORY_COLUMNS
    outputs: dict[int, dict[str, torch.Tensor]] | None = None  # depth -> saved outputs (`save_outputs`)


@dataclass
class _Group:
    """One evaluation batch: its puzzles' labels and the trajectories still to finish."""

    labels: torch.Tensor  # [rows, S] original frame
    puzzles: torch.Tensor  # [rows] global puzzle indices
    valid: int  # real puzzles (the rest pad the split)
    pending: int
    done: list[Trajectory] = field(default_factory=list)


def _puzzles(batches: Iterable[tuple[Batch, int]], groups: dict[int, _Group], copies: int, breadth: int,
             transforms: TransformSet, with_padding: bool, rank: int, world: int) -> Iterator[list[Trajectory]]:
    """Every puzzle's trajectories (its B x tta copies), batch by batch; registers each batch as a group."""
    for index, (batch, num_valid) in enumerate(batches):
        local = batch["inputs"].shape[0]
        rows = local if with_padding else num_valid
        if rows == 0:
            continue
        puzzles = index * local * world + rank * local + torch.arange(rows)
        groups[index] = _Group(labels=batch["labels"][:rows], puzzles=puzzles, valid=num_valid, pending=rows * copies)
        for row in range(rows):
            restarts = []
            for copy in range(copies):
                t = torch.tensor([copy // breadth])
                data = {k: v[row:row + 1] for k, v in batch.items()}
                data["inputs"] = transforms.apply(data["inputs"], t)
                data["labels"] = transforms.apply(data["labels"], t)
                data["copy"] = torch.tensor([copy], dtype=torch.int32)
                restarts.append(Trajectory(group=index, row=row, puzzle=int(puzzles[row]), copy=copy, data=data,
                                           padding=row >= num_valid))
            yield restarts


def _views(group: _Group, depths: Sequence[int], copies: int, breadth: int, inverse: TransformSet,
           elastic: bool, scored: bool, adaptive: bool) -> Iterator[tuple[int, DepthView]]:
    """The finished group at each depth as the counting rules see it (predictions in the original frame)."""
    trajs = sorted(group.done, key=lambda t: (t.row, t.copy))
    transform = torch.tensor([t.copy // breadth for t in trajs])
    started = next(t for t in trajs if not t.skipped)
    for depth in depths:
        blank = _not_started(started.snapshots[depth]) if adaptive else None
        snaps = [blank if t.skipped else t.snapshots[depth] for t in trajs]

        def stack(key: str, snaps: list[dict[str, Any]] = snaps) -> torch.Tensor:
            return torch.stack([torch.as_tensor(s[key]) for s in snaps])

        preds = inverse.apply(stack("preds").to(group.labels.dtype), transform)
        scores = {k.split("/", 1)[1]: stack(k) for k in snaps[0] if k.startswith("score/")} if scored else {}
        yield depth, DepthView(
            preds=preds, labels=group.labels, copies=copies, valid_puzzles=group.valid, q_halt=stack("q_halt"),
            steps=stack("steps"), final_residual=stack("residual"),
            stops=[s["stop"] for s in snaps] if elastic else None,
            scores=scores if depth >= 2 else {},
            launched=torch.tensor([not t.skipped for t in trajs]) if adaptive else None,
        )


def _not_started(like: dict[str, Any]) -> dict[str, Any]:
    """The snapshot of a skipped restart: no segment run, no prediction (counted nowhere)."""
    blank = {k: torch.zeros_like(v) for k, v in like.items() if isinstance(v, torch.Tensor)}
    blank.update({k: torch.full_like(v, float("nan")) for k, v in like.items()
                  if k == "residual" or k.startswith("score/")})
    return {**blank, "stop": "skipped"}


def run_evaluation(
    act_model: ACTModel,
    batches: Iterable[tuple[dict[str, torch.Tensor], int]],
    depths: Sequence[int],
    different_init: int = 1,
    convergence_top_k: int | None = None,
    convergence_window: int = 3,
    seed: int = 0,
    tta: TransformSet | None = None,
    elastic: StopRule | None = None,
    per_trajectory: bool = False,
    restart_std: float | tuple[float, float] | None = 1.0,
    counting: Counting = "clean",
    save_outputs: Sequence[str] = (),
    total_batches: int | None = None,
    progress: bool = True,
    max_rows: int | None = None,
    segment: Callable[..., tuple] | None = None,
    breadth_agree: int | None = None,
) -> EvalResult:
    """Evaluate at every depth in `depths` in one pass; see `evaluate_depths`.

    `batches` yields (batch of puzzles, number of real rows); the slots hold one batch's
    trajectories (rows x B x tta, at most `max_rows`). `restart_std`: how restarts start with
    `different_init` > 1 (`restart_stds`).
    `counting`: "clean", "reference" (SPEC 5.1: padding rows are run and counted as the reference
    does) or "both" (reference-counted values under `ref/`). With `per_trajectory` the result
    holds one row per trajectory and depth; `save_outputs` names the tensors kept per depth
    (evaluation/outputs.py). `segment` replaces the model's segment (a compiled one: every slot
    then runs every segment, so its shape never changes). A progress bar over trajectory-segments
    runs on rank 0 (`total_batches` gives it an end and an ETA). `breadth_agree` = k: adaptive
    breadth (evaluation/adaptive_breadth.py), the slots hold k restarts per puzzle.
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
    transforms = (tta or identity(cfg.seq_len, cfg.vocab_size)).to("cpu")
    copies = different_init * transforms.size
    if convergence_top_k is not None and not 1 <= convergence_top_k <= copies:
        raise ValueError(f"convergence_top_k: must lie in 1..{copies} (trajectories per puzzle), "
                         f"got {convergence_top_k}")
    if breadth_agree is not None:
        if not 1 <= breadth_agree <= copies or copies == 1:
            raise ValueError(f"breadth_agree: must lie in 1..{copies} (trajectories per puzzle) with "
                             f"different_init x tta > 1, got {breadth_agree}")
        if counting != "clean":
            raise ValueError("breadth_agree: the reference has no adaptive breadth; use reference_counting=false")
    modes = {"clean": ["clean"], "reference": ["reference"], "both": ["clean", "reference"]}[counting]
    window = convergence_window if convergence_top_k is not None and copies > 1 else None
    restart = restart_stds(act_model.inner.random_init_std(), different_init, restart_std)
    rank = dist.get_rank() if dist.is_initialized() else 0
    world = dist.get_world_size() if dist.is_initialized() else 1
    inverse = transforms.inverse()
    sums = {mode: {d: MetricSums() for d in depths} for mode in modes}
    residuals = ResidualSums(depths[-1])
    records = TrajectoryRecords(depths) if per_trajectory else None
    outputs = OutputRecorder(save_outputs, depths) if save_outputs else None
    groups: dict[int, _Group] = {}
    batches = iter(batches)
    first = next(batches, None)
    bar = tqdm(total=None, unit="traj-seg", desc="evaluating", disable=not progress or rank != 0, mininterval=1.0,
               dynamic_ncols=True, leave=False)
    start = time.perf_counter()
    trajectories = 0
    runner = None
    with torch.inference_mode():
        if first is not None:
            rows = (first[0]["inputs"].shape[0] if "reference" in modes else first[1]) * (breadth_agree or copies)
            slots = max(1, min(rows, max_rows or rows))  # the first batch's trajectories, at most max_rows
            if total_batches:
                bar.reset(total=total_batches * first[0]["inputs"].shape[0] * copies * depths[-1])

            def on_segment(steps, residual, reference, padding):
                residuals.add(steps, residual, reference, padding)
                bar.update(len(steps))

            runner = SlotRunner(act_model, slots, depths, seed, restart, elastic, window, modes,
                                keep_logits="logits" in save_outputs, on_segment=on_segment, segment=segment,
                                fixed_shape=segment is not None, reference_residuals="reference" in modes)
            puzzles = _puzzles(_chain(first, batches), groups, copies, different_init, transforms,
                               "reference" in modes, rank, world)
            queue = AdaptiveQueue(puzzles, breadth_agree, skip=partial(_skip, groups)) if breadth_agree else \
                itertools.chain.from_iterable(puzzles)

            def count_finished() -> None:  # a group is done when its last restart finishes or is skipped
                for index in [i for i, g in groups.items() if g.pending == 0]:
                    group = groups.pop(index)
                    _count(group, sums, records, outputs, depths, copies, different_init, inverse, elastic is not None,
                           window is not None, convergence_top_k, breadth_agree)

            for traj in runner.run(queue, device):
                bar.update(depths[-1] - traj.slot_segments)
                groups[traj.group].done.append(traj)
                groups[traj.group].pending -= 1
                trajectories += not traj.padding
                if breadth_agree:
                    original = inverse.apply(traj.snapshots[depths[-1]]["preds"].unsqueeze(0),
                                             torch.tensor([traj.copy // different_init]))
                    queue.finished(traj, original[0])
                count_finished()
            count_finished()
    bar.close()
    residual_sums = {mode: MetricSums() for mode in modes}
    residuals.into(residual_sums)
    cost = MetricSums()
    cost.total("trajectory_segments", runner.slot_segments if runner else 0)
    cost.total("trajectories", trajectories)
    totals = cost.reduce(device)
    metrics = {}
    for d in depths:
        per_mode = {}
        for mode in modes:
            values = sums[mode][d].reduce(device)
            res = residual_sums[mode].reduce(device)
            values.update({f"residual_of_{i}_steps": res[f"residual_of_{i}_steps"] for i in range(1, d + 1)
                           if f"residual_of_{i}_steps" in res})
            if elastic is not None and values.get("count"):
                values["elastic/mean_segments"] = values["steps"]
                values["elastic/segments_saved"] = 1.0 - values["steps"] / d
            per_mode[mode] = values
        metrics[d] = merge_counted(per_mode.get("clean"), per_mode.get("reference"))
    return EvalResult(metrics, int(totals.get("trajectory_segments", 0)), int(totals.get("trajectories", 0)),
                      time.perf_counter() - start, records.gather() if records is not None else None,
                      outputs.gather() if outputs is not None else None)


def _skip(groups: dict[int, _Group], traj: Trajectory) -> None:
    """A restart adaptive breadth never starts: done for its group, counted nowhere."""
    traj.skipped = True
    groups[traj.group].done.append(traj)
    groups[traj.group].pending -= 1


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


def _count(group: _Group, sums: dict[str, dict[int, MetricSums]], records: TrajectoryRecords | None,
           outputs: OutputRecorder | None, depths: Sequence[int], copies: int, breadth: int, inverse: TransformSet,
           elastic: bool, scored: bool, top_k: int | None, agree: int | None) -> None:
    """Add a finished batch's puzzles to every depth's counts, records and saved outputs."""
    for depth, view in _views(group, depths, copies, breadth, inverse, elastic, scored, agree is not None):
        for mode, per_depth in sums.items():
            count_depth(per_depth[depth], view, top_k, reference=mode == "reference", agree=agree)
        if records is not None:
            records.add(depth, **trajectory_columns(view, group.puzzles))
        if outputs is not None:
            real = [t for t in group.done if not t.padding and not t.skipped]
            outputs.add(depth, real)


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
    rows beyond `num_valid_rows` are padding and never run. With torch.distributed initialised,
    counts are summed over ranks, so every rank gets the totals. The global RNG is not used.
    """
    return run_evaluation(act_model, batches, depths, **options).metrics


def batches_in(num_examples: int, global_batch_size: int, limit: int | None = None) -> int:
    """Test batches of a split (the last one padded), at most `limit`: the progress bar's length."""
    count = -(-num_examples // global_batch_size)
    return min(count, limit) if limit is not None else count
