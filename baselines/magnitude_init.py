"""Magnitude pruning at initialisation: keep the largest |theta| of the initial weights."""

from __future__ import annotations

from torch import nn

from bench.api import PruneAtInit, RunContext, Scores, prunable_layers, register


def magnitude_scores(model: nn.Module) -> Scores:
    """|theta| of every prunable weight."""
    return {name: layer.weight.detach().abs() for name, layer in prunable_layers(model)}


@register("magnitude-init")
class MagnitudeAtInit(PruneAtInit):
    """One round of |theta| on the initialised network."""

    description = "pruning at init keeping the largest initial |weights|"

    def scores(self, model: nn.Module, ctx: RunContext) -> Scores:
        return magnitude_scores(model)
