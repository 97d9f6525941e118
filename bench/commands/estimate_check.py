"""The grid's time estimate against the time its runs took: ``python -m
bench.commands.estimate_check -- <bench run options>``.

Runs ``bench run`` with the options given (in a fresh results folder unless ``--results``
names one), then prints each run's estimate (:mod:`bench.estimate`, as the run line says
it) beside the seconds its record measured (``wall_seconds``: scoring, training,
evaluation, the artifact), their ratio, and the grid's total against the command's wall
time. The issue's target: every ratio within 1.5x.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from tabulate import tabulate

TARGET = 1.5


def main(argv: list[str]) -> int:
    from bench import estimate
    from bench.commands import run
    from bench.errors import BenchError
    from bench.store import RunStore

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_args", nargs=argparse.REMAINDER,
                        help="bench run options (after --)")
    args = parser.parse_args(argv)
    run_args = [a for a in args.run_args if a != "--"]
    if "--results" not in run_args:
        run_args += ["--results", tempfile.mkdtemp(prefix="estimate-check-")]
    estimates: list = []
    real = estimate.estimate_grid

    def keep(*a: object, **k: object) -> estimate.GridEstimate:  # the run line's estimate
        e = real(*a, **k)  # type: ignore[arg-type]
        estimates.append(e)
        return e

    estimate.estimate_grid = keep  # type: ignore[assignment]
    t0 = time.perf_counter()
    run_parser = argparse.ArgumentParser(prog="bench run")
    run.add_arguments(run_parser)
    try:
        ns = run_parser.parse_args(["--no-progress", *run_args])
        ns.argv = ["--no-progress", *run_args]
        code = run.command(ns)
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        estimate.estimate_grid = real  # type: ignore[assignment]
    wall = time.perf_counter() - t0
    if code != 0 or not estimates:
        print(f"bench run exited {code}; nothing to compare", file=sys.stderr)
        return code or 1
    grid = estimates[0]
    store = RunStore(Path(run_args[run_args.index("--results") + 1]))
    rows, worst = [], 1.0
    for key, seconds in grid.per_run.items():
        record = store.read(key)
        if record is None or record.get("wall_seconds") is None:
            continue
        measured = float(record["wall_seconds"])
        ratio = measured / seconds if seconds > 0 else float("inf")
        worst = max(worst, ratio, 1 / ratio if ratio > 0 else float("inf"))
        spec = record["spec"]
        rows.append([spec["method"], spec["density"], f"{seconds:.1f}", f"{measured:.1f}",
                     f"{ratio:.2f}"])
    print(tabulate(rows, headers=["method", "d", "estimate s", "measured s",
                                  "measured / estimate"], disable_numparse=True))
    print(f"grid: estimate {grid.seconds:.0f} s, command's wall time {wall:.0f} s (data "
          f"loading and the estimate's own timing included) "
          f"(ratio {wall / grid.seconds:.2f}); worst run off by {worst:.2f}x "
          f"(target {TARGET}x): {'met' if worst <= TARGET else 'NOT met'}; {grid.device}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
