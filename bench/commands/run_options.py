"""``bench run``'s options: the grid's dimensions, the engine's switches, the executor, each
method's hyperparameters (``--<method>-<field>``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.artifact import VALUE_CODECS
from bench.commands.executor_options import add_executor_arguments, check_executor_options
from bench.commands.parsing import metavar, option_name
from bench.defaults import (
    DEFAULT_RESULTS,
    RESULTS_ENV,
)
from bench.presets import DEFAULT_PRESET
from bench.registry import (
    hparam_fields,
    methods,
)

__all__ = ["add_arguments", "check_executor_options"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The grid's dimensions and overrides, then the engine and store options."""
    _grid_arguments(parser)
    _engine_arguments(parser)
    add_executor_arguments(parser)
    _hparam_arguments(parser)


def _grid_arguments(parser: argparse.ArgumentParser) -> None:
    """What to run: the preset and the dimensions and budget that override it."""
    arg = parser.add_argument
    arg("--preset", default=DEFAULT_PRESET,
        help=f"named grid and recipe (default {DEFAULT_PRESET}; see `list`)")
    arg("--methods", help="comma-separated names or 'all'; options as name:key=value")
    arg("--models", help="comma-separated model names (see `list`)")
    arg("--datasets", help="comma-separated: cifar10, cifar100")
    arg("--densities", help="kept fractions in (0, 1], comma-separated")
    arg("--seeds", help="comma-separated integers")
    arg("--epochs", type=int, help="training budget in epochs (overrides the preset)")
    arg("--recipe", help="a named recipe for every method (see `list`)")
    arg("--budget-scale", type=float, default=1.0,
        help="scale every recipe's epochs, e.g. 0.1 for a quick look")
    arg("--width", type=float, help="model width multiplier (fast tests)")
    arg("--train-subset", type=int, help="class-balanced subset of N training images")
    arg("--test-subset", type=int, help="class-balanced subset of N test images")
    arg("--value-codec", default="float32", choices=VALUE_CODECS,
        help="how kept weights are stored in the artifact (16-bit codecs are lossy)")


def _engine_arguments(parser: argparse.ArgumentParser) -> None:
    """Where data and results live, and how the engine runs."""
    arg = parser.add_argument
    arg("--data-dir", type=Path,
        help="folder holding cifar-10-batches-py / cifar-100-python "
        "(default $BENCH_DATA_DIR, else ~/.cache/bench/data)")
    arg("--no-download", action="store_true", help="never download missing data")
    arg("--results", type=Path,
        help=f"run store (default ${RESULTS_ENV}, else {DEFAULT_RESULTS})")
    arg("--device", help="cpu, cuda or cuda:N (default cuda when available)")
    arg("--threads", help="CPU threads for torch (default $BENCH_THREADS, else "
        "$OMP_NUM_THREADS, else the CPUs this process may use; results on CPU depend on it, "
        "see README)")
    arg("--compile", action="store_true",
        help="torch.compile the model (pays from a few epochs on; kernels are "
        "cached on disk across runs; on CUDA with CUDA graphs)")
    arg("--no-cuda-graphs", action="store_true",
        help="with --compile on CUDA: compile without CUDA graphs")
    arg("--precision", choices=("float32", "bfloat16", "float16"),
        help="training and evaluation precision: float16 autocast with dynamic loss scaling "
        "(the PX authors'), bfloat16 autocast, or float32 (default: on CUDA the preset's, "
        "float16 for the PX presets and bfloat16 for the others; float32 on CPU)")
    arg("--plain", action="store_true",
        help="every speed switch off: float32, NCHW, unfused optimiser, no compile "
        "(results agree with the default to training noise)")
    arg("--pack", type=int, default=1, metavar="K",
        help="train up to K runs of one architecture and recipe in one step (vmap over "
        "stacked models; fixed-mask runs only); records equal one at a time up to rounding. "
        "Default 1: see README, Speed, for where it pays")
    arg("--force", action="store_true", help="retrain runs that are already finished")
    arg("--eval-every", type=int, default=1,
        help="log test accuracy every N epochs (0: final epoch only)")
    arg("--no-progress", action="store_true", help="no progress bars")


def _hparam_arguments(parser: argparse.ArgumentParser) -> None:
    """``--<method>-<field>`` for every registered method's hyperparameters."""
    for name, cls in methods().items():
        for field, kind, default in hparam_fields(cls):
            parser.add_argument(option_name(name, field), dest=f"hp__{name}__{field}",
                                metavar=metavar(kind),
                                help=f"{name} hyperparameter (default {default})")
