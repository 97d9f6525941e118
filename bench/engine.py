"""The one training loop every method uses, with per-epoch checkpoints for exact resume.

Data stays on the device (``bench.data.DeviceData``); on CUDA the loop runs with
channels_last tensors in bfloat16 autocast with fused optimisers, and optionally under
``torch.compile``. The loop never syncs with the host inside an epoch: loss and accuracy
are summed on the device and read once per epoch. Reported accuracy is the final epoch's.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from bench.data import DeviceData
from bench.fsutil import write_atomic
from bench.recipe import Recipe, lr_factor


class Diverged(Exception):
    """Training produced a non-finite loss; the run is recorded as diverged."""


@dataclass(frozen=True)
class EngineOptions:
    """How to run, as opposed to what to compute: none of this enters a run key.

    The speed switches change rounding, not the computation: ``channels_last`` (NHWC
    tensors), ``bf16`` (bfloat16 autocast) and ``fused_optimizer`` (one kernel per
    optimiser step). ``None`` means "on CUDA only": CPUs without bfloat16 units run bf16
    about 10x slower, and torch 2.13's oneDNN (AVX2) gets channels_last wrong on CPU: with
    2 threads its conv weight gradients are off by up to 6.5% (tests/test_speed_switches),
    and its 1x1-convolution backward hangs or crashes on narrow layers (ResNet-20 at width
    0.25). So CPU runs stay float32 NCHW unless asked.
    ``compile`` wraps the model in ``torch.compile`` (inductor); compiled graphs are cached
    on disk, so later runs of a grid reuse them (see :func:`compile_model`).
    ``cuda_graphs`` (None: on whenever compiling on CUDA) replays each compiled forward and
    backward as one CUDA graph ("reduce-overhead"): at CIFAR sizes a step launches hundreds
    of small kernels and the host's launching, not the GPU, sets the pace.
    ``cudnn_benchmark`` (None: on CUDA) lets cuDNN time its convolution algorithms once per
    shape and keep the fastest; it is process-wide (see :func:`configure_backends`).
    """

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    compile: bool = False
    channels_last: bool | None = None
    bf16: bool | None = None
    fused_optimizer: bool | None = None
    cuda_graphs: bool | None = None
    cudnn_benchmark: bool | None = None
    progress: bool = False
    eval_every: int = 1
    eval_batch_size: int = 1000

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def use_channels_last(self) -> bool:
        return self.cuda if self.channels_last is None else self.channels_last

    @property
    def use_bf16(self) -> bool:
        return self.cuda if self.bf16 is None else self.bf16

    @property
    def use_fused_optimizer(self) -> bool:
        return self.cuda if self.fused_optimizer is None else self.fused_optimizer

    @property
    def use_cuda_graphs(self) -> bool:
        return self.compile and self.cuda and self.cuda_graphs is not False

    @property
    def use_cudnn_benchmark(self) -> bool:
        return self.cuda and self.cudnn_benchmark is not False

    def plain(self) -> EngineOptions:
        """The same options with every speed switch off: float32, NCHW, no compile."""
        return replace(self, compile=False, channels_last=False, bf16=False,
                       fused_optimizer=False, cuda_graphs=False, cudnn_benchmark=False)

    def switches(self) -> dict[str, bool]:
        """The speed switches as they resolve on this device (stored in every record)."""
        return {"compile": self.compile, "cuda_graphs": self.use_cuda_graphs,
                "channels_last": self.use_channels_last, "bf16": self.use_bf16,
                "fused_optimizer": self.use_fused_optimizer,
                "cudnn_benchmark": self.use_cudnn_benchmark}


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


def autocast(options: EngineOptions) -> contextlib.AbstractContextManager:
    """bfloat16 autocast where ``options`` ask for it, else nothing (float32)."""
    if options.use_bf16:
        return torch.autocast(options.device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def configure_backends(options: EngineOptions) -> None:
    """Process-wide library settings, set once per command: ``cudnn.benchmark`` as
    ``options`` resolve it (every step of a run has the same shapes, so timing the
    algorithms once pays)."""
    torch.backends.cudnn.benchmark = options.use_cudnn_benchmark


def prepare_model(model: nn.Module, options: EngineOptions) -> nn.Module:
    """Move the model to the device (channels_last where ``options`` ask for it)."""
    model = model.to(options.device)
    if options.use_channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def model_input(x: Tensor, options: EngineOptions) -> Tensor:
    """An input batch in the memory layout the model was prepared for."""
    if options.use_channels_last and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def compile_model(model: nn.Module, options: EngineOptions) -> nn.Module:
    """What a training loop calls: ``model`` itself, or with ``options.compile``
    ``torch.compile(model)`` with inductor's on-disk cache kept across processes.

    Unless ``TORCHINDUCTOR_CACHE_DIR`` is set, the cache lives in
    ``~/.cache/bench/inductor``, so every run of a grid after the first of an
    architecture and method finds its kernels compiled already. Within a process, later
    models of the same class reuse the traced code; a grid's many variants (each top-k
    density is a constant of its graph) get room for up to 64 graphs per function. With
    CUDA graphs, every new model of a grid (new parameter addresses) records its graphs
    anew; the limit on such re-recordings is raised to match.
    """
    if not options.compile:
        return model
    import torch._dynamo.config as dynamo_config
    import torch._inductor.config as inductor_config

    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR",
                          str(Path.home() / ".cache" / "bench" / "inductor"))
    dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, 64)
    if not options.use_cuda_graphs:
        return torch.compile(model)
    triton = inductor_config.triton
    triton.cudagraph_unexpected_rerecord_limit = max(
        triton.cudagraph_unexpected_rerecord_limit, 100_000)
    return torch.compile(model, mode="reduce-overhead")


def step_begin(options: EngineOptions) -> None:
    """Mark a new training step for CUDA graphs (the last step's outputs may be reused)."""
    if options.use_cuda_graphs:
        torch.compiler.cudagraph_mark_step_begin()


def make_optimizer(
    params: Iterable[nn.Parameter], recipe: Recipe, options: EngineOptions
) -> torch.optim.Optimizer:
    """The recipe's optimiser over ``params``; fused kernels on CUDA."""
    params = list(params)
    extra: dict[str, Any] = {"fused": True} if options.use_fused_optimizer else {}
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
        with autocast(options):
            logits = model(model_input(x, options))
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

    forward = compile_model(model, options)
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
        clock = EpochClock(options.device)
        loss_sum = torch.zeros((), device=options.device)
        correct = torch.zeros((), device=options.device, dtype=torch.long)
        seen = 0
        for x, y in data.train_batches(recipe.batch_size, seed, epoch, recipe.augment):
            x = model_input(x, options)
            step_begin(options)
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
        clock.stop()
        train_loss = loss_sum.item() / seen  # the epoch's one host sync
        if not math.isfinite(train_loss):
            bar.close()
            raise Diverged(f"non-finite training loss in epoch {epoch + 1}")
        entry: dict[str, Any] = {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            "train_accuracy": 100.0 * correct.item() / seen,
            "lr": lr,
            "train_seconds": clock.seconds(),
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
    write_atomic(path, lambda f: torch.save(state, f))


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
