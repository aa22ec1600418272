"""Point labels that do not overlap: each takes the nearest spot that hides nothing, on rings around its point.

Placement works in display coordinates, so it holds on any scale (log axes included). Call it once the data,
the limits and the layout are final: a later change of the axes' size moves the points but not the offsets,
which are in points. matplotlib is never imported here; the caller brings the axes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.text import Annotation

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in display pixels
Segment = tuple[tuple[float, float], tuple[float, float]]  # a piece of a plotted line, in display pixels

# Unit directions in the order tried, each with the alignment that puts the label's near edge at the offset.
_DIRECTIONS = (((1, 0), "left", "center"), ((-1, 0), "right", "center"), ((0, 1), "center", "bottom"),
               ((0, -1), "center", "top"), ((1, 1), "left", "bottom"), ((-1, 1), "right", "bottom"),
               ((1, -1), "left", "top"), ((-1, -1), "right", "top"))
_PAD_PT = 1.0  # clearance kept between a label and anything it avoids
_HIDDEN, _RING, _LINE = 1e6, 12.0, 3.0  # cost of a pixel of a covered box, of a ring outward, of a line pixel


@dataclass(frozen=True)
class Candidate:
    """One place a label may go: its offset from the point (in points), its alignment, and its ring."""

    dx: float
    dy: float
    ha: str
    va: str
    ring: int


def candidate_offsets(gap: float = 5.5, step: float = 8.0, rings: int = 8) -> list[Candidate]:
    """Nearest first: right, left, above, below and the diagonals at `gap` points, then `step` farther per ring."""
    if rings < 1:
        raise ValueError(f"rings: {rings}, must be >= 1")
    out = []
    for ring in range(rings):
        dist = gap + ring * step
        for (ux, uy), ha, va in _DIRECTIONS:
            scale = 0.75 * dist if ux and uy else dist  # a diagonal's corner sits about as far as a side's edge
            out.append(Candidate(ux * scale, uy * scale, ha, va, ring))
    return out


def _overlap(a: Box, b: Box) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    return width * height if width > 0 and height > 0 else 0.0


def _crossing(box: Box, segment: Segment) -> float:
    """Length of the segment inside the box (Liang-Barsky clipping)."""
    (x0, y0), (x1, y1) = segment
    dx, dy = x1 - x0, y1 - y0
    t0, t1 = 0.0, 1.0
    for p, q in ((-dx, x0 - box[0]), (dx, box[2] - x0), (-dy, y0 - box[1]), (dy, box[3] - y0)):
        if p == 0 and q < 0:
            return 0.0
        if p < 0:
            t0 = max(t0, q / p)
        elif p > 0:
            t1 = min(t1, q / p)
    return max(t1 - t0, 0.0) * math.hypot(dx, dy)


def _near(segment: Segment, lines: list[Segment], samples: int = 8, within: float = 2.0) -> float:
    """Pixels of `segment` (sampled) that run within `within` pixels of a plotted line: a leader drawn on a line."""
    (x0, y0), (x1, y1) = segment
    spacing = math.hypot(x1 - x0, y1 - y0) / samples
    out = 0.0
    for k in range(1, samples + 1):
        px, py = x0 + (x1 - x0) * k / samples, y0 + (y1 - y0) * k / samples
        if any(_distance((px, py), line) < within for line in lines):
            out += spacing
    return out


def _distance(point: tuple[float, float], segment: Segment) -> float:
    (x0, y0), (x1, y1) = segment
    dx, dy = x1 - x0, y1 - y0
    t = ((point[0] - x0) * dx + (point[1] - y0) * dy) / (dx * dx + dy * dy) if dx or dy else 0.0
    t = min(max(t, 0.0), 1.0)
    return math.hypot(point[0] - x0 - t * dx, point[1] - y0 - t * dy)


def _padded(box: Any, pad: float) -> Box:
    return box.x0 - pad, box.y0 - pad, box.x1 + pad, box.y1 + pad


@dataclass
class _Scene:
    """What labels keep clear of, in display pixels: boxes (markers first, then texts), line pieces, the frame.

    A spot's cost is, heaviest first: covering a box or leaving the axes (never taken while a clear spot
    exists), then each ring outward, then each pixel of a line under the label or its leader.
    """

    boxes: list[Box]
    lines: list[Segment]
    frame: Box
    renderer: Any
    pad: float  # pixels kept clear around a label
    scale: float  # pixels per point

    def cost(self, box: Box, leader: Segment | None, own: int, ring: int) -> float:
        """`own` is the index of the label's own marker, which its leader starts in."""
        area = (box[2] - box[0]) * (box[3] - box[1])
        hidden = 10 * (area - _overlap(box, self.frame)) + sum(_overlap(box, other) for other in self.boxes)
        crossed = sum(_crossing(box, line) for line in self.lines)
        if leader is not None:
            hidden += sum(_crossing(other, leader) for i, other in enumerate(self.boxes) if i != own)
            crossed += _near(leader, self.lines)
        return _HIDDEN * hidden + _RING * ring + _LINE * crossed

    def leader(self, xy: Any, candidate: Candidate) -> Segment:
        return (xy[0], xy[1]), (xy[0] + candidate.dx * self.scale, xy[1] + candidate.dy * self.scale)

    def move(self, label: Annotation, candidate: Candidate) -> Box:
        label.xyann = (candidate.dx, candidate.dy)
        label.set_horizontalalignment(candidate.ha)
        label.set_verticalalignment(candidate.va)
        return _padded(label.get_window_extent(self.renderer), self.pad)

    def settle(self, label: Annotation, xy: Any, own: int, candidates: list[Candidate]) -> tuple[Candidate, Box]:
        """Move `label` to its cheapest candidate (the first on ties); return it and the label's box."""
        tried, lowest = [], math.inf
        for candidate in candidates:
            if lowest <= _RING * candidate.ring:
                break  # nothing farther out can be cheaper
            box = self.move(label, candidate)
            cost = self.cost(box, self.leader(xy, candidate) if candidate.ring else None, own, candidate.ring)
            tried.append((cost, candidate, box))
            lowest = min(lowest, cost)
        _, candidate, box = min(tried, key=lambda t: t[0])
        self.move(label, candidate)
        return candidate, box


def _obstacles(ax: Axes, markers: list[Any], half: float, renderer: Any, pad: float) -> list[Box]:
    """What a label must not cover: the markers, the texts already on the axes, its legend."""
    drawn = [t for t in ax.texts if t.get_text() and t.get_visible()]
    if ax.get_legend() is not None:
        drawn.append(ax.get_legend())
    return ([(x - half, y - half, x + half, y + half) for x, y in markers]
            + [_padded(artist.get_window_extent(renderer), pad) for artist in drawn])


def _segments(ax: Axes) -> list[Segment]:
    """The pieces of every visible line plotted on the axes, in display pixels."""
    out = []
    for line in ax.lines:
        if line.get_visible() and line.get_linestyle() not in ("None", "none", "", " "):
            xy = line.get_transform().transform(line.get_xydata())
            out += [(tuple(a), tuple(b)) for a, b in zip(xy[:-1], xy[1:], strict=True)
                    if all(math.isfinite(v) for v in (*a, *b))]
    return out


def place_labels(ax: Axes, points: Sequence[tuple[float, float]], texts: Sequence[str], *,
                 avoid: Sequence[tuple[float, float]] = (), marker_size: float = 6.0, step: float = 8.0,
                 rings: int = 8, **text_kwargs: Any) -> list[Annotation]:
    """Annotate each point (data coordinates) with its text where it hides nothing, greedily in the given order.

    A label goes to the nearest of `candidate_offsets` whose box stays inside the axes and clear of the texts
    already there (labels of this call or earlier ones), of the legend, and of the marker (a square of
    `marker_size` points) of every point and of every point in `avoid`; with no such spot it takes the one
    that overlaps least. Among clear spots, one ring farther out is worth 4 pixels of a plotted line (or of
    an earlier leader) under the label. A label beyond the first ring gets a thin leader line to its point (a
    separate, textless annotation). Points outside the view (e.g. non-positive on a log axis) get no label,
    so the result holds one annotation per shown point, in order. `text_kwargs` go to `ax.annotate`
    (fontsize, color, ...); the alignment is the placer's.
    """
    if len(points) != len(texts):
        raise ValueError(f"{len(points)} points but {len(texts)} texts")
    fig = ax.get_figure(root=True)
    fig.canvas.draw()  # final limits and transforms before anything is measured
    renderer = fig.canvas.get_renderer()
    scale = fig.dpi / 72  # pixels per point
    pad = _PAD_PT * scale
    shown = [(p, t, ax.transData.transform(p)) for p, t in zip(points, texts, strict=True)]
    shown = [(p, t, xy) for p, t, xy in shown if ax.bbox.contains(*xy)]
    markers = [xy for _, _, xy in shown] + [ax.transData.transform(p) for p in avoid]
    scene = _Scene(_obstacles(ax, markers, marker_size / 2 * scale, renderer, pad), _segments(ax),
                   _padded(ax.bbox, -pad), renderer, pad, scale)
    candidates = candidate_offsets(gap=0.75 * marker_size + 1, step=step, rings=rings)
    labels = []
    for own, (point, text, xy) in enumerate(shown):
        label = ax.annotate(text, point, xytext=(0, 0), textcoords="offset points", **text_kwargs)
        label.set_in_layout(False)  # it stays inside the axes; a layout pass must not make room for it
        candidate, box = scene.settle(label, xy, own, candidates)
        scene.boxes.append(box)
        labels.append(label)
        if candidate.ring > 0:
            scene.lines.append(scene.leader(xy, candidate))  # later labels keep off it too
            leader = ax.annotate("", point, xytext=(candidate.dx, candidate.dy), textcoords="offset points",
                                 arrowprops={"arrowstyle": "-", "lw": 0.5, "color": label.get_color(),
                                             "shrinkA": 0, "shrinkB": marker_size / 2 + 1})
            leader.set_in_layout(False)
    return labels
