"""What every executor of ``bench run`` starts from: the checked grid bound to its data, the
engine options, the store, and the grid's manifest."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any

from bench.commands.run_grid import check_runnable, grid_specs
from bench.defaults import resolve_device, results_root
from bench.errors import BenchError
from bench.fsutil import check_writable_folder
from bench.presets import get_preset


@dataclass
class RunSetup:
    """A grid ready to run here or to hand to workers."""

    specs: list[Any]  # RunSpec, bound to their data fingerprints
    options: Any  # EngineOptions
    store: Any  # RunStore
    data: Any  # DataCache
    threads: int  # per worker


def engine_options(args: argparse.Namespace) -> Any:
    """The engine's switches from the command line."""
    from bench.engine import EngineOptions

    if args.eval_every < 0:
        raise BenchError("--eval-every must be >= 0")
    if args.pack < 1:
        raise BenchError(f"--pack must be at least 1, got {args.pack}")
    if args.plain and args.compile:
        raise BenchError("--plain and --compile contradict each other; give one")
    if args.plain and args.precision not in (None, "float32"):
        raise BenchError(f"--plain trains in float32; it contradicts --precision "
                         f"{args.precision}")
    device = resolve_device(args.device)
    options = EngineOptions(
        device=device,
        compile=args.compile,
        precision=args.precision or (get_preset(args.preset).cuda_precision
                                     if device.type == "cuda" else None),
        cuda_graphs=False if args.no_cuda_graphs else None,
        progress=not args.no_progress and sys.stderr.isatty(),
        eval_every=args.eval_every,
        pack=args.pack,
    )
    return options.plain() if args.plain else options


def prepare(args: argparse.Namespace, workers: int = 1) -> RunSetup:
    """Check every option, bind the grid to its data and ask each method whether it can
    run; any mistake ends here, before a run starts or a job is submitted."""
    from bench.engine import configure_backends
    from bench.harness import DataCache
    from bench.provenance import choose_threads, set_threads
    from bench.store import RunStore

    specs_unbound = grid_specs(args)
    options = engine_options(args)
    threads, decided_by = choose_threads(args.threads, workers)
    root = results_root(args.results)
    check_writable_folder(root, "--results")
    set_threads(threads, decided_by)
    configure_backends(options)
    store = RunStore(root)
    data = DataCache(args.data_dir, options.device, download=not args.no_download)
    specs = [data.bind(spec) for spec in specs_unbound]  # data errors end the command here
    check_runnable(specs, data)
    return RunSetup(specs, options, store, data, threads)


def planned_epochs(specs: list[Any]) -> list[int]:
    """Each spec's training epochs as its method plans them (for status and estimates)."""
    from bench.registry import get_method

    out = []
    for spec in specs:
        cls = get_method(spec.method)
        out.append(cls(cls.Hparams(**spec.hparams)).planned_epochs(spec))
    return out


def record_manifest(setup: RunSetup, args: argparse.Namespace, executor: dict[str, Any],
                    estimate: Any | None) -> Any:
    """Write the grid's manifest (``bench status`` reads it) and return it."""
    from bench.harness.manifest import write_manifest

    per_epoch = (estimate.seconds / estimate.epochs
                 if estimate is not None and estimate.epochs else None)
    return write_manifest(setup.store, setup.specs, planned_epochs(setup.specs),
                          command=["run", *getattr(args, "argv", [])], executor=executor,
                          seconds_per_epoch=per_epoch)
