"""The optimiser a recipe names, over the parameters a method trains."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from bench.engine.options import EngineOptions
from bench.recipe import Recipe


def make_optimizer(
    params: Iterable[nn.Parameter], recipe: Recipe, options: EngineOptions
) -> torch.optim.Optimizer:
    """The recipe's optimiser over ``params``; fused kernels on CUDA."""
    params = list(params)
    extra: dict[str, Any] = {"fused": True} if options.use_fused_optimizer else {}
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay, **extra)
    return torch.optim.SGD(
        params,
        lr=recipe.lr,
        momentum=recipe.momentum,
        weight_decay=recipe.weight_decay,
        nesterov=recipe.optimizer == "nesterov",
        **extra,
    )
