"""Names shown in tables and figures: data sets, models, methods, budgets, setups, numbers.

Every label of a method (``--methods`` spelling, PEMN's own names) is made here, so a table
row, a figure's legend and a comparison line name one run alike.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from bench.errors import BenchError
from bench.presets import RECIPES
from bench.recipe import Recipe
from bench.reports.choices import WEIGHT_COMPRESSION

DATASET_NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}
DATASET_SIZES = {"cifar10": (50000, 10000), "cifar100": (50000, 10000)}
PEMN_FAMILY = ("pemn-mask", "pemn-one-layer", "pemn-mp", "pemn-rp")
PEMN_NAMES = {"dense": "dense", "pemn-mask": "mask", "pemn-one-layer": "one-layer",
              "pemn-mp": "MP"}


def dataset_title(name: str) -> str:
    return DATASET_NAMES.get(name, name)


def model_title(name: str, kwargs: dict[str, Any] | None = None) -> str:
    """``resnet20`` -> ``ResNet-20``, ``convmixer-256-6`` -> ``ConvMixer-256/6``, plus kwargs."""
    text = name
    for prefix, pretty in (("resnet", "ResNet-"), ("vgg", "VGG-")):
        if name.startswith(prefix) and name[len(prefix):].isdigit():
            text = pretty + name[len(prefix):] + ("-BN" if prefix == "vgg" else "")
    parts = name.split("-")
    if len(parts) == 3 and parts[0] in ("convmixer", "vit") and parts[1].isdigit():
        text = {"convmixer": "ConvMixer", "vit": "ViT"}[parts[0]] + f"-{parts[1]}/{parts[2]}"
    if kwargs:
        text += " (" + ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}"
                                 for k, v in sorted(kwargs.items())) + ")"
    return text


def method_label(name: str, hparams: dict[str, Any] | None) -> str:
    """The method and its non-default hyperparameters, as ``--methods`` spells them."""
    return name + "".join(f":{k}={v}" for k, v in sorted((hparams or {}).items()))


def full_hparams(name: str, hparams: dict[str, Any] | None) -> dict[str, Any]:
    """Every hyperparameter of a registered method, defaults filled in (else ``hparams``)."""
    from dataclasses import asdict

    from bench.registry import methods

    cls = methods().get(name)
    if cls is None:
        return dict(hparams or {})
    try:
        return asdict(cls.Hparams(**(hparams or {})))
    except (TypeError, ValueError):
        return dict(hparams or {})


def short_ratio(value: float) -> str:
    """0.01 -> ``1e-2``, 0.25 -> ``2.5e-1``."""
    mantissa, exponent = f"{value:.1e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def pemn_name(name: str, hparams: str | dict[str, Any]) -> str:
    """PEMN's own names: ``mask``, ``one-layer``, ``MP``, ``RP 1e-2``; others as
    :func:`method_label` spells them."""
    hp = json.loads(hparams) if isinstance(hparams, str) else dict(hparams or {})
    extra = {k: v for k, v in hp.items() if k != "ratio"}
    base = PEMN_NAMES.get(name)
    if name == "pemn-rp":
        base = f"RP {short_ratio(full_hparams(name, hp).get('ratio', 0.1))}"
    if base is None:
        return method_label(name, hp)
    return base + "".join(f" {k}={v}" for k, v in sorted(extra.items()))


LOOP_OPTIONS = ("drop_last", "bias_init")
"""Recipe fields that change how the loop runs, not the budget: a recipe that differs from
a named one only in these is that recipe with them (``Preset.recipe_options``)."""


def loop_options(named: Recipe, recipe: Recipe) -> str | None:
    """``drop_last=True, bias_init=zero`` where ``recipe`` is ``named`` but for loop options,
    '' where it is ``named``, None where it differs otherwise."""
    if replace(recipe, **{f: getattr(named, f) for f in LOOP_OPTIONS}) != named:
        return None
    return ", ".join(f"{f}={getattr(recipe, f)}" for f in LOOP_OPTIONS
                     if getattr(recipe, f) != getattr(named, f))


def budget_label(recipe: dict[str, Any]) -> str:
    """The training budget a recipe stands for: its named recipe and epochs.

    ``px-resnet20, 16 of 160 ep`` is the named recipe at a tenth of its epochs
    (``--budget-scale 0.1``); a recipe that matches no named one at any budget is
    ``custom-<hash>``.
    """
    try:
        r = Recipe.from_dict(recipe)
    except (BenchError, TypeError, ValueError):
        r = None
    if r is not None:
        for name, named in RECIPES.items():
            options = loop_options(named.with_epochs(r.epochs), r)
            if options is not None:
                name = f"{name} with {options}" if options else name
                if r.epochs == named.epochs:
                    return f"{name}, {r.epochs} ep"
                return f"{name}, {r.epochs} of {named.epochs} ep"
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:6]
    epochs = recipe.get("epochs", "?")
    return f"custom-{digest}, {epochs} ep"


PRECISION_TEXTS = {"float16": "float16 autocast with loss scaling",
                   "bfloat16": "bfloat16 autocast"}


def autocast_precisions(values: Iterable[Any]) -> list[str]:
    """The 16-bit precisions among a summary's ``precision`` entries (comma-joined per row;
    float32 and missing runs name none)."""
    return sorted({p for v in values if isinstance(v, str) for p in v.split(",")
                   if p in PRECISION_TEXTS})


def budget_with_precision(budget: str, precisions: Iterable[Any]) -> str:
    """``px-resnet20, 160 ep, float16``: a budget with the 16-bit precisions its runs
    trained in (float32 is not named)."""
    return ", ".join([budget, *autocast_precisions(precisions)])


def precision_note(precisions: Iterable[Any]) -> str | None:
    """``Precision: float16 autocast with loss scaling.`` where runs trained in 16 bits."""
    kinds = autocast_precisions(precisions)
    if not kinds:
        return None
    return "Precision: " + "; ".join(PRECISION_TEXTS[k] for k in kinds) + "."


def subsets_text(dataset: str, train: int | None, test: int | None) -> str | None:
    """``500/200 train/test images`` for image subsets (None for the full sets)."""
    if train is None and test is None:
        return None
    full = DATASET_SIZES.get(dataset, ("all", "all"))
    return f"{train or full[0]}/{test or full[1]} train/test images"


def setup_title(setup: dict[str, Any], subsets: bool = True) -> str:
    """``CIFAR-10, ResNet-20 (width 0.25), 500/200 train/test images`` for a table or panel
    (the subsets left out with ``subsets=False``)."""
    model = model_title(setup["model"], setup["model_kwargs"])
    text = f"{dataset_title(setup['dataset'])}, {model}"
    images = subsets_text(setup["dataset"], setup.get("train_subset"), setup.get("test_subset"))
    if subsets and images is not None:
        text += f", {images}"
    if setup.get("value_codec", "float32") != "float32":
        text += f", {setup['value_codec']} values"
    return text


def spec_difference(row_key: str, twins: list[str]) -> str:
    """What tells this row from rows of the same method and budget: ``method_version=2``."""
    mine = json.loads(row_key)
    others = [json.loads(t) for t in twins if t != row_key]
    keys = sorted(k for k in mine if any(o.get(k) != mine[k] for o in others))
    parts = [f"{k}={json.dumps(mine[k], sort_keys=True)}" for k in keys if k != "recipe"]
    if "recipe" in keys:
        parts.append("recipe " + hashlib.sha256(
            json.dumps(mine["recipe"], sort_keys=True).encode()).hexdigest()[:6])
    return ", ".join(parts) or "?"


def sparsity_text(density: float) -> str:
    """Sparsity in percent with up to two decimals: 0.64 -> ``36``, 0.4096 -> ``59.04``."""
    text = f"{100 * (1 - density):.2f}".rstrip("0").rstrip(".")
    return text or "0"


def column_title(density: float, group_by: str) -> str:
    """A table column's title: ``d=0.5``, ``s=50%`` or the weight compression ``2x``."""
    if group_by == "sparsity":
        return f"s={sparsity_text(density)}%"
    if group_by == WEIGHT_COMPRESSION:
        return f"{1 / density:.3g}x"
    return f"d={density:.4g}"


def byte_unit(max_bytes: float) -> tuple[str, float]:
    """The unit to print byte counts in: kB below 1e6 bytes, MB below 1e9, else GB."""
    if not max_bytes or math.isnan(max_bytes) or max_bytes < 1e6:
        return "kB", 1e3
    if max_bytes < 1e9:
        return "MB", 1e6
    return "GB", 1e9


def sig3(value: float) -> str:
    """Three significant digits without exponent: 5.64, 71.7, 312."""
    if math.isnan(value):
        return ""
    a = abs(value)
    if a >= 100:
        return f"{value:.0f}"
    if a >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"
