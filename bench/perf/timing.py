"""What ``bench perf`` measures (:class:`PerfConfig`) and how it times: CUDA events on a GPU,
``perf_counter`` elsewhere, warm-up first, summarised by the median."""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bench.engine import EngineOptions

FULL_EPOCH_IMAGES = 50_000


@dataclass(frozen=True)
class PerfConfig:
    """What to measure and how often; ``train_images`` None is the full training split."""

    device: torch.device
    batch: int = 512
    train_images: int | None = None
    warmup: int = 1
    repeats: int = 3
    workers: int = 4
    compile: bool = False
    scoring_rounds: int = 100
    grid: str | None = None
    cuda_graphs: bool | None = None
    grid_scale: float = 1.0
    grid_results: Path | None = None
    grid_packs: tuple[int, ...] = (1,)
    pack_sizes: tuple[int, ...] = (1, 2, 4, 8, 16)
    grid_methods: tuple[str, ...] | None = None
    grid_seeds: tuple[int, ...] | None = None
    grid_densities: tuple[float, ...] | None = None
    grid_images: tuple[int, int] | None = None
    grid_width: float | None = None
    """(train, test) class-balanced subsets for the grid; None: the preset's data."""
    data_dir: Path | None = None

    @property
    def options(self) -> EngineOptions:
        return EngineOptions(device=self.device, compile=self.compile,
                             cuda_graphs=self.cuda_graphs, eval_every=0)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu-{platform.machine()}-{torch.get_num_threads()}threads"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    """Seconds ``fn`` takes: CUDA events around it on a GPU (then a sync), else perf_counter."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        sync(device)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def repeat(fn: Callable[[], Any], device: torch.device, warmup: int, repeats: int
           ) -> list[float]:
    """Seconds of ``warmup + repeats`` calls of ``fn``, warm-up calls first."""
    return [timed(fn, device) for _ in range(warmup + repeats)]


def summary(samples: list[float], warmup: int) -> dict[str, Any]:
    steady = samples[warmup:]
    return {"median_s": statistics.median(steady), "min_s": min(steady), "max_s": max(steady),
            "first_s": samples[0], "samples_s": samples}
