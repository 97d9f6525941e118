"""Magnitude pruning at initialisation: keep the largest |theta| of the initial weights."""

from __future__ import annotations

from torch import nn

from bench.api import Importance, PruneAtInit, RunContext, prunable_layers, register


def magnitude_scores(model: nn.Module) -> Importance:
    """|theta| of every prunable weight."""
    return {name: layer.weight.detach().abs() for name, layer in prunable_layers(model)}


@register("magnitude-init")
class MagnitudeAtInit(PruneAtInit):
    """One round of |theta| on the initialised network."""

    description = "pruning at init keeping the largest initial |weights|"

    def importance(self, model: nn.Module, ctx: RunContext) -> Importance:
        return magnitude_scores(model)
