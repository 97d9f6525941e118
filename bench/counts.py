"""Counting weights: how many a density keeps (under its two rounding rules) and fan-in.

Each count is defined here once; pruning, mask learning, initialisation and byte counts use it.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

from torch import Tensor, nn

KeptRounding = Literal["nearest", "prune-floor"]
"""``nearest``: round(density x n) kept (the suite's pruning). ``prune-floor``: int((1 - density)
x n) pruned and the rest kept (the authors' Synaptic-Flow and Edge-Popup code)."""
KEPT_ROUNDINGS: tuple[str, ...] = get_args(KeptRounding)


def kept_count(numel: int, density: float, rounding: KeptRounding = "nearest") -> int:
    """Weights kept out of ``numel`` at ``density`` under ``rounding``."""
    if rounding == "nearest":
        return int(round(density * numel))
    if rounding == "prune-floor":
        return numel - int((1.0 - density) * numel)
    raise ValueError(f"unknown rounding {rounding!r}; one of {', '.join(KEPT_ROUNDINGS)}")


def pruned_count(numel: int, density: float) -> int:
    """Weights pruned out of ``numel`` under the authors' rule: int((1 - density) x numel)."""
    return numel - kept_count(numel, density, "prune-floor")


def fan_in(weight: Tensor | nn.Module) -> int:
    """Inputs feeding one output unit of a conv or linear weight (or layer): in/groups x kernel
    area, or in_features."""
    shape = weight.weight.shape if isinstance(weight, nn.Module) else weight.shape
    return math.prod(shape[1:])
