"""Figures, panels and axes: the grid of panels, title, legend and caption around them, the
bytes and accuracy axes, the dense reference line, and saving as PNG and PDF.

matplotlib is imported where a figure is drawn, so that building the command line stays
cheap. Figures are plain matplotlib.figure.Figure objects on an Agg canvas: pyplot and
its global backend are never touched (headless, thread-safe, no window).
"""

from __future__ import annotations

import json
import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bench.fsutil import staged
from bench.reports.figures.resolution import CHANCE_LEGEND
from bench.reports.figures.series import Series
from bench.reports.labels import byte_unit, setup_title
from bench.reports.stats import NOT_FINISHED

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def new_figure(n_panels: int, ncols: int, panel: tuple[float, float] = (4.6, 3.6),
                sharey: bool | str = False) -> tuple[Figure, list[Axes]]:
    ncols = max(1, min(ncols, n_panels))
    nrows = math.ceil(n_panels / ncols)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(panel[0] * ncols, panel[1] * nrows), dpi=100)
    FigureCanvasAgg(fig)
    grid = fig.subplots(nrows, ncols, squeeze=False, sharey=sharey)
    axes = [ax for row in grid for ax in row]
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def finish(fig: Figure, title: str, caption: str,
            entries: dict[str, Any]) -> Figure:
    """Title on top, one legend right of the panels (never over data), caption underneath."""
    renderer = fig.canvas.get_renderer()
    width, height = fig.get_size_inches()
    legend = None
    legend_w = 0.0
    if CHANCE_LEGEND in entries:  # reference lines after the methods
        entries[CHANCE_LEGEND] = entries.pop(CHANCE_LEGEND)
    if entries:
        legend = fig.legend(list(entries.values()), list(entries.keys()), loc="upper right",
                            fontsize=8, frameon=False, borderaxespad=0.0)
        legend_w = legend.get_window_extent(renderer).width / fig.dpi + 0.25
    total_w = width + legend_w
    wrapped = "\n".join(textwrap.wrap(caption, width=max(60, int(total_w * 15.5))))
    cap = fig.text(0.0, 0.0, wrapped, fontsize=8, ha="left", va="bottom", color="#333333")
    sup = fig.suptitle(title, fontsize=12, fontweight="bold")
    cap_h = cap.get_window_extent(renderer).height / fig.dpi + 0.3
    title_h = sup.get_window_extent(renderer).height / fig.dpi + 0.25
    total_h = height + cap_h + title_h * 0.5
    fig.set_size_inches(total_w, total_h)
    cap.set_position((0.12 / total_w, 0.1 / total_h))
    sup.set_y(1 - 0.1 / total_h)
    top = 1 - title_h / total_h
    if legend is not None:
        legend.set_bbox_to_anchor((1 - 0.1 / total_w, top), transform=fig.transFigure)
    fig.tight_layout(rect=(0.0, cap_h / total_h, 1 - legend_w / total_w, top))
    return fig


def panel_title(ax: Axes, text: str, width_in: float) -> None:
    """A panel title wrapped to the panel's width (10 pt: about 11 characters an inch)."""
    lines = [w for part in text.split("\n") for w in textwrap.wrap(part, int(width_in * 11))]
    ax.set_title("\n".join(lines), fontsize=10)


def bytes_axis(ax: Axes, values: Sequence[float], what: str) -> None:
    """Log x axis in kB or MB, the unit named in the label."""
    from matplotlib import ticker

    finite = [v for v in values if v and np.isfinite(v)]
    unit, scale = byte_unit(max(finite) if finite else 0.0)
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v / scale:g}"))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel(f"{what} ({unit}, log scale)")
    if finite:
        lo, hi = min(finite), max(finite)
        ax.set_xlim(lo / 1.5, hi * 1.35)


def accuracy_axis(ax: Axes, metric: str = "accuracy") -> None:
    ax.set_ylabel("top-5 test accuracy (%)" if metric == "top5" else "top-1 test accuracy (%)")
    ax.grid(True, which="major", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)


def dense_reference(ax: Axes, series: Sequence[Series], entries: dict[str, Any],
                     side: str = "right") -> None:
    """Dashed line at the dense model's accuracy, its value (and budget, if several) at one end."""
    from matplotlib.lines import Line2D

    dense = [s for s in series if s.name == "dense" and not s.rows.empty]
    for k, s in enumerate(dense):
        acc = float(s.rows["accuracy_mean"].iloc[0])
        ax.axhline(acc, color=s.colour, linestyle=("--", "-.", ":")[k % 3], linewidth=1.0,
                   zorder=1)
        left = side == "left"
        text = f"{s.label} {acc:.1f}%" + (f" ({s.budget})" if len(dense) > 1 else "")
        ax.annotate(text, (0.0 if left else 1.0, acc),
                    xycoords=("axes fraction", "data"), xytext=(3 if left else -3, 3),
                    textcoords="offset points", ha="left" if left else "right", va="bottom",
                    fontsize=7, color=s.colour)
        entries.setdefault("dense (reference line)",
                           Line2D([], [], color=s.colour, linestyle="--", linewidth=1.0))


def empty_panel(ax: Axes, part: pd.DataFrame) -> None:
    """A panel without a finished run says so, with the counts of the others."""
    counts = {st: int(part[st].sum()) for st in NOT_FINISHED if part[st].sum()}
    detail = ", ".join(f"{n} {st}" for st, n in counts.items())
    ax.text(0.5, 0.5, "no finished run" + (f"\n({detail})" if detail else ""),
            transform=ax.transAxes, ha="center", va="center", fontsize=9, color="#aa0000")
    ax.set_xticks([])
    ax.set_yticks([])


def panels_of(table: pd.DataFrame) -> list[tuple[dict[str, Any], pd.DataFrame]]:
    """(setup, its summary rows) per dataset/model setup; setup["title"] names the panel.

    Panel titles name the data set and model; the image subsets go to the caption, unless
    two panels differ only in them.
    """
    out = [(json.loads(k), part) for k, part in table.groupby("setup", sort=True)]
    for setup, _ in out:
        setup["title"] = setup_title(setup, subsets=False)
    titles = [s["title"] for s, _ in out]
    for setup, _ in out:
        if titles.count(setup["title"]) > 1:
            setup["title"] = setup_title(setup)
    return out


def save(fig: Figure, out: Path, name: str) -> list[Path]:
    """Write ``name.png`` (200 dpi) and ``name.pdf`` under ``out``, each to a temporary name
    renamed into place: a disk that fills up leaves no partial or empty figure."""
    paths = []
    for suffix, dpi in ((".png", 200), (".pdf", None)):
        path = out / f"{name}{suffix}"
        with staged(path) as staging, open(staging.path, "wb") as f:
            fig.savefig(f, format=suffix[1:], dpi=dpi,
                        metadata=None if suffix == ".png" else {"CreationDate": None})
        paths.append(path)
    return paths
