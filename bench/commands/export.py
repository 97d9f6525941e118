"""``bench export``: selected records into one snapshot file."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.commands.parsing import csv
from bench.defaults import (
    results_root,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="snapshot file to write")
    parser.add_argument("--results", type=Path, help="run store to read")
    parser.add_argument("--methods", help="only these methods (comma-separated)")
    parser.add_argument("--models", help="only these models")
    parser.add_argument("--datasets", help="only these datasets")



def command(args: argparse.Namespace) -> int:
    from bench.reports.snapshots import export

    def names(text: str | None) -> list[str] | None:
        return csv(text) if text else None

    n = export(results_root(args.results), args.out, names(args.methods), names(args.models),
               names(args.datasets))
    print(f"{n} records written to {args.out}")
    return 0
