"""The three registered PX methods and their hyperparameters."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar

import torch
from torch import nn

from bench.api import (
    Cut,
    Importance,
    PruneAtInit,
    PruneAtInitHparams,
    RunContext,
    pruning_batches,
    register,
)
from methods.px.scores import PXCopies, px_copies, px_objective, px_scores
from methods.px.variants import CLEAN, FAITHFUL, RELEASE_2024, PXVariant


@dataclass(frozen=True)
class PXHparams(PruneAtInitHparams):
    """The authors' schedule and cut: 100 rounds, ``kthvalue`` (ties at the cut pruned).

    Their objective's scores tie a lot (float32 residue, exact zeros): with the suite's
    ``exact`` cut the tie-break by position moved single layers by up to 7 % of their size
    at density 0.5; with their cut the per-layer counts equal theirs.
    """

    rounds: int = 100
    cut: Cut = "kthvalue"


@dataclass(frozen=True)
class PXCleanHparams(PruneAtInitHparams):
    """100 rounds with the suite's exact cut (the paper's equations rarely tie)."""

    rounds: int = 100


class _PX(PruneAtInit):
    """Shared plugin: ``variant`` says which PX."""

    Hparams: ClassVar[type] = PXHparams
    rounds: ClassVar[int] = 100
    variant: ClassVar[PXVariant]
    uses_pruning_set = True

    def importance(self, model: nn.Module, ctx: RunContext) -> Importance:
        batches = (x for x, _ in pruning_batches(ctx))
        copies = self.kept_copies(model, self._build_copies)
        return px_scores(model, batches, self.variant,
                         lambda images, backward: ctx.search.count(images, backward=backward),
                         copies=copies)

    def _build_copies(self, model: nn.Module) -> tuple[PXCopies, list[nn.Module]]:
        copies = px_copies(model, self.variant)
        return copies, copies.networks()

    def explain_degenerate(self, model: nn.Module, ctx: RunContext) -> dict[str, Any]:
        """The objective in the run's dtype and in float64: a vanished objective shows there."""
        batches = [x for x, _ in pruning_batches(ctx)]
        wide = replace(self.variant, dtype=torch.float64)
        return {"objective": px_objective(model, batches, self.variant),
                "objective_float64": px_objective(model, batches, wide)}


@register("px")
class PX(_PX):
    """PX as the authors' current code computes it (iurada/px-ntk-pruning HEAD, Feb 2025)."""

    description = ("pruning at init by path exclusion, NTK-trace bound (Iurada et al. 2024), "
                   "as the authors' current code")
    variant = FAITHFUL
    version = 2  # 2: the authors' window pooling in copies 2 and 3 (1 emptied layers)


@register("px-2024")
class PX2024(_PX):
    """PX as the release that came with the paper computes it (commit 82ce2bf, April 2024)."""

    description = ("pruning at init by path exclusion, NTK-trace bound (Iurada et al. 2024), "
                   "as the paper's release")
    variant = RELEASE_2024


@register("px-clean")
class PXClean(_PX):
    """PX as the paper's equations state it (BN as identity, every layer alike, float64)."""

    description = ("pruning at init by path exclusion, NTK-trace bound (Iurada et al. 2024), "
                   "as the paper's equations")
    variant = CLEAN
    Hparams = PXCleanHparams
