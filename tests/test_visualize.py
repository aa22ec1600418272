"""scripts/visualize.py: frames, GIF and residual curve for Sudoku and maze puzzles."""

from __future__ import annotations

import random

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from analysis.trajectory import (  # noqa: E402
    FRAME_DPI,
    FRAME_SIZE,
    TITLE_BAND,
    TITLE_CHARS,
    Draw,
    Trajectory,
    draw_segment,
    visualize,
)
from dataset import maze  # noqa: E402
from dataset.build_maze_unique_dataset import MazeBuildConfig, build_maze_dataset  # noqa: E402
from dataset.build_sudoku_dataset import SudokuBuildConfig, build_sudoku_dataset  # noqa: E402
from dataset.sudoku import repeated_cells  # noqa: E402
from dataset.tasks import TOKENS, get_task  # noqa: E402
from models.registry import build_model  # noqa: E402
from scripts.visualize import main  # noqa: E402
from tests.conftest import FIXTURES, tiny_arch  # noqa: E402

SOLVED = np.array([[(3 * (r % 3) + r // 3 + c) % 9 + 1 for c in range(9)] for r in range(9)])


def sudoku_violations(grid: np.ndarray) -> np.ndarray:
    return repeated_cells(grid.reshape(1, 81))[0].reshape(9, 9)


def test_sudoku_violations_flag_exactly_the_duplicates():
    assert not sudoku_violations(SOLVED).any()
    broken = SOLVED.copy()
    broken[0, 0] = broken[0, 1]
    bad = sudoku_violations(broken)
    # the copied digit clashes in row 0, and with the originals in its column and box
    assert bad[0, 0] and bad[0, 1] and bad.sum() >= 2
    empty = np.zeros((9, 9), dtype=int)
    assert not sudoku_violations(empty).any()


def assert_gif_shows_the_frames(out, segments):
    """All PNG frames one size; the GIF holds one frame per segment, each (up to its palette) that segment's PNG,
    not pixels left over from frame 1 (the title band, which says the segment, tells them apart)."""
    pngs = [np.asarray(Image.open(out / f"frame_{k:03d}.png").convert("RGB"), dtype=int)
            for k in range(1, segments + 1)]
    assert len({png.shape for png in pngs}) == 1
    gif = Image.open(out / "trajectory.gif")
    assert gif.n_frames == segments
    title = slice(0, int(TITLE_BAND * FRAME_DPI))
    for k, png in enumerate(pngs):
        gif.seek(k)
        frame = np.asarray(gif.convert("RGB"), dtype=int)
        assert frame.shape == png.shape
        assert np.abs(frame - png).mean() < 1
        assert np.abs(frame[title] - png[title]).max() < 32
        if k:
            assert np.abs(frame[title] - pngs[0][title]).max() > 100


def test_sudoku_frames_gif_and_residuals(tmp_path, capsys):
    data = tmp_path / "sudoku"
    build_sudoku_dataset(SudokuBuildConfig(source="generate", output_dir=data, subsample_size=1,
                                           test_subsample_size=2, num_aug=1, seed=0))
    out = tmp_path / "vis"
    assert main([str(FIXTURES / "release_format_sudoku.pth"), str(data), "--index", "1", "--segments", "3",
                 "--out", str(out)]) == 0
    assert sorted(p.name for p in out.glob("frame_*.png")) == ["frame_001.png", "frame_002.png", "frame_003.png"]
    assert_gif_shows_the_frames(out, 3)
    assert (out / "residuals.png").stat().st_size > 0
    assert "wrote 3 frames" in capsys.readouterr().out


def test_maze_checkpoint_and_bad_inputs(tmp_path, capsys):
    data = tmp_path / "maze"
    build_maze_dataset(MazeBuildConfig(output_dir=data, grid_size=7, train_samples=4, test_samples=4,
                                       min_path_length=3, max_path_length=10, seed=0))
    arch = tiny_arch(seq_len=49, vocab_size=6)
    head = build_model(arch)
    ckpt = tmp_path / "tiny.pth"
    torch.save({"model": head.state_dict(), "config": {"arch": arch}}, ckpt)
    assert main([str(ckpt), str(data), "--index", "2", "--segments", "2", "--out", str(tmp_path / "vis")]) == 0
    assert_gif_shows_the_frames(tmp_path / "vis", 2)
    assert main([str(ckpt), str(data), "--index", "99"]) == 2
    assert "--index: 99 is outside 0..3" in capsys.readouterr().err
    assert main([str(FIXTURES / "release_format_sudoku.pth"), str(data)]) == 2
    assert "shape mismatch" in capsys.readouterr().err


def test_record_trajectory_is_reproducible_and_leaves_the_global_rng_alone():
    from analysis.trajectory import record_trajectory

    arch = tiny_arch(noise_scale=0.05)
    model = build_model(arch).model
    batch = {"inputs": torch.randint(0, 7, (2, 16), dtype=torch.int32),
             "labels": torch.randint(0, 7, (2, 16), dtype=torch.int32)}
    states = torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
    traj = record_trajectory(model, batch, Draw(segments=3, seed=5))
    assert torch.equal(torch.get_rng_state(), states[0]) and (np.random.get_state()[1] == states[1]).all()
    assert random.getstate() == states[2]
    again = record_trajectory(model, batch, Draw(segments=3, seed=5))
    assert traj.preds.shape == (3, 16) and traj.residuals.shape == (3,)
    np.testing.assert_array_equal(traj.preds, again.preds)
    np.testing.assert_array_equal(traj.residuals, again.residuals)
    assert (traj.residuals > 0).all()


def test_the_drawn_trajectory_is_the_one_evaluate_scores(tmp_path):
    """Puzzle 3 of 4 (second batch of two puzzles, so not slot 0), restart 1 of 2, seed 7: the prediction at
    segments 2 and 4 (the last) equals what evaluate.py saved for it at depth 2 and 4; another restart or seed
    draws another trajectory."""
    import evaluate

    data = tmp_path / "maze"
    build_maze_dataset(MazeBuildConfig(output_dir=data, grid_size=7, train_samples=4, test_samples=4,
                                       min_path_length=3, max_path_length=10, seed=0))
    arch = tiny_arch(seq_len=49, vocab_size=6, noise_scale=0.2, lambda_=0.5)
    torch.manual_seed(0)
    ckpt = tmp_path / "tiny.pth"
    torch.save({"model": build_model(arch).state_dict(), "config": {"arch": arch, "global_batch_size": 2}}, ckpt)
    saved = {}
    for depth in (2, 4):
        out = tmp_path / f"eval{depth}"
        assert evaluate.main([f"checkpoint={ckpt}", f"dataset_data_path={data}", f"depths={depth}",
                              "different_init=2", "seed=7", "save_outputs=[preds]", f"output_dir={out}",
                              "plots=false", "progress=false"]) == 0
        (path,) = out.rglob("*_outputs.pt")
        record = torch.load(path, weights_only=True)
        saved[depth] = record["preds"][(record["puzzle"] == 3) & (record["restart"] == 1)][0].numpy()

    draws = {}
    for key, (seed, restart) in {"same": (7, 1), "restart": (7, 0), "seed": (8, 1)}.items():
        traj, _ = visualize(ckpt, data, index=3, out=tmp_path / key,
                            draw=Draw(segments=4, seed=seed, different_init=2, restart=restart))
        draws[key] = traj.preds
    for depth, preds in saved.items():
        np.testing.assert_array_equal(draws["same"][depth - 1], preds, err_msg=f"depth {depth}")
    assert not np.array_equal(draws["same"], draws["restart"]) and not np.array_equal(draws["same"], draws["seed"])


def legend_below(ax) -> list[str]:
    """The axes' legend entries, after checking that the legend sits below the grid (it hides none of it)."""
    fig = ax.get_figure()
    fig.canvas.draw()
    legend = ax.get_legend()
    assert legend is not None
    assert legend.get_window_extent().y1 <= ax.get_window_extent().y0
    return [text.get_text() for text in legend.get_texts()]


def test_every_renderer_explains_its_colours_below_the_grid():
    labels = (SOLVED + 1).ravel()
    inputs = np.where(np.arange(81) % 3 == 0, labels, 1)
    fig, ax = plt.subplots()
    get_task("sudoku").draw_frame(ax, inputs, labels, np.roll(labels, 1), labels)
    assert legend_below(ax) == ["given digit", "predicted digit", "repeats in its row, column or box",
                                "changed since the previous segment", "differs from the solution"]
    plt.close(fig)

    S, G, W, O, P = maze.START, maze.GOAL, maze.WALL, maze.OPEN, maze.PATH
    inputs = np.array([S, O, W, W, O, W, W, G, W])
    fig, ax = plt.subplots()
    maze.draw_frame(ax, inputs, np.array([S, P, W, W, P, W, W, G, W]), np.array([S, P, P, W, O, W, W, G, W]), None)
    assert legend_below(ax) == ["wall", "open", "start", "goal", "predicted path",
                                "wrong cell (e.g. path off the solution)", "solution path cell not predicted"]
    plt.close(fig)

    fig, ax = plt.subplots()
    TOKENS.draw_frame(ax, np.arange(16) % 5, np.arange(16) % 5, np.arange(16) % 4, None)
    assert legend_below(ax) == ["differs from the label"]
    (bar,) = [other for other in fig.axes if other is not ax]  # the colour bar of the token ids, also below
    assert bar.get_window_extent().y1 <= ax.get_window_extent().y0
    assert [t.get_text() for t in bar.get_xticklabels()] == ["0", "1", "2", "3", "4"]
    plt.close(fig)


def test_frame_titles_say_segment_verdict_and_residual():
    labels = (SOLVED + 1).ravel()
    broken = labels.copy()
    broken[0] = broken[1]
    traj = Trajectory(inputs=np.where(np.arange(81) % 2 == 0, labels, 1), labels=labels,
                      preds=np.stack([broken, labels]), residuals=np.array([0.5, 0.00123]))
    titles = []
    for t in range(2):
        fig = draw_segment(traj, get_task("sudoku"), t, "sudoku test[7]")
        titles.append(fig.get_suptitle())
        plt.close(fig)
    assert titles == ["sudoku test[7]: segment 1 of 2\nwrong, breaks the rules, residual 0.5",
                      "sudoku test[7]: segment 2 of 2\ncorrect, residual 0.00123"]
    fig = draw_segment(traj, get_task("sudoku"), 1, "a puzzle with a name far too long for one line of title")
    fig.canvas.draw()
    head, tail = fig.get_suptitle().splitlines()
    assert head.startswith("...") and head.endswith("segment 2 of 2") and len(head) == TITLE_CHARS
    assert tail == "correct, residual 0.00123"
    drawn = fig.get_tightbbox()  # inches: nothing (title, grid, legend) reaches past the frame's edges
    assert drawn.x0 >= 0 and drawn.x1 <= FRAME_SIZE[0] and drawn.y0 >= 0 and drawn.y1 <= FRAME_SIZE[1]
    plt.close(fig)
