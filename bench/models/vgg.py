"""VGG-16-BN, CIFAR variant (as OpenLTH's cifar_vgg_16): 13 conv+BN+ReLU, avg pool, one fc.

Module names follow OpenLTH / the PX code (``layers.i.conv``, ``layers.i.bn``, ``fc``).
"""

from __future__ import annotations

import torch
from torch import nn

from bench.models.layers import PrunableConv2d, PrunableLinear, scaled

VGG16_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512,
)  # fmt: skip


class ConvBN(nn.Module):
    """3x3 conv (with bias, padding 1) -> BatchNorm -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = PrunableConv2d(in_channels, out_channels, 3, padding=1, bias=True)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class CifarVGG(nn.Module):
    """VGG with BatchNorm for 32x32 inputs; AvgPool2d(2) takes the 2x2 map to 1x1."""

    def __init__(
        self, num_classes: int, width: float = 1.0, cfg: tuple[int | str, ...] = VGG16_CFG
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for spec in cfg:
            if spec == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                out_channels = scaled(int(spec), width)
                layers.append(ConvBN(channels, out_channels))
                channels = out_channels
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AvgPool2d(2)
        self.fc = PrunableLinear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.layers(x))
        return self.fc(torch.flatten(x, 1))
