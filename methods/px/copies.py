"""PX's three networks: the gate network, the path-activation copy and the path-kernel copy."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from bench.api import (
    PRUNABLE_TYPES,
    classifier_name,
    scoring_copy,
    shortcut_norm_names,
)
from methods.px.variants import ACTIVATIONS, PXVariant, Role


def _record_gate(store: list[Tensor], module: nn.Module, inputs: tuple[Tensor, ...],
                 output: Tensor) -> None:
    store.append(inputs[0].detach() > 0)


def record_gates(gate_net: nn.Module, x: Tensor) -> dict[str, list[Tensor]]:
    """Copy 1's activation pattern on ``x``: per activation module, its ``input > 0`` per call.

    Hooks are attached for this forward pass only and always removed.
    """
    gates: dict[str, list[Tensor]] = {}
    handles = []
    try:
        for name, module in gate_net.named_modules():
            if isinstance(module, ACTIVATIONS):
                gates[name] = []
                handles.append(module.register_forward_hook(partial(_record_gate, gates[name])))
        with torch.no_grad():
            gate_net(x)
    finally:
        for handle in handles:
            handle.remove()
    return gates


class GateBank:
    """The gates of the current batch, handed out per activation module in call order."""

    def __init__(self) -> None:
        self._queues: dict[str, deque[Tensor]] = {}

    def load(self, gates: dict[str, list[Tensor]]) -> None:
        self._queues = {name: deque(calls) for name, calls in gates.items()}

    def take(self, name: str) -> Tensor:
        queue = self._queues.get(name)
        if not queue:
            raise RuntimeError(f"px: no recorded gate left for activation {name!r}")
        return queue.popleft()

    def check_consumed(self) -> None:
        left = [name for name, queue in self._queues.items() if queue]
        if left:
            raise RuntimeError(f"px: recorded gates of {left} were not used by copy 2")


class FixedGate(nn.Module):
    """Copy 2's stand-in for an activation: multiply by the gate copy 1 recorded."""

    def __init__(self, name: str, bank: GateBank) -> None:
        super().__init__()
        self.source = name
        self.bank = bank

    def forward(self, x: Tensor) -> Tensor:
        gate = self.bank.take(self.source)
        if gate.shape != x.shape:
            raise RuntimeError(f"px: gate of {self.source!r} has shape {tuple(gate.shape)}, "
                               f"activation input {tuple(x.shape)}")
        return x * gate.to(x.dtype)


def _replace(net: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(net.get_submodule(parent_name) if parent_name else net, child, new)


def _to_path_values(tensors: Iterable[Tensor | None], role: Role) -> None:
    """Copy 2: 1 (masks still apply in the layer's forward); copy 3: squared."""
    for t in tensors:
        if t is None:
            continue
        if role == "activation":
            t.fill_(1.0)
        else:
            t.square_()


class WindowAvgPool(nn.Module):
    """Global average pooling as the authors' models write it: ``F.avg_pool2d(x, width)``."""

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(x, x.shape[-1])


def _transform_prunable(module: nn.Module, is_classifier: bool, variant: PXVariant, role: Role
                        ) -> None:
    if variant.signed_classifier and is_classifier:
        return
    if role == "activation" and variant.activation_weights == "kept":
        return
    _to_path_values((module.weight, module.bias), role)


def auxiliary_copy(model: nn.Module, variant: PXVariant, role: Role,
                   bank: GateBank | None = None) -> nn.Module:
    """Copy 2 (``role="activation"``, gates from ``bank``) or copy 3 (``"kernel"``) of ``model``.

    Only the prunable weights of copy 3 require grad; the run's model is not touched.
    """
    if role == "activation" and bank is None:
        raise ValueError("the path-activation copy needs a GateBank")
    net = scoring_copy(model, dtype=variant.dtype)
    for p in net.parameters():
        p.requires_grad_(False)
    net.train(variant.batchnorm == "train")
    classifier, shortcut_norms = classifier_name(net), shortcut_norm_names(net)
    with torch.no_grad():
        for name, module in list(net.named_modules()):
            if isinstance(module, PRUNABLE_TYPES):
                _transform_prunable(module, name == classifier, variant, role)
                if role == "kernel":
                    module.weight.requires_grad_(True)
            elif isinstance(module, _BatchNorm):
                if variant.batchnorm == "identity":
                    _replace(net, name, nn.Identity())
                elif role in variant.shortcut_norms_as_weights and name in shortcut_norms:
                    _to_path_values((module.weight, module.bias), role)
            elif isinstance(module, ACTIVATIONS):
                gate = FixedGate(name, bank) if role == "activation" else nn.Identity()
                _replace(net, name, gate)
            elif (isinstance(module, nn.AdaptiveAvgPool2d) and variant.pooling == "window"
                  and module.output_size in (1, (1, 1))):
                _replace(net, name, WindowAvgPool())
    return net
