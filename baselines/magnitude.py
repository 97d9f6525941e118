"""Magnitude pruning after training: train dense, keep the largest |theta|, fine-tune.

The two phases share the run's budget B: dense for ``dense_fraction`` of it, then the
masked fine-tune for the rest with the learning-rate schedule restarted.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from torch import nn

from baselines.magnitude_init import magnitude_scores
from bench.api import BenchError, Method, RunContext, RunSpec, Scope, prune, register


@dataclass(frozen=True)
class MagnitudeHparams:
    scope: Scope = "global"
    dense_fraction: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 < self.dense_fraction < 1.0:
            raise ValueError(f"dense_fraction must be in (0, 1), got {self.dense_fraction}")


def split_budget(epochs: int, dense_fraction: float) -> tuple[int, int]:
    """(dense epochs, fine-tune epochs) summing to ``epochs``, each at least 1."""
    if epochs < 2:
        raise BenchError("magnitude pruning after training needs a budget of at least 2 epochs")
    dense = min(epochs - 1, max(1, math.floor(epochs * dense_fraction + 0.5)))
    return dense, epochs - dense


@register("magnitude")
class MagnitudeAfterTraining(Method):
    """One-shot global (or layerwise) magnitude pruning of a trained network, then fine-tuning."""

    description = "train dense, prune the smallest |weights| once, fine-tune (same total budget)"
    Hparams = MagnitudeHparams

    def check(self, spec: RunSpec, train_images_per_class: int | None) -> None:
        split_budget(spec.recipe.epochs, self.hparams.dense_fraction)

    def run(self, ctx: RunContext) -> nn.Module:
        dense, finetune = split_budget(ctx.recipe.epochs, self.hparams.dense_fraction)
        ctx.train(recipe=ctx.recipe.with_epochs(dense), phase="dense")
        t0 = time.perf_counter()
        prune(ctx.model, magnitude_scores, ctx.density, scope=self.hparams.scope)
        ctx.search.seconds += time.perf_counter() - t0
        ctx.train(recipe=ctx.recipe.with_epochs(finetune), phase="finetune", final=True)
        return ctx.model
