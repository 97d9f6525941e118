"""SynFlow (Tanaka et al. 2020): data-free iterative synaptic flow, 100 rounds."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bench.api import (
    Importance,
    PruneAtInit,
    PruneAtInitHparams,
    RunContext,
    prunable_layers,
    register,
    scoring_copy,
    weight_gradients,
)


def synflow_copy(model: nn.Module) -> nn.Module:
    """The float64 copy SynFlow scores: eval mode, every tensor made non-negative (float32
    overflows in deep networks)."""
    net = scoring_copy(model, dtype=torch.float64).eval()
    with torch.no_grad():
        for tensor in net.state_dict().values():
            if tensor.is_floating_point():
                tensor.abs_()
    return net


def synflow_scores(model: nn.Module, net: nn.Module | None = None) -> Importance:
    """|theta * dR/dtheta| on :func:`synflow_copy` of ``model`` (``net``: one kept from an
    earlier round, with the model's current masks), R = sum of outputs on ones."""
    net = synflow_copy(model) if net is None else net
    device = next(net.parameters()).device
    net(torch.ones(1, 3, 32, 32, dtype=torch.float64, device=device)).sum().backward()
    grads = weight_gradients(net)
    return {name: (layer.weight.detach() * grads[name]).abs()
            for name, layer in prunable_layers(net)}


@dataclass(frozen=True)
class SynFlowHparams(PruneAtInitHparams):
    rounds: int = 100


@register("synflow")
class SynFlow(PruneAtInit):
    """Iterative, exponential schedule, no data: avoids layer collapse by design."""

    description = "data-free pruning at init by iterative synaptic flow (Tanaka et al. 2020)"
    Hparams = SynFlowHparams

    def importance(self, model: nn.Module, ctx: RunContext) -> Importance:
        ctx.search.count(1)
        return synflow_scores(model, self.kept_copies(model, lambda m: (net := synflow_copy(m),
                                                                        [net])))
