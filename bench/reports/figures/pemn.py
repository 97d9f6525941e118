"""PEMN's figures: its bars per architecture, and PEMN against the pruning baselines on
PEMN's byte count (every method alike) beside artifact bytes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

import bench.reports.paper_bytes as paper_bytes
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
from bench.reports.figures.placement import DODGE_NOTE, annotate, dodge, spread
from bench.reports.figures.resolution import accuracy_limits, shown_values
from bench.reports.figures.series import (
    Series,
    cell_notes,
    draw_series,
    legend_label,
    seed_count,
    series_of,
    series_points,
    several_budgets,
)
from bench.reports.figures.style import line_styles, marker_edge, method_style, soften
from bench.reports.labels import PEMN_FAMILY, pemn_name
from bench.reports.ordering import pemn_order

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def figure_pemn_bars(table: pd.DataFrame, *, title: str = DEFAULT_TITLES["pemn-bars"],
                     extra: Sequence[str] = ()) -> Figure | None:
    """Bars per architecture: dense, mask, one-layer, MP, RP 1e-1..1e-5, seed error bars."""
    bars = table[table["method_name"].isin(("dense", *PEMN_FAMILY))]
    panels = [(s, p) for s, p in panels_of(bars) if p["method_name"].isin(PEMN_FAMILY).any()]
    if not any((p["n"] > 0).any() for _, p in panels):
        return None
    fig, axes = new_figure(len(panels), 2, panel=(5.0, 3.8), sharey=True)
    entries: dict[str, Any] = {}
    top = float(np.nanmax((bars["accuracy_mean"] + bars["accuracy_std"].fillna(0)).to_numpy()))
    for ax, (setup, part) in zip(axes, panels):
        _bars_panel(ax, setup, part, entries, top)
    # the panels share one y range: the widest any panel's test set asks for
    highest = max(accuracy_limits(ax, [top], part, entries, floor=0.0,
                                  label=False)[1]
                  for ax, (_, part) in zip(axes, panels))
    for ax in axes:
        ax.set_ylim(0.0, highest)
    caption = caption_text(bars, extra=[
        "mask: each layer's own random weights; one-layer: one random layer per shape; MP: "
        "every layer a prefix of the largest layer; RP r: a random vector of int(d_max*r)+1 "
        "values tiled into every layer.", *extra])
    return finish(fig, title, caption, entries)


def _bar_label(r: Any, part: pd.DataFrame, several: bool) -> str:
    """PEMN's name of a bar, its density when the panel has several, its budget likewise."""
    label = pemn_name(r.method_name, r.hparams)
    if several and r.method_name != "dense":
        label += f" d={r.density:g}"
    if len(set(part["budget"])) > 1:
        label += f"\n{r.budget}"
    return label


def _draw_bar(ax: Axes, i: int, r: Any, entries: dict[str, Any]) -> None:
    """One bar with its seed error bar and value, or the reason there is none."""
    if r.n == 0:
        why = "missing" if r.missing else ("failed" if r.failed else "no result")
        ax.text(i, 1.0, why, rotation=90, ha="center", va="bottom", fontsize=7,
                color="#aa0000")
        return
    std = 0.0 if pd.isna(r.accuracy_std) else r.accuracy_std
    handle = ax.bar(i, r.accuracy_mean, yerr=std, color=method_style(r.method_name)[0],
                    edgecolor="#222222", linewidth=0.5, capsize=3, width=0.75,
                    error_kw={"elinewidth": 0.9}, zorder=3)
    entries.setdefault(r.method_name, handle)
    note = f"{r.accuracy_mean:.1f}" + ("" if r.n == r.runs else f"\nn={r.n}")
    ax.annotate(note, (i, r.accuracy_mean + std), xytext=(0, 3),
                textcoords="offset points", ha="center", va="bottom", fontsize=7)


def _bars_panel(ax: Axes, setup: dict[str, Any], part: pd.DataFrame, entries: dict[str, Any],
                top: float) -> None:
    rows = sorted(part.itertuples(), key=pemn_order)
    several = part[part["method_name"] != "dense"]["density"].nunique() > 1
    labels = [_bar_label(r, part, several) for r in rows]
    for i, r in enumerate(rows):
        _draw_bar(ax, i, r, entries)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=8)
    ax.set_xlim(-0.6, len(rows) - 0.4)
    accuracy_axis(ax)
    if ax.get_subplotspec().colspan.start > 0:  # the y axis is shared along a row
        ax.set_ylabel("")
    ax.grid(False, axis="x")
    density = sorted({d for d in part["density"] if d < 1})
    keep = f"\nkeep ratio {', '.join(f'{d:g}' for d in density)}" if density else ""
    panel_title(ax, setup["title"] + keep, 5.0)


# (x column, x axis label, panel subtitle) of the two panels per setup
CURVE_AXES = (("pemn_bytes_mean", "size counted as in PEMN (weights only)",
               "PEMN's count, every method"),
              ("artifact_bytes_mean", "artifact file size", "artifact bytes"))
PanelLabels = tuple[Any, list[tuple[float, float, str]], list[tuple[float, float, str]],
                    list[tuple[float, float]], float]


def figure_pemn_curves(table: pd.DataFrame,
                       *, title: str = DEFAULT_TITLES["pemn-curves"],
                       extra: Sequence[str] = ()) -> Figure | None:
    """Per dataset/model: accuracy vs PEMN's count (every method alike) and vs artifact bytes."""
    panels = [(s, p) for s, p in panels_of(table) if p["method_name"].isin(PEMN_FAMILY).any()]
    if not any((p["n"] > 0).any() for _, p in panels):
        return None
    fig, axes = new_figure(2 * len(panels), 2, panel=(5.2, 3.9), sharey="row")
    entries: dict[str, Any] = {}
    labels: list[PanelLabels] = []
    multi_budget = several_budgets(table)
    dodged = False
    for k, (setup, part) in enumerate(panels):
        series = series_of(part)
        for col, (column, what, subtitle) in enumerate(CURVE_AXES):
            ax = axes[2 * k + col]
            panel_title(ax, f"{setup['title']}\n{subtitle}", 5.2)
            if not (part["n"] > 0).any():
                empty_panel(ax, part)
                continue
            drawn, moved = _curves_panel(ax, part, series, column, what, entries, multi_budget)
            labels.append(drawn)
            dodged |= moved
            if col == 1:
                ax.set_ylabel("")
    for ax, names, notes, drawn, span in labels:  # after a row's panels share their y range
        annotate(ax, names, span, obstacles=drawn)
        annotate(ax, notes, span, obstacles=drawn, colour="#aa0000", merge=False)
    caption = caption_text(table, extra=[
        f"Left: {paper_bytes.DEFINITION}. Right: the real artifact file the accuracy was "
        "measured from (masks range-coded, random weights as a seed, norm and bias tensors "
        "included).", *([DODGE_NOTE] if dodged else []), *extra])
    return finish(fig, title, caption, entries)


def _curves_panel(ax: Axes, part: pd.DataFrame, series: list[Series], column: str, what: str,
                  entries: dict[str, Any], multi_budget: bool) -> tuple[PanelLabels, bool]:
    """The baselines' lines and PEMN's points over ``column``; what to name once y is set,
    and whether a coincident point was moved sideways."""
    baseline = [s for s in series if s.name not in PEMN_FAMILY and s.name != "dense"]
    styles = line_styles([s.name for s in baseline])
    lines = [(i, s, *series_points(s, column)) for i, s in enumerate(baseline)
             if not s.rows.empty]
    pts = _family_points(series, column)
    # the axes first (limits final), then where each marker goes, then the drawing
    bytes_axis(ax, [b for *_, x, _, _ in lines for b in x] + [p[0] for p in pts], what)
    accuracy_axis(ax)
    dense = [float(s.rows["accuracy_mean"].iloc[0]) for s in series
             if s.name == "dense" and not s.rows.empty]
    shown = shown_values([*((y, err) for *_, y, err in lines),
                          ([p[1] for p in pts], [p[2] for p in pts])])
    accuracy_limits(ax, [*shown, *dense], part, entries)
    drawn_x, moved = dodge(ax, [*((x, y) for *_, x, y, _ in lines),
                                ([p[0] for p in pts], [p[1] for p in pts])])
    notes: list[tuple[float, float, str]] = []
    drawn: list[tuple[float, float]] = []
    for (i, s, rows, _, y, err), x in zip(lines, drawn_x):
        handle = draw_series(ax, s, x, y, err, styles[i])
        entries.setdefault(legend_label(s, multi_budget), handle)
        notes += cell_notes(x, rows, seed_count(part))
        drawn += list(zip(x, y))
    pts = [(x, *p[1:]) for p, x in zip(pts, drawn_x[-1])]
    names = _draw_family(ax, pts, entries)
    dense_reference(ax, series, entries, side="left")
    drawn += [(p[0], p[1]) for p in pts]
    span = spread([p[1] for p in pts] + [v for s in series for v in s.rows["accuracy_mean"]])
    return (ax, names, notes, drawn, span), moved


def _family_points(series: list[Series], column: str) -> list[tuple[Any, ...]]:
    """PEMN's finished cells as (x, accuracy, std, series, row), by x."""
    pts = []
    for s in series:
        if s.name not in PEMN_FAMILY or s.rows.empty:
            continue
        for r in s.rows.itertuples():
            pts.append((getattr(r, column), r.accuracy_mean,
                        0.0 if pd.isna(r.accuracy_std) else r.accuracy_std, s, r))
    pts.sort(key=lambda p: p[0])
    return pts


def _draw_family(ax: Axes, pts: list[tuple[Any, ...]], entries: dict[str, Any]
                 ) -> list[tuple[float, float, str]]:
    """PEMN's variants as points, those of one density joined; returns their names."""
    from matplotlib.lines import Line2D

    several = len({p[4].density for p in pts}) > 1
    for density in sorted({p[4].density for p in pts}, reverse=True):
        same = [p for p in pts if p[4].density == density]
        ax.plot([p[0] for p in same], [p[1] for p in same], color="#555555",
                linestyle=":", linewidth=1.2, zorder=2)
        entries.setdefault("PEMN variants of one density (joined)", Line2D(
            [], [], color="#555555", linestyle=":", linewidth=1.2))
    names = []
    for x, a, std, s, r in pts:
        handle = soften(ax.errorbar(
            [x], [a], yerr=[std], color=s.colour, marker=s.marker, markersize=7,
            capsize=3, linestyle="none", **marker_edge(s.marker, s.colour),
            zorder=4))
        short = pemn_name(s.name, "{}").split(" ")[0]
        entries.setdefault(f"{s.name} ({short}{' r' if s.name == 'pemn-rp' else ''})", handle)
        name = pemn_name(s.name, s.hparams)
        names.append((x, a, name + (f" d={r.density:g}" if several else "")))
    return names
