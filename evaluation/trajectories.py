"""Trajectories run in a fixed set of slots (continuous batching), each from its own random stream.

Every segment advances every occupied slot by one segment of the model. A trajectory leaves its
slot when it reaches the largest requested depth or, with an elastic exit, when its stop rule
fires; the slot is refilled at once with the next pending trajectory, freshly started, so the
batch stays full until the queue drains. At each requested depth (and, for the depths it will not
reach, at its exit) a trajectory's outputs are snapshot for the counting rules. Its initial state
and noise come from `evaluation/randomness.py`, keyed by (seed, puzzle, restart, segment), so they
do not depend on the slot, the batch or the rank.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import torch

from evaluation.plan import EvalPlan
from evaluation.randomness import TrajectoryNoise, initial_state, trajectory_keys
from evaluation.stopping import Signals
from models.act import ACTModel, Batch
from models.reasoner import latent_residual
from utils import threads


class Stops(NamedTuple):
    """After a segment, per row: reached the largest depth, the elastic rule fired, and [rules, rows]
    which of the rule's conditions held (None without an elastic rule)."""

    done: torch.Tensor
    fired: torch.Tensor
    held: torch.Tensor | None


@dataclass
class Trajectory:
    """One puzzle copy: `copy` = transform x B + restart (transform-major within the puzzle)."""

    group: int  # the evaluation batch it came from
    row: int  # its puzzle's row in that batch
    puzzle: int  # global puzzle index (its random stream)
    copy: int
    data: Batch  # one row, transformed for this copy
    padding: bool = False  # a row that pads the split's last batch (run for the reference's counting)
    skipped: bool = False  # never started: adaptive breadth had its answer (evaluation/adaptive_breadth.py)
    snapshots: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)  # depth -> outputs
    slot_segments: int = 0
    # the latent residual of each segment run, and the reference's (its first measured from the slot's
    # previous state; kept only with the reference's counting, else the same values): added to the pass's
    # sums when the trajectory's batch is counted, in batch order
    residuals: list[float] = field(default_factory=list)
    reference_residuals: list[float] = field(default_factory=list)


class SlotRunner:
    """`slots` trajectories in flight; `run(queue, device)` yields each trajectory when it finishes.

    From `plan`: the depths snapshot, the seed of the random streams, the stop rule, the convergence
    scores kept (`plan.window`: "clean" in float32, "reference" in the forward dtype, per counting
    mode), logits in the snapshots (`logits` in the saved outputs), and the segment function (a
    compiled one runs every slot every segment, empty ones on stale data, so its shape never changes;
    the reference's counting measures a trajectory's first residual from the state its slot held
    before). `restart`: the std of each latent of the random initial state, or None for the model's own reset.
    `on_segment(count)` hears how many trajectories advanced by one segment (the progress bar); each
    trajectory keeps its own residuals.
    """

    def __init__(self, model: ACTModel, slots: int, plan: EvalPlan, restart: dict[str, float] | None,
                 on_segment: Callable[..., None]) -> None:
        self.model, self.inner = model, model.inner
        self.slots, self.depths, self.seed = slots, list(plan.depths), plan.runtime.seed
        self.restart, self.elastic, self.window = restart, plan.stopping, plan.window
        self.trackers = list(plan.modes) if self.window else []
        self.keep_logits, self.on_segment = "logits" in plan.outputs.save, on_segment
        segment = plan.runtime.segment
        self.segment, self.fixed_shape = self.inner if segment is None else segment, segment is not None
        self.reference_residuals = plan.reference_counting
        self.noise = TrajectoryNoise(torch.zeros(0, 2, dtype=torch.int32))

    # ---- state of the slots -------------------------------------------------------------
    def _start(self, device: torch.device) -> None:
        self.latents = self.inner.empty_latents(self.slots, device)
        self.before_reset = {name: value.clone() for name, value in self.latents.items()}
        self.occupant: list[Trajectory | None] = [None] * self.slots
        self.steps = torch.zeros(self.slots, dtype=torch.int64, device=device)
        self.keys = torch.zeros(self.slots, 2, dtype=torch.int32, device=device)
        self.stable = torch.zeros(self.slots, dtype=torch.int64, device=device)
        self.count = torch.zeros(self.slots, dtype=torch.int64, device=device)
        self.norms: dict[str, torch.Tensor] = {}
        self.preds: torch.Tensor | None = None
        self.logits: torch.Tensor | None = None
        self.data: Batch | None = None

    def _fill(self, starts: list[tuple[int, Trajectory]]) -> None:
        """Start each (slot, trajectory): its own initial state, step 0, an empty convergence window.
        One draw for all of them: every row's numbers depend only on its own keys."""
        device = self.steps.device
        slots = torch.tensor([slot for slot, _ in starts], device=device)
        trajs = [traj for _, traj in starts]
        if self.reference_residuals:
            for name, value in self.latents.items():
                self.before_reset[name][slots] = value[slots]
        keys = trajectory_keys(self.seed, torch.tensor([t.puzzle for t in trajs]),
                               torch.tensor([t.copy for t in trajs])).to(device)
        if self.restart is not None:
            shapes = {name: tuple(value.shape[1:]) for name, value in self.latents.items()}
            fresh = initial_state(keys, self.restart, shapes, self.model.config.dtype)
        else:
            halted = torch.ones(len(trajs), dtype=torch.bool, device=device)
            fresh = self.inner.reset(halted, {name: value[slots] for name, value in self.latents.items()})
        for name, value in fresh.items():
            self.latents[name][slots] = value
        self.keys[slots] = keys
        self.steps[slots], self.stable[slots], self.count[slots] = 0, 0, 0
        if self.data is None:
            self.data = {k: torch.zeros((self.slots, *v.shape[1:]), dtype=v.dtype, device=device)
                         for k, v in trajs[0].data.items()}
        for key in self.data:
            self.data[key][slots] = torch.cat([t.data[key] for t in trajs]).to(device)
        for slot, traj in starts:
            self.occupant[slot] = traj

    # ---- the loop -------------------------------------------------------------------------
    def run(self, queue: Iterable[Trajectory], device: torch.device) -> Iterator[Trajectory]:
        self._start(device)
        pending = iter(queue)
        while True:
            starts = []
            for slot in range(self.slots):  # asked anew every segment: a queue may grow as trajectories finish
                if self.occupant[slot] is None:
                    traj = next(pending, None)
                    if traj is None:
                        break
                    starts.append((slot, traj))
            if starts:
                self._fill(starts)
            live = torch.tensor([t is not None for t in self.occupant], device=device)
            if not bool(live.any()):
                return
            threads.adapt()  # between segments: fewer CPU threads while other jobs need the CPUs
            if self.fixed_shape:
                yield from self._advance(torch.arange(self.slots, device=device), live)
            else:
                rows = live.nonzero().flatten()
                yield from self._advance(rows, torch.ones(len(rows), dtype=torch.bool, device=device))

    def _advance(self, rows: torch.Tensor, live: torch.Tensor) -> Iterator[Trajectory]:
        """One segment for slots `rows` (`live`: occupied); yields the trajectories that finish.

        With every slot in the segment (the usual case) the slot tensors are used and replaced whole:
        no gather or scatter copies."""
        full = len(rows) == self.slots
        at = slice(None) if full else rows
        steps = self.steps[at] + 1
        before = {name: value[at] for name, value in self.latents.items()}
        self.noise.start_segment(self.keys[at], steps)
        with self._noise():
            latents, logits, q_halt, q_continue = self.segment(before, {k: v[at] for k, v in self.data.items()})
        residual = latent_residual(latents, before)
        reference = residual
        if self.reference_residuals:  # the reference measures segment 1 from the state before the reset
            first = steps == 1
            reference = latent_residual(latents, {
                name: torch.where(first.view(-1, *[1] * (value.ndim - 1)), self.before_reset[name][at], value)
                for name, value in before.items()})
        occupied = rows[live].tolist()
        for slot, value in zip(occupied, residual[live].tolist(), strict=True):
            self.occupant[slot].residuals.append(value)
        if self.reference_residuals:  # otherwise the reference's residuals are these same values
            for slot, measured in zip(occupied, reference[live].tolist(), strict=True):
                self.occupant[slot].reference_residuals.append(measured)
        self.on_segment(len(occupied))
        if full:
            self.latents, self.steps = dict(latents), steps
        else:
            for name, value in latents.items():
                self.latents[name][rows] = value
            self.steps[rows] = steps
        preds = logits.argmax(-1)
        if self.preds is None:
            self.preds = torch.zeros((self.slots, *preds.shape[1:]), dtype=preds.dtype, device=preds.device)
            self.logits = torch.zeros((self.slots, *logits.shape[1:]), dtype=logits.dtype, device=logits.device)
        same = (preds == self.preds[at]).all(-1) & (steps > 1)
        self.stable[at] = torch.where(same, self.stable[at] + 1, 0)
        self._track(at, logits, steps)
        self.preds[at], self.logits[at] = preds, logits
        q_halt = q_halt.float()
        snapshot = {"q_halt": q_halt, "residual": residual, "steps": steps,
                    **{f"score/{n}": self._score(n, at) for n in self.trackers}}
        signals = None if self.elastic is None else {  # what a stop rule may test; built only for one
            "stable": self.stable[at], "residual": residual, "q_halt": q_halt, "q_continue": q_continue.float(),
            "steps": steps, "logits": logits, "preds": preds}
        yield from self._record(rows, live, preds, logits, snapshot, self._stops(steps, signals))

    def _noise(self):
        return self.inner.drawing_noise_from(self.noise)

    def _track(self, rows: torch.Tensor, logits: torch.Tensor, steps: torch.Tensor) -> None:
        """Push each slot's logit-change norm into its window (none at a trajectory's first segment)."""
        for name in self.trackers:
            diff = logits - self.logits[rows] if name == "reference" else logits.float() - self.logits[rows].float()
            norm = torch.linalg.vector_norm(diff, dim=-1).mean(-1)
            if name not in self.norms:
                self.norms[name] = torch.zeros(self.slots, self.window, dtype=norm.dtype, device=norm.device)
            history = self.norms[name][rows]
            shifted = torch.cat((history[:, 1:], norm.unsqueeze(1)), dim=1)
            self.norms[name][rows] = torch.where((steps > 1).unsqueeze(1), shifted, history)
        if self.trackers:
            self.count[rows] = torch.where(steps > 1, torch.clamp(self.count[rows] + 1, max=self.window), 0)

    def _score(self, name: str, rows: torch.Tensor) -> torch.Tensor:
        """Mean of the last min(window, seen) norms; NaN before a trajectory's second segment."""
        history, count = self.norms[name][rows], self.count[rows]
        keep = torch.arange(self.window, device=history.device).unsqueeze(0) >= self.window - count.unsqueeze(1)
        total = torch.where(keep, history, torch.zeros((), dtype=history.dtype, device=history.device)).sum(1)
        score = total / count.clamp_min(1).to(history.dtype)
        return torch.where(count > 0, score, torch.full_like(score, float("nan")))

    def _stops(self, steps: torch.Tensor, signals: Signals | None) -> Stops:
        done = steps >= self.depths[-1]
        if signals is None:  # no stop rule
            return Stops(done, torch.zeros_like(done), None)
        held = self.elastic.conditions(signals)
        return Stops(done, self.elastic.fires(held, steps), held)

    def _record(self, rows: torch.Tensor, live: torch.Tensor, preds: torch.Tensor, logits: torch.Tensor,
                snapshot: dict[str, torch.Tensor], stops: Stops) -> Iterator[Trajectory]:
        """Snapshot the trajectories at a requested depth; those that stop also fill every later depth.
        A snapshot's `stop` is "depth" (it ran that far) or the elastic rules that held when it left."""
        steps, stop, fired, held = snapshot["steps"], stops.done | stops.fired, stops.fired, stops.held
        wanted = stop.clone()
        for depth in self.depths:
            wanted |= steps == depth
        keep = (wanted & live).nonzero().flatten()
        if len(keep) == 0:
            return
        values = {"preds": preds[keep], **{k: v[keep] for k, v in snapshot.items()}}
        if self.keep_logits:
            values["logits"] = logits[keep].float()
        values = {k: v.cpu() for k, v in values.items()}
        rules = held[:, keep].T.tolist() if held is not None else [()] * len(keep)
        flags = zip(rows[keep].tolist(), steps[keep].tolist(), stop[keep].tolist(), fired[keep].tolist(), rules,
                    strict=True)
        for i, (slot, step, stops, exits, holding) in enumerate(flags):
            traj = self.occupant[slot]
            reason = self.elastic.reason(holding) if exits else "depth"
            row = {k: v[i] for k, v in values.items()}
            for depth in self.depths:
                if depth == step or (stops and depth > step):
                    traj.snapshots[depth] = {**row, "stop": reason}
            if stops:
                traj.slot_segments = step
                self.occupant[slot] = None
                yield traj
