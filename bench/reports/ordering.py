"""The order rows of a table and lines of a figure come in: one ordering for both.

Dense first, then a preset's methods in the preset's order, then by name, variants by their
hyperparameter values, then by budget.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from bench.reports.labels import PEMN_FAMILY, full_hparams, spec_difference


def _num(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def method_order(name: str, hparams: str) -> tuple[Any, ...]:
    """Dense first, then by name, variants by their hyperparameter values."""
    hp = json.loads(hparams) if isinstance(hparams, str) else (hparams or {})
    values = tuple((k, _num(v)) for k, v in sorted(hp.items()))
    return (name != "dense", name, len(values), tuple(str(v) for v in values), values)


@dataclass(frozen=True)
class Row:
    """One table row or figure line: a method variant at one budget (all but density, seed)."""

    label: str  # the method as --methods spells it
    name: str
    hparams: str
    budget: str
    row_key: str
    shown: str  # the label, plus what tells it from rows of the same label and budget


def rows_of(part: pd.DataFrame) -> list[Row]:
    """The rows of one (dataset, model) part of the summary, in order.

    A preset's summary (an ``order`` column) lists methods in the preset's order.
    """
    rank = {}
    if "order" in part:
        rank = {m: o for m, o in zip(part["method"], part["order"]) if pd.notna(o)}
    keys = sorted({(r.method, r.method_name, r.hparams, r.budget, r.row_key)
                   for r in part.itertuples()},
                  key=lambda k: (k[1] != "dense", rank.get(k[0], math.inf),
                                 method_order(k[1], k[2]), k[3], k[4]))
    twins: dict[tuple[str, str], list[str]] = {}
    for label, _, _, budget, row_key in keys:
        twins.setdefault((label, budget), []).append(row_key)
    out = []
    for label, name, hparams, budget, row_key in keys:
        shown = label
        if len(twins[(label, budget)]) > 1:  # same method and budget, another spec
            shown += f" ({spec_difference(row_key, twins[(label, budget)])})"
        out.append(Row(label, name, hparams, budget, row_key, shown))
    return out


def pemn_order(row: Any) -> tuple[Any, ...]:
    """PEMN's bars: dense, mask, one-layer, MP, then RP by falling ratio, then density."""
    names = ("dense", *PEMN_FAMILY)
    ratio = full_hparams(row.method_name, json.loads(row.hparams)).get("ratio", 1.0)
    return (names.index(row.method_name), -float(ratio), row.hparams, -row.density)
