"""Table layout, independent of the format: one view per (dataset, model) setup, its rows,
columns, cells with their notes, and its caption."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

import bench.reports.spend as spend
from bench.errors import BenchError
from bench.reports.choices import (
    BYTE_COMPRESSION_RATIO,
    BYTE_METRICS,
    GROUP_BY,
    GROUP_BY_CAPTIONS,
    METRICS,
    SIZE_COLUMNS,
    SIZE_TITLES,
    SIZES,
    Metric,
)
from bench.reports.labels import (
    autocast_precisions,
    budget_with_precision,
    byte_unit,
    column_title,
    setup_title,
)
from bench.reports.ordering import Row, rows_of
from bench.reports.stats import NOT_FINISHED, seeds_of
from bench.wording import counted


@dataclass
class Cell:
    mean: float = math.nan
    std: float = math.nan
    n: int = 0
    size: float = math.nan
    epochs: float = math.nan  # total epochs trained, mean over seeds
    search: float = math.nan  # search seconds, mean over seeds
    notes: list[str] = field(default_factory=list)
    empty: bool = False  # no run of this method at this column


@dataclass
class TableView:
    """One (dataset, model) table, format-independent."""

    title: str
    setup: dict[str, Any]
    columns: list[float]
    column_titles: list[str]
    rows: list[tuple[str, str, list[Cell]]]
    value_title: str
    value_unit: str
    decimals: int
    size_title: str | None
    unfinished: list[str]
    caption: str
    scale: float = 1.0
    size_scale: float = 1.0
    size_kind: str = "artifact"


def build_views(table: pd.DataFrame, *, group_by: str = "density", metric: str = "accuracy",
                size: str = "artifact") -> list[TableView]:
    """The summary split into one table per (dataset, model setup), cells laid out."""
    if group_by not in GROUP_BY:
        raise BenchError(f"unknown --group-by {group_by!r}; choose from {', '.join(GROUP_BY)}")
    if metric not in METRICS:
        raise BenchError(f"unknown --metric {metric!r}; choose from {', '.join(METRICS)}")
    if size not in SIZES:
        raise BenchError(f"unknown --size {size!r}; choose from {', '.join(SIZES)}")
    return [_view(json.loads(setup_json), part, group_by, metric, size)
            for setup_json, part in table.groupby("setup", sort=True)]


def _view(setup: dict[str, Any], part: pd.DataFrame, group_by: str, metric: str,
          size: str) -> TableView:
    spec = METRICS[metric]
    size_column = SIZE_COLUMNS.get(size)
    columns = sorted(set(part["density"]), reverse=True)
    all_seeds = seeds_of(part)
    scale, unit = 1.0, spec.unit
    if metric in BYTE_METRICS:
        unit, scale = byte_unit(part[f"{metric}_mean"].max())
    size_unit, size_scale = "", 1.0
    if size_column is not None and size != BYTE_COMPRESSION_RATIO:
        size_unit, size_scale = byte_unit(part[size_column].max())
    rows, unfinished = [], []
    for row in rows_of(part):
        cells, entries = _row_cells(row, part, columns, spec, size_column, all_seeds)
        precisions = part.loc[part["row_key"] == row.row_key, "precision"]
        rows.append((row.shown, budget_with_precision(row.budget, precisions), cells))
        unfinished += entries
    size_title = None
    if size_column is not None:
        size_title = SIZE_TITLES[size].replace("kB", size_unit)
    return TableView(
        title=setup_title(setup),
        setup=setup,
        columns=columns,
        column_titles=[column_title(d, group_by) for d in columns],
        rows=rows,
        value_title=spec.title,
        value_unit=unit,
        decimals=0 if metric in BYTE_METRICS and unit == "bytes" else
        (2 if metric in BYTE_METRICS else spec.decimals),
        size_title=size_title,
        unfinished=unfinished,
        caption=caption(spec, unit, size, size_unit, group_by, all_seeds,
                        bool((part["missing"] > 0).any()),
                        bool((part["layer_collapse"] > 0).any()),
                        spend.differences(part), bool((part["degenerate"] > 0).any()),
                        bool(autocast_precisions(part["precision"]))),
        scale=scale,
        size_scale=size_scale,
        size_kind=size,
    )


def _row_cells(row: Row, part: pd.DataFrame, columns: list[float], spec: Metric,
               size_column: str | None, all_seeds: list[int]) -> tuple[list[Cell], list[str]]:
    """A row's cell per column, and its runs that did not finish (missing ones aside)."""
    cells, unfinished = [], []
    mine = part[part["row_key"] == row.row_key]
    for d in columns:
        hit = mine[mine["density"] == d]
        if hit.empty:
            cells.append(Cell(empty=True))
            continue
        r = hit.iloc[0]
        cells.append(_cell(r, spec, size_column, all_seeds))
        for entry in str(r["not_finished"]).split("; "):
            if entry and "missing" not in entry:
                unfinished.append(f"{row.label} d={d:g} {entry}")
    return cells, unfinished


def _cell(r: pd.Series, spec: Metric, size_column: str | None, all_seeds: list[int]) -> Cell:
    """One summary row as a cell: the metric's mean and std, its size, spend and notes."""
    cell = Cell(mean=r[f"{spec.column}_mean"], std=r[f"{spec.column}_std"], n=int(r["n"]))
    if size_column is not None:
        cell.size = r[size_column]
    cell.epochs, cell.search = r["total_epochs_mean"], r["search_seconds_mean"]
    for status in NOT_FINISHED:
        if r[status]:
            cell.notes.append(f"{r[status]} {status}")
    absent = len(all_seeds) - int(r["runs"])
    if absent > 0:
        cell.notes.append(f"{counted(absent, 'seed')} not run")
    if r["layer_collapse"]:
        cell.notes.append(f"{r['layer_collapse']} collapsed")
    if r["degenerate"]:
        cell.notes.append(f"{r['degenerate']} degenerate")
    return cell


def _size_caption(size: str, size_unit: str) -> str:
    return {"artifact": f"; {size_unit}: artifact file size, mean over seeds "
                        f"(1 kB = 1000 bytes)",
            "paper": f"; paper {size_unit}: the method paper's own byte accounting "
                     f"(formula per method in the CSV)",
            "pemn": f"; PEMN {size_unit}: PEMN's count for every method alike, weights only "
                    f"(32-bit values + 1-bit mask, no norm or bias tensors)",
            "stored": f"; stored {size_unit}: artifact with random weights stored as float32 "
                      f"values (PEMN's convention)",
            BYTE_COMPRESSION_RATIO: "; ratio: dense float32 bytes / artifact bytes",
            "none": ""}[size]


def seeds_caption(seeds: list[int]) -> str:
    """What a cell's value and its ``(n=k)`` are, for the seeds the table's runs have."""
    if len(seeds) == 1:
        return f" of seed {seeds[0]} (one seed, no spread); (n=1): its run finished"
    return (f", mean ± sample std over seeds {', '.join(map(str, seeds))} (their finished "
            f"runs); (n=k): k of these {len(seeds)} seeds finished")


def caption(spec: Metric, unit: str, size: str, size_unit: str, group_by: str,
            seeds: list[int], missing: bool, collapse: bool = False,
            spent: list[str] | None = None, degenerate: bool = False,
            autocast: bool = False) -> str:
    """What a table's cells, columns and notes mean (``autocast``: some runs trained in 16
    bits, which their budget names)."""
    what = GROUP_BY_CAPTIONS[group_by]
    unit_text = f" ({unit})" if unit else ""
    final = "final-epoch " if spec.column in ("accuracy", "top5", "loss") else ""
    text = f"Cells: {final}{spec.title}{unit_text}{seeds_caption(seeds)}; {what}"
    text += _size_caption(size, size_unit)
    text += "; budget: named recipe and epochs (runs of different budgets are never pooled)"
    if autocast:
        text += " and the training precision where it is not float32"
    text += spend.table_caption(spent or [])
    text += "; –: no run of this method here"
    if missing:
        text += "; missing: in the preset's grid but not run"
    if collapse:
        text += "; collapsed: finished runs whose pruning left a layer with no weight"
    if degenerate:
        text += ("; degenerate: finished runs with pruning rounds whose scores ranked nothing "
                 "(those rounds pruned nothing; the record's method_notes list them)")
    text += "."
    return text
