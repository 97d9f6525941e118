"""Accuracy against artifact bytes (with the Pareto front) and against sparsity (the PX
paper's Fig. 2 layout)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bench.reports.figures.captions import caption_text
from bench.reports.figures.kinds import DEFAULT_TITLES
from bench.reports.figures.layout import (
    accuracy_axis,
    bytes_axis,
    dense_reference,
    empty_panel,
    finish,
    new_figure,
    panel_title,
    panels_of,
)
from bench.reports.figures.placement import DODGE_NOTE, annotate, dodge, pareto_front, spread
from bench.reports.figures.resolution import accuracy_limits, shown_values
from bench.reports.figures.series import (
    cell_notes,
    draw_series,
    legend_label,
    seed_count,
    series_of,
    series_points,
    several_budgets,
)
from bench.reports.figures.style import line_styles, marker_edge
from bench.reports.labels import sparsity_text

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def figure_bytes(table: pd.DataFrame, *, title: str = DEFAULT_TITLES["bytes"],
                 extra: Sequence[str] = ()) -> Figure | None:
    """Accuracy vs artifact bytes per dataset/model, dense reference, named Pareto front."""
    from matplotlib.lines import Line2D

    if not (table["n"] > 0).any():
        return None
    panels = panels_of(table)
    fig, axes = new_figure(len(panels), 2, panel=(6.2, 4.6))
    entries: dict[str, Any] = {}
    multi_budget = several_budgets(table)
    dodged = False
    for ax, (setup, part) in zip(axes, panels):
        panel_title(ax, setup["title"], 5.4)
        if not (part["n"] > 0).any():
            empty_panel(ax, part)
            continue
        series = series_of(part)
        styles = line_styles([s.name for s in series])
        lines = [(i, s, *series_points(s, "artifact_bytes_mean"))
                 for i, s in enumerate(series) if not s.rows.empty]
        # the axes first (limits final), then where each marker goes, then the drawing
        bytes_axis(ax, [b for *_, x, _, _ in lines for b in x], "artifact file size")
        accuracy_axis(ax)
        accuracy_limits(ax, shown_values((y, err) for *_, y, err in lines), part, entries)
        drawn_x, moved = dodge(ax, [(x, y) for *_, x, y, _ in lines])
        dodged |= moved
        points: list[tuple[float, float, str]] = []  # exact bytes: the front's input
        drawn: list[tuple[float, float]] = []  # where the markers are
        notes: list[tuple[float, float, str]] = []
        for (i, s, rows, _, y, err), dx in zip(lines, drawn_x):
            handle = draw_series(ax, s, dx, y, err, styles[i])
            entries.setdefault(legend_label(s, multi_budget), handle)
            notes += cell_notes(dx, rows, seed_count(part))
            for d, b, a, at in zip(rows["density"], rows["artifact_bytes_mean"], y, dx):
                points.append((b, a, s.label if s.name == "dense" else f"{s.label} d={d:g}"))
                drawn.append((at, a))
        dense_reference(ax, series, entries, side="left")
        front = pareto_front([(b, a) for b, a, _ in points])
        members = sorted(((at, a, p[2]) for p, (at, a), on in zip(points, drawn, front) if on),
                         key=lambda p: p[0])
        if members:
            fx = [p[0] for p in members]
            fy = [p[1] for p in members]
            ax.step(fx, fy, where="post", color="#bbbbbb", linewidth=5, alpha=0.6,
                    zorder=2, solid_capstyle="round")
            ax.scatter(fx, fy, s=150, facecolors="none", edgecolors="#444444",
                       linewidths=1.0, zorder=4)
            entries.setdefault("Pareto front (members named)", Line2D(
                [], [], color="#bbbbbb", linewidth=5, alpha=0.6, marker="o",
                markerfacecolor="none", markeredgecolor="#444444", markersize=10))
            annotate(ax, members, spread([p[1] for p in points]), obstacles=drawn)
        annotate(ax, notes, 1.0, obstacles=drawn, colour="#aa0000", merge=False)
    caption = caption_text(table, extra=[
        "Pareto front: points no other point beats on both size and accuracy. "
        "x: size of the artifact file the accuracy was measured from.",
        *([DODGE_NOTE] if dodged else []), *extra])
    return finish(fig, title, caption, entries)


def sparsity_axis(ax: Any, densities: Sequence[float]) -> None:
    """The x axis of the sparsity figure: a tick at each sparsity run, log-spaced in
    density."""
    from matplotlib.ticker import NullLocator

    ticks = -np.log(np.array(densities))
    ax.set_xticks(ticks)
    ax.set_xticklabels([sparsity_text(d) for d in densities],
                       rotation=45 if len(densities) > 5 else 0)
    ax.xaxis.set_minor_locator(NullLocator())
    pad = 0.06 * (ticks.max() - ticks.min()) if len(ticks) > 1 else 0.3
    ax.set_xlim(ticks.min() - pad, ticks.max() + pad)
    ax.set_xlabel("sparsity (% of prunable weights removed; log-spaced in density)")


def figure_sparsity(table: pd.DataFrame, *, title: str = DEFAULT_TITLES["sparsity"],
                    extra: Sequence[str] = ()) -> Figure | None:
    """PX Fig. 2 layout: one panel per dataset/model, ticks at the sparsities run."""
    if not ((table["n"] > 0) & (table["density"] < 1)).any():
        return None
    panels = panels_of(table)
    fig, axes = new_figure(len(panels), 2, panel=(5.4, 4.0))
    entries: dict[str, Any] = {}
    multi_budget = several_budgets(table)
    dodged = False
    for ax, (setup, part) in zip(axes, panels):
        panel_title(ax, setup["title"], 5.4)
        if not ((part["n"] > 0) & (part["density"] < 1)).any():
            empty_panel(ax, part)
            continue
        series = series_of(part)
        styles = line_styles([s.name for s in series])
        densities = sorted({d for d in part["density"] if d < 1}, reverse=True)
        lines = []
        for i, s in enumerate(series):
            rows = s.all_rows[s.all_rows["density"] < 1]
            if not (rows["n"] > 0).any():
                continue
            # unfinished cells are gaps in the line, never interpolated over
            x = -np.log(rows["density"].to_numpy(float))
            y = rows["accuracy_mean"].to_numpy(float)
            err = np.nan_to_num(rows["accuracy_std"].to_numpy(float))
            lines.append((i, s, rows, x, y, err))
        sparsity_axis(ax, densities)
        accuracy_axis(ax)
        dense = [float(s.rows["accuracy_mean"].iloc[0]) for s in series
                 if s.name == "dense" and not s.rows.empty]
        accuracy_limits(ax, [*shown_values((y, err) for *_, y, err in lines), *dense], part,
                        entries)
        drawn_x, moved = dodge(ax, [(x, y) for *_, x, y, _ in lines])
        dodged |= moved
        notes: list[tuple[float, float, str]] = []
        drawn: list[tuple[float, float]] = []
        for (i, s, rows, _, y, err), x in zip(lines, drawn_x):
            (line,) = ax.plot(x, y, color=s.colour, marker=s.marker, linestyle=styles[i],
                              linewidth=1.5, markersize=6, zorder=3,
                              **marker_edge(s.marker, s.colour))
            ax.fill_between(x, y - err, y + err, color=s.colour, alpha=0.13, linewidth=0,
                            zorder=2)
            entries.setdefault(legend_label(s, multi_budget), line)
            notes += cell_notes(x, rows, seed_count(part))
            drawn += [(a, b) for a, b in zip(x, y) if np.isfinite(b)]
        dense_reference(ax, series, entries)
        annotate(ax, notes, 1.0, obstacles=drawn, colour="#aa0000", merge=False)
    caption = caption_text(table, seeds_word="shaded bands",
                           extra=[*([DODGE_NOTE] if dodged else []), *extra])
    return finish(fig, title, caption, entries)
