"""How long a grid will take here, said before it starts: runs, epochs and a time.

The basis, timed on this device before the grid starts: each architecture's training step
as the run's method trains it (dense; a fixed mask; top-k scores for mask learners), the
median of 6 steps after 2 warm-up ones; each pruning-at-initialisation method's scoring,
one round timed and multiplied by its rounds; evaluation as timed on one evaluation batch,
every ``eval_every`` epochs before the last, then on the decoded artifact and on its first
batch for both models (the decode check). Compile time is not in it.
Measured against real runs by ``python -m bench.commands.estimate_check``.
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import torch
from torch import nn

from bench.context import RunContext
from bench.data import DeviceData
from bench.engine import EngineOptions, autocast, make_optimizer, model_input, prepare_model
from bench.engine.options import grad_scaler
from bench.engine.step import loss_function
from bench.engine.update import Update
from bench.models import build_model, prunable_layers
from bench.models.masked_weights import trainable_parameters
from bench.provenance import threads_decided_by
from bench.registry import get_method
from bench.store import RunSpec, RunStore, UnreadableRecord
from bench.wording import counted

if TYPE_CHECKING:
    from bench.harness import DataCache

WARMUP_STEPS = 2
TIMED_STEPS = 6


@dataclass
class GridEstimate:
    """What a grid holds and roughly what it costs on this device."""

    runs: int
    done: int
    to_train: int
    epochs: int
    seconds: float
    device: str
    per_run: dict[str, float] = field(default_factory=dict)
    """Each run still to train: its key and its estimated seconds."""

    def line(self) -> str:
        head = (f"{self.to_train} of {counted(self.runs, 'run')} to train "
                f"({counted(self.epochs, 'epoch')})")
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


def step_family(cls: type, density: float) -> str:
    """How a method's final model trains: ``top-k`` (mask learners), ``dense`` (density 1:
    no mask) or ``fixed mask`` (every other method)."""
    from bench.supermasks import MaskLearner

    if issubclass(cls, MaskLearner):
        return "top-k"
    return "dense" if density >= 1.0 else "fixed mask"


def _masked(model: nn.Module, family: str, density: float) -> nn.Module:
    """``model`` as ``family`` trains it: a random fixed mask or top-k scores at ``density``."""
    g = torch.Generator().manual_seed(0)
    for _, layer in prunable_layers(model):
        if family == "fixed mask":
            layer.set_mask(torch.rand(layer.weight.shape, generator=g) < density)
        elif family == "top-k":
            layer.weight.requires_grad_(False)
            layer.use_scores(density, g)
    return model


def _timed_model(spec: RunSpec, options: EngineOptions, family: str, num_classes: int
                 ) -> nn.Module:
    """``spec``'s model, built and prepared as ``family`` trains it, for timing."""
    model = build_model(spec.model, num_classes, seed=0, **spec.model_kwargs)
    return prepare_model(_masked(model, family, spec.density), options)


def step_seconds(spec: RunSpec, data: DeviceData, options: EngineOptions,
                 family: str = "dense") -> float:
    """Seconds of one training step of ``spec``'s model at its batch size, here, as
    ``family`` trains it: the median of :data:`TIMED_STEPS` after :data:`WARMUP_STEPS`."""
    model = _timed_model(spec, options, family, data.num_classes)
    eager = replace(options, compile=False)  # the engine's step, without compiling it here
    loss = loss_function(spec.recipe, eager, data)
    update = Update(make_optimizer(trainable_parameters(model), spec.recipe, eager), eager,
                    grad_scaler(eager))
    batches = itertools.chain.from_iterable(  # as many epochs as the timed steps need
        data.train_batches(spec.recipe.batch_size, 0, epoch, spec.recipe.augment,
                           normalized=False) for epoch in itertools.count())
    model.train()
    elapsed = []
    for _, (x, y) in zip(range(WARMUP_STEPS + TIMED_STEPS), batches):
        t0 = time.perf_counter()
        value, _ = loss(model, x, y)
        update.optimizer.zero_grad(set_to_none=True)
        update.backward(value)
        update(spec.recipe.lr)
        if options.cuda:
            torch.cuda.synchronize(options.device)
        elapsed.append(time.perf_counter() - t0)
    return statistics.median(elapsed[WARMUP_STEPS:] or elapsed)


@torch.no_grad()
def eval_image_seconds(spec: RunSpec, data: DeviceData, options: EngineOptions,
                       family: str = "dense") -> float:
    """Seconds to evaluate one test image of ``spec``'s model here: one evaluation batch
    (``options.eval_batch_size``, as :func:`bench.engine.evaluate` runs it) timed once, its
    first-call cost included as a run's first evaluation pays it."""
    model = _timed_model(spec, options, family, data.num_classes).eval()
    x, _ = next(data.test_batches(options.eval_batch_size))
    t0 = time.perf_counter()
    with autocast(options):
        model(model_input(x, options))
    if options.cuda:
        torch.cuda.synchronize(options.device)
    return (time.perf_counter() - t0) / len(x)


def eval_images(planned_epochs: int, test_images: int, options: EngineOptions) -> int:
    """Test images a run evaluates: the test split every ``eval_every`` epochs before the
    last (whose accuracy is the decoded artifact's), once on the decoded artifact, and the
    first evaluation batch through both the trained and the decoded model (the decode check)."""
    during = (planned_epochs - 1) // options.eval_every if options.eval_every > 0 else 0
    return (during + 1) * test_images + 2 * min(options.eval_batch_size, test_images)


def search_seconds(spec: RunSpec, data: DeviceData, options: EngineOptions,
                   store: RunStore) -> float:
    """Seconds a pruning-at-initialisation method scores for ``spec`` before it trains: one
    round timed (the method at ``rounds=1``) times its rounds; 0 for other methods."""
    from bench.pruning import PruneAtInit

    cls = get_method(spec.method)
    if not issubclass(cls, PruneAtInit):
        return 0.0
    hparams = cls.Hparams(**spec.hparams)
    rounds = getattr(hparams, "rounds", cls.rounds)
    method = cls(replace(hparams, rounds=1) if hasattr(hparams, "rounds") else hparams)
    method.rounds = 1
    model = build_model(spec.model, data.num_classes, seed=spec.seed,
                        bias_init=spec.recipe.bias_init, **spec.model_kwargs)
    model = prepare_model(model, options)
    ctx = RunContext(spec, model, data, spec.recipe, options, store)
    t0 = time.perf_counter()
    method.prune_model(model, ctx)
    if options.cuda:
        torch.cuda.synchronize(options.device)
    return (time.perf_counter() - t0) * rounds


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
    eval_rates: dict[str, float] = {}
    searches: dict[str, float] = {}
    per_run: dict[str, float] = {}
    for spec in pending:
        cls = get_method(spec.method)
        planned = cls(cls.Hparams(**spec.hparams)).planned_epochs(spec)
        epochs += planned
        loaded = data.get(spec.dataset, spec.train_subset, spec.test_subset)
        family = step_family(cls, spec.density)
        shape = repr((spec.model, sorted(spec.model_kwargs.items()), spec.dataset,
                      spec.train_subset, spec.recipe.batch_size, family))
        if shape not in rates:
            rates[shape] = step_seconds(spec, loaded, options, family)
            eval_rates[shape] = eval_image_seconds(spec, loaded, options, family)
        scoring = repr((spec.method, sorted(spec.hparams.items()), shape))
        if scoring not in searches:
            searches[scoring] = search_seconds(spec, loaded, options, store)
        steps = loaded.steps_per_epoch(spec.recipe.batch_size, spec.recipe.drop_last)
        evaluating = eval_rates[shape] * eval_images(planned, len(loaded.test_y), options)
        run_seconds = rates[shape] * planned * steps + evaluating + searches[scoring]
        per_run[spec.key] = run_seconds
        seconds += run_seconds
    device = options.device.type
    if device == "cpu":
        n = torch.get_num_threads()
        decided = threads_decided_by()
        device = f"cpu, {counted(n, 'thread')}" + (f" ({decided})" if decided else "")
    return GridEstimate(len(specs), done, len(pending), epochs, seconds, device, per_run)
