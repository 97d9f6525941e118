"""CIFAR ResNets (He et al. 2016): 6n+2 layers at widths 16/32/64.

Module names follow OpenLTH / the PX code (``conv``, ``bn``, ``blocks.i.conv1`` ...,
``blocks.i.shortcut.0/1``, ``fc``) because the faithful PX variant keys on BatchNorm names.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bench.models.layers import PrunableConv2d, PrunableLinear, scaled


class ShortcutA(nn.Module):
    """Option-A shortcut: parameter-free spatial subsampling plus zero-padded channels."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.pad_front = (out_channels - in_channels) // 2
        self.pad_back = out_channels - in_channels - self.pad_front

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad_front, self.pad_back))


class BasicBlock(nn.Module):
    """Two 3x3 conv+BN layers with a residual connection; ReLU after the add."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, shortcut: str) -> None:
        super().__init__()
        self.conv1 = PrunableConv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu1 = nn.ReLU()
        self.conv2 = PrunableConv2d(out_channels, out_channels, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module
        if stride == 1 and in_channels == out_channels:
            self.shortcut = nn.Identity()
        elif shortcut == "A":
            self.shortcut = ShortcutA(in_channels, out_channels, stride)
        else:
            self.shortcut = nn.Sequential(
                PrunableConv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = out + self.shortcut(x)
        return self.relu2(out)


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for 32x32 inputs: stem conv, three stages of n blocks, avg pool, fc."""

    def __init__(
        self, depth: int, num_classes: int, width: float = 1.0, shortcut: str = "B"
    ) -> None:
        super().__init__()
        if (depth - 2) % 6 != 0:
            raise ValueError(f"ResNet depth must be 6n+2, got {depth}")
        n = (depth - 2) // 6
        widths = [scaled(c, width) for c in (16, 32, 64)]
        self.conv = PrunableConv2d(3, widths[0], 3, 1, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU()
        blocks: list[nn.Module] = []
        channels = widths[0]
        for stage, out_channels in enumerate(widths):
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(BasicBlock(channels, out_channels, stride, shortcut))
                channels = out_channels
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = PrunableLinear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn(self.conv(x)))
        out = self.blocks(out)
        out = torch.flatten(self.pool(out), 1)
        return self.fc(out)
