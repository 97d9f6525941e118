"""``bench run --executor inprocess``: the grid trained in this process, as one worker among
any others on the same store (the workers of ``local`` and ``slurm`` are this too)."""

from __future__ import annotations

import argparse

from bench.commands.run_setup import prepare, record_manifest
from bench.commands.run_summary import done_line, exit_status
from bench.wording import counted


def run_here(args: argparse.Namespace) -> int:
    """Train the grid in this process (one worker among any others on the store)."""
    from bench.estimate import estimate_grid
    from bench.harness import run_grid
    from bench.harness.workers import WorkerBeacon

    setup = prepare(args)
    estimate = estimate_grid(setup.specs, setup.store, setup.data, setup.options)
    executor = {"kind": "inprocess"} if args.worker_of is None else {}
    manifest = record_manifest(setup, args, executor, estimate) if executor else None
    grid = manifest.id if manifest else args.worker_of
    print(f"{counted(len(setup.specs), 'run')}, preset {args.preset}, "
          f"results in {setup.store.root}")
    print(estimate.line())
    with WorkerBeacon(setup.store, grid):
        outcomes = run_grid(setup.specs, store=setup.store, data=setup.data,
                            options=setup.options, force=args.force, pack=args.pack)
    statuses = [("cached" if o.cached and o.status == "finished" else
                 f"{o.status} (cached)" if o.cached else o.status) for o in outcomes]
    print(done_line(statuses))
    return exit_status(o.status for o in outcomes)
