"""Run specs, their stable keys, and the on-disk store of records and checkpoints.

``results/runs/<key>/record.json`` holds one run. Every write goes to a
temporary name and is renamed, so a crash never leaves a half-written file that
looks finished.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.recipe import Recipe

# Bump only when the harness changes what an unchanged spec computes: every key moves.
SUITE_KEY_VERSION = 1
RECORD_FORMAT = 1
RECORD_NAME = "record.json"
ARTIFACT_NAME = "model.bpa"
STATUSES = ("running", "finished", "failed", "diverged")


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
        return out

    @property
    def key(self) -> str:
        """16 hex digits of the SHA-256 of the canonical JSON."""
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

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
            )
        except (KeyError, TypeError, ValueError) as exc:
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


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to a temporary name beside ``path`` and rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, sort_keys=False, allow_nan=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_record_file(path: Path) -> dict[str, Any]:
    """Parse one record file; any problem is an :class:`UnreadableRecord` naming the file."""
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UnreadableRecord(f"unreadable record {path}: {exc}") from exc
    if not isinstance(data, dict) or "spec" not in data or data.get("status") not in STATUSES:
        raise UnreadableRecord(f"unreadable record {path}: not a run record")
    return data


class RunStore:
    """The folder of runs: one sub-folder per run key with record, checkpoints and artifact."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def run_dir(self, key: str) -> Path:
        return self.root / key

    def record_path(self, key: str) -> Path:
        return self.run_dir(key) / RECORD_NAME

    def artifact_path(self, key: str) -> Path:
        return self.run_dir(key) / ARTIFACT_NAME

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
        os.replace(path, aside)
        return aside

    def write(self, key: str, record: dict[str, Any]) -> None:
        write_json_atomic(self.record_path(key), record)

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
                warnings.warn(str(exc), stacklevel=2)
