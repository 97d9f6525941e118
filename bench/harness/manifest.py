"""A grid's manifest: which runs make it and who runs them, so ``bench status`` can tell
pending from finished without the command line that made the grid.

``<results>/_grids/<id>.json``; the id hashes the grid's sorted run keys, so the same grid
submitted twice (a resume) shares one manifest, updated with the newest submission. A
manifest carries its checksum; a damaged one, or one naming anything but run keys, is set
aside with a warning line and written anew by the next ``bench run`` of its grid.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.fsutil import write_json_atomic
from bench.integrity import DamagedFile, seal, set_aside, unseal
from bench.store import RunSpec, RunStore
from bench.untrusted import GRID_ID_RE, MiB, UntrustedJSON, check_key, check_name, read_json

GRIDS_FOLDER = "_grids"
MANIFEST_MAX_BYTES = 64 * MiB


@dataclass
class GridManifest:
    """The runs of one grid (key, label, planned epochs) and how it was last launched."""

    id: str
    runs: list[dict[str, Any]]
    command: list[str] = field(default_factory=list)
    executor: dict[str, Any] = field(default_factory=dict)
    seconds_per_epoch: float | None = None  # the launch's estimate, until runs are measured
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)

    @property
    def keys(self) -> list[str]:
        return [run["key"] for run in self.runs]


def grid_id(specs: Sequence[RunSpec]) -> str:
    """A short stable name for a set of runs."""
    keys = "\n".join(sorted(spec.key for spec in specs))
    return hashlib.sha256(keys.encode()).hexdigest()[:12]


def manifest_path(store: RunStore, gid: str) -> Path:
    return store.root / GRIDS_FOLDER / f"{check_key(gid, 'a grid id', GRID_ID_RE)}.json"


def write_manifest(store: RunStore, specs: Sequence[RunSpec], planned_epochs: Sequence[int],
                   *, command: Sequence[str], executor: dict[str, Any],
                   seconds_per_epoch: float | None) -> GridManifest:
    """Write (or refresh) the grid's manifest; the first launch's creation time is kept."""
    gid = grid_id(specs)
    before = read_manifest(store, gid)
    manifest = GridManifest(
        id=gid,
        runs=[{"key": s.key, "label": s.label(), "planned_epochs": int(n)}
              for s, n in zip(specs, planned_epochs, strict=True)],
        command=list(command), executor=dict(executor), seconds_per_epoch=seconds_per_epoch,
        created=before.created if before else time.time())
    save_manifest(store, manifest)
    return manifest


def save_manifest(store: RunStore, manifest: GridManifest) -> None:
    manifest.updated = time.time()
    write_json_atomic(manifest_path(store, manifest.id), seal(asdict(manifest)))


def _checked(data: object, gid: str) -> GridManifest:
    """A manifest from parsed JSON whose id, run keys and labels are what they must be."""
    if not isinstance(data, dict):
        raise UntrustedJSON("not a grid manifest")
    data = {k: v for k, v in data.items() if k != "checksum"}
    manifest = GridManifest(**data)
    if manifest.id != gid:
        raise UntrustedJSON(f"its id {manifest.id!r} is not its file's name")
    if not isinstance(manifest.runs, list) or not all(isinstance(r, dict) for r in manifest.runs):
        raise UntrustedJSON("its runs are not a list of runs")
    for run in manifest.runs:
        check_key(run.get("key"), "a run key")
        check_name(run.get("label"), "a run label")
    return manifest


def read_manifest(store: RunStore, gid: str) -> GridManifest | None:
    """The manifest ``gid``: None when absent, or damaged (then set aside, with a line)."""
    path = manifest_path(store, gid)
    try:
        data = read_json(path, MANIFEST_MAX_BYTES, "grid manifest")
        if isinstance(data, dict):
            unseal(data, path)
        return _checked(data, gid)
    except FileNotFoundError:
        return None
    except (DamagedFile, UntrustedJSON, TypeError, ValueError) as exc:
        set_aside(path, getattr(exc, "reason", None) or str(exc))
        return None


def manifests(store: RunStore) -> list[GridManifest]:
    """Every readable manifest of the store, the most recently launched last."""
    folder = store.root / GRIDS_FOLDER
    found = [m for p in sorted(folder.glob("*.json"))
             if GRID_ID_RE.fullmatch(p.stem) and (m := read_manifest(store, p.stem))]
    return sorted(found, key=lambda m: m.updated)
