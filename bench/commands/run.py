"""``bench run``: train the grid's unfinished runs, record every one, say what happened.

``--executor inprocess`` (the default) trains here; ``local`` starts ``--workers`` processes
on this machine; ``slurm`` submits one job array (submitit). Every worker pulls runs from
the same store through its claims, so any mix of them shares one grid.
"""

from __future__ import annotations

import argparse
import signal
from typing import Any

from bench.commands.run_options import add_arguments, check_executor_options

__all__ = ["add_arguments", "command"]


def command(args: argparse.Namespace) -> int:
    """``bench run``: the grid, with SIGTERM handled as an interrupt while it runs."""
    # kill and Slurm's preemption: save like Ctrl-C, then go (restored when the command ends)
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        return dispatch(args)
    finally:
        signal.signal(signal.SIGTERM, previous)


def dispatch(args: argparse.Namespace) -> int:
    """Hand the grid to the executor asked for."""
    check_executor_options(args)
    if args.executor == "local":
        from bench.commands.run_local import run_local

        return run_local(args)
    if args.executor == "slurm":
        from bench.commands.run_slurm import submit

        return submit(args)
    from bench.commands.run_inprocess import run_here

    return run_here(args)


def _terminated(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
