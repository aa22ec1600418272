"""Augmentation breadth transforms: validity preserved, inverses exact."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dataset.symmetries import identity
from dataset.tasks import SYMMETRIES, TASKS, TOKENS, Symmetry, register_symmetry
from evaluation import load_options
from evaluation.engine import run_evaluation
from evaluation.plan import Breadth, EvalPlan, Outputs, Runtime, Selection
from evaluation.tta import build_transforms
from tests.conftest import ScriptedInner, dihedral_transforms, scripted_model, sudoku_transforms
from utils.validation import ConfigError

# A valid solved Sudoku (tokens = digit + 1).
_BASE = [[(r * 3 + r // 3 + c) % 9 + 1 for c in range(9)] for r in range(9)]
SOLUTION = torch.tensor(_BASE).reshape(1, 81) + 1


def _is_valid_sudoku(tokens: torch.Tensor) -> bool:
    grid = (tokens.view(9, 9) - 1).tolist()
    units = [grid[r] for r in range(9)]
    units += [[grid[r][c] for r in range(9)] for c in range(9)]
    units += [[grid[br + r][bc + c] for r in range(3) for c in range(3)] for br in (0, 3, 6) for bc in (0, 3, 6)]
    return all(sorted(u) == list(range(1, 10)) for u in units)


def test_base_solution_is_valid():
    assert _is_valid_sudoku(SOLUTION[0])


def test_sudoku_transforms_preserve_validity_and_identity_first():
    transforms = sudoku_transforms(16, seed=3)
    assert torch.equal(transforms.position_perm[0], torch.arange(81))
    rows = SOLUTION.repeat(16, 1)
    moved = transforms.apply(rows, torch.arange(16))
    assert all(_is_valid_sudoku(row) for row in moved)
    assert len({tuple(r.tolist()) for r in moved}) == 16  # distinct transforms
    # pad and blank tokens are never renamed
    assert torch.equal(transforms.token_map[:, :2], torch.tensor([[0, 1]]).repeat(16, 1))


def test_sudoku_transforms_deterministic_in_seed():
    assert torch.equal(sudoku_transforms(5, 7).position_perm, sudoku_transforms(5, 7).position_perm)
    assert not torch.equal(sudoku_transforms(5, 7).token_map, sudoku_transforms(5, 8).token_map)


def test_dihedral_transforms_are_the_eight_symmetries():
    transforms = dihedral_transforms(4, 6, 8)
    grid = torch.arange(16).view(4, 4)
    expected = {tuple(torch.rot90(g, k).reshape(-1).tolist()) for g in (grid, grid.T) for k in range(4)}
    assert {tuple(p.tolist()) for p in transforms.position_perm} == expected
    assert torch.equal(transforms.position_perm[0], torch.arange(16))
    with pytest.raises(ConfigError, match="tta: a square grid has 8"):
        dihedral_transforms(4, 6, 9)


def test_dihedral_keeps_maze_adjacency():
    """Neighbouring cells stay neighbours, so a path stays a path."""
    transforms = dihedral_transforms(5, 6, 8)
    for perm in transforms.position_perm:
        where = {int(src): dst for dst, src in enumerate(perm.tolist())}
        for cell in range(25):
            r, c = divmod(cell, 5)
            for nr, nc in ((r + 1, c), (r, c + 1)):
                if nr < 5 and nc < 5:
                    a, b = divmod(where[cell], 5), divmod(where[nr * 5 + nc], 5)
                    assert abs(a[0] - b[0]) + abs(a[1] - b[1]) == 1


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), count=st.integers(1, 12), data_seed=st.integers(0, 10_000))
def test_sudoku_round_trip_exact(seed, count, data_seed):
    transforms = sudoku_transforms(count, seed)
    generator = torch.Generator().manual_seed(data_seed)
    grids = torch.randint(0, 11, (count * 2, 81), generator=generator, dtype=torch.int32)
    grids[:, ::7] = -100  # ignored labels survive
    index = torch.arange(count * 2) // 2  # each transform on two rows
    moved = transforms.apply(grids, index)
    assert moved.dtype == grids.dtype
    assert torch.equal((moved == -100).sum(1), (grids == -100).sum(1))
    assert torch.equal(transforms.inverse().apply(moved, index), grids)


@settings(max_examples=20, deadline=None)
@given(side=st.integers(2, 9), count=st.integers(1, 8), data_seed=st.integers(0, 10_000))
def test_dihedral_round_trip_exact(side, count, data_seed):
    transforms = dihedral_transforms(side, 6, count)
    grids = torch.randint(0, 6, (count, side * side), generator=torch.Generator().manual_seed(data_seed))
    index = torch.arange(count)
    assert torch.equal(transforms.inverse().apply(transforms.apply(grids, index), index), grids)


class StandsStill(ScriptedInner):
    """Outputs that do not matter: the test reads the inputs each copy was given."""

    def outputs(self, step, batch):
        return torch.zeros(*batch["inputs"].shape, 3), torch.zeros(batch["inputs"].shape[0])


def test_copies_are_transform_major_within_puzzle():
    """The evaluation gives copy c of a puzzle (3 transforms x 2 restarts) transform c // 2."""
    transforms = dihedral_transforms(2, 3, 3)
    inputs = torch.tensor([[0, 1, 2, 1], [2, 2, 0, 1]], dtype=torch.int32)
    batch = {"inputs": inputs, "labels": inputs.clone(), "puzzle_identifiers": torch.zeros(2, dtype=torch.int32)}
    plan = EvalPlan([1], breadth=Breadth(restarts=2, transforms=transforms, restart_std=None),
                    outputs=Outputs(save=("inputs",)), runtime=Runtime(progress=False))
    saved = run_evaluation(scripted_model(StandsStill(), 4, 3), [(batch, 2)], plan).outputs[1]
    assert saved["restart"].tolist() == [0, 1, 2, 3, 4, 5] * 2
    seen = transforms.apply(inputs.repeat_interleave(6, dim=0), torch.tensor([0, 0, 1, 1, 2, 2] * 2))
    assert torch.equal(saved["inputs"], seen)



def test_a_plan_counts_its_copies_from_the_transforms_or_the_count():
    """The command line's plan knows `tta` before the dataset's transforms exist; given both, they must agree."""
    transforms = dihedral_transforms(2, 3, 3)
    assert Breadth(restarts=2, transforms=transforms).copies == 6
    assert Breadth(restarts=2, tta=3).copies == 6 and Breadth().copies == 1
    with pytest.raises(ValueError, match="tta: 4 copies but 3 transforms"):
        Breadth(tta=4, transforms=transforms)
    with pytest.raises(ValueError, match="convergence_top_k: 7 is outside 1..6"):
        EvalPlan([1], breadth=Breadth(restarts=2, tta=3), selection=Selection(top_k=7))
    batch = {"inputs": torch.ones(1, 4, dtype=torch.int32), "labels": torch.ones(1, 4, dtype=torch.int32),
             "puzzle_identifiers": torch.zeros(1, dtype=torch.int32)}
    with pytest.raises(ValueError, match="tta: 3 copies need their transforms"):
        run_evaluation(scripted_model(StandsStill(), 4, 3), [(batch, 1)], EvalPlan([1], breadth=Breadth(tta=3)))


def test_kind_resolution_and_errors():
    """`auto` asks the dataset's task; an explicit family is checked against the shape."""
    sudoku, maze = TASKS["sudoku"], TASKS["maze"]
    assert torch.equal(build_transforms(3, "auto", sudoku, 81, 11).token_map, sudoku_transforms(3).token_map)
    assert torch.equal(build_transforms(3, "auto", maze, 900, 6).position_perm,
                       dihedral_transforms(30, 6, 3).position_perm)
    with pytest.raises(ConfigError, match="the tokens task declares no symmetries"):
        build_transforms(2, "auto", TOKENS, 16, 7)
    with pytest.raises(ConfigError, match="sudoku symmetries need seq_len 81"):
        build_transforms(2, "sudoku", maze, 900, 6)
    with pytest.raises(ConfigError, match="not a square"):
        build_transforms(2, "dihedral", TOKENS, 10, 6)
    assert build_transforms(1, "auto", TOKENS, 16, 7).size == 1  # tta=1 never needs a family


def test_tta_kind_names_the_registered_symmetries():
    assert TASKS["sudoku"].symmetry is SYMMETRIES["sudoku"] and TASKS["maze"].symmetry is SYMMETRIES["dihedral"]
    for kind in ("auto", *SYMMETRIES):
        assert load_options(["checkpoint=x.pth", f"tta_kind={kind}"]).breadth.tta_kind == kind
    with pytest.raises(ConfigError, match="tta_kind: 'mirror' is not auto or a registered symmetry; known: sudoku"):
        load_options(["checkpoint=x.pth", "tta_kind=mirror"])
    register_symmetry(Symmetry("mirror", lambda count, seq_len, vocab, seed: (
        np.stack([np.arange(seq_len), np.arange(seq_len)[::-1]])[:count], np.tile(np.arange(vocab), (count, 1)))))
    try:
        assert load_options(["checkpoint=x.pth", "tta_kind=mirror"]).breadth.tta_kind == "mirror"
        flipped = build_transforms(2, "mirror", TOKENS, 4, 3).apply(torch.tensor([[1, 2, 0, 1]] * 2), torch.arange(2))
        assert flipped.tolist() == [[1, 2, 0, 1], [1, 0, 2, 1]]
    finally:
        SYMMETRIES.pop("mirror")


def test_transform_set_rejects_non_permutations():
    with pytest.raises(ValueError, match="permutation"):
        type(identity(3, 2))(torch.tensor([[0, 0, 1]]), torch.tensor([[0, 1]]))
