"""``bench run``'s grid from its options: checked, expanded, and asked whether it can run."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from bench.commands.parsing import MAX_SEED, floats, ints, listed
from bench.errors import BenchError
from bench.presets import get_preset, get_recipe
from bench.recipe import MAX_EPOCHS
from bench.registry import (
    Method,
    hparam_fields,
    methods,
    parse_method_item,
    unknown_method_message,
)


def _method_items(text: str | None, preset_methods: Sequence[str], args: argparse.Namespace
                  ) -> list[tuple[str, dict[str, str]]]:
    given = listed(text, "--methods")
    items = given if given is not None else list(preset_methods)
    parsed: list[tuple[str, dict[str, str]]] = []
    registry = methods()
    for item in items:
        if item == "all":
            parsed.extend((name, {}) for name in registry)
        else:
            parsed.append(parse_method_item(item))
    result = []
    for name, overrides in parsed:
        if name not in registry:
            raise BenchError(unknown_method_message(name, {"all": Method, **registry}))
        from_options = {
            field: str(value)
            for field, _, _ in hparam_fields(registry[name])
            if (value := getattr(args, f"hp__{name}__{field}", None)) is not None
        }
        result.append((name, {**from_options, **overrides}))
    return result


def grid_specs(args: argparse.Namespace) -> list[Any]:
    """The ``run`` command's grid as specs (without data fingerprints), every option checked."""
    from bench.data import DATASETS
    from bench.grid import (
        GridChoice,
        GridOptions,
        check_budget_scale,
        check_subsets,
        check_width,
        preset_model_kwargs,
        preset_specs,
    )
    from bench.models import validate_model

    preset = get_preset(args.preset)
    check_budget_scale(args.budget_scale)  # positive and finite, or one error line
    if args.epochs is not None and not 1 <= args.epochs <= MAX_EPOCHS:
        raise BenchError(f"--epochs must be between 1 and {MAX_EPOCHS}, got {args.epochs}")
    if args.recipe is not None:
        get_recipe(args.recipe)
    datasets = listed(args.datasets, "--datasets") or list(preset.datasets)
    for name in datasets:
        if name not in DATASETS:
            raise BenchError(f"unknown dataset {name!r}; valid datasets: {', '.join(DATASETS)}")
    models = listed(args.models, "--models") or list(preset.models)
    check_width(args.width)
    for name in models:
        validate_model(name, **preset_model_kwargs(preset, args.width))
    seeds = ints(args.seeds, "--seeds")
    if seeds is not None and any(not 0 <= s <= MAX_SEED for s in seeds):
        raise BenchError(f"seeds must be integers from 0 to 2**63-1, got {args.seeds}")
    densities = floats(args.densities, "--densities")
    check_subsets(args.train_subset, args.test_subset)
    options = GridOptions(args.budget_scale, args.width, args.train_subset, args.test_subset)
    choice = GridChoice(methods=_method_items(args.methods, preset.methods, args),
                        models=models, datasets=datasets, densities=densities, seeds=seeds,
                        recipe=args.recipe, epochs=args.epochs, value_codec=args.value_codec)
    return preset_specs(preset, options, choice)


def check_runnable(specs: Sequence[Any], data: Any) -> None:
    """Ask each method whether it can run its specs, before anything trains."""
    from bench.registry import get_method

    for spec in specs:
        cls = get_method(spec.method)
        method = cls(cls.Hparams(**spec.hparams))
        loaded = data.get(spec.dataset, spec.train_subset, spec.test_subset)
        per_class = (len(loaded.train_y) // loaded.num_classes
                     if spec.train_subset is not None else None)
        method.check(spec, per_class)


def estimate_line(specs: Sequence[Any], store: Any, data: Any, options: Any) -> str:
    """``N to train (M epochs), K already done; about T on <device>`` from a short timing of
    each architecture's training step here."""
    from bench.estimate import estimate_grid

    return estimate_grid(specs, store, data, options).line()
