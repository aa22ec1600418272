"""One puzzle's trajectory across segments, rendered as PNG frames, a GIF and a residual curve.

Sudoku frames show the predicted digits, highlight the cells that changed since the previous
segment and mark digits that break a row, column or box rule; maze frames show walls, start,
goal and the predicted path, with wrong cells crossed out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from dataset.maze import CHARSET  # noqa: E402
from models.act import ACTModel  # noqa: E402
from models.losses import IGNORE_LABEL_ID  # noqa: E402


@dataclass
class Trajectory:
    inputs: np.ndarray  # [S]
    labels: np.ndarray  # [S], -100 where not scored
    preds: np.ndarray  # [T, S], argmax after each segment
    residuals: np.ndarray  # [T], ||state_t - state_{t-1}|| over z_H and z_L


@torch.no_grad()
def record_trajectory(act_model: ACTModel, batch: dict[str, torch.Tensor], segments: int, seed: int = 0) -> Trajectory:
    """Run the first row of `batch` for `segments` segments from a fresh (random for EqR) state."""
    act_model.eval()
    torch.manual_seed(seed)
    row = {k: v[:1] for k, v in batch.items()}
    carry = act_model.initial_carry(row)
    z_H, z_L = act_model.inner.reset(carry.halted, carry.z_H, carry.z_L)
    preds, residuals = [], []
    for _ in range(segments):
        new_H, new_L, logits, _, _ = act_model.inner(z_H, z_L, row)
        change = torch.cat(((new_H - z_H).flatten(), (new_L - z_L).flatten())).float()
        residuals.append(torch.linalg.vector_norm(change).item())
        preds.append(logits.argmax(-1)[0].cpu().numpy())
        z_H, z_L = new_H, new_L
    return Trajectory(inputs=row["inputs"][0].cpu().numpy(), labels=row["labels"][0].cpu().numpy(),
                      preds=np.stack(preds), residuals=np.array(residuals))


def sudoku_violations(grid: np.ndarray) -> np.ndarray:
    """[9, 9] bool: the digit occurs twice in its row, column or 3x3 box (0 = empty, never a violation)."""
    bad = np.zeros((9, 9), dtype=bool)
    for r in range(9):
        for c in range(9):
            d = grid[r, c]
            if d == 0:
                continue
            br, bc = 3 * (r // 3), 3 * (c // 3)
            box = grid[br:br + 3, bc:bc + 3]
            bad[r, c] = (grid[r] == d).sum() > 1 or (grid[:, c] == d).sum() > 1 or (box == d).sum() > 1
    return bad


def _draw_sudoku(ax: plt.Axes, traj: Trajectory, t: int) -> None:
    digits = lambda tokens: np.clip(tokens.astype(int) - 1, 0, 9).reshape(9, 9)  # noqa: E731  (1 = blank -> 0)
    given = digits(traj.inputs)
    pred = digits(traj.preds[t])
    changed = t > 0 and pred != digits(traj.preds[t - 1])
    bad = sudoku_violations(pred)
    ax.imshow(np.where(changed, 1.0, 0.0) if t > 0 else np.zeros((9, 9)), cmap="YlOrBr", vmin=0, vmax=2.5)
    for r in range(9):
        for c in range(9):
            if given[r, c]:
                ax.text(c, r, str(given[r, c]), ha="center", va="center", fontsize=12, weight="bold")
            elif pred[r, c]:
                ax.text(c, r, str(pred[r, c]), ha="center", va="center", fontsize=12,
                        color="red" if bad[r, c] else "tab:blue")
    for k in range(10):
        width = 2.0 if k % 3 == 0 else 0.5
        ax.axhline(k - 0.5, color="black", lw=width)
        ax.axvline(k - 0.5, color="black", lw=width)


def _draw_maze(ax: plt.Axes, traj: Trajectory, t: int) -> None:
    side = math.isqrt(len(traj.inputs))
    colour = {"#": (0.2, 0.2, 0.2), " ": (1, 1, 1), "S": (0.2, 0.7, 0.2), "G": (0.85, 0.2, 0.2), "o": (0.3, 0.5, 1)}
    image = np.ones((len(traj.inputs), 3))
    for token, char in enumerate(CHARSET, start=1):
        image[traj.inputs == token] = colour[char]
    image[(traj.preds[t] == 1 + CHARSET.index("o")) & (traj.inputs == 1 + CHARSET.index(" "))] = colour["o"]
    ax.imshow(image.reshape(side, side, 3))
    wrong = (traj.preds[t] != traj.labels) & (traj.labels != IGNORE_LABEL_ID)
    rows, cols = np.divmod(np.flatnonzero(wrong), side)
    ax.scatter(cols, rows, marker="x", color="orange", s=30)


def render(traj: Trajectory, kind: str, out_dir: Path, title: str = "") -> dict[str, Path]:
    """Write `frame_XXX.png` per segment, `trajectory.gif` and `residuals.png` into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    draw = _draw_sudoku if kind == "sudoku" else _draw_maze
    scored = traj.labels != IGNORE_LABEL_ID
    frames = []
    for t in range(len(traj.preds)):
        fig, ax = plt.subplots(figsize=(5, 5.4))
        draw(ax, traj, t)
        correct = bool((traj.preds[t][scored] == traj.labels[scored]).all())
        ax.set_title(f"{title}segment {t + 1}: {'correct' if correct else 'wrong'}, residual {traj.residuals[t]:.3g}")
        ax.set_xticks([])
        ax.set_yticks([])
        path = out_dir / f"frame_{t + 1:03d}.png"
        fig.savefig(path, dpi=80, bbox_inches="tight")
        plt.close(fig)
        frames.append(path)
    images = [Image.open(p).convert("RGB") for p in frames]
    gif = out_dir / "trajectory.gif"
    images[0].save(gif, save_all=True, append_images=images[1:], duration=600, loop=0)

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.semilogy(np.arange(1, len(traj.residuals) + 1), np.maximum(traj.residuals, 1e-12), marker="o")
    ax.set_xlabel("segment")
    ax.set_ylabel("||state_t - state_(t-1)||")
    ax.set_title(f"{title}latent residual")
    curve = out_dir / "residuals.png"
    fig.savefig(curve, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return {"frames": out_dir, "gif": gif, "residuals": curve}
