"""Lottery Ticket Hypothesis: iterative magnitude pruning with rewinding.

Frankle & Carbin 2019; rewinding per Frankle et al. 2020. Train, prune a fraction of the
remaining weights (global magnitude), rewind the survivors to their values at the end of
epoch ``rewind_epoch`` of the first training (0: the original initialisation), repeat until
the target density; the last round's model is the result. Rounds: ceil(log d / log(1-p)),
the last one landing exactly on d. The search cost is every training but the last.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Literal

from torch import nn

from baselines.magnitude_init import magnitude_scores
from bench.errors import BenchError
from bench.harness import RunContext
from bench.pruning import prune, rewind
from bench.registry import Method, register
from bench.store import RunSpec


@dataclass(frozen=True)
class LTHHparams:
    rewind_epoch: int = 1
    prune_fraction: float = 0.2
    budget: Literal["per-round", "total"] = "per-round"

    def __post_init__(self) -> None:
        if not 0.0 < self.prune_fraction < 1.0:
            raise ValueError(f"prune_fraction must be in (0, 1), got {self.prune_fraction}")
        if self.rewind_epoch < 0:
            raise ValueError("rewind_epoch must be >= 0")


def round_densities(density: float, prune_fraction: float) -> list[float]:
    """Density after each pruning round: (1-p)^r, the last one exactly ``density``."""
    if density >= 1.0:
        return []
    rounds = math.ceil(math.log(density) / math.log(1.0 - prune_fraction) - 1e-9)
    return [(1.0 - prune_fraction) ** r for r in range(1, rounds)] + [density]


@register("lth")
class LotteryTicket(Method):
    """IMP with rewinding; ``budget=total`` splits the budget across all trainings instead."""

    description = "lottery tickets: iterative magnitude pruning, 20% per round, rewind to epoch 1"
    Hparams = LTHHparams

    def schedule(self, density: float, budget_epochs: int) -> tuple[list[float], int]:
        """(density after each pruning round, epochs per training); a budget that cannot
        hold the rounds or the rewind point is a :class:`BenchError`."""
        hp = self.hparams
        densities = round_densities(density, hp.prune_fraction)
        trainings = len(densities) + 1
        epochs = budget_epochs
        if hp.budget == "total":
            epochs = epochs // trainings
            if epochs < 1:
                raise BenchError(f"lth: a total budget of {budget_epochs} epochs cannot cover "
                                 f"{trainings} LTH trainings at density {density:g}; raise "
                                 "--epochs")
        if hp.rewind_epoch > epochs:
            raise BenchError(f"lth: rewind epoch {hp.rewind_epoch} is past the {epochs}-epoch "
                             "training")
        return densities, epochs

    def check(self, spec: RunSpec, train_images_per_class: int | None) -> None:
        self.schedule(spec.density, spec.recipe.epochs)

    def planned_epochs(self, spec: RunSpec) -> int:
        densities, epochs = self.schedule(spec.density, spec.recipe.epochs)
        return epochs * (len(densities) + 1)

    def run(self, ctx: RunContext) -> nn.Module:
        hp = self.hparams
        densities, epochs = self.schedule(ctx.density, ctx.recipe.epochs)
        trainings = len(densities) + 1
        recipe = ctx.recipe.with_epochs(epochs)
        first = ctx.train(recipe=recipe, phase="round0", snapshot_epochs=(hp.rewind_epoch,))
        snapshot = first.snapshots[hp.rewind_epoch]
        for r, density in enumerate(densities, 1):
            t0 = time.perf_counter()
            prune(ctx.model, magnitude_scores, density)
            rewind(ctx.model, snapshot)
            ctx.search.seconds += time.perf_counter() - t0
            ctx.train(recipe=recipe, phase=f"round{r}")
        ctx.search.extra_epochs += epochs * (trainings - 1)
        return ctx.model
