"""Several workers on one grid and store: each spec runs once, kills lose nothing, and the
store ends equal to an uninterrupted run's (real processes, real CIFAR-10, CPU)."""

import random
import signal
import subprocess
import time

import pytest
from small_grid import ENV, ROOT, command, events, outcome


@pytest.mark.slow
def test_two_workers_share_a_grid_and_run_each_spec_once(cifar10_dir, tmp_path,
                                                         straight_grid):
    procs = [subprocess.Popen(command(tmp_path, cifar10_dir), cwd=ROOT, env=ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=900) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1] for o in outputs]
    assert outcome(tmp_path) == straight_grid
    assert set(events(tmp_path, "start").values()) == {1}  # nobody trained a spec twice
    assert set(events(tmp_path, "finished").values()) == {1}
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.mark.slow
def test_killed_workers_leave_the_store_an_uninterrupted_run_makes(cifar10_dir, tmp_path,
                                                                    straight_grid):
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
    assert outcome(tmp_path) == straight_grid
    assert all(n <= 1 for n in events(tmp_path, "finished").values())
    assert sum(events(tmp_path, "start").values()) > len(straight_grid)  # kills interrupted

