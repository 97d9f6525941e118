"""The ``perf`` command: its options, the checks on them, the sections measured in turn, the
table printed and the JSON file written (``results/perf/<device>.json``)."""

from __future__ import annotations

import argparse
import json
import platform
import re
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
from tabulate import tabulate

from bench.data import DeviceData, load_data
from bench.defaults import resolve_device
from bench.engine import configure_backends
from bench.errors import BenchError
from bench.perf.epochs import epoch_rows, profile_tables
from bench.perf.grid import check_grid, grid_rows
from bench.perf.masked import masked_rows
from bench.perf.packing import packing_rows
from bench.perf.process import process_rows
from bench.perf.scoring import scoring_rows
from bench.perf.targets import target_rows
from bench.perf.timing import PerfConfig, device_name
from bench.perf.update import update_rows
from bench.registry import get_method, parse_method_item

SECTIONS = ("epoch", "masked", "update", "scoring", "packing", "grid", "profile", "process")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``perf`` command's options."""
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
    parser.add_argument("--grid-scale", "--budget-scale", dest="grid_scale", type=float,
                        default=1.0,
                        help="run the grid with every recipe's epochs scaled by this and "
                        "project the full grid's minutes from its records (default 1: run "
                        "it whole)")
    parser.add_argument("--grid-results", type=Path,
                        help="keep the grid's run records in this folder (default: a "
                        "temporary one)")
    parser.add_argument("--pack", default="1", help="grid: comma-separated packings to run "
                        "the grid with, each in a fresh folder, e.g. 1,8 (1: one run at a "
                        "time; see bench run --pack)")
    parser.add_argument("--pack-sizes", default="1,2,4,8,16", help="packing section: the K "
                        "runs per step to time (default 1,2,4,8,16)")
    parser.add_argument("--grid-methods", help="grid: comma-separated methods (default: the "
                        "preset's)")
    parser.add_argument("--grid-seeds", help="grid: comma-separated seeds (default: the "
                        "preset's)")
    parser.add_argument("--grid-densities", help="grid: comma-separated densities (default: "
                        "the preset's)")
    parser.add_argument("--grid-images", help="grid: TRAIN,TEST class-balanced subsets; the "
                        "projection scales training time up to the full split")
    parser.add_argument("--grid-width", type=float, help="grid: model width multiplier "
                        "(fast tests)")
    parser.add_argument("--data-dir", type=Path, help="folder holding cifar-10-batches-py")
    parser.add_argument("--out", type=Path, default=Path("results/perf"),
                        help="folder of the JSON file (default results/perf)")


def command(args: argparse.Namespace) -> int:
    """Measure the chosen sections, print them and the targets, write the JSON file."""
    sections = chosen_sections(args)
    cfg = config(args)
    if "grid" in sections:
        check_grid(cfg)
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
    results = measure(cfg, data, sections, args.out / f"{stem}-profile.txt")
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


def chosen_sections(args: argparse.Namespace) -> list[str]:
    """``--sections`` (plus ``grid`` with ``--grid``), every option checked first."""
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
    return sections


def config(args: argparse.Namespace) -> PerfConfig:
    """The measurement's configuration from the command's options."""
    return PerfConfig(device=resolve_device(args.device), batch=args.batch,
                      train_images=args.train_images, warmup=args.warmup,
                      repeats=args.repeats, workers=args.workers, compile=args.compile,
                      cuda_graphs=False if args.no_cuda_graphs else None, grid=args.grid,
                      grid_scale=args.grid_scale, grid_results=args.grid_results,
                      data_dir=args.data_dir, grid_packs=_ints(args.pack, "--pack"),
                      grid_methods=_methods(args.grid_methods),
                      grid_seeds=_ints(args.grid_seeds, "--grid-seeds"),
                      grid_densities=_floats(args.grid_densities, "--grid-densities"),
                      grid_images=_images(args.grid_images), grid_width=args.grid_width,
                      pack_sizes=_ints(args.pack_sizes, "--pack-sizes"))


def _methods(text: str | None) -> tuple[str, ...] | None:
    """``--grid-methods``, each name checked against the registry before anything runs."""
    items = _items(text)
    for item in items or ():
        get_method(parse_method_item(item)[0])
    return items


def _items(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(t.strip() for t in text.split(",") if t.strip())


def _numbers(text: str | None, option: str, cast: Callable[[str], Any],
             valid: Callable[[Any], bool], rule: str) -> tuple[Any, ...] | None:
    """A comma-separated list of ``cast`` values, each ``valid`` (else one error line)."""
    items = _items(text)
    if items is None:
        return None
    try:
        values = tuple(cast(t) for t in items)
    except ValueError:
        raise BenchError(f"{option} takes comma-separated {rule}, got {text!r}") from None
    if not values or not all(valid(v) for v in values):
        raise BenchError(f"{option} {text!r}: give {rule}")
    return values


def _ints(text: str | None, option: str) -> tuple[int, ...] | None:
    if option in ("--pack", "--pack-sizes"):
        return _numbers(text, option, int, lambda v: v >= 1, "integers >= 1")
    return _numbers(text, option, int, lambda v: v >= 0, "non-negative integers")


def _floats(text: str | None, option: str) -> tuple[float, ...] | None:
    return _numbers(text, option, float, lambda v: 0 < v <= 1, "densities in (0, 1]")


def _images(text: str | None) -> tuple[int, int] | None:
    values = _ints(text, "--grid-images")
    if values is not None and (len(values) != 2 or min(values) < 1):
        raise BenchError(f"--grid-images takes TRAIN,TEST (two positive integers), got {text!r}")
    return None if values is None else (values[0], values[1])


def measure(cfg: PerfConfig, data: DeviceData | None, sections: list[str], profile: Path
            ) -> dict[str, list[dict[str, Any]]]:
    """Each section's rows, in the order asked for, each table printed as it is done."""
    sections_rows: dict[str, Callable[[], list[dict[str, Any]]]] = {
        "epoch": lambda: epoch_rows(cfg, data),
        "masked": lambda: masked_rows(cfg),
        "update": lambda: update_rows(cfg),
        "scoring": lambda: scoring_rows(cfg, data),
        "packing": lambda: packing_rows(cfg),
        "grid": lambda: grid_rows(cfg),
        "process": lambda: process_rows(cfg),
        "profile": lambda: profile_tables(cfg, data, profile),
    }
    results: dict[str, list[dict[str, Any]]] = {}
    for section in sections:
        results[section] = sections_rows[section]()
        print(f"\n[{section}]")
        print(tabulate([{k: v for k, v in row.items() if k != "samples_s"}
                        for row in results[section]], headers="keys", floatfmt=".4g"),
              flush=True)
    return results
