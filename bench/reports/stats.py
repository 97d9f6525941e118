"""Seeds pooled per spec: the summary table every report and figure is drawn from."""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

import bench.reports.spend as spend

# statuses of a grid's runs that are not a result ("missing": in a preset's grid, not run)
NOT_FINISHED = ("failed", "diverged", "running", "missing")
STAT_METRICS = ("accuracy", "top5", "loss", "artifact_bytes", "paper_bytes", "stored_bytes",
                "dense_bytes", "compression_ratio", "speedup", "seconds", "pemn_bytes",
                *spend.COLUMNS)
# spec columns a summary row keeps from its first run
SPEC_COLUMNS = ("method", "method_name", "hparams", "method_version", "model", "model_kwargs",
                "dataset", "train_subset", "test_subset", "value_codec", "density", "epochs",
                "budget", "recipe", "setup", "group")


def _stats(values: pd.Series) -> tuple[float, float]:
    v = pd.to_numeric(values, errors="coerce").dropna().astype(float)
    mean = float(v.mean()) if len(v) else math.nan
    std = float(v.std(ddof=1)) if len(v) > 1 else math.nan
    return mean, std


def _summary_row(runs: pd.DataFrame) -> dict[str, Any]:
    """The runs of one spec (every seed) as one row."""
    first = runs.iloc[0]
    done = runs[runs["status"] == "finished"]
    row: dict[str, Any] = {c: first[c] for c in SPEC_COLUMNS}
    spec = json.loads(first["group"])
    spec.pop("density", None)
    row["row_key"] = json.dumps(spec, sort_keys=True)  # a table row: all but the density
    row["sparsity"] = 100.0 * (1.0 - float(first["density"]))
    row["seeds"] = ",".join(str(s) for s in sorted(runs["seed"]))
    row["n"] = len(done)
    row["runs"] = len(runs)
    for status in NOT_FINISHED:
        row[status] = int((runs["status"] == status).sum())
    for metric in STAT_METRICS:
        row[f"{metric}_mean"], row[f"{metric}_std"] = _stats(done[metric])
    row["precision"] = ",".join(sorted({p for p in done["precision"] if p}))
    formulas = sorted({f for f in done["paper_formula"] if isinstance(f, str)})
    row["paper_formula"] = ",".join(formulas)
    row["layer_collapse"] = int(done["layer_collapse"].fillna(False).astype(bool).sum())
    row["degenerate"] = int((done["degenerate_rounds"].fillna(0) > 0).sum())
    not_done = runs[runs["status"] != "finished"].sort_values("seed")
    row["not_finished"] = "; ".join(
        f"seed {s}: {st}" + (f" ({e})" if e else "")
        for s, st, e in zip(not_done["seed"], not_done["status"], not_done["error"]))
    for extra in ("item", "preset", "order"):
        if extra in runs:
            row[extra] = first[extra]
    return row


def seeds_of(table: pd.DataFrame) -> list[int]:
    """Every seed any run of a summary (or a part of one) has."""
    return sorted({int(s) for seeds in table["seeds"] for s in str(seeds).split(",") if s != ""})


def summary_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Seeds pooled per spec (everything but the seed): one row per cell of the tables.

    Every metric gets ``<metric>_mean`` and ``<metric>_std`` (sample std, ddof 1) over the
    finished runs; ``n`` counts them, ``seeds`` lists every run's seed, ``failed``,
    ``diverged``, ``running`` and ``missing`` count the others and ``not_finished`` names them.
    """
    table = pd.DataFrame([_summary_row(runs)
                          for _, runs in frame.groupby("group", sort=False)])
    if len(table):
        table = table.sort_values(["dataset", "model", "method", "density", "epochs"],
                                  ascending=[True, True, True, False, True], ignore_index=True)
    return table
