"""Magnitude pruning at initialisation: keep the largest |theta| of the initial weights."""

from __future__ import annotations

from torch import nn

from bench.harness import RunContext
from bench.models import prunable_layers
from bench.pruning import PruneAtInit, Scores
from bench.registry import register


def magnitude_scores(model: nn.Module) -> Scores:
    """|theta| of every prunable weight."""
    return {name: layer.weight.detach().abs() for name, layer in prunable_layers(model)}


@register("magnitude-init")
class MagnitudeAtInit(PruneAtInit):
    """One round of |theta| on the initialised network."""

    description = "pruning at init keeping the largest initial |weights|"

    def scores(self, model: nn.Module, ctx: RunContext) -> Scores:
        return magnitude_scores(model)
