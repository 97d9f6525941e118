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


def synflow_scores(model: nn.Module) -> Importance:
    """|theta * dR/dtheta| with every tensor made non-negative, R = sum of outputs on ones.

    Runs on a float64 copy in eval mode (float32 overflows in deep networks).
    """
    net = scoring_copy(model, dtype=torch.float64).eval()
    with torch.no_grad():
        for tensor in net.state_dict().values():
            if tensor.is_floating_point():
                tensor.abs_()
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
        return synflow_scores(model)
