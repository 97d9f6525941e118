"""Run claims: an atomic lease per run, so any number of workers run each spec once.

A claim is a file ``claim.<generation>.json`` in the run's folder, created with
``O_CREAT | O_EXCL`` (``bench.fsutil.create_exclusive``; atomic on local filesystems and
on NFS v3+). The worker that creates generation g+1 owns the run; generation g must be
released, or stale: its heartbeat (the file's modification time, touched every
``ttl / 4`` seconds by a background thread) older than ``ttl``, or its owner a process of
this host that no longer exists. Only the newest generation is kept. A worker that finds
a newer generation than its own has lost its claim (it was paused past the ttl) and
writes nothing more. A claim carries its checksum: one that fails it, or is not JSON, reads
as a claim being written (held until its heartbeat is stale), never as anyone's.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bench.errors import StorageError, printable
from bench.fsutil import HOST, create_exclusive, unique_token, write_json_atomic
from bench.integrity import DamagedFile, seal, unseal
from bench.untrusted import MiB, UntrustedJSON, read_json

CLAIM_TTL_ENV = "BENCH_CLAIM_TTL"
WORKER_ENV = "BENCH_WORKER"  # a local worker's name, set by ``--executor local``
DEFAULT_CLAIM_TTL = 300.0  # seconds: generous for clock skew between hosts of a cluster
_CLAIM_RE = re.compile(r"^claim\.(\d+)\.json$")


def claim_ttl() -> float:
    """The lease time in seconds: ``$BENCH_CLAIM_TTL``, else 300."""
    text = os.environ.get(CLAIM_TTL_ENV)
    try:
        return float(text) if text else DEFAULT_CLAIM_TTL
    except ValueError:
        return DEFAULT_CLAIM_TTL


def _process_start(pid: int) -> str | None:
    """The start time of ``pid`` on this host (field 22 of /proc/pid/stat), to tell pid reuse;
    None when no such process runs (a zombie, killed and not yet reaped, has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return None if fields[0] in ("Z", "X") else fields[19]


def owner_info() -> dict[str, Any]:
    """Who this worker is: host, pid, its start time; Slurm job, array job and task and how
    often it was requeued, and the local worker's name, where present."""
    info: dict[str, Any] = {"host": HOST, "pid": os.getpid(),
                            "pid_start": _process_start(os.getpid())}
    for name, env in (("slurm_job", "SLURM_JOB_ID"), ("slurm_array_job", "SLURM_ARRAY_JOB_ID"),
                      ("slurm_array_task", "SLURM_ARRAY_TASK_ID"),
                      ("slurm_restarts", "SLURM_RESTART_COUNT"), ("worker", WORKER_ENV)):
        if os.environ.get(env):
            info[name] = os.environ[env]
    return info


def owner_text(owner: dict[str, Any]) -> str:
    """``host pid 123, slurm 17_2`` for a claim's or record's owner."""
    owner = {k: printable(v) for k, v in owner.items()}  # read from files: shown escaped
    parts = [f"{owner.get('host', '?')} pid {owner.get('pid', '?')}"]
    if owner.get("slurm_array_job"):
        parts.append(f"slurm {owner['slurm_array_job']}_{owner.get('slurm_array_task', '?')}")
    elif owner.get("slurm_job"):
        parts.append(f"slurm {owner['slurm_job']}")
    if owner.get("slurm_restarts") not in (None, "0"):
        parts.append(f"requeued {owner['slurm_restarts']}x")
    if owner.get("worker"):
        parts.append(owner["worker"])
    return ", ".join(parts)


def owner_dead(owner: dict[str, Any]) -> bool:
    """True when the owner was a process of this host that has ended."""
    if owner.get("host") != HOST or not isinstance(owner.get("pid"), int):
        return False
    start = _process_start(owner["pid"])
    return start is None or (owner.get("pid_start") is not None and start != owner["pid_start"])


def generations(folder: Path) -> list[int]:
    """The claim generations present in a run folder, ascending."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    return sorted(int(m.group(1)) for n in names if (m := _CLAIM_RE.match(n)))


def claim_path(folder: Path, generation: int) -> Path:
    return folder / f"claim.{generation}.json"


def read_claim(path: Path) -> dict[str, Any] | None:
    """A claim's content (None when gone); a file still being written, or damaged, reads as
    ``{}``."""
    try:
        data = read_json(path, MiB, "claim")
        return unseal(data, path) if isinstance(data, dict) else {}
    except FileNotFoundError:
        return None
    except (UntrustedJSON, DamagedFile):
        return {}


def claim_state(folder: Path, ttl: float | None = None) -> tuple[str, dict[str, Any], int]:
    """``("free" | "held" | "stale", claim content, generation)`` of the newest claim."""
    ttl = claim_ttl() if ttl is None else ttl
    gens = generations(folder)
    if not gens:
        return "free", {}, 0
    path = claim_path(folder, gens[-1])
    data = read_claim(path)
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        data = None
    if data is None:  # removed while we looked: someone is acting on it
        return "held", {}, gens[-1]
    if data.get("released"):
        return "free", data, gens[-1]
    owner = data.get("owner", {})
    if age > ttl or owner_dead(owner):
        return "stale", data, gens[-1]
    return "held", {**data, "heartbeat_age": age}, gens[-1]


@dataclass
class Claim:
    """A held lease on one run; :meth:`valid` says whether it is still ours."""

    folder: Path
    generation: int
    token: str
    ttl: float
    lost: bool = False
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def path(self) -> Path:
        return claim_path(self.folder, self.generation)

    def valid(self) -> bool:
        """Ours while our file holds our token and no newer generation exists."""
        if self.lost:
            return False
        data = read_claim(self.path)
        if not data or data.get("token") != self.token or data.get("released"):
            self.lost = True
        elif claim_path(self.folder, self.generation + 1).exists():
            self.lost = True
        return not self.lost

    def beat(self) -> bool:
        """Touch the heartbeat; returns whether the claim is still ours."""
        if not self.valid():
            return False
        try:
            os.utime(self.path)
        except FileNotFoundError:
            self.lost = True
        except OSError:  # the disk refuses (read-only, failing): the claim will go stale,
            return False  # and the worker's next write stops it with the disk's error
        return not self.lost

    def start_heartbeat(self) -> None:
        def loop() -> None:
            while not self._stop.wait(max(0.2, self.ttl / 4)):
                if not self.beat():
                    return

        self._thread = threading.Thread(target=loop, name="bench-claim-heartbeat", daemon=True)
        self._thread.start()

    def release(self, note: dict[str, Any] | None = None) -> None:
        """Stop the heartbeat and mark the claim released (the file stays as the newest)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.valid():
            data = read_claim(self.path) or {}
            try:
                write_json_atomic(self.path, seal({**data, "released": True, **(note or {})}))
            except StorageError:  # the claim goes stale instead; the error that stopped
                pass              # this worker (or its next write) is the one reported


def acquire(folder: Path, ttl: float | None = None) -> Claim | None:
    """Claim the run in ``folder``, or None when another live worker holds it."""
    ttl = claim_ttl() if ttl is None else ttl
    folder.mkdir(parents=True, exist_ok=True)
    state, _, newest = claim_state(folder, ttl)
    if state == "held":
        return None
    generation = newest + 1  # the generation after the one observed, never a later listing's
    token = unique_token()
    path = claim_path(folder, generation)

    def write(f: IO[bytes]) -> None:
        f.write(json.dumps(seal({"token": token, "generation": generation,
                                 "owner": owner_info(), "claimed": time.time()})).encode())

    if not create_exclusive(path, write):
        return None  # another worker took this generation first
    for old in generations(folder):  # dead or released: only the newest generation is kept
        if old < generation:
            claim_path(folder, old).unlink(missing_ok=True)
    claim = Claim(folder, generation, token, ttl)
    claim.start_heartbeat()
    return claim
