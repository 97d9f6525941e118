"""A grid's state from the store alone: each run finished, running (owner, epoch), failed,
interrupted or pending; the workers alive; the time left at the rate measured so far."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from typing import Any

from bench.claims import claim_state
from bench.engine import progress_path
from bench.harness.manifest import GridManifest
from bench.harness.workers import workers
from bench.store import RunStore, UnreadableRecord

FINAL = ("finished", "diverged")


@dataclass
class RunState:
    """One run of the grid as the store shows it now."""

    key: str
    label: str
    state: str  # finished | diverged | failed | running | interrupted | pending
    planned_epochs: int
    owner: dict[str, Any] = field(default_factory=dict)
    epochs_done: int = 0  # summed over the phases checkpointed so far
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
    def done(self) -> bool:
        return all(r.state in (*FINAL, "failed") for r in self.runs)


def _checkpointed(store: RunStore, key: str) -> tuple[int, str | None]:
    """Epochs in the run's phase checkpoints, and the phase written last."""
    folder = store.run_dir(key) / "checkpoints"
    done, newest, phase = 0, -1.0, None
    for ckpt in folder.glob("*.ckpt"):
        try:
            info = json.loads(progress_path(ckpt).read_text())
        except (OSError, json.JSONDecodeError):
            continue
        done += int(info.get("epoch", 0))
        if info.get("time", 0) > newest:
            newest, phase = info.get("time", 0), ckpt.stem
    return done, phase


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
    state.epochs_done, state.phase = _checkpointed(store, key)
    if held == "held":
        state.state, state.owner = "running", claim.get("owner", {})
        state.heartbeat_age = claim.get("heartbeat_age")
    elif record is not None and record["status"] == "running":
        state.state, state.owner = "interrupted", record.get("owner", {})
    return state


def _seconds_left(manifest: GridManifest, runs: list[RunState], alive: int) -> float | None:
    """Epochs left times the seconds per epoch measured on finished runs (else the launch's
    estimate), shared between the workers alive (one when none is)."""
    measured = [r.wall_seconds / r.planned_epochs for r in runs
                if r.state == "finished" and r.wall_seconds and r.planned_epochs]
    rate = statistics.median(measured) if measured else manifest.seconds_per_epoch
    left = sum(max(0, r.planned_epochs - r.epochs_done) for r in runs
               if r.state in ("pending", "running", "interrupted"))
    if rate is None:
        return None if left else 0.0
    return left * rate / max(1, alive)


def grid_status(store: RunStore, manifest: GridManifest) -> GridStatus:
    """The grid's state now."""
    runs = [run_state(store, run) for run in manifest.runs]
    live = [w for w in workers(store) if w["alive"] and w.get("grid") in (None, manifest.id)]
    return GridStatus(manifest, runs, live, _seconds_left(manifest, runs, len(live)))
