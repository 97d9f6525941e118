"""Speed figures, measured side by side on one machine: ``python -m bench perf``.

Sections (``--sections``):

- ``epoch``: dense ResNet-20 on CIFAR-10 trained by the engine, by a minimal hand-written
  loop, by the engine with every speed switch off (``--plain``) and by the conventional
  DataLoader loop of the reference repositories (``bench.reference_loops``);
- ``masked``: one training step with a fixed mask and with top-k scores, over dense;
- ``scoring``: PX and SynFlow, 100 pruning rounds on ResNet-20 (PX on 100 images);
- ``profile``: torch.profiler tables of one engine epoch and one conventional epoch,
  written next to the JSON file;
- ``grid``: with ``--grid PRESET``, ``bench run --methods all --preset PRESET`` end to end
  in a fresh results folder.

Epochs and steps are timed with CUDA events on a GPU and ``perf_counter`` elsewhere,
after warm-up, as the median of ``--repeats``. Prints a table with the device name, the
issue's targets and whether each is met, and writes ``results/perf/<device>.json``
(``<device>-compiled.json`` with ``--compile``).
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tabulate import tabulate
from torch import nn

from bench.data import DeviceData, load_data
from bench.engine import (
    EngineOptions,
    autocast,
    compile_model,
    configure_backends,
    make_optimizer,
    model_input,
    prepare_model,
    step_begin,
    train,
)
from bench.masking import trainable_parameters
from bench.models import build_model, prunable_layers
from bench.pruning import prune
from bench.recipe import Recipe
from bench.reference_loops import ConventionalLoop, minimal_epoch
from bench.store import RunStore

SECTIONS = ("epoch", "masked", "scoring", "grid", "profile")
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


# --------------------------------------------------------------------------- epoch section


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


# --------------------------------------------------------------------------- masked section


def masked_variant(kind: str, seed: int = 0) -> nn.Module:
    """ResNet-20 with plain weights, a fixed 10% mask, or top-k scores at 50%."""
    model = build_model("resnet20", 10, seed=seed)
    g = torch.Generator().manual_seed(seed)
    for _, layer in prunable_layers(model):
        if kind == "fixed mask":
            layer.set_mask(torch.rand(layer.weight.shape, generator=g) < 0.1)
        elif kind == "top-k scores":
            layer.weight.requires_grad_(False)
            layer.use_scores(0.5, g)
    return model


def masked_rows(cfg: PerfConfig) -> list[dict[str, Any]]:
    """Seconds per training step of dense, fixed-mask and top-k ResNet-20, and the ratios."""
    options = cfg.options
    x = model_input(torch.randn(cfg.batch, 3, 32, 32, device=cfg.device), options)
    y = torch.randint(0, 10, (cfg.batch,), device=cfg.device)
    steps = 20 if options.cuda else 3
    rows = []
    for kind in ("dense", "fixed mask", "top-k scores"):
        model = prepare_model(masked_variant(kind), options).train()
        forward = compile_model(model, options)
        optimizer = make_optimizer(trainable_parameters(model), Recipe(lr=0.01), options)

        def run(forward: nn.Module = forward, optimizer: torch.optim.Optimizer = optimizer
                ) -> None:
            for _ in range(steps):
                step_begin(options)
                with autocast(options):
                    loss = F.cross_entropy(forward(x).float(), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

        samples = [s / steps for s in repeat(run, cfg.device, cfg.warmup + 1, cfg.repeats)]
        rows.append({"layers": kind, "batch": cfg.batch, **summary(samples, cfg.warmup + 1)})
    for row in rows:
        row["vs_dense"] = row["median_s"] / rows[0]["median_s"]
    return rows


# --------------------------------------------------------------------------- scoring section


def scoring_rows(cfg: PerfConfig, data: DeviceData) -> list[dict[str, Any]]:
    """Seconds for ``scoring_rounds`` rounds of PX (100 images) and SynFlow on ResNet-20."""
    from baselines.synflow import synflow_scores
    from methods.px import CLEAN, FAITHFUL, px_scores

    x, _ = data.pruning_batch(10, seed=0)
    scorers: dict[str, Callable[[nn.Module], Any]] = {
        "px": lambda m: px_scores(m, [x], FAITHFUL),
        "px-clean": lambda m: px_scores(m, [x], CLEAN),
        "synflow": synflow_scores,
    }
    rows = []
    repeats = cfg.repeats if cfg.device.type == "cuda" else 1
    for name, score in scorers.items():
        def run(score: Callable[[nn.Module], Any] = score) -> None:
            model = build_model("resnet20", data.num_classes, seed=0).to(cfg.device)
            prune(model, score, 0.02, cfg.scoring_rounds)

        samples = repeat(run, cfg.device, 1, repeats)
        rows.append({"method": name, "rounds": cfg.scoring_rounds, "images": len(x)
                     if name.startswith("px") else 0, **summary(samples, 1)})
    return rows


# --------------------------------------------------------------------------- grid section


def grid_rows(cfg: PerfConfig) -> list[dict[str, Any]]:
    """``bench run --methods all --preset <grid>`` end to end, in a fresh results folder.

    With ``grid_scale`` < 1 every recipe's epochs are scaled by it (``--budget-scale``) and
    the full grid's minutes are projected: the measured wall time plus, for each training
    phase of each finished run, its steady epoch time times the epochs the scale left out.
    """
    from bench.cli import main as cli_main
    from bench.presets import get_preset

    preset = cfg.grid or "quick"
    with tempfile.TemporaryDirectory(prefix="bench-perf-grid-") as scratch:
        results = cfg.grid_results or Path(scratch)
        argv = ["run", "--methods", "all", "--preset", preset, "--results", str(results),
                "--device", str(cfg.device), "--no-progress", "--eval-every", "0"]
        if cfg.grid_scale != 1.0:
            argv += ["--budget-scale", str(cfg.grid_scale)]
        if cfg.data_dir is not None:
            argv += ["--data-dir", str(cfg.data_dir)]
        if cfg.compile:
            argv.append("--compile")
        if cfg.cuda_graphs is False:
            argv.append("--no-cuda-graphs")
        t0 = time.perf_counter()
        status = cli_main(argv)
        seconds = time.perf_counter() - t0
        records = [record for _, record in RunStore(results).records()]
    finished = [r for r in records if r.get("status") == "finished"]
    row: dict[str, Any] = {
        "preset": preset, "budget_scale": cfg.grid_scale, "runs": len(records),
        "finished": len(finished), "exit_status": status,
        "epochs": sum(r["budget"]["all_phases_epochs"] for r in finished),
        "minutes": seconds / 60,
    }
    if cfg.grid_scale != 1.0:
        left_out = training_left_out(finished, get_preset(preset).recipe_for)
        row["projected_minutes"] = (seconds + left_out) / 60
    return [row]


def training_left_out(records: list[dict[str, Any]],
                      full_recipe: Callable[[str], Recipe]) -> float:
    """Seconds of training a scaled-down grid skipped: per phase, the median epoch time
    after its first epoch (the first holds compilation) times the epochs not run."""
    total = 0.0
    for record in records:
        spec = record["spec"]
        factor = full_recipe(spec["method"]).epochs / spec["recipe"]["epochs"]
        for phase in record["phases"]:
            times = [e["train_seconds"] for e in phase["log"] if "train_seconds" in e]
            if times:
                total += statistics.median(times[1:] or times) * phase["epochs"] * (factor - 1)
    return total


# --------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class Target:
    """One of the issue's speed targets: ``figure(results) <= / >= bound`` on ``device``."""

    name: str
    device: str  # "cuda" or "cpu"
    bound: float
    at_most: bool
    figure: Callable[[dict[str, Any]], float | None]


def _row(rows: list[dict[str, Any]], key: str, value: str) -> dict[str, Any] | None:
    return next((r for r in rows if str(r.get(key, "")).startswith(value)), None)


def _epoch(results: dict[str, Any], loop: str) -> float | None:
    row = _row(results.get("epoch", []), "loop", loop)
    return None if row is None else row["s_per_full_epoch"]


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a / b


def _field(section: str, key: str, value: str, field: str
           ) -> Callable[[dict[str, Any]], float | None]:
    def get(results: dict[str, Any]) -> float | None:
        row = _row(results.get(section, []), key, value)
        return None if row is None else row[field]
    return get


def _grid_minutes(results: dict[str, Any]) -> float | None:
    """The quick grid's minutes: measured, or projected from a scaled-down run."""
    row = _row(results.get("grid", []), "preset", "quick")
    if row is None or row["finished"] < row["runs"]:
        return None
    return row.get("projected_minutes", row["minutes"])


TARGETS = (
    Target("dense ResNet-20 s/epoch (full CIFAR-10)", "cuda", 1.0, True,
           lambda r: _epoch(r, "engine")),
    Target("engine speed-up over conventional loop", "cuda", 8.0, False,
           lambda r: _ratio(_epoch(r, "conventional"), _epoch(r, "engine"))),
    Target("fixed-mask step / dense step", "cuda", 1.15, True,
           _field("masked", "layers", "fixed", "vs_dense")),
    Target("top-k step / dense step", "cuda", 1.3, True,
           _field("masked", "layers", "top-k", "vs_dense")),
    Target("PX 100 rounds, 100 images (s)", "cuda", 10.0, True,
           _field("scoring", "method", "px", "median_s")),
    Target("SynFlow 100 rounds (s)", "cuda", 5.0, True,
           _field("scoring", "method", "synflow", "median_s")),
    Target("--methods all --preset quick (min)", "cuda", 30.0, True, _grid_minutes),
    Target("engine time / minimal loop time", "cpu", 1.10, True,
           lambda r: _ratio(_epoch(r, "engine"), _epoch(r, "minimal"))),
    Target("engine speed-up over conventional loop", "cpu", 2.0, False,
           lambda r: _ratio(_epoch(r, "conventional"), _epoch(r, "engine"))),
)


def target_rows(results: dict[str, Any], device: torch.device) -> list[dict[str, Any]]:
    """Each target of this device type with its figure and whether it is met."""
    rows = []
    for target in TARGETS:
        if target.device != device.type:
            continue
        figure = target.figure(results)
        met = None if figure is None else (
            figure <= target.bound if target.at_most else figure >= target.bound)
        rows.append({"target": target.name,
                     "bound": f"{'<=' if target.at_most else '>='} {target.bound:g}",
                     "figure": figure,
                     "met": {None: "not measured", True: "yes", False: "NO"}[met]})
    return rows


# --------------------------------------------------------------------------- entry point


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default cuda when available)")
    parser.add_argument("--batch", type=int, default=512, help="batch size (default 512)")
    parser.add_argument("--train-images", type=int,
                        help="time epochs over a class-balanced subset of N training images "
                        "(default: all 50,000; figures are also given per full epoch)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (median)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed warm-up repeats")
    parser.add_argument("--workers", type=int, default=4,
                        help="DataLoader workers of the conventional loop")
    parser.add_argument("--compile", action="store_true", help="torch.compile in engine and "
                        "minimal loop (compile time is reported apart)")
    parser.add_argument("--no-cuda-graphs", action="store_true",
                        help="with --compile on CUDA: compile without CUDA graphs")
    parser.add_argument("--sections", default="epoch,masked,scoring",
                        help=f"comma-separated of {', '.join(SECTIONS)}")
    parser.add_argument("--grid", help="preset to run end to end in the grid section "
                        "(adds the section)")
    parser.add_argument("--grid-scale", type=float, default=1.0,
                        help="run the grid with every recipe's epochs scaled by this and "
                        "project the full grid's minutes from its records (default 1: run "
                        "it whole)")
    parser.add_argument("--grid-results", type=Path,
                        help="keep the grid's run records in this folder (default: a "
                        "temporary one)")
    parser.add_argument("--data-dir", type=Path, help="folder holding cifar-10-batches-py")
    parser.add_argument("--out", type=Path, default=Path("results/perf"),
                        help="folder of the JSON file (default results/perf)")


def run(args: argparse.Namespace) -> int:
    """Measure the chosen sections, print them and the targets, write the JSON file."""
    from bench.defaults import resolve_device
    from bench.errors import BenchError

    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        raise BenchError(f"unknown perf section(s) {', '.join(unknown)}; "
                         f"valid: {', '.join(SECTIONS)}")
    if args.grid and "grid" not in sections:
        sections.append("grid")
    if "grid" in sections and not args.grid:
        raise BenchError("the grid section needs --grid PRESET (e.g. --grid quick)")
    if not 0 < args.grid_scale <= 1:
        raise BenchError(f"--grid-scale must be in (0, 1], got {args.grid_scale}")
    if args.batch < 1 or args.repeats < 1 or args.warmup < 0 or args.workers < 0:
        raise BenchError("--batch and --repeats must be >= 1, --warmup and --workers >= 0")
    cfg = PerfConfig(device=resolve_device(args.device), batch=args.batch,
                     train_images=args.train_images, warmup=args.warmup, repeats=args.repeats,
                     workers=args.workers, compile=args.compile,
                     cuda_graphs=False if args.no_cuda_graphs else None, grid=args.grid,
                     grid_scale=args.grid_scale, grid_results=args.grid_results,
                     data_dir=args.data_dir)
    configure_backends(cfg.options)
    name = device_name(cfg.device)
    print(f"device: {name}; torch {torch.__version__}; batch {cfg.batch}; "
          f"engine switches {cfg.options.switches()}", flush=True)
    data = None
    if {"epoch", "scoring", "profile"} & set(sections):
        data = load_data("cifar10", cfg.data_dir, cfg.device, cfg.train_images, 1000,
                         download=False)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", name) + ("-compiled" if cfg.compile else "")
    if cfg.compile and cfg.options.cuda and not cfg.options.use_cuda_graphs:
        stem += "-no-cuda-graphs"
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    measure: dict[str, Callable[[], list[dict[str, Any]]]] = {
        "epoch": lambda: epoch_rows(cfg, data),
        "masked": lambda: masked_rows(cfg),
        "scoring": lambda: scoring_rows(cfg, data),
        "grid": lambda: grid_rows(cfg),
        "profile": lambda: profile_tables(cfg, data, args.out / f"{stem}-profile.txt"),
    }
    for section in sections:
        results[section] = measure[section]()
        print(f"\n[{section}]")
        print(tabulate([{k: v for k, v in row.items() if k != "samples_s"}
                        for row in results[section]], headers="keys", floatfmt=".4g"),
              flush=True)
    targets = target_rows(results, cfg.device)
    print(f"\n[targets on {cfg.device.type}]")
    print(tabulate(targets, headers="keys", floatfmt=".3g"))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / (stem + ".json")
    payload = {"device": name, "torch": torch.__version__, "host": platform.node(),
               "config": {**asdict(replace(cfg, device=str(cfg.device))),
                          "data_dir": None, "switches": cfg.options.switches()},
               **results, "targets": targets}
    path.write_text(json.dumps(payload, indent=1, default=str) + "\n")
    print(f"\nwritten to {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.perf ARGS`` is ``python -m bench perf ARGS``."""
    from bench.cli import main as cli_main

    return cli_main(["perf", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
