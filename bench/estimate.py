"""How long a grid will take here, said before it starts: runs, epochs and a rough time.

Each architecture's training step is timed on this device for a few steps (a fresh
dense model, the recipe's batch size); a run costs its method's planned epochs at that
rate plus its evaluations. Masked layers, scoring and compile time are not in the figure:
it is a lower bound of the right order, not a promise.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch

from bench.data import DeviceData
from bench.engine import EngineOptions, make_optimizer, prepare_model
from bench.engine.options import grad_scaler
from bench.engine.step import loss_function
from bench.engine.update import Update
from bench.models import build_model
from bench.provenance import threads_decided_by
from bench.registry import get_method
from bench.store import RunSpec, RunStore, UnreadableRecord

if TYPE_CHECKING:
    from bench.harness import DataCache

TIMED_STEPS = 3
EVAL_COST = 1 / 3  # an image evaluated costs about a third of one trained


@dataclass
class GridEstimate:
    """What a grid holds and roughly what it costs on this device."""

    runs: int
    done: int
    to_train: int
    epochs: int
    seconds: float
    device: str

    def line(self) -> str:
        head = f"{self.to_train} of {self.runs} runs to train ({self.epochs} epochs)"
        if self.done:
            head += f", {self.done} already in the store"
        if not self.to_train:
            return head
        return f"{head}; about {format_duration(self.seconds)} on {self.device}"


def format_duration(seconds: float) -> str:
    """``seconds`` as a rough duration: seconds, minutes or hours."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def step_seconds(spec: RunSpec, data: DeviceData, options: EngineOptions) -> float:
    """Seconds of one training step of ``spec``'s dense model at its batch size, here."""
    model = prepare_model(build_model(spec.model, data.num_classes, seed=0, **spec.model_kwargs),
                          options)
    eager = replace(options, compile=False)  # the engine's step, without compiling it here
    loss = loss_function(spec.recipe, eager, data)
    update = Update(make_optimizer(model.parameters(), spec.recipe, eager), eager,
                    grad_scaler(eager))
    batches = data.train_batches(spec.recipe.batch_size, 0, 0, spec.recipe.augment,
                                 normalized=False)
    model.train()
    elapsed = []
    for _, (x, y) in zip(range(TIMED_STEPS + 1), batches):
        t0 = time.perf_counter()
        value, _ = loss(model, x, y)
        update.optimizer.zero_grad(set_to_none=True)
        update.backward(value)
        update(spec.recipe.lr)
        if options.cuda:
            torch.cuda.synchronize(options.device)
        elapsed.append(time.perf_counter() - t0)
    return min(elapsed[1:] or elapsed)  # the first step warms caches up


def estimate_grid(specs: Sequence[RunSpec], store: RunStore, data: DataCache,
                  options: EngineOptions) -> GridEstimate:
    """Count what ``specs`` hold against ``store`` and time each architecture once."""
    done, epochs, seconds = 0, 0, 0.0
    pending = []
    for spec in specs:
        try:
            record = store.read(spec.key)
        except UnreadableRecord:
            record = None
        if record is not None and record["status"] in ("finished", "diverged"):
            done += 1
        else:
            pending.append(spec)
    rates: dict[str, float] = {}
    for spec in pending:
        cls = get_method(spec.method)
        planned = cls(cls.Hparams(**spec.hparams)).planned_epochs(spec)
        epochs += planned
        loaded = data.get(spec.dataset, spec.train_subset, spec.test_subset)
        shape = repr((spec.model, sorted(spec.model_kwargs.items()), spec.dataset,
                      spec.train_subset, spec.recipe.batch_size))
        if shape not in rates:
            rates[shape] = step_seconds(spec, loaded, options)
        steps = loaded.steps_per_epoch(spec.recipe.batch_size, spec.recipe.drop_last)
        evals = planned if options.eval_every else 1
        eval_steps = len(loaded.test_y) / spec.recipe.batch_size * EVAL_COST
        seconds += rates[shape] * (planned * steps + evals * eval_steps)
    device = options.device.type
    if device == "cpu":
        n = torch.get_num_threads()
        decided = threads_decided_by()
        device = f"cpu, {n} thread{'s' if n > 1 else ''}" + (f" ({decided})" if decided else "")
    return GridEstimate(len(specs), done, len(pending), epochs, seconds, device)
