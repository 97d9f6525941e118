"""Named experiment presets: the grid (models, datasets, densities, seeds) and its recipe.

Every CLI option of ``bench run`` overrides the preset's value; ``quick`` is the
default. The papers' protocols join here as their methods land.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.errors import BenchError
from bench.recipe import Recipe


@dataclass(frozen=True)
class Preset:
    """A named grid plus the recipe every method trains its final model with."""

    name: str
    description: str
    recipe: Recipe
    models: tuple[str, ...] = ("resnet20",)
    datasets: tuple[str, ...] = ("cifar10",)
    densities: tuple[float, ...] = (0.5, 0.2, 0.1, 0.05, 0.02)
    seeds: tuple[int, ...] = (0,)
    methods: tuple[str, ...] = ("all",)
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    train_subset: int | None = None
    test_subset: int | None = None


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            name="smoke",
            description="every method in minutes on 2 CPU cores: ResNet-20, 2000/1000 "
            "CIFAR-10 images, 2 epochs, densities 0.5 and 0.2",
            recipe=Recipe(epochs=2, batch_size=64, lr=0.05, weight_decay=5e-4),
            densities=(0.5, 0.2),
            train_subset=2000,
            test_subset=1000,
        ),
        Preset(
            name="quick",
            description="a first look on one GPU: ResNet-20, full CIFAR-10, 20 epochs, "
            "densities 0.5 to 0.02, one seed",
            recipe=Recipe(epochs=20, batch_size=128, lr=0.1, weight_decay=5e-4),
        ),
    )
}

DEFAULT_PRESET = "quick"


def get_preset(name: str) -> Preset:
    """The preset called ``name``; an unknown name is a one-line error listing valid ones."""
    if name not in PRESETS:
        raise BenchError(f"unknown preset {name!r}; valid presets: {', '.join(PRESETS)}")
    return PRESETS[name]
