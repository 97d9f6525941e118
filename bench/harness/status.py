"""A grid's state from the store alone: each run finished, running (owner, epoch), failed,
interrupted or pending; the workers alive; the time left at the rate measured so far."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from bench.claims import claim_state
from bench.engine import progress_path
from bench.harness.manifest import GridManifest
from bench.harness.workers import workers
from bench.integrity import DamagedFile, unseal
from bench.store import RunStore, UnreadableRecord
from bench.untrusted import MiB, UntrustedJSON, check_number, read_json

FINAL = ("finished", "diverged")
OPEN = ("pending", "running", "interrupted")  # a worker has yet to end these


@dataclass
class RunState:
    """One run of the grid as the store shows it now."""

    key: str
    label: str
    state: str  # finished | diverged | failed | running | interrupted | pending
    planned_epochs: int
    owner: dict[str, Any] = field(default_factory=dict)
    epochs_done: int = 0  # summed over the phases checkpointed so far
    train_seconds: float = 0.0  # the training time those epochs took
    phase: str | None = None
    heartbeat_age: float | None = None
    error: str | None = None
    wall_seconds: float | None = None


@dataclass
class GridStatus:
    """Every run's state, the live workers, and the estimated seconds left (None: unknown)."""

    manifest: GridManifest
    runs: list[RunState]
    workers: list[dict[str, Any]]
    seconds_left: float | None

    def count(self, state: str) -> int:
        return sum(r.state == state for r in self.runs)

    @property
    def workers_sharing(self) -> int:
        """The workers the time left is split between: alive, and no more than runs open."""
        return max(1, min(len(self.workers), sum(r.state in OPEN for r in self.runs)))

    @property
    def done(self) -> bool:
        return all(r.state in (*FINAL, "failed") for r in self.runs)


def _checkpointed(store: RunStore, state: RunState) -> None:
    """Epochs and training seconds in the run's phase checkpoints, the phase written last."""
    folder = store.run_dir(state.key) / "checkpoints"
    newest = -1.0
    for ckpt in folder.glob("*.ckpt"):
        path = progress_path(ckpt)
        try:
            info = unseal(read_json(path, MiB, "checkpoint progress"), path)
            epoch = int(check_number(info.get("epoch", 0), "epoch", 0, 1e7, integer=True))
            seconds = float(check_number(info.get("seconds", 0.0), "seconds", 0, 1e9))
            written = float(check_number(info.get("time", 0), "time", 0, 1e11))
        except (OSError, AttributeError, UntrustedJSON, DamagedFile):
            continue  # being written, or damaged: the run's own resume checks its checkpoint
        state.epochs_done += epoch
        state.train_seconds += seconds
        if written > newest:
            newest, state.phase = written, ckpt.stem


def run_state(store: RunStore, run: dict[str, Any]) -> RunState:
    """What the store says of one run of a manifest."""
    key = run["key"]
    state = RunState(key, run["label"], "pending", run.get("planned_epochs", 0))
    try:
        record = store.read(key)
    except UnreadableRecord as exc:
        state.error = str(exc)
        return state
    if record is not None and record["status"] != "running":
        state.state = record["status"]
        state.wall_seconds = record.get("wall_seconds")
        state.owner = record.get("owner", {})
        if record["status"] == "failed":
            error = record.get("error") or {}
            state.error = f"{error.get('type', 'Error')}: {error.get('message', '')}"
        if record["status"] != "failed":
            return state
    held, claim, _ = claim_state(store.run_dir(key))
    _checkpointed(store, state)
    if held == "held":
        state.state, state.owner = "running", claim.get("owner", {})
        state.heartbeat_age = claim.get("heartbeat_age")
    elif record is not None and record["status"] == "running":
        state.state, state.owner = "interrupted", record.get("owner", {})
    return state


def _seconds_per_epoch(manifest: GridManifest, runs: list[RunState]) -> float | None:
    """The median over finished runs (whole run: scoring and evaluation too), else the epochs
    checkpointed so far (training alone), else the launch's estimate."""
    finished = [r.wall_seconds / r.planned_epochs for r in runs
                if r.state == "finished" and r.wall_seconds and r.planned_epochs]
    if finished:
        return statistics.median(finished)
    epochs = sum(r.epochs_done for r in runs if r.train_seconds)
    if epochs:
        return sum(r.train_seconds for r in runs) / epochs
    return manifest.seconds_per_epoch


def _seconds_left(manifest: GridManifest, runs: list[RunState]) -> float | None:
    """Epochs left at the seconds per epoch measured so far (one worker's time)."""
    rate = _seconds_per_epoch(manifest, runs)
    left = sum(max(0, r.planned_epochs - r.epochs_done) for r in runs if r.state in OPEN)
    if rate is None:
        return None if left else 0.0
    return left * rate


def grid_status(store: RunStore, manifest: GridManifest) -> GridStatus:
    """The grid's state now."""
    runs = [run_state(store, run) for run in manifest.runs]
    live = [w for w in workers(store) if w["alive"] and w.get("grid") in (None, manifest.id)]
    status = GridStatus(manifest, runs, live, _seconds_left(manifest, runs))
    if status.seconds_left is not None:
        status.seconds_left /= status.workers_sharing
    return status
