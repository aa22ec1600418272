"""Shared fixtures: small model configs and the golden-fixture directory."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FIXTURES = ROOT / "tests" / "fixtures"


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


def copy_tagging_reset(halted, z_H, z_L, copies: int):
    """A scripted inner's reset: z_H counts segments from 0, z_L carries the row's copy index
    (row % copies), so the tag follows its row when finished rows are dropped."""
    import torch

    rows = halted.view(-1, 1, 1)
    copy = (torch.arange(z_L.shape[0]) % copies).float().view(-1, 1, 1)
    return torch.where(rows, 0.0, z_H), torch.where(rows, copy, z_L)


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES
