"""Training recipes: optimiser, learning-rate schedule and budget as one frozen dataclass.

A recipe is part of a run's spec (and so of its key); the engine is the only code
that turns it into an optimiser and a per-iteration learning rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any, Literal, get_args

from bench.errors import BenchError

OptimizerName = Literal["sgd", "nesterov", "adamw"]
ScheduleName = Literal["constant", "multistep", "cosine", "piecewise"]
# The one list of augmentation names (bench.data.transforms dispatches on them): "crop-flip"
# (pad 4, random crop, flip), "flip", "none", "pemn-authors" (bench.data.augment: the PEMN
# authors' flip, RandAugment(2, 12), ColorJitter(0.2) and RandomErasing(0.2)).
AugmentName = Literal["crop-flip", "flip", "none", "pemn-authors"]
# How biases are initialised: "zero" (the suite's), or "uniform", torch's default for a new
# Conv2d/Linear, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), which the PX authors and open_lth keep
# (their initialisers redraw the weights only).
BiasInit = Literal["zero", "uniform"]

OPTIMIZERS: tuple[str, ...] = get_args(OptimizerName)
SCHEDULES: tuple[str, ...] = get_args(ScheduleName)
AUGMENTATIONS: tuple[str, ...] = get_args(AugmentName)
BIAS_INITS: tuple[str, ...] = get_args(BiasInit)
MAX_EPOCHS = 100_000  # a budget past this is a typo (the papers train 100 to 160 epochs)


def scaled_epochs(epochs: int, scale: float) -> int:
    """``epochs * scale`` rounded, at least 1; a scale that is not a positive finite number
    or a budget past :data:`MAX_EPOCHS` is a :class:`BenchError`."""
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise BenchError(f"the budget scale must be a positive finite number, got {scale}")
    scaled = epochs * scale
    if scaled > MAX_EPOCHS:
        raise BenchError(f"a budget scale of {scale:g} makes {epochs} epochs {scaled:.3g}, "
                         f"past the limit of {MAX_EPOCHS}")
    return max(1, round(scaled))


@dataclass(frozen=True)
class Recipe:
    """How the final model is trained: identical for every method of one comparison.

    - ``multistep``: lr x ``gamma`` at the start of each epoch listed in ``milestones``;
    - ``cosine``: half a cosine from lr to 0 over all iterations;
    - ``piecewise``: linear between ``knots`` of (fraction of training, lr factor), per iteration;
    - ``constant``: lr throughout.
    ``warmup_epochs`` ramps linearly from 0 at the start (any schedule).

    ``drop_last`` False trains an epoch's last, partial batch too (the PX authors' and
    open_lth's DataLoaders do); ``bias_init`` is how the model's biases start (see
    :data:`BiasInit`; the harness builds the model with it). Both defaults are the suite's
    own; the papers' recipes name their authors' choices.
    """

    epochs: int = 1
    batch_size: int = 128
    optimizer: OptimizerName = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: ScheduleName = "cosine"
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    knots: tuple[tuple[float, float], ...] = ()
    warmup_epochs: float = 0.0
    label_smoothing: float = 0.0
    augment: AugmentName = "crop-flip"
    drop_last: bool = True
    bias_init: BiasInit = "zero"

    def __post_init__(self) -> None:
        problems = []
        if not 1 <= self.epochs <= MAX_EPOCHS:
            problems.append(f"epochs must be between 1 and {MAX_EPOCHS}, got {self.epochs}")
        if self.batch_size < 1:
            problems.append(f"batch_size must be >= 1, got {self.batch_size}")
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"optimizer {self.optimizer!r} is not one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            problems.append(f"schedule {self.schedule!r} is not one of {', '.join(SCHEDULES)}")
        if self.augment not in AUGMENTATIONS:
            problems.append(f"augment {self.augment!r} is not one of {', '.join(AUGMENTATIONS)}")
        if self.bias_init not in BIAS_INITS:
            problems.append(f"bias_init {self.bias_init!r} is not one of {', '.join(BIAS_INITS)}")
        if not self.lr > 0:
            problems.append(f"lr must be > 0, got {self.lr}")
        if self.schedule == "piecewise" and len(self.knots) < 2:
            problems.append("a piecewise schedule needs at least two knots")
        if not 0 <= self.label_smoothing < 1:
            problems.append(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if problems:
            raise BenchError("bad recipe: " + "; ".join(problems))

    def with_epochs(self, epochs: int) -> Recipe:
        """The same recipe with another budget; milestones scale with it."""
        if epochs == self.epochs:
            return self
        scaled = tuple(max(1, round(m * epochs / self.epochs)) for m in self.milestones)
        return replace(self, epochs=epochs, milestones=scaled)

    def canonical(self) -> dict[str, Any]:
        """Fields that differ from the defaults, JSON-ready: the recipe's part of a run key."""
        out: dict[str, Any] = {}
        default = Recipe()
        for f in fields(self):
            value = getattr(self, f.name)
            if value != getattr(default, f.name):
                out[f.name] = _jsonable(value)
        return out

    def as_dict(self) -> dict[str, Any]:
        """Every field, JSON-ready (for records)."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipe:
        """Inverse of :meth:`as_dict` / :meth:`canonical` (missing fields take defaults)."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise BenchError(f"unknown recipe fields: {', '.join(sorted(unknown))}")
        values = dict(data)
        if "milestones" in values:
            values["milestones"] = tuple(int(m) for m in values["milestones"])
        if "knots" in values:
            values["knots"] = tuple((float(a), float(b)) for a, b in values["knots"])
        return cls(**values)


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


def lr_factor(recipe: Recipe, step: int, steps_per_epoch: int) -> float:
    """Multiplier of the peak learning rate at iteration ``step`` (0-based)."""
    total = recipe.epochs * steps_per_epoch
    t = step / total
    if recipe.schedule == "constant":
        factor = 1.0
    elif recipe.schedule == "multistep":
        epoch = step // steps_per_epoch
        factor = recipe.gamma ** sum(1 for m in recipe.milestones if epoch >= m)
    elif recipe.schedule == "cosine":
        factor = 0.5 * (1.0 + math.cos(math.pi * t))
    else:
        factor = _piecewise(recipe.knots, t)
    warmup = recipe.warmup_epochs * steps_per_epoch
    if warmup > 0 and step < warmup:
        factor *= (step + 1) / warmup
    return factor


def _piecewise(knots: tuple[tuple[float, float], ...], t: float) -> float:
    xs = [k[0] for k in knots]
    ys = [k[1] for k in knots]
    if t <= xs[0]:
        return ys[0]
    for (x0, y0), (x1, y1) in zip(knots, knots[1:]):
        if t <= x1:
            return y0 + (y1 - y0) * (t - x0) / (x1 - x0) if x1 > x0 else y1
    return ys[-1]
