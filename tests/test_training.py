"""Training: config validation, learning, exact resume, torchrun equivalence, safe checkpoints."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import pretrain
from config.compose import compose_pretrain_config
from config.schema import load_pretrain_config
from dataset.puzzle_dataset import PuzzleDataset, PuzzleDatasetConfig
from evaluation.engine import run_evaluation
from evaluation.plan import EvalPlan, Runtime
from models.loading import load_checkpoint
from models.registry import build_model
from tests.conftest import FIXTURES, ROOT
from training.progress import MetricWindow, format_summary
from training.trainer import NonFiniteLossError, Trainer
from utils.checkpoint import safe_torch_load, save_checkpoint_atomic
from utils.distributed import DistInfo
from utils.validation import ConfigError

TINY = [
    "arch.hidden_size=32", "arch.num_heads=2", "arch.forward_dtype=float32", "arch.H_cycles=2",
    "arch.L_cycles=2", "arch.halt_max_steps=4", "global_batch_size=16", "lr_warmup_steps=0",
    "wandb_mode=disabled", "eval_interval_steps=null", "log_interval_steps=1",
]
REF_TRAINER = FIXTURES / "ref_trainer_sudoku.pth"
HRM_RELEASE = FIXTURES / "hrm_release_layout"
CPU = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


def make_config(name: str, data: Path, run_dir: Path, *overrides: str):
    return compose_pretrain_config(name, [*TINY, f"dataset.data_path={data}", f"checkpoint_path={run_dir}",
                                          *overrides])


def run_pretrain(*args: str, nproc: int = 1) -> subprocess.CompletedProcess:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"] \
        if nproc > 1 else [sys.executable]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([*launcher, str(ROOT / "pretrain.py"), *args], capture_output=True, text=True,
                          cwd=args_dir(args), env=env, timeout=300)


def args_dir(args: tuple[str, ...]) -> str:
    return next(a.split("=", 1)[1] for a in args if a.startswith("checkpoint_path="))


def test_every_shipped_config_composes_and_validates():
    for path in sorted((ROOT / "config" / "train").glob("*.yaml")):
        config = compose_pretrain_config(f"train/{path.stem}", [])
        assert config.checkpoint_path == f"checkpoints/EqR/{path.stem}"
    for name, hidden, mlp_t in [("train/eqr_sudoku", 512, True), ("train/trm_sudoku", 512, True),
                                ("train/eqr_maze_unique", 128, False), ("train/trm_maze_unique", 128, False)]:
        config = compose_pretrain_config(name, [])
        assert config.arch["hidden_size"] == hidden and config.arch["mlp_t"] is mlp_t
        assert config.global_batch_size == 768 and config.lr == 1e-4 and config.ema_rate == 0.999
    for arch in ("eqr", "trm", "hrm", "transformer"):
        assert compose_pretrain_config("cfg_pretrain", [f"arch={arch}"]).arch["name"].startswith(arch)


@pytest.mark.parametrize("override,key", [("arch.pos_encodings=foo", "arch.pos_encodings"),
                                          ("global_batch_size=0", "global_batch_size"),
                                          ("arch.name=foo@Bar", "arch.name")])
def test_invalid_override_fails_naming_the_key(maze_dir, tmp_path, capsys, override, key):
    """In-process through pretrain.main (tests/test_cli_errors.py runs the subprocess cases)."""
    code = pretrain.main(["--config-name", "train/eqr_maze_unique", *TINY, f"dataset.data_path={maze_dir}",
                          f"checkpoint_path={tmp_path}", override])
    assert code == 2
    assert f"config error: {key}" in capsys.readouterr().err
    assert not list(tmp_path.glob("step_*.pth"))


def test_loss_falls_on_a_tiny_dataset(maze_dir, tmp_path):
    torch.set_num_threads(2)
    config = make_config("train/trm_maze_unique", maze_dir, tmp_path, "max_steps=40", "lr=3e-3",
                         "checkpoint_interval_steps=null")
    trainer = Trainer(config, CPU)
    losses = []
    for _ in range(40):
        metrics = trainer.train_step()
        losses.append(metrics["lm_loss"].item() / 16)
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.6 * first, (first, last)


def test_resume_equals_an_uninterrupted_run(maze_dir, tmp_path):
    """EqR with noise, RI and halting exploration on: every random stream must be restored."""
    opts = ("max_steps=8", "checkpoint_interval_steps=4", "arch.halt_exploration_prob=0.5", "arch.noise_scale=0.05",
            "arch.halt_max_steps=2")
    full_dir, resumed_dir = tmp_path / "full", tmp_path / "resumed"
    Trainer(make_config("train/eqr_maze_unique", maze_dir, full_dir, *opts), CPU).run()
    resumed_dir.mkdir()
    shutil.copy(full_dir / "step_4.pth", resumed_dir / "step_4.pth")
    resumed = Trainer(make_config("train/eqr_maze_unique", maze_dir, resumed_dir, *opts, "resume=true"), CPU)
    assert resumed.step == 4 and resumed.carry is not None  # really resumed, not a fresh run with equal seeds
    resumed.run()

    a, b = safe_torch_load(full_dir / "step_8.pth"), safe_torch_load(resumed_dir / "step_8.pth")
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for key in a["ema"]["shadow"]:
        assert torch.equal(a["ema"]["shadow"][key], b["ema"]["shadow"][key]), key
    assert torch.equal(a["carry"]["z_H"], b["carry"]["z_H"])
    assert a["train_dataset"] == b["train_dataset"] and b["step"] == 8


def test_two_process_torchrun_equals_one_process(maze_dir, tmp_path):
    common = ("--config-name", "train/trm_maze_unique", *TINY, f"dataset.data_path={maze_dir}", "max_steps=3",
              "checkpoint_interval_steps=3", "arch.halt_exploration_prob=0.0", "device=cpu")
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    p1 = run_pretrain(*common, f"checkpoint_path={one}")
    assert p1.returncode == 0, p1.stderr[-3000:]
    p2 = run_pretrain(*common, f"checkpoint_path={two}", nproc=2)
    assert p2.returncode == 0, p2.stderr[-3000:]
    a, b = safe_torch_load(one / "step_3.pth"), safe_torch_load(two / "step_3.pth")
    assert len(b["rank_states"]) == 2
    for key, value in a["model"].items():
        torch.testing.assert_close(b["model"][key], value, rtol=1e-5, atol=1e-6, msg=key)
    assert a["step"] == b["step"] == 3 and a["optimizers"][0]["state"]


def test_pretrain_checkpoint_loads_through_the_release_loader(maze_dir, tmp_path):
    config = make_config("train/eqr_maze_unique", maze_dir, tmp_path, "max_steps=2", "checkpoint_interval_steps=2")
    Trainer(config, CPU).run()
    path = tmp_path / "step_2.pth"
    loaded = load_checkpoint(path, data_fields={"seq_len": 49})
    assert loaded.used_ema and loaded.step == 2
    raw = safe_torch_load(path)
    assert set(raw) >= {"model", "ema", "config", "step", "total_steps", "optimizers", "optimizer_lrs", "carry",
                        "rng", "numpy", "python", "train_dataset", "iteration", "wandb_run_id"}
    assert all(k.startswith("model.inner.") for k in raw["model"])
    assert raw["config"]["arch"]["name"] == "eqr@EqRModel"
    assert (tmp_path / "all_config.yaml").read_text().count("global_batch_size: 16") == 1


def test_every_checkpoint_is_kept_unless_keep_last_is_set(maze_dir, tmp_path):
    config = make_config("train/trm_maze_unique", maze_dir, tmp_path / "all", "max_steps=3",
                         "checkpoint_interval_steps=1")
    assert config.checkpoint_keep_last is None
    Trainer(config, CPU).run()
    assert sorted(p.name for p in (tmp_path / "all").glob("step_*.pth")) == [f"step_{i}.pth" for i in (1, 2, 3)]
    config = make_config("train/trm_maze_unique", maze_dir, tmp_path / "last", "max_steps=5",
                         "checkpoint_interval_steps=1", "checkpoint_keep_last=2")
    Trainer(config, CPU).run()
    assert sorted(p.name for p in (tmp_path / "last").glob("step_*.pth")) == ["step_4.pth", "step_5.pth"]


def test_non_finite_loss_stops_with_the_step_named(maze_dir, tmp_path):
    good = make_config("train/trm_maze_unique", maze_dir, tmp_path / "good", "max_steps=1",
                       "checkpoint_interval_steps=1")
    Trainer(good, CPU).run()
    ckpt = safe_torch_load(tmp_path / "good" / "step_1.pth")
    ckpt["model"]["model.inner.lm_head.weight"].fill_(float("nan"))
    torch.save(ckpt, tmp_path / "nan.pth")
    bad = make_config("train/trm_maze_unique", maze_dir, tmp_path / "bad", "max_steps=3",
                      "checkpoint_interval_steps=1", f"load_checkpoint={tmp_path / 'nan.pth'}")
    with pytest.raises(NonFiniteLossError, match="at step 2"):  # load_checkpoint= continues from its step 1
        Trainer(bad, CPU).run()
    assert not list((tmp_path / "bad").glob("step_*.pth"))


def test_gradient_checkpointing_gives_the_same_update(maze_dir, tmp_path):
    states = []
    for flag in ("false", "true"):
        config = make_config("train/trm_maze_unique", maze_dir, tmp_path / flag, "max_steps=2",
                             "checkpoint_interval_steps=null", f"gradient_checkpoint={flag}",
                             "arch.halt_exploration_prob=0.0")
        trainer = Trainer(config, CPU)
        trainer.run()
        states.append(trainer.head.state_dict())
    for key in states[0]:
        torch.testing.assert_close(states[0][key], states[1][key], rtol=1e-6, atol=1e-7)


WRITER = """
import sys, torch
sys.path.insert(0, {root!r})
from utils.checkpoint import save_checkpoint_atomic
save_checkpoint_atomic({{"model": {{"w": torch.ones(4)}}, "step": 1}}, {first!r})
print("first written", flush=True)
save_checkpoint_atomic({{"model": {{"w": torch.randn(60_000_000)}}, "step": 2}}, {second!r})
"""


def test_kill_during_checkpoint_write_keeps_the_previous_one(tmp_path):
    first, second = tmp_path / "step_1.pth", tmp_path / "step_2.pth"
    script = WRITER.format(root=str(ROOT), first=str(first), second=str(second))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "first written"
    deadline = time.time() + 60
    while not list(tmp_path.glob(".step_2.pth.*.tmp")) and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not second.exists(), "a half-written checkpoint must never appear under its final name"
    assert safe_torch_load(first)["step"] == 1
    save_checkpoint_atomic({"step": 3}, second)  # a later write replaces cleanly
    assert safe_torch_load(second)["step"] == 3


def test_config_error_names_missing_dataset_path(tmp_path):
    with pytest.raises(ConfigError, match="dataset.data_path: Field required"):
        load_pretrain_config({"arch": {"name": "eqr@EqRModel"}, "dataset": {"name": "x"}, "global_batch_size": 8,
                              "epochs": 1, "lr": 1e-4})


def test_periodic_evaluation_uses_ema_and_leaves_training_untouched(maze_dir, tmp_path):
    """Evaluating every step must not change the training trajectory (RNG, weights, mode)."""
    opts = ("max_steps=3", "checkpoint_interval_steps=null", "arch.noise_scale=0.05", "arch.halt_exploration_prob=0.5")
    plain = Trainer(make_config("train/eqr_maze_unique", maze_dir, tmp_path / "a", *opts), CPU)
    plain.run()
    evaluated = Trainer(make_config("train/eqr_maze_unique", maze_dir, tmp_path / "b", *opts,
                                    "eval_interval_steps=1"), CPU)
    last = evaluated.run()
    for key, value in plain.head.state_dict().items():
        assert torch.equal(evaluated.head.state_dict()[key], value), key
    assert 0.0 <= last["eval/exact_accuracy"] <= 1.0 and last["eval/count"] == 16
    assert evaluated.head.training

    # The periodic evaluation ran the EMA weights: the same evaluation of a copy holding the EMA shadow
    # reproduces its numbers, one holding the live weights does not.
    test = PuzzleDataset(PuzzleDatasetConfig(data_path=maze_dir, global_batch_size=16, test_set_mode=True), "test")
    results = {}
    for weights in ("ema", "live"):
        copy = build_model(evaluated.arch)
        copy.load_state_dict(evaluated.head.state_dict())
        if weights == "ema":
            evaluated.ema.copy_to(copy)
        depth = copy.model.config.halt_max_steps
        plan = EvalPlan([depth], runtime=Runtime(seed=0))
        results[weights] = run_evaluation(copy.model.eval(), test.test_batches(), plan).metrics[depth]
    logged = {k: v for k, v in last.items() if k.startswith("eval/")}
    assert {f"eval/{k}": v for k, v in results["ema"].items()} == logged
    assert results["live"]["final_residual"] != results["ema"]["final_residual"]


def test_logged_metrics_cover_the_whole_logging_window(maze_dir, tmp_path):
    """halt_max_steps 4, no early halts: over 8 steps each of the 16 rows halts twice, after 4 steps."""
    config = make_config("train/trm_maze_unique", maze_dir, tmp_path, "max_steps=8", "log_interval_steps=8",
                         "checkpoint_interval_steps=null", "arch.halt_exploration_prob=0.0")
    last = Trainer(config, CPU).run()
    assert last["train/count"] == 32
    assert last["train/steps"] == 4.0
    assert 0.0 <= last["train/accuracy"] <= 1.0 and last["train/lm_loss"] > 0
    assert last["train/samples_per_s"] > 0 and last["train/grad_norm"] > 0


def test_nothing_to_do_and_no_rates_before_any_row_halted(maze_dir, tmp_path, caplog):
    config = make_config("train/trm_maze_unique", maze_dir, tmp_path, "max_steps=2", "checkpoint_interval_steps=2",
                         "log_interval_steps=1", "arch.halt_exploration_prob=0.0")
    trainer = Trainer(config, CPU)
    window = MetricWindow()
    window.add(trainer.train_step())
    first = window.reduce(config.global_batch_size)  # halt_max_steps 4: no row has halted yet
    assert first["train/count"] == 0 and "train/accuracy" not in first and first["train/lm_loss"] > 0
    first.update({"train/samples_per_s": 10.0, "train/lr": 1e-4})
    assert "acc n/a  exact n/a  steps n/a" in format_summary(1, 2, first)
    trainer.run()
    again = make_config("train/trm_maze_unique", maze_dir, tmp_path, "max_steps=2", "checkpoint_interval_steps=2",
                        "resume=true")
    with caplog.at_level(logging.INFO):
        Trainer(again, CPU).run()
    assert f"already at step 2 of 2, nothing to do ({tmp_path})" in caplog.text
