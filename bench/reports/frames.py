"""Run records as a pandas frame (one row per record), and the filters of the commands."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

import bench.reports.spend as spend
from bench.errors import BenchError
from bench.provenance import precision_of
from bench.reports.labels import budget_label, method_label
from bench.reports.paper_bytes import pemn_way_bytes
from bench.reports.snapshots import load_result_set
from bench.store import RunSpec, RunStore

FRAME_COLUMNS = (
    "key", "method", "method_name", "hparams", "method_version", "model", "model_kwargs",
    "dataset", "train_subset", "test_subset", "value_codec", "density", "seed", "epochs",
    "budget", "precision", "recipe", "status", "error", "accuracy", "top5", "loss",
    "artifact_bytes", "paper_bytes", "paper_formula", "stored_bytes", "dense_bytes",
    "compression_ratio", "speedup", "layer_collapse", "degenerate_rounds", "seconds", "setup",
    "group", "path", "pemn_bytes", *spend.COLUMNS,
)


def _error_text(error: dict[str, Any] | None) -> str:
    """``RuntimeError: first line of the message`` ("" without an error)."""
    if not error:
        return ""
    first = str(error.get("message", "")).strip().splitlines()
    return f"{error.get('type', 'Error')}: {first[0] if first else ''}"


def _setup(spec: dict[str, Any]) -> str:
    """What a table is of: data set, model and its options, subsets, value codec (JSON)."""
    setup = {k: spec.get(k) for k in ("dataset", "model", "train_subset", "test_subset")}
    setup["model_kwargs"] = spec.get("model_kwargs") or {}
    setup["value_codec"] = spec.get("value_codec", "float32")
    return json.dumps(setup, sort_keys=True)


def _metric_fields(metrics: dict[str, Any], notes: dict[str, Any] | None) -> dict[str, Any]:
    """The record's numbers under the frame's column names."""
    paper = metrics.get("paper_bytes") or {}
    stored = metrics.get("artifact_bytes_stored_convention")
    if stored is None:  # trained weights: the stored convention is the artifact itself
        stored = metrics.get("artifact_bytes")
    return {
        "accuracy": metrics.get("test_accuracy"),
        "top5": metrics.get("test_top5"),
        "loss": metrics.get("test_loss"),
        "artifact_bytes": metrics.get("artifact_bytes"),
        "paper_bytes": paper.get("bytes"),
        "paper_formula": paper.get("formula"),
        "stored_bytes": stored,
        "dense_bytes": metrics.get("dense_bytes"),
        "compression_ratio": metrics.get("compression_ratio"),  # the byte compression ratio
        "speedup": metrics.get("theoretical_speedup"),
        "layer_collapse": metrics.get("layer_collapse"),
        "degenerate_rounds": len((notes or {}).get("degenerate_rounds") or []),
    }


def record_row(spec: dict[str, Any], status: str, key: str, path: str,
               metrics: dict[str, Any] | None = None, budget: dict[str, Any] | None = None,
               error: dict[str, Any] | None = None, phases: list[Any] | None = None,
               notes: dict[str, Any] | None = None,
               environment: dict[str, Any] | None = None) -> dict[str, Any]:
    """One frame row: a record's spec, status, metrics and training precision (a missing run
    has no metrics and no precision)."""
    metrics = metrics or {}
    budget = budget or {}
    hparams = spec.get("hparams") or {}
    return {
        "key": key,
        "method": method_label(spec["method"], hparams),
        "method_name": spec["method"],
        "hparams": json.dumps(hparams, sort_keys=True),
        "method_version": int(spec.get("method_version", 1)),
        "model": spec["model"],
        "model_kwargs": json.dumps(spec.get("model_kwargs") or {}, sort_keys=True),
        "dataset": spec["dataset"],
        "train_subset": spec.get("train_subset"),
        "test_subset": spec.get("test_subset"),
        "value_codec": spec.get("value_codec", "float32"),
        "density": float(spec["density"]),
        "seed": int(spec["seed"]),
        "epochs": spec["recipe"]["epochs"],
        "budget": budget_label(spec["recipe"]),
        "precision": precision_of(environment) if environment else "",
        "recipe": json.dumps(spec["recipe"], sort_keys=True),
        "status": status,
        "error": _error_text(error),
        **_metric_fields(metrics, notes),
        "seconds": budget.get("all_phases_train_seconds"),
        "setup": _setup(spec),
        # runs of one spec on other data pool here; the data fingerprint is in the key
        "group": json.dumps({k: v for k, v in spec.items() if k not in ("seed", "data")},
                            sort_keys=True),
        "path": path,
        "pemn_bytes": pemn_way_bytes(metrics),
        **spend.fields(budget, phases),
    }


def frame_from_records(records: Iterable[tuple[Path | str, dict[str, Any]]]) -> pd.DataFrame:
    """One row per record (any iterable of (path, record)): spec fields, status, metrics."""
    rows = []
    for path, record in records:
        spec = record["spec"]
        key = RunSpec.from_record(spec).grid_key  # the key a preset's grid names
        rows.append(record_row(spec, record["status"], key, str(path), record.get("metrics"),
                               record.get("budget"), record.get("error"), record.get("phases"),
                               record.get("method_notes"), record.get("environment")))
    return pd.DataFrame(rows, columns=list(FRAME_COLUMNS))


def records_frame(root: Path) -> pd.DataFrame:
    """One row per record in the run store at ``root`` (or in a ``bench export`` snapshot
    file): spec fields, status and metrics."""
    root = Path(root)
    if root.is_file():
        return frame_from_records((f"{root}#{r['key']}", r) for r in load_result_set(root))
    return frame_from_records(RunStore(root).records())


def load_frame(root: Path) -> pd.DataFrame:
    """:func:`records_frame`, with a one-line error when the store is missing or empty."""
    root = Path(root)
    if not root.exists():
        raise BenchError(f"no results in {root}; run `python -m bench run` first or pass --results")
    frame = records_frame(root)
    if frame.empty:
        raise BenchError(f"no run records in {root}")
    return frame


def store_frame(root: Path, required: bool) -> pd.DataFrame:
    """:func:`load_frame` when the store is ``required``, else whatever it holds (a preset's
    grid is expected whole: an absent store is a grid not yet run)."""
    if required:
        return load_frame(root)
    return records_frame(root) if Path(root).exists() else frame_from_records([])


def _names(text: str | Sequence[str] | None) -> list[str] | None:
    if text is None:
        return None
    items = text.split(",") if isinstance(text, str) else list(text)
    out = [t.strip() for t in items if t.strip()]
    return out or None


def filter_frame(frame: pd.DataFrame, *, methods: str | Sequence[str] | None = None,
                 models: str | Sequence[str] | None = None,
                 datasets: str | Sequence[str] | None = None) -> pd.DataFrame:
    """Rows of the given methods (a name matches all its variants), models and datasets.

    A name that matches no run is a user mistake: a one-line error lists the names present.
    """
    keep = pd.Series(True, index=frame.index)
    for option, wanted, columns in (("--methods", methods, ("method_name", "method")),
                                    ("--models", models, ("model",)),
                                    ("--datasets", datasets, ("dataset",))):
        names = _names(wanted)
        if names is None:
            continue
        present = sorted(set().union(*(set(frame[c]) for c in columns)))
        unknown = [n for n in names if n not in present]
        if unknown:
            raise BenchError(f"{option}: no runs of {', '.join(unknown)} in the store; "
                             f"present: {', '.join(present) or 'none'}")
        match = pd.Series(False, index=frame.index)
        for c in columns:
            match |= frame[c].isin(names)
        keep &= match
    return frame[keep]
