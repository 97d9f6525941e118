"""The PEMN authors' training augmentation on uint8 batches [n,3,H,W], without torchvision.

Their CIFAR pipeline (src/convmixer/train.py with their README's flags) is
RandomResizedCrop(32, scale=(1, 1), ratio=(1, 1)), an identity on 32x32 images and so left
out; RandomHorizontalFlip(0.5); RandAugment(num_ops=2, magnitude=12) with 31 bins, nearest
interpolation and fill 0; ColorJitter(0.2, 0.2, 0.2) without hue; ToTensor and Normalize;
RandomErasing(p=0.2, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0). Every operation follows
torchvision's tensor implementation (float32 blends truncated to uint8, its grayscale
weights, its affine grids). Each image draws its own operations and parameters from one
``torch.Generator`` on the batch's device, so a (seed, epoch) gives the same images.
RandomErasing acts after normalisation (its 0 is the channel mean), so :func:`pemn_authors`
returns the boxes for the caller to :func:`erase` on the normalised batch.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn.functional import grid_sample

RA_OPS = ("identity", "shear-x", "shear-y", "translate-x", "translate-y", "rotate",
          "brightness", "color", "contrast", "sharpness", "posterize", "solarize",
          "autocontrast", "equalize")  # torchvision's RandAugment order: the index is drawn
GEOMETRIC = RA_OPS[1:6]
ENHANCE = RA_OPS[6:10]
SIGNED = GEOMETRIC + ENHANCE
RA_NUM_OPS, RA_MAGNITUDE, RA_BINS = 2, 12, 31
JITTER = 0.2
ERASE_P, ERASE_SCALE, ERASE_RATIO, ERASE_ATTEMPTS = 0.2, (0.02, 0.33), (0.3, 3.3), 10


def _per_image(value: float | Tensor, n: int, device: torch.device) -> Tensor:
    """``value`` (one number, or one per image) as a float64 tensor [n] on ``device``."""
    t = torch.as_tensor(value, dtype=torch.float64, device=device)
    return t.expand(n) if t.ndim == 0 else t


def _images(mask: Tensor) -> Tensor:
    """A per-image bool [n] as [n,1,1,1], for ``torch.where`` over a batch."""
    return mask.view(-1, 1, 1, 1)


# --------------------------------------------------------------------------- colour


def blend(x: Tensor, other: Tensor | float, factor: float | Tensor) -> Tensor:
    """``f*x + (1-f)*other`` in float32, clamped to 0..255 and truncated to uint8.

    ``factor`` is float64 (one or per image); f and 1-f are each rounded to float32 from it,
    as torchvision's ``_blend`` does with a Python float."""
    f = _per_image(factor, x.shape[0], x.device).view(-1, 1, 1, 1)
    other = torch.as_tensor(other, dtype=torch.float32, device=x.device)
    mixed = f.float() * x.float() + (1.0 - f).float() * other
    return mixed.clamp(0, 255).to(torch.uint8)


def grayscale(x: Tensor) -> Tensor:
    """Luma uint8 [n,1,H,W]: 0.2989 R + 0.587 G + 0.114 B in float32, truncated."""
    r, g, b = x.unbind(1)
    return (0.2989 * r + 0.587 * g + 0.114 * b).to(torch.uint8).unsqueeze(1)


def _gray_mean(x: Tensor) -> Tensor:
    """Each image's mean luma (of the truncated uint8 luma), float32 [n,1,1,1]."""
    return grayscale(x).float().mean(dim=(1, 2, 3), keepdim=True)


def adjust_brightness(x: Tensor, factor: float | Tensor) -> Tensor:
    """Blend with black: ``f*x``."""
    return blend(x, 0.0, factor)


def adjust_saturation(x: Tensor, factor: float | Tensor) -> Tensor:
    """Blend with the image's luma (RandAugment's Color, ColorJitter's saturation)."""
    return blend(x, grayscale(x), factor)


def adjust_contrast(x: Tensor, factor: float | Tensor) -> Tensor:
    """Blend with the image's mean luma."""
    return blend(x, _gray_mean(x), factor)


def smoothed(x: Tensor) -> Tensor:
    """Sharpness' degenerate image: interior pixels (1 1 1; 1 5 1; 1 1 1)/13, rounded; border kept.

    Integer arithmetic: a sum over 13 is never a tie, so this equals torchvision's float conv."""
    h, w = x.shape[-2:]
    v = x.to(torch.int32)
    s = 4 * v[:, :, 1:-1, 1:-1]
    for i in range(3):
        for j in range(3):
            s = s + v[:, :, i:h - 2 + i, j:w - 2 + j]
    out = x.clone()
    out[:, :, 1:-1, 1:-1] = ((2 * s + 13) // 26).to(torch.uint8)
    return out


def adjust_sharpness(x: Tensor, factor: float | Tensor) -> Tensor:
    """Blend with :func:`smoothed`; images of width or height 2 or less are returned as they are."""
    if x.shape[-1] <= 2 or x.shape[-2] <= 2:
        return x
    return blend(x, smoothed(x), factor)


def posterize(x: Tensor, bits: int) -> Tensor:
    """Keep the ``bits`` high bits of every value."""
    return x & ((0xFF << (8 - int(bits))) & 0xFF)


def solarize(x: Tensor, threshold: float) -> Tensor:
    """Invert (255 - v) every value ``>= threshold``."""
    return torch.where(x >= threshold, 255 - x, x)


def autocontrast(x: Tensor) -> Tensor:
    """Stretch each channel linearly from [min, max] to [0, 255] (float32, truncated)."""
    lo = x.amin(dim=(2, 3), keepdim=True).float()
    hi = x.amax(dim=(2, 3), keepdim=True).float()
    scale = 255 / (hi - lo)
    flat = ~torch.isfinite(scale)  # a constant channel is left alone
    lo = torch.where(flat, 0.0, lo)
    scale = torch.where(flat, 1.0, scale)
    return ((x - lo) * scale).clamp(0, 255).to(torch.uint8)


def equalize(x: Tensor) -> Tensor:
    """Histogram-equalise each channel with PIL's and torchvision's lookup table.

    step = (pixels - count of the channel's maximum) // 255; step 0 leaves the channel alone,
    else value v maps to (count of values below v + step // 2) // step, at most 255."""
    n, c, h, w = x.shape
    rows = n * c
    flat = x.reshape(rows, h * w).long()
    offsets = 256 * torch.arange(rows, device=x.device).view(rows, 1)
    hist = torch.bincount((flat + offsets).flatten(), minlength=rows * 256).view(rows, 256)
    top = hist.gather(1, flat.amax(dim=1, keepdim=True))
    step = (h * w - top) // 255
    below = hist.cumsum(1) - hist  # count of values strictly below each v
    lut = ((below + step // 2) // step.clamp(min=1)).clamp(max=255)
    out = torch.where(step == 0, flat, lut.gather(1, flat))
    return out.to(torch.uint8).view(n, c, h, w)


# --------------------------------------------------------------------------- geometry


def inverse_affine(center: tuple[float, float], angle: float, translate: tuple[float, float],
                   shear: tuple[float, float]) -> list[float]:
    """torchvision's inverse affine matrix (scale 1), output to input, in coordinates centred on
    the image: ``center`` is the fixed point, ``angle`` and ``shear`` in degrees."""
    rot, sx, sy = math.radians(angle), math.radians(shear[0]), math.radians(shear[1])
    a = math.cos(rot - sy) / math.cos(sy)
    b = -math.cos(rot - sy) * math.tan(sx) / math.cos(sy) - math.sin(rot)
    c = math.sin(rot - sy) / math.cos(sy)
    d = -math.sin(rot - sy) * math.tan(sx) / math.cos(sy) + math.cos(rot)
    m = [d, -b, 0.0, -c, a, 0.0]  # the inverse of [[a, b], [c, d]] (determinant 1)
    ux, uy = -center[0] - translate[0], -center[1] - translate[1]
    m[2] += m[0] * ux + m[1] * uy  # the same additions in the same order as torchvision
    m[5] += m[3] * ux + m[4] * uy
    m[2] += center[0]
    m[5] += center[1]
    return m


def affine_grid(matrix: list[float], h: int, w: int, device: torch.device) -> Tensor:
    """The ``grid_sample`` grid [1,h,w,2] of an inverse affine matrix, as torchvision builds it:
    float32 pixel centres about the image centre, mapped by one bmm, scaled to [-1, 1]."""
    theta = torch.tensor(matrix, dtype=torch.float32, device=device).view(1, 2, 3)
    xs = torch.linspace(0.5 - w * 0.5, w * 0.5 - 0.5, w, device=device)
    ys = torch.linspace(0.5 - h * 0.5, h * 0.5 - 0.5, h, device=device)
    ones = torch.ones(1, 1, device=device)
    base = torch.stack(torch.broadcast_tensors(xs.view(1, w), ys.view(h, 1), ones), dim=-1)
    scaled = theta.transpose(1, 2) / torch.tensor([0.5 * w, 0.5 * h], device=device)
    return base.reshape(1, h * w, 3).bmm(scaled).view(1, h, w, 2)


def warp(x: Tensor, grid: Tensor) -> Tensor:
    """Nearest-neighbour resampling of uint8 ``x`` at ``grid`` [n,H,W,2], 0 outside the image."""
    out = grid_sample(x.float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return out.round().to(torch.uint8)


def geometric_matrix(op: str, magnitude: float, h: int, w: int) -> list[float]:
    """RandAugment's inverse matrix for ``op`` at a signed ``magnitude``: shears (a tangent)
    fix the top-left corner, translations move by int(magnitude) pixels, rotations turn
    ``magnitude`` degrees counter-clockwise about the centre."""
    if op == "shear-x":
        return inverse_affine((-w * 0.5, -h * 0.5), 0.0, (0.0, 0.0),
                              (math.degrees(math.atan(magnitude)), 0.0))
    if op == "shear-y":
        return inverse_affine((-w * 0.5, -h * 0.5), 0.0, (0.0, 0.0),
                              (0.0, math.degrees(math.atan(magnitude))))
    if op == "translate-x":
        return inverse_affine((0.0, 0.0), 0.0, (float(int(magnitude)), 0.0), (0.0, 0.0))
    if op == "translate-y":
        return inverse_affine((0.0, 0.0), 0.0, (0.0, float(int(magnitude))), (0.0, 0.0))
    if op == "rotate":
        return inverse_affine((0.0, 0.0), -magnitude, (0.0, 0.0), (0.0, 0.0))
    raise ValueError(f"{op!r} is not a geometric operation: {', '.join(GEOMETRIC)}")


def geometric(x: Tensor, op: str, magnitude: float) -> Tensor:
    """One geometric operation (see :func:`geometric_matrix`) on every image of ``x``."""
    n, _, h, w = x.shape
    return warp(x, affine_grid(geometric_matrix(op, magnitude, h, w), h, w, x.device)
                .expand(n, h, w, 2))


# --------------------------------------------------------------------------- RandAugment


def ra_magnitudes(h: int, w: int, magnitude: int = RA_MAGNITUDE,
                  bins: int = RA_BINS) -> dict[str, float]:
    """Each operation's unsigned magnitude at bin ``magnitude`` of ``bins`` on an h x w image
    (torchvision's float32 tables: 0.12, 5.8 px, 12 degrees, 0.36, 6 bits, 153 at 12 of 31)."""
    def level(top: float) -> float:
        return float(torch.linspace(0.0, top, bins)[magnitude])

    bits = 8 - (torch.arange(bins) / ((bins - 1) / 4)).round().int()
    enhance = level(0.9)
    return {"identity": 0.0, "shear-x": level(0.3), "shear-y": level(0.3),
            "translate-x": level(150.0 / 331.0 * w), "translate-y": level(150.0 / 331.0 * h),
            "rotate": level(30.0), "brightness": enhance, "color": enhance,
            "contrast": enhance, "sharpness": enhance, "posterize": float(bits[magnitude]),
            "solarize": float(torch.linspace(255.0, 0.0, bins)[magnitude]),
            "autocontrast": 0.0, "equalize": 0.0}


def apply_ops(x: Tensor, op: Tensor, negative: Tensor, magnitude: int = RA_MAGNITUDE,
              bins: int = RA_BINS) -> Tensor:
    """Image i gets operation ``RA_OPS[op[i]]``, its magnitude negated where ``negative[i]``
    (signed operations only): each family computed for the batch once, picked per image."""
    n, _, h, w = x.shape
    dev = x.device
    mags = ra_magnitudes(h, w, magnitude, bins)

    def chosen(name: str) -> Tensor:
        return _images(op == RA_OPS.index(name))

    grids = torch.cat([affine_grid(geometric_matrix(name, sign * mags[name], h, w), h, w, dev)
                       for name in GEOMETRIC for sign in (1.0, -1.0)])
    first = RA_OPS.index(GEOMETRIC[0])
    pick = (op - first).clamp(0, len(GEOMETRIC) - 1) * 2 + negative.long()
    is_geometric = (op >= first) & (op < first + len(GEOMETRIC))
    out = torch.where(_images(is_geometric), warp(x, grids[pick]), x)

    factors = torch.ones(len(RA_OPS), 2, dtype=torch.float64)  # [op, negative]: 1 + (+-m)
    for name in ENHANCE:
        factors[RA_OPS.index(name)] = torch.tensor([1.0 + mags[name], 1.0 + -mags[name]],
                                                   dtype=torch.float64)
    factor = factors.to(dev)[op, negative.long()]
    other = torch.where(chosen("color"), grayscale(x).float(),
                        torch.where(chosen("contrast"), _gray_mean(x), 0.0))
    is_enhance = (op >= RA_OPS.index(ENHANCE[0])) & (op <= RA_OPS.index(ENHANCE[-1]))
    if h > 2 and w > 2:
        other = torch.where(chosen("sharpness"), smoothed(x).float(), other)
    else:  # torchvision leaves images this small unsharpened
        is_enhance &= op != RA_OPS.index("sharpness")
    out = torch.where(_images(is_enhance), blend(x, other, factor), out)

    out = torch.where(chosen("posterize"), posterize(x, int(mags["posterize"])), out)
    out = torch.where(chosen("solarize"), solarize(x, mags["solarize"]), out)
    out = torch.where(chosen("autocontrast"), autocontrast(x), out)
    return torch.where(chosen("equalize"), equalize(x), out)


def rand_augment(x: Tensor, generator: torch.Generator, num_ops: int = RA_NUM_OPS,
                 magnitude: int = RA_MAGNITUDE, bins: int = RA_BINS) -> Tensor:
    """RandAugment: ``num_ops`` rounds; per round each image draws an operation (uniform over
    the 14) and a sign (1 of 2, used by signed operations)."""
    n, dev = x.shape[0], x.device
    for _ in range(num_ops):
        op = torch.randint(0, len(RA_OPS), (n,), generator=generator, device=dev)
        negative = torch.randint(0, 2, (n,), generator=generator, device=dev).bool()
        x = apply_ops(x, op, negative, magnitude, bins)
    return x


# --------------------------------------------------------------------------- ColorJitter


def jitter(x: Tensor, order: Tensor, factors: Tensor) -> Tensor:
    """ColorJitter without hue: image i applies brightness (0), contrast (1) and saturation (2)
    by ``factors[i]`` (float64 [n,3]) in the order of the permutation ``order[i]`` of 0..3
    (3, the hue slot, does nothing)."""
    n = x.shape[0]
    for slot in range(order.shape[1]):
        fn = order[:, slot]
        other = torch.where(_images(fn == 2), grayscale(x).float(),
                            torch.where(_images(fn == 1), _gray_mean(x), 0.0))
        factor = factors.gather(1, fn.clamp(max=2).view(n, 1)).squeeze(1)
        x = torch.where(_images(fn == 3), x, blend(x, other, factor))
    return x


def color_jitter(x: Tensor, generator: torch.Generator, strength: float = JITTER) -> Tensor:
    """ColorJitter(strength, strength, strength): per image a random order of the three
    adjustments and factors uniform in [1 - strength, 1 + strength]."""
    n, dev = x.shape[0], x.device
    order = torch.rand(n, 4, generator=generator, device=dev).argsort(dim=1)
    u = torch.rand(n, 3, generator=generator, device=dev, dtype=torch.float64)
    low = max(0.0, 1.0 - strength)
    return jitter(x, order, low + (1.0 + strength - low) * u)


# --------------------------------------------------------------------------- RandomErasing


def erasing_boxes(n: int, h: int, w: int, generator: torch.Generator, device: torch.device,
                  p: float = ERASE_P, scale: tuple[float, float] = ERASE_SCALE,
                  ratio: tuple[float, float] = ERASE_RATIO,
                  attempts: int = ERASE_ATTEMPTS) -> Tensor:
    """RandomErasing's boxes (top, left, height, width) as int64 [n,4], height 0 = not erased.

    With probability ``p`` an image tries ``attempts`` boxes of area scale x h*w and aspect
    height/width log-uniform in ``ratio`` (sides rounded half to even); the first with both
    sides smaller than the image's is placed uniformly; if none fits, nothing is erased."""
    erase_it = torch.rand(n, generator=generator, device=device) < p
    u = torch.rand(n, attempts, 2, generator=generator, device=device, dtype=torch.float64)
    area = h * w * (scale[0] + (scale[1] - scale[0]) * u[..., 0])
    lo, hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(lo + (hi - lo) * u[..., 1])
    tall = torch.sqrt(area * aspect).round().long()
    wide = torch.sqrt(area / aspect).round().long()
    fits = (tall < h) & (wide < w)
    tries = torch.arange(attempts, device=device).expand(n, attempts)
    first = torch.where(fits, tries, attempts).amin(dim=1, keepdim=True)
    erase_it &= first.squeeze(1) < attempts
    first = first.clamp(max=attempts - 1)
    tall, wide = tall.gather(1, first).squeeze(1), wide.gather(1, first).squeeze(1)
    pos = torch.rand(n, 2, generator=generator, device=device, dtype=torch.float64)
    top = torch.minimum((pos[:, 0] * (h - tall + 1)).floor().long(), h - tall)
    left = torch.minimum((pos[:, 1] * (w - wide + 1)).floor().long(), w - wide)
    none = torch.zeros_like(tall)
    return torch.stack([top, left, torch.where(erase_it, tall, none),
                        torch.where(erase_it, wide, none)], dim=1)


def erase(x: Tensor, boxes: Tensor, value: float = 0.0) -> Tensor:
    """``x`` [n,C,H,W] (any dtype) with each image's box (top, left, height, width) set to
    ``value`` in every channel."""
    n, _, h, w = x.shape
    top, left, tall, wide = (b.view(n, 1, 1) for b in boxes.to(x.device).unbind(1))
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (rows >= top) & (rows < top + tall) & (cols >= left) & (cols < left + wide)
    return x.masked_fill(inside.unsqueeze(1), value)


# --------------------------------------------------------------------------- the pipeline


def pemn_authors(x: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """The authors' pipeline on uint8 ``x``: flip (p=0.5), RandAugment(2, 12), ColorJitter(0.2)
    as uint8 images, and the RandomErasing boxes to apply after normalisation (:func:`erase`
    with 0). Draws: flips, then per round op and sign, then jitter order and factors, then
    the erasing decision, box shapes and positions."""
    n, _, h, w = x.shape
    flips = torch.rand(n, generator=generator, device=x.device) < 0.5
    x = torch.where(_images(flips), x.flip(3), x)
    x = rand_augment(x, generator)
    x = color_jitter(x, generator)
    return x, erasing_boxes(n, h, w, generator, x.device)
