"""The reference's recorded tensors, reproduced through the same paths evaluation uses."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from tests.conftest import FIXTURES, ROOT, tiny_arch
from utils.golden import check_file

GOLDEN_TOL = 1e-5
ATTENTION_FIXTURES = ["eqr_maze_attn_rope.pt", "hrm_sudoku_rope.pt"]
# Free-running over 3 segments these drift to 3.4e-5 / 1.4e-4: float32 rounding inside attention
# differs from the reference's and the recurrence amplifies it (README, "Known deviations").
ATTENTION_DRIFT = pytest.mark.xfail(strict=True, reason="attention float32 op order differs from the reference")
FIXTURES_ALL = [
    "eqr_sudoku_mlp_t.pt",
    "trm_sudoku_mlp_t.pt",
    *(pytest.param(name, marks=ATTENTION_DRIFT) for name in ATTENTION_FIXTURES),
    "release_format_sudoku.pth",
    "breadth_metrics.pt",
]


@pytest.mark.parametrize("name", FIXTURES_ALL)
def test_fixture_matches_reference(name):
    results = check_file(FIXTURES / name)
    assert results, "no tensor was compared"
    bad = {r.name: r.error for r in results if not r.passed(GOLDEN_TOL)}
    assert not bad, f"{name}: above {GOLDEN_TOL}: {bad}"


@pytest.mark.parametrize("name", ATTENTION_FIXTURES)
def test_attention_fixtures_first_segment_and_every_teacher_forced_segment(name):
    """Each segment, started from the reference's own carry, reproduces the reference to 1e-5."""
    results = check_file(FIXTURES / name)
    checked = [r for r in results if r.name.startswith(("segments[0].", "teacher_forced.", "stablemax", "softmax"))]
    assert len(checked) >= 4 * 3 + 2
    bad = {r.name: r.error for r in checked if not r.passed(GOLDEN_TOL)}
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


def _check_golden(*files) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "check_golden.py"), *map(str, files)],
                          capture_output=True, text=True, cwd=ROOT)


def test_check_golden_script_accepts_other_configs(tmp_path):
    for i, (kind, arch) in enumerate(OTHER_CONFIGS):
        _record_fixture(arch, tmp_path / f"extra_{i}.pt", kind)
    fixtures = [p for p in sorted(FIXTURES.iterdir()) if p.name not in ATTENTION_FIXTURES]
    proc = _check_golden(*fixtures, *sorted(tmp_path.iterdir()))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for i in range(len(OTHER_CONFIGS)):
        assert f"extra_{i}.pt: " in proc.stdout
    assert "companion file" in proc.stdout


@ATTENTION_DRIFT
def test_check_golden_script_passes_on_every_bundled_fixture():
    proc = _check_golden(*sorted(FIXTURES.iterdir()))
    assert proc.returncode == 0, proc.stdout


def test_check_golden_script_fails_on_a_wrong_tensor(tmp_path):
    fixture = torch.load(FIXTURES / "eqr_sudoku_mlp_t.pt", weights_only=True)
    fixture["segments"][2]["z_L"] = fixture["segments"][2]["z_L"] * 1.001
    torch.save(fixture, tmp_path / "perturbed.pt")
    proc = _check_golden(tmp_path / "perturbed.pt")
    assert proc.returncode == 1
    assert "segments[2].z_L" in proc.stdout and "FAIL" in proc.stdout


def test_check_golden_script_names_a_file_that_is_no_fixture(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    torch.save({"something": torch.zeros(1)}, tmp_path / "other.pt")
    proc = _check_golden(tmp_path / "notes.txt", tmp_path / "other.pt")
    assert proc.returncode == 1
    assert "notes.txt: not a tensor fixture" in proc.stdout
    assert "other.pt: unknown fixture format (keys: ['something'])" in proc.stdout
