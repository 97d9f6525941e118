"""The ``grid`` section: every method on a preset's grid, run end to end through the harness
in a fresh results folder, and the full grid's time projected from a scaled-down run."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.data import check_balanced, dataset_info
from bench.defaults import EXIT_RUN_FAILED
from bench.grid import GridChoice, GridOptions, parse_method_item, preset_specs
from bench.harness import DataCache, run_grid
from bench.perf.timing import FULL_EPOCH_IMAGES, PerfConfig
from bench.presets import get_preset
from bench.provenance import default_threads, set_threads
from bench.recipe import Recipe
from bench.store import RunSpec, RunStore
from bench.wording import counted


def preset_grid(cfg: PerfConfig) -> list[RunSpec]:
    """The preset's grid as ``bench run --preset P --budget-scale S`` expands it (its own
    methods, or ``cfg.grid_methods``; seeds and densities narrowed where asked; a train and
    test subset with ``cfg.grid_images``), not yet bound to its data."""
    preset = get_preset(cfg.grid or "quick")
    train, test = cfg.grid_images or (None, None)
    options = GridOptions(budget_scale=cfg.grid_scale, width=cfg.grid_width,
                          train_subset=train, test_subset=test)
    choice = GridChoice(
        methods=([parse_method_item(m) for m in cfg.grid_methods]
                 if cfg.grid_methods else None),
        seeds=cfg.grid_seeds, densities=cfg.grid_densities)
    return preset_specs(preset, options, choice)


def check_grid(cfg: PerfConfig) -> None:
    """The grid's mistakes (preset, methods, seeds, densities, subset sizes) as one error line
    before any section runs, not after the sections before it."""
    for spec in preset_grid(cfg):
        for size in (spec.train_subset, spec.test_subset):
            if size is not None:
                check_balanced(size, dataset_info(spec.dataset).num_classes)


def grid_specs(cfg: PerfConfig, data: DataCache) -> list[RunSpec]:
    """:func:`preset_grid` bound to its data."""
    return [data.bind(spec) for spec in preset_grid(cfg)]


def run_preset(cfg: PerfConfig, results: Path, pack: int) -> int:
    """Train the grid into ``results`` as ``bench run`` does (threads as its default, no
    progress bars), ``pack`` runs to a step; its exit status."""
    set_threads(default_threads())
    data = DataCache(cfg.data_dir, cfg.device)
    specs = grid_specs(cfg, data)  # a BenchError (bad grid, missing data) ends the command
    print(f"{counted(len(specs), 'run')}, preset {cfg.grid}, pack {pack}, results in {results}",
          flush=True)
    outcomes = run_grid(specs, store=RunStore(results), data=data, options=cfg.options,
                        pack=pack)
    bad = [o for o in outcomes if o.status in ("failed", "diverged")]
    return EXIT_RUN_FAILED if bad else 0


def grid_rows(cfg: PerfConfig) -> list[dict[str, Any]]:
    """The grid end to end in a fresh results folder, once per packing in ``cfg.grid_packs``
    (1: one run at a time), the packings taking turns.

    With ``grid_scale`` < 1 every recipe's epochs are scaled by it (``--budget-scale``) and
    the full grid's minutes are projected: the measured wall time plus, for each training
    phase of each finished run, its steady epoch time times the epochs the scale left out;
    with ``grid_images`` the training time (measured and left out) is scaled up to the full
    training split as well, and the rest (scoring, evaluation on the test subset) is taken
    as measured.
    """
    rows = []
    for pack in cfg.grid_packs:
        with tempfile.TemporaryDirectory(prefix="bench-perf-grid-") as scratch:
            results = (cfg.grid_results / f"pack{pack}") if cfg.grid_results else Path(scratch)
            t0 = time.perf_counter()
            status = run_preset(cfg, results, pack)
            seconds = time.perf_counter() - t0
            records = [record for _, record in RunStore(results).records()]
        rows.append(_row(cfg, pack, records, seconds, status))
    base = next((r for r in rows if r["pack"] == 1), None)
    for row in rows:
        if base is not None and row is not base:
            key = "projected_minutes" if "projected_minutes" in row else "minutes"
            row["speedup_vs_pack1"] = base[key] / row[key]
    return rows


def _row(cfg: PerfConfig, pack: int, records: list[dict[str, Any]], seconds: float,
         status: int) -> dict[str, Any]:
    finished = [r for r in records if r.get("status") == "finished"]
    trained = sum(r["budget"]["all_phases_train_seconds"] for r in finished)
    row: dict[str, Any] = {
        "preset": cfg.grid, "pack": pack, "budget_scale": cfg.grid_scale,
        "train_images": (cfg.grid_images or (None, None))[0] or "preset",
        "runs": len(records), "finished": len(finished), "exit_status": status,
        "epochs": sum(r["budget"]["all_phases_epochs"] for r in finished),
        "minutes": seconds / 60, "train_minutes": trained / 60,
        "runs_per_minute": len(finished) / (seconds / 60) if seconds else None,
    }
    factor = _image_factor(cfg, finished)
    if cfg.grid_scale != 1.0 or factor != 1.0:
        preset = get_preset(cfg.grid or "quick")
        left_out = training_left_out(finished, preset.recipe_for)
        row["projected_minutes"] = (seconds + (trained + left_out) * factor - trained) / 60
    return row


def _image_factor(cfg: PerfConfig, records: list[dict[str, Any]]) -> float:
    """Full training split over the subset trained on (1 without ``grid_images``)."""
    if not cfg.grid_images or not records:
        return 1.0
    full = get_preset(cfg.grid or "quick").train_subset or FULL_EPOCH_IMAGES  # CIFAR-10/100
    return full / cfg.grid_images[0]


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
