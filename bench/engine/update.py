"""The optimiser's update of a training step (:class:`Update`): torch's own
``optimizer.step()``, or under ``--compile`` the same arithmetic compiled into one graph;
with float16's loss scaling, either one is stepped through the scaler (unscaled gradients,
skipped where they are not finite, the scale updated).

Compiled, the update is torch's functional SGD or AdamW (foreach) over the parameters'
tensors, so inductor fuses it into a few kernels instead of a Python loop over every
parameter. The graph is keyed by the tensors' shapes, not by the optimiser object: every
run of a grid with one architecture (and every epoch's new stack of a packed group) reuses
it, where compiling ``optimizer.step`` itself recompiles for each new optimiser and falls
back to eager once dynamo's ``recompile_limit`` is reached. The learning rate is a device
tensor, so the schedule's new rate at each step changes data, not the graph.

The optimiser's state is made before the first compiled step as torch makes it on its
first step (zero momentum buffers, zero moments and step counts), which gives the same
numbers: a zero buffer times the momentum plus the gradient is the gradient that torch
copies into a new buffer (without dampening, which the recipes never set). Checkpoints
and packing keep reading the optimiser they always did. On CUDA with CUDA graphs, only
the forward and backward are replayed as graphs; the update, which mutates its inputs in
place, runs as compiled kernels outside them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.optim.adamw import adamw
from torch.optim.sgd import sgd

from bench.engine.options import EngineOptions, compile_function


class Update:
    """``update(lr)``: one optimiser step at learning rate ``lr`` with the gradients the
    parameters hold; compiled where ``options.compile`` asks for it. With a ``scaler``
    (float16), :meth:`backward` scales the loss and the step goes through
    ``scaler.step`` and ``scaler.update``, as torch's automatic mixed precision does it."""

    def __init__(self, optimizer: torch.optim.Optimizer, options: EngineOptions,
                 scaler: torch.amp.GradScaler | None = None) -> None:
        self.optimizer = optimizer
        self.scaler = scaler
        self.compiled = options.compile
        self._step: Any = _CompiledStep(self) if self.compiled else optimizer
        if self.compiled and not isinstance(optimizer, torch.optim.SGD | torch.optim.AdamW):
            raise TypeError(f"no compiled update for {type(optimizer).__name__}")
        if self.compiled and any(g.get("dampening", 0) for g in optimizer.param_groups):
            raise ValueError("the compiled SGD update needs dampening 0 (torch's first step "
                             "copies the gradient undamped into a new buffer)")
        self._lr = torch.zeros((), dtype=torch.float64, device=options.device)

    def backward(self, loss: Tensor) -> None:
        """The loss's gradients (of the scaled loss where the loss is scaled)."""
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def __call__(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr  # what a checkpoint of the optimiser stores
        if self.scaler is None:
            self._step.step()
            return
        self.scaler.step(self._step)  # unscales, and skips a step with inf or NaN gradients
        self.scaler.update()

    def compiled_step(self) -> None:
        """The compiled update at the last learning rate given (see :class:`_CompiledStep`)."""
        lr = self.optimizer.param_groups[0]["lr"]
        self._lr.fill_(lr)
        for group in self.optimizer.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if isinstance(self.optimizer, torch.optim.AdamW):
                self._adamw(group, params)
            else:
                self._sgd(group, params)

    def _sgd(self, group: dict[str, Any], params: list[Tensor]) -> None:
        buffers: list[Tensor | None] = [None] * len(params)
        if group["momentum"] != 0:
            buffers = [self._state(p, "momentum_buffer") for p in params]
        _compiled_sgd(params, [p.grad for p in params], buffers, self._lr,
                      group["weight_decay"], group["momentum"], group["dampening"],
                      group["nesterov"], group["maximize"])

    def _adamw(self, group: dict[str, Any], params: list[Tensor]) -> None:
        moments = [self._state(p, "exp_avg") for p in params]
        squares = [self._state(p, "exp_avg_sq") for p in params]
        largest = [self._state(p, "max_exp_avg_sq") for p in params] if group["amsgrad"] else []
        steps = [self._step_count(p) for p in params]
        beta1, beta2 = group["betas"]
        _compiled_adamw(params, [p.grad for p in params], moments, squares, largest, steps,
                        self._lr, beta1, beta2, group["weight_decay"], group["eps"],
                        group["amsgrad"], group["maximize"])

    def _state(self, param: Tensor, key: str) -> Tensor:
        """The state tensor ``key`` of ``param``, made as torch makes it (zeros) if new."""
        state = self.optimizer.state[param]
        if key not in state:
            state[key] = torch.zeros_like(param, memory_format=torch.preserve_format)
        return state[key]

    def _step_count(self, param: Tensor) -> Tensor:
        """AdamW's step count of ``param``: a scalar on the parameter's device, as torch's
        "capturable" AdamW keeps it (the only one taking a tensor learning rate), in float64:
        capturable AdamW computes its bias corrections in the count's precision, where
        torch's eager AdamW takes them in Python floats (float32 counts change the update
        in its sixth digit)."""
        state = self.optimizer.state[param]
        if "step" not in state:
            state["step"] = torch.zeros((), dtype=torch.float64, device=param.device)
        elif state["step"].device != param.device or state["step"].dtype != torch.float64:
            state["step"] = state["step"].to(param.device, torch.float64)  # from a checkpoint
        return state["step"]


class _CompiledStep:
    """The compiled update as the scaler steps an optimiser: its parameter groups are the
    optimiser's (``unscale_`` walks them) and ``step()`` runs the compiled update."""

    def __init__(self, update: Update) -> None:
        self.update = update

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.update.optimizer.param_groups

    def step(self) -> None:
        self.update.compiled_step()


def _sgd_update(params: list[Tensor], grads: list[Tensor], buffers: list[Tensor | None],
                lr: Tensor, weight_decay: float, momentum: float, dampening: float,
                nesterov: bool, maximize: bool) -> None:
    with torch.no_grad():
        sgd(params, grads, buffers, foreach=True, weight_decay=weight_decay, momentum=momentum,
            lr=lr, dampening=dampening, nesterov=nesterov, maximize=maximize)


def _adamw_update(params: list[Tensor], grads: list[Tensor], moments: list[Tensor],
                  squares: list[Tensor], largest: list[Tensor], steps: list[Tensor],
                  lr: Tensor, beta1: float, beta2: float, weight_decay: float, eps: float,
                  amsgrad: bool, maximize: bool) -> None:
    with torch.no_grad():
        adamw(params, grads, moments, squares, largest, steps, foreach=True,
              capturable=True, amsgrad=amsgrad, beta1=beta1, beta2=beta2, lr=lr,
              weight_decay=weight_decay, eps=eps, maximize=maximize)


def _lazily_compiled(function: Callable[..., None]) -> Callable[..., None]:
    """``function`` compiled on its first call (module import stays free of dynamo)."""
    compiled: list[Callable[..., None]] = []

    def call(*args: Any) -> None:
        if not compiled:
            compiled.append(compile_function(function, cuda_graphs=False))
        compiled[0](*args)

    return call


_compiled_sgd = _lazily_compiled(_sgd_update)
_compiled_adamw = _lazily_compiled(_adamw_update)
