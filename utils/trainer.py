"""The deep-supervision training loop, single-process or under torchrun.

Every segment is a training step: the loss head runs one segment on the persistent carry,
the summed loss is divided by the global batch size, gradients are summed across ranks,
and the optimizers step. Rows that halted are replaced by fresh samples at the next step.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from config.schema import PretrainConfig, validate_arch
from dataset.puzzle_dataset import PuzzleDataset, PuzzleDatasetConfig, read_metadata
from models.act import Carry
from models.blocks import PuzzleEmbedding, ReasoningStack
from models.ema import EMA
from models.registry import build_model
from utils import train_state
from utils.checkpoint import (
    load_model_state,
    prune_checkpoints,
    read_checkpoint,
    save_checkpoint_atomic,
    step_checkpoints,
)
from utils.distributed import DistInfo, all_reduce_sum_, gather_objects
from utils.optim import SignSGDSparse, cosine_schedule_with_warmup_lr, make_adam_atan2
from utils.safe_load import safe_torch_load
from utils.tracking import Tracker
from utils.validation import ConfigError

log = logging.getLogger(__name__)

COUNT_METRICS = ("accuracy", "exact_accuracy", "q_halt_accuracy", "steps")


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss; the last checkpoint written is still good."""


def steps_for(config: PretrainConfig, total_groups: int, mean_puzzle_examples: float) -> int:
    """Total optimizer steps: epochs x floor(groups x examples per puzzle / global batch)."""
    if total_groups < config.global_batch_size:
        raise ConfigError(
            f"global_batch_size: {config.global_batch_size} exceeds the {total_groups} groups of the training set; "
            "lower it (every batch holds one puzzle per group)"
        )
    if config.max_steps is not None:
        return config.max_steps
    per_epoch = int(total_groups * mean_puzzle_examples / config.global_batch_size)
    if per_epoch < 1:
        raise ConfigError(
            f"global_batch_size: {config.global_batch_size} exceeds one epoch of the training set "
            f"({total_groups} groups); lower it or set max_steps"
        )
    return config.epochs * per_epoch


def use_compile(config: PretrainConfig, device: torch.device) -> bool:
    if os.environ.get("DISABLE_COMPILE", "0") not in ("", "0"):
        return False
    return device.type == "cuda" if config.compile is None else config.compile


class Trainer:
    def __init__(self, config: PretrainConfig, dist_info: DistInfo) -> None:
        self.config = config
        self.dist = dist_info
        self.device = dist_info.device
        self.run_dir = Path(config.checkpoint_path)

        # dataset.json first: the arch and the batch are checked against it before any array is opened.
        meta = read_metadata(config.dataset.data_paths, "train")
        self.data_fields = {"seq_len": meta.seq_len, "vocab_size": meta.vocab_size,
                            "num_puzzle_identifiers": meta.num_puzzle_identifiers,
                            "batch_size": config.global_batch_size // dist_info.world_size}
        validate_arch(config.arch, self.data_fields)
        if config.global_batch_size % dist_info.world_size:
            raise ConfigError(f"global_batch_size: {config.global_batch_size} is not divisible by "
                              f"{dist_info.world_size} ranks")
        self.total_steps = steps_for(config, meta.total_groups, meta.mean_puzzle_examples)
        self.train_data = PuzzleDataset(self._data_config(test=False), split="train")

        torch.manual_seed(config.seed)  # identical initial weights on every rank
        self.head = build_model(config.arch, self.data_fields).to(self.device)
        if config.load_checkpoint:  # weights only, from any supported layout
            contents = read_checkpoint(config.load_checkpoint, need_config=False)
            load_model_state(self.head.model, contents.model_state, strict=True, source=config.load_checkpoint)
        if config.gradient_checkpoint:
            for module in self.head.modules():
                if isinstance(module, ReasoningStack):
                    module.gradient_checkpointing = True
        self.forward = torch.compile(self.head) if use_compile(config, self.device) else self.head

        self.base_lrs = [config.lr]
        self.optimizers: list[Any] = [make_adam_atan2(
            [p for p in self.head.parameters() if p.requires_grad], lr=config.lr,
            betas=(config.beta1, config.beta2), weight_decay=config.weight_decay)]
        for emb in (m for m in self.head.modules() if isinstance(m, PuzzleEmbedding)):
            self.optimizers.append(SignSGDSparse(emb, lr=config.puzzle_emb_lr,
                                                 weight_decay=config.puzzle_emb_weight_decay))
            self.base_lrs.append(config.puzzle_emb_lr)
        self.ema = EMA(self.head, config.ema_rate) if config.ema else None

        self.step = 0
        self.carry: Carry | None = None
        self.wandb_run_id: str | None = None
        # Per-rank randomness (halting exploration, RI, noise) from here on.
        seed_everything(config.seed + dist_info.rank)
        self._maybe_resume()
        self.tracker = Tracker(config.model_dump(), project=config.project_name, name=config.run_name,
                               entity=config.entity, mode=config.wandb_mode, directory=str(self.run_dir),
                               enabled=dist_info.is_main, run_id=self.wandb_run_id)
        self.wandb_run_id = self.tracker.run_id

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
        self.carry, loss, metrics, _, _ = self.forward(carry=self.carry, batch=batch)
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
        for optimizer, base in zip(self.optimizers, self.base_lrs, strict=True):
            lr = self.lr_at(self.step, base)
            set_lr(optimizer, lr)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
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

    def lr_at(self, step: int, base_lr: float) -> float:
        c = self.config
        return cosine_schedule_with_warmup_lr(step, base_lr, c.lr_warmup_steps, self.total_steps, c.lr_min_ratio)

    def reduce_metrics(self, window: dict[str, torch.Tensor], steps: int) -> dict[str, float]:
        """Counts summed over the logging window and across ranks: rates over halted rows, losses per
        sample of the global batch, grad norm averaged over the window's steps."""
        window = dict(window)
        grad_norm = window.pop("grad_norm").item() / steps
        keys = sorted(window)
        values = [window[k].double().reshape(1) for k in keys]
        all_reduce_sum_(values)
        summed = dict(zip(keys, (v.item() for v in values), strict=True))
        count = summed.pop("count")
        samples = self.config.global_batch_size * steps
        # Rates average over the rows that halted in the window; with none there is nothing to report.
        out = {f"train/{k}": v / samples if k.endswith("loss") else v / count
               for k, v in summed.items() if k.endswith("loss") or count > 0}
        out["train/count"] = count
        out["train/grad_norm"] = grad_norm
        out["train/lr"] = self.lr_at(self.step, self.config.lr)
        return out

    # ---- loop ---------------------------------------------------------------------------
    def run(self) -> dict[str, float]:
        c = self.config
        if self.step >= self.total_steps and self.dist.is_main:
            log.info("already at step %d of %d, nothing to do (%s)", self.step, self.total_steps, self.run_dir)
        bar = tqdm(total=self.total_steps, initial=self.step, disable=not self.dist.is_main, desc=c.run_name)
        last: dict[str, float] = {}
        window: dict[str, torch.Tensor] = {}
        window_start, window_steps = time.perf_counter(), 0
        while self.step < self.total_steps:
            for key, value in self.train_step().items():
                window[key] = window[key] + value if key in window else value
            window_steps += 1
            bar.update(1)
            if self.step % c.log_interval_steps == 0 or self.step == self.total_steps:
                last = self.reduce_metrics(window, window_steps)
                last["train/samples_per_s"] = window_steps * c.global_batch_size / (time.perf_counter() - window_start)
                window, window_start, window_steps = {}, time.perf_counter(), 0
                self.tracker.log(last, self.step)
                if self.dist.is_main:
                    bar.write(format_summary(self.step, self.total_steps, last))
            if c.eval_interval_steps and (self.step % c.eval_interval_steps == 0 or self.step == self.total_steps):
                last.update(self.evaluate())
            if c.checkpoint_interval_steps and (
                self.step % c.checkpoint_interval_steps == 0 or self.step == self.total_steps
            ):
                self.save()
        bar.close()
        self.tracker.finish()
        return last

    def evaluate(self) -> dict[str, float]:
        """Exact accuracy at halt_max_steps on the test split, with EMA weights, RNG untouched."""
        from utils.evaluation import batches_in, evaluate_depths

        test = PuzzleDataset(self._data_config(test=True), split="test")
        batches = (
            ({k: v.to(self.device) for k, v in batch.items()}, valid)
            for i, (batch, valid) in enumerate(test.test_batches())
            if self.config.eval_max_batches is None or i < self.config.eval_max_batches
        )
        act = self.head.model
        depth = act.config.halt_max_steps
        # evaluate_depths restores the global RNG state itself, so training randomness is untouched.
        total = batches_in(test.num_examples, self.config.global_batch_size, self.config.eval_max_batches)
        with self.ema.swapped_in(self.head) if self.ema is not None else nullcontext():
            act.eval()
            results = evaluate_depths(act, batches, [depth], seed=self.config.seed, total_batches=total)[depth]
            act.train()
        metrics = {f"eval/{k}": v for k, v in results.items()}
        self.tracker.log(metrics, self.step)
        if self.dist.is_main:
            log.info("step %d eval: exact_accuracy %.4f accuracy %.4f", self.step,
                     results.get("exact_accuracy", math.nan), results.get("accuracy", math.nan))
        return metrics

    # ---- checkpoints --------------------------------------------------------------------
    def save(self) -> Path | None:
        """Rank 0 writes `step_<n>.pth` (every rank's carry and RNG gathered in); all are kept unless
        `checkpoint_keep_last` is set, so accuracy over training can be evaluated afterwards."""
        rank_states = gather_objects(train_state.rank_state(self.carry))
        if not self.dist.is_main:
            return None
        payload = train_state.checkpoint_payload(self, rank_states)
        path = save_checkpoint_atomic(payload, self.run_dir / f"step_{self.step}.pth")
        train_state.write_config_yaml(self.config, self.run_dir / "all_config.yaml")
        if self.config.checkpoint_keep_last is not None:
            prune_checkpoints(self.run_dir, self.config.checkpoint_keep_last)
        log.info("saved %s", path)
        return path

    def _maybe_resume(self) -> None:
        resume = self.config.resume
        if resume is False:
            return
        path = latest_or_none(self.run_dir) if resume is True else Path(resume)
        if path is None:
            log.info("resume: no checkpoint in %s, starting fresh", self.run_dir)
            return
        train_state.restore(self, safe_torch_load(path, map_location="cpu"), str(path))
        log.info("resumed from %s at step %d", path, self.step)


def latest_or_none(run_dir: Path) -> Path | None:
    found = step_checkpoints(run_dir)
    return found[-1] if found else None


def set_lr(optimizer: Any, lr: float) -> None:
    if isinstance(optimizer, SignSGDSparse):
        optimizer.lr = lr
        return
    for group in optimizer.param_groups:
        group["lr"] = lr


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def format_summary(step: int, total: int, m: dict[str, float]) -> str:
    """One console line; rates over halted rows read "n/a" while no row has halted yet."""

    def value(key: str, spec: str) -> str:
        return format(m[f"train/{key}"], spec) if f"train/{key}" in m else "n/a"

    return (f"step {step}/{total}  lm_loss {value('lm_loss', '.4f')}  q_halt_loss {value('q_halt_loss', '.4f')}  "
            f"acc {value('accuracy', '.4f')}  exact {value('exact_accuracy', '.4f')}  steps {value('steps', '.2f')}  "
            f"lr {m['train/lr']:.2e}  |g| {m['train/grad_norm']:.3f}  {m['train/samples_per_s']:.0f} samples/s")
