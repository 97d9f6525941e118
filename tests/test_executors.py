"""The executors on the small real grid: ``--executor local --workers 2`` and a real Slurm job
array with more tasks than runs, a worker killed mid-run in each (and a Slurm task
preempted); every run ends finished exactly once and the store equals an in-process run's."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from small_grid import ENV, ROOT, RUNS, command, events, outcome

from bench.harness.manifest import manifests
from bench.harness.status import RunState, grid_status
from bench.store import RunStore

pytestmark = pytest.mark.slow


def wait_for_run(root: Path, proc: subprocess.Popen, wanted, timeout: float = 300) -> RunState:
    """Poll the grid's status until a running run satisfies ``wanted``; fail if the launcher
    ends first or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        store = RunStore(root)
        found = manifests(store) if root.is_dir() else []
        if found:
            for run in grid_status(store, found[-1]).runs:
                if run.state == "running" and wanted(run):
                    return run
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"no running run matched within {timeout} s: {proc.communicate()}")


def resumed_epochs(root: Path, key: str) -> list[int]:
    """The epoch each phase of a finished run's record resumed at (0: trained from start)."""
    record = RunStore(root).read(key)
    return [phase["resumed_at_epoch"] for phase in record["phases"]]


def check_store(root: Path, straight: dict[str, tuple]) -> None:
    """Every run finished once, with exactly the numbers of the uninterrupted in-process run."""
    assert outcome(root) == straight
    assert events(root, "finished") == {key: 1 for key in straight}
    assert not list(root.rglob("*.tmp"))


def test_local_workers_finish_a_grid_when_one_is_killed(cifar10_dir, tmp_path, straight_grid):
    proc = subprocess.Popen(command(tmp_path, cifar10_dir, "--executor", "local", "--workers",
                                    "2"), cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    victim = wait_for_run(tmp_path, proc, lambda run: run.epochs_done >= 1)
    os.kill(victim.owner["pid"], signal.SIGKILL)
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err
    assert f"worker {victim.owner['worker']} ended with status -9" in err
    assert f"done: {RUNS} finished" in out
    check_store(tmp_path, straight_grid)
    assert max(resumed_epochs(tmp_path, victim.key)) >= 1  # resumed, not started over
    record = RunStore(tmp_path).read(victim.key)
    assert record["owner"]["worker"] != victim.owner["worker"]  # the other worker took it over


def task_of(owner: dict) -> str:
    """``<array job>_<task>`` of a Slurm worker."""
    return f"{owner['slurm_array_job']}_{owner['slurm_array_task']}"


def test_slurm_array_finishes_a_grid_through_a_kill_and_a_preemption(
        slurm_cluster, cifar10_dir, tmp_path, straight_grid):
    folder = tmp_path / "submitit"
    results = tmp_path / "results"
    launch = command(results, cifar10_dir, "--executor", "slurm", "--array-tasks", "6",
                     "--array-parallelism", "2", "--cpus-per-task", "1", "--time-limit", "30",
                     "--slurm-folder", str(folder), "--wait")
    proc = subprocess.Popen(launch, cwd=ROOT, env={**ENV, **slurm_cluster.env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # node loss: a task's worker killed outright, nothing saved
    killed = wait_for_run(results, proc, lambda run: run.epochs_done >= 1)
    os.kill(killed.owner["pid"], signal.SIGKILL)
    # preemption: the signal submitit asks Slurm for (--signal=USR2@90) reaches a worker
    # (sent here directly: scancel --signal may be refused while a task of the array ends)
    preempted = wait_for_run(results, proc, lambda run: run.epochs_done >= 1
                             and run.key != killed.key and "slurm_restarts" not in run.owner)
    os.kill(preempted.owner["pid"], signal.SIGUSR2)
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err
    assert f"done: {RUNS} finished" in out
    slurm_cluster.wait_idle(120)  # the requeued task starts again, finds nothing left, ends
    check_store(results, straight_grid)
    assert max(resumed_epochs(results, killed.key)) >= 1
    assert max(resumed_epochs(results, preempted.key)) >= 1
    assert events(results, "interrupted")[preempted.key] == 1  # it saved before it went
    assert "interrupted" not in [e["event"] for e in RunStore(results).events(killed.key)]
    task = task_of(preempted.owner)
    log = (folder / f"{task}_0_log.out").read_text()
    assert f"Requeued job {task}" in log
    assert log.count(", preset ") == 2  # the requeued task ran again
    logs = {p.name.split("_")[1] for p in folder.glob("*_0_log.out")}
    assert logs == {str(i) for i in range(6)}  # every task ran, the idle ones found no work
