"""The reference's recorded tensors, reproduced through the same paths evaluation uses."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from tests.conftest import FIXTURES, ROOT, tiny_arch
from utils.golden import check_file

GOLDEN_TOL = 1e-5
MODEL_FIXTURES = ["eqr_sudoku_mlp_t.pt", "eqr_maze_attn_rope.pt", "trm_sudoku_mlp_t.pt", "hrm_sudoku_rope.pt"]


@pytest.mark.parametrize("name", MODEL_FIXTURES + ["release_format_sudoku.pth", "breadth_metrics.pt"])
def test_fixture_matches_reference(name):
    results = check_file(FIXTURES / name)
    assert results, "no tensor was compared"
    bad = {r.name: r.error for r in results if not r.passed(GOLDEN_TOL)}
    assert not bad, f"{name}: above {GOLDEN_TOL}: {bad}"


@pytest.mark.parametrize("name", ["eqr_sudoku_mlp_t.pt", "eqr_maze_attn_rope.pt", "trm_sudoku_mlp_t.pt"])
def test_fixture_losses_are_checked(name):
    names = {r.name for r in check_file(FIXTURES / name)}
    assert {"stablemax_ce", "softmax_ce"} <= names
    fixture = torch.load(FIXTURES / name, weights_only=True)
    assert (fixture["labels"] == -100).any(), "fixture should exercise ignored labels"


def _record_fixture(arch: dict, path, kind: str, seed: int = 0) -> None:
    """Write a fixture in the reference format from this implementation (self-consistency)."""
    from models.registry import build_model

    torch.manual_seed(seed)
    head = build_model(arch)
    torch.nn.init.normal_(head.model.inner.q_head.weight, std=0.2)  # exercise the halting outputs
    inner = head.model.inner.eval()
    batch = {"inputs": torch.randint(0, arch["vocab_size"], (2, arch["seq_len"]), dtype=torch.int32)}
    if arch.get("puzzle_emb_ndim"):
        batch["puzzle_identifiers"] = torch.zeros(2, dtype=torch.int32)
    shape = head.model.carry_shape(2)
    z_H, z_L = torch.randn(shape), torch.randn(shape)
    fixture = {"kind": kind, "config": {k: v for k, v in arch.items() if k != "name"},
               "state_dict": head.state_dict(), "z_H0": z_H, "z_L0": z_L, **batch}
    segments = []
    with torch.no_grad():
        for _ in range(3):
            z_H, z_L, logits, q_halt, q_continue = inner(z_H, z_L, batch)
            segments.append({"logits": logits, "q_halt_logits": q_halt, "q_continue_logits": q_continue,
                             "z_H": z_H, "z_L": z_L})
    fixture["segments"] = segments
    torch.save(fixture, path)


OTHER_CONFIGS = [
    ("trm", tiny_arch("trm@TRMModel", pos_encodings="learned", no_ACT_continue=False)),
    ("trm", tiny_arch("trm@TRMModel", pos_encodings="absolute")),
    ("eqr", tiny_arch(pos_encodings="rope2d", board_height=4, board_width=4, lambda_=0.8)),
    ("eqr", tiny_arch(pos_encodings="none", mlp_t=True)),
    ("hrm", tiny_arch("hrm@HRMModel", H_layers=2, puzzle_emb_ndim=48, num_puzzle_identifiers=3,
                      pos_encodings="learned")),
    ("transformer", tiny_arch("transformer@TransformerModel", L_layers=3)),
]


def test_check_golden_script_accepts_every_fixture_and_other_configs(tmp_path):
    for i, (kind, arch) in enumerate(OTHER_CONFIGS):
        _record_fixture(arch, tmp_path / f"extra_{i}.pt", kind)
    files = [str(p) for p in sorted(FIXTURES.iterdir())] + [str(p) for p in sorted(tmp_path.iterdir())]
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "check_golden.py"), *files],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for i in range(len(OTHER_CONFIGS)):
        assert f"extra_{i}.pt: 1" in proc.stdout


def test_check_golden_script_fails_on_a_wrong_tensor(tmp_path):
    fixture = torch.load(FIXTURES / "eqr_sudoku_mlp_t.pt", weights_only=True)
    fixture["segments"][2]["z_L"] = fixture["segments"][2]["z_L"] * 1.001
    torch.save(fixture, tmp_path / "perturbed.pt")
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "check_golden.py"), str(tmp_path / "perturbed.pt")],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1
    assert "segments[2].z_L" in proc.stdout and "FAIL" in proc.stdout
