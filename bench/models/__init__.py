"""The model zoo: CIFAR ResNets, VGG-16-BN, ConvMixer and a small ViT, built by name.

``build_model`` is the only constructor the engine uses; it records ``model.arch`` so a
model can be rebuilt from a file header with ``build_model(**arch, seed=seed)``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from bench.errors import BenchError
from bench.models.convmixer import ConvMixer
from bench.models.init import init_weights
from bench.models.layers import PRUNABLE_TYPES, PrunableConv2d, PrunableLinear, scaled
from bench.models.resnet import CifarResNet
from bench.models.vgg import CifarVGG
from bench.models.vit import VisionTransformer

__all__ = [
    "PRUNABLE_TYPES",
    "PrunableConv2d",
    "PrunableLinear",
    "build_model",
    "describe_model",
    "init_weights",
    "model_names",
    "prunable_layers",
    "validate_model",
]


# ---------------------------------------------------------------- kwarg checking


def _width(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError("a positive number")
    return float(value)


def _positive_int(value: Any) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError("a positive integer")
    return value


def _shortcut(value: Any) -> str:
    if not isinstance(value, str) or value.upper() not in ("A", "B"):
        raise ValueError("'A' or 'B'")
    return value.upper()


def _vit_patch(value: Any) -> int:
    value = _positive_int(value)
    if 32 % value:
        raise ValueError("a positive divisor of 32 (the input size)")
    return value


Option = tuple[Any, Callable[[Any], Any]]  # (default, checker returning the resolved value)


@dataclass(frozen=True)
class _Family:
    """One architecture family: its options and a constructor from (name params, classes, kw)."""

    options: dict[str, Option]
    build: Callable[[tuple[int, ...], int, dict[str, Any]], nn.Module]
    describe: Callable[[tuple[int, ...]], str]


def _build_resnet(params: tuple[int, ...], classes: int, kw: dict[str, Any]) -> nn.Module:
    return CifarResNet(params[0], classes, width=kw["width"], shortcut=kw["shortcut"])


def _build_vgg(params: tuple[int, ...], classes: int, kw: dict[str, Any]) -> nn.Module:
    return CifarVGG(classes, width=kw["width"])


def _build_convmixer(params: tuple[int, ...], classes: int, kw: dict[str, Any]) -> nn.Module:
    dim = scaled(params[0], kw["width"])
    return ConvMixer(dim, params[1], classes, kernel=kw["kernel"], patch=kw["patch"])


def _build_vit(params: tuple[int, ...], classes: int, kw: dict[str, Any]) -> nn.Module:
    dim = scaled(params[0], kw["width"])
    return VisionTransformer(dim, params[1], classes, mlp_ratio=kw["mlp_ratio"], patch=kw["patch"])


_FAMILIES: dict[str, _Family] = {
    "resnet": _Family(
        options={"width": (1.0, _width), "shortcut": ("B", _shortcut)},
        build=_build_resnet,
        describe=lambda p: (
            f"CIFAR ResNet-{p[0]} (He et al. 2016), widths 16/32/64,"
            " 1x1-conv shortcuts (shortcut=A: parameter-free)"
        ),
    ),
    "vgg": _Family(
        options={"width": (1.0, _width)},
        build=_build_vgg,
        describe=lambda p: "VGG-16-BN, CIFAR variant (conv biases, avg pool, one Linear head)",
    ),
    "convmixer": _Family(
        options={"width": (1.0, _width), "kernel": (5, _positive_int), "patch": (2, _positive_int)},
        build=_build_convmixer,
        describe=lambda p: (
            f"ConvMixer-{p[0]}/{p[1]} (Trockman & Kolter), kernel 5, patch 2, bias-free convs"
            " (any convmixer-H-D)"
        ),
    ),
    "vit": _Family(
        options={"width": (1.0, _width), "mlp_ratio": (2, _positive_int), "patch": (4, _vit_patch)},
        build=_build_vit,
        describe=lambda p: (
            f"ViT width {p[0]}, depth {p[1]}, patch 4, MLP ratio 2; blocks and head prunable"
            " (any vit-W-D)"
        ),
    ),
}

_FIXED: dict[str, tuple[str, tuple[int, ...]]] = {
    "resnet20": ("resnet", (20,)),
    "resnet32": ("resnet", (32,)),
    "resnet56": ("resnet", (56,)),
    "vgg16": ("vgg", ()),
}
_ALIASES = {"convmixer": "convmixer-256-6", "vit": "vit-256-6"}
_PATTERN = re.compile(r"^(convmixer|vit)-(\d+)-(\d+)$")
_LISTED = [
    "resnet20", "resnet32", "resnet56", "vgg16",
    "convmixer-256-6", "convmixer-256-8", "convmixer-512-6", "convmixer-512-8",
    "vit-256-6", "vit-256-8", "vit-512-6", "vit-512-8",
]  # fmt: skip


def _valid_names() -> str:
    return ", ".join(
        [*_FIXED, "convmixer-H-D (convmixer = convmixer-256-6)", "vit-W-D (vit = vit-256-6)"]
    )


def _resolve_name(name: str) -> tuple[str, str, tuple[int, ...]]:
    """(canonical name, family key, name parameters) or BenchError."""
    key = name.strip().lower() if isinstance(name, str) else ""
    key = _ALIASES.get(key, key)
    if key in _FIXED:
        family, params = _FIXED[key]
        return key, family, params
    match = _PATTERN.match(key)
    if match and int(match[2]) >= 1 and int(match[3]) >= 1:
        family, width, depth = match[1], int(match[2]), int(match[3])
        return f"{family}-{width}-{depth}", family, (width, depth)
    raise BenchError(f"unknown model {name!r}; valid models: {_valid_names()}")


def _resolve_kwargs(canonical: str, family: _Family, kwargs: dict[str, Any]) -> dict[str, Any]:
    """All options of the family with defaults filled in and values checked, or BenchError."""
    unknown = sorted(set(kwargs) - set(family.options))
    if unknown:
        raise BenchError(
            f"model {canonical} has no option {unknown[0]!r}; "
            f"valid options: {', '.join(family.options)}"
        )
    resolved = {}
    for key, (default, check) in family.options.items():
        value = kwargs.get(key, default)
        try:
            resolved[key] = check(value)
        except ValueError as exc:
            raise BenchError(f"model {canonical}: option {key}={value!r} must be {exc}") from None
    return resolved


# ---------------------------------------------------------------- public API


def model_names() -> list[str]:
    """Canonical names for `bench list` (ConvMixer and ViT accept any H-D / W-D too)."""
    return list(_LISTED)


def describe_model(name: str) -> str:
    """A one-line description of a model name; BenchError if unknown."""
    _, family, params = _resolve_name(name)
    return _FAMILIES[family].describe(params)


def validate_model(name: str, **kwargs: Any) -> tuple[str, dict[str, Any]]:
    """Check a name and its options without building; returns (canonical name, resolved kwargs)."""
    canonical, family, _ = _resolve_name(name)
    return canonical, _resolve_kwargs(canonical, _FAMILIES[family], kwargs)


def build_model(name: str, num_classes: int, seed: int = 0, bias_init: str = "zero",
                **kwargs: Any) -> nn.Module:
    """Build a model on CPU, initialise it with ``init_weights(model, seed, bias_init)`` (a
    recipe's choice, see :class:`bench.recipe.Recipe`), set ``model.arch``.

    The global RNG is left untouched. Unknown names or options raise BenchError.
    """
    canonical, family_key, params = _resolve_name(name)
    family = _FAMILIES[family_key]
    resolved = _resolve_kwargs(canonical, family, kwargs)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise BenchError(f"num_classes must be a positive integer, got {num_classes!r}")
    with torch.random.fork_rng(devices=[]), torch.device("cpu"):
        model = family.build(params, num_classes, resolved)
    init_weights(model, seed, bias_init)
    model.arch = {"name": canonical, "num_classes": num_classes, "kwargs": dict(resolved)}
    return model


def prunable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(qualified name, module) of every PrunableConv2d / PrunableLinear, in module order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, PRUNABLE_TYPES)]


def classifier_name(model: nn.Module) -> str:
    """The classifier: the last prunable layer in module order (``fc`` in every suite model)."""
    return prunable_layers(model)[-1][0]


def shortcut_norm_names(model: nn.Module) -> frozenset[str]:
    """Names of the normalisation layers inside residual shortcuts (a block's ``shortcut``
    projection: ``blocks.i.shortcut.1`` in the CIFAR ResNets), the only ones whose name
    lacks ``bn`` in the suite's models, which the PX authors' name filter singles out."""
    out = set()
    for name, module in model.named_modules():
        shortcut = getattr(module, "shortcut", None)
        if isinstance(shortcut, nn.Module):
            prefix = f"{name}.shortcut" if name else "shortcut"
            out.update(f"{prefix}.{n}" if n else prefix for n, m in shortcut.named_modules()
                       if isinstance(m, _BatchNorm))
    return frozenset(out)
