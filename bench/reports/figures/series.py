"""The lines of a panel: one per table row (method variant and budget), their points, notes
and how one is drawn."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bench.reports.figures.style import marker_edge, method_style, soften
from bench.reports.ordering import rows_of
from bench.reports.stats import seeds_of


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
    """The lines of one panel: one per table row (everything but density and seed), in the
    tables' row order."""
    out = []
    for row in rows_of(part):
        every = part[part["row_key"] == row.row_key].sort_values("density", ascending=False)
        out.append(Series(row.shown, row.name, row.hparams, row.budget, every[every["n"] > 0],
                          every))
    return out


def several_budgets(table: pd.DataFrame) -> bool:
    """Whether some panel holds one method at several budgets (legend then names them)."""
    if table.empty:
        return False
    return bool(table.groupby(["setup", "method"])["budget"].nunique().max() > 1)


def seed_count(part: pd.DataFrame) -> int:
    """How many distinct seeds the runs of ``part`` have."""
    return len(seeds_of(part))


def cell_notes(x: Sequence[float], rows: pd.DataFrame, seeds: int
               ) -> list[tuple[float, float, str]]:
    """Notes for points: ``n=1/2`` when seeds are missing or failed, ``collapsed 2/2`` when
    finished runs left a layer with no weight (a plain network is cut, a residual branch
    bypassed)."""
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


def series_points(s: Series, column: str
                  ) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """A series' finished points over ``column``, by x: (rows, x, y, seed std or 0)."""
    rows = s.rows.sort_values(column)
    x = rows[column].to_numpy(float)
    y = rows["accuracy_mean"].to_numpy(float)
    err = np.nan_to_num(rows["accuracy_std"].to_numpy(float))
    return rows, x, y, err


def draw_series(ax: Any, s: Series, x: Sequence[float], y: Sequence[float],
                err: Sequence[float], linestyle: Any) -> Any:
    """One method's accuracy line with seed error bars (none drawn where std is 0) at the
    x it is drawn at (see :func:`bench.reports.figures.placement.dodge`); its handle."""
    return soften(ax.errorbar(
        x, y, yerr=err, color=s.colour, marker=s.marker, linestyle=linestyle,
        linewidth=1.4, markersize=6, capsize=3, zorder=3, **marker_edge(s.marker, s.colour)))


def legend_label(s: Series, multi_budget: bool) -> str:
    """The series' legend entry, its budget named when a panel holds several."""
    return f"{s.label} ({s.budget})" if multi_budget else s.label
