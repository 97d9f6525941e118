"""Tables from the run store: records in, numbers out; nothing here trains.

Runs are grouped by everything in their spec except the seed, so runs with
different budgets or recipes are never averaged together.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
from tabulate import tabulate

from bench.store import RunStore

FORMATS = ("plain", "md", "csv")


def records_frame(root: Path) -> pd.DataFrame:
    """One row per record: spec fields, status and headline metrics."""
    rows: list[dict[str, Any]] = []
    for path, record in RunStore(root).records():
        spec = record["spec"]
        hparams = spec.get("hparams") or {}
        variant = "".join(f":{k}={v}" for k, v in sorted(hparams.items()))
        group = {k: v for k, v in spec.items() if k != "seed"}
        metrics = record.get("metrics") or {}
        budget = record.get("budget") or {}
        rows.append(
            {
                "method": spec["method"] + variant,
                "model": spec["model"],
                "dataset": spec["dataset"],
                "density": spec["density"],
                "seed": spec["seed"],
                "epochs": spec["recipe"]["epochs"],
                "status": record["status"],
                "accuracy": metrics.get("test_accuracy"),
                "seconds": budget.get("all_phases_train_seconds"),
                "group": json.dumps(group, sort_keys=True),
                "path": str(path),
            }
        )
    return pd.DataFrame(rows)


def summary_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Seeds pooled per spec: accuracy mean and sample std over finished runs, others counted."""
    out = []
    for _, runs in frame.groupby("group", sort=False):
        first = runs.iloc[0]
        done = runs[runs["status"] == "finished"]
        acc = done["accuracy"].astype(float)
        not_done = runs[runs["status"] != "finished"]
        out.append(
            {
                "method": first["method"],
                "model": first["model"],
                "dataset": first["dataset"],
                "density": first["density"],
                "epochs": first["epochs"],
                "seeds": ",".join(str(s) for s in sorted(runs["seed"])),
                "n": len(done),
                "accuracy_mean": acc.mean() if len(acc) else float("nan"),
                "accuracy_std": acc.std(ddof=1) if len(acc) > 1 else float("nan"),
                "seconds": done["seconds"].astype(float).mean() if len(done) else float("nan"),
                "not_finished": ", ".join(
                    f"seed {s}: {st}" for s, st in zip(not_done["seed"], not_done["status"])
                ),
            }
        )
    table = pd.DataFrame(out)
    if len(table):
        table = table.sort_values(["dataset", "model", "method", "density", "epochs"],
                                  ascending=[True, True, True, False, True], ignore_index=True)
    return table


def _accuracy_cell(row: pd.Series) -> str:
    if row["n"] == 0:
        return "no finished run"
    text = f"{row['accuracy_mean']:.2f}"
    if row["n"] > 1:
        text += f" ± {row['accuracy_std']:.2f}"
    return text


def render(table: pd.DataFrame, fmt: str = "plain") -> str:
    """The summary as text: a terminal table, Markdown or CSV."""
    if fmt == "csv":
        return table.to_csv(index=False)
    shown = pd.DataFrame(
        {
            "method": table["method"],
            "model": table["model"],
            "dataset": table["dataset"],
            "density": table["density"].map(lambda d: f"{d:g}"),
            "epochs": table["epochs"],
            "seeds": table["seeds"],
            "accuracy %": table.apply(_accuracy_cell, axis=1),
            "train s": table["seconds"].map(lambda s: "" if pd.isna(s) else f"{s:.1f}"),
            "not finished": table["not_finished"],
        }
    )
    return tabulate(shown, headers="keys", tablefmt="github" if fmt == "md" else "simple",
                    showindex=False, disable_numparse=True)
