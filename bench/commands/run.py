"""``bench run``: train the grid's unfinished runs, record every one, say what happened."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

from bench.commands.run_grid import check_runnable, estimate_line, grid_specs
from bench.commands.run_options import add_arguments
from bench.defaults import (
    EXIT_RUN_FAILED,
    resolve_device,
    results_root,
)
from bench.errors import BenchError
from bench.fsutil import check_writable_folder

__all__ = ["add_arguments", "command"]


def command(args: argparse.Namespace) -> int:
    """``bench run``: the grid, with SIGTERM handled as an interrupt while it runs."""
    # kill and Slurm's preemption: save like Ctrl-C, then go (restored when the command ends)
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        return _run_command(args)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_command(args: argparse.Namespace) -> int:
    from bench.engine import EngineOptions, configure_backends
    from bench.harness import DataCache, run_grid
    from bench.provenance import default_threads, parse_threads, set_threads
    from bench.store import RunStore

    specs_unbound = grid_specs(args)
    if args.eval_every < 0:
        raise BenchError("--eval-every must be >= 0")
    if args.plain and args.compile:
        raise BenchError("--plain and --compile contradict each other; give one")
    threads = parse_threads(args.threads) if args.threads is not None else default_threads()
    options = EngineOptions(
        device=resolve_device(args.device),
        compile=args.compile,
        cuda_graphs=False if args.no_cuda_graphs else None,
        progress=not args.no_progress and sys.stderr.isatty(),
        eval_every=args.eval_every,
    )
    if args.plain:
        options = options.plain()
    root = results_root(args.results)
    check_writable_folder(root, "--results")
    set_threads(threads)
    configure_backends(options)
    store = RunStore(root)
    data = DataCache(args.data_dir, options.device, download=not args.no_download)
    specs = [data.bind(spec) for spec in specs_unbound]  # data errors end the command here
    check_runnable(specs, data)
    print(f"{len(specs)} runs, preset {args.preset}, results in {store.root}")
    print(estimate_line(specs, store, data, options))
    outcomes = run_grid(specs, store=store, data=data, options=options, force=args.force)
    counts: dict[str, int] = {}
    for o in outcomes:
        label = f"{o.status} (cached)" if o.cached and o.status != "finished" else (
            "cached" if o.cached else o.status)
        counts[label] = counts.get(label, 0) + 1
    print("done: " + ", ".join(f"{n} {label}" for label, n in sorted(counts.items())))
    bad = [o for o in outcomes if o.status in ("failed", "diverged")]
    return EXIT_RUN_FAILED if bad else 0


def _terminated(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
