"""``python -m bench report``: tables from the run store; records in, numbers out.

One table per (dataset, model): rows are methods (with their variant hyperparameters) and
training budgets, columns are densities (or sparsities, or the weight compression
1/density), and each cell is the mean +- sample standard deviation over seeds with the seed
count, beside the mean artifact size. Runs are pooled only when their specs agree in
everything but the seed, so runs with different budgets or recipes are never averaged
together: the budget is a column of its own.

Runs that failed, diverged or are still running are counted in their cell and listed under
the table; with ``--preset`` the preset's whole grid is expected and every run it lacks is
shown as missing, with the ``bench run`` command that would produce it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.defaults import results_root
from bench.errors import BenchError
from bench.fsutil import write_atomic
from bench.grid import GridOptions, grid_options
from bench.presets import PRESETS, get_preset
from bench.reports.choices import FORMATS, GROUP_BY, METRICS, SIZES
from bench.reports.formats import render
from bench.reports.frames import filter_frame, store_frame
from bench.reports.missing import missing_groups, missing_report, preset_frame
from bench.reports.stats import summary_table


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


def check_grid_options(args: argparse.Namespace, with_preset: bool, what: str) -> None:
    """The grid overrides only select a preset's runs: without one they are a mistake."""
    used = [o for o, v in (("--budget-scale", getattr(args, "budget_scale", 1.0) != 1.0),
                           ("--width", getattr(args, "width", None) is not None),
                           ("--train-subset", getattr(args, "train_subset", None) is not None),
                           ("--test-subset", getattr(args, "test_subset", None) is not None))
            if v]
    if used and not with_preset:
        raise BenchError(f"{', '.join(used)} only select a preset's runs: add {what}")


def options_of(args: argparse.Namespace) -> GridOptions:
    """The grid overrides given on the command line, checked."""
    return grid_options(getattr(args, "budget_scale", 1.0), getattr(args, "width", None),
                        getattr(args, "train_subset", None), getattr(args, "test_subset", None))


def command(args: argparse.Namespace) -> int:
    """``python -m bench report``: print (or write) the tables; 0 on success."""
    preset = get_preset(args.preset) if getattr(args, "preset", None) else None
    check_grid_options(args, preset is not None, "--preset NAME")
    options = options_of(args)
    root = results_root(args.results)
    if preset is not None:
        frame = preset_frame(store_frame(root, required=False), preset, options)
    else:
        frame = store_frame(root, required=True)
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
        write_atomic(args.out, lambda f: f.write(text.encode()))
        print(f"wrote {args.out}")
    else:
        print(text, end="")
    return 0
