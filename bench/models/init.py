"""Seeded weight initialisation shared by every method: one CPU generator, registration order."""

from __future__ import annotations

import math

import torch
from torch import nn

from bench import rng
from bench.counts import fan_in
from bench.models.vit import VisionTransformer

EMBEDDING_STD = 0.02
BIAS_STREAM = 0x62696173  # "bias": uniform biases' own Philox stream, apart from the weights

_NORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)


def _draw_normal(tensor: torch.Tensor, std: float, generator: torch.Generator) -> None:
    """Fill ``tensor`` with N(0, std^2) drawn on CPU in float64 (bit-stable across CPUs)."""
    # float32 normal_ on CPU uses SIMD-specific math (AVX2 vs scalar); float64 is scalar only.
    values = torch.empty(tensor.shape, dtype=torch.float64).normal_(0.0, std, generator=generator)
    with torch.no_grad():
        tensor.copy_(values)


def kaiming_std(weight: torch.Tensor) -> float:
    """He-normal std for ReLU, fan_in mode: sqrt(2 / fan_in), fan_in = in/groups * kh * kw."""
    return math.sqrt(2.0 / fan_in(weight))


@torch.no_grad()
def init_weights(model: nn.Module, seed: int, bias_init: str = "zero") -> None:
    """Kaiming-normal (fan_in, ReLU gain) every conv/linear, zero biases (torch's default
    uniform ones with ``bias_init="uniform"``, see :func:`uniform_biases`), unit norms.

    BatchNorm running statistics are reset too, so re-initialising a used model is exact.

    All draws come from one CPU ``torch.Generator`` seeded with ``seed``, in module
    registration order, so one seed always gives bit-identical weights. The ViT class token
    and positional embedding are N(0, 0.02^2) from the same generator.
    """
    generator = torch.Generator(device="cpu")
    generator.manual_seed(seed)
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            _draw_normal(module.weight, kaiming_std(module.weight), generator)
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, _NORM_TYPES):
            if module.weight is not None:
                module.weight.fill_(1.0)
            if module.bias is not None:
                module.bias.zero_()
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.reset_running_stats()
        elif isinstance(module, VisionTransformer):
            _draw_normal(module.cls_token, EMBEDDING_STD, generator)
            _draw_normal(module.pos_embed, EMBEDDING_STD, generator)
    if bias_init == "uniform":
        uniform_biases(model, seed)


@torch.no_grad()
def uniform_biases(model: nn.Module, seed: int) -> None:
    """Every conv/linear bias as torch initialises a new layer's, U(-1/sqrt(fan_in),
    1/sqrt(fan_in)), which the PX authors and open_lth keep. Drawn from the seed's own
    Philox stream (:mod:`bench.rng`), in module order, so the weights stay those of zero
    biases."""
    layers = [m for m in model.modules()
              if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None]
    draws = rng.uniforms(seed, sum(m.bias.numel() for m in layers), BIAS_STREAM)
    start = 0
    for module in layers:
        n = module.bias.numel()
        bound = 1.0 / math.sqrt(fan_in(module.weight))
        values = (2.0 * draws[start:start + n] - 1.0) * bound
        module.bias.copy_(torch.from_numpy(values).reshape(module.bias.shape))
        start += n
