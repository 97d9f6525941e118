"""``bench compare``: two result sets, exit 1 on a regression."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.defaults import (
    results_root,
)
from bench.reports.compare import EXACT_MODES, Tolerances


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("baseline", type=Path, help="results folder or snapshot file")
    parser.add_argument("candidate", type=Path, nargs="?",
                          help="results folder or snapshot file (default: the run store)")
    defaults = Tolerances()
    parser.add_argument("--alpha", type=float, default=defaults.alpha,
                          help="significance level of Welch's t-test over seeds")
    parser.add_argument("--min-effect", type=float, default=defaults.min_effect,
                          help="smallest accuracy change in points that counts (with seeds)")
    parser.add_argument("--single-seed-drop", type=float, default=defaults.single_seed_drop,
                          help="accuracy drop in points that counts when a side has one seed")
    parser.add_argument("--bytes-growth", type=float, default=defaults.bytes_growth,
                          help="artifact growth (fraction) that counts as a regression")
    parser.add_argument("--exact", choices=EXACT_MODES, default="auto",
                          help="auto: seeds run in the same numeric environment must match to "
                          "the bit; never: judge every spec statistically")
    parser.add_argument("--require-all", action="store_true",
                          help="specs of the baseline the candidate lacks are regressions "
                          "(default: one summary line, not a failure)")
    parser.add_argument("--json", type=Path, help="also write the comparison as JSON here")


def command(args: argparse.Namespace) -> int:
    from bench.reports.compare import run_compare

    tol = Tolerances(alpha=args.alpha, min_effect=args.min_effect,
                     single_seed_drop=args.single_seed_drop, bytes_growth=args.bytes_growth,
                     require_all=args.require_all, exact=args.exact)
    candidate = args.candidate if args.candidate is not None else results_root(None)
    return run_compare(args.baseline, candidate, tol, args.json)
