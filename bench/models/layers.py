"""Layer types that mark a weight tensor as prunable.

Every model builds each prunable conv/linear through these classes and every dense one
through plain ``nn.Conv2d`` / ``nn.Linear``, so methods can find prunable tensors by type.
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from bench.models.masked_weights import MaskedWeight


class PrunableConv2d(MaskedWeight, nn.Conv2d):
    """A ``nn.Conv2d`` whose weight is prunable: a weight source and a mask
    (bench.models.masked_weights)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        nn.Conv2d.__init__(self, *args, **kwargs)
        self._init_masking()

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(x, self.effective_weight(), self.bias)


class PrunableLinear(MaskedWeight, nn.Linear):
    """A ``nn.Linear`` whose weight is prunable: a weight source and a mask
    (bench.models.masked_weights)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        nn.Linear.__init__(self, *args, **kwargs)
        self._init_masking()

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.effective_weight(), self.bias)


def scaled(channels: int, width: float) -> int:
    """``channels * width`` rounded half up, at least 1 (the width multiplier of every model)."""
    return max(1, int(channels * width + 0.5))


PRUNABLE_TYPES: tuple[type[nn.Module], ...] = (PrunableConv2d, PrunableLinear)
