"""Several workers on one grid and store: each spec runs once, kills lose nothing, and the
store ends equal to an uninterrupted run's (real processes, real CIFAR-10, CPU)."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.store import RunStore

ROOT = Path(__file__).resolve().parents[1]
GRID = ["run", "--methods", "dense,random,magnitude-init,snip", "--densities", "0.5",
        "--preset", "smoke", "--width", "0.25", "--train-subset", "500", "--test-subset", "200",
        "--epochs", "3", "--device", "cpu", "--no-progress", "--threads", "1"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def command(results: Path, data: Path) -> list[str]:
    return [sys.executable, "-m", "bench", *GRID, "--data-dir", str(data), "--results",
            str(results)]


def outcome(root: Path) -> dict[str, tuple]:
    """Per run key: status and every number a result is judged by (and its artifact's hash)."""
    out = {}
    for _, record in RunStore(root).records():
        m = record.get("metrics", {})
        out[record["key"]] = (record["status"], m.get("test_accuracy"), m.get("test_loss"),
                              m.get("artifact_bytes"), m.get("artifact_sha256"))
    return out


def events(root: Path, kind: str) -> dict[str, int]:
    store = RunStore(root)
    return {path.parent.name: sum(e["event"] == kind for e in store.events(path.parent.name))
            for path in root.glob("*/record.json")}


@pytest.fixture(scope="module")
def straight(cifar10_dir, tmp_path_factory) -> dict[str, tuple]:
    root = tmp_path_factory.mktemp("straight")
    done = subprocess.run(command(root, cifar10_dir), cwd=ROOT, env=ENV, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    result = outcome(root)
    assert len(result) == 4 and all(v[0] == "finished" for v in result.values())
    return result


@pytest.mark.slow
def test_two_workers_share_a_grid_and_run_each_spec_once(cifar10_dir, tmp_path, straight):
    procs = [subprocess.Popen(command(tmp_path, cifar10_dir), cwd=ROOT, env=ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=900) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1] for o in outputs]
    assert outcome(tmp_path) == straight
    assert set(events(tmp_path, "start").values()) == {1}  # nobody trained a spec twice
    assert set(events(tmp_path, "finished").values()) == {1}
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.mark.slow
def test_killed_workers_leave_the_store_an_uninterrupted_run_makes(cifar10_dir, tmp_path,
                                                                    straight):
    rng = random.Random(14)
    kills = 0
    for _ in range(6):  # rounds of three workers, each killed (-9) at a random moment
        procs = [subprocess.Popen(command(tmp_path, cifar10_dir), cwd=ROOT, env=ENV,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for _ in range(3)]
        deadlines = [time.time() + rng.uniform(1.0, 9.0) for _ in procs]
        while any(p.poll() is None for p in procs):
            for proc, deadline in zip(procs, deadlines):
                if proc.poll() is None and time.time() > deadline:
                    proc.send_signal(signal.SIGKILL)
                    kills += 1
            time.sleep(0.05)
        for proc in procs:
            proc.wait()
    assert kills >= 6
    procs = [subprocess.Popen(command(tmp_path, cifar10_dir), cwd=ROOT, env=ENV,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    errors = [p.communicate(timeout=900)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    assert outcome(tmp_path) == straight
    assert all(n <= 1 for n in events(tmp_path, "finished").values())
    assert sum(events(tmp_path, "start").values()) > len(straight)  # kills interrupted runs
