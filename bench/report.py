"""Tables from the run store: records in, numbers out; nothing here trains.

``python -m bench report`` prints one table per (dataset, model): rows are methods (with
their variant hyperparameters) and training budgets, columns are densities (or sparsities,
or nominal compression ratios), and each cell is the mean +- sample standard deviation over
seeds with the seed count, beside the mean artifact size. Runs are pooled only when their
specs agree in everything but the seed, so runs with different budgets or recipes are never
averaged together: the budget is a column of its own.

Runs that failed, diverged or are still running are counted in their cell and listed under
the table; with ``--preset`` the preset's whole grid is expected and every run it lacks is
shown as missing, with the ``bench run`` command that would produce it.

Formats: ``plain`` (terminal, tabulate), ``md`` (Markdown), ``latex`` (booktabs) and
``csv`` (one row per cell, every statistic in its own column, for pandas).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from tabulate import tabulate

from bench import spend
from bench.compare import load_result_set
from bench.defaults import results_root
from bench.errors import BenchError
from bench.paper_bytes import pemn_way_bytes
from bench.presets import PRESETS, RECIPES, Preset, get_preset
from bench.recipe import Recipe, scaled_epochs
from bench.store import RunSpec, RunStore

FORMATS = ("plain", "md", "latex", "csv")
GROUP_BY = ("density", "sparsity", "compression")
SIZES = ("artifact", "paper", "pemn", "stored", "ratio", "none")
NOT_FINISHED = ("failed", "diverged", "running", "missing")


@dataclass(frozen=True)
class Metric:
    """A per-run number the tables can show: its frame column, name, unit and decimals."""

    column: str
    title: str
    unit: str
    decimals: int


METRICS: dict[str, Metric] = {
    "accuracy": Metric("accuracy", "top-1 test accuracy", "%", 2),
    "top5": Metric("top5", "top-5 test accuracy", "%", 2),
    "loss": Metric("loss", "test loss", "", 3),
    "artifact_bytes": Metric("artifact_bytes", "artifact size", "bytes", 0),
    "paper_bytes": Metric("paper_bytes", "paper-convention size", "bytes", 0),
    "stored_bytes": Metric("stored_bytes", "stored-convention size", "bytes", 0),
    "pemn_bytes": Metric("pemn_bytes", "PEMN-convention size", "bytes", 0),
    "compression_ratio": Metric("compression_ratio", "compression ratio dense/artifact", "x", 2),
    "speedup": Metric("speedup", "theoretical speedup (dense/sparse MACs)", "x", 2),
    "seconds": Metric("seconds", "training time", "s", 1),
}
BYTE_METRICS = ("artifact_bytes", "paper_bytes", "stored_bytes", "pemn_bytes")

DATASET_NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}
DATASET_SIZES = {"cifar10": (50000, 10000), "cifar100": (50000, 10000)}


# ----------------------------------------------------------------------------- names


def dataset_title(name: str) -> str:
    return DATASET_NAMES.get(name, name)


def model_title(name: str, kwargs: dict[str, Any] | None = None) -> str:
    """``resnet20`` -> ``ResNet-20``, ``convmixer-256-6`` -> ``ConvMixer-256/6``, plus kwargs."""
    text = name
    for prefix, pretty in (("resnet", "ResNet-"), ("vgg", "VGG-")):
        if name.startswith(prefix) and name[len(prefix):].isdigit():
            text = pretty + name[len(prefix):] + ("-BN" if prefix == "vgg" else "")
    parts = name.split("-")
    if len(parts) == 3 and parts[0] in ("convmixer", "vit") and parts[1].isdigit():
        text = {"convmixer": "ConvMixer", "vit": "ViT"}[parts[0]] + f"-{parts[1]}/{parts[2]}"
    if kwargs:
        text += " (" + ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}"
                                 for k, v in sorted(kwargs.items())) + ")"
    return text


def method_label(name: str, hparams: dict[str, Any] | None) -> str:
    """The method and its non-default hyperparameters, as ``--methods`` spells them."""
    return name + "".join(f":{k}={v}" for k, v in sorted((hparams or {}).items()))


def budget_label(recipe: dict[str, Any]) -> str:
    """The training budget a recipe stands for: its named recipe and epochs.

    ``px-resnet20, 16 of 160 ep`` is the named recipe at a tenth of its epochs
    (``--budget-scale 0.1``); a recipe that matches no named one at any budget is
    ``custom-<hash>``.
    """
    try:
        r = Recipe.from_dict(recipe)
    except (BenchError, TypeError, ValueError):
        r = None
    if r is not None:
        for name, named in RECIPES.items():
            if named.with_epochs(r.epochs) == r:
                if r.epochs == named.epochs:
                    return f"{name}, {r.epochs} ep"
                return f"{name}, {r.epochs} of {named.epochs} ep"
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:6]
    epochs = recipe.get("epochs", "?")
    return f"custom-{digest}, {epochs} ep"


def sparsity_text(density: float) -> str:
    """Sparsity in percent with up to two decimals: 0.64 -> ``36``, 0.4096 -> ``59.04``."""
    text = f"{100 * (1 - density):.2f}".rstrip("0").rstrip(".")
    return text or "0"


def column_title(density: float, group_by: str) -> str:
    if group_by == "sparsity":
        return f"s={sparsity_text(density)}%"
    if group_by == "compression":
        return f"{1 / density:.3g}x"
    return f"d={density:.4g}"


def _uses_density(name: str) -> bool | None:
    from bench.registry import methods

    cls = methods().get(name)
    return None if cls is None else bool(cls.uses_density)


def full_hparams(name: str, hparams: dict[str, Any] | None) -> dict[str, Any]:
    """Every hyperparameter of a registered method, defaults filled in (else ``hparams``)."""
    from dataclasses import asdict

    from bench.registry import methods

    cls = methods().get(name)
    if cls is None:
        return dict(hparams or {})
    try:
        return asdict(cls.Hparams(**(hparams or {})))
    except (TypeError, ValueError):
        return dict(hparams or {})


# ----------------------------------------------------------------------------- the frame

FRAME_COLUMNS = (
    "key", "method", "method_name", "hparams", "method_version", "model", "model_kwargs",
    "dataset", "train_subset", "test_subset", "value_codec", "density", "seed", "epochs",
    "budget", "recipe", "status", "error", "accuracy", "top5", "loss", "artifact_bytes",
    "paper_bytes", "paper_formula", "stored_bytes", "dense_bytes", "compression_ratio",
    "speedup", "layer_collapse", "degenerate_rounds", "seconds", "setup", "group", "path",
    "pemn_bytes", *spend.COLUMNS,
)


def _row(spec: dict[str, Any], status: str, key: str, path: str,
         metrics: dict[str, Any] | None = None, budget: dict[str, Any] | None = None,
         error: dict[str, Any] | None = None, phases: list[Any] | None = None,
         notes: dict[str, Any] | None = None) -> dict[str, Any]:
    metrics = metrics or {}
    budget = budget or {}
    hparams = spec.get("hparams") or {}
    model_kwargs = spec.get("model_kwargs") or {}
    paper = metrics.get("paper_bytes") or {}
    stored = metrics.get("artifact_bytes_stored_convention")
    if stored is None:  # trained weights: the stored convention is the artifact itself
        stored = metrics.get("artifact_bytes")
    setup = {k: spec.get(k) for k in ("dataset", "model", "train_subset", "test_subset")}
    setup["model_kwargs"] = model_kwargs
    setup["value_codec"] = spec.get("value_codec", "float32")
    message = ""
    if error:
        first = str(error.get("message", "")).strip().splitlines()
        message = f"{error.get('type', 'Error')}: {first[0] if first else ''}"
    return {
        "key": key,
        "method": method_label(spec["method"], hparams),
        "method_name": spec["method"],
        "hparams": json.dumps(hparams, sort_keys=True),
        "method_version": int(spec.get("method_version", 1)),
        "model": spec["model"],
        "model_kwargs": json.dumps(model_kwargs, sort_keys=True),
        "dataset": spec["dataset"],
        "train_subset": spec.get("train_subset"),
        "test_subset": spec.get("test_subset"),
        "value_codec": spec.get("value_codec", "float32"),
        "density": float(spec["density"]),
        "seed": int(spec["seed"]),
        "epochs": spec["recipe"]["epochs"],
        "budget": budget_label(spec["recipe"]),
        "recipe": json.dumps(spec["recipe"], sort_keys=True),
        "status": status,
        "error": message,
        "accuracy": metrics.get("test_accuracy"),
        "top5": metrics.get("test_top5"),
        "loss": metrics.get("test_loss"),
        "artifact_bytes": metrics.get("artifact_bytes"),
        "paper_bytes": paper.get("bytes"),
        "paper_formula": paper.get("formula"),
        "stored_bytes": stored,
        "dense_bytes": metrics.get("dense_bytes"),
        "compression_ratio": metrics.get("compression_ratio"),
        "speedup": metrics.get("theoretical_speedup"),
        "layer_collapse": metrics.get("layer_collapse"),
        "degenerate_rounds": len((notes or {}).get("degenerate_rounds") or []),
        "seconds": budget.get("all_phases_train_seconds"),
        "setup": json.dumps(setup, sort_keys=True),
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
        rows.append(_row(spec, record["status"], key, str(path), record.get("metrics"),
                         record.get("budget"), record.get("error"), record.get("phases"),
                         record.get("method_notes")))
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


# ----------------------------------------------------------------------------- filters


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


@dataclass(frozen=True)
class GridOptions:
    """How a preset's grid was run: ``bench run`` overrides that change the run keys."""

    budget_scale: float = 1.0
    width: float | None = None
    train_subset: int | None = None
    test_subset: int | None = None

    def run_args(self) -> list[str]:
        """The ``bench run`` options that reproduce these overrides."""
        out = []
        if self.budget_scale != 1.0:
            out += ["--budget-scale", f"{self.budget_scale:g}"]
        if self.width is not None:
            out += ["--width", f"{self.width:g}"]
        if self.train_subset is not None:
            out += ["--train-subset", str(self.train_subset)]
        if self.test_subset is not None:
            out += ["--test-subset", str(self.test_subset)]
        return out

    def describe(self) -> str:
        parts = []
        if self.budget_scale != 1.0:
            parts.append(f"budget scale x{self.budget_scale:g}")
        if self.width is not None:
            parts.append(f"width {self.width:g}")
        if self.train_subset is not None or self.test_subset is not None:
            parts.append(f"subsets {self.train_subset}/{self.test_subset}")
        return ", ".join(parts)


def grid_options(args: argparse.Namespace) -> GridOptions:
    scale = getattr(args, "budget_scale", 1.0)
    if scale is None:
        scale = 1.0
    scaled_epochs(1, scale)  # a scale that is not positive and finite: one error line
    width = getattr(args, "width", None)
    if width is not None and not width > 0:
        raise BenchError(f"--width must be > 0, got {width}")
    for option in ("train_subset", "test_subset"):
        value = getattr(args, option, None)
        if value is not None and value < 1:
            raise BenchError(f"--{option.replace('_', '-')} must be >= 1, got {value}")
    return GridOptions(scale, width, getattr(args, "train_subset", None),
                       getattr(args, "test_subset", None))


def preset_grid(preset: Preset, options: GridOptions = GridOptions(),
                methods: Sequence[str] | None = None) -> list[tuple[str, RunSpec]]:
    """The preset's full grid as (``--methods`` item, spec), with ``options`` applied.

    ``methods`` replaces the preset's method items (used for reference runs such as dense).
    """
    from bench.grid import build_specs
    from bench.registry import methods as registry
    from bench.registry import parse_method_item

    items: list[str] = []
    for item in methods if methods is not None else preset.methods:
        items.extend(registry() if item == "all" else [item])
    model_kwargs = dict(preset.model_kwargs)
    if options.width is not None:
        model_kwargs["width"] = options.width
    out: list[tuple[str, RunSpec]] = []
    for item in items:
        name, overrides = parse_method_item(item)
        specs = build_specs(
            methods=[(name, overrides)],
            models=preset.models,
            datasets=preset.datasets,
            densities={"*": preset.densities, **preset.method_densities},
            seeds=preset.seeds,
            recipe=lambda m: preset.recipe_for(m, options.budget_scale),
            model_kwargs=model_kwargs,
            train_subset=(options.train_subset if options.train_subset is not None
                          else preset.train_subset),
            test_subset=(options.test_subset if options.test_subset is not None
                         else preset.test_subset),
        )
        out.extend((item, s) for s in specs)
    return out


def preset_frame(frame: pd.DataFrame, preset: Preset, options: GridOptions = GridOptions(),
                 reference: Sequence[str] = ()) -> pd.DataFrame:
    """The runs of the preset's grid, with a ``missing`` row for every run the store lacks.

    ``reference`` methods (e.g. dense beside the PX methods) are added when the store has
    runs of them under the preset's recipe and setup, never as missing.
    """
    grid = preset_grid(preset, options)
    have = frame.drop_duplicates("key").set_index("key")
    rows = []
    order = {item: i for i, item in enumerate(dict.fromkeys(
        [*(it for it, _ in grid), *reference]))}
    for item, spec in grid:
        if spec.key in have.index:
            row = have.loc[spec.key].to_dict()
            row["key"] = spec.key
        else:
            row = _row(spec.to_record(), "missing", spec.key, "")
        row["item"] = item
        rows.append(row)
    if reference:
        for item, spec in preset_grid(preset, options, reference):
            if spec.key in have.index:
                row = have.loc[spec.key].to_dict()
                row["key"] = spec.key
                row["item"] = item
                rows.append(row)
    out = pd.DataFrame(rows, columns=[*FRAME_COLUMNS, "item"])
    out["preset"] = preset.name
    out["order"] = [order.get(item, len(order)) for item in out["item"]]
    return out


@dataclass
class MissingGroup:
    """Unfinished runs of a preset that one ``bench run`` command produces.

    ``None`` for models, datasets, densities or seeds means the preset's own (the option is
    left out of the command); finished runs the command also covers are cached, not redone.
    """

    preset: str
    items: list[str]
    models: list[str] | None
    datasets: list[str] | None
    densities: list[float] | None
    seeds: list[int] | None
    statuses: dict[str, int]
    total: int

    def command(self, options: GridOptions, results: Path | None = None) -> str:
        args = ["python", "-m", "bench", "run", "--preset", self.preset,
                "--methods", ",".join(self.items)]
        if self.models is not None:
            args += ["--models", ",".join(self.models)]
        if self.datasets is not None:
            args += ["--datasets", ",".join(self.datasets)]
        if self.densities is not None:
            args += ["--densities", ",".join(repr(float(d)) for d in self.densities)]
        if self.seeds is not None:
            args += ["--seeds", ",".join(str(s) for s in self.seeds)]
        args += options.run_args()
        if results is not None:
            args += ["--results", str(results)]
        return shlex.join(args)

    def describe(self) -> str:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(self.statuses.items()))
        return f"{self.preset}: {', '.join(self.items)}: {counts} (of {self.total} runs)"


def missing_groups(pframe: pd.DataFrame) -> list[MissingGroup]:
    """Unfinished runs of a :func:`preset_frame`, as few ``bench run`` commands as possible."""
    if "item" not in pframe:
        return []
    grid = pframe[pframe["item"].notna()]
    merged: dict[tuple[Any, ...], MissingGroup] = {}
    for (preset, item), runs in grid.groupby(["preset", "item"], sort=False):
        todo = runs[runs["status"] != "finished"]
        if todo.empty:
            continue

        key = (str(preset), _narrowed(todo, runs, "model", str),
               _narrowed(todo, runs, "dataset", str),
               _narrowed(todo, runs, "density", float, reverse=True),
               _narrowed(todo, runs, "seed", int))
        group = merged.get(key)
        if group is None:
            group = merged[key] = MissingGroup(
                preset=key[0], items=[], models=_list(key[1]), datasets=_list(key[2]),
                densities=_list(key[3]), seeds=_list(key[4]), statuses={}, total=0)
        group.items.append(str(item))
        group.total += len(runs)
        for status, n in todo["status"].value_counts().items():
            group.statuses[str(status)] = group.statuses.get(str(status), 0) + int(n)
    return list(merged.values())


def _narrowed(todo: pd.DataFrame, runs: pd.DataFrame, column: str, cast: Any,
              reverse: bool = False) -> tuple[Any, ...] | None:
    """The values of ``column`` still to run, or None when that is all of them."""
    wanted = sorted({cast(v) for v in todo[column]}, reverse=reverse)
    every = sorted({cast(v) for v in runs[column]}, reverse=reverse)
    return None if wanted == every else tuple(wanted)


def _list(values: tuple[Any, ...] | None) -> list[Any] | None:
    return None if values is None else list(values)


# ----------------------------------------------------------------------------- statistics

STAT_METRICS = ("accuracy", "top5", "loss", "artifact_bytes", "paper_bytes", "stored_bytes",
                "dense_bytes", "compression_ratio", "speedup", "seconds", "pemn_bytes",
                *spend.COLUMNS)


def _stats(values: pd.Series) -> tuple[float, float]:
    v = pd.to_numeric(values, errors="coerce").dropna().astype(float)
    mean = float(v.mean()) if len(v) else math.nan
    std = float(v.std(ddof=1)) if len(v) > 1 else math.nan
    return mean, std


def summary_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Seeds pooled per spec (everything but the seed): one row per cell of the tables.

    Every metric gets ``<metric>_mean`` and ``<metric>_std`` (sample std, ddof 1) over the
    finished runs; ``n`` counts them, ``seeds`` lists every run's seed, ``failed``,
    ``diverged``, ``running`` and ``missing`` count the others and ``not_finished`` names them.
    """
    out = []
    for _, runs in frame.groupby("group", sort=False):
        first = runs.iloc[0]
        done = runs[runs["status"] == "finished"]
        row: dict[str, Any] = {c: first[c] for c in (
            "method", "method_name", "hparams", "method_version", "model", "model_kwargs",
            "dataset", "train_subset", "test_subset", "value_codec", "density", "epochs",
            "budget", "recipe", "setup", "group")}
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
        out.append(row)
    table = pd.DataFrame(out)
    if len(table):
        table = table.sort_values(["dataset", "model", "method", "density", "epochs"],
                                  ascending=[True, True, True, False, True], ignore_index=True)
    return table


# ----------------------------------------------------------------------------- rendering


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


def byte_unit(max_bytes: float) -> tuple[str, float]:
    """The unit to print byte counts in: kB below 1e6 bytes, MB below 1e9, else GB."""
    if not max_bytes or math.isnan(max_bytes) or max_bytes < 1e6:
        return "kB", 1e3
    if max_bytes < 1e9:
        return "MB", 1e6
    return "GB", 1e9


def sig3(value: float) -> str:
    """Three significant digits without exponent: 5.64, 71.7, 312."""
    if math.isnan(value):
        return ""
    a = abs(value)
    if a >= 100:
        return f"{value:.0f}"
    if a >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


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


def _value_text(cell: Cell, decimals: int, scale: float, latex: bool) -> str:
    if cell.empty:
        return "--" if latex else "–"
    if cell.n == 0:
        return ", ".join(cell.notes) if cell.notes else "no result"
    if math.isnan(cell.mean):
        text = f"n/a ({cell.n})" if latex else f"n/a (n={cell.n})"
    else:
        mean = f"{cell.mean / scale:.{decimals}f}"
        if cell.n > 1 and not math.isnan(cell.std):
            std = f"{cell.std / scale:.{decimals}f}"
            text = f"${mean} \\pm {std}$" if latex else f"{mean} ± {std}"
        else:
            text = mean
        text += f" (n={cell.n})" if not latex else f" ({cell.n})"
    if cell.notes:
        text += " [" + ", ".join(cell.notes) + "]"
    return text


def _size_text(cell: Cell, kind: str, scale: float) -> str:
    if cell.empty or math.isnan(cell.size):
        return ""
    if kind == "ratio":
        return f"{cell.size:.2f}x"
    return sig3(cell.size / scale)


def build_views(table: pd.DataFrame, *, group_by: str = "density", metric: str = "accuracy",
                size: str = "artifact") -> list[TableView]:
    """The summary split into one table per (dataset, model setup), cells laid out."""
    if group_by not in GROUP_BY:
        raise BenchError(f"unknown --group-by {group_by!r}; choose from {', '.join(GROUP_BY)}")
    if metric not in METRICS:
        raise BenchError(f"unknown --metric {metric!r}; choose from {', '.join(METRICS)}")
    if size not in SIZES:
        raise BenchError(f"unknown --size {size!r}; choose from {', '.join(SIZES)}")
    spec = METRICS[metric]
    size_column = {"artifact": "artifact_bytes_mean", "paper": "paper_bytes_mean",
                   "pemn": "pemn_bytes_mean", "stored": "stored_bytes_mean",
                   "ratio": "compression_ratio_mean"}.get(size)
    views = []
    for setup_json, part in table.groupby("setup", sort=True):
        setup = json.loads(setup_json)
        columns = sorted(set(part["density"]), reverse=True)
        all_seeds = sorted({int(s) for seeds in part["seeds"] for s in str(seeds).split(",")
                            if s != ""})
        scale, unit = 1.0, spec.unit
        if metric in BYTE_METRICS:
            unit, scale = byte_unit(part[f"{metric}_mean"].max())
        size_unit, size_scale = "", 1.0
        if size_column is not None and size != "ratio":
            size_unit, size_scale = byte_unit(part[size_column].max())
        rows = []
        rank = {}
        if "order" in part:  # a preset's tables list methods in the preset's order
            rank = {m: o for m, o in zip(part["method"], part["order"]) if pd.notna(o)}
        row_keys = sorted(
            {(r.method, r.method_name, r.hparams, r.budget, r.row_key)
             for r in part.itertuples()},
            key=lambda k: (k[1] != "dense", rank.get(k[0], math.inf), method_order(k[1], k[2]),
                           k[3], k[4]))
        shown_as: dict[tuple[str, str], list[str]] = {}
        for label, _, _, budget, row_key in row_keys:
            shown_as.setdefault((label, budget), []).append(row_key)
        unfinished = []
        for label, _name, _hp, budget, row_key in row_keys:
            cells = []
            mine = part[part["row_key"] == row_key]
            for d in columns:
                hit = mine[mine["density"] == d]
                if hit.empty:
                    cells.append(Cell(empty=True))
                    continue
                r = hit.iloc[0]
                cell = Cell(mean=r[f"{spec.column}_mean"], std=r[f"{spec.column}_std"],
                            n=int(r["n"]))
                if size_column is not None:
                    cell.size = r[size_column]
                cell.epochs, cell.search = r["total_epochs_mean"], r["search_seconds_mean"]
                for status in NOT_FINISHED:
                    if r[status]:
                        cell.notes.append(f"{r[status]} {status}")
                absent = len(all_seeds) - int(r["runs"])
                if absent > 0:
                    cell.notes.append(f"{absent} seed{'s' if absent > 1 else ''} not run")
                if r["layer_collapse"]:
                    cell.notes.append(f"{r['layer_collapse']} collapsed")
                if r["degenerate"]:
                    cell.notes.append(f"{r['degenerate']} degenerate")
                cells.append(cell)
                for entry in str(r["not_finished"]).split("; "):
                    if entry and "missing" not in entry:
                        unfinished.append(f"{label} d={d:g} {entry}")
            shown = label
            twins = shown_as[(label, budget)]
            if len(twins) > 1:  # same method and budget, another spec (version, suite...)
                shown += f" ({spec_difference(row_key, twins)})"
            rows.append((shown, budget, cells))
        size_title = None
        if size_column is not None:
            size_title = {"artifact": "kB", "paper": "paper kB", "pemn": "PEMN kB",
                          "stored": "stored kB", "ratio": "ratio"}[size].replace("kB", size_unit)
        views.append(TableView(
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
            caption=_caption(spec, unit, size, size_unit, group_by, all_seeds,
                             bool((part["missing"] > 0).any()),
                             bool((part["layer_collapse"] > 0).any()),
                             spend.differences(part), bool((part["degenerate"] > 0).any())),
            scale=scale,
            size_scale=size_scale,
            size_kind=size,
        ))
    return views


def spec_difference(row_key: str, twins: list[str]) -> str:
    """What tells this row from rows of the same method and budget: ``method_version=2``."""
    mine = json.loads(row_key)
    others = [json.loads(t) for t in twins if t != row_key]
    keys = sorted(k for k in mine if any(o.get(k) != mine[k] for o in others))
    parts = [f"{k}={json.dumps(mine[k], sort_keys=True)}" for k in keys if k != "recipe"]
    if "recipe" in keys:
        parts.append("recipe " + hashlib.sha256(
            json.dumps(mine["recipe"], sort_keys=True).encode()).hexdigest()[:6])
    return ", ".join(parts) or "?"


def setup_title(setup: dict[str, Any]) -> str:
    """``CIFAR-10, ResNet-20 (width 0.25), 500/200 images`` for a table or panel."""
    model = model_title(setup["model"], setup["model_kwargs"])
    text = f"{dataset_title(setup['dataset'])}, {model}"
    train, test = setup.get("train_subset"), setup.get("test_subset")
    if train is not None or test is not None:
        full = DATASET_SIZES.get(setup["dataset"], ("all", "all"))
        text += f", {train or full[0]}/{test or full[1]} train/test images"
    if setup.get("value_codec", "float32") != "float32":
        text += f", {setup['value_codec']} values"
    return text


def _caption(spec: Metric, unit: str, size: str, size_unit: str, group_by: str,
             seeds: list[int], missing: bool, collapse: bool = False,
             spent: list[str] | None = None, degenerate: bool = False) -> str:
    what = {"density": "columns: density (kept fraction of prunable weights)",
            "sparsity": "columns: sparsity (pruned % of prunable weights)",
            "compression": "columns: nominal compression 1/density"}[group_by]
    unit_text = f" ({unit})" if unit else ""
    final = "final-epoch " if spec.column in ("accuracy", "top5", "loss") else ""
    text = (f"Cells: {final}{spec.title}{unit_text}, mean ± sample std over seeds, "
            f"(n) = how many of the seeds ({', '.join(map(str, seeds))}) finished; {what}")
    sizes = {"artifact": f"; {size_unit}: artifact file size, mean over seeds "
                         f"(1 kB = 1000 bytes)",
             "paper": f"; paper {size_unit}: the method paper's own byte accounting "
                      f"(formula per method in the CSV)",
             "pemn": f"; PEMN {size_unit}: PEMN's count for every method alike, weights only "
                     f"(32-bit values + 1-bit mask, no norm or bias tensors)",
             "stored": f"; stored {size_unit}: artifact with random weights stored as float32 "
                       f"values (PEMN's convention)",
             "ratio": "; ratio: dense float32 bytes / artifact bytes",
             "none": ""}
    text += sizes[size]
    text += "; budget: named recipe and epochs (runs of different budgets are never pooled)"
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


def _header(view: TableView) -> tuple[list[str], list[str]]:
    if view.value_title.endswith("accuracy"):
        value = "top-5 %" if view.value_title.startswith("top-5") else "acc. %"
    else:
        value = view.value_title.split(" (")[0] + (f" ({view.value_unit})"
                                                   if view.value_unit else "")
    subs = [value] + ([view.size_title] if view.size_title else []) + ["ep", "search s"]
    return subs, [f"{c} {s}" for c in view.column_titles for s in subs]


def _body(view: TableView, latex: bool) -> list[list[str]]:
    out = []
    for label, budget, cells in view.rows:
        line = [_latex_escape(label) if latex else label,
                _latex_escape(budget) if latex else budget]
        for cell in cells:
            text = _value_text(cell, view.decimals, view.scale, latex)
            if latex and not cell.empty:
                # escape the notes, keep the math
                head, sep, tail = text.partition(" [")
                text = head + (_latex_escape(sep + tail) if sep else "")
            line.append(text)
            if view.size_title:
                line.append(_size_text(cell, view.size_kind, view.size_scale))
            line += ["", ""] if cell.empty else [spend.epochs_cell(cell.epochs),
                                                 sig3(float(cell.search))]
        out.append(line)
    return out


LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}", "±": r"$\pm$", "–": "--"}


def _latex_escape(text: str) -> str:
    return "".join(LATEX_SPECIALS.get(ch, ch) for ch in str(text))


def _render_latex(view: TableView) -> str:
    subs, _ = _header(view)
    k = len(subs)
    ncols = 2 + k * len(view.columns)
    lines = [r"\begin{table}[t]", r"\centering", r"\small",
             r"\caption{" + _latex_escape(view.title + ". " + view.caption) + "}",
             r"\begin{tabular}{ll" + "r" * (ncols - 2) + "}", r"\toprule"]
    top = ["Method", "Budget"] + [
        (rf"\multicolumn{{{k}}}{{c}}{{{_latex_escape(t)}}}" if k > 1 else _latex_escape(t))
        for t in view.column_titles]
    lines.append(" & ".join(top) + r" \\")
    if k > 1:
        lines.append(" ".join(rf"\cmidrule(lr){{{3 + i * k}-{2 + (i + 1) * k}}}"
                              for i in range(len(view.columns))))
        lines.append(" & ".join(["", ""] + [_latex_escape(s) for s in subs] * len(view.columns))
                     + r" \\")
    lines.append(r"\midrule")
    for line in _body(view, latex=True):
        lines.append(" & ".join(line) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    for entry in view.unfinished:
        lines.append("% not finished: " + entry.replace("\n", " "))
    return "\n".join(lines)


def render(table: pd.DataFrame, fmt: str = "plain", *, group_by: str = "density",
           metric: str = "accuracy", size: str = "artifact") -> str:
    """The summary as text: per-(dataset, model) tables, or the whole summary as CSV."""
    if fmt not in FORMATS:
        raise BenchError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    if fmt == "csv":
        return table.to_csv(index=False)
    blocks = []
    for view in build_views(table, group_by=group_by, metric=metric, size=size):
        if fmt == "latex":
            blocks.append(_render_latex(view))
            continue
        _, headers = _header(view)
        body = _body(view, latex=False)
        text = tabulate(body, headers=["method", "budget", *headers],
                        tablefmt="github" if fmt == "md" else "simple",
                        disable_numparse=True)
        title = f"**{view.title}**" if fmt == "md" else view.title
        parts = [title, "", text, "", view.caption]
        if view.unfinished:
            parts += ["", "Not finished:"] + [f"- {u}" for u in view.unfinished]
        blocks.append("\n".join(parts))
    return "\n\n".join(blocks) + "\n"


# ----------------------------------------------------------------------------- command


def add_common_filters(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``report`` and ``figures``: the store, filters and preset matching."""
    parser.add_argument("--results", type=Path,
                        help="run store to read (default $BENCH_RESULTS, else results/runs)")
    parser.add_argument("--methods", help="only these methods (comma-separated; a name "
                        "matches all its variants, name:key=value one variant)")
    parser.add_argument("--models", help="only these models (comma-separated)")
    parser.add_argument("--datasets", help="only these datasets (comma-separated)")
    parser.add_argument("--budget-scale", type=float, default=1.0,
                        help="with --preset/--paper: match runs made with this "
                        "`bench run --budget-scale`")
    parser.add_argument("--width", type=float,
                        help="with --preset/--paper: match runs made with this --width")
    parser.add_argument("--train-subset", type=int,
                        help="with --preset/--paper: match runs made with this --train-subset")
    parser.add_argument("--test-subset", type=int,
                        help="with --preset/--paper: match runs made with this --test-subset")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``python -m bench report``."""
    add_common_filters(parser)
    parser.add_argument("--preset", choices=sorted(PRESETS), metavar="NAME",
                        help="only runs of this preset's grid (recipe, models, datasets, "
                        "densities, seeds, subsets); its runs not in the store are shown as "
                        f"missing with the command that makes them ({', '.join(PRESETS)})")
    parser.add_argument("--format", default="plain", choices=FORMATS,
                        help="plain (terminal), md (Markdown), latex (booktabs) or csv "
                        "(one row per cell, for pandas); default plain")
    parser.add_argument("--group-by", default="density", choices=GROUP_BY,
                        help="what the columns are: density, sparsity (%%) or nominal "
                        "compression 1/density (default density)")
    parser.add_argument("--metric", default="accuracy", choices=tuple(METRICS),
                        help="what the cells show (default accuracy: final-epoch top-1 %%)")
    parser.add_argument("--size", default="artifact", choices=SIZES,
                        help="the size column beside each cell: artifact bytes (default), "
                        "paper-convention bytes, PEMN's count for every method (pemn), "
                        "stored-convention bytes, measured compression ratio, or none")
    parser.add_argument("--out", type=Path, help="write the table to this file, not stdout")


def _check_grid_options(args: argparse.Namespace, with_preset: bool, what: str) -> None:
    used = [o for o, v in (("--budget-scale", getattr(args, "budget_scale", 1.0) != 1.0),
                           ("--width", getattr(args, "width", None) is not None),
                           ("--train-subset", getattr(args, "train_subset", None) is not None),
                           ("--test-subset", getattr(args, "test_subset", None) is not None))
            if v]
    if used and not with_preset:
        raise BenchError(f"{', '.join(used)} only select a preset's runs: add {what}")


def missing_report(groups: Sequence[MissingGroup], options: GridOptions,
                   results: Path | None) -> list[str]:
    """One line per group of unfinished runs, then the command that produces them."""
    lines = []
    for g in groups:
        lines.append(f"  {g.describe()}:")
        lines.append(f"    {g.command(options, results)}")
    return lines


def command(args: argparse.Namespace) -> int:
    """``python -m bench report``: print (or write) the tables; 0 on success."""
    preset = get_preset(args.preset) if getattr(args, "preset", None) else None
    _check_grid_options(args, preset is not None, "--preset NAME")
    options = grid_options(args)
    root = results_root(args.results)
    if preset is not None:
        frame = records_frame(root) if root.exists() else frame_from_records([])
        frame = preset_frame(frame, preset, options)
    else:
        frame = load_frame(root)
    frame = filter_frame(frame, methods=args.methods, models=args.models,
                         datasets=args.datasets)
    if frame.empty:
        raise BenchError("no runs match the filters")
    table = summary_table(frame)
    text = render(table, args.format, group_by=args.group_by, metric=args.metric,
                  size=args.size)
    if preset is not None and args.format != "csv":
        groups = missing_groups(frame)
        if groups:
            lines = [f"Runs of preset {preset.name} not finished "
                     f"({sum(sum(g.statuses.values()) for g in groups)} of {len(frame)}):",
                     *missing_report(groups, options, args.results)]
            prefix = "% " if args.format == "latex" else ""
            text += "\n" + "\n".join(prefix + line for line in lines) + "\n"
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(f"wrote {args.out}")
    else:
        print(text, end="")
    return 0
