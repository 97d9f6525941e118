"""What each run spent beside its budget: epochs trained in all and its search cost.

The budget B is the recipe's epochs, the final training's. Some methods train more: LTH
trains every round (its search), so at density 0.2 it trains B nine times; magnitude
splits B between a dense phase and the fine-tune (B in all). Scoring methods spend
forward and backward passes before training. Tables and captions show these totals, so
"the same budget" is said only where every method trained the same epochs in all.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

# per-run columns of the report frame; each gets a mean and std over seeds in the summary
COLUMNS = ("total_epochs", "final_epochs", "trainings", "search_extra_epochs",
           "search_seconds", "search_forward_images", "search_backward_images")


def fields(budget: dict[str, Any] | None, phases: list[Any] | None) -> dict[str, Any]:
    """A record's spend: total epochs = every training phase's epochs, and at least the
    final training plus the search's declared extra epochs (training outside the engine)."""
    if not budget:
        return dict.fromkeys(COLUMNS)
    search = budget.get("search") or {}
    final = budget.get("epochs")
    extra = search.get("extra_epochs") or 0
    counted = [v for v in (budget.get("all_phases_epochs"),
                           None if final is None else final + extra) if v is not None]
    trainings = len(phases) if phases is not None else None
    if trainings is None and final and extra and extra % final == 0:  # exports drop phases
        trainings = 1 + int(extra // final)
    return {
        "total_epochs": max(counted) if counted else None,
        "final_epochs": final,
        "trainings": trainings,
        "search_extra_epochs": extra,
        "search_seconds": search.get("seconds"),
        "search_forward_images": search.get("forward_images"),
        "search_backward_images": search.get("backward_images"),
    }


def _num(value: Any) -> str:
    return f"{value:g}" if abs(value - round(value)) < 1e-9 else f"{value:.1f}"


def epochs_text(row: Any) -> str | None:
    """``5 trainings of 2 ep (10 ep in all)`` for a summary row; phases of unequal length
    (magnitude's dense + fine-tune, a rewind phase) say the total and the final training."""
    total = getattr(row, "total_epochs_mean", math.nan)
    if total is None or pd.isna(total):
        return None
    k = getattr(row, "trainings_mean", math.nan)
    e = getattr(row, "final_epochs_mean", math.nan)
    if pd.isna(k) or pd.isna(e) or k <= 1:
        return f"{_num(total)} ep in all"
    if abs(k * e - total) < 1e-9:
        return f"{_num(k)} trainings of {_num(e)} ep ({_num(total)} ep in all)"
    return f"{_num(total)} ep in all over {_num(k)} trainings (the final one {_num(e)} ep)"


def differences(table: pd.DataFrame) -> list[str]:
    """One phrase per method and budget whose finished runs did not train exactly their
    budget's epochs in all: ``lth: 5 trainings of 2 ep (10 ep in all) at d=0.5``."""
    if table.empty or "total_epochs_mean" not in table:
        return []
    done = table[(table["n"] > 0) & table["total_epochs_mean"].notna()]
    budgets = table.groupby("method")["budget"].nunique()
    out = []
    for (method, _), rows in done.groupby(["method", "budget"], sort=True):
        by_text: dict[str, list[str]] = {}
        for r in rows.sort_values("density", ascending=False).itertuples():
            if abs(float(r.total_epochs_mean) - float(r.epochs)) < 1e-9:
                continue
            by_text.setdefault(epochs_text(r) or "?", []).append(f"{r.density:g}")
        if by_text:
            name = f"{method} ({rows['budget'].iloc[0]})" if budgets[method] > 1 else method
            out.append(f"{name}: " + "; ".join(f"{t} at d={', '.join(ds)}"
                                               for t, ds in by_text.items()))
    return out


def caption_note(table: pd.DataFrame) -> str:
    """The sentence a caption adds when totals differ ("" when every method trained its
    budget exactly once in all)."""
    diffs = differences(table)
    if not diffs:
        return ""
    return ("Not the same total: " + "; ".join(diffs) + " (every training phase "
            "counted, the search's included); every other method trained exactly its "
            "budget's epochs.")


def table_caption(spent: list[str]) -> str:
    """What a table's ``ep`` and ``search s`` columns mean, and which rows spent more."""
    text = ("; ep: epochs trained in all (final training plus the method's search, e.g. "
            "LTH's earlier rounds), search s: seconds spent outside training (scoring, "
            "pruning), means over seeds")
    if spent:
        text += "; not trained exactly the budget in all: " + "; ".join(spent)
    return text


def epochs_cell(value: float) -> str:
    """A table's ``ep`` cell: the mean total epochs over seeds."""
    return "" if value is None or pd.isna(value) else _num(float(value))
