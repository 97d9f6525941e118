"""SynFlow-L2 (Gebhart et al. 2021) as PX's code runs it: SynFlow on squared tensors.

The scoring copy has every floating tensor squared (weights, biases, BatchNorm affine
parameters and running statistics), runs in eval mode on one all-ones image, and
R = sum of its outputs. A weight's score is ``|w| * dR/d(w^2)``: the gradient with
respect to the squared tensor times the original |w| (not w^2 times it, not the chain-rule
gradient with respect to w), as iurada/px-ntk-pruning ed6c40e computes it
(``lib/pruners.py`` class ``SynFlowL2``). 100 rounds on the exponential schedule, float32
and the authors' ``kthvalue`` cut, as their code runs it; ``float64`` scores in float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bench.api import (
    Cut,
    Importance,
    PruneAtInit,
    PruneAtInitHparams,
    RunContext,
    prunable_layers,
    register,
    scoring_copy,
    weight_gradients,
)


@dataclass(frozen=True)
class SynFlowL2Hparams(PruneAtInitHparams):
    rounds: int = 100
    cut: Cut = "kthvalue"
    float64: bool = False
    """Score in float64 (the authors' code: float32, the model's dtype)."""


def squared_copy(model: nn.Module, dtype: torch.dtype | None = None) -> nn.Module:
    """The copy SynFlow-L2 scores: eval mode, every floating tensor of its state squared."""
    net = scoring_copy(model, dtype=dtype).eval()
    with torch.no_grad():
        for tensor in net.state_dict().values():
            if tensor.is_floating_point():
                tensor.pow_(2)
    return net


def synflow_l2_scores(model: nn.Module, net: nn.Module) -> Importance:
    """``|w| * dR/d(w^2)`` with ``net`` the :func:`squared_copy` of ``model`` (with its
    current masks), R = sum of ``net``'s outputs on one all-ones image."""
    parameter = next(net.parameters())
    ones = torch.ones(1, 3, 32, 32, dtype=parameter.dtype, device=parameter.device)
    net(ones).sum().backward()
    grads = weight_gradients(net)
    return {name: (grads[name] * layer.weight.detach().to(grads[name].dtype)).abs()
            for name, layer in prunable_layers(model)}


@register("synflow-l2")
class SynFlowL2(PruneAtInit):
    """SynFlow's data-free iterative flow with squares for absolute values (PX's code)."""

    description = ("data-free pruning at init by synaptic flow on squared weights "
                   "(Gebhart et al. 2021, as PX's code runs it)")
    Hparams = SynFlowL2Hparams

    def importance(self, model: nn.Module, ctx: RunContext) -> Importance:
        ctx.search.count(1)
        dtype = torch.float64 if self.hparams.float64 else None
        net = self.kept_copies(model, lambda m: (copy := squared_copy(m, dtype), [copy]))
        return synflow_l2_scores(model, net)
