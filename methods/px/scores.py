"""PX's objective R over the pruning batches and the weight scores from its gradient."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from bench.api import (
    BenchError,
    Importance,
    prunable_layers,
    weight_gradients,
)
from methods.px.copies import GateBank, auxiliary_copy, record_gates
from methods.px.variants import PXVariant, check_supported


@dataclass
class PXCopies:
    """The three networks of a scoring pass, and the gates copy 1 hands to copy 2."""

    gate: nn.Module
    bank: GateBank
    activation: nn.Module
    kernel: nn.Module


    def networks(self) -> list[nn.Module]:
        return [self.gate, self.activation, self.kernel]


def px_copies(model: nn.Module, variant: PXVariant) -> PXCopies:
    """The three networks of ``model`` (see :mod:`methods.px`); the model is untouched."""
    gate = copy.deepcopy(model).train(variant.gate_mode == "train")
    bank = GateBank()
    return PXCopies(gate, bank, auxiliary_copy(model, variant, "activation", bank),
                   auxiliary_copy(model, variant, "kernel"))


def _objective(nets: PXCopies, batches: Iterable[Tensor], variant: PXVariant,
               count: Callable[[int, int], None], backward: bool) -> Tensor:
    """R summed over ``batches``; with ``backward`` its gradient lands in copy 3's weights."""
    total: Tensor | None = None
    z1_total: Tensor | None = None
    shape = None
    for x in batches:
        shape = x.shape[1:]
        nets.bank.load(record_gates(nets.gate, x))
        count(len(x), 0)
        x2 = x.to(variant.dtype)
        with torch.no_grad():
            z1 = nets.activation(x2.square() if variant.activation_input == "squared" else x2)
        nets.bank.check_consumed()
        count(len(x), 0)
        if variant.kernel_input == "single":
            z1_total = z1.sum(0) if z1_total is None else z1_total + z1.sum(0)
            continue
        z2 = nets.kernel(torch.ones_like(x2) if variant.kernel_input == "ones-per-batch" else x2)
        r = (z1 * z2).sum()
        if backward:
            r.backward()
        count(len(x), int(backward))
        total = r.detach() if total is None else total + r.detach()
    if shape is None:
        raise BenchError("px needs at least one pruning batch")
    if z1_total is not None:
        device = next(nets.kernel.parameters()).device
        z2 = nets.kernel(torch.ones(1, *shape, dtype=variant.dtype, device=device))
        total = (z1_total * z2).sum()
        if backward:
            total.backward()
        count(1, int(backward))
    assert total is not None
    return total.detach()


def px_scores(
    model: nn.Module,
    batches: Iterable[Tensor],
    variant: PXVariant,
    count: Callable[[int, int], None] | None = None,
    copies: PXCopies | None = None,
) -> Importance:
    """``|dR/d(theta^2)| * |theta|^p`` for every prunable weight of ``model`` (left untouched).

    ``batches`` yields input batches ``x``. ``count(images, backward)`` is told every
    forward pass (the search cost). With ``variant.signed_classifier`` the classifier's
    gradient is taken with respect to its signed weight, as the authors' code does.
    ``copies`` are :func:`px_copies` of ``model`` kept from an earlier round (with its
    current masks and no gradients); by default they are made here.
    """
    check_supported(model)
    nets = copies if copies is not None else px_copies(model, variant)
    _objective(nets, batches, variant, count or (lambda images, backward: None), backward=True)
    grads = weight_gradients(nets.kernel)
    live = dict(prunable_layers(model))
    return {name: grads[name].detach().abs() * _weight_factor(live[name].weight, variant)
            for name in grads}


def _weight_factor(weight: Tensor, variant: PXVariant) -> Tensor:
    theta = weight.detach().to(variant.dtype)
    if variant.weight_power == 2:
        return theta.square()
    return theta.abs().pow(variant.weight_power)


def px_objective(model: nn.Module, batches: Iterable[Tensor], variant: PXVariant) -> float:
    """The objective R itself (no gradient), in ``variant``'s dtype."""
    check_supported(model)
    nets = px_copies(model, variant)
    with torch.no_grad():
        return float(_objective(nets, batches, variant, lambda i, b: None, backward=False))
