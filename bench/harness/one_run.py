"""One spec end to end: claim it, run the method on a fresh model, write the record.

A failing run is recorded and the grid goes on, except when the disk refuses
(:class:`~bench.errors.StorageError`): every later run would fail the same way, so the
error stops the grid, leaving finished runs as they are.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timezone
from typing import Any

import torch

from bench.claims import owner_info as claim_owner
from bench.context import RunContext
from bench.engine import (
    Diverged,
    EngineOptions,
    TrainResult,
    prepare_model,
)
from bench.errors import BenchError, StorageError, is_storage_failure, storage_error
from bench.fsutil import write_json_atomic
from bench.harness.data_cache import DataCache
from bench.harness.evaluation import check_finite, measure
from bench.harness.outcome import Outcome
from bench.harness.records import reusable, stored_record
from bench.integrity import DamagedFile, seal, unseal
from bench.models import build_model, prunable_layers
from bench.provenance import describe_difference, environment
from bench.registry import Method, get_method
from bench.store import RECORD_FORMAT, RunSpec, RunStore
from bench.untrusted import MiB, UntrustedJSON, read_json

Trainer = Callable[..., TrainResult]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def execute(
    spec: RunSpec,
    *,
    store: RunStore,
    data: DataCache,
    options: EngineOptions,
    force: bool = False,
    echo: Callable[[str], None] = print,
    trainer: Trainer | None = None,
) -> Outcome:
    """Run one spec unless the store has its result; record whatever happens.

    The run is claimed first (:mod:`bench.claims`), so concurrent workers on one store
    never run one spec twice; a spec another live worker holds comes back ``busy``.
    ``spec`` must carry its data fingerprint (:meth:`DataCache.bind`). ``trainer`` replaces
    the engine's ``train`` for every training of the run (the packer, :mod:`.packing`).
    """
    existing = stored_record(store, spec, echo)
    if not force and reusable(store, spec, existing, echo):
        return Outcome(spec, existing, cached=True)
    claim = store.claim(spec.key)
    if claim is None:
        return Outcome(spec, {"key": spec.key, "status": "running", "spec": spec.to_record()},
                       cached=False, busy=True)
    try:
        existing = stored_record(store, spec, echo)  # another worker may have finished it meanwhile
        if not force and reusable(store, spec, existing, echo):
            return Outcome(spec, existing, cached=True)
        return _attempt(spec, claim, store, data, options, force, echo, trainer)
    finally:
        claim.release()


def _environment_check(store: RunStore, spec: RunSpec, env: dict[str, Any],
                       echo: Callable[[str], None]) -> dict[str, Any] | None:
    """Compare the environment the run's checkpoints were made in with this one; says so
    (and returns what differs) when a resume would mix them."""
    folder = store.run_dir(spec.key) / "checkpoints"
    marker = folder / "environment.json"
    if not any(folder.glob("*.ckpt")):
        write_json_atomic(marker, seal(env))
        return None
    try:
        before = unseal(read_json(marker, MiB, "checkpoint environment"), marker)
    except (OSError, AttributeError, UntrustedJSON, DamagedFile):
        before = {}  # unknown: said below as a difference
    if not isinstance(before.get("numeric"), dict):
        before = {}
    if before.get("fingerprint") == env["fingerprint"]:
        return None
    difference = describe_difference(before.get("numeric", {}), env["numeric"])
    echo(f"warning: {spec.label()} ({spec.key}) resumes from checkpoints made in another "
         f"environment ({difference}); its numbers mix both, as its record says")
    return {"checkpoint_environment": before, "difference": difference}


def _attempt(spec: RunSpec, claim: Any, store: RunStore, data: DataCache,
             options: EngineOptions, force: bool, echo: Callable[[str], None],
             trainer: Trainer | None = None) -> Outcome:
    """One attempt at a claimed run: running record, the run, the final record."""
    record = _start(spec, claim, store, options, force, echo)
    method_cls = get_method(spec.method)
    method = method_cls(method_cls.Hparams(**spec.hparams))
    t0 = time.perf_counter()
    try:
        record.update(_run(spec, method, store, data, options, trainer))
        record["status"] = "finished"
    except Diverged as exc:
        record.update(status="diverged", error={"type": "Diverged", "message": str(exc)})
    except StorageError:  # the disk refuses: stop the grid (the run resumes once fixed)
        raise
    except OSError as exc:
        if is_storage_failure(exc):
            raise storage_error(exc) from None
        record.update(status="failed", error=_error(exc))
    except (KeyboardInterrupt, SystemExit):  # Ctrl-C, SIGTERM, Slurm preemption (submitit)
        record.update(status="running", interrupted=_now())
        if claim.valid():
            store.write(spec.key, record)
            store.event(spec.key, "interrupted")
        raise
    except Exception as exc:  # one failing run is recorded and the grid goes on
        record.update(status="failed", error=_error(exc))
    record["wall_seconds"] = time.perf_counter() - t0
    record["finished"] = _now()
    return _finish(spec, claim, store, record, echo)


def _error(exc: BaseException) -> dict[str, str]:
    """A failed record's ``error``: type, message and traceback."""
    return {"type": type(exc).__name__, "message": str(exc),
            "traceback": traceback.format_exc()}


def _start(spec: RunSpec, claim: Any, store: RunStore, options: EngineOptions, force: bool,
           echo: Callable[[str], None]) -> dict[str, Any]:
    """Clear what a claimed run must not reuse and write its ``running`` record."""
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
    return record


def _finish(spec: RunSpec, claim: Any, store: RunStore, record: dict[str, Any],
            echo: Callable[[str], None]) -> Outcome:
    """Write the ended run's record unless its claim was lost; tidy a finished run's files."""
    key = spec.key
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
    spec: RunSpec, method: Method, store: RunStore, data_cache: DataCache, options: EngineOptions,
    trainer: Trainer | None = None,
) -> dict[str, Any]:
    """The run proper: initial model -> method -> evaluation -> metrics, log and budget."""
    data = data_cache.get(spec.dataset, spec.train_subset, spec.test_subset)
    torch.manual_seed(spec.seed)
    model = build_model(spec.model, data.num_classes, seed=spec.seed,
                        bias_init=spec.recipe.bias_init, **spec.model_kwargs)
    model = prepare_model(model, options)
    ctx = RunContext(spec, model, data, spec.recipe, options, store)
    if trainer is not None:
        ctx.trainer = trainer
    t0 = time.perf_counter()
    model = method.run(ctx)
    method_seconds = time.perf_counter() - t0
    check_contract(spec, model)
    check_finite(model)
    metrics = measure(model, spec, method, store, data, options)
    final = ctx.final_phase()
    if final and final["log"] and "test_accuracy" not in final["log"][-1]:
        # left to this measurement (RunContext.train): the decoded artifact is the model
        final["log"][-1].update(test_accuracy=metrics["test_accuracy"],
                                test_loss=metrics["test_loss"], test_of="decoded artifact")
    train_seconds = sum(p["seconds"] for p in ctx.phases)
    search = ctx.search
    search.seconds = search.seconds or max(0.0, method_seconds - train_seconds)
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
         "resumed_at_epoch": p["resumed_at_epoch"], "log": p["log"],
         **{k: p[k] for k in ("shared_from", "shared_seconds") if k in p}}
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


class ContractBroken(BenchError):
    """A method plugin returned what the plugin contract (``bench.api``) does not allow."""


def check_contract(spec: RunSpec, model: object) -> None:
    """:class:`ContractBroken`, naming the method and the rule, unless ``model`` is what
    ``Method.run`` must return: the run's network (an ``nn.Module`` with its prunable
    layers), pruned (some weight masked) whenever the run asks for a density below 1."""
    def broken(rule: str) -> ContractBroken:
        return ContractBroken(f"method {spec.method!r} broke the plugin contract: {rule}")

    if not isinstance(model, torch.nn.Module):
        raise broken(f"run() must return the trained model (an nn.Module); it returned "
                     f"{type(model).__name__ if model is not None else 'None'}")
    layers = prunable_layers(model)
    if not layers:
        raise broken("run() returned a model without prunable layers; return the model "
                     "from ctx.model, built for this run")
    if spec.density < 1 and all(layer.current_mask() is None for _, layer in layers):
        raise broken(f"the run asks for density {spec.density:g} but the returned model has "
                     "no mask on any prunable layer; set masks (bench.api: prune, "
                     "apply_masks) before returning")
