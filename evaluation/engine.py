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
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
import torch.distributed as dist
from tqdm import tqdm

from dataset.symmetries import TransformSet, identity
from dataset.task_evaluator import TaskEvaluator
from evaluation.accumulator import MetricSums, ResidualSums, TrajectoryRecords
from evaluation.adaptive_breadth import AdaptiveQueue
from evaluation.counting import DepthView, count_depth, merge_counted, trajectory_columns
from evaluation.outputs import OutputRecorder, row_fields
from evaluation.pass_state import TRAJECTORY_RESULT, PassState
from evaluation.plan import EvalPlan
from evaluation.randomness import restart_stds
from evaluation.stopping import StopRule
from evaluation.trajectories import SlotRunner, Trajectory
from models.act import ACTModel, Batch

ADAPTIVE_UNSAVED = ("breadth_agree: an adaptive-breadth pass cannot be saved or resumed part-way (which restarts it "
                    "skips depends on the order the others finished in)")

__all__ = ["EvalPlan", "EvalResult", "StopRule", "run_evaluation"]


@dataclass
class EvalResult:
    """Per-depth metrics plus the cost of the pass (summed over ranks)."""

    metrics: dict[int, dict[str, float]]
    trajectory_segments: int  # segments run, summed over trajectories: the compute actually spent
    trajectories: int
    wall_s: float
    per_trajectory: dict[int, dict[str, list[float]]] | None = None  # depth -> TRAJECTORY_COLUMNS
    outputs: dict[int, dict[str, torch.Tensor]] | None = None  # depth -> saved outputs (`save_outputs`)
    task_files: dict[int, dict[str, Any]] = field(default_factory=dict)  # depth -> the task evaluator's files
    segments_run: int = 0  # trajectory-segments this rank ran in this call: fewer than its share when resumed


@dataclass
class _Group:
    """One evaluation batch: its puzzles' labels and the trajectories still to finish."""

    labels: torch.Tensor  # [rows, S] original frame
    puzzles: torch.Tensor  # [rows] global puzzle indices
    valid: int  # real puzzles (the rest pad the split)
    pending: int
    done: list[Trajectory] = field(default_factory=list)


def _puzzles(batches: Iterable[tuple[Batch, int]], run: _Pass, rank: int, world: int) -> Iterator[list[Trajectory]]:
    """Every puzzle's trajectories (its B x tta copies), batch by batch; registers each batch as a group.
    Resuming, the batches before `resume.counted` are skipped and the trajectories that had finished
    join their group with their results instead of running again."""
    plan, groups, transforms = run.plan, run.groups, run.transforms
    copies, breadth, with_padding, resume = (plan.breadth.copies, plan.breadth.restarts, plan.reference_counting,
                                             plan.runtime.resume)
    start, finished = (resume.counted, dict(resume.finished)) if resume is not None else (0, {})
    for index, (batch, num_valid) in enumerate(batches):
        local = batch["inputs"].shape[0]
        rows = local if with_padding else num_valid
        if rows == 0 or index < start:
            continue
        puzzles = index * local * world + rank * local + torch.arange(rows)
        group = groups[index] = _Group(labels=batch["labels"][:rows], puzzles=puzzles, valid=num_valid,
                                       pending=rows * copies)
        for row in range(rows):
            restarts = []
            for copy in range(copies):
                t = torch.tensor([copy // breadth])
                data = {k: v[row:row + 1] for k, v in batch.items()}
                data["inputs"] = transforms.apply(data["inputs"], t)
                data["labels"] = transforms.apply(data["labels"], t)
                data["copy"] = torch.tensor([copy], dtype=torch.int32)
                traj = Trajectory(group=index, row=row, puzzle=int(puzzles[row]), copy=copy, data=data,
                                  padding=row >= num_valid)
                result = finished.pop((index, row, copy), None)
                if result is None:
                    restarts.append(traj)
                else:
                    vars(traj).update(result)
                    _finish(traj, group)
            yield restarts


def _views(group: _Group, plan: EvalPlan, inverse: TransformSet) -> Iterator[tuple[int, DepthView]]:
    """The finished group at each depth as the counting rules see it (predictions in the original frame)."""
    breadth, copies, adaptive = plan.breadth.restarts, plan.breadth.copies, plan.breadth.agree is not None
    trajs = sorted(group.done, key=lambda t: (t.row, t.copy))
    transform = torch.tensor([t.copy // breadth for t in trajs])
    started = next(t for t in trajs if not t.skipped)
    for depth in plan.depths:
        blank = _not_started(started.snapshots[depth]) if adaptive else None
        snaps = [blank if t.skipped else t.snapshots[depth] for t in trajs]

        def stack(key: str, snaps: list[dict[str, Any]] = snaps) -> torch.Tensor:
            return torch.stack([torch.as_tensor(s[key]) for s in snaps])

        preds = inverse.apply(stack("preds").to(group.labels.dtype), transform)
        scores = {k.split("/", 1)[1]: stack(k) for k in snaps[0] if k.startswith("score/")} \
            if plan.window is not None else {}
        yield depth, DepthView(
            preds=preds, labels=group.labels, copies=copies, valid_puzzles=group.valid, q_halt=stack("q_halt"),
            steps=stack("steps"), final_residual=stack("residual"),
            stops=[s["stop"] for s in snaps] if plan.stopping is not None else None,
            scores=scores if depth >= 2 else {},
            launched=torch.tensor([not t.skipped for t in trajs]) if adaptive else None,
        )


def _not_started(like: dict[str, Any]) -> dict[str, Any]:
    """The snapshot of a skipped restart: no segment run, no prediction (counted nowhere)."""
    blank = {k: torch.zeros_like(v) for k, v in like.items() if isinstance(v, torch.Tensor)}
    blank.update({k: torch.full_like(v, float("nan")) for k, v in like.items()
                  if k == "residual" or k.startswith("score/")})
    return {**blank, "stop": "skipped"}


@dataclass
class _Tallies:
    """What a pass accumulates, batch by batch in order: per-mode, per-depth metric sums, residuals,
    per-trajectory rows, outputs, and the cost (segments run and real trajectories of the counted batches)."""

    sums: dict[str, dict[int, MetricSums]]
    residuals: ResidualSums
    records: TrajectoryRecords | None
    outputs: OutputRecorder | None
    segments: int = 0
    trajectories: int = 0

    @classmethod
    def for_plan(cls, plan: EvalPlan) -> _Tallies:
        return cls({mode: {d: MetricSums() for d in plan.depths} for mode in plan.modes},
                   ResidualSums(plan.depths[-1]),
                   TrajectoryRecords(plan.depths) if plan.outputs.per_trajectory else None,
                   OutputRecorder(plan.outputs.save, plan.depths) if plan.outputs.save else None)

    def state_dict(self, evaluators: Mapping[int, TaskEvaluator]) -> dict[str, Any]:
        return {"sums": {mode: {d: s.state_dict() for d, s in per.items()} for mode, per in self.sums.items()},
                "residuals": self.residuals.state_dict(),
                "records": self.records.state_dict() if self.records is not None else None,
                "outputs": self.outputs.state_dict() if self.outputs is not None else None,
                "segments": self.segments, "trajectories": self.trajectories,
                "evaluators": {d: e.state_dict() for d, e in evaluators.items()}}

    def load_state_dict(self, state: dict[str, Any], evaluators: Mapping[int, TaskEvaluator]) -> None:
        for mode, per in self.sums.items():
            for d, sums in per.items():
                sums.load_state_dict(state["sums"][mode][d])
        self.residuals.load_state_dict(state["residuals"])
        if self.records is not None:
            self.records.load_state_dict(state["records"])
        if self.outputs is not None:
            self.outputs.load_state_dict(state["outputs"])
        self.segments, self.trajectories = int(state["segments"]), int(state["trajectories"])
        for d, evaluator in evaluators.items():
            evaluator.load_state_dict(state["evaluators"][d])


@dataclass
class _Pass:
    """The moving parts of one pass: its batches expanded into trajectories, the slots, the progress bar."""

    plan: EvalPlan
    transforms: TransformSet
    inverse: TransformSet
    tallies: _Tallies
    groups: dict[int, _Group] = field(default_factory=dict)
    counted: int = 0  # batches before this one are counted
    runner: SlotRunner | None = None
    segments_run: int = 0
    elapsed_before: float = 0.0  # wall time of the earlier attempts (a resumed pass)
    started: float = field(default_factory=time.perf_counter)

    @property
    def elapsed_s(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.started

    def state(self) -> PassState:
        """What is finished: the counted batches' tallies and the finished trajectories of the others."""
        if self.plan.breadth.agree:
            raise ValueError(ADAPTIVE_UNSAVED)
        finished = {(t.group, t.row, t.copy): {k: getattr(t, k) for k in TRAJECTORY_RESULT}
                    for group in self.groups.values() for t in group.done}
        return PassState(self.counted, self.tallies.state_dict(self.plan.outputs.evaluators), finished,
                         self.elapsed_s)


def run_evaluation(act_model: ACTModel, batches: Iterable[tuple[dict[str, torch.Tensor], int]],
                   plan: EvalPlan) -> EvalResult:
    """Evaluate at every depth of `plan` in one pass: metrics per depth (the reference's names), and what
    `plan.outputs` asks for.

    `batches` yields (batch of puzzles, number of real rows); the slots hold one batch's
    trajectories (rows x B x tta, at most `plan.runtime.max_rows`). With reference counting
    (SPEC 5.1) padding rows are run and counted as the reference does; "both" adds the
    reference-counted values under `ref/`. A compiled `plan.runtime.segment` runs every slot every
    segment, so its shape never changes. A progress bar over trajectory-segments runs on rank 0.
    The caller puts the model in eval mode (with EMA weights if wanted); every trajectory runs exactly d
    segments for depth d (fewer with a stop rule). With torch.distributed initialised, counts are summed
    over ranks, so every rank gets the totals. The global RNG is not used.
    """
    if act_model.training:
        raise ValueError("evaluation needs act_model.eval(): training mode halts and explores at random")
    device = next(act_model.parameters()).device
    cfg = act_model.config
    if plan.breadth.transforms is None and plan.breadth.tta > 1:
        raise ValueError(f"tta: {plan.breadth.tta} copies need their transforms (Breadth.transforms)")
    transforms = (plan.breadth.transforms or identity(cfg.seq_len, cfg.vocab_size)).to("cpu")
    run = _Pass(plan, transforms, transforms.inverse(), _Tallies.for_plan(plan))
    resume = plan.runtime.resume
    if plan.breadth.agree and resume is not None:
        raise ValueError(ADAPTIVE_UNSAVED)
    if resume is not None:
        run.tallies.load_state_dict(resume.tallies, plan.outputs.evaluators)
        run.counted, run.elapsed_before = resume.counted, resume.elapsed_s
    rank = dist.get_rank() if dist.is_initialized() else 0
    bar = tqdm(total=None, unit="traj-seg", desc="evaluating", disable=not plan.runtime.progress or rank != 0,
               mininterval=1.0, dynamic_ncols=True, leave=False)
    with torch.inference_mode():
        _drive(act_model, iter(batches), run, bar, device)
    bar.close()
    return _reduce(run, device)


def _drive(act_model: ACTModel, batches: Iterator[tuple[Batch, int]], run: _Pass, bar: tqdm,
           device: torch.device) -> None:
    """Expand the batches into trajectories, run them through the slots, count each batch once it is done."""
    plan = run.plan
    first = next(batches, None)
    if first is None:
        return
    per_puzzle = plan.breadth.agree or plan.breadth.copies
    rows = (first[0]["inputs"].shape[0] if plan.reference_counting else first[1]) * per_puzzle
    slots = max(1, min(rows, plan.runtime.max_rows or rows))  # the first batch's trajectories, at most max_rows
    if plan.runtime.total_batches:
        bar.reset(total=plan.runtime.total_batches * first[0]["inputs"].shape[0] * plan.breadth.copies
                  * plan.depths[-1])

    checkpoint = plan.runtime.checkpoint

    def on_segment(count: int) -> None:
        bar.update(count)
        run.segments_run += count
        if checkpoint is not None:
            checkpoint(run.state)  # between segments: what is finished so far, built only when saved

    inner = act_model.inner
    restart = restart_stds(inner.random_init_std(), inner.latent_names, plan.breadth.restarts, plan.breadth.restart_std)
    run.runner = SlotRunner(act_model, slots, plan, restart, on_segment)
    queue = _queue(_chain(first, batches), run)
    _count_finished(run)  # resumed batches whose trajectories had all finished
    for traj in run.runner.run(queue, device):
        bar.update(plan.depths[-1] - traj.slot_segments)
        _finish(traj, run.groups[traj.group])
        if plan.breadth.agree:
            original = run.inverse.apply(traj.snapshots[plan.depths[-1]]["preds"].unsqueeze(0),
                                         torch.tensor([traj.copy // plan.breadth.restarts]))
            queue.finished(traj, original[0])
        _count_finished(run)
    _count_finished(run)


def _queue(batches: Iterator[tuple[Batch, int]], run: _Pass) -> Iterator[Trajectory]:
    """The trajectories in the order the slots take them (adaptive breadth may skip some)."""
    plan = run.plan
    rank = dist.get_rank() if dist.is_initialized() else 0
    world = dist.get_world_size() if dist.is_initialized() else 1
    puzzles = _puzzles(batches, run, rank, world)
    if plan.breadth.agree:
        return AdaptiveQueue(puzzles, plan.breadth.agree, skip=partial(_skip, run.groups))
    return itertools.chain.from_iterable(puzzles)


def _count_finished(run: _Pass) -> None:
    """Count the finished groups in batch order (a group that finished early waits for the ones before it),
    so every sum is added in the same order whatever the slots did: the totals do not depend on the
    number of slots, and a pass resumed after its first k batches adds up exactly as an unbroken one."""
    while run.groups:
        first = min(run.groups)  # groups are registered in batch order as the queue reaches them
        if run.groups[first].pending:
            return
        _count(run.groups.pop(first), run.plan, run.tallies, run.inverse)
        run.counted = first + 1


def _finish(traj: Trajectory, group: _Group) -> None:
    group.done.append(traj)
    group.pending -= 1


def _reduce(run: _Pass, device: torch.device) -> EvalResult:
    """Sum the tallies over ranks into per-depth metrics, the cost and the kept rows and outputs."""
    plan, tallies, wall_s = run.plan, run.tallies, run.elapsed_s
    residual_sums = {mode: MetricSums() for mode in plan.modes}
    tallies.residuals.into(residual_sums)
    cost = MetricSums()
    cost.total("trajectory_segments", tallies.segments)
    cost.total("trajectories", tallies.trajectories)
    totals = cost.reduce(device)
    metrics = {}
    for d in plan.depths:
        per_mode = {}
        for mode in plan.modes:
            values = tallies.sums[mode][d].reduce(device)
            res = residual_sums[mode].reduce(device)
            values.update({f"residual_of_{i}_steps": res[f"residual_of_{i}_steps"] for i in range(1, d + 1)
                           if f"residual_of_{i}_steps" in res})
            if plan.stopping is not None and values.get("count"):
                values["elastic/mean_segments"] = values["steps"]
                values["elastic/segments_saved"] = 1.0 - values["steps"] / d
            per_mode[mode] = values
        metrics[d] = merge_counted(per_mode.get("clean"), per_mode.get("reference"))
    task_files = {}
    for d, evaluator in plan.outputs.evaluators.items():
        scored = evaluator.result()  # every rank takes part in its gathering; rank 0 gets the result
        if scored is not None:
            metrics[d].update(scored.metrics)
            task_files[d] = scored.files
    return EvalResult(metrics, int(totals.get("trajectory_segments", 0)), int(totals.get("trajectories", 0)),
                      wall_s, tallies.records.gather() if tallies.records is not None else None,
                      tallies.outputs.gather() if tallies.outputs is not None else None, task_files,
                      run.segments_run)


def _skip(groups: dict[int, _Group], traj: Trajectory) -> None:
    """A restart adaptive breadth never starts: done for its group, counted nowhere."""
    traj.skipped = True
    _finish(traj, groups[traj.group])


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


def _count(group: _Group, plan: EvalPlan, tallies: _Tallies, inverse: TransformSet) -> None:
    """Add a finished batch's puzzles to every depth's counts, records and saved outputs, and its
    trajectories' residuals (in row and copy order) to the residual sums."""
    for traj in sorted(group.done, key=lambda t: (t.row, t.copy)):
        tallies.residuals.add(traj.residuals, traj.reference_residuals, traj.padding)
        tallies.segments += traj.slot_segments
        tallies.trajectories += not (traj.padding or traj.skipped)
    for depth, view in _views(group, plan, inverse):
        for mode, per_depth in tallies.sums.items():
            count_depth(per_depth[depth], view, plan.selection.top_k, reference=mode == "reference",
                        agree=plan.breadth.agree)
        if tallies.records is not None:
            tallies.records.add(depth, **trajectory_columns(view, group.puzzles))
        real = [t for t in group.done if not t.padding and not t.skipped]
        if tallies.outputs is not None:
            tallies.outputs.add(depth, real)
        evaluator = plan.outputs.evaluators.get(depth)
        if evaluator is not None and real:
            evaluator.update(_original_frame_rows(real, depth, evaluator.fields, inverse, plan.breadth.restarts))


def _original_frame_rows(trajectories: Sequence[Trajectory], depth: int, fields: Sequence[str],
                         inverse: TransformSet, restarts: int) -> dict[str, Any]:
    """The task evaluator's fields of finished trajectories as numpy arrays, grids mapped back to the puzzle's
    own frame (each copy's transform undone: `copy` = transform x B + restart)."""
    rows = [row_fields(t, depth, fields) for t in trajectories]
    stacked = {f: torch.stack([row[f] for row in rows]) for f in fields}
    if inverse.size > 1:  # without TTA every copy is already in the puzzle's frame
        index = torch.tensor([t.copy // restarts for t in trajectories])
        for name in ("inputs", "labels", "preds"):
            if name in stacked:
                stacked[name] = inverse.apply(stacked[name], index)
    return {f: v.numpy() for f, v in stacked.items()}


def batches_in(num_examples: int, global_batch_size: int, limit: int | None = None) -> int:
    """Test batches of a split (the last one padded), at most `limit`: the progress bar's length."""
    count = -(-num_examples // global_batch_size)
    return min(count, limit) if limit is not None else count
