"""``python -m bench.conformance``: every check, with a summary table (and per-layer ones)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tabulate import tabulate

from bench.conformance.checks import CHECKS, compare, fixture_folder, layer_table, suite_masks
from bench.conformance.fixtures import DEFAULT_FIXTURES, fixture_masks, jaccard
from bench.conformance.spread import SIGMAS, seed_spread, spread_compare
from bench.data import DeviceData, load_data
from bench.errors import BenchError
from bench.provenance import machine_kind
from bench.registry import load_plugins

FULL_TRAIN_IMAGES = 50_000
SPREAD_CHECKS: dict[str, float] = {"ntk-sap-d0.1": 0.1, "ntk-sap-d0.02": 0.02}
"""NTK-SAP at each density of the authors' seeds (``ntksap-d<d>-s<seed>-f32``)."""


def deterministic_row(name: str, data: DeviceData, shared: Path, layers: bool) -> tuple:
    c = compare(name, data, fixture_folder(name, shared))
    layer, gap = c.worst()
    if layers:
        print(f"\n{name} ({c.method})\n{layer_table(c)}")
    return (name, c.method, f"{c.jaccard:.4f}", f"{100 * gap:.2f} ({layer})",
            ", ".join(c.emptied()) or "-", len(c.degenerate_rounds),
            "yes" if c.exact_here else "no")


def spread_row(name: str, data: DeviceData, shared: Path, layers: bool) -> tuple:
    density = SPREAD_CHECKS[name]
    masks, _ = suite_masks("ntk-sap", density, data, {})
    c = spread_compare(masks, seed_spread(shared, density))
    layer, sigmas = c.worst()
    if layers:
        rows = [(n, c.total[n], f"{100 * c.reference_mean[n]:.2f}", f"{100 * c.fraction(n):.2f}",
                 f"{s:.2f}") for n, s in c.sigmas().items()]
        print(f"\n{name}\n" + tabulate(rows, headers=["layer", "size", "authors mean %",
                                                       "suite %", "sd"], tablefmt="github"))
    seed0 = jaccard(masks, fixture_masks(shared, f"ntksap-d{density:g}-s0-f32"))
    return (name, f"{sum(c.kept.values())} / {c.reference_kept_total}",
            f"{sigmas:.2f} ({layer})", ", ".join(c.emptied()) or "-", f"{seed0:.4f}",
            "; ".join(c.failures()) or "within")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.conformance",
                                     description=sys.modules["bench.conformance"].__doc__)
    parser.add_argument("--data-dir", type=Path, required=True,
                        help="folder holding all of CIFAR-10 (cifar-10-batches-py)")
    parser.add_argument("--fixtures", type=Path, default=DEFAULT_FIXTURES,
                        help="the shared fixtures folder (the suite's own are in "
                        "tests/fixtures/reference-masks)")
    parser.add_argument("--only", nargs="*", default=None, help="checks to run")
    parser.add_argument("--layers", action="store_true", help="print per-layer tables")
    args = parser.parse_args(argv)
    valid = [*CHECKS, *SPREAD_CHECKS]
    try:
        names = args.only or valid
        unknown = [n for n in names if n not in valid]
        if unknown:
            raise BenchError(f"unknown fixture(s) {unknown}; valid: {', '.join(valid)}")
        load_plugins()
        data = load_data("cifar10", args.data_dir, download=False)
        if len(data.train_y) != FULL_TRAIN_IMAGES:
            raise BenchError(f"the fixtures were made on all of CIFAR-10 ({FULL_TRAIN_IMAGES} "
                             f"training images); {args.data_dir} has {len(data.train_y)}, so "
                             "its pruning set differs")
        fixed, spread = [], []
        for name in names:
            if name in CHECKS:
                fixed.append(deterministic_row(name, data, args.fixtures, args.layers))
            else:
                spread.append(spread_row(name, data, args.fixtures, args.layers))
            sys.stdout.flush()
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"\nmachine kind here: {machine_kind()}, one thread")
    if fixed:
        print(tabulate(fixed, headers=["fixture", "suite method", "Jaccard",
                                       "worst layer gap %", "emptied", "degenerate rounds",
                                       "fixture's machine kind"], tablefmt="github"))
    if spread:
        print(tabulate(spread, headers=["check", "kept / authors'", f"worst layer sd (<= "
                                        f"{SIGMAS:g})", "emptied", "Jaccard vs seed 0",
                                        "verdict"], tablefmt="github"))
    return 0
