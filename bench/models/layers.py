"""Layer types that mark a weight tensor as prunable.

Every model builds each prunable conv/linear through these classes and every dense one
through plain ``nn.Conv2d`` / ``nn.Linear``, so methods can find prunable tensors by type.
"""

from __future__ import annotations

from torch import nn


class PrunableConv2d(nn.Conv2d):
    """A ``nn.Conv2d`` whose weight is prunable (no behaviour change yet)."""


class PrunableLinear(nn.Linear):
    """A ``nn.Linear`` whose weight is prunable (no behaviour change yet)."""


def scaled(channels: int, width: float) -> int:
    """``channels * width`` rounded half up, at least 1 (the width multiplier of every model)."""
    return max(1, int(channels * width + 0.5))


PRUNABLE_TYPES: tuple[type[nn.Module], ...] = (PrunableConv2d, PrunableLinear)
