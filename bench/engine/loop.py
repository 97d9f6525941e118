"""The one training loop every method uses: :func:`train`, epoch by epoch, checkpointed.

The loop never syncs with the host inside an epoch: loss and accuracy are summed on the
device and read once per epoch; a non-finite loss raises :class:`Diverged`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from bench.data import DeviceData
from bench.engine.checkpoints import (
    Progress,
    TrainResult,
    load_checkpoint,
    progress_path,
    save_checkpoint,
    state_snapshot,
)
from bench.engine.evaluate import evaluate
from bench.engine.optimizer import make_optimizer
from bench.engine.options import EngineOptions, grad_scaler, step_begin
from bench.engine.step import LossFunction, loss_function
from bench.engine.update import Update
from bench.fsutil import write_json_atomic
from bench.integrity import seal
from bench.recipe import Recipe, lr_factor


class Diverged(Exception):
    """Training produced a non-finite loss; the run is recorded as diverged."""


class EpochClock:
    """Time of the training pass of an epoch: CUDA events on a GPU (device time from the
    first queued kernel to the last), ``perf_counter`` elsewhere. Read after a sync."""

    def __init__(self, device: torch.device) -> None:
        self.events = None
        if device.type == "cuda":
            self.events = (torch.cuda.Event(enable_timing=True),
                           torch.cuda.Event(enable_timing=True))
            self.events[0].record()
        self.t0, self.t1 = time.perf_counter(), 0.0

    def stop(self) -> None:
        if self.events is not None:
            self.events[1].record()
        self.t1 = time.perf_counter()

    def seconds(self) -> float:
        if self.events is not None:
            self.events[1].synchronize()
            return self.events[0].elapsed_time(self.events[1]) / 1000
        return self.t1 - self.t0


@dataclass
class Phase:
    """One call of :func:`train` (or one run of a packed group): what every epoch needs."""

    model: nn.Module
    loss: LossFunction
    optimizer: torch.optim.Optimizer
    update: Update
    data: DeviceData
    recipe: Recipe
    options: EngineOptions
    seed: int
    steps_per_epoch: int
    bar: Any
    progress: Progress
    start_epoch: int
    checkpoint: Path | None
    snapshot_epochs: tuple[int, ...]
    description: str
    evaluate_last: bool = True


@dataclass
class TrainRequest:
    """One training phase asked for: :func:`train`'s arguments, opened by :func:`open_phase`
    (the harness's packer collects these and trains several at once)."""

    model: nn.Module
    data: DeviceData
    recipe: Recipe
    seed: int
    options: EngineOptions
    params: Iterable[nn.Parameter] | None = None
    checkpoint: Path | None = None
    description: str = "train"
    snapshot_epochs: tuple[int, ...] = ()
    evaluate_last: bool = True
    share_key: str | None = None
    """Names a training other runs may ask for with the same inputs: a packer trains one of
    several equal requests (the engine alone just trains it)."""


def open_phase(request: TrainRequest, progress_bar: bool = True) -> Phase | TrainResult:
    """A phase ready for its first epoch left, or the finished phase's result.

    Builds the optimiser, restores the checkpoint and takes the epoch-0 snapshot; see
    :func:`train` for the arguments. ``progress_bar`` False leaves the bar to the caller.
    """
    r, model = request, request.model
    params = [p for p in (r.params if r.params is not None else model.parameters())
              if p.requires_grad]
    optimizer = make_optimizer(params, r.recipe, r.options)
    update = Update(optimizer, r.options, grad_scaler(r.options))
    steps_per_epoch = r.data.steps_per_epoch(r.recipe.batch_size, r.recipe.drop_last)
    progress = load_checkpoint(r.checkpoint, r.recipe, model, optimizer, update.scaler)
    start_epoch = progress.epoch
    if start_epoch >= r.recipe.epochs:
        return progress.result(r.recipe.epochs, start_epoch)
    if start_epoch == 0 and 0 in r.snapshot_epochs:
        progress.snapshots[0] = state_snapshot(model)
    bar = tqdm(
        total=r.recipe.epochs * steps_per_epoch,
        initial=start_epoch * steps_per_epoch,
        desc=r.description,
        unit="step",
        leave=False,
        disable=not (r.options.progress and progress_bar),
        dynamic_ncols=True,
    )
    return Phase(model, loss_function(r.recipe, r.options, r.data), optimizer,
                 update, r.data, r.recipe, r.options, r.seed,
                 steps_per_epoch, bar, progress, start_epoch, r.checkpoint, r.snapshot_epochs,
                 r.description, r.evaluate_last)


def train(
    model: nn.Module,
    data: DeviceData,
    recipe: Recipe,
    *,
    seed: int,
    options: EngineOptions,
    params: Iterable[nn.Parameter] | None = None,
    checkpoint: Path | None = None,
    description: str = "train",
    snapshot_epochs: tuple[int, ...] = (),
    evaluate_last: bool = True,
    share_key: str | None = None,
) -> TrainResult:
    """Train ``model`` in place for ``recipe.epochs`` epochs on ``data``.

    ``params`` (default: every parameter that requires grad) is what the optimiser
    sees. With ``checkpoint``, the state after every epoch is written there and a
    later call with the same path resumes after the last finished epoch; a
    checkpoint of a finished phase just restores the final state. The model's state at
    the end of each epoch in ``snapshot_epochs`` (0: before training) is returned in
    ``result.snapshots`` and survives a resume (LTH rewinding). ``evaluate_last`` False
    leaves the last epoch unevaluated (the harness evaluates the decoded artifact of the
    final model anyway and books that evaluation there). ``share_key``: see
    :class:`TrainRequest`.
    """
    phase = open_phase(TrainRequest(model, data, recipe, seed, options, params, checkpoint,
                                    description, snapshot_epochs, evaluate_last, share_key))
    return phase if isinstance(phase, TrainResult) else run_phase(phase)


def run_phase(phase: Phase) -> TrainResult:
    """Train an opened phase (:func:`open_phase`) to its last epoch."""
    options, recipe, model = phase.options, phase.recipe, phase.model
    model.train()
    step = phase.progress.step
    for epoch in range(phase.start_epoch, recipe.epochs):
        t0 = time.perf_counter()
        clock = EpochClock(options.device)
        loss_sum, correct, seen, step, lr = _steps(phase, epoch, step)
        clock.stop()
        entry = epoch_entry(phase, epoch, EpochSums(loss_sum.item(), correct.item(), seen, lr),
                            clock.seconds())
        entry["seconds"] = time.perf_counter() - t0
        record_epoch(phase, entry, step)
    phase.bar.close()
    return phase.progress.result(recipe.epochs, phase.start_epoch)


@dataclass(frozen=True)
class EpochSums:
    """What an epoch's steps summed on the device, read once: loss x images, correct, images."""

    loss_sum: float
    correct: float
    seen: int
    lr: float


def epoch_entry(phase: Phase, epoch: int, sums: EpochSums, train_seconds: float
                ) -> dict[str, Any]:
    """Epoch ``epoch``'s (0-based) log entry; evaluates on the test split at the last epoch
    (unless the phase says not to) and every ``eval_every`` epochs before it. A non-finite
    loss raises :class:`Diverged`."""
    recipe, options = phase.recipe, phase.options
    train_loss = sums.loss_sum / sums.seen
    if not math.isfinite(train_loss):
        phase.bar.close()
        raise Diverged(f"non-finite training loss in epoch {epoch + 1}")
    entry: dict[str, Any] = {
        "epoch": epoch + 1,
        "train_loss": train_loss,
        "train_accuracy": 100.0 * sums.correct / sums.seen,
        "lr": sums.lr,
        "train_seconds": train_seconds,
    }
    if phase.update.scaler is not None:  # float16: the loss scale the epoch ended with
        entry["loss_scale"] = phase.update.scaler.get_scale()
    last = epoch + 1 == recipe.epochs
    periodic = options.eval_every > 0 and (epoch + 1) % options.eval_every == 0
    if phase.evaluate_last if last else periodic:
        acc = evaluate(phase.model, phase.data, options)
        entry["test_accuracy"] = acc.top1
        entry["test_loss"] = acc.loss
    return entry


def _steps(phase: Phase, epoch: int, step: int) -> tuple[Tensor, Tensor, int, int, float]:
    """The optimiser steps of one epoch: the device sums of loss and correct predictions, the
    images seen, the next global step and the last learning rate."""
    recipe, options = phase.recipe, phase.options
    loss_sum = torch.zeros((), device=options.device)
    correct = torch.zeros((), device=options.device, dtype=torch.long)
    seen = 0
    lr = recipe.lr
    batches = phase.data.train_batches(recipe.batch_size, phase.seed, epoch, recipe.augment,
                                       normalized=False,  # the loss function normalises
                                       drop_last=recipe.drop_last)
    for x, y in batches:
        step_begin(options)
        lr = recipe.lr * lr_factor(recipe, step, phase.steps_per_epoch)
        loss, hits = phase.loss(phase.model, x, y)
        phase.optimizer.zero_grad(set_to_none=True)
        phase.update.backward(loss)
        phase.update(lr)
        loss_sum += loss.detach() * len(y)
        correct += hits
        seen += len(y)
        step += 1
        phase.bar.update(1)
    return loss_sum, correct, seen, step, lr


def record_epoch(phase: Phase, entry: dict[str, Any], step: int) -> None:
    """Book a finished epoch: progress and log, a snapshot if asked for, the checkpoint."""
    progress, snapshot_epochs, checkpoint = phase.progress, phase.snapshot_epochs, phase.checkpoint
    epoch = entry["epoch"]  # 1-based: the epochs finished
    progress.epoch, progress.step = epoch, step
    progress.seconds += entry["seconds"]
    progress.log.append(entry)
    if epoch in snapshot_epochs:
        progress.snapshots[epoch] = state_snapshot(phase.model)
    phase.bar.set_postfix(loss=f"{entry['train_loss']:.3f}",
                          acc=f"{entry.get('test_accuracy', 0):.1f}")
    if checkpoint is not None:
        save_checkpoint(checkpoint, phase.recipe, phase.model, phase.optimizer, progress,
                        phase.update.scaler)
        write_json_atomic(progress_path(checkpoint), seal({  # `bench status`: no torch.load
            "epoch": epoch, "epochs": phase.recipe.epochs, "seconds": progress.seconds,
            "time": time.time()}))
