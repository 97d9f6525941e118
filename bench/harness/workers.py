"""Worker beacons: one file per live worker, its heartbeat the file's modification time.

``<results>/_workers/<token>.json`` says who the worker is (host, pid, Slurm job and array
task) and which grid it works on; ``bench status`` counts the beacons
whose heartbeat is fresh as the workers alive. A worker that exits removes its beacon; one
that is killed leaves it to go stale, as its run claims do.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.claims import claim_ttl, owner_dead, owner_info
from bench.errors import StorageError
from bench.fsutil import unique_token, write_json_atomic
from bench.integrity import DamagedFile, seal, unseal
from bench.store import RunStore
from bench.untrusted import MiB, UntrustedJSON, read_json

WORKERS_FOLDER = "_workers"


@dataclass
class WorkerBeacon:
    """This process's beacon while it works on a grid; use as a context manager."""

    store: RunStore
    grid: str | None
    ttl: float = field(default_factory=claim_ttl)
    token: str = field(default_factory=unique_token)
    _info: dict[str, Any] = field(default_factory=dict, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def path(self) -> Path:
        return self.store.root / WORKERS_FOLDER / f"{self.token}.json"

    def __enter__(self) -> WorkerBeacon:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._info = seal({"owner": owner_info(), "grid": self.grid, "started": time.time()})
        write_json_atomic(self.path, self._info)
        self._thread = threading.Thread(target=self._beat, name="bench-worker-beacon",
                                        daemon=True)
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(max(0.2, self.ttl / 4)):
            try:
                os.utime(self.path)
            except FileNotFoundError:
                with contextlib.suppress(StorageError):
                    write_json_atomic(self.path, self._info)
            except OSError:  # the disk refuses: the beacon goes stale, the worker's own
                return       # next write reports the disk's error

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with contextlib.suppress(OSError):  # a read-only store keeps a stale beacon
            self.path.unlink(missing_ok=True)


def workers(store: RunStore, ttl: float | None = None) -> list[dict[str, Any]]:
    """Every beacon with ``alive`` (fresh heartbeat, owner not known dead) and its age."""
    ttl = claim_ttl() if ttl is None else ttl
    out = []
    for path in sorted((store.root / WORKERS_FOLDER).glob("*.json")):
        try:
            data = read_json(path, MiB, "worker beacon")
            if isinstance(data, dict):
                unseal(data, path)
            age = time.time() - path.stat().st_mtime
        except (OSError, UntrustedJSON, DamagedFile):
            continue
        if not isinstance(data, dict):
            continue
        alive = age <= ttl and not owner_dead(data.get("owner", {}))
        out.append({**data, "heartbeat_age": age, "alive": alive, "token": path.stem})
    return out
