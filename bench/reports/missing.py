"""A preset's grid against the store: its runs, the ones missing, and the ``bench run``
commands that would make them."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from bench.grid import NO_OVERRIDES, GridOptions, preset_grid
from bench.presets import Preset
from bench.reports.frames import FRAME_COLUMNS, record_row
from bench.wording import counted


def preset_frame(frame: pd.DataFrame, preset: Preset, options: GridOptions = NO_OVERRIDES,
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
            row = record_row(spec.to_record(), "missing", spec.key, "")
        row["item"] = item
        rows.append(row)
    if reference:
        in_grid = {spec.key for _, spec in grid}
        for item, spec in preset_grid(preset, options, reference):
            if spec.key in have.index and spec.key not in in_grid:
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
        if results is not None and not Path(results).is_file():  # an export is read-only
            args += ["--results", str(results)]
        return shlex.join(args)

    def describe(self) -> str:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(self.statuses.items()))
        return f"{self.preset}: {', '.join(self.items)}: {counts} (of {counted(self.total, 'run')})"


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


def missing_report(groups: Sequence[MissingGroup], options: GridOptions,
                   results: Path | None) -> list[str]:
    """One line per group of unfinished runs, then the command that produces them."""
    lines = []
    if groups and results is not None and Path(results).is_file():
        lines.append(f"  ({results} is a `bench export` file: run them into a run store)")
    for g in groups:
        lines.append(f"  {g.describe()}:")
        lines.append(f"    {g.command(options, results)}")
    return lines


def reference_gaps(preset: Preset, options: GridOptions, item: str,
                   keys: set[str]) -> tuple[MissingGroup | None, int, int]:
    """The runs of an optional reference method (dense beside a preset's grid) the store's
    ``keys`` lack, as one group with its command: (group or None, lacking, of)."""
    ref = preset_grid(preset, options, [item])
    lacking = [s for _, s in ref if s.key not in keys]
    if not lacking:
        return None, 0, len(ref)
    group = MissingGroup(preset.name, [item], None, None, None, None,
                         {"missing": len(lacking)}, len(ref))
    return group, len(lacking), len(ref)
