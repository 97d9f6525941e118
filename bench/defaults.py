"""What every command shares: where results go, which device runs, the exit statuses.

Kept below the commands so that a command never imports the command line.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from bench.errors import BenchError

DEFAULT_RESULTS = Path("results/runs")
RESULTS_ENV = "BENCH_RESULTS"
EXIT_RUN_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports SIGINT


def results_root(arg: Path | None) -> Path:
    """``--results`` if given, else ``$BENCH_RESULTS``, else ``results/runs``."""
    if arg is not None:
        return arg
    return Path(os.environ.get(RESULTS_ENV, DEFAULT_RESULTS))


def resolve_device(name: str | None) -> torch.device:
    """The run device; asking for CUDA where there is none is a user error."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise BenchError(f"unknown device {name!r}; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BenchError(
            f"device {name!r} requested but CUDA is not available here; use --device cpu"
        )
    if device.type not in ("cpu", "cuda"):
        raise BenchError(f"unsupported device {name!r}; use cpu, cuda or cuda:N")
    return device
