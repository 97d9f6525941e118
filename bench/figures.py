"""Figures from the run store, saved as PNG and PDF: records in, pictures out; nothing trains.

``python -m bench figures`` draws, from whatever runs the store holds (filtered like
``bench report``):

- ``bytes``: accuracy vs artifact bytes (log x), one line per method with seed error bars,
  the dense model as a reference line, and the Pareto front of all points with its members
  named;
- ``sparsity``: accuracy vs sparsity in the PX paper's Fig. 2 layout: one panel per
  dataset/model, x ticks at the sparsities run, log-spaced in density;
- ``pemn-bars``: PEMN's bars per architecture (dense, mask, one-layer, MP, RP 1e-1..1e-5);
- ``pemn-curves``: PEMN against the pruning baselines, accuracy vs size on PEMN's count
  applied to every method alike (bench.paper_bytes) and on artifact bytes, side by side.

``--paper px|pemn|all`` draws exactly the figures of that protocol from the runs of its
presets, and lists every run the store lacks with the ``bench run`` command that makes it.
Every method keeps one colour and marker in every figure (colour-blind-safe Okabe-Ito and
Tol colours); every figure has a caption line with the data set and the budget.
"""

from __future__ import annotations

import argparse
import json
import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bench import paper_bytes, report, spend
from bench.defaults import results_root
from bench.errors import BenchError
from bench.fsutil import check_writable_folder
from bench.presets import PRESETS, get_preset

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# matplotlib is imported where a figure is drawn, so that building the command line stays
# cheap. Figures are plain matplotlib.figure.Figure objects on an Agg canvas: pyplot and
# its global backend are never touched (headless, thread-safe, no window).

KINDS = ("bytes", "sparsity", "pemn-bars", "pemn-curves")
DEFAULT_KINDS = ("bytes", "sparsity")
DEFAULT_OUT = Path("results/figures")
PEMN_FAMILY = ("pemn-mask", "pemn-one-layer", "pemn-mp", "pemn-rp")


@dataclass(frozen=True)
class PaperFigure:
    """One figure of a paper protocol: its kind, the presets it reads, reference methods."""

    name: str
    kind: str
    presets: tuple[str, ...]
    reference: tuple[str, ...] = ()
    note: str = ""


PAPERS: dict[str, tuple[PaperFigure, ...]] = {
    "px": (PaperFigure("px-fig2", "sparsity", ("px-cifar10-resnet20", "px-cifar100-vgg16"),
                       reference=("dense",)),),
    "pemn": (
        PaperFigure("pemn-bars", "pemn-bars", ("pemn-convmixer",)),
        PaperFigure("pemn-curves", "pemn-curves", ("pemn-resnet",), reference=("dense",),
                    note="The PEMN paper gives no ResNet recipe: the trained-weight baselines "
                    "use px-cifar10-resnet20's recipe, the mask learners Edge-Popup's."),
    ),
}
PAPERS["all"] = PAPERS["px"] + PAPERS["pemn"]

# ----------------------------------------------------------------------------- styles

# Okabe & Ito (2008) and Paul Tol's muted scheme: distinguishable with colour-vision
# deficiencies; every method also has its own marker, so colour is never the only cue.
METHOD_STYLES: dict[str, tuple[str, str]] = {
    "dense": ("#000000", "*"),
    "px": ("#D55E00", "o"),
    "snip": ("#0072B2", "s"),
    "grasp": ("#009E73", "^"),
    "synflow": ("#CC79A7", "v"),
    "magnitude-init": ("#E69F00", "P"),
    "random": ("#7F7F7F", "X"),
    "magnitude": ("#56B4E9", "p"),
    "lth": ("#AA4499", "8"),
    "edge-popup": ("#882255", "H"),
    "pemn-mask": ("#44AA99", "<"),
    "pemn-one-layer": ("#999933", ">"),
    "pemn-mp": ("#332288", "h"),
    "pemn-rp": ("#CC6677", "D"),
    "px-clean": ("#117733", "d"),
    "px-2024": ("#BB5566", "x"),
}
EXTRA_COLOURS = ("#661100", "#6699CC", "#AA4466", "#4477AA", "#DDCC77", "#88CCEE")
EXTRA_MARKERS = ("o", "s", "^", "v", "D", "P", "X", "p")
VARIANT_LINES = ("-", "--", ":", "-.")


def method_style(name: str) -> tuple[str, str]:
    """(colour, marker) of a method name: fixed for built-ins, stable for plugins.

    Plugins take the extra colours in the sorted order of every registered name the table
    does not fix, so a method has the same colour in every figure.
    """
    if name in METHOD_STYLES:
        return METHOD_STYLES[name]
    from bench.registry import methods

    others = sorted((set(methods()) | {name}) - set(METHOD_STYLES))
    i = others.index(name)
    return EXTRA_COLOURS[i % len(EXTRA_COLOURS)], EXTRA_MARKERS[i % len(EXTRA_MARKERS)]


def short_ratio(value: float) -> str:
    """0.01 -> ``1e-2``, 0.25 -> ``2.5e-1``."""
    mantissa, exponent = f"{value:.1e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def pemn_name(name: str, hparams: str | dict[str, Any]) -> str:
    """PEMN's own names: ``mask``, ``one-layer``, ``MP``, ``RP 1e-2``; others unchanged."""
    hp = json.loads(hparams) if isinstance(hparams, str) else dict(hparams or {})
    extra = {k: v for k, v in hp.items() if k != "ratio"}
    base = {"dense": "dense", "pemn-mask": "mask", "pemn-one-layer": "one-layer",
            "pemn-mp": "MP"}.get(name)
    if name == "pemn-rp":
        base = f"RP {short_ratio(report.full_hparams(name, hp).get('ratio', 0.1))}"
    if base is None:
        return report.method_label(name, hp)
    return base + "".join(f" {k}={v}" for k, v in sorted(extra.items()))


# ----------------------------------------------------------------------------- data


@dataclass
class Series:
    """One line: a method variant at one budget, its points sorted by density (descending)."""

    label: str
    name: str
    hparams: str
    budget: str
    rows: pd.DataFrame  # summary rows with n > 0
    all_rows: pd.DataFrame  # every cell of the line, finished or not

    @property
    def colour(self) -> str:
        return method_style(self.name)[0]

    @property
    def marker(self) -> str:
        return method_style(self.name)[1]


def series_of(part: pd.DataFrame) -> list[Series]:
    """The lines of one panel: one per table row (everything but density and seed)."""
    out = []
    rank = {}
    if "order" in part:
        rank = {m: o for m, o in zip(part["method"], part["order"]) if pd.notna(o)}
    keys = sorted({(r.method, r.method_name, r.hparams, r.budget, r.row_key)
                   for r in part.itertuples()},
                  key=lambda k: (k[1] != "dense", rank.get(k[0], math.inf),
                                 report.method_order(k[1], k[2]), k[3], k[4]))
    twins: dict[tuple[str, str], list[str]] = {}
    for label, _, _, budget, row_key in keys:
        twins.setdefault((label, budget), []).append(row_key)
    for label, name, hp, budget, row_key in keys:
        every = part[part["row_key"] == row_key].sort_values("density", ascending=False)
        if len(twins[(label, budget)]) > 1:
            label += f" ({report.spec_difference(row_key, twins[(label, budget)])})"
        out.append(Series(label, name, hp, budget, every[every["n"] > 0], every))
    return out


def _line_styles(series: Sequence[Series]) -> dict[int, str]:
    """Variants (or budgets) of one method get distinct dash patterns, in series order."""
    seen: dict[str, int] = {}
    out = {}
    for i, s in enumerate(series):
        k = seen.get(s.name, 0)
        seen[s.name] = k + 1
        out[i] = VARIANT_LINES[k % len(VARIANT_LINES)]
    return out


def _multi_budget(table: pd.DataFrame) -> bool:
    """Whether some panel holds one method at several budgets (legend then names them)."""
    if table.empty:
        return False
    return bool(table.groupby(["setup", "method"])["budget"].nunique().max() > 1)


def _empty_panel(ax: Axes, part: pd.DataFrame) -> None:
    counts = {st: int(part[st].sum()) for st in report.NOT_FINISHED if part[st].sum()}
    detail = ", ".join(f"{n} {st}" for st, n in counts.items())
    ax.text(0.5, 0.5, "no finished run" + (f"\n({detail})" if detail else ""),
            transform=ax.transAxes, ha="center", va="center", fontsize=9, color="#aa0000")
    ax.set_xticks([])
    ax.set_yticks([])


def _seed_count(part: pd.DataFrame) -> int:
    return len({s for v in part["seeds"] for s in str(v).split(",") if s != ""})


def _cell_notes(x: Sequence[float], rows: pd.DataFrame, seeds: int
                ) -> list[tuple[float, float, str]]:
    """Notes for points: ``n=1/2`` when seeds are missing or failed, ``collapsed 2/2`` when
    finished runs left a layer with no weight (the network is cut)."""
    out = []
    for xi, r in zip(x, rows.itertuples()):
        expected = max(seeds, r.runs)
        notes = []
        if 0 < r.n < expected:
            notes.append(f"n={r.n}/{expected}")
        if r.n and r.layer_collapse:
            notes.append(f"collapsed {r.layer_collapse}/{r.n}")
        if notes and np.isfinite(xi):
            out.append((float(xi), float(r.accuracy_mean), ", ".join(notes)))
    return out


def _draw_series(ax: Any, s: Any, column: str, linestyle: Any) -> tuple[Any, Any, Any, Any]:
    """One method's accuracy line over ``column`` with seed error bars: (rows, x, y, handle)."""
    rows = s.rows.sort_values(column)
    x = rows[column].to_numpy(float)
    y = rows["accuracy_mean"].to_numpy(float)
    err = np.nan_to_num(rows["accuracy_std"].to_numpy(float))
    handle = _soften(ax.errorbar(
        x, y, yerr=err, color=s.colour, marker=s.marker, linestyle=linestyle,
        linewidth=1.4, markersize=6, capsize=3, markeredgecolor="white",
        markeredgewidth=0.6, zorder=3))
    return rows, x, y, handle


def _soften(container: Any) -> Any:
    """Seed error bars half-transparent and thin, so overlapping ones stay readable."""
    _, caps, bars = container.lines
    for artist in (*caps, *bars):
        artist.set_alpha(0.55)
    for bar in bars:
        bar.set_linewidth(0.9)
    return container


def _legend_label(s: Series, multi_budget: bool) -> str:
    return f"{s.label} ({s.budget})" if multi_budget else s.label


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


def _annotate(ax: Axes, points: Sequence[tuple[float, float, str]], y_span: float,
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


def _y_span(values: Sequence[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return (max(finite) - min(finite)) if len(finite) > 1 else 1.0


# ----------------------------------------------------------------------------- layout


def _new_figure(n_panels: int, ncols: int, panel: tuple[float, float] = (4.6, 3.6),
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


def _finish(fig: Figure, title: str, caption: str,
            entries: dict[str, Any]) -> Figure:
    """Title on top, one legend right of the panels (never over data), caption underneath."""
    renderer = fig.canvas.get_renderer()
    width, height = fig.get_size_inches()
    legend = None
    legend_w = 0.0
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


def _panel_title(ax: Axes, text: str, width_in: float) -> None:
    """A panel title wrapped to the panel's width (10 pt: about 11 characters an inch)."""
    lines = [w for part in text.split("\n") for w in textwrap.wrap(part, int(width_in * 11))]
    ax.set_title("\n".join(lines), fontsize=10)


def _bytes_axis(ax: Axes, values: Sequence[float], what: str) -> None:
    """Log x axis in kB or MB, the unit named in the label."""
    from matplotlib import ticker

    finite = [v for v in values if v and np.isfinite(v)]
    unit, scale = report.byte_unit(max(finite) if finite else 0.0)
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v / scale:g}"))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel(f"{what} ({unit}, log scale)")
    if finite:
        lo, hi = min(finite), max(finite)
        ax.set_xlim(lo / 1.5, hi * 1.35)


def _accuracy_axis(ax: Axes, metric: str = "accuracy") -> None:
    ax.set_ylabel("top-5 test accuracy (%)" if metric == "top5" else "top-1 test accuracy (%)")
    ax.grid(True, which="major", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)


def _dense_reference(ax: Axes, series: Sequence[Series], entries: dict[str, Any],
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


def caption_text(table: pd.DataFrame, *, extra: Sequence[str] = (),
                 seeds_word: str = "error bars") -> str:
    """Data set, budgets per method, seeds, and what is not finished: one caption line."""
    done = table[table["n"] > 0]
    setups = sorted({(r.dataset, r.train_subset, r.test_subset) for r in table.itertuples()},
                    key=str)
    data = []
    for dataset, train, test in setups:
        text = report.dataset_title(dataset)
        train = None if pd.isna(train) else int(train)
        test = None if pd.isna(test) else int(test)
        if train is not None or test is not None:
            full = report.DATASET_SIZES.get(dataset, ("all", "all"))
            text += f" ({train or full[0]}/{test or full[1]} train/test images)"
        else:
            text += " (full train/test sets)"
        data.append(text)
    budgets: dict[str, list[str]] = {}
    for r in table.drop_duplicates(["budget", "method"]).itertuples():
        budgets.setdefault(r.budget, []).append(r.method)
    spent = spend.caption_note(table)
    if len(budgets) == 1:  # the same total only where no method trained beyond its budget
        budget_text = (f"{next(iter(budgets))} for every method" if not spent else
                       f"{next(iter(budgets))} for every method's final training")
    else:
        budget_text = "; ".join(f"{b} for {', '.join(sorted(ms))}"
                                for b, ms in sorted(budgets.items()))
    seeds = sorted({int(s) for v in table["seeds"] for s in str(v).split(",") if s != ""})
    parts = [f"Data: {', '.join(data)}.", f"Budget: {budget_text}.", *([spent] if spent else []),
             f"Final-epoch test accuracy of the decoded artifact, mean ± sample std over "
             f"seeds {', '.join(map(str, seeds))} ({seeds_word}); {len(done)} of "
             f"{len(table)} cells have a finished run."]
    not_done = int(table[["failed", "diverged", "running", "missing"]].to_numpy().sum())
    if not_done:
        parts.append(f"{not_done} run{'s' if not_done > 1 else ''} not finished (failed, "
                     "diverged, running or missing; see `bench report`).")
    nseeds = len(seeds)
    partial = bool(((done["n"] < done["runs"]) | (done["n"] < nseeds)).any())
    if partial or done["layer_collapse"].sum():
        parts.append("Red notes by a point: n = finished of expected seeds; collapsed = runs "
                     "whose pruning left a layer with no weight (the network is cut).")
    parts.extend(extra)
    return " ".join(parts)


# ----------------------------------------------------------------------------- figures


def _panels(table: pd.DataFrame) -> list[tuple[dict[str, Any], pd.DataFrame]]:
    """(setup, its summary rows) per dataset/model setup; setup["title"] names the panel.

    Panel titles name the data set and model; the image subsets go to the caption, unless
    two panels differ only in them.
    """
    out = [(json.loads(k), part) for k, part in table.groupby("setup", sort=True)]
    for setup, _ in out:
        setup["title"] = (f"{report.dataset_title(setup['dataset'])}, "
                          f"{report.model_title(setup['model'], setup['model_kwargs'])}")
        if setup.get("value_codec", "float32") != "float32":
            setup["title"] += f", {setup['value_codec']} values"
    titles = [s["title"] for s, _ in out]
    for setup, _ in out:
        if titles.count(setup["title"]) > 1:
            setup["title"] = report.setup_title(setup)
    return out


def figure_bytes(table: pd.DataFrame, *, title: str = "Accuracy vs. artifact size",
                 extra: Sequence[str] = ()) -> Figure | None:
    """Accuracy vs artifact bytes per dataset/model, dense reference, named Pareto front."""
    from matplotlib.lines import Line2D

    if not (table["n"] > 0).any():
        return None
    panels = _panels(table)
    fig, axes = _new_figure(len(panels), 2, panel=(6.2, 4.6))
    entries: dict[str, Any] = {}
    multi_budget = _multi_budget(table)
    for ax, (setup, part) in zip(axes, panels):
        _panel_title(ax, setup["title"], 5.4)
        if not (part["n"] > 0).any():
            _empty_panel(ax, part)
            continue
        series = series_of(part)
        styles = _line_styles(series)
        points: list[tuple[float, float, str]] = []
        notes: list[tuple[float, float, str]] = []
        for i, s in enumerate(series):
            if s.rows.empty:
                continue
            rows, x, y, handle = _draw_series(ax, s, "artifact_bytes_mean", styles[i])
            entries.setdefault(_legend_label(s, multi_budget), handle)
            notes += _cell_notes(x, rows, _seed_count(part))
            for d, b, a in zip(rows["density"], x, y):
                points.append((b, a, s.label if s.name == "dense" else f"{s.label} d={d:g}"))
        _dense_reference(ax, series, entries, side="left")
        front = pareto_front([(b, a) for b, a, _ in points])
        members = sorted((p for p, on in zip(points, front) if on), key=lambda p: p[0])
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
        _bytes_axis(ax, [p[0] for p in points], "artifact file size")
        _accuracy_axis(ax)
        if members:
            _annotate(ax, members, _y_span([p[1] for p in points]),
                      obstacles=[(p[0], p[1]) for p in points])
        _annotate(ax, notes, 1.0, obstacles=[(p[0], p[1]) for p in points], colour="#aa0000",
                  merge=False)
    caption = caption_text(table, extra=[
        "Pareto front: points no other point beats on both size and accuracy. "
        "x: size of the artifact file the accuracy was measured from.", *extra])
    return _finish(fig, title, caption, entries)


def figure_sparsity(table: pd.DataFrame, *, title: str = "Accuracy vs. sparsity",
                    extra: Sequence[str] = ()) -> Figure | None:
    """PX Fig. 2 layout: one panel per dataset/model, ticks at the sparsities run."""
    from matplotlib.ticker import NullLocator

    if not ((table["n"] > 0) & (table["density"] < 1)).any():
        return None
    panels = _panels(table)
    fig, axes = _new_figure(len(panels), 2, panel=(5.4, 4.0))
    entries: dict[str, Any] = {}
    multi_budget = _multi_budget(table)
    for ax, (setup, part) in zip(axes, panels):
        _panel_title(ax, setup["title"], 5.4)
        if not ((part["n"] > 0) & (part["density"] < 1)).any():
            _empty_panel(ax, part)
            continue
        series = series_of(part)
        styles = _line_styles(series)
        densities = sorted({d for d in part["density"] if d < 1}, reverse=True)
        notes: list[tuple[float, float, str]] = []
        drawn: list[tuple[float, float]] = []
        for i, s in enumerate(series):
            rows = s.all_rows[s.all_rows["density"] < 1]
            if not (rows["n"] > 0).any():
                continue
            # unfinished cells are gaps in the line, never interpolated over
            x = -np.log(rows["density"].to_numpy(float))
            y = rows["accuracy_mean"].to_numpy(float)
            err = np.nan_to_num(rows["accuracy_std"].to_numpy(float))
            (line,) = ax.plot(x, y, color=s.colour, marker=s.marker, linestyle=styles[i],
                              linewidth=1.5, markersize=6, markeredgecolor="white",
                              markeredgewidth=0.6, zorder=3)
            ax.fill_between(x, y - err, y + err, color=s.colour, alpha=0.13, linewidth=0,
                            zorder=2)
            entries.setdefault(_legend_label(s, multi_budget), line)
            notes += _cell_notes(x, rows, _seed_count(part))
            drawn += [(a, b) for a, b in zip(x, y) if np.isfinite(b)]
        _dense_reference(ax, series, entries)
        ticks = -np.log(np.array(densities))
        ax.set_xticks(ticks)
        ax.set_xticklabels([report.sparsity_text(d) for d in densities],
                           rotation=45 if len(densities) > 5 else 0)
        ax.xaxis.set_minor_locator(NullLocator())
        pad = 0.06 * (ticks.max() - ticks.min()) if len(ticks) > 1 else 0.3
        ax.set_xlim(ticks.min() - pad, ticks.max() + pad)
        ax.set_xlabel("sparsity (% of prunable weights removed; log-spaced in density)")
        _accuracy_axis(ax)
        _annotate(ax, notes, 1.0, obstacles=drawn, colour="#aa0000", merge=False)
    caption = caption_text(table, seeds_word="shaded bands", extra=extra)
    return _finish(fig, title, caption, entries)


def _pemn_order(row: Any) -> tuple[Any, ...]:
    names = ("dense", *PEMN_FAMILY)
    ratio = report.full_hparams(row.method_name, json.loads(row.hparams)).get("ratio", 1.0)
    return (names.index(row.method_name), -float(ratio), row.hparams, -row.density)


def figure_pemn_bars(table: pd.DataFrame, *, title: str = "PEMN: masks on fixed random weights",
                     extra: Sequence[str] = ()) -> Figure | None:
    """Bars per architecture: dense, mask, one-layer, MP, RP 1e-1..1e-5, seed error bars."""
    bars = table[table["method_name"].isin(("dense", *PEMN_FAMILY))]
    panels = [(s, p) for s, p in _panels(bars) if p["method_name"].isin(PEMN_FAMILY).any()]
    if not any((p["n"] > 0).any() for _, p in panels):
        return None
    fig, axes = _new_figure(len(panels), 2, panel=(5.0, 3.8), sharey=True)
    entries: dict[str, Any] = {}
    top = float(np.nanmax((bars["accuracy_mean"] + bars["accuracy_std"].fillna(0)).to_numpy()))
    for ax, (setup, part) in zip(axes, panels):
        rows = sorted(part.itertuples(), key=_pemn_order)
        several = part[part["method_name"] != "dense"]["density"].nunique() > 1
        labels = []
        for i, r in enumerate(rows):
            colour = method_style(r.method_name)[0]
            label = pemn_name(r.method_name, r.hparams)
            if several and r.method_name != "dense":
                label += f" d={r.density:g}"
            if len(set(part["budget"])) > 1:
                label += f"\n{r.budget}"
            labels.append(label)
            if r.n == 0:
                why = "missing" if r.missing else ("failed" if r.failed else "no result")
                ax.text(i, 1.0, why, rotation=90, ha="center", va="bottom", fontsize=7,
                        color="#aa0000")
                continue
            std = 0.0 if pd.isna(r.accuracy_std) else r.accuracy_std
            handle = ax.bar(i, r.accuracy_mean, yerr=std, color=colour, edgecolor="#222222",
                            linewidth=0.5, capsize=3, width=0.75,
                            error_kw={"elinewidth": 0.9}, zorder=3)
            entries.setdefault(r.method_name, handle)
            note = f"{r.accuracy_mean:.1f}" + ("" if r.n == r.runs else f"\nn={r.n}")
            ax.annotate(note, (i, r.accuracy_mean + std), xytext=(0, 3),
                        textcoords="offset points", ha="center", va="bottom", fontsize=7)
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=8)
        ax.set_xlim(-0.6, len(rows) - 0.4)
        ax.set_ylim(0, max(top, 1) * 1.22)
        _accuracy_axis(ax)
        if ax.get_subplotspec().colspan.start > 0:  # the y axis is shared along a row
            ax.set_ylabel("")
        ax.grid(False, axis="x")
        density = sorted({d for d in part["density"] if d < 1})
        keep = f"\nkeep ratio {', '.join(f'{d:g}' for d in density)}" if density else ""
        _panel_title(ax, setup["title"] + keep, 5.0)
    caption = caption_text(bars, extra=[
        "mask: each layer's own random weights; one-layer: one random layer per shape; MP: "
        "every layer a prefix of the largest layer; RP r: a random vector of int(d_max*r)+1 "
        "values tiled into every layer.", *extra])
    return _finish(fig, title, caption, entries)


def figure_pemn_curves(table: pd.DataFrame,
                       *, title: str = "PEMN vs. pruning baselines: accuracy vs. size",
                       extra: Sequence[str] = ()) -> Figure | None:
    """Per dataset/model: accuracy vs PEMN's count (every method alike) and vs artifact bytes."""
    from matplotlib.lines import Line2D

    panels = [(s, p) for s, p in _panels(table) if p["method_name"].isin(PEMN_FAMILY).any()]
    if not any((p["n"] > 0).any() for _, p in panels):
        return None
    fig, axes = _new_figure(2 * len(panels), 2, panel=(5.2, 3.9), sharey="row")
    entries: dict[str, Any] = {}
    labels: list[tuple[Axes, Any, Any, Any, float]] = []
    multi_budget = _multi_budget(table)
    for k, (setup, part) in enumerate(panels):
        series = series_of(part)
        baseline = [s for s in series if s.name not in PEMN_FAMILY and s.name != "dense"]
        styles = _line_styles(baseline)
        for col, (column, what, convention) in enumerate((
                ("pemn_bytes_mean", "size counted as in PEMN (weights only)", "paper"),
                ("artifact_bytes_mean", "artifact file size", "artifact"))):
            ax = axes[2 * k + col]
            notes: list[tuple[float, float, str]] = []
            drawn: list[tuple[float, float]] = []
            scale = "PEMN's count, every method" if convention == "paper" else "artifact bytes"
            _panel_title(ax, f"{setup['title']}\n{scale}", 5.2)
            if not (part["n"] > 0).any():
                _empty_panel(ax, part)
                continue
            xs: list[float] = []
            for i, s in enumerate(baseline):
                if s.rows.empty:
                    continue
                rows, x, y, handle = _draw_series(ax, s, column, styles[i])
                entries.setdefault(_legend_label(s, multi_budget), handle)
                notes += _cell_notes(x, rows, _seed_count(part))
                drawn += list(zip(x, y))
                xs.extend(x)
            family = [s for s in series if s.name in PEMN_FAMILY and not s.rows.empty]
            pts = []
            for s in family:
                for r in s.rows.itertuples():
                    pts.append((getattr(r, column), r.accuracy_mean,
                                0.0 if pd.isna(r.accuracy_std) else r.accuracy_std, s, r))
            pts.sort(key=lambda p: p[0])
            several = len({p[4].density for p in pts}) > 1
            for density in sorted({p[4].density for p in pts}, reverse=True):
                same = [p for p in pts if p[4].density == density]
                ax.plot([p[0] for p in same], [p[1] for p in same], color="#555555",
                        linestyle=":", linewidth=1.2, zorder=2)
                entries.setdefault("PEMN variants of one density (joined)", Line2D(
                    [], [], color="#555555", linestyle=":", linewidth=1.2))
            names = []
            for x, a, std, s, r in pts:
                handle = _soften(ax.errorbar(
                    [x], [a], yerr=[std], color=s.colour, marker=s.marker, markersize=7,
                    capsize=3, linestyle="none", markeredgecolor="white", markeredgewidth=0.6,
                    zorder=4))
                short = pemn_name(s.name, "{}").split(" ")[0]
                entries.setdefault(f"{s.name} ({short}{' r' if s.name == 'pemn-rp' else ''})",
                                   handle)
                name = pemn_name(s.name, s.hparams)
                names.append((x, a, name + (f" d={r.density:g}" if several else "")))
                xs.append(x)
            _dense_reference(ax, series, entries, side="left")
            _bytes_axis(ax, xs, what)
            _accuracy_axis(ax)
            if col == 1:
                ax.set_ylabel("")
            drawn += [(p[0], p[1]) for p in pts]
            labels.append((ax, names, notes, drawn, _y_span([p[1] for p in pts] + [
                v for s in series for v in s.rows["accuracy_mean"]])))
    for ax, names, notes, drawn, span in labels:  # after a row's panels share their y range
        _annotate(ax, names, span, obstacles=drawn)
        _annotate(ax, notes, span, obstacles=drawn, colour="#aa0000", merge=False)
    caption = caption_text(table, extra=[
        f"Left: {paper_bytes.DEFINITION}. Right: the real artifact file the accuracy was "
        "measured from (masks range-coded, random weights as a seed, norm and bias tensors "
        "included).", *extra])
    return _finish(fig, title, caption, entries)


DRAW = {"bytes": figure_bytes, "sparsity": figure_sparsity, "pemn-bars": figure_pemn_bars,
        "pemn-curves": figure_pemn_curves}
TITLES = {"px-fig2": "PX protocol (Fig. 2 layout): accuracy vs. sparsity"}


def save(fig: Figure, out: Path, name: str) -> list[Path]:
    """Write ``name.png`` (200 dpi) and ``name.pdf`` under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for suffix, dpi in ((".png", 200), (".pdf", None)):
        path = out / f"{name}{suffix}"
        fig.savefig(path, dpi=dpi, metadata=None if suffix == ".png" else {"CreationDate": None})
        paths.append(path)
    return paths


# ----------------------------------------------------------------------------- command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``python -m bench figures``."""
    report.add_common_filters(parser)
    parser.add_argument("--paper", choices=tuple(PAPERS),
                        help="draw exactly the figures of a paper protocol from its presets' "
                        "runs (px: Fig. 2; pemn: bars and compression curves) and list the "
                        "runs it lacks with the commands that make them; exit 1 if any")
    parser.add_argument("--kind", default=",".join(DEFAULT_KINDS),
                        help=f"without --paper: comma-separated figures from {', '.join(KINDS)} "
                        f"(default {','.join(DEFAULT_KINDS)})")
    parser.add_argument("--preset", choices=sorted(PRESETS), metavar="NAME",
                        help="without --paper: only runs of this preset's grid")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"folder for the PNG and PDF files (default {DEFAULT_OUT})")


def _kinds(text: str) -> list[str]:
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise BenchError(f"--kind: unknown figure {', '.join(unknown) or repr(text)}; "
                         f"choose from {', '.join(KINDS)}")
    return kinds


def _store_frame(root: Path, required: bool) -> pd.DataFrame:
    if required:
        return report.load_frame(root)
    return report.records_frame(root) if root.exists() else report.frame_from_records([])


def _filtered(frame: pd.DataFrame, args: argparse.Namespace) -> pd.DataFrame:
    return report.filter_frame(frame, methods=args.methods, models=args.models,
                               datasets=args.datasets)


def _draw_paper(args: argparse.Namespace, root: Path, options: report.GridOptions) -> int:
    store = _store_frame(root, required=False)
    suffix = "" if options.budget_scale == 1.0 else f"-x{options.budget_scale:g}"
    incomplete = False
    for figure in PAPERS[args.paper]:
        frames = [report.preset_frame(store, get_preset(p), options, figure.reference)
                  for p in figure.presets]
        frame = pd.concat(frames, ignore_index=True)
        if any(v is not None for v in (args.methods, args.models, args.datasets)):
            frame = _filtered(frame, args)
        table = report.summary_table(frame)
        groups = report.missing_groups(frame)
        extra = [f"Preset{'s' if len(figure.presets) > 1 else ''} "
                 f"{', '.join(figure.presets)}"
                 + (f" ({options.describe()})" if options.describe() else "") + "."]
        if figure.note:
            extra.append(figure.note)
        fig = DRAW[figure.kind](table, title=TITLES.get(figure.name, None)
                                or _default_title(figure.kind), extra=extra)
        done = int((frame["status"] == "finished").sum())
        if fig is None:
            print(f"{figure.name}: nothing to draw, no finished run of "
                  f"{', '.join(figure.presets)} in {root}")
        else:
            paths = save(fig, args.out, figure.name + suffix)
            print(f"{figure.name}: {done} of {len(frame)} runs finished; wrote "
                  + ", ".join(map(str, paths)))
        if groups:
            incomplete = True
            print(f"{figure.name}: runs not finished, with the commands that make them:")
            print("\n".join(report.missing_report(groups, options, args.results)))
        for preset_name in figure.presets:
            for item in figure.reference:
                ref = report.preset_grid(get_preset(preset_name), options, [item])
                lacking = [s for _, s in ref if s.key not in set(store["key"])]
                if lacking:
                    group = report.MissingGroup(preset_name, [item], None, None, None, None,
                                                {"missing": len(lacking)}, len(ref))
                    print(f"{figure.name}: optional {item} reference line for {preset_name}, "
                          f"{len(lacking)} of {len(ref)} runs missing:\n"
                          f"    {group.command(options, args.results)}")
    return 1 if incomplete else 0


def _default_title(kind: str) -> str:
    return {"bytes": "Accuracy vs. artifact size", "sparsity": "Accuracy vs. sparsity",
            "pemn-bars": "PEMN: masks on fixed random weights",
            "pemn-curves": "PEMN vs. pruning baselines: accuracy vs. size"}[kind]


FILE_NAMES = {"bytes": "accuracy-vs-bytes", "sparsity": "accuracy-vs-sparsity",
              "pemn-bars": "pemn-bars", "pemn-curves": "pemn-curves"}


def command(args: argparse.Namespace) -> int:
    """``python -m bench figures``: write PNG + PDF files; 0 on success.

    With ``--paper``, exit status 1 says the protocol's grid is not complete (what is there
    is drawn, what is missing is listed).
    """
    check_writable_folder(args.out, "--out")
    with_preset = bool(args.paper or args.preset)
    report._check_grid_options(args, with_preset, "--paper or --preset")
    options = report.grid_options(args)
    root = results_root(args.results)
    if args.paper:
        if args.preset:
            raise BenchError("--paper reads its own presets; drop --preset")
        if args.kind != ",".join(DEFAULT_KINDS):
            raise BenchError("--paper draws its protocol's figures; drop --kind")
        return _draw_paper(args, root, options)
    kinds = _kinds(args.kind)
    if args.preset:
        frame = report.preset_frame(_store_frame(root, required=False),
                                    get_preset(args.preset), options)
    else:
        frame = _store_frame(root, required=True)
    frame = _filtered(frame, args)
    if not (frame["status"] == "finished").any():
        raise BenchError("no finished runs match the filters: nothing to draw")
    table = report.summary_table(frame)
    prefix = f"{args.preset}-" if args.preset else ""
    extra = []
    if args.preset:
        extra.append(f"Preset {args.preset}"
                     + (f" ({options.describe()})" if options.describe() else "") + ".")
    drawn = 0
    for kind in kinds:
        fig = DRAW[kind](table, extra=extra)
        if fig is None:
            print(f"{kind}: nothing to draw from these runs")
            continue
        paths = save(fig, args.out, prefix + FILE_NAMES[kind])
        print(f"{kind}: wrote " + ", ".join(map(str, paths)))
        drawn += 1
    if not drawn:
        raise BenchError(f"none of the figures {', '.join(kinds)} can be drawn from these runs")
    return 0
