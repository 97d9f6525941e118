"""FORCE (de Jorge et al., ICLR 2021, "Progressive Skeletonization"), as the authors' code
computes it (naver/force 7494eed, ``pruning/pruning_algos.py``, ``iterative_pruning`` with
``prune_method=3``).

Iterative SNIP's steps, data, loss and cut (:mod:`baselines.iter_snip`), with one
difference: every step rebuilds the network from the dense initial weights ``w0`` with the
current mask applied (pruned weights zero, their gradients not blocked) and scores
``|w0 * dL/dw|`` for every weight, so a weight pruned in one step keeps a score and can come
back in a later one (:func:`bench.api.prune`'s ``revive``).
"""

from __future__ import annotations

import torch
from torch import nn

from baselines.iter_snip import IterSNIP, mean_gradients
from bench.api import Importance, RunContext, prunable_layers, register, scoring_copy


def masked_dense_copy(model: nn.Module) -> nn.Module:
    """A scoring copy of ``model`` computing with ``w0 * mask`` but without a mask, so the
    gradient reaches the pruned weights too (the authors' ``apply_hooks=False``)."""
    net = scoring_copy(model)
    with torch.no_grad():
        for _, layer in prunable_layers(net):
            mask = layer.current_mask()
            if mask is not None:
                layer.weight.mul_(mask)
                layer.clear_mask()
    return net


@register("force")
class FORCE(IterSNIP):
    """Foresight connection sensitivity: pruned weights may come back in later steps."""

    description = ("FORCE: iterative |w0 * dL/dw| over 60 steps, pruned weights may come "
                   "back (de Jorge et al. 2021)")
    revives = True

    def importance(self, model: nn.Module, ctx: RunContext) -> Importance:
        # In a revive run the model keeps w0 under its masks between steps.
        net = masked_dense_copy(model)
        grads = mean_gradients(net, self.step_batches(ctx), self.hparams.loss, ctx)
        return {name: (layer.weight.detach() * grads[name]).abs()
                for name, layer in prunable_layers(model)}
