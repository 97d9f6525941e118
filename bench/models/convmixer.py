"""ConvMixer-H/D (Trockman & Kolter), as used by PEMN: all convs bias-free, all prunable."""

from __future__ import annotations

import torch
from torch import nn

from bench.models.layers import PrunableConv2d, PrunableLinear


class MixerBlock(nn.Module):
    """Residual depthwise kxk conv -> GELU -> BN, then pointwise 1x1 conv -> GELU -> BN."""

    def __init__(self, dim: int, kernel: int) -> None:
        super().__init__()
        self.dw = PrunableConv2d(dim, dim, kernel, groups=dim, padding="same", bias=False)
        self.act1 = nn.GELU()
        self.bn1 = nn.BatchNorm2d(dim)
        self.pw = PrunableConv2d(dim, dim, 1, bias=False)
        self.act2 = nn.GELU()
        self.bn2 = nn.BatchNorm2d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.bn1(self.act1(self.dw(x)))
        return self.bn2(self.act2(self.pw(x)))


class ConvMixer(nn.Module):
    """Patch conv (kernel = stride = patch) -> GELU -> BN, D mixer blocks, avg pool, fc."""

    def __init__(
        self, dim: int, depth: int, num_classes: int, kernel: int = 5, patch: int = 2
    ) -> None:
        super().__init__()
        self.stem = PrunableConv2d(3, dim, patch, stride=patch, bias=False)
        self.stem_act = nn.GELU()
        self.stem_bn = nn.BatchNorm2d(dim)
        self.blocks = nn.Sequential(*(MixerBlock(dim, kernel) for _ in range(depth)))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = PrunableLinear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem_bn(self.stem_act(self.stem(x)))
        x = self.blocks(x)
        return self.fc(torch.flatten(self.pool(x), 1))
