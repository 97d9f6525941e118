"""Runs one spec end to end (model, method, evaluation, record) and a grid of them.

The harness owns everything around a method: building the initial model from
the run seed, checkpoint paths, timing, the record and its status. Methods only
compute; they never write files.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from bench import artifact
from bench.claims import owner_info as claim_owner
from bench.context import RunContext
from bench.data import DeviceData, load_data
from bench.engine import (
    Diverged,
    EngineOptions,
    autocast,
    evaluate,
    model_input,
    prepare_model,
)
from bench.fsutil import sha256_file, temporary_path, write_json_atomic
from bench.metrics import dense_bytes, model_metrics, paper_bytes
from bench.models import build_model
from bench.provenance import describe_difference, environment
from bench.registry import Method, get_method
from bench.store import RECORD_FORMAT, RunSpec, RunStore, UnreadableRecord, artifact_name


@dataclass
class Outcome:
    """The result of asking for one spec: its record, whether it came from the store, and
    whether another live worker holds it (``busy``: not run here, try again later)."""

    spec: RunSpec
    record: dict[str, Any]
    cached: bool
    busy: bool = False

    @property
    def status(self) -> str:
        return "busy" if self.busy else self.record["status"]


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

    def bind(self, spec: RunSpec) -> RunSpec:
        """``spec`` with the fingerprint of the data it names (loading that data once)."""
        return spec.with_data(self.get(spec.dataset, spec.train_subset, spec.test_subset)
                              .fingerprint)


def verify_artifact(store: RunStore, record: dict[str, Any]) -> str | None:
    """Why a finished record's artifact cannot be trusted (missing, other size, other
    checksum), or None when it is the file the record measured."""
    metrics = record["metrics"]
    path = store.artifact_path(record["key"], metrics["artifact_file"])
    if not path.is_file():
        return f"its artifact {path.name} is missing"
    if path.stat().st_size != metrics["artifact_bytes"]:
        return (f"its artifact {path.name} has {path.stat().st_size} bytes, the record "
                f"says {metrics['artifact_bytes']}")
    expected = metrics.get("artifact_sha256")
    if expected is None or sha256_file(path) != expected:
        return f"its artifact {path.name} does not match the record's checksum"
    return None


def _stored(store: RunStore, spec: RunSpec, echo: Callable[[str], None]
            ) -> dict[str, Any] | None:
    """The run's record, an unreadable one moved aside (and announced)."""
    try:
        return store.read(spec.key)
    except UnreadableRecord as exc:
        aside = store.set_aside(spec.key)
        echo(f"warning: {exc}; moved to {aside.name} and rerunning")
        return None


def _reusable(store: RunStore, spec: RunSpec, existing: dict[str, Any] | None,
              echo: Callable[[str], None]) -> bool:
    """A stored result that stands: diverged, or finished with its artifact intact."""
    if existing is None or existing["status"] not in ("finished", "diverged"):
        return False
    if existing["status"] == "diverged":
        return True
    problem = verify_artifact(store, existing)
    if problem is not None:
        echo(f"warning: {spec.label()} ({spec.key}): {problem}; rerunning")
        return False
    return True


def execute(
    spec: RunSpec,
    *,
    store: RunStore,
    data: DataCache,
    options: EngineOptions,
    force: bool = False,
    echo: Callable[[str], None] = print,
) -> Outcome:
    """Run one spec unless the store has its result; record whatever happens.

    The run is claimed first (:mod:`bench.claims`), so concurrent workers on one store
    never run one spec twice; a spec another live worker holds comes back ``busy``.
    ``spec`` must carry its data fingerprint (:meth:`DataCache.bind`).
    """
    existing = _stored(store, spec, echo)
    if not force and _reusable(store, spec, existing, echo):
        return Outcome(spec, existing, cached=True)
    claim = store.claim(spec.key)
    if claim is None:
        return Outcome(spec, {"key": spec.key, "status": "running", "spec": spec.to_record()},
                       cached=False, busy=True)
    try:
        existing = _stored(store, spec, echo)  # another worker may have finished it meanwhile
        if not force and _reusable(store, spec, existing, echo):
            return Outcome(spec, existing, cached=True)
        return _attempt(spec, claim, store, data, options, force, echo)
    finally:
        claim.release()


def _environment_check(store: RunStore, spec: RunSpec, env: dict[str, Any],
                       echo: Callable[[str], None]) -> dict[str, Any] | None:
    """Compare the environment the run's checkpoints were made in with this one; says so
    (and returns what differs) when a resume would mix them."""
    folder = store.run_dir(spec.key) / "checkpoints"
    marker = folder / "environment.json"
    if not any(folder.glob("*.ckpt")):
        folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(marker, env)
        return None
    try:
        before = json.loads(marker.read_text())
    except (OSError, json.JSONDecodeError):
        before = {}
    if before.get("fingerprint") == env["fingerprint"]:
        return None
    difference = describe_difference(before.get("numeric", {}), env["numeric"])
    echo(f"warning: {spec.label()} ({spec.key}) resumes from checkpoints made in another "
         f"environment ({difference}); its numbers mix both, as its record says")
    return {"checkpoint_environment": before, "difference": difference}


def _attempt(spec: RunSpec, claim: Any, store: RunStore, data: DataCache,
             options: EngineOptions, force: bool, echo: Callable[[str], None]) -> Outcome:
    """One attempt at a claimed run: running record, the run, the final record."""
    key = spec.key
    if force:
        store.clear_checkpoints(key)
    store.remove_temporary_files(key)  # left by killed writers: only the claim holder writes
    env = environment(options.device, options.switches())
    mixed = _environment_check(store, spec, env, echo)
    record: dict[str, Any] = {
        "format": RECORD_FORMAT,
        "key": key,
        "grid_key": spec.grid_key,
        "status": "running",
        "spec": spec.to_record(),
        "environment": env,
        "owner": claim_owner(),
        "started": _now(),
    }
    if mixed is not None:
        record["resumed_across_environments"] = mixed
    store.write(key, record)  # refused where a finished result stands (--force)
    store.event(key, "start", generation=claim.generation, environment=env["fingerprint"])
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
        if claim.valid():
            store.write(key, record)
            store.event(key, "interrupted")
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
    if not claim.valid():  # paused past the lease: another worker owns the run now
        echo(f"warning: {spec.label()} ({key}): lost its claim to another worker; "
             "its result is not written")
        store.event(key, "lost-claim")
        return Outcome(spec, record, cached=False, busy=True)
    if not store.write(key, record):
        kept = store.read(key)
        echo(f"warning: {spec.label()} ({key}) ended {record['status']}; the stored "
             f"{kept['status']} result is kept")
    store.event(key, record["status"])
    if record["status"] == "finished":
        store.clear_checkpoints(key)
        store.remove_other_artifacts(key, record["metrics"]["artifact_file"])
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
    check_finite(model)
    metrics = measure(model, spec, method, store, data, options)
    train_seconds = sum(p["seconds"] for p in ctx.phases)
    search = ctx.search
    search.seconds = search.seconds or max(0.0, method_seconds - train_seconds)
    final = ctx.final_phase()
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
    out = {
        "metrics": metrics,
        "budget": budget,
        "phases": phases,
        "log": final["log"] if final else [],
    }
    if ctx.notes:
        out["method_notes"] = ctx.notes
    return out


def check_finite(model: nn.Module) -> None:
    """:class:`Diverged` when any weight, score or statistic of ``model`` is NaN or infinite."""
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise Diverged(f"non-finite values in {name} of the returned model")


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
    staging = temporary_path(store.artifact_path(spec.key, "model.bpa"))
    try:
        info = artifact.save(model, staging, value_codec=spec.value_codec)
        decoded = prepare_model(artifact.load(staging), options)
        accuracy = evaluate(decoded, data, options)
        if not (math.isfinite(accuracy.loss) and math.isfinite(accuracy.top1)):
            raise Diverged(f"non-finite test loss {accuracy.loss} of the decoded model")
        sha256 = sha256_file(staging)
        path = store.artifact_path(spec.key, artifact_name(sha256))
        os.replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)
    structure = model_metrics(decoded)
    metrics: dict[str, Any] = {
        "test_accuracy": accuracy.top1,
        "test_top5": accuracy.top5,
        "test_loss": accuracy.loss,
        "artifact_file": path.name,
        "artifact_sha256": sha256,
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


GRID_POLL_SECONDS = 2.0


def run_grid(
    specs: Sequence[RunSpec],
    *,
    store: RunStore,
    data: DataCache,
    options: EngineOptions,
    force: bool = False,
    poll_seconds: float = GRID_POLL_SECONDS,
) -> list[Outcome]:
    """Run every spec with one progress bar; returns each outcome, in the specs' order.

    Specs that another live worker holds are passed over, then revisited until each is
    finished by someone or free to run here, so several workers on one store share a grid
    and every one of them returns when the whole grid is done.
    """
    outcomes: dict[int, Outcome] = {}
    bar = tqdm(total=len(specs), desc="grid", unit="run", disable=not options.progress,
               dynamic_ncols=True)
    pending = list(enumerate(specs, 1))
    first = True
    while pending:
        waiting = []
        for i, spec in pending:
            outcome = execute(spec, store=store, data=data, options=options,
                              force=force and first, echo=tqdm.write)
            if outcome.busy:
                waiting.append((i, spec))
                continue
            outcomes[i] = outcome
            tqdm.write(_summary_line(i, len(specs), outcome), file=sys.stdout)
            bar.update(1)
        if waiting and first:
            tqdm.write(f"waiting for {len(waiting)} runs held by other workers", file=sys.stdout)
        if waiting:
            time.sleep(poll_seconds)
        pending, first = waiting, False
    bar.close()
    return [outcomes[i] for i in sorted(outcomes)]


def _summary_line(i: int, n: int, outcome: Outcome) -> str:
    record = outcome.record
    head = f"[{i}/{n}] {outcome.spec.label()} ({record['key']}):"
    how = "cached" if outcome.cached else "trained"
    if record["status"] == "finished":
        acc = record["metrics"]["test_accuracy"]
        secs = (record.get("budget") or {}).get("all_phases_train_seconds")
        took = f" ({secs:.1f} s training)" if isinstance(secs, (int, float)) else ""
        return f"{head} {how}, test accuracy {acc:.2f}%{took}"
    message = (record.get("error") or {}).get("message", "")
    return f"{head} {record['status']}{' (cached)' if outcome.cached else ''}: {message}"
