"""Trainings shared between runs: one training, asked for twice with the same inputs, is done once.

A training is a function of its inputs: the model's whole state before it (weights, masks,
BatchNorm statistics), which tensors it trains, the recipe, the phase's seed, the data and
the numeric environment (:mod:`bench.provenance`: same machine kind, threads, versions and
speed switches). Hashed together they are the training's *key*; its result (the model's
state after it, its log, cost and snapshots) is kept under
``<results>/_shared/trainings/<key>.pt`` by the run that trained it, and a later training
with the same key, in any run of the store, loads it instead of training. The result is the
same numbers it would have computed, since the key holds everything they depend on.

LTH is the case it exists for: the rounds before the last of every target density of one
seed and recipe are the same trainings (density 0.8, 0.64, 0.512, ...), so the grid trains
each once and branches. Workers sharing the store train each such training once too: the
first to ask holds a lease on it while it trains (:func:`training_lease`), and the others wait
for its result. The folder may be deleted at any time; it is only a cache. Each file
carries its checksum (:mod:`bench.integrity`): a damaged one is set aside with a warning
line and the training is done again, as if it were not there.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench.claims import Claim, acquire, claim_state
from bench.engine import EngineOptions, TrainResult
from bench.integrity import DamagedFile, load_torch, save_torch, set_aside
from bench.provenance import fingerprint, numeric_environment
from bench.recipe import Recipe
from bench.store import RunSpec, RunStore
from bench.untrusted import SHARED_KEY_RE, check_key

SHARED_FORMAT = 1

TRAINED_ALONGSIDE = "trained alongside"
"""A trainer's reply to a request whose ``share_key`` an earlier request of the same batch
has (the harness's packer trains that one only): load it from the store."""


@dataclass(frozen=True)
class SharedTraining:
    """A stored training: the state after it, its result and the run that trained it."""

    state: dict[str, torch.Tensor]
    result: TrainResult
    source: dict[str, Any]


def training_key(spec: RunSpec, phase: str, model: nn.Module, trained: list[str],
                 recipe: Recipe, seed: int, snapshot_epochs: tuple[int, ...],
                 options: EngineOptions) -> str:
    """32 hex digits of the SHA-256 of everything the training's numbers depend on."""
    head = {
        "format": SHARED_FORMAT,
        "model": spec.model, "model_kwargs": spec.model_kwargs, "dataset": spec.dataset,
        "data": spec.data, "train_subset": spec.train_subset, "test_subset": spec.test_subset,
        "phase": phase, "seed": seed, "recipe": recipe.as_dict(), "trained": trained,
        "snapshot_epochs": sorted(snapshot_epochs), "eval_every": options.eval_every,
        "environment": fingerprint(numeric_environment(options.device, options.switches())),
    }
    digest = hashlib.sha256(json.dumps(head, sort_keys=True, default=str).encode())
    for name, tensor in model.state_dict().items():
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()[:32]


def trained_names(model: nn.Module, params: Any) -> list[str]:
    """The names of the parameters a training updates (default: all that require grad)."""
    by_id = {id(p): name for name, p in model.named_parameters()}
    chosen = model.parameters() if params is None else params
    return [by_id.get(id(p), "?") for p in chosen if p.requires_grad]


def _path(store: RunStore, key: str) -> Path:
    name = check_key(key, "a training key", SHARED_KEY_RE)
    return store.root / "_shared" / "trainings" / f"{name}.pt"


def load_shared(store: RunStore, key: str) -> SharedTraining | None:
    """The stored training of ``key``, or None: absent, or damaged (then set aside)."""
    path = _path(store, key)
    if not path.is_file():
        return None
    try:
        data = load_torch(path)
        if not isinstance(data, dict) or data.get("format") != SHARED_FORMAT:
            raise DamagedFile(path, "not a shared training of this version")
        result = TrainResult(**data["result"])
        return SharedTraining(data["state"], result, data["source"])
    except FileNotFoundError:  # the cache may be deleted at any time
        return None
    except DamagedFile as exc:
        set_aside(path, exc.reason)
        return None
    except (KeyError, TypeError) as exc:
        set_aside(path, f"incomplete: {exc}")
        return None


def save_shared(store: RunStore, key: str, model: nn.Module, result: TrainResult,
                source: dict[str, Any]) -> None:
    """Keep a finished training for later runs (atomically; a concurrent writer's equal
    result may replace it)."""
    data = {
        "format": SHARED_FORMAT,
        "state": {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()},
        "result": {"log": result.log, "epochs": result.epochs, "steps": result.steps,
                   "seconds": result.seconds, "resumed_at_epoch": result.resumed_at_epoch,
                   "snapshots": result.snapshots},
        "source": source,
    }
    save_torch(_path(store, key), data)


_LEASE_POLL_SECONDS = 1.0
_held: dict[str, Claim] = {}
"""The keys this process holds the lease of (any of its threads: the packer's runs)."""
_held_lock = threading.Lock()
_interrupt: list[BaseException] = []
_interrupted = threading.Event()


def interrupt_waits(exc: BaseException | None) -> None:
    """Make the runs of this process that wait for another worker's training raise ``exc``
    (a Ctrl-C or SIGTERM reaches only the main thread, and a packed run waits in its own);
    None lets waits go on again."""
    _interrupt[:] = [] if exc is None else [exc]
    if exc is None:
        _interrupted.clear()
    else:
        _interrupted.set()


def _lease_folder(store: RunStore, key: str) -> Path:
    return store.root / "_shared" / "leases" / key


@contextmanager
def training_lease(store: RunStore, key: str, *, poll: float = _LEASE_POLL_SECONDS,
                   waiting: Callable[[dict[str, Any]], None] | None = None
                   ) -> Iterator[SharedTraining | None]:
    """One worker of the store trains ``key`` at a time: yields the stored training where
    there is one, else None while this process holds the key's lease (a claim,
    :mod:`bench.claims`) for the body to train and save it.

    A worker that finds another process holding the lease waits for its result (``waiting``
    is told the holder's claim once), or trains itself once the holder released it unsaved
    or died. It trains alongside instead when it holds a lease itself, so that no two
    workers ever wait on each other; another run of this process holding it (a packed
    window) trains it once for both (:data:`TRAINED_ALONGSIDE`).
    """
    told = False
    while True:
        shared = load_shared(store, key)
        if shared is not None:
            yield shared
            return
        with _held_lock:
            mine, holding = key in _held, bool(_held)
            claim = None if mine else acquire(_lease_folder(store, key))
            if claim is not None:
                _held[key] = claim
        if claim is not None:
            try:
                yield load_shared(store, key)  # stored while this process took the lease
            finally:
                with _held_lock:
                    del _held[key]
                claim.release()
            return
        if mine or holding:
            yield None
            return
        if waiting is not None and not told:
            waiting(claim_state(_lease_folder(store, key))[1])
            told = True
        if _interrupted.wait(poll) and _interrupt:
            raise _interrupt[0]


@dataclass(frozen=True)
class SharedCache:
    """What the store keeps of shared trainings, and which are being trained right now."""

    trainings: int
    bytes: int
    training_now: list[dict[str, Any]]
    """The owner of each lease held now (a worker training a shared training)."""


def shared_cache(store: RunStore) -> SharedCache:
    """The shared trainings kept in ``store`` (count, bytes) and the leases held now."""
    sizes = []
    for path in (store.root / "_shared" / "trainings").glob("*.pt"):
        try:
            sizes.append(path.stat().st_size)
        except FileNotFoundError:  # deleted while we looked: the cache may go at any time
            continue
    owners = [state[1].get("owner", {})
              for folder in sorted((store.root / "_shared" / "leases").glob("*"))
              if (state := claim_state(folder))[0] == "held"]
    return SharedCache(len(sizes), sum(sizes), owners)
