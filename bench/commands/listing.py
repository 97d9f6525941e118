"""``bench list``: the methods, models, data sets, recipes and presets there are."""

from __future__ import annotations

import argparse
import shutil
import textwrap
from collections.abc import Iterable

from bench.presets import DEFAULT_PRESET, PRESETS, RECIPES
from bench.recipe import Recipe
from bench.registry import (
    methods,
)

MAX_NAME = 24
"""Names longer than this take their own line, the description below them."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options."""


def describe_recipe(recipe: Recipe) -> str:
    """``sgd lr 0.1, multistep at 80/120, 160 epochs, batch 128, wd 0.0001, crop-flip``: what
    a recipe trains with, its augmentation and loop options included."""
    schedule = recipe.schedule + (f" at {'/'.join(map(str, recipe.milestones))}"
                                  if recipe.schedule == "multistep" else "")
    loop = "" if recipe.drop_last else ", last partial batch trained"
    bias = "" if recipe.bias_init == "zero" else f", biases {recipe.bias_init}"
    return (f"{recipe.optimizer} lr {recipe.lr:g}, {schedule}, {recipe.epochs} epochs, batch "
            f"{recipe.batch_size}, wd {recipe.weight_decay:g}, augmentation {recipe.augment}"
            f"{loop}{bias}")


def section(title: str, rows: Iterable[tuple[str, str]], width: int) -> list[str]:
    """``title:`` and its rows, names in a column as wide as the longest (up to
    :data:`MAX_NAME`), descriptions wrapped to ``width`` under their own column."""
    rows = list(rows)
    column = min(MAX_NAME, max(len(name) for name, _ in rows))
    indent = " " * (2 + column + 2)
    lines = [f"{title}:"]
    for name, text in rows:
        if len(name) > column:
            lines.append(f"  {name}")
            first = indent
        else:
            first = f"  {name:<{column}}  "
        lines.extend(textwrap.wrap(text, width=max(width, len(indent) + 30),
                                   initial_indent=first, subsequent_indent=indent,
                                   break_on_hyphens=False))
    return lines


def command(_: argparse.Namespace) -> int:
    from bench.data import DATASETS
    from bench.models import describe_model, model_names

    width = shutil.get_terminal_size((100, 24)).columns
    parts = [
        ("methods", ((name, cls.description) for name, cls in methods().items())),
        ("models", ((name, describe_model(name)) for name in model_names())),
        ("datasets", ((name, f"{info.num_classes} classes, official python layout "
                             f"{info.folder}/") for name, info in DATASETS.items())),
        ("recipes", ((name, describe_recipe(r)) for name, r in RECIPES.items())),
        ("presets", ((name, preset.description
                      + (" (default)" if name == DEFAULT_PRESET else ""))
                     for name, preset in PRESETS.items())),
    ]
    for title, rows in parts:
        print("\n".join(section(title, rows, width)))
    return 0
