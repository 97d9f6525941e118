"""Counting weights: how many a density keeps (under its two rounding rules) and fan-in.

Each count is defined here once; pruning, mask learning, initialisation and byte counts use it.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

from torch import Tensor, nn

KeptRounding = Literal["nearest", "prune-floor", "floor", "ceil"]
"""``nearest``: round(density x n) kept (the suite's pruning). ``prune-floor``: int((1 - density)
x n) pruned and the rest kept (the authors' Synaptic-Flow and Edge-Popup code). ``floor``:
int(density x n) kept (FORCE's code). ``ceil``: ceil(density x n) kept (ProsPr's code)."""
KEPT_ROUNDINGS: tuple[str, ...] = get_args(KeptRounding)


def kept_count(numel: int, density: float, rounding: KeptRounding = "nearest") -> int:
    """Weights kept out of ``numel`` at ``density`` under ``rounding``."""
    if rounding == "nearest":
        return int(round(density * numel))
    if rounding == "prune-floor":
        return numel - int((1.0 - density) * numel)
    if rounding == "floor":
        return int(density * numel)
    if rounding == "ceil":
        return math.ceil(density * numel)
    raise ValueError(f"unknown rounding {rounding!r}; one of {', '.join(KEPT_ROUNDINGS)}")


def pruned_count(numel: int, density: float) -> int:
    """Weights pruned out of ``numel`` under the authors' rule: int((1 - density) x numel)."""
    return numel - kept_count(numel, density, "prune-floor")


def fan_in(weight: Tensor | nn.Module) -> int:
    """Inputs feeding one output unit of a conv or linear weight (or layer): in/groups x kernel
    area, or in_features."""
    shape = weight.weight.shape if isinstance(weight, nn.Module) else weight.shape
    return math.prod(shape[1:])


def erk_densities(shapes: dict[str, tuple[int, ...]], density: float, power: float = 1.0
                  ) -> dict[str, float]:
    """Erdos-Renyi-Kernel layer densities (Evci et al. 2020) keeping ``density`` of all weights.

    Each tensor's density is proportional to (sum of its dimensions / their product) **
    ``power``; while the largest would exceed 1, every tensor at that largest value is made
    dense and the scale solved again over the others (the loop of VITA-Group/Random_Pruning
    871077f, ``sparselearning/core.py`` mode ``ERK``, in its order of summation).
    """
    if density >= 1.0:
        return {name: 1.0 for name in shapes}
    dense: set[str] = set()
    while True:
        rhs, divisor, raw = 0.0, 0.0, {}
        for name, shape in shapes.items():
            n = math.prod(shape)
            if name in dense:
                rhs -= n * (1.0 - density)
            else:
                rhs += n * density
                raw[name] = (sum(shape) / n) ** power
                divisor += raw[name] * n
        epsilon = rhs / divisor
        largest = max(raw.values())
        if largest * epsilon <= 1.0:
            return {name: 1.0 if name in dense else epsilon * raw[name] for name in shapes}
        dense |= {name for name, value in raw.items() if value == largest}
