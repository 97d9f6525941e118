"""Deterministic checks: the suite's masks on the fixture's inputs against the authors'.

Each fixture names the suite method and hyperparameters that reproduce the authors'
protocol on the same inputs (the seed-0 ResNet-20 and the seed-0 pruning set, one thread);
the comparison holds the per-layer kept counts side by side and the Jaccard index of the
masks, and says whether this machine is the fixture's kind (where exact masks are due).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import torch
from tabulate import tabulate

from bench.conformance.fixtures import (
    DEFAULT_FIXTURES,
    SUITE_FIXTURES,
    Masks,
    exact_here,
    fixture_counts,
    fixture_machine,
    fixture_masks,
    jaccard,
)
from bench.context import SearchCost
from bench.data import DeviceData
from bench.models import build_model, prunable_layers
from bench.registry import get_method, make_hparams


@dataclass(frozen=True)
class Check:
    """A fixture's suite method, the hyperparameters of the authors' protocol, its folder."""

    method: str
    hparams: dict[str, str] = field(default_factory=dict)
    suite_fixture: bool = False
    """In the suite's own folder (``tests/fixtures/reference-masks``), not the shared one."""


ON_THE_PRUNING_SET = {"data": "pruning-set"}  # the fixtures fed the pruning set every step
CHECKS: dict[str, Check] = {
    "snip-d0.1-f32": Check("snip"),
    "grasp-d0.1-f32": Check("grasp"),
    "mag-d0.1-f32": Check("magnitude-init"),
    "synflow-d0.1-f64": Check("synflow", {"cut": "kthvalue"}),
    **{f"px-d{d}-f32": Check("px") for d in (0.5, 0.1, 0.02)},
    **{f"px2024-d{d}-f32": Check("px-2024") for d in (0.5, 0.1, 0.02)},
    **{f"synflow-l2-d{d}-f32": Check("synflow-l2", {}, True) for d in (0.1, 0.02)},
    **{f"{m}-d{d}-f32": Check(m, ON_THE_PRUNING_SET, True)
       for m in ("iter-snip", "force", "prospr") for d in (0.1, 0.02)},
}


@dataclass(frozen=True)
class Comparison:
    """One fixture against the suite: per-layer kept counts, sizes and the masks' overlap."""

    fixture: str
    method: str
    kept: dict[str, int]
    reference_kept: dict[str, int]
    total: dict[str, int]
    jaccard: float
    degenerate_rounds: list[int]
    exact_here: bool = False
    """This machine is the kind that made the fixture: the masks should be the same."""

    def gaps(self) -> dict[str, float]:
        """|kept - reference| / layer size, per layer."""
        return {n: abs(self.kept[n] - self.reference_kept[n]) / self.total[n] for n in self.kept}

    def worst(self) -> tuple[str, float]:
        gaps = self.gaps()
        name = max(gaps, key=lambda n: gaps[n])
        return name, gaps[name]

    def emptied(self) -> list[str]:
        """Layers the suite empties that the authors' code keeps."""
        return [n for n in self.kept if self.kept[n] == 0 and self.reference_kept[n] > 0]


def suite_masks(method: str, density: float, data: DeviceData, hparams: dict[str, str],
                seed: int = 0) -> tuple[Masks, list[int]]:
    """The masks ``method`` keeps on the seed's ResNet-20, one thread, and its degenerate
    rounds (:meth:`~bench.pruning.PruneAtInit.prune_model`: the pruning, no training)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cls = get_method(method)
        plugin = cls(make_hparams(cls, hparams))
        model = build_model("resnet20", data.num_classes, seed=seed)
        ctx = SimpleNamespace(data=data, seed=seed, density=density, search=SearchCost(),
                              notes={})
        degenerate = plugin.prune_model(model, ctx)
        masks = {n: layer.current_mask().cpu().numpy() for n, layer in prunable_layers(model)}
        return masks, degenerate
    finally:
        torch.set_num_threads(threads)


def fixture_folder(fixture: str, shared: Path = DEFAULT_FIXTURES) -> Path:
    """Where ``fixture`` lives: the suite's own folder or ``shared``."""
    return SUITE_FIXTURES if CHECKS[fixture].suite_fixture else shared


def compare(fixture: str, data: DeviceData, folder: Path | None = None,
            method: str | None = None, hparams: dict[str, str] | None = None) -> Comparison:
    """Prune like fixture ``fixture`` with the suite (its :data:`CHECKS` entry by default;
    ``folder``: where the fixture is, by default :func:`fixture_folder`)."""
    check = CHECKS[fixture]
    folder = fixture_folder(fixture) if folder is None else folder
    method = method or check.method
    hparams = check.hparams if hparams is None else hparams
    reference = fixture_counts(folder)[fixture]
    masks, degenerate = suite_masks(method, reference["density"], data, hparams)
    return Comparison(fixture, method, {n: int(m.sum()) for n, m in masks.items()},
                      reference["kept"], reference["total"],
                      jaccard(masks, fixture_masks(folder, fixture)), degenerate,
                      exact_here(fixture_machine(reference)))


def layer_table(c: Comparison) -> str:
    rows = [(n, c.total[n], c.reference_kept[n], c.kept[n], f"{100 * c.gaps()[n]:.2f}")
            for n in c.kept]
    return tabulate(rows, headers=["layer", "size", "authors kept", "suite kept", "gap %"],
                    tablefmt="github")
