"""Seeds for independent random streams: ``mix_seed(seed, stream)`` (splitmix64) and the
device generators seeded from it, so a (seed, epoch) draw never depends on what ran before."""

from __future__ import annotations

import torch

_MASK64 = (1 << 64) - 1
PRUNING_STREAM = 0x7072756E696E67  # "pruning": far from any epoch number


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def mix_seed(seed: int, stream: int) -> int:
    """A stable 63-bit generator seed for (seed, stream), e.g. stream = epoch (splitmix64)."""
    return _splitmix64(_splitmix64(seed & _MASK64) ^ (stream & _MASK64)) >> 1


def make_generator(device: torch.device | str, seed: int, stream: int) -> torch.Generator:
    """A torch.Generator on ``device`` seeded from (seed, stream)."""
    g = torch.Generator(device=torch.device(device))
    g.manual_seed(mix_seed(seed, stream))
    return g
