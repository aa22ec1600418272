"""Adaptive breadth (`breadth_agree=k`, evaluation/adaptive_breadth.py): no restart that cannot change the answer."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from torch import nn

import evaluate
from evaluation.adaptive_breadth import choose
from evaluation.engine import run_evaluation
from evaluation.plan import Breadth, EvalPlan, Outputs, Runtime
from models.registry import build_model
from tests.conftest import ScriptedInner, scripted_model, tiny_arch
from tests.test_eval_cli import CKPT, sudoku  # noqa: F401  (the module's dataset fixture)

S, V = 3, 5
RIGHT, X, Y, Z = [1, 2, 3], [4, 4, 4], [3, 2, 1], [2, 2, 2]
# Hand-set answers of 3 puzzles x 4 restarts; the label is RIGHT for every puzzle.
ANSWERS = [
    [RIGHT, RIGHT, X, Y],  # the first two agree: restarts 2 and 3 never start
    [X, RIGHT, RIGHT, Y],  # disagree, so one more starts (one could change the outcome); it agrees: 3 skipped
    [X, Y, Z, RIGHT],  # never agree: all four run, the majority vote (ties: earliest) picks X
]


class AnswerInner(ScriptedInner):
    """Answers ANSWERS[puzzle][restart] at every segment."""

    def outputs(self, step, batch):
        answers = torch.tensor(ANSWERS)[batch["puzzle_identifiers"].long(), batch["copy"].long()]
        return nn.functional.one_hot(answers, V).float(), torch.zeros(len(step))


def answer_model() -> nn.Module:
    return scripted_model(AnswerInner(), S, V)


def batches(per_batch: int) -> list[tuple[dict[str, torch.Tensor], int]]:
    out = []
    for start in range(0, len(ANSWERS), per_batch):
        ids = list(range(start, min(start + per_batch, len(ANSWERS))))
        pad = per_batch - len(ids)
        out.append(({"inputs": torch.ones(per_batch, S, dtype=torch.int32),
                     "labels": torch.tensor([RIGHT] * len(ids) + [[0] * S] * pad, dtype=torch.int32),
                     "puzzle_identifiers": torch.tensor(ids + [0] * pad, dtype=torch.int32)}, len(ids)))
    return out


@pytest.mark.parametrize(("per_batch", "rows"), [(3, [6, 6, 2, 2, 1, 1]), (2, [4, 4, 3, 3, 1, 1, 1, 1])])
def test_only_restarts_that_can_change_the_answer_run(per_batch, rows):
    model = answer_model()
    result = run_evaluation(model, batches(per_batch), EvalPlan([1, 2],
                                                                breadth=Breadth(restarts=4, agree=2, restart_std=None),
                                                                outputs=Outputs(per_trajectory=True),
                                                                runtime=Runtime(progress=False)))
    started = [2, 3, 4]
    assert result.trajectory_segments == 2 * sum(started) == sum(model.inner.rows_per_segment)
    # k = 2 restarts per puzzle in the slots; freed slots take the next puzzle's restarts at once.
    assert model.inner.rows_per_segment == rows
    records = result.per_trajectory[2]
    assert records["puzzle"] == [0, 0, 1, 1, 1, 2, 2, 2, 2]
    assert records["restart"] == [0, 1, 0, 1, 2, 0, 1, 2, 3]
    metrics = result.metrics[2]
    assert metrics["adaptive_breadth/exact_accuracy"] == pytest.approx(2 / 3)
    assert metrics["adaptive_breadth/agreed"] == pytest.approx(2 / 3)
    assert metrics["adaptive_breadth/mean_restarts"] == 3.0
    assert metrics["adaptive_breadth/segments_per_puzzle"] == 6.0
    assert metrics["adaptive_breadth/k"] == 2
    assert metrics["exact_accuracy"] == pytest.approx(5 / 9) and metrics["count"] == 9  # started restarts only
    assert not any(k.startswith(("different_init/", "majority_vote/")) for k in metrics)  # ragged breadth
    assert result.metrics[1]["adaptive_breadth/segments_per_puzzle"] == 3.0


def test_choose_agreement_then_convergence_then_majority():
    preds = torch.tensor([X, RIGHT, Y, RIGHT])
    assert choose(preds, 2, None) == (1, True)
    assert choose(preds, 3, torch.tensor([0.5, 0.4, 0.1, 0.3])) == (2, False)  # the most converged
    assert choose(preds, 3, None) == (1, False)  # the majority, earliest of its restarts
    assert choose(torch.tensor([X, Y]), 2, torch.tensor([float("nan"), float("nan")])) == (0, False)


def test_agreement_of_all_restarts_equals_full_breadth_row_metrics():
    """With k = B a puzzle skips nothing unless every restart agreed: same trajectories, same numbers."""
    torch.manual_seed(3)
    model = build_model(tiny_arch(noise_scale=0.05, vocab_size=5)).model.eval()
    data = [({"inputs": torch.randint(1, 5, (4, 16), dtype=torch.int32),
              "labels": torch.randint(1, 5, (4, 16), dtype=torch.int32),
              "puzzle_identifiers": torch.zeros(4, dtype=torch.int32)}, 4) for _ in range(2)]
    plan = EvalPlan([2, 4], breadth=Breadth(restarts=3), outputs=Outputs(per_trajectory=True),
                    runtime=Runtime(seed=2, progress=False))
    full = run_evaluation(model, data, plan)
    adaptive = run_evaluation(model, data, dataclasses.replace(plan, breadth=Breadth(restarts=3, agree=3)))
    assert adaptive.trajectory_segments == full.trajectory_segments == 2 * 4 * 3 * 4
    for depth in (2, 4):
        for key in ("exact_accuracy", "accuracy", "steps", "final_residual", "count"):
            assert adaptive.metrics[depth][key] == full.metrics[depth][key]
        for key, values in full.per_trajectory[depth].items():
            if key != "convergence_score":  # NaN without convergence_top_k
                assert adaptive.per_trajectory[depth][key] == values
        assert adaptive.metrics[depth]["adaptive_breadth/mean_restarts"] == 3.0


@pytest.mark.parametrize(("restarts", "agree", "counting", "expected"), [
    (2, 3, "clean", "breadth_agree: must lie in 1..2"),
    (1, 1, "clean", "breadth_agree: must lie in 1..1"),
    (2, 2, "both", "the reference has no adaptive breadth"),
])
def test_bad_options(restarts, agree, counting, expected):
    with pytest.raises(ValueError, match=expected):
        plan = EvalPlan([2], breadth=Breadth(restarts=restarts, restart_std=None, agree=agree), counting=counting,
                        runtime=Runtime(progress=False))
        run_evaluation(answer_model(), batches(3), plan)


def test_cli_record(sudoku, tmp_path, capsys):  # noqa: F811
    code = evaluate.main([f"checkpoint={CKPT}", f"dataset_data_path={sudoku}", f"output_dir={tmp_path}",
                          "halt_max_steps=2", "different_init=3", "breadth_agree=2", "convergence_top_k=1",
                          "plots=false", "reference_files=false"])
    assert code == 0, capsys.readouterr().err
    stem = "eval_eqr_fixtures_release_format_sudoku_sudoku_D2_B3_top1_agree2"
    record = json.loads((tmp_path / f"{stem}.json").read_text())
    assert record["config"]["breadth_agree"] == 2
    metrics = record["metrics"]
    assert metrics["num_puzzles"] == 6 and 2 <= metrics["adaptive_breadth/mean_restarts"] <= 3
    assert metrics["count"] == round(6 * metrics["adaptive_breadth/mean_restarts"])
    assert "convergence_top_k/exact_accuracy" not in metrics
