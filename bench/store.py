"""Run specs, their stable keys, and the on-disk store of records and checkpoints.

``results/runs/<key>/record.json`` holds one run, beside its artifact
``model-<sha256 prefix>.bpa``, its checkpoints, its claims (``bench.claims``) and an
append-only ``events.log``. Every write goes to a unique temporary name and is renamed,
so a crash never leaves a half-written file that looks finished, and a record is never
replaced by a worse one: a finished result stays until a new finished one replaces it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench import claims
from bench.errors import BenchError, is_storage_failure, storage_error, warn
from bench.fsutil import write_json_atomic
from bench.integrity import SEAL_FIELD, DamagedFile, seal, unseal
from bench.recipe import Recipe
from bench.untrusted import (
    MiB,
    UntrustedJSON,
    check_key,
    check_name,
    check_number,
    read_json,
)

__all__ = ["RunSpec", "RunStore", "UnreadableRecord", "write_json_atomic", "read_record_file",
           "validate_record"]

# Bump only when the harness changes what an unchanged spec computes: every key moves.
SUITE_KEY_VERSION = 1
RECORD_FORMAT = 2
RECORD_NAME = "record.json"
EVENTS_NAME = "events.log"
ARTIFACT_PREFIX, ARTIFACT_SUFFIX = "model-", ".bpa"
# A record names its artifact by file name only: ``model-<16 hex>.bpa`` (``model.bpa``
# before the name carried the hash). Anything else (``../x``, an absolute path) is refused.
ARTIFACT_FILE_RE = re.compile(r"model(-[0-9a-f]{16})?\.bpa")
RECORD_MAX_BYTES = 64 * MiB
STATUSES = ("running", "finished", "failed", "diverged")
# A record is replaced only by one of at least its rank: finished and diverged are results.
STATUS_RANK = {"running": 0, "failed": 0, "diverged": 1, "finished": 2}


@dataclass(frozen=True)
class RunSpec:
    """Everything that determines a run's result; its canonical form hashes to the run key.

    ``hparams`` and ``model_kwargs`` hold only values that differ from their
    defaults, so adding an option with a neutral default keeps old keys. A method
    that changes what it computes bumps its ``method_version``.
    """

    method: str
    model: str
    dataset: str
    density: float
    seed: int
    recipe: Recipe
    hparams: dict[str, Any] = field(default_factory=dict)
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    train_subset: int | None = None
    test_subset: int | None = None
    method_version: int = 1
    value_codec: str = "float32"
    data: str | None = None

    def canonical(self) -> dict[str, Any]:
        """The JSON-ready dict that defines the key (defaults omitted, floats as floats)."""
        out: dict[str, Any] = {
            "suite": SUITE_KEY_VERSION,
            "method": self.method,
            "method_version": self.method_version,
            "model": self.model,
            "dataset": self.dataset,
            "density": float(self.density),
            "seed": int(self.seed),
            "recipe": self.recipe.canonical(),
        }
        if self.hparams:
            out["hparams"] = dict(sorted(self.hparams.items()))
        if self.model_kwargs:
            out["model_kwargs"] = dict(sorted(self.model_kwargs.items()))
        if self.train_subset is not None:
            out["train_subset"] = int(self.train_subset)
        if self.test_subset is not None:
            out["test_subset"] = int(self.test_subset)
        if self.value_codec != "float32":
            out["value_codec"] = self.value_codec
        if self.data is not None:
            out["data"] = self.data
        return out

    @property
    def key(self) -> str:
        """16 hex digits of the SHA-256 of the canonical JSON: the run's folder name.

        With ``data`` (the fingerprint of the arrays the run trains and tests on) the key
        names the run on exactly that data; other images give another key.
        """
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def grid_key(self) -> str:
        """The key without the data fingerprint: what a preset's grid names before loading."""
        return replace(self, data=None).key

    def with_data(self, fingerprint: str) -> RunSpec:
        return replace(self, data=fingerprint)

    def to_record(self) -> dict[str, Any]:
        """The spec as stored in a record: the full recipe, not only its non-defaults."""
        out = self.canonical()
        out["recipe"] = self.recipe.as_dict()
        out.setdefault("hparams", {})
        out.setdefault("model_kwargs", {})
        return out

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> RunSpec:
        """Rebuild a spec from a record's ``spec`` entry (inverse of :meth:`to_record`)."""
        try:
            return cls(
                method=data["method"],
                model=data["model"],
                dataset=data["dataset"],
                density=float(data["density"]),
                seed=int(data["seed"]),
                recipe=Recipe.from_dict(data["recipe"]),
                hparams=dict(data.get("hparams", {})),
                model_kwargs=dict(data.get("model_kwargs", {})),
                train_subset=data.get("train_subset"),
                test_subset=data.get("test_subset"),
                method_version=int(data.get("method_version", 1)),
                value_codec=data.get("value_codec", "float32"),
                data=data.get("data"),
            )
        except (KeyError, TypeError, ValueError, AttributeError, BenchError) as exc:
            raise BenchError(f"spec in record is incomplete or malformed: {exc}") from exc

    def label(self) -> str:
        """A short human-readable name for progress lines."""
        hp = "".join(f":{k}={v}" for k, v in sorted(self.hparams.items()))
        return (
            f"{self.method}{hp} {self.model} {self.dataset} "
            f"d={self.density:g} seed={self.seed} ep={self.recipe.epochs}"
        )


class UnreadableRecord(BenchError):
    """A record file exists but cannot be parsed; the run is redone, the file kept aside."""


REQUIRED_METRICS = ("test_accuracy", "test_loss", "artifact_bytes", "artifact_file")
# The ranges a finished record's numbers can have (None: absent or not measured is fine).
_COUNT = (0, 2**53)
METRIC_RANGES: dict[str, tuple[float, float, bool]] = {
    "test_accuracy": (0, 100, False), "test_top5": (0, 100, False),
    "test_loss": (0, 1e9, False), "artifact_bytes": (1, 2**53, True),
    "dense_bytes": (*_COUNT, True), "density": (0, 1, False),
    "compression_ratio": (0, 1e15, False), "theoretical_speedup": (0, 1e15, False),
    "parameters_total": (*_COUNT, True), "parameters_prunable": (*_COUNT, True),
    "parameters_kept": (*_COUNT, True), "values_dense": (*_COUNT, True),
    "values_stored": (*_COUNT, True), "macs_dense": (*_COUNT, True),
    "macs_sparse": (*_COUNT, True), "decode_max_logit_difference": (0, 1e30, False),
}
BUDGET_RANGES: dict[str, tuple[float, float]] = {
    "epochs": (0, 1e7), "steps": (0, 1e12), "train_seconds": (0, 1e9),
    "all_phases_epochs": (0, 1e7), "all_phases_steps": (0, 1e12),
    "all_phases_train_seconds": (0, 1e9),
}


def validate_record(data: Any, where: str, folder_key: str | None = None) -> dict[str, Any]:
    """``data`` if it is a whole run record, else :class:`UnreadableRecord` saying what lacks.

    Every record needs a status, its key (16 hex digits; the folder's name where it sits in
    a store, ``folder_key``) and a spec the suite can rebuild, whose names are names; a
    finished one needs its metrics, each in the range a result can have, and its artifact
    named by a plain file name (a record never points outside its run folder).
    """
    if not isinstance(data, dict) or data.get("status") not in STATUSES:
        raise UnreadableRecord(f"unreadable record {where}: not a run record (no valid status)")
    if not isinstance(data.get("spec"), dict):
        raise UnreadableRecord(f"unreadable record {where}: no spec")
    try:
        _check_fields(data, folder_key)
        RunSpec.from_record(data["spec"])
    except BenchError as exc:
        raise UnreadableRecord(f"unreadable record {where}: {exc}") from None
    return data


def _check_fields(data: dict[str, Any], folder_key: str | None) -> None:
    """The untrusted fields of a record within their limits (:mod:`bench.untrusted`)."""
    key = check_key(data.get("key"), "its key")
    if folder_key is not None and key != folder_key:
        raise UntrustedJSON(f"its key {key} is not its folder's name {folder_key}")
    spec = data["spec"]
    for name in ("method", "model", "dataset"):
        check_name(spec.get(name), f"spec {name}")
    check_number(spec.get("density"), "spec density", 0, 1)
    check_number(spec.get("seed"), "spec seed", -(2**63), 2**64, integer=True)
    for name in ("hparams", "model_kwargs"):
        for k, v in (spec.get(name) or {}).items() if isinstance(spec.get(name), dict) else ():
            check_name(k, f"spec {name} name")
            if isinstance(v, str):
                check_name(v, f"spec {name} {k}")
    if data["status"] != "finished":
        return
    metrics = data.get("metrics")
    if not isinstance(metrics, dict):
        raise UntrustedJSON("finished but has no metrics")
    missing = [name for name in REQUIRED_METRICS if metrics.get(name) is None]
    if missing:
        raise UntrustedJSON(f"finished but metric {missing[0]!r} is missing")
    for name, (low, high, integer) in METRIC_RANGES.items():
        if metrics.get(name) is not None:
            check_number(metrics[name], f"metric {name}", low, high, integer=integer)
    artifact = check_name(metrics["artifact_file"], "its artifact file")
    if not ARTIFACT_FILE_RE.fullmatch(artifact):
        raise UntrustedJSON(f"its artifact file {artifact!r} is not a plain artifact name "
                            "(model-<16 hex digits>.bpa)")
    for name in metrics.get("collapsed_tensors") or ():
        check_name(name, "a collapsed tensor's name")
    budget = data.get("budget")
    if isinstance(budget, dict):
        for name, (low, high) in BUDGET_RANGES.items():
            if budget.get(name) is not None:
                check_number(budget[name], f"budget {name}", low, high)


def read_record_file(path: Path) -> dict[str, Any]:
    """Parse, verify and validate one record file; any problem is an
    :class:`UnreadableRecord` (a disk refusing the read, a StorageError)."""
    path = Path(path)
    try:
        data = read_json(path, RECORD_MAX_BYTES)
        if isinstance(data, dict):  # checked, then dropped: a storage detail, not a result
            data = unseal(data, path)
            data.pop(SEAL_FIELD, None)
    except FileNotFoundError as exc:
        raise UnreadableRecord(f"unreadable record {path}: it vanished ({exc.strerror})") \
            from None
    except UntrustedJSON as exc:
        raise UnreadableRecord(f"unreadable record {path}: it {exc.reason}") from None
    except DamagedFile as exc:
        raise UnreadableRecord(f"unreadable record {path}: {exc.reason}") from None
    return validate_record(data, str(path), folder_key=path.parent.name)


def artifact_name(sha256: str) -> str:
    """The artifact's file name: its content hash, so a new artifact never overwrites the
    one a finished record names (a forced rerun keeps the old result until it has its own)."""
    return f"{ARTIFACT_PREFIX}{sha256[:16]}{ARTIFACT_SUFFIX}"


class RunStore:
    """The folder of runs: one sub-folder per run key with record, checkpoints and artifact."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def run_dir(self, key: str) -> Path:
        """The run's folder; a key that is not 16 hex digits (``../x``, read from a damaged
        or crafted file) is refused, so nothing outside the store is ever touched."""
        return self.root / check_key(key, "a run key")

    def record_path(self, key: str) -> Path:
        return self.run_dir(key) / RECORD_NAME

    def artifact_path(self, key: str, name: str) -> Path:
        """The artifact ``name`` of run ``key``: a plain artifact file name, never a path."""
        if not isinstance(name, str) or not ARTIFACT_FILE_RE.fullmatch(name):
            raise UntrustedJSON(f"artifact name {name!r} is not a plain artifact file name")
        return self.run_dir(key) / name

    def checkpoint_path(self, key: str, phase: str) -> Path:
        return self.run_dir(key) / "checkpoints" / f"{phase}.ckpt"

    def read(self, key: str) -> dict[str, Any] | None:
        """The run's record, or None if there is none. Unreadable: :class:`UnreadableRecord`."""
        path = self.record_path(key)
        if not path.exists():
            return None
        return read_record_file(path)

    def set_aside(self, key: str) -> Path:
        """Move an unreadable record aside (kept for inspection); returns its new path."""
        path = self.record_path(key)
        n = 0
        while (aside := path.with_name(f"record.unreadable.{n}.json")).exists():
            n += 1
        try:
            os.replace(path, aside)
        except OSError as exc:
            if is_storage_failure(exc):
                raise storage_error(exc, path, "setting aside") from None
            raise
        return aside

    def write(self, key: str, record: dict[str, Any]) -> bool:
        """Write ``record`` unless the store holds a better one (a result beats no result).

        Returns whether it was written. Claims make a run's writer unique; this rule is
        what keeps a finished result when a stale worker or ``--force`` writes after it.
        """
        try:
            current = self.read(key)
        except UnreadableRecord:
            current = None
        if current is not None and (STATUS_RANK[current["status"]]
                                    > STATUS_RANK[record["status"]]):
            return False
        write_json_atomic(self.record_path(key), seal(record))
        return True

    def event(self, key: str, event: str, **details: Any) -> None:
        """Append one line to the run's ``events.log`` (who did what when; O_APPEND)."""
        line = json.dumps({"time": time.time(), "event": event, **claims.owner_info(),
                           **details}) + "\n"
        path = self.run_dir(key) / EVENTS_NAME
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)
        except OSError as exc:
            if is_storage_failure(exc):
                raise storage_error(exc, path) from None
            raise

    def events(self, key: str) -> list[dict[str, Any]]:
        """The run's events, oldest first (a torn last line is skipped)."""
        path = self.run_dir(key) / EVENTS_NAME
        if not path.exists():
            return []
        out = []
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out

    def claim(self, key: str) -> claims.Claim | None:
        """A lease on the run (None: another live worker holds it); see :mod:`bench.claims`."""
        return claims.acquire(self.run_dir(key))

    def remove_other_artifacts(self, key: str, keep: str) -> None:
        """Delete artifacts of earlier attempts (the record names ``keep``)."""
        for path in self.run_dir(key).glob(f"{ARTIFACT_PREFIX}*{ARTIFACT_SUFFIX}"):
            if path.name != keep:
                path.unlink(missing_ok=True)

    def remove_temporary_files(self, key: str) -> None:
        """Delete the run's half-written temporary files (of writers that were killed)."""
        for path in self.run_dir(key).rglob(".*.tmp"):
            path.unlink(missing_ok=True)

    def clear_checkpoints(self, key: str) -> None:
        shutil.rmtree(self.run_dir(key) / "checkpoints", ignore_errors=True)

    def records(self) -> Iterator[tuple[Path, dict[str, Any]]]:
        """Every readable record under the root; unreadable ones are warned about by name."""
        if not self.root.exists():
            return
        for path in sorted(self.root.glob(f"*/{RECORD_NAME}")):
            try:
                yield path, read_record_file(path)
            except UnreadableRecord as exc:
                warn(str(exc))
