"""The stored side of a run: a record that stands, one set aside, the artifact checked."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.fsutil import sha256_file
from bench.store import RunSpec, RunStore, UnreadableRecord


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


def stored_record(store: RunStore, spec: RunSpec, echo: Callable[[str], None]
            ) -> dict[str, Any] | None:
    """The run's record, an unreadable one moved aside (and announced)."""
    try:
        return store.read(spec.key)
    except UnreadableRecord as exc:
        aside = store.set_aside(spec.key)
        echo(f"warning: {exc}; moved to {aside.name} and rerunning")
        return None


def reusable(store: RunStore, spec: RunSpec, existing: dict[str, Any] | None,
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
