"""How the engine runs (:class:`EngineOptions`, none of it in a run key) and what its speed
switches do: the precision (bfloat16 or float16 autocast), channels_last layout, cuDNN
autotuning, ``torch.compile``."""

from __future__ import annotations

import contextlib
import importlib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, TypeVar, get_args

import torch
from torch import Tensor, nn

from bench.errors import BenchError
from bench.hostmem import tune_host_malloc

_F = TypeVar("_F")
Precision = Literal["float32", "bfloat16", "float16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
AUTOCAST_DTYPES: dict[str, torch.dtype | None] = {
    "float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class EngineOptions:
    """How to run, as opposed to what to compute: none of this enters a run key.

    The speed switches change rounding, not the computation: ``channels_last`` (NHWC
    tensors), ``precision`` and ``fused_optimizer`` (torch's one-kernel optimiser step;
    compiling replaces it by its own fused update). ``None`` means "on CUDA only": CPUs
    without bfloat16 units run bf16 about 10x slower, and torch 2.13's oneDNN (AVX2) gets
    channels_last wrong on CPU: with 2 threads its conv weight gradients are off by up to
    6.5% (tests/test_speed_switches), and its 1x1-convolution backward hangs or crashes on
    narrow layers (ResNet-20 at width 0.25). So CPU runs stay float32 NCHW unless asked.
    ``precision`` (None: "bfloat16" on CUDA, "float32" elsewhere) is the forward pass's
    autocast type; "float16" adds dynamic loss scaling (:class:`torch.amp.GradScaler` with
    torch's defaults: scale 2**16, halved and the step skipped when a gradient is not
    finite, doubled after 2000 finite steps), as the PX authors train. Its scaler reads on
    the host whether the gradients are finite, once a step (not with CUDA's fused
    optimisers, which take the scale themselves), and its runs are not packed (the scaler
    skips steps run by run).
    ``compile`` compiles each training step with ``torch.compile`` (inductor): the model's
    forward with its loss (:mod:`bench.engine.step`), their backward, and the optimiser's
    update (:mod:`bench.engine.update`); compiled graphs are cached on disk, so later runs
    of a grid reuse them (see :func:`compile_function`).
    ``cuda_graphs`` (None: on whenever compiling on CUDA) replays each compiled forward and
    backward as one CUDA graph ("reduce-overhead"): at CIFAR sizes a step launches hundreds
    of small kernels and the host's launching, not the GPU, sets the pace.
    ``cudnn_benchmark`` (None: on CUDA) lets cuDNN time its convolution algorithms once per
    shape and keep the fastest; it is process-wide (see :func:`configure_backends`).
    """

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    compile: bool = False
    channels_last: bool | None = None
    precision: Precision | None = None
    fused_optimizer: bool | None = None
    cuda_graphs: bool | None = None
    cudnn_benchmark: bool | None = None
    progress: bool = False
    eval_every: int = 1
    eval_batch_size: int = 1000
    pack: int = 1
    """Runs trained together in one vmapped step (``bench run --pack``). A packed step
    rounds differently from one run's, so K > 1 is part of the numeric environment: a
    packed and an unpacked run of one spec are never compared to the bit."""

    def __post_init__(self) -> None:
        if self.precision is not None and self.precision not in PRECISIONS:
            raise BenchError(f"unknown precision {self.precision!r}; valid: "
                             f"{', '.join(PRECISIONS)}")

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def use_channels_last(self) -> bool:
        return self.cuda if self.channels_last is None else self.channels_last

    @property
    def use_precision(self) -> str:
        """The precision as it resolves on this device."""
        if self.precision is not None:
            return self.precision
        return "bfloat16" if self.cuda else "float32"

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The forward pass's autocast type; None: float32, no autocast."""
        return AUTOCAST_DTYPES[self.use_precision]

    @property
    def loss_scaling(self) -> bool:
        """Whether the loss is scaled (float16: :class:`torch.amp.GradScaler`)."""
        return self.use_precision == "float16"

    @property
    def use_fused_optimizer(self) -> bool:
        if self.compile:
            return False  # the compiled update (bench.engine.update) steps instead
        return self.cuda if self.fused_optimizer is None else self.fused_optimizer

    @property
    def use_cuda_graphs(self) -> bool:
        return self.compile and self.cuda and self.cuda_graphs is not False

    @property
    def use_cudnn_benchmark(self) -> bool:
        return self.cuda and self.cudnn_benchmark is not False

    def plain(self) -> EngineOptions:
        """The same options with every speed switch off: float32, NCHW, no compile."""
        return replace(self, compile=False, channels_last=False, precision="float32",
                       fused_optimizer=False, cuda_graphs=False, cudnn_benchmark=False)

    def switches(self) -> dict[str, bool | int]:
        """The speed switches as they resolve on this device (stored in every record and in
        the numeric environment's fingerprint). float16 shows as ``fp16`` and ``pack`` as K
        only where they are on, so other records keep the fingerprints they had."""
        out: dict[str, bool | int] = {
            "compile": self.compile, "cuda_graphs": self.use_cuda_graphs,
            "channels_last": self.use_channels_last,
            "bf16": self.use_precision == "bfloat16",
            "fused_optimizer": self.use_fused_optimizer,
            "cudnn_benchmark": self.use_cudnn_benchmark}
        if self.loss_scaling:
            out["fp16"] = True
        if self.pack > 1:
            out["pack"] = self.pack
        return out


def autocast(options: EngineOptions) -> contextlib.AbstractContextManager:
    """Autocast to the options' precision (bfloat16 or float16), else nothing (float32)."""
    if options.autocast_dtype is not None:
        return torch.autocast(options.device.type, dtype=options.autocast_dtype)
    return contextlib.nullcontext()


def grad_scaler(options: EngineOptions) -> torch.amp.GradScaler | None:
    """float16's dynamic loss scaling (torch's default settings, as the PX authors use
    them), else None."""
    return torch.amp.GradScaler(options.device.type) if options.loss_scaling else None


def configure_backends(options: EngineOptions) -> None:
    """Process-wide library settings, set once per command: ``cudnn.benchmark`` as
    ``options`` resolve it (every step of a run has the same shapes, so timing the
    algorithms once pays), and glibc's allocator tuned for training loops
    (:mod:`bench.hostmem`: large temporaries stay in the heap between steps). With
    ``compile``, dynamo and inductor are imported here (about 2 s), not in the first run's
    :func:`torch.compile` call, where the time was booked as that run's search."""
    torch.backends.cudnn.benchmark = options.use_cudnn_benchmark
    tune_host_malloc()
    if options.compile:
        importlib.import_module("torch._inductor.compile_fx")  # imports dynamo too


def prepare_model(model: nn.Module, options: EngineOptions) -> nn.Module:
    """Move the model to the device (channels_last where ``options`` ask for it)."""
    model = model.to(options.device)
    if options.use_channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def model_input(x: Tensor, options: EngineOptions) -> Tensor:
    """An input batch in the memory layout the model was prepared for."""
    return input_layout(x, options.use_channels_last)


def input_layout(x: Tensor, channels_last: bool) -> Tensor:
    """An image batch ``x`` laid out NHWC with ``channels_last``, else as it is."""
    if channels_last and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def compile_model(model: nn.Module, options: EngineOptions) -> nn.Module:
    """What a training loop calls: ``model`` itself, or with ``options.compile``
    ``torch.compile(model)`` as :func:`compile_function` compiles."""
    return compile_function(model, options.use_cuda_graphs) if options.compile else model


def compile_function(function: _F, cuda_graphs: bool) -> _F:
    """``torch.compile(function)`` with inductor's on-disk cache kept across processes,
    replayed as CUDA graphs ("reduce-overhead") with ``cuda_graphs``.

    Unless ``TORCHINDUCTOR_CACHE_DIR`` is set, the cache lives in
    ``~/.cache/bench/inductor``, so every run of a grid after the first of an
    architecture and method finds its kernels compiled already. Within a process, later
    models of the same class reuse the traced code; a grid's many variants (each top-k
    density is a constant of its graph) get room for up to 64 graphs per function. With
    CUDA graphs, every new model of a grid (new parameter addresses) records its graphs
    anew; the limit on such re-recordings is raised to match.
    """
    import torch._dynamo.config as dynamo_config
    import torch._inductor.config as inductor_config

    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR",
                          str(Path.home() / ".cache" / "bench" / "inductor"))
    dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, 64)
    if not cuda_graphs:
        return torch.compile(function)
    triton = inductor_config.triton
    triton.cudagraph_unexpected_rerecord_limit = max(
        triton.cudagraph_unexpected_rerecord_limit, 100_000)
    return torch.compile(function, mode="reduce-overhead")


def step_begin(options: EngineOptions) -> None:
    """Mark a new training step for CUDA graphs (the last step's outputs may be reused)."""
    if options.use_cuda_graphs:
        torch.compiler.cudagraph_mark_step_begin()
