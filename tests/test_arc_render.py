"""dataset/arc/render.py: the ARC palette, text rows, visualize frames and the per-task PNG."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.image import imread  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from analysis.trajectory import FRAME_SIZE, Trajectory, draw_segment  # noqa: E402
from dataset.arc import render as arc_render  # noqa: E402
from dataset.arc.grid import EOS, encode  # noqa: E402
from dataset.tasks import Task  # noqa: E402
from utils.labels import IGNORE_LABEL_ID  # noqa: E402

GRID = np.array([[0, 1, 2], [3, 4, 5]], dtype=np.uint8)
WIDE = np.array([[0, 1, 2, 7], [3, 4, 5, 7], [1, 1, 1, 1]], dtype=np.uint8)


def as_label(grid: np.ndarray) -> np.ndarray:
    """A label row as training sees it: PAD scored as the ignore label."""
    tokens = encode(grid).astype(np.int64)
    return np.where(tokens == 0, IGNORE_LABEL_ID, tokens)


def test_palette_is_the_standard_arc_one():
    assert arc_render.PALETTE_HEX == ("#000000", "#0074D9", "#FF4136", "#2ECC40", "#FFDC00",
                                      "#AAAAAA", "#F012BE", "#FF851B", "#7FDBFF", "#870C25")
    assert np.array_equal(np.round(arc_render.PALETTE * 255).astype(int)[[0, 1, 5, 9]],
                          [[0, 0, 0], [0, 116, 217], [170, 170, 170], [135, 12, 37]])
    image = arc_render.grid_image(np.array([[0, 9], [5, 1]], dtype=np.uint8))
    assert image.shape == (2, 2, 3)
    assert np.array_equal(np.round(image * 255).astype(int), [[[0, 0, 0], [135, 12, 37]],
                                                             [[170, 170, 170], [0, 116, 217]]])
    assert arc_render.grid_image(np.zeros((0, 0), dtype=np.uint8)).shape == (0, 0, 3)
    with pytest.raises(ValueError, match="0..9"):
        arc_render.grid_image(np.array([[10]]))


def test_text_lines_give_the_grid_digits_and_say_what_else_is_there():
    assert arc_render.text_lines(encode(GRID)) == ["012", "345"]
    assert arc_render.text_lines(as_label(GRID)) == ["012", "345"]  # the ignore label reads as PAD
    assert arc_render.text_lines(encode(GRID, 2, 3)) == ["012", "345", "(at row 2, column 3 of the canvas)"]
    assert arc_render.text_lines(np.zeros(900, dtype=np.uint8)) == ["(crops to 0x0: the canvas is all PAD)"]

    junk = encode(GRID)
    junk[5 * 30 + 7] = 2 + 6  # a stray colour 6 below the grid
    assert arc_render.text_lines(junk) == [
        "012", "345", "(crops to 2x3; 1 token off the grid + EOS layout; canvas below)", "canvas (. PAD, # EOS):",
        "012#....", "345#....", "###.....", "........", "........", ".......6"]

    headless = encode(GRID)
    headless[0] = EOS  # TRM's crop sees no grid at all
    lines = arc_render.text_lines(headless)
    assert lines[0] == "(crops to 0x0; 11 tokens off the grid + EOS layout; canvas below)"
    assert lines[2:] == ["#12#", "345#", "###."]


def frame_axes(inputs: np.ndarray, labels: np.ndarray, pred: np.ndarray) -> tuple[plt.Figure, plt.Axes]:
    fig, ax = plt.subplots()
    arc_render.draw_frame(ax, inputs, labels, pred, None)
    return fig, ax


def crosses(ax: plt.Axes) -> set[tuple[int, int]]:
    """(row, column) of every crossed cell: the one scatter the frame adds."""
    (marks,) = [c for c in ax.collections if isinstance(c, PathCollection)]
    return {(int(r), int(c)) for c, r in marks.get_offsets()}


def outlines(ax: plt.Axes) -> dict[str, tuple[float, float]]:
    """Line style -> (height, width) of each outline rectangle."""
    return {str(p.get_linestyle()): (p.get_height(), p.get_width()) for p in ax.patches if isinstance(p, Rectangle)}


def test_frame_of_a_right_sized_prediction_crosses_exactly_the_differing_cells():
    pred = GRID.copy()
    pred[0, 2], pred[1, 0] = 9, 9
    fig, ax = frame_axes(encode(GRID), as_label(GRID), encode(pred))
    assert crosses(ax) == {(0, 2), (1, 0)}
    assert ax.get_legend().get_title().get_text() == "2x3 as expected, 2 cells differ"
    assert outlines(ax) == {"solid": (2, 3)}
    image = ax.images[0].get_array()
    assert image.shape == (4, 4, 3)  # the grid with its EOS row and column
    assert np.allclose(image[0, 2], arc_render.PALETTE[9]) and np.allclose(image[1, 1], arc_render.PALETTE[4])
    assert np.allclose(image[2, 0], arc_render.EOS_RGB) and np.allclose(image[0, 3], arc_render.EOS_RGB)
    assert np.allclose(image[3, 3], arc_render.PAD_RGB) and np.allclose(image[2, 3], arc_render.PAD_RGB)
    plt.close(fig)


def test_frame_of_a_wrong_sized_prediction_shows_both_sizes_and_its_whole_canvas():
    fig, ax = frame_axes(encode(GRID), as_label(GRID), encode(WIDE))
    assert crosses(ax) == set()
    assert ax.get_legend().get_title().get_text() == "predicted 3x4, expected 2x3"
    assert outlines(ax) == {"solid": (3, 4), "dashed": (2, 3)}
    image = ax.images[0].get_array()
    assert image.shape == (5, 5, 3)
    assert np.allclose(image[2, 3], arc_render.PALETTE[1]) and np.allclose(image[3, 0], arc_render.EOS_RGB)
    plt.close(fig)

    stray = encode(GRID)
    stray[10 * 30 + 20] = 2 + 3  # junk far beyond the grid still comes into view
    fig, ax = frame_axes(encode(GRID), as_label(GRID), stray)
    image = ax.images[0].get_array()
    assert image.shape == (21, 21, 3) and np.allclose(image[10, 20], arc_render.PALETTE[3])
    assert crosses(ax) == set() and outlines(ax) == {"solid": (2, 3)}  # the crop is still right
    plt.close(fig)


def test_frame_of_an_empty_prediction_outlines_only_the_expected_grid():
    fig, ax = frame_axes(encode(GRID), as_label(GRID), np.zeros(900, dtype=np.uint8))
    assert crosses(ax) == set()
    assert ax.get_legend().get_title().get_text() == "predicted 0x0, expected 2x3"
    assert outlines(ax) == {"dashed": (2, 3)}
    assert np.allclose(ax.images[0].get_array(), 1.0)  # all PAD, white
    plt.close(fig)


def test_arc_frames_fit_the_visualize_layout():
    task = Task(name="arc", vocab_size=12, text_lines=arc_render.text_lines, draw_frame=arc_render.draw_frame)
    traj = Trajectory(inputs=encode(GRID), labels=as_label(GRID), preds=np.stack([encode(WIDE), encode(GRID)]),
                      residuals=np.array([0.5, 0.01]))
    fig = draw_segment(traj, task, 0, "arc test[0]")
    fig.canvas.draw()
    ax, given, expected = fig.axes  # the prediction; the input and the expected grid beside it
    assert (given.get_title(), expected.get_title()) == (f"input {GRID.shape[0]}x{GRID.shape[1]}",
                                                         f"expected {GRID.shape[0]}x{GRID.shape[1]}")
    for panel in (given, expected):
        assert np.allclose(panel.images[0].get_array(), arc_render.grid_image(GRID))
        assert panel.get_window_extent().x0 >= ax.get_window_extent().x1  # right of the prediction
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == [
        "PAD", "EOS", "differs from the label", "predicted grid (crop)", "expected grid, where sizes differ"]
    assert legend.get_window_extent().y1 <= ax.get_window_extent().y0  # below the grid
    drawn = fig.get_tightbbox()  # inches: title, grid and legend all inside the frame
    assert drawn.x0 >= 0 and drawn.x1 <= FRAME_SIZE[0] and drawn.y0 >= 0 and drawn.y1 <= FRAME_SIZE[1]
    plt.close(fig)


def task_pairs() -> list[arc_render.Triple]:
    rng = np.random.default_rng(0)
    first_input = (np.arange(20).reshape(4, 5) % 10).astype(np.uint8)
    expected = rng.integers(0, 10, (5, 4)).astype(np.uint8)
    wrong = expected.copy()
    wrong[1, 2] = (wrong[1, 2] + 1) % 10
    return [(first_input, wrong, expected), (GRID, None, GRID), (GRID, np.zeros((0, 0), np.uint8), GRID),
            (GRID, GRID.copy(), GRID)]


def cell_pixel(fig, ax, png: np.ndarray, row: int, col: int) -> np.ndarray:
    """RGB of the PNG pixel at the centre of cell (row, col) of a panel (display y runs up, PNG rows down)."""
    x, y = ax.transData.transform((col, row))
    return png[int(fig.bbox.height - y), int(x), :3]


def test_task_png_shows_each_cell_in_its_palette_colour(tmp_path):
    pairs = task_pairs()
    path = arc_render.draw_task(tmp_path / "plots" / "task.png", "task 0a1b2c3d", pairs)
    assert path == tmp_path / "plots" / "task.png"
    assert [p.name for p in path.parent.iterdir()] == ["task.png"]  # no temporary file left behind
    png = imread(path)
    fig = arc_render.task_figure("task 0a1b2c3d", pairs)  # the same layout, to find the cells
    FigureCanvasAgg(fig).draw()
    assert png.shape[:2] == (round(fig.bbox.height), round(fig.bbox.width))
    first_input, wrong, expected = pairs[0]
    panels = fig.axes
    for ax, grid in ((panels[0], first_input), (panels[2], expected), (panels[9], GRID)):
        for (r, c), colour in np.ndenumerate(grid):
            assert np.allclose(cell_pixel(fig, ax, png, r, c), arc_render.PALETTE[colour], atol=1.5 / 255), (r, c)
    assert np.allclose(cell_pixel(fig, panels[1], png, 0, 0), arc_render.PALETTE[wrong[0, 0]], atol=1.5 / 255)
    crossed = cell_pixel(fig, panels[1], png, 1, 2)  # the one wrong cell carries the white cross
    assert not np.allclose(crossed, arc_render.PALETTE[wrong[1, 2]], atol=0.1)


def test_task_figure_titles_say_correct_wrong_and_what_is_missing():
    fig = arc_render.task_figure("task", task_pairs())
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:3] == ["test 1 input 4x5", "prediction 5x4: wrong", "expected 5x4"]
    assert titles[4] == "prediction: wrong" and titles[7] == "prediction 0x0: wrong"
    assert titles[10] == "prediction 2x3: correct"
    assert [t.get_text() for t in fig.axes[4].texts] == ["no prediction"]
    assert [t.get_text() for t in fig.axes[7].texts] == ["empty grid (0x0)"]
    (marks,) = [c for c in fig.axes[1].collections if isinstance(c, PathCollection)]
    assert [tuple(p) for p in marks.get_offsets()] == [(2, 1)]  # (column, row) of the wrong cell
    assert arc_render.prediction_mark(GRID, None) == ""
    with pytest.raises(ValueError, match="no test inputs"):
        arc_render.task_figure("task", [])
