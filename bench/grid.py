"""A grid of runs as specs: every (dataset, model, method, density, seed) in run order.

``bench run``, ``bench report --preset`` and ``bench figures --paper`` expand a preset here
with the same overrides, so the runs a report expects are exactly the runs ``bench run`` makes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bench.errors import BenchError
from bench.presets import Preset, get_recipe
from bench.recipe import Recipe, scaled_epochs
from bench.registry import get_method, make_hparams, non_default_hparams, parse_method_item
from bench.registry import methods as registered_methods
from bench.store import RunSpec

MethodItem = tuple[str, dict[str, str]]  # ("lth", {"rewind_epoch": "0"}): a --methods item


@dataclass(frozen=True)
class GridOptions:
    """How a preset's grid was run: ``bench run`` overrides that change the run keys."""

    budget_scale: float = 1.0
    width: float | None = None
    train_subset: int | None = None
    test_subset: int | None = None

    def run_args(self) -> list[str]:
        """The ``bench run`` options that reproduce these overrides."""
        out = []
        if self.budget_scale != 1.0:
            out += ["--budget-scale", f"{self.budget_scale:g}"]
        if self.width is not None:
            out += ["--width", f"{self.width:g}"]
        if self.train_subset is not None:
            out += ["--train-subset", str(self.train_subset)]
        if self.test_subset is not None:
            out += ["--test-subset", str(self.test_subset)]
        return out

    def describe(self) -> str:
        """``budget scale x0.1, width 0.25, subsets 500/200`` (empty without overrides)."""
        parts = []
        if self.budget_scale != 1.0:
            parts.append(f"budget scale x{self.budget_scale:g}")
        if self.width is not None:
            parts.append(f"width {self.width:g}")
        if self.train_subset is not None or self.test_subset is not None:
            parts.append(f"subsets {self.train_subset}/{self.test_subset}")
        return ", ".join(parts)


@dataclass(frozen=True)
class GridChoice:
    """What ``bench run`` narrows or replaces beyond :class:`GridOptions`; None: the preset's."""

    methods: Sequence[MethodItem] | None = None
    models: Sequence[str] | None = None
    datasets: Sequence[str] | None = None
    densities: Sequence[float] | None = None
    seeds: Sequence[int] | None = None
    recipe: str | None = None  # a named recipe for every method
    epochs: int | None = None
    value_codec: str = "float32"


NO_OVERRIDES = GridOptions()  # the grid as the preset defines it
RUN_AS_PRESET = GridChoice()  # every method, model, density... of the preset


def check_budget_scale(scale: float) -> None:
    """A scale that is not positive and finite (or makes too many epochs): one error line."""
    scaled_epochs(1, scale)


def check_width(width: float | None) -> None:
    if width is not None and not (math.isfinite(width) and width > 0):
        raise BenchError(f"--width must be a positive number, got {width}")


def check_subsets(train_subset: int | None, test_subset: int | None) -> None:
    for option, value in (("train_subset", train_subset), ("test_subset", test_subset)):
        if value is not None and value < 1:
            raise BenchError(f"--{option.replace('_', '-')} must be >= 1, got {value}")


def grid_options(budget_scale: float | None = 1.0, width: float | None = None,
                 train_subset: int | None = None, test_subset: int | None = None
                 ) -> GridOptions:
    """Checked overrides (a missing budget scale is 1)."""
    scale = 1.0 if budget_scale is None else budget_scale
    check_budget_scale(scale)
    check_width(width)
    check_subsets(train_subset, test_subset)
    return GridOptions(scale, width, train_subset, test_subset)


def build_specs(
    *,
    methods: Sequence[MethodItem],
    models: Sequence[str],
    datasets: Sequence[str],
    densities: Sequence[float] | dict[str, Sequence[float]],
    seeds: Sequence[int],
    recipe: Recipe | Callable[[str], Recipe],
    model_kwargs: dict[str, Any] | None = None,
    train_subset: int | None = None,
    test_subset: int | None = None,
    value_codec: str = "float32",
) -> list[RunSpec]:
    """The grid as specs, in run order; methods that keep every weight get density 1 once.

    ``recipe`` may depend on the method (a callable of its name), and so may ``densities``
    (a mapping from method name to its densities, with the key ``"*"`` for the rest).
    """
    by_method = densities if isinstance(densities, dict) else {"*": tuple(densities)}
    for d in (d for ds in by_method.values() for d in ds):
        if not 0.0 < d <= 1.0:
            raise BenchError(f"bad density {d!r}: densities are kept fractions in (0, 1]")
    specs: list[RunSpec] = []
    seen: set[str] = set()
    for dataset in datasets:
        for model in models:
            for name, overrides in methods:
                cls = get_method(name)
                hparams = non_default_hparams(make_hparams(cls, overrides))
                method_recipe = recipe(name) if callable(recipe) else recipe
                method_densities = by_method.get(name, by_method.get("*", ()))
                for density in method_densities if cls.uses_density else (1.0,):
                    for seed in seeds:
                        spec = RunSpec(
                            method=name, model=model, dataset=dataset, density=float(density),
                            seed=int(seed), recipe=method_recipe, hparams=hparams,
                            model_kwargs=dict(model_kwargs or {}), train_subset=train_subset,
                            test_subset=test_subset, method_version=cls.version,
                            value_codec=value_codec,
                        )
                        if spec.key not in seen:
                            seen.add(spec.key)
                            specs.append(spec)
    return specs


def recipe_chooser(preset: Preset, options: GridOptions, choice: GridChoice
                   ) -> Callable[[str], Recipe]:
    """Each method's recipe: the preset's (or the chosen named one), epochs replaced, then
    scaled by the budget scale."""

    def recipe_for(method: str) -> Recipe:
        recipe = (get_recipe(choice.recipe) if choice.recipe is not None
                  else preset.recipe_for(method))
        if choice.epochs is not None:
            recipe = recipe.with_epochs(choice.epochs)
        if options.budget_scale != 1.0:
            recipe = recipe.with_epochs(scaled_epochs(recipe.epochs, options.budget_scale))
        return recipe

    return recipe_for


def preset_model_kwargs(preset: Preset, width: float | None) -> dict[str, Any]:
    """The preset's model options, ``--width`` put in."""
    out: dict[str, Any] = dict(preset.model_kwargs)
    if width is not None:
        out["width"] = width
    return out


def preset_specs(preset: Preset, options: GridOptions = NO_OVERRIDES,
                 choice: GridChoice = RUN_AS_PRESET) -> list[RunSpec]:
    """The preset's grid with ``options`` and ``choice`` applied, in ``bench run``'s order."""
    methods = (choice.methods if choice.methods is not None
               else [parse_method_item(item) for item in method_items(preset.methods)])
    return build_specs(
        methods=methods,
        models=choice.models if choice.models is not None else preset.models,
        datasets=choice.datasets if choice.datasets is not None else preset.datasets,
        densities=(choice.densities if choice.densities is not None
                   else {"*": preset.densities, **preset.method_densities}),
        seeds=choice.seeds if choice.seeds is not None else preset.seeds,
        recipe=recipe_chooser(preset, options, choice),
        model_kwargs=preset_model_kwargs(preset, options.width),
        train_subset=(options.train_subset if options.train_subset is not None
                      else preset.train_subset),
        test_subset=(options.test_subset if options.test_subset is not None
                     else preset.test_subset),
        value_codec=choice.value_codec,
    )


def method_items(items: Sequence[str]) -> list[str]:
    """``--methods`` items with ``all`` spelled out as every registered method."""
    out: list[str] = []
    for item in items:
        out.extend(registered_methods() if item == "all" else [item])
    return out


def preset_grid(preset: Preset, options: GridOptions = NO_OVERRIDES,
                methods: Sequence[str] | None = None) -> list[tuple[str, RunSpec]]:
    """The preset's full grid as (``--methods`` item, spec), item by item, ``options`` applied.

    ``methods`` replaces the preset's method items (used for reference runs such as dense).
    """
    out: list[tuple[str, RunSpec]] = []
    for item in method_items(methods if methods is not None else preset.methods):
        choice = GridChoice(methods=[parse_method_item(item)])
        out.extend((item, spec) for spec in preset_specs(preset, options, choice))
    return out
