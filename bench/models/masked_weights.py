"""Masked weights: the one mechanism behind every prunable conv and linear layer.

A prunable layer has a *weight source* and a *mask*:

- weight source: trainable dense weights (the default), or fixed random weights
  regenerated from a :class:`RandomWeights` recipe (Edge-Popup, PEMN). A recipe that
  names another layer's stream, or tiles a short prefix, expresses PEMN's shared
  prototypes (one-layer copies, max-layer prefix, random-vector tiling);
- mask: none, a fixed binary mask (pruning), or trainable scores turned into a
  per-layer top-k mask on every forward pass with a straight-through gradient.

The forward pass uses ``weight * mask``; masks are float buffers, so a pruned weight
gets no gradient and, zeroed when the mask is set, stays exactly zero under SGD,
momentum, weight decay and AdamW.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

import torch
from torch import Tensor, nn

from bench import rng
from bench.counts import fan_in, pruned_count

WeightScheme = Literal["kaiming-normal", "signed-constant"]
SCHEMES: tuple[str, ...] = get_args(WeightScheme)


@dataclass(frozen=True)
class RandomWeights:
    """Fixed random weights as a recipe: the first values of Philox stream ``stream``.

    Values are ``N(0, 2/fan_in)`` (``kaiming-normal``) or ``+-sqrt(2/fan_in)``
    (``signed-constant``). A layer of n weights takes the first n values of the stream,
    row-major; with ``period`` it takes the first ``period`` values tiled to length n,
    restarting at value 0 (PEMN's random-vector padding). Layers sharing a stream share
    values: that is how prototypes are expressed.
    """

    scheme: WeightScheme
    seed: int
    stream: int
    fan_in: int
    period: int | None = None

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise ValueError(f"unknown weight scheme {self.scheme!r}; valid: {SCHEMES}")
        if self.period is not None and self.period < 1:
            raise ValueError("period must be >= 1")

    def values(self, n: int) -> Tensor:
        """The first ``n`` prototype values of the stream (float32)."""
        if self.scheme == "kaiming-normal":
            return rng.kaiming_normal((n,), self.fan_in, self.seed, self.stream)
        return rng.signed_constant((n,), self.fan_in, self.seed, self.stream)

    def materialize(self, shape: tuple[int, ...]) -> Tensor:
        """The weight tensor of ``shape`` this recipe defines (float32, CPU)."""
        n = math.prod(shape)
        if self.period is None:
            return self.values(n).reshape(shape)
        base = self.values(self.period)
        return base.repeat(-(-n // self.period))[:n].reshape(shape)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def topk_mask(scores: Tensor, density: float) -> Tensor:
    """Float 0/1 mask keeping exactly ``numel - pruned_count`` of the largest ``|scores|``.

    Ties at the cut are broken as a stable ascending sort would (see :func:`_largest`).
    """
    return _largest(scores.detach().abs(), density)


def _largest(magnitude: Tensor, density: float) -> Tensor:
    """Float 0/1 mask of the largest entries of a non-negative tensor: Edge-Popup's rule.

    The authors' ``GetSubnet`` (allenai/hidden-networks ``utils/conv_type.py``; PEMN's
    ``src/convmixer/models.py`` is the same) sorts the flattened scores ascending and
    zeroes the first ``j = int((1 - density) * numel)``: exactly ``numel - j`` are kept,
    whatever the ties. This computes the same set without a sort: the ``j``-th smallest
    value ``t`` (``kthvalue``, a selection) splits the entries into below (pruned), above
    (kept) and tied with ``t``; of the tied ones the first ``j - #below`` in flattened
    (row-major, whatever the memory layout) order are pruned and the rest kept, which is
    what ``sort(stable=True)`` gives: on exact ties the earlier position is pruned first.
    The authors' default ``sort()`` is not stable (on CPU an introsort or x86-simd-sort,
    on CUDA a bitonic or radix sort), so its order among exact ties is the algorithm's,
    not a rule; the stable order is the deterministic one and the same on every device.
    No host synchronisation, so it runs inside compiled graphs on every forward pass.
    """
    j = pruned_count(magnitude.numel(), density)
    if j <= 0:
        return torch.ones_like(magnitude)
    flat = magnitude.reshape(-1)
    threshold = flat.kthvalue(j).values
    tied = flat == threshold
    tied_to_prune = j - (flat < threshold).sum()
    keep = (flat > threshold) | (tied & (tied.cumsum(0) > tied_to_prune))
    out = torch.empty_like(magnitude)  # the input's memory layout (channels_last on CUDA)
    return out.copy_(keep.view(magnitude.shape))


class _TopKStraightThrough(torch.autograd.Function):
    """Forward: the top-k mask of its (non-negative) input; backward: the gradient unchanged.

    It is applied to ``|scores|``, so the scores receive ``dL/dM * sign(scores)``, as in
    Edge-Popup's code (``GetSubnet.apply(scores.abs(), k)``).
    """

    @staticmethod
    def forward(ctx: Any, magnitude: Tensor, density: float) -> Tensor:  # noqa: ARG004
        return _largest(magnitude, density)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:  # noqa: ARG004
        return grad, None


class MaskedWeight:
    """Mixin for ``nn.Conv2d`` / ``nn.Linear``: weight source and mask as described above.

    State: ``weight`` (a Parameter, frozen for random weights), buffer ``mask`` (float 0/1
    of the weight's shape, or None), Parameter ``scores`` (or None) with ``score_density``.
    """

    weight: nn.Parameter
    weight_source: RandomWeights | None
    score_density: float | None

    def _init_masking(self) -> None:
        self.weight_source = None
        self.score_density = None
        self.register_buffer("mask", None)  # type: ignore[attr-defined]
        self.register_parameter("scores", None)  # type: ignore[attr-defined]

    # ---------------------------------------------------------------- weight sources
    def set_random_weights(self, source: RandomWeights) -> None:
        """Replace the weights by the recipe's fixed random values; they are never trained."""
        values = source.materialize(tuple(self.weight.shape))
        with torch.no_grad():
            self.weight.copy_(values.to(self.weight.device))
            if self.mask is not None:
                self.weight.mul_(self.mask)
        self.weight.requires_grad_(False)
        self.weight_source = source

    # ---------------------------------------------------------------- masks
    def set_mask(self, mask: Tensor, revivable: bool = False) -> None:
        """Fix a binary mask (any dtype, the weight's shape); zeroes the weights it prunes.

        ``revivable``: replace the mask and leave the weights as they are, so that a later
        mask may bring a pruned weight back with its value (FORCE's pruning rounds; the
        forward pass multiplies by the mask either way).
        """
        if tuple(mask.shape) != tuple(self.weight.shape):
            raise ValueError(f"mask shape {tuple(mask.shape)} != weight {tuple(self.weight.shape)}")
        if self.scores is not None:
            raise ValueError("layer trains scores; call freeze_scores() first")
        new = (mask != 0).to(device=self.weight.device, dtype=self.weight.dtype)
        new = new.contiguous(memory_format=_memory_format(self.weight))
        if revivable:
            self.mask = new
            return
        with torch.no_grad():
            if self.mask is not None:
                new.mul_(self.mask)  # already pruned weights stay pruned
            self.weight.mul_(new)
        self.mask = new

    def clear_mask(self) -> None:
        """Remove the fixed mask (the zeroed weights stay zero)."""
        self.mask = None

    def use_scores(self, density: float, generator: torch.Generator | None = None) -> None:
        """Train a per-layer top-k mask of keep ratio ``density`` through scores.

        Scores start Kaiming-uniform (bound 1/sqrt(fan_in)), as in Edge-Popup.
        """
        if not 0.0 < density <= 1.0:
            raise ValueError(f"density must be in (0, 1], got {density}")
        if self.mask is not None:
            raise ValueError("layer has a fixed mask; scores learn the whole mask")
        bound = 1.0 / math.sqrt(fan_in(self.weight))
        scores = torch.rand(self.weight.shape, generator=generator, dtype=torch.float64)
        scores = ((scores * 2 - 1) * bound).to(self.weight.dtype)
        self.scores = nn.Parameter(scores.to(self.weight.device))
        self.score_density = density

    def freeze_scores(self) -> None:
        """Turn the scores' current top-k mask into a fixed mask and drop the scores."""
        if self.scores is None:
            return
        mask = topk_mask(self.scores, self.score_density or 1.0)
        self.scores = None
        self.score_density = None
        self.set_mask(mask)

    def current_mask(self) -> Tensor | None:
        """The binary mask in use right now (bool), or None for a dense layer."""
        if self.scores is not None:
            return topk_mask(self.scores, self.score_density or 1.0) != 0
        if self.mask is not None:
            return self.mask != 0
        return None

    def effective_weight(self) -> Tensor:
        """What the forward pass multiplies with: weight x mask."""
        if self.scores is not None:
            mask = _TopKStraightThrough.apply(self.scores.abs(), self.score_density)
            return self.weight * mask
        if self.mask is not None:
            return self.weight * self.mask
        return self.weight

    def kept(self) -> int:
        """Number of weights the current mask keeps."""
        mask = self.current_mask()
        return self.weight.numel() if mask is None else int(mask.sum().item())


def _memory_format(t: Tensor) -> torch.memory_format:
    channels_last = t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last)
    if channels_last and not t.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Every parameter that requires grad (frozen random weights are left out)."""
    return [p for p in model.parameters() if p.requires_grad]
