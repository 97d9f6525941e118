"""Supermasks: masks learned over fixed random weights, the machinery Edge-Popup and PEMN share.

Every prunable layer gets frozen weights from a :class:`~bench.models.masked_weights.RandomWeights`
recipe and trainable scores; the forward pass keeps the top ``density`` fraction of
``|scores|`` within each layer (straight-through gradient): exactly
``numel - int((1 - density) * numel)`` entries, as the authors' ``GetSubnet`` (Edge-Popup
and PEMN share it), with exact ties broken as a stable ascending sort breaks them (see
:func:`bench.models.masked_weights._largest`). The optimiser sees the scores
and, optionally, the norm layers' affine parameters; nothing else ever changes. A method
only says where each layer's weights come from (:meth:`MaskLearner.weight_sources`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn

from bench.data import mix_seed
from bench.models import prunable_layers
from bench.models.masked_weights import RandomWeights
from bench.registry import Method

if TYPE_CHECKING:
    from bench.context import RunContext

NORM_TYPES = (nn.BatchNorm2d, nn.BatchNorm1d, nn.LayerNorm, nn.GroupNorm)
WEIGHT_STREAM = 0x57454947  # "WEIG": the generator seed of the fixed weights
SCORE_STREAM = 0x53434F52  # "SCOR": the initial scores


def weight_seed(run_seed: int) -> int:
    """The 63-bit seed of a run's fixed random weights (stored in its artifact)."""
    return mix_seed(run_seed, WEIGHT_STREAM)


def norm_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Affine parameters of every normalisation layer."""
    return [p for m in model.modules() if isinstance(m, NORM_TYPES) for p in m.parameters()]


def make_supermask(model: nn.Module, sources: dict[str, RandomWeights], layer_density: float,
                   score_seed: int) -> None:
    """Fix every prunable layer's weights to its recipe and give it top-k scores keeping
    ``layer_density`` of that layer (a per-layer keep ratio, not a global fraction)."""
    generator = torch.Generator().manual_seed(score_seed)
    for name, layer in prunable_layers(model):
        layer.set_random_weights(sources[name])
        layer.use_scores(layer_density, generator)


def supermask_parameters(model: nn.Module, train_norm: bool) -> list[nn.Parameter]:
    """What the optimiser sees: the scores, plus the norm affine parameters if trained.

    Everything else (biases, embeddings, frozen norms) is set to not require grad, so a
    frozen BatchNorm with gamma 1 and beta 0 is exactly a non-affine one.
    """
    trainable = [layer.scores for _, layer in prunable_layers(model)]
    if train_norm:
        trainable += norm_parameters(model)
    keep = {id(p) for p in trainable}
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)
    return trainable


class MaskLearner(Method):
    """Learn per-layer top-k masks over fixed random weights for the whole budget.

    The run's target density is applied to each layer alike (``layer_density``): a per-layer
    keep ratio, so the achieved global density equals it only up to each layer's rounding.
    Subclasses return each layer's weight recipe; ``train_norm`` says whether norm affine
    parameters train.
    """

    train_norm: ClassVar[bool] = True

    def weight_sources(self, model: nn.Module, seed: int) -> dict[str, RandomWeights]:
        raise NotImplementedError  # pragma: no cover

    def run(self, ctx: RunContext) -> nn.Module:
        sources = self.weight_sources(ctx.model, weight_seed(ctx.seed))
        make_supermask(ctx.model, sources, ctx.target_density, mix_seed(ctx.seed, SCORE_STREAM))
        train_norm = getattr(self.hparams, "train_norm", self.train_norm)
        ctx.train(params=supermask_parameters(ctx.model, train_norm))
        return ctx.model
