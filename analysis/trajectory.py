"""One puzzle's trajectory across segments, rendered as PNG frames, a GIF and a residual curve.

The trajectory is the one `evaluate.py` scores for that puzzle with the same seed, depth, breadth and
restart: the evaluation engine runs it, from that trajectory's own random stream (initial state and
noise keyed by seed, puzzle index and restart; evaluation/randomness.py), so the global RNG is never
touched and the final frame's prediction is the one evaluate.py counts.

The dataset's task draws each frame (dataset/tasks.py), with a legend below the grid naming its
colours and marks: Sudoku frames show the predicted digits, shade the cells that changed since the
previous segment and mark digits that break a rule or differ from the solution; maze frames show
walls, start, goal and the predicted path, with wrong and missed cells marked. A frame's title says
whether the prediction is correct, breaks the task's rules, or is a valid wrong answer. Every frame
has the same pixel size and layout, so the GIF's frames line up and each replaces the last whole.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from PIL import Image  # noqa: E402

from dataset.format import load_metadata, load_set  # noqa: E402
from dataset.tasks import Task, task_of  # noqa: E402
from evaluation import option_default, restart_argument, run_evaluation  # noqa: E402
from evaluation.plan import Breadth, EvalPlan, Outputs, Runtime  # noqa: E402
from models.act import ACTModel  # noqa: E402
from models.loading import data_fields, model_for_dataset  # noqa: E402
from models.runtime import prepare_runtime  # noqa: E402
from utils.checkpoint import read_checkpoint  # noqa: E402
from utils.labels import IGNORE_LABEL_ID  # noqa: E402
from utils.validation import ConfigError  # noqa: E402


@dataclass
class Trajectory:
    inputs: np.ndarray  # [S]
    labels: np.ndarray  # [S], -100 where not scored
    preds: np.ndarray  # [T, S], argmax after each segment
    residuals: np.ndarray  # [T], ||state_t - state_{t-1}|| over z_H and z_L


@dataclass(frozen=True)
class Draw:
    """Which of evaluate.py's trajectories to record, in its option names (defaults: its defaults)."""

    segments: int = 16  # depth D (evaluate's depths / halt_max_steps)
    seed: int = option_default("seed")
    different_init: int = 1  # breadth B of the evaluation: with B > 1 restarts draw their own initial state
    restart: int = 0  # which of the B restarts
    different_init_reset_std: float = option_default("different_init_reset_std")
    restart_std: str = option_default("restart_std")  # model: EqR's own init stds; reset_std: the std above

    def check(self) -> None:
        if self.segments < 1:
            raise ConfigError("--segments: must be >= 1")
        if not 0 <= self.restart < self.different_init:
            raise ConfigError(f"--restart: {self.restart} is outside 0..{self.different_init - 1} "
                              f"(--different-init {self.different_init})")


def record_trajectory(act_model: ACTModel, batch: dict[str, torch.Tensor], draw: Draw = Draw(),
                      puzzle: int = 0) -> Trajectory:
    """Run the first row of `batch` as puzzle `puzzle` of its split (its index there), one snapshot per segment.

    Batches of padding rows stand before it (never run, as evaluation runs no padding row) so the engine
    numbers it `puzzle` and draws that trajectory's random numbers."""
    draw.check()
    row = {k: v[:1] for k, v in batch.items()}
    batches = itertools.chain(itertools.repeat((row, 0), puzzle), [(row, 1)])
    depths = list(range(1, draw.segments + 1))
    restart_std = restart_argument(draw.restart_std, draw.different_init_reset_std)
    plan = EvalPlan(depths, breadth=Breadth(restarts=draw.different_init, restart_std=restart_std),
                    outputs=Outputs(per_trajectory=True, save=("preds",)),
                    runtime=Runtime(seed=draw.seed, progress=False))
    result = run_evaluation(act_model.eval(), batches, plan)
    preds, residuals = [], []
    for depth in depths:
        outputs, records = result.outputs[depth], result.per_trajectory[depth]
        if draw.restart not in records["restart"]:
            raise ConfigError(f"puzzle {puzzle}: no scored label, so evaluation records no trajectory for it")
        preds.append(outputs["preds"][outputs["restart"] == draw.restart][0].numpy())
        residuals.append(records["final_residual"][records["restart"].index(draw.restart)])
    return Trajectory(inputs=row["inputs"][0].cpu().numpy(), labels=row["labels"][0].cpu().numpy(),
                      preds=np.stack(preds), residuals=np.array(residuals, dtype=np.float64))


def verdict(traj: Trajectory, t: int, task: Task) -> str:
    scored = traj.labels != IGNORE_LABEL_ID
    if bool((traj.preds[t][scored] == traj.labels[scored]).all()):
        return "correct"
    if task.follows_rules is not None and not task.follows_rules(traj.inputs[None], traj.preds[t][None])[0]:
        return "wrong, breaks the rules"
    return "wrong"


# One fixed frame (inches at FRAME_DPI): a band for a title of up to two lines, the grid, room for the legend.
FRAME_SIZE, FRAME_DPI = (5.0, 6.5), 80
TITLE_BAND, LEGEND_BAND = 0.7, 1.15
TITLE_CHARS = 56  # what fits on one title line


def _titled(puzzle: str, what: str) -> str:
    """One title line, shortened to fit: "sudoku test[3]: segment 2 of 16"."""
    line = f"{puzzle}: {what}" if puzzle else what
    return line if len(line) <= TITLE_CHARS else f"...{line[3 - TITLE_CHARS:]}"  # the segment stays readable


def frame_title(puzzle: str, t: int, segments: int, verdict_text: str, residual: float) -> str:
    """Two lines: which puzzle and segment, then the verdict and the residual."""
    return f"{_titled(puzzle, f'segment {t + 1} of {segments}')}\n{verdict_text}, residual {residual:.3g}"


def draw_segment(traj: Trajectory, task: Task, t: int, puzzle: str = "") -> plt.Figure:
    """Segment t's frame: the same pixel size and grid position for every segment."""
    height = FRAME_SIZE[1]
    fig = plt.figure(figsize=FRAME_SIZE, dpi=FRAME_DPI)
    ax = fig.add_axes((0.04, LEGEND_BAND / height, 0.92, 1 - (TITLE_BAND + LEGEND_BAND) / height))
    ax.set_anchor("N")  # a grid narrower than tall (or a row of tokens) sits under the title, its legend below it
    task.draw_frame(ax, traj.inputs, traj.labels, traj.preds[t], traj.preds[t - 1] if t else None)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.suptitle(frame_title(puzzle, t, len(traj.preds), verdict(traj, t, task), traj.residuals[t]),
                 y=1 - 0.1 / height, va="top", fontsize=11)
    return fig


def render(traj: Trajectory, task: Task, out_dir: Path, title: str = "") -> dict[str, Path]:
    """Write `frame_XXX.png` per segment, `trajectory.gif` and `residuals.png` into `out_dir`.

    `title` names the puzzle (e.g. "test[3]"), after the task. The GIF's frames are whole images, each replacing
    the one before.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    puzzle = f"{task.name} {title.strip()}".strip()
    frames = []
    for t in range(len(traj.preds)):
        fig = draw_segment(traj, task, t, puzzle)
        path = out_dir / f"frame_{t + 1:03d}.png"
        fig.savefig(path, dpi=FRAME_DPI)
        plt.close(fig)
        frames.append(path)
    gif = out_dir / "trajectory.gif"
    images = [Image.open(p).convert("RGB") for p in frames]  # full frames, each cleared before the next (disposal 2)
    images[0].save(gif, save_all=True, append_images=images[1:], duration=600, loop=0, disposal=2, optimize=False)

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.semilogy(np.arange(1, len(traj.residuals) + 1), np.maximum(traj.residuals, 1e-12), marker="o")
    ax.set_xlabel("segment")
    ax.set_ylabel("||state_t - state_(t-1)||")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(_titled(puzzle, "latent residual per segment"))
    curve = out_dir / "residuals.png"
    fig.savefig(curve, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return {"frames": out_dir, "gif": gif, "residuals": curve}


def load_example(data_dir: Path, split: str, index: int) -> tuple[dict[str, torch.Tensor], Task, dict[str, int]]:
    """One example of a dataset as a batch of one, its task, and the data fields a model needs."""
    split_dir = data_dir / split
    meta = load_metadata(split_dir)
    arrays = load_set(split_dir, "all", meta)
    if not 0 <= index < len(arrays.inputs):
        raise ConfigError(f"--index: {index} is outside 0..{len(arrays.inputs) - 1} ({split_dir})")
    labels = np.asarray(arrays.labels[index]).astype(np.int32)
    labels = np.where(labels == meta.ignore_label_id, IGNORE_LABEL_ID, labels)
    puzzle = int(np.searchsorted(arrays.puzzle_indices, index, side="right") - 1)
    batch = {
        "inputs": torch.from_numpy(np.asarray(arrays.inputs[index]).astype(np.int32))[None],
        "labels": torch.from_numpy(labels)[None],
        "puzzle_identifiers": torch.tensor([int(arrays.puzzle_identifiers[puzzle])], dtype=torch.int32),
    }
    return batch, task_of(meta, data_dir), data_fields(meta)


def visualize(checkpoint: Path, data_dir: Path, split: str = "test", index: int = 0, draw: Draw = Draw(),
              use_ema: bool = True, out: Path | None = None) -> tuple[Trajectory, dict[str, Path]]:
    """Record one example's trajectory under a checkpoint and render it (default: next to the checkpoint)."""
    draw.check()
    batch, task, fields = load_example(data_dir, split, index)
    loaded = model_for_dataset(read_checkpoint(checkpoint), fields, use_ema=use_ema)
    runtime = prepare_runtime(loaded.act_model, torch.device("cpu"), compile=False, announce=False)  # eager, on CPU
    traj = record_trajectory(runtime.model, batch, draw, puzzle=index)
    out = out or checkpoint.parent / "visualize" / f"{split}_{index}"
    return traj, render(traj, task, out, title=f"{split}[{index}]")
