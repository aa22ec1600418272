"""Shared fixtures: small model configs and the golden-fixture directory."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FIXTURES = ROOT / "tests" / "fixtures"

from dataset import sudoku  # noqa: E402 (after the repository root is on sys.path)
from dataset.symmetries import TransformSet  # noqa: E402
from dataset.tasks import SYMMETRIES  # noqa: E402
from models.reasoner import Reasoner, Segment  # noqa: E402


@pytest.fixture(autouse=True)
def _process_settings_between_tests():
    """Entry points called in-process change process-wide settings: the thread governor (left in place it
    would adapt later tests' thread counts to the machine's load, so bit-exact comparisons of two runs
    within a test would depend on what ran before) and denormal flushing. Each test starts without a
    governor, at the thread count it found, and without flushing."""
    from utils import threads

    before = torch.get_num_threads()
    yield
    threads.release()
    torch.set_num_threads(before)
    torch.set_flush_denormal(False)


@pytest.fixture(scope="module")
def maze_dir(tmp_path_factory) -> Path:
    """96 + 16 small mazes (7x7): the training tests' dataset."""
    from dataset.build_maze_unique_dataset import MazeBuildConfig, build_maze_dataset

    out = tmp_path_factory.mktemp("data") / "maze7"
    build_maze_dataset(MazeBuildConfig(output_dir=out, grid_size=7, train_samples=96, test_samples=16,
                                       min_path_length=3, max_path_length=10, seed=1))
    return out


def tiny_arch(name: str = "eqr@EqRModel", **overrides) -> dict:
    """A small float32 config that runs in milliseconds on CPU."""
    arch = {
        "name": name,
        "seq_len": 16,
        "vocab_size": 7,
        "H_cycles": 2,
        "L_cycles": 2,
        "H_layers": 1,
        "L_layers": 1,
        "hidden_size": 32,
        "expansion": 2,
        "num_heads": 2,
        "pos_encodings": "rope",
        "halt_max_steps": 4,
        "halt_exploration_prob": 0.0,
        "forward_dtype": "float32",
        "noise_scale": 0.0,
    }
    arch.update(overrides)
    return arch


def noisy_eqr_and_batches(batches: int, rows: int, last_valid: int | None = None) -> tuple[torch.nn.Module, list]:
    """A tiny EqR with noise (eval mode) and `batches` random batches of `rows` puzzles (16 tokens, vocabulary
    5); the last batch has `last_valid` real rows (the rest pad the split)."""
    from models.registry import build_model

    torch.manual_seed(3)
    model = build_model(tiny_arch(noise_scale=0.05, vocab_size=5)).model.eval()
    made = []
    for index in range(batches):
        inputs = torch.randint(1, 5, (rows, 16), dtype=torch.int32)
        labels = torch.randint(1, 5, (rows, 16), dtype=torch.int32)
        valid = last_valid if last_valid is not None and index == batches - 1 else rows
        made.append(({"inputs": inputs, "labels": labels,
                      "puzzle_identifiers": torch.zeros(rows, dtype=torch.int32)}, valid))
    return model, made


class ScriptedInner(Reasoner):
    """Base of the tests' hand-written inner networks: both latents start at 0 and z_H counts the
    segments run; a subclass's `outputs(step, batch)` gives (logits, q_halt), where `batch["copy"]`
    holds each row's copy index (the evaluation passes it along). Records the rows of every segment."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.rows_per_segment: list[int] = []
        self.latent_shape = (1, 1)  # (positions, hidden): set by `scripted_model`

    def empty_latents(self, batch_size, device):
        return {name: torch.zeros((batch_size, *self.latent_shape), device=device) for name in self.latent_names}

    def reset(self, halted, latents):
        rows = halted.view(-1, 1, 1)
        return {name: torch.where(rows, 0.0, value) for name, value in latents.items()}

    def forward(self, latents, batch):
        self.rows_per_segment.append(latents["z_H"].shape[0])
        z_H = latents["z_H"] + 1
        logits, q_halt = self.outputs(z_H[:, 0, 0], batch)
        return Segment({"z_H": z_H, "z_L": latents["z_L"]}, logits, q_halt, -q_halt)

    def outputs(self, step: torch.Tensor, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


def scripted_model(inner: ScriptedInner, seq_len: int, vocab_size: int, hidden_size: int = 8) -> torch.nn.Module:
    """An ACT model (TRM shell, so no random state) around a scripted inner network, in eval mode."""
    from models.registry import build_model

    arch = tiny_arch("trm@TRMModel", seq_len=seq_len, vocab_size=vocab_size, hidden_size=hidden_size, num_heads=1)
    model = build_model(arch).model
    inner.latent_shape = (model.config.total_positions, hidden_size)
    model.inner = inner
    return model.eval()


def latent_shape(model: torch.nn.Module, rows: int) -> tuple[int, ...]:
    """The shape of each of a (two-latent, TRM-family) model's latents for `rows` rows."""
    return tuple(model.inner.empty_latents(rows, "meta")["z_H"].shape)


def free_port() -> int:
    """A localhost TCP port nobody listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def gloo_rank(rank: int, port: int, world_size: int = 2) -> Iterator[None]:
    """This process as `rank` of a CPU (gloo) process group on localhost, one thread per rank."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    try:
        torch.set_num_threads(1)
        yield
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="session")
def breadth_golden() -> dict:
    """The reference's breadth metrics and convergence scores on recorded logits (fixtures/breadth_metrics.pt)."""
    return torch.load(FIXTURES / "breadth_metrics.pt", weights_only=True)


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


def dihedral_transforms(side: int, vocab_size: int, count: int) -> TransformSet:
    """The first `count` of the 8 symmetries of a side x side grid (identity first)."""
    return TransformSet.from_maps(SYMMETRIES["dihedral"].maps(count, side * side, vocab_size, 0))


def sudoku_transforms(count: int, seed: int = 0) -> TransformSet:
    """Identity plus `count - 1` random Sudoku symmetries drawn from `seed` (the same for every puzzle)."""
    if count < 1:
        raise ValueError(f"tta: need at least 1 transform, got {count}")
    return TransformSet.from_maps(SYMMETRIES["sudoku"].maps(count, sudoku.SEQ_LEN, sudoku.VOCAB_SIZE, seed))
