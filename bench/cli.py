"""Command line: ``python -m bench run | list | report``.

Every mistake a user can make ends in one ``error:`` line and exit status 2;
a grid in which some run failed exits 1 after recording every run.
"""

from __future__ import annotations

import argparse
import signal
import sys
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.defaults import (
    DEFAULT_RESULTS,
    EXIT_RUN_FAILED,
    EXIT_USAGE,
    RESULTS_ENV,
    resolve_device,
    results_root,
)
from bench.errors import BenchError
from bench.fsutil import check_writable_folder
from bench.presets import DEFAULT_PRESET, PRESETS, RECIPES, get_preset, get_recipe
from bench.recipe import MAX_EPOCHS
from bench.registry import (
    PLUGIN_WARNINGS,
    Method,
    hparam_fields,
    methods,
    parse_method_item,
    unknown_method_message,
)
from bench.reports.compare import Tolerances


class _Parser(argparse.ArgumentParser):
    """argparse that reports mistakes as one ``error:`` line (exit 2) instead of usage text."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise BenchError(f"{message} (see {self.prog} --help)")


MAX_SEED = 2**63 - 1  # seeds enter 64-bit generators


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _listed(text: str | None, option: str) -> list[str] | None:
    """The items of a comma-separated option; None when it was not given. Given but empty
    (``''`` or ``,``) is a mistake, not "use the preset's"."""
    if text is None:
        return None
    items = _csv(text)
    if not items:
        raise BenchError(f"{option} {text!r} names nothing; give at least one value or leave "
                         "the option out to use the preset's")
    return items


def _floats(text: str | None, option: str) -> list[float] | None:
    items = _listed(text, option)
    if items is None:
        return None
    try:
        return [float(t) for t in items]
    except ValueError:
        raise BenchError(f"bad number list {text!r} for {option}; expected e.g. 0.5,0.1") from None


def _ints(text: str | None, option: str) -> list[int] | None:
    items = _listed(text, option)
    if items is None:
        return None
    try:
        return [int(t) for t in items]
    except ValueError:
        raise BenchError(f"bad integer list {text!r} for {option}; expected e.g. 0,1,2") from None


def _option_name(method: str, field: str) -> str:
    return f"--{method}-{field.replace('_', '-')}"


def _metavar(kind: Any) -> str:
    if typing.get_origin(kind) is typing.Literal:
        return "{" + ",".join(map(str, typing.get_args(kind))) + "}"
    return getattr(kind, "__name__", "value").upper()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser(
        "run", help="run a grid of methods x models x datasets x densities x seeds"
    )
    run.add_argument("--preset", default=DEFAULT_PRESET,
                     help=f"named grid and recipe (default {DEFAULT_PRESET}; see `list`)")
    run.add_argument("--methods", help="comma-separated names or 'all'; options as name:key=value")
    run.add_argument("--models", help="comma-separated model names (see `list`)")
    run.add_argument("--datasets", help="comma-separated: cifar10, cifar100")
    run.add_argument("--densities", help="kept fractions in (0, 1], comma-separated")
    run.add_argument("--seeds", help="comma-separated integers")
    run.add_argument("--epochs", type=int, help="training budget in epochs (overrides the preset)")
    run.add_argument("--recipe", help="a named recipe for every method (see `list`)")
    run.add_argument("--budget-scale", type=float, default=1.0,
                     help="scale every recipe's epochs, e.g. 0.1 for a quick look")
    run.add_argument("--width", type=float, help="model width multiplier (fast tests)")
    run.add_argument("--train-subset", type=int, help="class-balanced subset of N training images")
    run.add_argument("--test-subset", type=int, help="class-balanced subset of N test images")
    run.add_argument("--value-codec", default="float32", choices=("float32", "float16", "bfloat16"),
                     help="how kept weights are stored in the artifact (16-bit codecs are lossy)")
    run.add_argument("--data-dir", type=Path,
                     help="folder holding cifar-10-batches-py / cifar-100-python "
                     "(default $BENCH_DATA_DIR, else ~/.cache/bench/data)")
    run.add_argument("--no-download", action="store_true", help="never download missing data")
    run.add_argument("--results", type=Path,
                     help=f"run store (default ${RESULTS_ENV}, else {DEFAULT_RESULTS})")
    run.add_argument("--device", help="cpu, cuda or cuda:N (default cuda when available)")
    run.add_argument("--threads", help="CPU threads for torch (default $BENCH_THREADS, else the "
                     "CPUs this process may use; results on CPU depend on it, see README)")
    run.add_argument("--compile", action="store_true",
                     help="torch.compile the model (pays from a few epochs on; kernels are "
                     "cached on disk across runs; on CUDA with CUDA graphs)")
    run.add_argument("--no-cuda-graphs", action="store_true",
                     help="with --compile on CUDA: compile without CUDA graphs")
    run.add_argument("--plain", action="store_true",
                     help="every speed switch off: float32, NCHW, unfused optimiser, no compile "
                     "(results agree with the default to training noise)")
    run.add_argument("--force", action="store_true", help="retrain runs that are already finished")
    run.add_argument("--eval-every", type=int, default=1,
                     help="log test accuracy every N epochs (0: final epoch only)")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    for name, cls in methods().items():
        for field, kind, default in hparam_fields(cls):
            run.add_argument(_option_name(name, field), dest=f"hp__{name}__{field}",
                             metavar=_metavar(kind),
                             help=f"{name} hyperparameter (default {default})")

    sub.add_parser("list", help="methods, models, datasets and presets")

    from bench import perf
    from bench.reports import figures, tables_cli

    tables_cli.add_arguments(sub.add_parser("report", help="tables of results from the run store"))
    figures.add_arguments(sub.add_parser("figures", help="PNG and PDF figures of results"))
    perf.add_arguments(sub.add_parser(
        "perf", help="speed figures: engine vs minimal and conventional loops, masked layers, "
        "pruning scores; writes results/perf/<device>.json"))

    exporter = sub.add_parser("export", help="write selected records into one snapshot file")
    exporter.add_argument("--out", type=Path, required=True, help="snapshot file to write")
    exporter.add_argument("--results", type=Path, help="run store to read")
    exporter.add_argument("--methods", help="only these methods (comma-separated)")
    exporter.add_argument("--models", help="only these models")
    exporter.add_argument("--datasets", help="only these datasets")

    comparer = sub.add_parser(
        "compare", help="compare two result sets; exit 1 on a regression, 2 if impossible")
    comparer.add_argument("baseline", type=Path, help="results folder or snapshot file")
    comparer.add_argument("candidate", type=Path, nargs="?",
                          help="results folder or snapshot file (default: the run store)")
    defaults = Tolerances()
    comparer.add_argument("--alpha", type=float, default=defaults.alpha,
                          help="significance level of Welch's t-test over seeds")
    comparer.add_argument("--min-effect", type=float, default=defaults.min_effect,
                          help="smallest accuracy change in points that counts (with seeds)")
    comparer.add_argument("--single-seed-drop", type=float, default=defaults.single_seed_drop,
                          help="accuracy drop in points that counts when a side has one seed")
    comparer.add_argument("--bytes-growth", type=float, default=defaults.bytes_growth,
                          help="artifact growth (fraction) that counts as a regression")
    comparer.add_argument("--exact", choices=("auto", "never"), default="auto",
                          help="auto: seeds run in the same numeric environment must match to "
                          "the bit; never: judge every spec statistically")
    comparer.add_argument("--allow-missing", action="store_true",
                          help="runs missing from the candidate are not regressions")
    comparer.add_argument("--json", type=Path, help="also write the comparison as JSON here")
    return parser


def _method_items(text: str | None, preset_methods: Sequence[str], args: argparse.Namespace
                  ) -> list[tuple[str, dict[str, str]]]:
    given = _listed(text, "--methods")
    items = given if given is not None else list(preset_methods)
    parsed: list[tuple[str, dict[str, str]]] = []
    registry = methods()
    for item in items:
        if item == "all":
            parsed.extend((name, {}) for name in registry)
        else:
            parsed.append(parse_method_item(item))
    result = []
    for name, overrides in parsed:
        if name not in registry:
            raise BenchError(unknown_method_message(name, {"all": Method, **registry}))
        from_options = {
            field: str(value)
            for field, _, _ in hparam_fields(registry[name])
            if (value := getattr(args, f"hp__{name}__{field}", None)) is not None
        }
        result.append((name, {**from_options, **overrides}))
    return result


def cmd_run(args: argparse.Namespace) -> int:
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


def grid_specs(args: argparse.Namespace) -> list[Any]:
    """The ``run`` command's grid as specs (without data fingerprints), every option checked."""
    from bench.data import DATASETS
    from bench.grid import (
        GridChoice,
        GridOptions,
        check_budget_scale,
        check_subsets,
        check_width,
        preset_model_kwargs,
        preset_specs,
    )
    from bench.models import validate_model

    preset = get_preset(args.preset)
    check_budget_scale(args.budget_scale)  # positive and finite, or one error line
    if args.epochs is not None and not 1 <= args.epochs <= MAX_EPOCHS:
        raise BenchError(f"--epochs must be between 1 and {MAX_EPOCHS}, got {args.epochs}")
    if args.recipe is not None:
        get_recipe(args.recipe)
    datasets = _listed(args.datasets, "--datasets") or list(preset.datasets)
    for name in datasets:
        if name not in DATASETS:
            raise BenchError(f"unknown dataset {name!r}; valid datasets: {', '.join(DATASETS)}")
    models = _listed(args.models, "--models") or list(preset.models)
    check_width(args.width)
    for name in models:
        validate_model(name, **preset_model_kwargs(preset, args.width))
    seeds = _ints(args.seeds, "--seeds")
    if seeds is not None and any(not 0 <= s <= MAX_SEED for s in seeds):
        raise BenchError(f"seeds must be integers from 0 to 2**63-1, got {args.seeds}")
    densities = _floats(args.densities, "--densities")
    check_subsets(args.train_subset, args.test_subset)
    options = GridOptions(args.budget_scale, args.width, args.train_subset, args.test_subset)
    choice = GridChoice(methods=_method_items(args.methods, preset.methods, args),
                        models=models, datasets=datasets, densities=densities, seeds=seeds,
                        recipe=args.recipe, epochs=args.epochs, value_codec=args.value_codec)
    return preset_specs(preset, options, choice)


def check_runnable(specs: Sequence[Any], data: Any) -> None:
    """Ask each method whether it can run its specs, before anything trains."""
    from bench.registry import get_method

    for spec in specs:
        cls = get_method(spec.method)
        method = cls(cls.Hparams(**spec.hparams))
        loaded = data.get(spec.dataset, spec.train_subset, spec.test_subset)
        per_class = (len(loaded.train_y) // loaded.num_classes
                     if spec.train_subset is not None else None)
        method.check(spec, per_class)


def estimate_line(specs: Sequence[Any], store: Any, data: Any, options: Any) -> str:
    """``N to train (M epochs), K already done; about T on <device>`` from a short timing of
    each architecture's training step here."""
    from bench.estimate import estimate_grid

    return estimate_grid(specs, store, data, options).line()


def cmd_list(_: argparse.Namespace) -> int:
    from bench.data import DATASETS
    from bench.models import describe_model, model_names

    print("methods:")
    for name, cls in methods().items():
        print(f"  {name:<18} {cls.description}")
    print("models:")
    for name in model_names():
        print(f"  {name:<18} {describe_model(name)}")
    print("datasets:")
    for name, info in DATASETS.items():
        print(f"  {name:<18} {info.num_classes} classes, official python layout {info.folder}/")
    print("recipes:")
    for name, recipe in RECIPES.items():
        print(f"  {name:<18} {recipe.optimizer} lr {recipe.lr:g}, {recipe.schedule}, "
              f"{recipe.epochs} epochs, batch {recipe.batch_size}, wd {recipe.weight_decay:g}")
    print("presets:")
    for name, preset in PRESETS.items():
        default = " (default)" if name == DEFAULT_PRESET else ""
        print(f"  {name:<18} {preset.description}{default}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from bench.reports.snapshots import export

    def names(text: str | None) -> list[str] | None:
        return _csv(text) if text else None

    n = export(results_root(args.results), args.out, names(args.methods), names(args.models),
               names(args.datasets))
    print(f"{n} records written to {args.out}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from bench.reports.compare import run_compare

    tol = Tolerances(alpha=args.alpha, min_effect=args.min_effect,
                     single_seed_drop=args.single_seed_drop, bytes_growth=args.bytes_growth,
                     allow_missing=args.allow_missing, exact=args.exact)
    candidate = args.candidate if args.candidate is not None else results_root(None)
    return run_compare(args.baseline, candidate, tol, args.json)


def cmd_report(args: argparse.Namespace) -> int:
    from bench.reports import tables_cli

    return tables_cli.command(args)


def cmd_figures(args: argparse.Namespace) -> int:
    from bench.reports import figures

    return figures.command(args)


def cmd_perf(args: argparse.Namespace) -> int:
    from bench import perf

    return perf.run(args)


COMMANDS = {"run": cmd_run, "list": cmd_list, "report": cmd_report, "figures": cmd_figures,
            "export": cmd_export, "compare": cmd_compare, "perf": cmd_perf}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
        for warning in PLUGIN_WARNINGS:
            print(f"warning: {warning}", file=sys.stderr)
        return COMMANDS[args.command](args)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted: finished runs are saved; rerun the same command to resume",
              file=sys.stderr)
        return 130
