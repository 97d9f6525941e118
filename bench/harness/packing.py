"""The harness's packing of runs: K runs of a grid trained in one step, methods unchanged.

A method trains through ``ctx.train`` and expects the trained model back, so each run of a
window of the grid runs in a thread of its own, and its trainings become requests: the
runs take turns (one at a time, in grid order, so the work stays deterministic and never
oversubscribes the CPU) until every one of them waits on a training or has ended; then
the waiting trainings are grouped by :func:`~bench.engine.packed.pack_signature` and each
group of two or more is trained together (:func:`~bench.engine.packed.train_packed`), the
rest alone, and the runs go on. A run's global torch RNG state is kept across its turns.
Ctrl-C or SIGTERM reaches every run as it would alone: each saves and records itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from bench.data import DeviceData
from bench.engine import TrainResult
from bench.engine.loop import Diverged, Phase, TrainRequest, open_phase, run_phase
from bench.engine.packed import pack_signature, packable, train_packed
from bench.recipe import Recipe
from bench.shared_training import TRAINED_ALONGSIDE, interrupt_waits

Trainer = Callable[..., TrainResult]
"""``engine.train``'s signature: ``(model, data, recipe, *, seed, options, ...)``."""


class _Run(threading.Thread):
    """One run of the window in its own thread, advancing only when the packer says so."""

    def __init__(self, job: Callable[[Trainer], Any]) -> None:
        super().__init__(daemon=True, name="bench-packed-run")
        self.job = job
        self.go, self.paused = threading.Event(), threading.Event()
        self.request: TrainRequest | None = None
        self.reply: Any = None
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = False
        self.rng: torch.Tensor | None = None

    def run(self) -> None:
        self.go.wait()
        self.go.clear()
        try:
            self.result = self.job(self.train)
        except BaseException as exc:  # handed to the packer, which raises it in order
            self.error = exc
        finally:
            self.done = True
            self.paused.set()

    def train(self, model: nn.Module, data: DeviceData, recipe: Recipe, **kwargs: Any
              ) -> TrainResult:
        """``ctx.train``'s engine call from this run's thread: wait for the pack's result."""
        self.request = TrainRequest(model, data, recipe, **kwargs)  # engine.train's arguments
        self.rng = torch.get_rng_state()
        self.paused.set()
        self.go.wait()
        self.go.clear()
        torch.set_rng_state(self.rng)
        reply, self.reply, self.request = self.reply, None, None
        if isinstance(reply, BaseException):
            raise reply
        return reply

    def advance(self, reply: Any = None) -> None:
        """Let the run go on (with ``reply`` to its request) until it asks again or ends."""
        self.reply = reply
        self.paused.clear()
        self.go.set()
        self.paused.wait()


def run_packed(jobs: Sequence[Callable[[Trainer], Any]], pack: int) -> list[Any]:
    """Run ``jobs`` (each ``job(trainer)``, training only through ``trainer``) with their
    trainings packed up to ``pack`` at a time; their results in order. An exception a job
    raised is raised here after every job has ended (the first, in job order)."""
    runs = [_Run(job) for job in jobs]
    for run in runs:
        run.start()
    try:
        for run in runs:
            run.advance()
        while waiting := [run for run in runs if not run.done]:
            replies = _train(waiting, pack)
            for run, reply in zip(waiting, replies):
                run.advance(reply)
    except BaseException as exc:  # Ctrl-C, SIGTERM: every run saves itself as it would alone
        interrupt_waits(exc)  # a run waiting for another worker's training stops waiting
        try:
            for run in runs:
                run.paused.wait()
                while not run.done:
                    run.advance(exc)
        finally:
            interrupt_waits(None)
        raise
    for run in runs:
        run.join()
        if run.error is not None:
            raise run.error
    return [run.result for run in runs]


def _train(waiting: Sequence[_Run], pack: int) -> list[Any]:
    """Every waiting run's training: a :class:`TrainResult` or the exception to raise."""
    replies: list[Any] = [None] * len(waiting)
    groups: dict[Any, list[tuple[int, Phase]]] = {}
    keys: set[str] = set()
    for i, run in enumerate(waiting):
        assert run.request is not None
        key = run.request.share_key
        if key is not None and key in keys:  # the same training as an earlier run's here:
            replies[i] = TRAINED_ALONGSIDE   # that run stores it before this one goes on
            continue
        if key is not None:
            keys.add(key)
        try:
            phase = open_phase(run.request, progress_bar=False)
        except Exception as exc:  # noqa: BLE001 - the run records it as it would alone
            replies[i] = exc
            continue
        if isinstance(phase, TrainResult):
            replies[i] = phase
            continue
        key = pack_signature(phase) if packable(phase) is None else ("alone", i)
        groups.setdefault(key, []).append((i, phase))
    for members in groups.values():
        for start in range(0, len(members), pack):
            chunk = members[start:start + pack]
            for (i, _), reply in zip(chunk, _train_chunk([p for _, p in chunk])):
                replies[i] = reply
    return replies


def _train_chunk(phases: list[Phase]) -> list[Any]:
    try:
        if len(phases) == 1:
            return [run_phase(phases[0])]
        return train_packed(phases)
    except Diverged as exc:
        return [exc]
    except Exception as exc:  # noqa: BLE001 - every run of the pack records it
        return [exc] * len(phases)
