"""GraSP (Wang et al. 2020): keep the weights whose removal would most reduce gradient flow.

With logits divided by a temperature of 200: g = sum over the pruning batches of dL/dtheta;
Hg by a second backward of g . dL/dtheta. The paper's score S = -theta * Hg is the change of
gradient flow when theta is removed; the paper and its code remove the weights with the
highest S, i.e. keep the highest theta * Hg, which is the score returned here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bench.api import (
    Importance,
    PruneAtInit,
    RunContext,
    prunable_layers,
    pruning_batches,
    register,
    scoring_copy,
    weight_gradients,
)

TEMPERATURE = 200.0


@register("grasp")
class GraSP(PruneAtInit):
    """Gradient signal preservation at initialisation, one round, model in train mode."""

    description = "pruning at init preserving gradient flow, theta*Hg (Wang et al. 2020)"
    uses_pruning_set = True

    def importance(self, model: nn.Module, ctx: RunContext) -> Importance:
        net = scoring_copy(model).train()
        weights = [layer.weight for _, layer in prunable_layers(net)]
        g = [torch.zeros_like(w) for w in weights]
        for x, y in pruning_batches(ctx):
            loss = F.cross_entropy(net(x) / TEMPERATURE, y)
            for total, grad in zip(g, torch.autograd.grad(loss, weights)):
                total += grad
            ctx.search.count(len(y))
        for x, y in pruning_batches(ctx):
            loss = F.cross_entropy(net(x) / TEMPERATURE, y)
            grads = torch.autograd.grad(loss, weights, create_graph=True)
            sum((grad * fixed).sum() for grad, fixed in zip(grads, g)).backward()
            ctx.search.count(len(y), backward=2)
        hg = weight_gradients(net)
        return {name: layer.weight.detach() * hg[name] for name, layer in prunable_layers(net)}
