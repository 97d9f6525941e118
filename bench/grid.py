"""A grid of runs as specs: every (dataset, model, method, density, seed) in run order.

``bench run``, ``bench report --preset`` and ``bench figures --paper`` expand grids here, so
the runs a report expects are exactly the runs ``bench run`` makes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from bench.errors import BenchError
from bench.recipe import Recipe
from bench.registry import get_method, make_hparams, non_default_hparams
from bench.store import RunSpec


def build_specs(
    *,
    methods: Sequence[tuple[str, dict[str, str]]],
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
