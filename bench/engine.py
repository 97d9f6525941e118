"""The one training loop every method uses, with per-epoch checkpoints for exact resume.

Data stays on the device (``bench.data.DeviceData``); on CUDA the loop runs in
bfloat16 autocast with channels_last tensors and, optionally, ``torch.compile``.
The loop never syncs with the host inside an epoch: loss and accuracy are summed
on the device and read once per epoch. Reported accuracy is the final epoch's.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from bench.data import DeviceData
from bench.recipe import Recipe, lr_factor


class Diverged(Exception):
    """Training produced a non-finite loss; the run is recorded as diverged."""


@dataclass(frozen=True)
class EngineOptions:
    """How to run, as opposed to what to compute: none of this enters a run key."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    compile: bool = False
    progress: bool = False
    eval_every: int = 1
    eval_batch_size: int = 1000

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"


@dataclass
class TrainResult:
    """What one training phase did: per-epoch log and its cost."""

    log: list[dict[str, Any]]
    epochs: int
    steps: int
    seconds: float
    resumed_at_epoch: int = 0
    snapshots: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict, repr=False)


@dataclass
class _Progress:
    """How far a phase got: what a checkpoint restores besides model and optimiser."""

    epoch: int = 0
    step: int = 0
    seconds: float = 0.0
    log: list[dict[str, Any]] = field(default_factory=list)
    snapshots: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)

    def result(self, epochs: int, resumed_at_epoch: int) -> TrainResult:
        return TrainResult(self.log, epochs, self.step, self.seconds, resumed_at_epoch,
                           self.snapshots)


def state_snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of the model's state (for rewinding)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


@dataclass(frozen=True)
class Accuracy:
    """Test-set accuracy in percent (top-5 only where there are more than 10 classes)."""

    top1: float
    top5: float | None
    loss: float


def autocast(options: EngineOptions) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on CUDA, nothing on CPU (CPU runs stay float32 and deterministic)."""
    if options.cuda:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def prepare_model(model: nn.Module, options: EngineOptions) -> nn.Module:
    """Move the model to the device (channels_last on CUDA)."""
    model = model.to(options.device)
    if options.cuda:
        model = model.to(memory_format=torch.channels_last)
    return model


def make_optimizer(
    params: Iterable[nn.Parameter], recipe: Recipe, options: EngineOptions
) -> torch.optim.Optimizer:
    """The recipe's optimiser over ``params``; fused kernels on CUDA."""
    params = list(params)
    extra: dict[str, Any] = {"fused": True} if options.cuda else {}
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay, **extra)
    return torch.optim.SGD(
        params,
        lr=recipe.lr,
        momentum=recipe.momentum,
        weight_decay=recipe.weight_decay,
        nesterov=recipe.optimizer == "nesterov",
        **extra,
    )


@torch.no_grad()
def evaluate(model: nn.Module, data: DeviceData, options: EngineOptions) -> Accuracy:
    """Top-1 (and top-5) accuracy in percent and mean loss on the whole test split."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=options.device, dtype=torch.float64)
    top1 = torch.zeros((), device=options.device, dtype=torch.long)
    top5 = torch.zeros((), device=options.device, dtype=torch.long)
    seen = 0
    use_top5 = data.num_classes > 10
    for x, y in data.test_batches(options.eval_batch_size):
        if options.cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(options):
            logits = model(x)
        logits = logits.float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
        top1 += (logits.argmax(1) == y).sum()
        if use_top5:
            top5 += (logits.topk(5, dim=1).indices == y[:, None]).any(1).sum()
        seen += len(y)
    model.train(was_training)
    return Accuracy(
        top1=100.0 * top1.item() / seen,
        top5=100.0 * top5.item() / seen if use_top5 else None,
        loss=loss_sum.item() / seen,
    )


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
) -> TrainResult:
    """Train ``model`` in place for ``recipe.epochs`` epochs on ``data``.

    ``params`` (default: every parameter that requires grad) is what the optimiser
    sees. With ``checkpoint``, the state after every epoch is written there and a
    later call with the same path resumes after the last finished epoch; a
    checkpoint of a finished phase just restores the final state. The model's state at
    the end of each epoch in ``snapshot_epochs`` (0: before training) is returned in
    ``result.snapshots`` and survives a resume (LTH rewinding).
    """
    params = [p for p in (params if params is not None else model.parameters()) if p.requires_grad]
    optimizer = make_optimizer(params, recipe, options)
    steps_per_epoch = data.steps_per_epoch(recipe.batch_size)
    progress = _load_checkpoint(checkpoint, recipe, model, optimizer)
    start_epoch, step = progress.epoch, progress.step
    if start_epoch >= recipe.epochs:
        return progress.result(recipe.epochs, start_epoch)
    if start_epoch == 0 and 0 in snapshot_epochs:
        progress.snapshots[0] = state_snapshot(model)

    forward = torch.compile(model) if options.compile else model
    bar = tqdm(
        total=recipe.epochs * steps_per_epoch,
        initial=start_epoch * steps_per_epoch,
        desc=description,
        unit="step",
        leave=False,
        disable=not options.progress,
        dynamic_ncols=True,
    )
    model.train()
    for epoch in range(start_epoch, recipe.epochs):
        t0 = time.perf_counter()
        loss_sum = torch.zeros((), device=options.device)
        correct = torch.zeros((), device=options.device, dtype=torch.long)
        seen = 0
        for x, y in data.train_batches(recipe.batch_size, seed, epoch, recipe.augment):
            if options.cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            lr = recipe.lr * lr_factor(recipe, step, steps_per_epoch)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with autocast(options):
                logits = forward(x)
                loss = F.cross_entropy(logits.float(), y, label_smoothing=recipe.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * len(y)
            correct += (logits.detach().argmax(1) == y).sum()
            seen += len(y)
            step += 1
            bar.update(1)
        train_loss = loss_sum.item() / seen
        if not math.isfinite(train_loss):
            bar.close()
            raise Diverged(f"non-finite training loss in epoch {epoch + 1}")
        entry: dict[str, Any] = {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            "train_accuracy": 100.0 * correct.item() / seen,
            "lr": lr,
        }
        last = epoch + 1 == recipe.epochs
        if last or (options.eval_every > 0 and (epoch + 1) % options.eval_every == 0):
            acc = evaluate(model, data, options)
            entry["test_accuracy"] = acc.top1
            entry["test_loss"] = acc.loss
        entry["seconds"] = time.perf_counter() - t0
        progress.epoch, progress.step = epoch + 1, step
        progress.seconds += entry["seconds"]
        progress.log.append(entry)
        if epoch + 1 in snapshot_epochs:
            progress.snapshots[epoch + 1] = state_snapshot(model)
        bar.set_postfix(loss=f"{train_loss:.3f}", acc=f"{entry.get('test_accuracy', 0):.1f}")
        if checkpoint is not None:
            _save_checkpoint(checkpoint, recipe, model, optimizer, progress)
    bar.close()
    return progress.result(recipe.epochs, start_epoch)


def _save_checkpoint(
    path: Path,
    recipe: Recipe,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    progress: _Progress,
) -> None:
    state = {
        "recipe": recipe.as_dict(),
        "progress": asdict(progress),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _load_checkpoint(
    path: Path | None, recipe: Recipe, model: nn.Module, optimizer: torch.optim.Optimizer
) -> _Progress:
    """Restore model, optimiser and progress from ``path``; a fresh start if absent or stale."""
    if path is None or not path.exists():
        return _Progress()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a torn or foreign file: start the phase again
        return _Progress()
    if state.get("recipe") != recipe.as_dict():
        return _Progress()
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    return _Progress(**state["progress"])
