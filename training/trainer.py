"""The deep-supervision training loop, single-process or under torchrun.

Every segment is a training step: the loss head runs one segment on the persistent carry,
the summed loss is divided by the global batch size, gradients are summed across ranks,
and the optimizers step. Rows that halted are replaced by fresh samples at the next step.
The trainer owns its components (model, optimizers, EMA, sampler, carry, tracker); each saves
and restores its own state, and `state_dict` / `load_state_dict` compose them into the
checkpoint's layout.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from config.schema import PretrainConfig
from dataset.puzzle_dataset import PuzzleDataset, PuzzleDatasetConfig
from dataset.task_evaluator import TaskEvaluator
from dataset.tasks import task_of
from evaluation.engine import batches_in, run_evaluation
from evaluation.plan import EvalPlan, Outputs, Runtime
from models.act import Carry
from models.config import ArchConfig
from models.ema import EMA
from models.loading import check_architecture, load_model_state, model_for_dataset
from models.losses import TrainingStep
from models.registry import with_loss_head
from models.runtime import eval_mode, prepare_runtime
from training import state
from training.interrupt import StopOnSignal
from training.optim import build_optimizers
from training.plan import preflight
from training.progress import MetricWindow, format_summary
from training.start import latest_or_none, start_point
from training.tracking import Tracker
from utils import threads
from utils.atomic import atomic_file
from utils.checkpoint import (
    CheckpointContents,
    check_free_space,
    payload_bytes,
    prune_checkpoints,
    save_checkpoint_atomic,
    write_checksum,
)
from utils.cli import Interrupted
from utils.distributed import DistInfo, all_reduce_sum_, gather_objects
from utils.safe_load import CheckpointError

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss; the last checkpoint written is still good."""


def build_head(arch: ArchConfig, weights: CheckpointContents | None, config: PretrainConfig,
               dist_info: DistInfo) -> tuple[torch.nn.Module, Callable[..., TrainingStep]]:
    """The model in its training loss head, on its device with its kernels, and the step function (the head,
    compiled when asked). Its initial weights are the same on every rank (`config.seed`); `weights` (from
    `load_checkpoint=`, any supported layout, not its EMA) replace them, and the EMA starts from them."""
    torch.manual_seed(config.seed)
    model = model_for_dataset(arch, weights=weights, use_ema=False).act_model
    if config.gradient_checkpoint:
        model.enable_gradient_checkpointing()
    if dist_info.rank == 0:
        log.info("%s; device %s x %d rank(s)", model.summary(), dist_info.device, dist_info.world_size)
    runtime = prepare_runtime(model, dist_info.device, config.kernels, config.compile, announce=dist_info.rank == 0)
    head = with_loss_head(runtime.model)
    return head, torch.compile(head) if runtime.compile else head


class Trainer:
    def __init__(self, config: PretrainConfig, dist_info: DistInfo) -> None:
        self.config = config
        self.dist = dist_info
        self.device = dist_info.device
        self.run_dir = Path(config.checkpoint_path)

        plan = preflight(config, dist_info.world_size)
        self.arch, self.total_steps = plan.arch, plan.total_steps
        self.train_data = PuzzleDataset(self._data_config(test=False), split="train")
        self.task = task_of(self.train_data.metadata, ", ".join(config.dataset.data_paths))
        start = start_point(config)  # resume=, load_checkpoint=: training/start.py

        self.head, self.forward = build_head(self.arch, start.weights, config, dist_info)
        self.optimizers = build_optimizers(self.head, config, self.total_steps)
        self.ema = EMA(self.head, config.ema_rate) if config.ema else None

        self.step = 0
        self.task_evaluator: TaskEvaluator | None = None  # the last evaluation's (with aggregated_voting: the run's)
        self._saved_step: int | None = None
        self.carry: Carry | None = None
        wandb_run_id = None
        # Per-rank randomness (halting exploration, RI, noise) from here on.
        state.seed_everything(config.seed + dist_info.rank)
        if start.trainer_state is not None:
            saved_run_id = self.load_state_dict(start.trainer_state, str(start.source))
            wandb_run_id = saved_run_id if start.continues_run else None  # load_checkpoint=: a new W&B run
            log.info("%s from %s at step %d", "resumed" if start.continues_run else "load_checkpoint: continuing",
                     start.source, self.step)
        self.tracker = Tracker(config.model_dump(), project=config.project_name, name=config.run_name,
                               entity=config.entity, mode=config.wandb_mode, directory=str(self.run_dir),
                               enabled=dist_info.is_main, run_id=wandb_run_id)
        self.wandb_run_id = self.tracker.run_id or wandb_run_id

    def _data_config(self, test: bool) -> PuzzleDatasetConfig:
        return PuzzleDatasetConfig(data_paths=self.config.dataset.data_paths,
                                   global_batch_size=self.config.global_batch_size, rank=self.dist.rank,
                                   world_size=self.dist.world_size, seed=self.config.seed, test_set_mode=test)

    # ---- one optimizer step -------------------------------------------------------------
    def train_step(self) -> dict[str, torch.Tensor]:
        batch = {k: v.to(self.device, non_blocking=True) for k, v in self.train_data.next_train_batch().items()}
        if self.carry is None:
            self.carry = self.head.initial_carry(batch)
        self.head.train()
        step = self.forward(carry=self.carry, batch=batch)
        self.carry, loss, metrics = step.carry, step.loss, step.metrics
        if not torch.isfinite(loss):
            raise NonFiniteLossError(f"non-finite loss ({loss.item()}) at step {self.step + 1}; "
                                     f"last checkpoint: {latest_or_none(self.run_dir)}")
        (loss / self.config.global_batch_size).backward()

        params = [p for p in self.head.parameters() if p.grad is not None]
        all_reduce_sum_([p.grad for p in params])
        grad_norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params]))
        if self.config.grad_clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip_norm)

        self.step += 1
        self.optimizers.step(self.step)
        if self.ema is not None:
            self.ema.update(self.head)
        metrics = {k: v.detach() for k, v in metrics.items()}
        metrics["loss"] = loss.detach()
        metrics["grad_norm"] = grad_norm.detach()
        return metrics

    @property
    def current_lr(self) -> float:
        """The learning rate of the main optimizer's last (or next, before any) step."""
        return float(self.optimizers[0].param_groups[0]["lr"])

    @property
    def halted_rows(self) -> int:
        """Rows of this rank that halted in the last segment (they restart at the next step)."""
        return int(self.carry.halted.sum()) if self.carry is not None else 0

    # ---- loop ---------------------------------------------------------------------------
    def run(self) -> dict[str, float]:
        """Train to `total_steps`; a first Ctrl-C or SIGTERM saves after the current step and raises
        `Interrupted` with the line that says how to resume."""
        c = self.config
        if self.step >= self.total_steps and self.dist.is_main:
            log.info("already at step %d of %d, nothing to do (%s)", self.step, self.total_steps, self.run_dir)
        bar = tqdm(total=self.total_steps, initial=self.step, disable=not self.dist.is_main, desc=c.run_name)
        last: dict[str, float] = {}
        window, window_start = MetricWindow(), time.perf_counter()
        try:
            with StopOnSignal(self.dist) as stop:
                while self.step < self.total_steps:
                    window.add(self.train_step())
                    bar.update(1)
                    if self._due(c.log_interval_steps):
                        last = window.reduce(c.global_batch_size)
                        last["train/lr"] = self.optimizers.lrs(self.step)[0]
                        last["train/samples_per_s"] = (window.steps * c.global_batch_size
                                                       / (time.perf_counter() - window_start))
                        window, window_start = MetricWindow(), time.perf_counter()
                        self.tracker.log(last, self.step)
                        if self.dist.is_main:
                            bar.write(format_summary(self.step, self.total_steps, last))
                    if self._due(c.eval_interval_steps):
                        last.update(self.evaluate())
                    if self._due(c.checkpoint_interval_steps):
                        self.save()
                    threads.adapt()
                    if stop.requested():
                        self._stop(stop.caught)
        finally:
            bar.close()
            self.tracker.finish()
        return last

    def _stop(self, signal_name: str | None) -> None:
        """Save the step just finished (unless it was saved already) and raise `Interrupted`."""
        path = self.run_dir / f"step_{self.step}.pth"
        if self._saved_step != self.step:
            self.save()
        where = f"saved {path}" if path.is_file() else f"could not save it, the latest checkpoint is " \
            f"{latest_or_none(self.run_dir) or 'none'}"
        raise Interrupted(f"interrupted ({signal_name or 'by another rank'}) at step {self.step} of "
                          f"{self.total_steps}: {where}; resume with resume=true")

    def _due(self, interval: int | None) -> bool:
        """Every `interval` steps and at the last one (never without an interval)."""
        return bool(interval) and (self.step % interval == 0 or self.step == self.total_steps)

    def evaluate(self) -> dict[str, float]:
        """Exact accuracy at halt_max_steps on the test split, with EMA weights, RNG untouched; with the
        task's own evaluator (ARC's voting) its metrics too, and its files in `evaluator_<task>_step_<n>/`."""
        test = PuzzleDataset(self._data_config(test=True), split="test")
        batches = (
            ({k: v.to(self.device) for k, v in batch.items()}, valid)
            for i, (batch, valid) in enumerate(test.test_batches())
            if self.config.eval_max_batches is None or i < self.config.eval_max_batches
        )
        act = self.head.model
        depth = act.config.halt_max_steps
        evaluators = self._task_evaluators(depth)
        # Evaluation draws from per-trajectory counter streams, never the global RNG: training's is untouched.
        total = batches_in(test.num_examples, self.config.global_batch_size, self.config.eval_max_batches)
        with self.ema.swapped_in(self.head) if self.ema is not None else nullcontext(), eval_mode(act):
            run = run_evaluation(act, batches, EvalPlan([depth], outputs=Outputs(evaluators=evaluators),
                                                        runtime=Runtime(seed=self.config.seed, total_batches=total)))
        results = run.metrics[depth]
        metrics = {f"eval/{k}": v for k, v in results.items()}
        self.tracker.log(metrics, self.step)
        if self.dist.is_main:
            log.info("step %d eval: exact_accuracy %.4f accuracy %.4f", self.step,
                     results.get("exact_accuracy", math.nan), results.get("accuracy", math.nan))
            self._write_task_files(run.task_files.get(depth, {}))
        return metrics

    def _task_evaluators(self, depth: int) -> dict[int, TaskEvaluator]:
        """The task's evaluator for this evaluation: a fresh one each time, or with `aggregated_voting` one
        kept for the whole run whose votes accumulate over evaluations (TRM's training loop)."""
        if self.task.evaluator is None:
            return {}
        if self.task_evaluator is None or not self.config.aggregated_voting:
            self.task_evaluator = self.task.evaluators(self.config.dataset.data_paths, [depth])[depth]
        return {depth: self.task_evaluator}

    def _write_task_files(self, files: dict[str, Any]) -> None:
        folder = self.run_dir / f"evaluator_{self.task.name}_step_{self.step}"
        for name, content in files.items():
            with atomic_file(folder / name, "w") as handle:
                json.dump(content, handle)
            log.info("step %d eval: wrote %s", self.step, folder / name)

    # ---- checkpoints --------------------------------------------------------------------
    def state_dict(self, rank_states: list[dict[str, Any]]) -> dict[str, Any]:
        """The checkpoint: every component's own state, in the released layout (training/state.py)."""
        own = rank_states[0]
        return {
            "model": self.head.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "config": self.config.model_dump(),
            "step": self.step,
            "total_steps": self.total_steps,
            "optimizers": self.optimizers.state_dict(),
            "optimizer_lrs": self.optimizers.lrs(self.step),
            "carry": own["carry"], "rng": own["rng"], "numpy": own["numpy"], "python": own["python"],
            "rank_states": rank_states,
            "train_dataset": self.train_data.state_dict(),
            "iteration": self.step,
            "wandb_run_id": self.wandb_run_id,
        }

    def load_state_dict(self, ckpt: Any, source: str) -> str | None:
        """Put every component back where the checkpoint was taken; returns its W&B run id."""
        if not isinstance(ckpt, dict) or "optimizers" not in ckpt or "model" not in ckpt:
            raise CheckpointError(f"{source}: not a training checkpoint with optimizer state; resume= needs one "
                                  "(use load_checkpoint= to start from its weights)")
        check_architecture(dict((ckpt.get("config") or {}).get("arch") or {}), self.arch.name, source)
        rank_states = state.rank_states_of(ckpt, source, self.dist.world_size, self.config.seed)
        load_model_state(self.head.model, ckpt["model"], strict=True, source=source)
        if self.ema is not None:
            if not ckpt.get("ema"):
                raise CheckpointError(f"{source}: has no EMA state but ema=true")
            self.ema.load_state_dict(state.ema_shadow(ckpt))
        self.optimizers.load_state_dict(ckpt["optimizers"], source)
        try:
            self.train_data.load_state_dict(ckpt["train_dataset"])
        except (KeyError, ValueError) as err:
            raise CheckpointError(f"{source}: train_dataset: {err}") from None
        self.step = int(ckpt["step"])
        own = rank_states[self.dist.rank]
        empty = self.head.model.inner.empty_latents(self.config.global_batch_size // self.dist.world_size, "meta")
        self.carry = state.carry_from(own["carry"], {n: tuple(v.shape) for n, v in empty.items()}, self.device, source)
        state.restore_rng(own)
        return ckpt.get("wandb_run_id")

    def save(self) -> Path | None:
        """Rank 0 writes `step_<n>.pth` and its `.sha256` (every rank's carry and RNG gathered in); all are
        kept unless `checkpoint_keep_last` is set, so accuracy over training can be evaluated afterwards.
        A save that does not fit the free disk, or fails writing, leaves the previous checkpoint and says
        so in one line: training goes on and the next interval tries again; at the last step it is an error.
        (The other ranks do not retry at a stop either: `_saved_step` is set on every rank alike.)"""
        rank_states = gather_objects(state.rank_state(self.carry))
        self._saved_step = self.step
        if not self.dist.is_main:
            return None
        path = self.run_dir / f"step_{self.step}.pth"
        payload = self.state_dict(rank_states)
        try:
            check_free_space(self.run_dir, int(1.05 * payload_bytes(payload)) + 2**20)
            save_checkpoint_atomic(payload, path)
            write_checksum(path)
        except OSError as err:  # a full disk, a quota, a vanished mount: the previous checkpoint stands
            path.unlink(missing_ok=True)
            line = (f"could not save {path} ({err.strerror or err}); the previous checkpoint, "
                    f"{latest_or_none(self.run_dir) or 'none'}, is kept")
            if self.step >= self.total_steps:  # the run's last save: the job must not end as if it had succeeded
                raise CheckpointError(line) from None
            log.error(line)
            return None
        state.write_config_yaml(self.config.model_dump(), self.run_dir / "all_config.yaml")
        if self.config.checkpoint_keep_last is not None:
            prune_checkpoints(self.run_dir, self.config.checkpoint_keep_last)
        log.info("saved %s", path)
        return path
