"""The small real grid the multi-worker tests share: four smoke-scale runs on CIFAR-10 (CPU,
one thread), how to launch it, and what a store holds after it (to compare stores)."""

import os
import sys
from pathlib import Path

from bench.store import RunStore

ROOT = Path(__file__).resolve().parents[1]
GRID = ["run", "--methods", "dense,random,magnitude-init,snip", "--densities", "0.5",
        "--preset", "smoke", "--width", "0.25", "--train-subset", "500", "--test-subset", "200",
        "--epochs", "3", "--device", "cpu", "--no-progress", "--threads", "1"]
RUNS = 4
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def command(results: Path, data: Path, *extra: str) -> list[str]:
    """``python -m bench run`` on the small grid, with ``extra`` options after it."""
    return [sys.executable, "-m", "bench", *GRID, "--data-dir", str(data), "--results",
            str(results), *extra]


def outcome(root: Path) -> dict[str, tuple]:
    """Per run key: status and every number a result is judged by (and its artifact's hash)."""
    out = {}
    for _, record in RunStore(root).records():
        m = record.get("metrics", {})
        out[record["key"]] = (record["status"], m.get("test_accuracy"), m.get("test_loss"),
                              m.get("artifact_bytes"), m.get("artifact_sha256"))
    return out


def events(root: Path, kind: str) -> dict[str, int]:
    """Per run key: how many ``kind`` events (start, finished, interrupted) its log holds."""
    store = RunStore(root)
    return {path.parent.name: sum(e["event"] == kind for e in store.events(path.parent.name))
            for path in root.glob("*/record.json")}
