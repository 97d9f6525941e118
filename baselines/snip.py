"""SNIP (Lee et al. 2019): connection sensitivity |theta * dL/dtheta| on the pruning set."""

from __future__ import annotations

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


@register("snip")
class SNIP(PruneAtInit):
    """Cross-entropy summed over the pruning batches, model in train mode, one round."""

    description = "pruning at init by connection sensitivity |w * dL/dw| (Lee et al. 2019)"
    uses_pruning_set = True

    def importance(self, model: nn.Module, ctx: RunContext) -> Importance:
        net = scoring_copy(model).train()
        for x, y in pruning_batches(ctx):
            F.cross_entropy(net(x), y, reduction="sum").backward()
            ctx.search.count(len(y))
        grads = weight_gradients(net)
        return {name: (layer.weight.detach() * grads[name]).abs()
                for name, layer in prunable_layers(net)}
