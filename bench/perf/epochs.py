"""The ``epoch`` and ``profile`` sections: dense ResNet-20 epochs in the engine, a minimal
hand-written loop, the engine with ``--plain`` and the conventional DataLoader loop."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from bench.data import DeviceData
from bench.engine import EngineOptions, compile_model, make_optimizer, prepare_model, train
from bench.models import build_model
from bench.perf.reference_loops import ConventionalLoop, minimal_epoch
from bench.perf.timing import FULL_EPOCH_IMAGES, PerfConfig, summary, timed
from bench.recipe import Recipe


def epoch_rows(cfg: PerfConfig, data: DeviceData) -> list[dict[str, Any]]:
    """Seconds per training epoch of dense ResNet-20 in each loop; throughput in images/s.

    The loops take turns epoch by epoch, so drift of the machine (clock, other load)
    falls on all of them alike.
    """
    recipe = Recipe(epochs=1, batch_size=cfg.batch, schedule="constant", lr=0.05)
    images = data.steps_per_epoch(cfg.batch) * cfg.batch
    counter = iter(range(1, 1_000_000))

    def resnet(options: EngineOptions) -> nn.Module:
        return prepare_model(build_model("resnet20", data.num_classes, seed=0), options)

    def engine(options: EngineOptions) -> Callable[[], float]:
        model = resnet(options)

        def epoch() -> float:  # the engine's own clock: CUDA events on a GPU
            result = train(model, data, recipe, seed=next(counter), options=options)
            return result.log[-1]["train_seconds"]
        return epoch

    def minimal(options: EngineOptions) -> Callable[[], float]:
        model = resnet(options)
        optimizer = make_optimizer(model.parameters(), recipe, options)
        forward = compile_model(model, options)
        return lambda: timed(lambda: minimal_epoch(forward, optimizer, data, cfg.batch, 0,
                                                   next(counter), options), cfg.device)

    def conventional() -> Callable[[], float]:
        loop = ConventionalLoop.build(build_model("resnet20", data.num_classes, seed=0), data,
                                      recipe, cfg.device, cfg.workers)
        return lambda: timed(loop.epoch, cfg.device)

    compiled = " (compiled)" if cfg.compile else ""
    loops = {f"engine{compiled}": engine(cfg.options),
             f"minimal hand-written{compiled}": minimal(cfg.options)}
    if cfg.options.switches() != cfg.options.plain().switches():
        loops["engine --plain"] = engine(cfg.options.plain())
    loops[f"conventional DataLoader ({cfg.workers} workers)"] = conventional()
    samples: dict[str, list[float]] = {name: [] for name in loops}
    for _ in range(cfg.warmup + cfg.repeats):
        for name, epoch in loops.items():
            samples[name].append(epoch())
    rows = []
    for name, seconds in samples.items():
        row = {"loop": name, **summary(seconds, cfg.warmup)}
        if cfg.compile and "compiled" in name:
            row["compile_s"] = seconds[0] - row["median_s"]
        row["images"] = images
        row["images_per_s"] = images / row["median_s"]
        row["s_per_full_epoch"] = FULL_EPOCH_IMAGES / row["images_per_s"]
        rows.append(row)
    return rows


def profile_tables(cfg: PerfConfig, data: DeviceData, out: Path) -> list[dict[str, Any]]:
    """torch.profiler over one epoch of the engine and of the conventional loop: the ops
    that take the time, and how long the conventional loop waits for its DataLoader."""
    from torch.profiler import ProfilerActivity, profile

    recipe = Recipe(epochs=1, batch_size=cfg.batch, schedule="constant", lr=0.05)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cfg.device.type == "cuda"
                                           else [])
    sort = "self_cuda_time_total" if cfg.device.type == "cuda" else "self_cpu_time_total"
    options = cfg.options
    model = prepare_model(build_model("resnet20", data.num_classes, seed=0), options)
    loop = ConventionalLoop.build(build_model("resnet20", data.num_classes, seed=0), data,
                                  recipe, cfg.device, cfg.workers)
    runs = {"engine": lambda: train(model, data, recipe, seed=1, options=options),
            "conventional": loop.epoch}
    rows, text = [], []
    for name, run in runs.items():
        run()  # warm-up (compilation, worker start-up paths, allocator)
        with profile(activities=activities) as prof:
            total = timed(run, cfg.device)
        averages = prof.key_averages()
        wait = sum(e.cpu_time_total for e in averages if "DataLoader" in e.key
                   and "__next__" in e.key) / 1e6
        rows.append({"loop": name, "profiled_epoch_s": total, "dataloader_wait_s": wait})
        text += [f"== {name}: {total:.3f} s, waiting for DataLoader {wait:.3f} s", "",
                 averages.table(sort_by=sort, row_limit=15), ""]
    out.write_text("\n".join(text))
    print(f"profiles written to {out}")
    return rows
