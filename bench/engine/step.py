"""The forward half of a training step as one function of (model, images, labels): the
normalised input, the logits, the loss and the count of correct predictions
(:func:`loss_function`). Under ``--compile`` all of it runs in one graph (and CUDA graph),
from the batch's uint8 pixels to the loss and its gradient, instead of as eager kernels
around the model's graph."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.data import DeviceData
from bench.data.device import normalize_images
from bench.engine.options import EngineOptions, compile_function, input_layout
from bench.recipe import Recipe

LossFunction = Callable[[nn.Module, Tensor, Tensor], tuple[Tensor, Tensor]]
"""``(model, x, y) -> (mean loss, correct predictions)``, both device scalars; ``x`` uint8
pixels or normalised images."""


def classification_loss(model: Callable[[Tensor], Tensor], x: Tensor, y: Tensor, *,
                        label_smoothing: float, autocast_dtype: torch.dtype | None,
                        channels_last: bool, mean: Tensor, std: Tensor
                        ) -> tuple[Tensor, Tensor]:
    """Cross-entropy of ``model(x)`` (in ``autocast_dtype`` autocast where one is given, the
    loss in at least float32) and how many of its top-1 predictions are ``y``. uint8 images
    are normalised by ``mean`` and ``std`` first; ``channels_last`` lays the input out NHWC."""
    if x.dtype == torch.uint8:
        x = normalize_images(x, mean, std)
    x = input_layout(x, channels_last)
    with torch.autocast(x.device.type, dtype=autocast_dtype or torch.bfloat16,
                        enabled=autocast_dtype is not None):
        logits = model(x)
    loss = F.cross_entropy(at_least_float32(logits), y, label_smoothing=label_smoothing)
    return loss, (logits.detach().argmax(-1) == y).sum()


def at_least_float32(x: Tensor) -> Tensor:
    """``x`` in float32 if it is narrower (16-bit logits), else as it is (float64)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def loss_settings(recipe: Recipe, options: EngineOptions, data: DeviceData) -> dict[str, Any]:
    """:func:`classification_loss`'s keyword arguments: the recipe's label smoothing, the
    options' precision and layout and the data's normalisation."""
    mean, std = data.mean_std
    return {"label_smoothing": recipe.label_smoothing, "autocast_dtype": options.autocast_dtype,
            "channels_last": options.use_channels_last, "mean": mean, "std": std}


def loss_function(recipe: Recipe, options: EngineOptions, data: DeviceData) -> LossFunction:
    """:func:`classification_loss` with :func:`loss_settings`, compiled with
    ``options.compile``. The compiled code is shared by every model of a class (the model
    is an argument, not a constant of the graph)."""
    function = classification_loss
    if options.compile:
        function = compile_function(classification_loss, options.use_cuda_graphs)
    return partial(function, **loss_settings(recipe, options, data))
