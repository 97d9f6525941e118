"""Result sets: the records of a results folder, or of one versioned snapshot file.

``python -m bench export --out FILE`` writes the records of a selection into one snapshot
meant to be committed (bulky per-run detail left out, every number compared kept);
``bench compare`` and ``bench report`` read either kind.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.fsutil import write_json_atomic
from bench.integrity import SEAL_FIELD
from bench.store import UnreadableRecord, read_record_file, validate_record
from bench.untrusted import MiB, UntrustedJSON, read_json

SNAPSHOT_FORMAT = "bench-results"
SNAPSHOT_VERSION = 1
SNAPSHOT_MAX_BYTES = 1024 * MiB
# Bulky per-run detail a snapshot leaves out (and each record's checksum, which covers the
# whole record); the numbers compared are all kept.
DROPPED_FROM_SNAPSHOT = ("phases", SEAL_FIELD)
DROPPED_METRICS = ("artifact_layers", "density_per_tensor")


def _selected(record: dict[str, Any], methods: list[str] | None, models: list[str] | None,
              datasets: list[str] | None) -> bool:
    spec = record["spec"]
    return ((not methods or spec["method"] in methods) and (not models or spec["model"] in models)
            and (not datasets or spec["dataset"] in datasets))


def load_result_set(path: Path) -> list[dict[str, Any]]:
    """Records of a results folder (``results/runs`` or its parent) or of a snapshot file."""
    path = Path(path)
    if path.is_dir():
        root = path / "runs" if (path / "runs").is_dir() else path
        files = sorted(root.glob("*/record.json"))
        if not files:
            raise BenchError(f"no run records in {root}")
        return [_read_or_explain(f) for f in files]
    if not path.exists():
        raise BenchError(f"no such result set: {path}")
    try:
        data = read_json(path, SNAPSHOT_MAX_BYTES)
    except UntrustedJSON as exc:
        raise BenchError(f"unreadable snapshot {path}: it {exc.reason}") from None
    if not isinstance(data, dict) or data.get("format") != SNAPSHOT_FORMAT:
        raise BenchError(f"unreadable snapshot {path}: not a {SNAPSHOT_FORMAT} file")
    if data.get("version") != SNAPSHOT_VERSION:
        raise BenchError(f"snapshot {path} has version {data.get('version')}; this suite reads "
                         f"version {SNAPSHOT_VERSION}")
    records = data.get("records")
    if not isinstance(records, list):
        raise BenchError(f"unreadable snapshot {path}: malformed records")
    for i, record in enumerate(records):
        try:
            key = record.get("key", "?") if isinstance(record, dict) else "?"
            validate_record(record, f"{i} (key {key}) of snapshot {path}")
        except UnreadableRecord as exc:
            raise BenchError(str(exc)) from None
    return records


def _read_or_explain(path: Path) -> dict[str, Any]:
    try:
        return read_record_file(path)
    except UnreadableRecord as exc:
        raise BenchError(f"{exc} (move it aside or rerun that run)") from None


def export(results: Path, out: Path, methods: list[str] | None = None,
           models: list[str] | None = None, datasets: list[str] | None = None) -> int:
    """Write the selected records of ``results`` into one snapshot file; returns the count.

    An unreadable record stops the export (a snapshot silently missing a run would hide it).
    """
    out = Path(out)
    if out.is_dir():
        raise BenchError(f"--out {out} is a folder; give the snapshot file's path")
    root = Path(results)
    files = sorted(root.glob("*/record.json")) if root.is_dir() else []
    records = [r for r in map(_read_or_explain, files) if _selected(r, methods, models, datasets)]
    if not records:
        raise BenchError(f"no run records selected in {results}")
    slim = []
    for record in sorted(records, key=lambda r: r["key"]):
        r = {k: v for k, v in record.items() if k not in DROPPED_FROM_SNAPSHOT}
        if "metrics" in r:
            r["metrics"] = {k: v for k, v in r["metrics"].items() if k not in DROPPED_METRICS}
        slim.append(r)
    write_json_atomic(out, {
        "format": SNAPSHOT_FORMAT,
        "version": SNAPSHOT_VERSION,
        "exported": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": str(results),
        "records": slim,
    })
    return len(slim)
