"""Random pruning with ERK layer densities (Evci et al. 2020; Liu et al., ICLR 2022): the
strong random baseline of recent pruning-at-initialisation papers.

Per-layer densities follow the Erdos-Renyi-Kernel rule (:func:`bench.api.erk_densities`)
over every prunable conv and linear weight (first conv, shortcuts and classifier
included); within a layer the kept weights are uniformly random. The authors' code
(VITA-Group/Random_Pruning 871077f) draws each weight's mask as an independent Bernoulli
trial (``torch.rand < density``), so the kept counts are random: ``draw=bernoulli``, the
default. ``draw=exact-count`` keeps exactly the nearest whole counts instead (largest
remainders, so the total is round(d N)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from bench.api import (
    PruneAtInit,
    RunContext,
    apply_masks,
    erk_densities,
    kept_count,
    mix_seed,
    prunable_layers,
    register,
)

ERK_STREAM = 0x45524B  # "ERK": the mask draws
Draw = Literal["bernoulli", "exact-count"]


@dataclass(frozen=True)
class RandomERKHparams:
    draw: Draw = "bernoulli"
    """``bernoulli``: i.i.d. per weight, as the authors; ``exact-count``: exact per layer."""
    power: float = 1.0
    """The ERK exponent (the authors' ``erk_power_scale``)."""


def exact_counts(densities: dict[str, float], sizes: dict[str, int], total: int
                 ) -> dict[str, int]:
    """Whole counts within one of ``density * size`` per layer summing to ``total`` (largest
    remainders first, ties in layer order)."""
    ideal = {name: densities[name] * sizes[name] for name in sizes}
    counts = {name: min(sizes[name], math.floor(value)) for name, value in ideal.items()}
    order = sorted(ideal, key=lambda name: counts[name] - ideal[name])
    for name in order[:max(0, total - sum(counts.values()))]:
        counts[name] += 1
    return counts


@register("random-erk")
class RandomERK(PruneAtInit):
    """Uniformly random masks at ERK layer densities, one shot."""

    description = ("random pruning at init with Erdos-Renyi-Kernel layer densities "
                   "(Evci et al. 2020; Liu et al. 2022)")
    Hparams = RandomERKHparams

    def prune_model(self, model: nn.Module, ctx: RunContext) -> list[int]:
        layers = prunable_layers(model)
        shapes = {name: tuple(layer.weight.shape) for name, layer in layers}
        densities = erk_densities(shapes, ctx.density, self.hparams.power)
        sizes = {name: math.prod(shape) for name, shape in shapes.items()}
        counts = exact_counts(densities, sizes, kept_count(sum(sizes.values()), ctx.density))
        generator = torch.Generator().manual_seed(mix_seed(ctx.seed, ERK_STREAM))
        masks = {}
        for name, shape in shapes.items():
            draws = torch.rand(shape, generator=generator, dtype=torch.float64)
            if self.hparams.draw == "bernoulli":
                masks[name] = draws < densities[name]
            else:
                keep = torch.zeros(sizes[name], dtype=torch.bool)
                keep[draws.flatten().topk(counts[name]).indices] = True
                masks[name] = keep.reshape(shape)
        apply_masks(model, masks)
        return []
