"""``bench list``: the methods, models, data sets, recipes and presets there are."""

from __future__ import annotations

import argparse

from bench.presets import DEFAULT_PRESET, PRESETS, RECIPES
from bench.registry import (
    methods,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options."""


def command(_: argparse.Namespace) -> int:
    from bench.data import DATASETS
    from bench.models import describe_model, model_names

    print("methods:")
    for name, cls in methods().items():
        print(f"  {name:<18} {cls.description}")
    print("models:")
    for name in model_names():
        print(f"  {name:<18} {describe_model(name)}")
    print("datasets:")
    for name, info in DATASETS.items():
        print(f"  {name:<18} {info.num_classes} classes, official python layout {info.folder}/")
    print("recipes:")
    for name, recipe in RECIPES.items():
        print(f"  {name:<18} {recipe.optimizer} lr {recipe.lr:g}, {recipe.schedule}, "
              f"{recipe.epochs} epochs, batch {recipe.batch_size}, wd {recipe.weight_decay:g}")
    print("presets:")
    for name, preset in PRESETS.items():
        default = " (default)" if name == DEFAULT_PRESET else ""
        print(f"  {name:<18} {preset.description}{default}")
    return 0
