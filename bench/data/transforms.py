"""Augmentations by name on uint8 batches [n,3,H,W], on their device: "crop-flip", "flip",
"none", and "pemn-authors" (:mod:`bench.data.augment`); the names are listed once in
:mod:`bench.recipe`."""

from __future__ import annotations

import torch
from torch import Tensor

from bench.data.augment import pemn_authors
from bench.errors import BenchError
from bench.recipe import AUGMENTATIONS

AUGMENTS = AUGMENTATIONS  # the augmentation names, listed once in bench.recipe
CROP_PAD = 4


def crop_flip(x: Tensor, offsets: Tensor, flips: Tensor, pad: int = CROP_PAD) -> Tensor:
    """Crop each image of ``x`` (uint8 [n,C,H,W]) from its zero-padded copy, then mirror it.

    ``offsets`` int [n,2] is the (row, col) of the crop's top-left corner in the padded
    image (0..2*pad); ``flips`` bool [n] mirrors left-right. One gather, no per-image loop.
    """
    n, _, h, w = x.shape
    if pad:
        x = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dev = x.device
    rows = offsets[:, 0:1].to(dev, torch.long) + torch.arange(h, device=dev)  # [n,h]
    cols = torch.arange(w, device=dev).expand(n, w)
    cols = torch.where(flips.to(dev).view(n, 1), cols.flip(1), cols)
    cols = offsets[:, 1:2].to(dev, torch.long) + cols  # [n,w]
    batch = torch.arange(n, device=dev).view(n, 1, 1)
    hwc = x.permute(0, 2, 3, 1)[batch, rows.view(n, h, 1), cols.view(n, 1, w)]  # [n,h,w,C]
    return hwc.permute(0, 3, 1, 2).contiguous()


def augment_batch(x: Tensor, generator: torch.Generator, kind: str = "crop-flip") -> Tensor:
    """Randomly augment uint8 images [n,3,H,W] on their device with ``generator``.

    "crop-flip": zero-pad 4, random crop back to size, random horizontal flip (p=0.5);
    "flip": the flip only; "none": unchanged. Draws crop offsets first, then flips.
    "pemn-authors": bench.data.augment's flip, RandAugment and ColorJitter; its random erasing
    acts on normalised images, so only :meth:`DeviceData.augment` applies it.
    """
    check_augment(kind)
    if kind == "none":
        return x
    if kind == "pemn-authors":
        return pemn_authors(x, generator)[0]
    n, dev = x.shape[0], x.device
    if kind == "crop-flip":
        offsets = torch.randint(0, 2 * CROP_PAD + 1, (n, 2), generator=generator, device=dev)
        flips = torch.rand(n, generator=generator, device=dev) < 0.5
        return crop_flip(x, offsets, flips, CROP_PAD)
    flips = torch.rand(n, generator=generator, device=dev) < 0.5
    return torch.where(flips.view(n, 1, 1, 1), x.flip(3), x)


WHOLE_EPOCH = ("crop-flip", "flip", "none")
"""Augmentations :func:`whole_epoch` makes at once (pemn-authors goes batch by batch)."""


def _draws(n: int, generator: torch.Generator, kind: str, device: torch.device
           ) -> tuple[Tensor | None, Tensor | None]:
    """One batch's random draws, as :func:`augment_batch` makes them: offsets, then flips."""
    if kind == "none":
        return None, None
    offsets = (torch.randint(0, 2 * CROP_PAD + 1, (n, 2), generator=generator, device=device)
               if kind == "crop-flip" else None)
    return offsets, torch.rand(n, generator=generator, device=device) < 0.5


def whole_epoch(x: Tensor, index: Tensor, batch: int, generator: torch.Generator,
                kind: str) -> Tensor:
    """``x[index]`` augmented as :func:`augment_batch` would, batch after batch of
    ``batch`` images, with the same draws from ``generator`` in the same order, but
    applied in one gather over the whole epoch (uint8; identical pixels, fewer kernels)."""
    if kind not in WHOLE_EPOCH:
        raise BenchError(f"augmentation {kind!r} is made batch by batch")
    images = x[index]
    if kind == "none":
        return images
    draws = [_draws(len(index[k:k + batch]), generator, kind, x.device)
             for k in range(0, len(index), batch)]
    flips = torch.cat([f for _, f in draws])  # type: ignore[misc]
    if kind == "crop-flip":
        return crop_flip(images, torch.cat([o for o, _ in draws]), flips,  # type: ignore[misc]
                         CROP_PAD)
    return torch.where(flips.view(-1, 1, 1, 1), images.flip(3), images)


def check_augment(kind: str) -> None:
    """A BenchError unless ``kind`` is one of the augmentation names."""
    if kind not in AUGMENTS:
        raise BenchError(f"unknown augmentation {kind!r}; valid: {', '.join(AUGMENTS)}")
