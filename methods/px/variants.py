"""What distinguishes the three PX codes (:class:`PXVariant`), and which models PX can score."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from bench.api import (
    PRUNABLE_TYPES,
    BenchError,
    ShortcutA,
    VisionTransformer,
)

ACTIVATIONS: tuple[type[nn.Module], ...] = (nn.ReLU, nn.GELU)
# Leaf modules whose behaviour the path decomposition covers (containers are free).
_PATH_LEAVES: tuple[type[nn.Module], ...] = (
    *PRUNABLE_TYPES, _BatchNorm, *ACTIVATIONS, nn.MaxPool2d, nn.AvgPool2d,
    nn.AdaptiveAvgPool2d, nn.Identity, nn.Flatten, ShortcutA,
)  # fmt: skip
# The authors filter state_dict names: "fc" (the classifier of every zoo model) and "bn"
# (every BatchNorm but the ResNet shortcut's `shortcut.1`). The suite selects the same
# layers by structure: bench.api.classifier_name and shortcut_norm_names.
Role = Literal["activation", "kernel"]


@dataclass(frozen=True)
class PXVariant:
    """What distinguishes the PX codes: ``px`` (authors' HEAD), ``px-2024``, ``px-clean``."""

    gate_mode: Literal["eval", "train"]
    """BatchNorm of copy 1 (the gate network): running statistics, or the batch's."""
    batchnorm: Literal["train", "identity"]
    """BatchNorm in copies 2 and 3: batch statistics (train mode), or swapped for Identity."""
    signed_classifier: bool
    """The classifier (the authors: layers named ``fc``) keeps signed weights and bias in 2
    and 3."""
    activation_weights: Literal["one", "kept"]
    """Copy 2's prunable weights and biases: set to 1, or left as they are (the 2024
    release's ``p[m > 0].fill_(1.0)`` fills a copy made by the indexing: a no-op)."""
    shortcut_norms_as_weights: frozenset[Role]
    """Copies in which the shortcut BatchNorms (the authors: names lacking ``bn``) are
    transformed like weights."""
    activation_input: Literal["squared", "images"]
    """Copy 2 runs on ``x ** 2`` (HEAD, the paper) or on ``x`` (the 2024 release)."""
    kernel_input: Literal["ones-per-batch", "images-per-batch", "single"]
    """Copy 3 per batch on ``ones_like(x)`` or on ``x`` (backward each), or once on one image."""
    weight_power: int
    """Score = ``|dR/d(theta^2)| * |theta| ** weight_power``: 2; the 2024 release computes
    ``grad * theta^2 * p2 * theta^2`` with copy 2's weight ``p2 = theta`` (see above): 5."""
    pooling: Literal["adaptive", "window"]
    """Global pooling in copies 2 and 3: the model's own, or ``F.avg_pool2d`` over the whole
    map as the authors' models do (their rounding keeps the all-ones features non-zero)."""
    dtype: torch.dtype
    """Of copies 2 and 3 (the gate network always runs the live model's dtype)."""


FAITHFUL = PXVariant(gate_mode="eval", batchnorm="train", signed_classifier=True,
                     activation_weights="one",
                     shortcut_norms_as_weights=frozenset({"activation", "kernel"}),
                     activation_input="squared", kernel_input="ones-per-batch", weight_power=2,
                     pooling="window", dtype=torch.float32)
RELEASE_2024 = PXVariant(gate_mode="train", batchnorm="train", signed_classifier=False,
                         activation_weights="kept",
                         shortcut_norms_as_weights=frozenset({"kernel"}),
                         activation_input="images", kernel_input="images-per-batch",
                         weight_power=5, pooling="window", dtype=torch.float32)
CLEAN = PXVariant(gate_mode="eval", batchnorm="identity", signed_classifier=False,
                  activation_weights="one", shortcut_norms_as_weights=frozenset(),
                  activation_input="squared", kernel_input="single", weight_power=2,
                  pooling="adaptive", dtype=torch.float64)


def check_supported(model: nn.Module) -> None:
    """BenchError unless ``model`` is built only from modules PX's path decomposition covers."""
    if isinstance(model, VisionTransformer) or any(
        isinstance(m, (nn.LayerNorm, nn.MultiheadAttention)) for m in model.modules()
    ):
        raise BenchError(
            "px is defined for ReLU-gated conv nets (ResNet, VGG, ConvMixer); ViT has attention "
            "(a softmax of products of weights) and LayerNorm, which do not decompose into "
            "input-to-output paths with 0/1 gates"
        )
    for name, module in model.named_modules():
        has_children = next(module.children(), None) is not None
        if has_children:
            own = [*module.parameters(recurse=False), *module.buffers(recurse=False)]
            if not own:
                continue
        elif isinstance(module, _PATH_LEAVES):
            continue
        raise BenchError(
            f"px cannot score {name or 'the model'} ({type(module).__name__}): only prunable "
            "conv/linear layers, BatchNorm, ReLU/GELU modules, pooling and identities decompose "
            "into paths (px is defined for ReLU-gated conv nets: ResNet, VGG, ConvMixer)"
        )
