"""Which points to name and where their labels go: the Pareto front, merged neighbours, and
labels placed where they cover the least."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def pareto_front(points: Sequence[tuple[float, float]]) -> list[bool]:
    """Which (bytes, accuracy) points no other point dominates.

    A point is dominated when another has fewer-or-equal bytes and higher-or-equal accuracy,
    one of them strictly.
    """
    out = []
    for i, (b, a) in enumerate(points):
        dominated = any(
            (b2 <= b and a2 >= a and (b2 < b or a2 > a))
            for j, (b2, a2) in enumerate(points) if j != i
        )
        out.append(not dominated)
    return out


def merge_close(points: Sequence[tuple[float, float, str]], *, x_log_tol: float = 0.02,
                y_tol: float = 0.15) -> list[tuple[float, float, str]]:
    """Points closer than the tolerances (log10 x, y) share one label, names joined.

    Names that differ only in their density are shortened: ``snip d=0.5, 0.2``.
    """
    groups: list[list[tuple[float, float, str]]] = []
    for p in sorted(points, key=lambda p: (p[0], p[1])):
        for g in groups:
            x, y, _ = g[0]
            if abs(math.log10(p[0] / x)) <= x_log_tol and abs(p[1] - y) <= y_tol:
                g.append(p)
                break
        else:
            groups.append([p])
    out = []
    for g in groups:
        by_base: dict[str, list[str]] = {}
        for _, _, name in g:
            base, sep, density = name.partition(" d=")
            by_base.setdefault(base, [])
            if sep and density not in by_base[base]:
                by_base[base].append(density)
        names = [base + (" d=" + ", ".join(ds) if ds else "") for base, ds in by_base.items()]
        out.append((g[0][0], g[0][1], "; ".join(names)))
    return out


def _overlap(a: Any, b: Any) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w * h if w > 0 and h > 0 else 0.0


def annotate(ax: Axes, points: Sequence[tuple[float, float, str]], y_span: float,
              obstacles: Sequence[tuple[float, float]] = (), colour: str = "#222222",
              merge: bool = True) -> None:
    """Name points (merged when close), each label where it covers the least; call last.

    Candidates run from near to far, above-left first: that keeps labels off a Pareto
    staircase (it runs right, then up into each member); points near the left edge prefer
    the right. A label must stay inside the axes and is placed at the first candidate that
    covers no other label, no data marker (``obstacles`` and the named points) and no text,
    else at the one that covers least. A thin leader line ties it to its point.
    """
    from matplotlib.transforms import Bbox

    merged = merge_close(points, y_tol=0.02 * max(y_span, 1e-9)) if merge else list(points)
    ax.get_xlim(), ax.get_ylim()  # settle autoscaling before placing text
    renderer = ax.figure.canvas.get_renderer()
    to_axes = ax.transAxes.inverted()
    frame = ax.get_window_extent(renderer)
    placed: list[Any] = [t.get_window_extent(renderer) for t in ax.texts]
    r = 5 * ax.figure.dpi / 72  # a marker's half size in pixels
    for px, py in [*obstacles, *((p[0], p[1]) for p in points)]:
        cx, cy = ax.transData.transform((px, py))
        placed.append(Bbox([[cx - r, cy - r], [cx + r, cy + r]]))
    for x, y, name in merged:
        fx, _ = to_axes.transform(ax.transData.transform((x, y)))
        sides = (1, -1) if fx < 0.35 else (-1, 1)
        candidates = [(side * dx, dy) for dy in (7, -15, 19, -27, 31, -39, 43, -51)
                      for dx in (6, 24) for side in sides]
        best: tuple[float, Any] | None = None
        for dx, dy in candidates:
            text = ax.annotate(name, (x, y), xytext=(dx, dy), textcoords="offset points",
                               fontsize=7, color=colour, ha="left" if dx > 0 else "right",
                               va="bottom", zorder=6,
                               arrowprops={"arrowstyle": "-", "color": "#777777", "lw": 0.5,
                                           "shrinkA": 0, "shrinkB": 4},
                               bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none",
                                     "alpha": 0.8})
            box = text.get_window_extent(renderer)
            inside = (box.x0 >= frame.x0 and box.x1 <= frame.x1 and box.y0 >= frame.y0
                      and box.y1 <= frame.y1)
            cost = sum(_overlap(box, other) for other in placed) + (0 if inside else 1e9)
            if best is None or cost < best[0]:
                if best is not None:
                    best[1].remove()
                best = (cost, text)
            else:
                text.remove()
            if cost == 0:
                break
        assert best is not None
        placed.append(best[1].get_window_extent(renderer))


def spread(values: Sequence[float]) -> float:
    """The range of the finite values (1 when fewer than two): how far apart labels are."""
    finite = [v for v in values if np.isfinite(v)]
    return (max(finite) - min(finite)) if len(finite) > 1 else 1.0


DODGE_NOTE = ("Coincident points are offset sideways so each stays visible; positions are "
              "exact in the tables (`bench report`).")
"""The caption's sentence for a figure in which :func:`dodge` moved a point."""


def dodge(ax: Axes, groups: Sequence[tuple[Sequence[float], Sequence[float]]],
          size_pt: float = 6.0) -> tuple[list[np.ndarray], bool]:
    """Coincident markers side by side: the x values to draw each group's points at, and
    whether any point moved.

    ``groups`` are the (x, y) data of the panel's series in drawing order; call it once the
    axes' limits are final. Points whose markers (``size_pt`` across) would overlap in both
    directions on screen form a cluster; its members are set one marker plus a gap apart,
    centred on the cluster, in the order of their x, then of their group (deterministic: the
    same data draws the same figure). A point that overlaps no other keeps its x.
    """
    ax.get_xlim(), ax.get_ylim()  # settle autoscaling
    step = (size_pt + 2.0) * ax.figure.dpi / 72  # pixels between dodged centres
    near = size_pt * ax.figure.dpi / 72  # markers closer than their size overlap
    points: list[tuple[int, int, float, float]] = []  # group, index, display x, y
    for g, (xs, ys) in enumerate(groups):
        for i, (x, y) in enumerate(zip(xs, ys)):
            if np.isfinite(x) and np.isfinite(y):
                dx, dy = ax.transData.transform((x, y))
                points.append((g, i, float(dx), float(dy)))
    parent = list(range(len(points)))

    def root(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for a in range(len(points)):
        for b in range(a + 1, len(points)):
            if (abs(points[a][2] - points[b][2]) < near
                    and abs(points[a][3] - points[b][3]) < near):
                parent[root(b)] = root(a)
    clusters: dict[int, list[int]] = {}
    for k in range(len(points)):
        clusters.setdefault(root(k), []).append(k)
    out = [np.array(xs, dtype=float) for xs, _ in groups]
    moved = False
    to_data = ax.transData.inverted()
    for members in clusters.values():
        if len(members) < 2:
            continue
        members.sort(key=lambda k: (round(points[k][2], 3), points[k][0], points[k][1]))
        centre = float(np.mean([points[k][2] for k in members]))
        for rank, k in enumerate(members):
            g, i, _, dy = points[k]
            shifted = centre + (rank - (len(members) - 1) / 2) * step
            out[g][i] = float(to_data.transform((shifted, dy))[0])
        moved = True
    return out, moved
