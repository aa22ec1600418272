"""evaluation/labels.py: labels of a crowded scatter neither overlap nor leave the axes; a sparse one stays put."""

from __future__ import annotations

import itertools

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from evaluation.labels import candidate_offsets, place_labels  # noqa: E402

# Three clusters, a column of points at one x, and two identical points.
CROWDED = [(2, 50), (2, 52), (2, 54), (2, 56), (2.2, 51), (2.2, 53), (16, 80), (16, 80), (17, 81), (18, 79),
           (64, 20), (70, 21)]


def label_boxes(fig, labels):
    renderer = fig.canvas.get_renderer()
    return [label.get_window_extent(renderer) for label in labels]


def assert_clear(ax, labels, points):
    """No two labels overlap, each lies inside the axes, none covers a point."""
    fig = ax.get_figure()
    fig.canvas.draw()
    boxes = label_boxes(fig, labels)
    for (i, a), (j, b) in itertools.combinations(enumerate(boxes), 2):
        assert not a.overlaps(b), f"{labels[i].get_text()!r} overlaps {labels[j].get_text()!r}"
    frame = ax.bbox
    for label, box in zip(labels, boxes, strict=True):
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1, \
            f"{label.get_text()!r} leaves the axes"
    for x, y in ax.transData.transform(points):
        assert not any(box.contains(x, y) for box in boxes), f"a label covers the point at {x:.0f}, {y:.0f}"


@pytest.mark.parametrize("log", [False, True])
def test_crowded_labels_neither_overlap_nor_leave_the_axes(log):
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.scatter(*zip(*CROWDED, strict=True), s=36)
    if log:
        ax.set_xscale("log", base=2)
    ax.legend(["points"], loc="lower left")
    texts = [f"label {i}" if i % 3 else f"a longer label {i}" for i in range(len(CROWDED))]
    labels = place_labels(ax, CROWDED, texts, fontsize=7)
    assert [label.get_text() for label in labels] == texts
    assert_clear(ax, labels, CROWDED)
    legend = ax.get_legend().get_window_extent()
    assert not any(box.overlaps(legend) for box in label_boxes(fig, labels))
    # The labels that had to move beyond the first ring, and only those, have a leader line to their point.
    near = {(c.dx, c.dy) for c in candidate_offsets(gap=0.75 * 6 + 1) if c.ring == 0}
    moved = [label.xy for label in labels if tuple(label.xyann) not in near]
    leaders = [text.xy for text in ax.texts if not text.get_text()]
    assert moved and sorted(leaders) == sorted(moved)
    plt.close(fig)


def test_sparse_labels_keep_the_nearest_offset():
    points = [(1, 1), (5, 5), (9, 2)]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.scatter(*zip(*points, strict=True))
    ax.set(xlim=(0, 12), ylim=(0, 7))
    labels = place_labels(ax, points, ["a", "b", "c"])
    first = candidate_offsets(gap=0.75 * 6 + 1)[0]
    assert all(tuple(label.xyann) == (first.dx, first.dy) for label in labels)
    assert all(label.get_horizontalalignment() == first.ha for label in labels)
    assert not [text for text in ax.texts if not text.get_text()]  # no leader lines
    assert_clear(ax, labels, points)
    plt.close(fig)


def test_points_outside_the_view_get_no_label():
    fig, ax = plt.subplots()
    ax.set_xscale("log")
    ax.set(xlim=(1, 100), ylim=(0, 1))
    labels = place_labels(ax, [(10, 0.5), (0, 0.5), (1000, 0.5)], ["shown", "non-positive", "beyond"])
    assert [label.get_text() for label in labels] == ["shown"]
    with pytest.raises(ValueError, match="2 points but 1 texts"):
        place_labels(ax, [(1, 1), (2, 2)], ["one"])
    plt.close(fig)
