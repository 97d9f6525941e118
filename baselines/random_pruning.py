"""Random pruning at initialisation: i.i.d. Gaussian scores, one global round."""

from __future__ import annotations

import torch
from torch import nn

from bench.api import Importance, PruneAtInit, RunContext, mix_seed, prunable_layers, register

RANDOM_SCORE_STREAM = 0x52414E44  # "RAND": keeps these draws apart from every other use of the seed


@register("random")
class RandomPruning(PruneAtInit):
    """Keeps a uniformly random subset: the expected density of every layer is the target."""

    description = "pruning at init with i.i.d. Gaussian scores (the floor every method must beat)"

    def importance(self, model: nn.Module, ctx: RunContext) -> Importance:
        generator = torch.Generator().manual_seed(mix_seed(ctx.seed, RANDOM_SCORE_STREAM))
        return {name: torch.randn(layer.weight.shape, generator=generator)
                for name, layer in prunable_layers(model)}
