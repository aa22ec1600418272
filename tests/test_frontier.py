"""The accuracy-compute frontier (analysis/frontier.py, scripts/frontier.py)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from analysis.frontier import FrontierPoint, best_fixed, frontier_table
from analysis.frontier_plots import frontier_figure, plot_frontier
from dataset.build_sudoku_dataset import SudokuBuildConfig, build_sudoku_dataset
from evaluation.stopping import StopRule
from scripts import frontier as frontier_script

CKPT = Path(__file__).parent / "fixtures" / "release_format_sudoku.pth"


def test_rule_syntax():
    rule = StopRule.parse("stable:3&residual:0.5", min_steps=2)
    assert (rule.rules, rule.combine, rule.patience, rule.tol, rule.min_steps) == (("stable", "residual"), "all", 3,
                                                                                   0.5, 2)
    rule = StopRule.parse("q|stable")
    assert (rule.rules, rule.combine, rule.patience, rule.min_steps) == (("q", "stable"), "any", 2, 1)
    for bad, says in (("stable:2&q|residual:1", "not both"), ("stable:x", "needs a number"), ("halt", "not one of"),
                      ("q:1", "not one of"), ("stable&stable", "at most once")):
        with pytest.raises(ValueError, match=says):
            StopRule.parse(bad)


def _points(*rows: tuple[str, str, int, float, float]) -> list[FrontierPoint]:
    return [FrontierPoint(label, kind, depth, acc, acc, segs, segs / 10) for label, kind, depth, acc, segs in rows]


def test_table_compares_with_the_smallest_best_fixed_depth():
    points = _points(("D=2", "fixed", 2, 0.5, 2.0), ("D=4", "fixed", 4, 0.8, 4.0), ("D=8", "fixed", 8, 0.8, 8.0),
                     ("stable:1", "elastic", 8, 0.79, 1.6))
    assert best_fixed(points).label == "D=4"
    table = frontier_table(points)
    assert "the best fixed depth D=4 (80.00% exact, 4.00 segments/puzzle" in table
    assert "| stable:1 | 8 | 79.00 | 79.00 | 1.60 | 0.16 |  | -1.00 | 2.50x | 2.50x | 5.00x |" in table


def test_frontier_labels_neither_overlap_nor_leave_the_axes(tmp_path):
    # Crowded as a real frontier is: an always-firing rule on D=1, a never-firing one on the deepest D.
    points = _points(("D=1", "fixed", 1, 0.4, 2.0), ("D=2", "fixed", 2, 0.55, 4.0), ("D=4", "fixed", 4, 0.7, 8.0),
                     ("D=8", "fixed", 8, 0.8, 16.0), ("D=16", "fixed", 16, 0.8, 32.0),
                     ("residual:1e9", "elastic", 16, 0.4, 2.0), ("residual:0", "elastic", 16, 0.8, 32.0),
                     ("stable:1|q", "elastic", 16, 0.79, 6.1), ("stable:2", "elastic", 16, 0.795, 7.0),
                     ("q", "elastic", 16, 0.78, 6.5), ("stable:1&residual:0.5", "elastic", 16, 0.7, 8.2))
    fig = frontier_figure(points)
    fig.canvas.draw()
    for ax in fig.axes:
        labels = [text for text in ax.texts if text.get_text()]
        assert sorted(t.get_text() for t in labels) == sorted(p.label for p in points)
        boxes = [label.get_window_extent() for label in labels]
        for a, b in itertools.combinations(boxes, 2):
            assert not a.overlaps(b)
        assert all(ax.bbox.x0 <= b.x0 and b.x1 <= ax.bbox.x1 and ax.bbox.y0 <= b.y0 and b.y1 <= ax.bbox.y1
                   for b in boxes)
    plt.close(fig)
    assert plot_frontier(points, tmp_path / "frontier.png").stat().st_size > 10_000


@pytest.fixture(scope="module")
def sudoku(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data") / "sudoku"
    return build_sudoku_dataset(SudokuBuildConfig(output_dir=out, source="generate", subsample_size=1,
                                                  test_subsample_size=5, num_aug=0, seed=0))


def test_frontier_end_to_end(sudoku, tmp_path, capsys):
    out = tmp_path / "frontier"
    args = [f"checkpoint={CKPT}", f"dataset_data_path={sudoku}", "depths=[1,3]", "global_batch_size=2",
            "elastic=[residual:1e9,residual:0,stable:1|q]", "different_init=2", "convergence_top_k=1",
            f"output_dir={out}", "progress=false"]
    assert frontier_script.main(args) == 0, capsys.readouterr().err
    saved = json.loads((out / "frontier.json").read_text())
    points = {p["label"]: p for p in saved["points"]}
    assert list(points) == ["D=1", "D=3", "residual:1e9", "residual:0", "stable:1|q"]
    assert points["D=1"]["segments_per_puzzle"] == 2 and points["D=3"]["segments_per_puzzle"] == 6  # 2 restarts
    # A rule that always fires stops every trajectory after one segment: the D=1 evaluation at the cost of D=1.
    always, never = points["residual:1e9"], points["residual:0"]
    assert always["puzzle_segments"] == [2] * 5 and always["exit_rate"] == 1.0
    assert always["exact_accuracy"] == points["D=1"]["exact_accuracy"]
    assert always["accuracy"] == points["D=1"]["accuracy"]
    # One that never fires runs every trajectory to D_max = 3: the D=3 evaluation.
    assert never["puzzle_segments"] == [6] * 5 and never["exit_rate"] == 0.0
    assert never["accuracy"] == points["D=3"]["accuracy"]
    sometimes = points["stable:1|q"]
    assert min(sometimes["puzzle_segments"]) >= 2 and max(sometimes["puzzle_segments"]) <= 6
    assert sometimes["segments_per_puzzle"] == pytest.approx(sum(sometimes["puzzle_segments"]) / 5)
    report = (out / "frontier.md").read_text()
    assert "python scripts/frontier.py checkpoint=" in report and "| residual:0 | 3 |" in report
    assert "| stable:1\\|q | 3 |" in report  # a markdown cell escapes the rule's |
    for name in ("frontier.png", "frontier_steps.png"):
        assert (out / name).stat().st_size > 10_000
    assert "| D=3 | 3 |" in capsys.readouterr().out


@pytest.mark.parametrize("arg, says", [
    ("elastic_patience=3", "elastic_patience: set by the frontier itself"),
    ("elastic=[stable:x]", "needs a number"),
    ("depth=[1,2]", "depth"),
    ("different_init=[1,4]", "one different_init"),
])
def test_bad_options_give_one_line(arg, says, capsys):
    assert frontier_script.main([f"checkpoint={CKPT}", arg]) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and len(err.splitlines()) == 1
