"""``bench status``: a grid's runs by state, the workers alive, the estimated time left.

Read from the store alone (records, claims, checkpoint progress, worker beacons and the
grid's manifest), so it works from any machine that sees the results folder.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.claims import claim_ttl, owner_text
from bench.defaults import results_root
from bench.errors import BenchError
from bench.shared_training import SharedCache, shared_cache
from bench.wording import counted

SHOWN_PER_STATE = 20  # runs listed per state before "... and N more"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", type=Path, help="run store (default as for run)")
    parser.add_argument("--grid", help="the grid id (default: the one launched last)")
    parser.add_argument("--all", action="store_true", help="list every run of each state")
    parser.add_argument("--json", action="store_true", help="the status as JSON")


def _run_line(run: Any) -> str:
    head = f"    {run.label} ({run.key})"
    if run.state == "running":
        late = run.heartbeat_age is not None and run.heartbeat_age > claim_ttl() / 2
        beat = (f", no heartbeat for {run.heartbeat_age:.0f} s (taken over after "
                f"{claim_ttl():.0f} s)" if late else "")
        if run.phase is None:  # no epoch checkpointed yet
            return f"{head}: {owner_text(run.owner)}, before its first epoch (scoring or " \
                   f"loading){beat}"
        return (f"{head}: {owner_text(run.owner)}, epoch {run.epochs_done}/"
                f"{run.planned_epochs} in {run.phase}{beat}")
    if run.state == "failed":
        return f"{head}: {run.error}"
    if run.state == "interrupted":
        return f"{head}: resumes from epoch {run.epochs_done} (last: {owner_text(run.owner)})"
    if run.state in ("finished", "diverged") and run.wall_seconds is not None:
        from bench.estimate import format_duration

        return f"{head}: {run.state} in {format_duration(run.wall_seconds)}"
    return head


def _shared_lines(shared: SharedCache | None) -> list[str]:
    """The shared-training cache's line, and one per shared training being trained now."""
    if shared is None or not (shared.trainings or shared.training_now):
        return []
    lines = [f"  shared trainings kept: {shared.trainings} ({shared.bytes / 1e6:.2f} MB in "
             "_shared/, a cache: deleting it costs only training time)"]
    lines.extend(f"    being trained now by {owner_text(o)}, other runs wait for it"
                 for o in shared.training_now)
    return lines


def render(status: Any, show_all: bool = False, shared: SharedCache | None = None) -> str:
    """The status as text: counts, the runs of each live or bad state, workers, time left."""
    from bench.estimate import format_duration

    m = status.manifest
    launched = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(m.updated))
    how = m.executor.get("kind", "?")
    if m.executor.get("job_id"):
        how += f" job {m.executor['job_id']}, {m.executor.get('tasks', '?')} tasks"
    elif m.executor.get("workers"):
        how += f", {m.executor['workers']} workers"
    lines = [f"grid {m.id}: {counted(len(status.runs), 'run')}, launched {launched} ({how})"]
    order = ("finished", "diverged", "running", "interrupted", "failed", "pending")
    lines.append("  " + ", ".join(f"{status.count(s)} {s}" for s in order if status.count(s)))
    for state in ("running", "interrupted", "failed", "pending", "diverged", "finished"):
        runs = [r for r in status.runs if r.state == state]
        if not runs or (state in ("pending", "diverged", "finished") and not show_all):
            continue
        lines.append(f"  {state}:")
        shown = runs if show_all else runs[:SHOWN_PER_STATE]
        lines.extend(_run_line(r) for r in shown)
        if len(runs) > len(shown):
            lines.append(f"    ... and {len(runs) - len(shown)} more (--all lists them)")
    lines.append(f"  workers alive: {len(status.workers)}")
    lines.extend(f"    {owner_text(w['owner'])}, up {time.time() - w['started']:.0f} s"
                 for w in status.workers)
    lines.extend(_shared_lines(shared))
    if status.done:
        lines.append("  done")
    elif status.seconds_left is None:
        lines.append("  time left: unknown (no run measured yet)")
    else:
        sharing = status.workers_sharing
        per = f" over {sharing} workers" if sharing > 1 else ""
        lines.append(f"  time left: about {format_duration(status.seconds_left)}{per}"
                     f"{'' if status.workers else ' (once a worker runs)'}")
    return "\n".join(lines)


def command(args: argparse.Namespace) -> int:
    from bench.harness.manifest import manifests, read_manifest
    from bench.harness.status import grid_status
    from bench.store import RunStore
    from bench.untrusted import GRID_ID_RE

    store = RunStore(results_root(args.results))
    if not store.root.is_dir():
        raise BenchError(f"no run store at {store.root} (see --results)")
    if args.grid:
        manifest = read_manifest(store, args.grid) if GRID_ID_RE.fullmatch(args.grid) else None
        if manifest is None:
            known = ", ".join(m.id for m in manifests(store)) or "none"
            raise BenchError(f"no grid {args.grid!r} in {store.root}; grids there: {known}")
    else:
        found = manifests(store)
        if not found:
            raise BenchError(f"no grid was launched on {store.root} (bench run writes one)")
        manifest = found[-1]
    status = grid_status(store, manifest)
    shared = shared_cache(store)
    if args.json:
        print(json.dumps({"grid": asdict(manifest), "runs": [asdict(r) for r in status.runs],
                          "workers": status.workers, "seconds_left": status.seconds_left,
                          "shared_trainings": asdict(shared)}, indent=1, default=str))
    else:
        print(render(status, args.all, shared))
    return 0
