"""Runs one spec end to end (model, method, evaluation, record) and a grid of them.

The harness owns everything around a method: building the initial model from
the run seed, checkpoint paths, timing, the record and its status. Methods only
compute; they never write files.
"""

from __future__ import annotations

import platform
import subprocess
import sys
import time
import traceback
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

import bench
from bench import artifact
from bench.data import DeviceData, load_data, mix_seed
from bench.engine import (
    Diverged,
    EngineOptions,
    TrainResult,
    autocast,
    evaluate,
    model_input,
    prepare_model,
    train,
)
from bench.errors import BenchError
from bench.metrics import dense_bytes, model_metrics, paper_bytes
from bench.models import build_model
from bench.recipe import Recipe
from bench.registry import Method, get_method, make_hparams
from bench.store import RECORD_FORMAT, RunSpec, RunStore, UnreadableRecord


@dataclass
class SearchCost:
    """What a method spends besides training its final model (equal-compute comparisons)."""

    extra_epochs: float = 0.0
    forward_images: int = 0
    backward_images: int = 0
    seconds: float = 0.0

    def count(self, images: int, backward: int = 1) -> None:
        """Record one scoring forward pass over ``images`` and ``backward`` backward passes."""
        self.forward_images += images
        self.backward_images += backward * images


@dataclass
class RunContext:
    """What a method gets: the initialised model, the data, the recipe, and the engine."""

    spec: RunSpec
    model: nn.Module
    data: DeviceData
    recipe: Recipe
    options: EngineOptions
    store: RunStore
    search: SearchCost = field(default_factory=SearchCost)
    phases: list[dict[str, Any]] = field(default_factory=list)

    @property
    def density(self) -> float:
        return self.spec.density

    @property
    def seed(self) -> int:
        return self.spec.seed

    @property
    def device(self) -> torch.device:
        return self.options.device

    def train(
        self,
        model: nn.Module | None = None,
        *,
        params: Sequence[nn.Parameter] | None = None,
        recipe: Recipe | None = None,
        phase: str = "train",
        snapshot_epochs: tuple[int, ...] = (),
    ) -> TrainResult:
        """Train through the one engine; each named phase checkpoints and resumes on its own.

        ``params`` defaults to every parameter that requires grad. Set up masks, scores and
        random weights before calling: a resumed phase loads its checkpoint into this model.
        """
        model = self.model if model is None else model
        if any(p["phase"] == phase for p in self.phases):
            raise ValueError(f"training phase {phase!r} used twice in one run")
        seed = self.seed if phase == "train" else mix_seed(self.seed, zlib.crc32(phase.encode()))
        result = train(
            model,
            self.data,
            recipe or self.recipe,
            seed=seed,
            options=self.options,
            params=params,
            checkpoint=self.store.checkpoint_path(self.spec.key, phase),
            description=phase,
            snapshot_epochs=snapshot_epochs,
        )
        self.phases.append({"phase": phase, "epochs": result.epochs, "steps": result.steps,
                            "seconds": result.seconds, "log": result.log,
                            "resumed_at_epoch": result.resumed_at_epoch})
        return result


@dataclass
class Outcome:
    """The result of asking for one spec: its record and whether it came from the store."""

    spec: RunSpec
    record: dict[str, Any]
    cached: bool

    @property
    def status(self) -> str:
        return self.record["status"]


def environment(options: EngineOptions) -> dict[str, Any]:
    """Device, library versions and code version, stored in every record."""
    if options.cuda:
        device_name = torch.cuda.get_device_name(options.device)
    else:
        cpu = platform.processor() or platform.machine()
        device_name = f"cpu ({cpu}, {torch.get_num_threads()} threads)"
    return {
        "device": device_name,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "bench": bench.__version__,
        "git_commit": git_commit(),
        **options.switches(),
    }


def git_commit() -> str | None:
    """The suite's git commit (with ``+dirty`` for uncommitted changes), or None outside git."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root, capture_output=True, text=True, timeout=10,
        )
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class DataCache:
    """Loads each (dataset, subsets) once per grid, onto the run device."""

    def __init__(self, data_dir: Path | None, device: torch.device, download: bool = True) -> None:
        self.data_dir = data_dir
        self.device = device
        self.download = download
        self._cache: dict[tuple[str, int | None, int | None], DeviceData] = {}

    def get(self, dataset: str, train_subset: int | None, test_subset: int | None) -> DeviceData:
        key = (dataset, train_subset, test_subset)
        if key not in self._cache:
            self._cache[key] = load_data(
                dataset, self.data_dir, self.device, train_subset, test_subset, self.download
            )
        return self._cache[key]


def execute(
    spec: RunSpec,
    *,
    store: RunStore,
    data: DataCache,
    options: EngineOptions,
    force: bool = False,
    echo: Callable[[str], None] = print,
) -> Outcome:
    """Run one spec unless the store has it finished; record whatever happens."""
    key = spec.key
    try:
        existing = store.read(key)
    except UnreadableRecord as exc:
        aside = store.set_aside(key)
        echo(f"warning: {exc}; moved to {aside.name} and rerunning")
        existing = None
    if existing is not None and existing["status"] == "finished" and not force:
        return Outcome(spec, existing, cached=True)
    if force:
        store.clear_checkpoints(key)

    record: dict[str, Any] = {
        "format": RECORD_FORMAT,
        "key": key,
        "status": "running",
        "spec": spec.to_record(),
        "environment": environment(options),
        "started": _now(),
    }
    store.write(key, record)
    method_cls = get_method(spec.method)
    method = method_cls(method_cls.Hparams(**spec.hparams))
    t0 = time.perf_counter()
    try:
        record.update(_run(spec, method, store, data, options))
        record["status"] = "finished"
    except Diverged as exc:
        record.update(status="diverged", error={"type": "Diverged", "message": str(exc)})
    except KeyboardInterrupt:
        record.update(status="running", interrupted=_now())
        store.write(key, record)
        raise
    except Exception as exc:  # one failing run is recorded and the grid goes on
        record.update(
            status="failed",
            error={
                "type": type(exc).__name__,
                "message": str(exc),
                "traceback": traceback.format_exc(),
            },
        )
    record["wall_seconds"] = time.perf_counter() - t0
    record["finished"] = _now()
    store.write(key, record)
    if record["status"] == "finished":
        store.clear_checkpoints(key)
    return Outcome(spec, record, cached=False)


def _run(
    spec: RunSpec, method: Method, store: RunStore, data_cache: DataCache, options: EngineOptions
) -> dict[str, Any]:
    """The run proper: initial model -> method -> evaluation -> metrics, log and budget."""
    data = data_cache.get(spec.dataset, spec.train_subset, spec.test_subset)
    torch.manual_seed(spec.seed)
    model = build_model(spec.model, data.num_classes, seed=spec.seed, **spec.model_kwargs)
    model = prepare_model(model, options)
    ctx = RunContext(spec, model, data, spec.recipe, options, store)
    t0 = time.perf_counter()
    model = method.run(ctx)
    method_seconds = time.perf_counter() - t0
    metrics = measure(model, spec, method, store, data, options)
    train_seconds = sum(p["seconds"] for p in ctx.phases)
    search = ctx.search
    search.seconds = search.seconds or max(0.0, method_seconds - train_seconds)
    final = ctx.phases[-1] if ctx.phases else None
    budget = {
        "epochs": final["epochs"] if final else 0,
        "steps": final["steps"] if final else 0,
        "train_seconds": final["seconds"] if final else 0.0,
        "all_phases_epochs": sum(p["epochs"] for p in ctx.phases),
        "all_phases_steps": sum(p["steps"] for p in ctx.phases),
        "all_phases_train_seconds": train_seconds,
        "search": asdict(search),
    }
    phases = [
        {"phase": p["phase"], "epochs": p["epochs"], "steps": p["steps"], "seconds": p["seconds"],
         "resumed_at_epoch": p["resumed_at_epoch"], "log": p["log"]}
        for p in ctx.phases
    ]
    return {
        "metrics": metrics,
        "budget": budget,
        "phases": phases,
        "log": final["log"] if final else [],
    }


def measure(
    model: nn.Module,
    spec: RunSpec,
    method: Method,
    store: RunStore,
    data: DeviceData,
    options: EngineOptions,
) -> dict[str, Any]:
    """Save the artifact, decode it, and measure the decoded model: the record's metrics.

    Accuracy is the decoded model's, so the bytes reported are the bytes evaluated. The
    logits of decoded and trained model on the first test batch are compared and recorded
    (bit-identical on CPU with float32 values).
    """
    path = store.artifact_path(spec.key)
    info = artifact.save(model, path, value_codec=spec.value_codec)
    decoded = prepare_model(artifact.load(path), options)
    accuracy = evaluate(decoded, data, options)
    structure = model_metrics(decoded)
    metrics: dict[str, Any] = {
        "test_accuracy": accuracy.top1,
        "test_top5": accuracy.top5,
        "test_loss": accuracy.loss,
        "artifact_file": path.name,
        "artifact_bytes": info.bytes,
        "artifact_breakdown": info.breakdown,
        "dense_bytes": dense_bytes(decoded),
        "paper_bytes": paper_bytes(decoded, method.paper_bytes_formula, structure),
        "decode_max_logit_difference": _logit_difference(model, decoded, data, options),
    }
    metrics["compression_ratio"] = metrics["dense_bytes"] / info.bytes
    if any(getattr(m, "weight_source", None) is not None for m in model.modules()):
        stored, _ = artifact.encode(model, value_codec=spec.value_codec, random_weights="stored")
        metrics["artifact_bytes_stored_convention"] = len(stored)
    metrics.update(structure)
    metrics["artifact_layers"] = info.layers
    return metrics


@torch.no_grad()
def _logit_difference(a: nn.Module, b: nn.Module, data: DeviceData, options: EngineOptions
                      ) -> float:
    x, _ = next(data.test_batches(options.eval_batch_size))
    x = model_input(x, options)
    modes = a.training, b.training
    a.eval()
    b.eval()
    with autocast(options):
        diff = (a(x).float() - b(x).float()).abs().max().item()
    a.train(modes[0])
    b.train(modes[1])
    return diff


def build_specs(
    *,
    methods: Sequence[tuple[str, dict[str, str]]],
    models: Sequence[str],
    datasets: Sequence[str],
    densities: Sequence[float] | dict[str, Sequence[float]],
    seeds: Sequence[int],
    recipe: Recipe | Callable[[str], Recipe],
    model_kwargs: dict[str, Any] | None = None,
    train_subset: int | None = None,
    test_subset: int | None = None,
    value_codec: str = "float32",
) -> list[RunSpec]:
    """The grid as specs, in run order; methods that keep every weight get density 1 once.

    ``recipe`` may depend on the method (a callable of its name), and so may ``densities``
    (a mapping from method name to its densities, with the key ``"*"`` for the rest).
    """
    from bench.registry import non_default_hparams

    by_method = densities if isinstance(densities, dict) else {"*": tuple(densities)}
    for d in (d for ds in by_method.values() for d in ds):
        if not 0.0 < d <= 1.0:
            raise BenchError(f"bad density {d!r}: densities are kept fractions in (0, 1]")
    specs: list[RunSpec] = []
    seen: set[str] = set()
    for dataset in datasets:
        for model in models:
            for name, overrides in methods:
                cls = get_method(name)
                hparams = non_default_hparams(make_hparams(cls, overrides))
                method_recipe = recipe(name) if callable(recipe) else recipe
                method_densities = by_method.get(name, by_method.get("*", ()))
                for density in method_densities if cls.uses_density else (1.0,):
                    for seed in seeds:
                        spec = RunSpec(
                            method=name, model=model, dataset=dataset, density=float(density),
                            seed=int(seed), recipe=method_recipe, hparams=hparams,
                            model_kwargs=dict(model_kwargs or {}), train_subset=train_subset,
                            test_subset=test_subset, method_version=cls.version,
                            value_codec=value_codec,
                        )
                        if spec.key not in seen:
                            seen.add(spec.key)
                            specs.append(spec)
    return specs


def run_grid(
    specs: Sequence[RunSpec],
    *,
    store: RunStore,
    data: DataCache,
    options: EngineOptions,
    force: bool = False,
) -> list[Outcome]:
    """Run every spec in order with one progress bar; returns each outcome."""
    outcomes: list[Outcome] = []
    bar = tqdm(total=len(specs), desc="grid", unit="run", disable=not options.progress,
               dynamic_ncols=True)
    for i, spec in enumerate(specs, 1):
        outcome = execute(spec, store=store, data=data, options=options, force=force,
                          echo=tqdm.write)
        outcomes.append(outcome)
        tqdm.write(_summary_line(i, len(specs), outcome), file=sys.stdout)
        bar.update(1)
    bar.close()
    return outcomes


def _summary_line(i: int, n: int, outcome: Outcome) -> str:
    record = outcome.record
    head = f"[{i}/{n}] {outcome.spec.label()} ({record['key']}):"
    if record["status"] == "finished":
        acc = record["metrics"]["test_accuracy"]
        secs = record["budget"]["all_phases_train_seconds"]
        how = "cached" if outcome.cached else "trained"
        return f"{head} {how}, test accuracy {acc:.2f}% ({secs:.1f} s training)"
    return f"{head} {record['status']}: {record.get('error', {}).get('message', '')}"
