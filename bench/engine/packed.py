"""Several runs of one architecture and recipe trained in one step: :func:`train_packed`.

The K models' parameters and buffers are stacked (``torch.func.stack_module_state``) and
one ``vmap`` of ``functional_call`` runs all K forward passes, each on its own batch (its
own seed's data order and augmentation), as one batched computation: grouped kernels
instead of K small ones. The summed loss's gradient is each model's own gradient (no
parameter is shared), and the optimiser's update is elementwise (SGD with momentum,
weight decay, Nesterov, AdamW), so one optimiser over the stacked tensors does what K
optimisers would; masks are stacked buffers, so pruned weights stay zero.

Each epoch starts from and ends in the runs' own models and optimisers: the stack is made
from them and written back, then every run's epoch is booked by the one loop's code
(evaluation, log, snapshots, checkpoint), so a packed run resumes, evaluates and records
exactly like a run trained alone, and a run that diverges leaves the pack while the others
go on. Same numbers as one at a time up to rounding (batched kernels sum in another order).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import Tensor
from torch.func import functional_call, stack_module_state, vmap
from tqdm.auto import tqdm

from bench.engine.checkpoints import TrainResult
from bench.engine.loop import (
    Diverged,
    EpochClock,
    EpochSums,
    Phase,
    epoch_entry,
    record_epoch,
)
from bench.engine.optimizer import make_optimizer
from bench.engine.options import autocast, compile_function, step_begin
from bench.engine.step import classification_loss, loss_settings
from bench.engine.update import Update
from bench.recipe import lr_factor


def pack_signature(phase: Phase) -> tuple[Any, ...]:
    """What runs packed together must share: model class and every tensor's name, shape,
    dtype and trainability, the recipe, the data, the engine options and the epoch they
    start at. Phases with the same signature can be packed; None-valued buffers count."""
    model = phase.model
    trained = {id(p) for group in phase.optimizer.param_groups for p in group["params"]}
    tensors = tuple((name, tuple(t.shape), t.dtype, id(t) in trained)
                    for name, t in model.named_parameters())
    buffers = tuple((name, tuple(t.shape), t.dtype) for name, t in model.named_buffers())
    absent = tuple(f"{prefix}.{key}" for prefix, module in model.named_modules()
                   for key, value in [*module._buffers.items(), *module._parameters.items()]
                   if value is None)
    return (type(model), repr(getattr(model, "arch", None)), tensors, buffers, absent,
            tuple(_trained_names(phase)), phase.recipe, id(phase.data), phase.options,
            phase.start_epoch, phase.progress.step)


def packable(phase: Phase) -> str | None:
    """Why ``phase`` cannot be packed (None: it can). Trainable mask scores (Edge-Popup,
    PEMN) take a per-layer top-k through a custom autograd function, which vmap does not
    batch; they train one at a time, as do float16 runs."""
    for name, param in phase.model.named_parameters():
        if name.endswith("scores") and param.requires_grad:
            return "trains mask scores (top-k per forward pass)"
    if phase.recipe.optimizer not in ("sgd", "nesterov", "adamw"):
        return f"optimiser {phase.recipe.optimizer} is not known to be elementwise"
    if phase.options.loss_scaling:
        return "float16 loss scaling skips steps run by run (one scaler per run)"
    return None


@dataclass
class _Stack:
    """The stacked state of one epoch: parameters (leaves), buffers, and the optimiser."""

    names: list[str]
    trained: list[str]
    params: dict[str, Tensor]
    buffers: dict[str, Tensor]
    optimizer: torch.optim.Optimizer


def _trained_names(phase: Phase) -> list[str]:
    by_id = {id(p): name for name, p in phase.model.named_parameters()}
    return [by_id[id(p)] for group in phase.optimizer.param_groups for p in group["params"]]


def _stack(phases: Sequence[Phase]) -> _Stack:
    """Stack the models' tensors and their optimisers' state (same order in every one)."""
    models = [p.model for p in phases]
    params, buffers = stack_module_state(models)  # detached copies; params require grad
    trained = _trained_names(phases[0])
    for name, tensor in params.items():
        tensor.requires_grad_(name in trained)
    first = phases[0]
    optimizer = make_optimizer([params[n] for n in trained], first.recipe, first.options)
    states = [p.optimizer.state_dict() for p in phases]
    packed_state: dict[int, dict[str, Any]] = {}
    for index in range(len(trained)):
        per_run = [s["state"].get(index) for s in states]
        if any(s is None for s in per_run):
            if any(s is not None for s in per_run):
                raise ValueError("packed runs must have the same optimiser state keys")
            continue
        packed_state[index] = {key: _stack_state([s[key] for s in per_run])
                               for key in per_run[0]}
    merged = optimizer.state_dict()
    merged["state"] = packed_state
    optimizer.load_state_dict(merged)
    return _Stack(list(params), trained, params, buffers, optimizer)


def _stack_state(values: list[Any]) -> Any:
    """Per-run optimiser state entries as one: tensors stacked, shared scalars (steps) kept."""
    first = values[0]
    if isinstance(first, Tensor) and first.dim() > 0:
        return torch.stack(values)
    if isinstance(first, Tensor):
        if not all(torch.equal(first, v) for v in values):
            raise ValueError("packed runs must share their optimiser step counts")
        return first.clone()
    if not all(v == first for v in values):
        raise ValueError("packed runs must share their optimiser's scalar state")
    return first


def _unstack(stack: _Stack, phases: Sequence[Phase]) -> None:
    """Write the stack back into every run's model and optimiser (their own tensors)."""
    packed = stack.optimizer.state_dict()
    with torch.no_grad():
        for k, phase in enumerate(phases):
            state = dict(phase.model.named_parameters())
            state.update(phase.model.named_buffers())
            for name, tensor in {**stack.params, **stack.buffers}.items():
                state[name].copy_(tensor[k])
            own = phase.optimizer.state_dict()
            own["state"] = {index: {key: value[k].clone() if isinstance(value, Tensor)
                                    and value.dim() > 0 else _copy(value)
                                    for key, value in entry.items()}
                            for index, entry in packed["state"].items()}
            phase.optimizer.load_state_dict(own)


def _copy(value: Any) -> Any:
    return value.clone() if isinstance(value, Tensor) else value


def _loss_function(phase: Phase) -> Callable[..., tuple[Tensor, Tensor]]:
    """``(params, buffers, x, y) -> (loss, correct predictions)`` of one model, for vmap:
    the loop's :func:`classification_loss` (from uint8 pixels) of the model with these
    tensors. bfloat16 autocast wraps the whole vmap instead, and the input stays NCHW
    (vmap's extra dimension has no channels_last layout)."""
    base = copy.deepcopy(phase.model).to("meta").train()
    settings = {**loss_settings(phase.recipe, phase.options, phase.data),
                "autocast_dtype": None, "channels_last": False}

    def loss(params: dict[str, Tensor], buffers: dict[str, Tensor], x: Tensor, y: Tensor
             ) -> tuple[Tensor, Tensor]:
        return classification_loss(partial(functional_call, base, (params, buffers)), x, y,
                                   **settings)

    return loss


def _packed_steps(phases: Sequence[Phase], stack: _Stack, epoch: int, step: int,
                  forward: Callable[..., tuple[Tensor, Tensor]], bar: Any
                  ) -> tuple[Tensor, Tensor, int, int, float]:
    """One epoch's optimiser steps for the whole pack: per-run device sums of loss and
    correct predictions (shape K), images per run, the next step and the last rate."""
    first = phases[0]
    recipe, options = first.recipe, first.options
    update = Update(stack.optimizer, options)
    k = len(phases)
    loss_sum = torch.zeros(k, device=options.device)
    correct = torch.zeros(k, device=options.device, dtype=torch.long)
    seen, lr = 0, recipe.lr
    streams = [p.data.train_batches(recipe.batch_size, p.seed, epoch, recipe.augment,
                                    normalized=False,  # the loss function normalises
                                    drop_last=recipe.drop_last)
               for p in phases]
    for batches in zip(*streams):
        xs = torch.stack([x for x, _ in batches])
        ys = torch.stack([y for _, y in batches])
        step_begin(options)
        lr = recipe.lr * lr_factor(recipe, step, first.steps_per_epoch)
        with autocast(options):
            losses, hits = forward(stack.params, stack.buffers, xs, ys)
        stack.optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()  # each model's gradient is its own loss's
        update(lr)
        loss_sum += losses.detach() * ys.shape[1]
        correct += hits
        seen += ys.shape[1]
        step += 1
        bar.update(1)
    return loss_sum, correct, seen, step, lr


def train_packed(phases: Sequence[Phase]) -> list[TrainResult | Diverged]:
    """Train phases of one :func:`pack_signature` together, epoch by epoch, each booked as if
    trained alone; a run's entry names the pack (``packed_runs``, ``packed_train_seconds``)
    and its ``train_seconds`` is its share of the pack's. A run that diverges gets its
    :class:`Diverged` in the returned list and leaves the pack."""
    results: list[TrainResult | Diverged | None] = [None] * len(phases)
    live = list(range(len(phases)))
    first = phases[0]
    recipe, options = first.recipe, first.options
    forward = vmap(_loss_function(first))
    if options.compile:
        forward = compile_function(forward, cuda_graphs=False)
    bar = tqdm(total=(recipe.epochs - first.start_epoch) * first.steps_per_epoch,
               desc=f"{len(phases)} packed", unit="step", leave=False,
               disable=not options.progress, dynamic_ncols=True)
    step = first.progress.step
    for epoch in range(first.start_epoch, recipe.epochs):
        pack = [phases[i] for i in live]
        t0 = time.perf_counter()
        clock = EpochClock(options.device)
        stack = _stack(pack)
        loss_sum, correct, seen, next_step, lr = _packed_steps(pack, stack, epoch, step,
                                                               forward, bar)
        _unstack(stack, pack)
        clock.stop()
        packed_seconds = clock.seconds()
        losses, corrects = loss_sum.tolist(), correct.tolist()  # the epoch's one host sync
        shared = (time.perf_counter() - t0) / len(pack)
        for slot, i in enumerate(list(live)):
            phase = phases[i]
            t1 = time.perf_counter()
            try:
                entry = epoch_entry(phase, epoch, EpochSums(losses[slot], corrects[slot], seen,
                                                            lr), packed_seconds / len(pack))
            except Diverged as exc:
                results[i] = exc
                live.remove(i)
                continue
            entry["packed_runs"] = len(pack)
            entry["packed_train_seconds"] = packed_seconds
            entry["seconds"] = shared + time.perf_counter() - t1
            record_epoch(phase, entry, next_step)
        step = next_step
        if not live:
            break
    bar.close()
    for i in live:
        phases[i].bar.close()
        results[i] = phases[i].progress.result(recipe.epochs, phases[i].start_epoch)
    return [r for r in results if r is not None]
