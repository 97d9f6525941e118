"""The ``grid`` section: every method on a preset's grid, run end to end through the harness
in a fresh results folder, and the full grid's time projected from a scaled-down run."""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.defaults import EXIT_RUN_FAILED, EXIT_USAGE
from bench.errors import BenchError
from bench.grid import build_specs
from bench.harness import DataCache, run_grid
from bench.perf.timing import PerfConfig
from bench.presets import get_preset
from bench.provenance import default_threads, set_threads
from bench.recipe import Recipe
from bench.registry import methods
from bench.store import RunSpec, RunStore


def preset_specs(preset_name: str, scale: float, data: DataCache) -> list[RunSpec]:
    """``bench run --methods all --preset NAME --budget-scale SCALE``'s specs, bound to their
    data: every registered method with default hyperparameters on the preset's grid."""
    preset = get_preset(preset_name)
    specs = build_specs(
        methods=[(name, {}) for name in methods()],
        models=preset.models,
        datasets=preset.datasets,
        densities={"*": preset.densities, **preset.method_densities},
        seeds=preset.seeds,
        recipe=lambda method: preset.recipe_for(method, scale),
        model_kwargs=dict(preset.model_kwargs),
        train_subset=preset.train_subset,
        test_subset=preset.test_subset,
    )
    return [data.bind(spec) for spec in specs]


def run_preset(cfg: PerfConfig, preset: str, results: Path) -> int:
    """Train the preset's grid into ``results`` as ``bench run`` does (threads as its default,
    no progress bars, final-epoch evaluation only); its exit status."""
    set_threads(default_threads())
    data = DataCache(cfg.data_dir, cfg.device)
    try:
        specs = preset_specs(preset, cfg.grid_scale, data)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"{len(specs)} runs, preset {preset}, results in {results}", flush=True)
    outcomes = run_grid(specs, store=RunStore(results), data=data, options=cfg.options)
    bad = [o for o in outcomes if o.status in ("failed", "diverged")]
    return EXIT_RUN_FAILED if bad else 0


def grid_rows(cfg: PerfConfig) -> list[dict[str, Any]]:
    """``bench run --methods all --preset <grid>`` end to end, in a fresh results folder.

    With ``grid_scale`` < 1 every recipe's epochs are scaled by it (``--budget-scale``) and
    the full grid's minutes are projected: the measured wall time plus, for each training
    phase of each finished run, its steady epoch time times the epochs the scale left out.
    """
    preset = cfg.grid or "quick"
    with tempfile.TemporaryDirectory(prefix="bench-perf-grid-") as scratch:
        results = cfg.grid_results or Path(scratch)
        t0 = time.perf_counter()
        status = run_preset(cfg, preset, results)
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
