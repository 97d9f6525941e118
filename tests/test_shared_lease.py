"""Workers sharing a store train a shared training once: the lease on it makes the others
wait for its result, and never makes two workers wait on each other (real processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from torch import nn

from bench.engine import TrainResult
from bench.harness.packing import run_packed
from bench.shared_training import save_shared, training_lease
from bench.store import RunStore

ROOT = Path(__file__).resolve().parents[1]
HOLD = """
import sys
from pathlib import Path
from bench.claims import acquire
claim = acquire(Path(sys.argv[1]))
print("held" if claim else "refused", flush=True)
sys.stdin.readline()
claim.release()
"""


class Holder:
    """Another worker process holding the lease of one key until told to release it."""

    def __init__(self, store: RunStore, key: str) -> None:
        folder = store.root / "_shared" / "leases" / key
        self.proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "held"

    def release(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        assert self.proc.wait(timeout=30) == 0


class Waiter(threading.Thread):
    """A run of this process asking for the training of ``key``: what the lease gave it."""

    def __init__(self, store: RunStore, key: str) -> None:
        super().__init__(daemon=True)
        self.store, self.key = store, key
        self.told: list[dict] = []
        self.got: list = []

    def run(self) -> None:
        with training_lease(self.store, self.key, poll=0.02, waiting=self.told.append) as got:
            self.got.append(got)


def _save(store: RunStore, key: str, loss: float) -> None:
    result = TrainResult([{"epoch": 1, "train_loss": loss}], 1, 3, 1.5, 0, {})
    save_shared(store, key, nn.Linear(2, 2), result, {"run": "other", "phase": "round0"})


def test_a_worker_waits_for_the_training_another_worker_holds_then_loads_it(tmp_path):
    store = RunStore(tmp_path)
    holder = Holder(store, "a" * 32)
    try:
        waiter = Waiter(store, "a" * 32)
        waiter.start()
        time.sleep(0.5)
        assert waiter.is_alive() and waiter.got == []  # waiting, not training
        assert [t["owner"]["pid"] for t in waiter.told] == [holder.proc.pid]
        _save(store, "a" * 32, 1.25)  # the other worker's result
        waiter.join(timeout=10)
        assert not waiter.is_alive()
        assert waiter.got[0] is not None and waiter.got[0].result.log[0]["train_loss"] == 1.25
    finally:
        holder.release()


@pytest.mark.parametrize("end", ["released unsaved", "killed"])
def test_a_lease_its_holder_gave_up_is_taken_and_trained_here(tmp_path, end):
    store = RunStore(tmp_path)
    holder = Holder(store, "b" * 32)
    waiter = Waiter(store, "b" * 32)
    waiter.start()
    time.sleep(0.3)
    assert waiter.is_alive()
    if end == "killed":
        holder.proc.kill()
        holder.proc.wait()
    else:
        holder.release()
    waiter.join(timeout=10)
    assert waiter.got == [None]  # nothing stored: this worker trains it, holding the lease
    with training_lease(store, "b" * 32, poll=0.02) as again:  # released after the body
        assert again is None


def test_a_worker_holding_a_lease_trains_alongside_instead_of_waiting(tmp_path):
    """Waiting while holding could deadlock two workers (each packing runs the other waits
    for): the second training is done here too, as if unshared."""
    store = RunStore(tmp_path)
    holder = Holder(store, "c" * 32)
    try:
        with training_lease(store, "d" * 32, poll=0.02) as mine:
            assert mine is None  # this process holds d's lease
            other = Waiter(store, "c" * 32)
            other.start()
            other.join(timeout=2)
            assert not other.is_alive() and other.got == [None] and other.told == []
    finally:
        holder.release()


def test_runs_of_one_process_share_its_lease_and_a_stored_training_needs_none(tmp_path):
    store = RunStore(tmp_path)
    with training_lease(store, "e" * 32) as first:
        assert first is None
        second = Waiter(store, "e" * 32)  # another run of the packed window, same training
        second.start()
        second.join(timeout=5)
        assert second.got == [None] and second.told == []  # the packer trains it once
        _save(store, "e" * 32, 0.5)
    holder = Holder(store, "f" * 32)
    try:
        _save(store, "f" * 32, 0.75)
        with training_lease(store, "f" * 32) as stored:  # stored: no lease is asked for
            assert stored is not None and stored.result.log[0]["train_loss"] == 0.75
    finally:
        holder.release()


def test_ctrl_c_stops_a_packed_run_that_waits_for_another_worker(tmp_path):
    """Ctrl-C reaches the main thread only; a packed run waiting in its own thread for a
    training another worker holds must stop too, not hold the interrupt up until then."""
    store = RunStore(tmp_path)
    holder = Holder(store, "e" * 32)
    waiting = threading.Event()

    def job(trainer):
        with training_lease(store, "e" * 32, poll=0.02, waiting=lambda _: waiting.set()):
            return "trained"

    def interrupt() -> None:
        if waiting.wait(timeout=10):
            os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    fallback = threading.Timer(8, holder.release)  # without the fix: the wait ends here
    fallback.start()
    # Python's own Ctrl-C handler: a shell starts background jobs (CI's too) with SIGINT
    # ignored, and Python then leaves it ignored
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    start = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_packed([job], pack=2)
        assert time.monotonic() - start < 5
    finally:
        signal.signal(signal.SIGINT, previous)
        fallback.cancel()
        if holder.proc.poll() is None:
            holder.release()
    holder = Holder(store, "f" * 32)  # afterwards, waits go on again
    try:
        waiter = Waiter(store, "f" * 32)
        waiter.start()
        time.sleep(0.3)
        assert waiter.is_alive() and waiter.got == [] and len(waiter.told) == 1
    finally:
        holder.release()
    waiter.join(timeout=10)
    assert waiter.got == [None]
