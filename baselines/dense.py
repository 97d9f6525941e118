"""The dense reference: every weight trained for the whole budget, nothing pruned."""

from __future__ import annotations

from torch import nn

from bench.api import Method, RunContext, register


@register("dense")
class Dense(Method):
    """Trains all weights with the run's recipe; the upper line of every comparison."""

    description = "reference: all weights trained for the whole budget, no pruning"
    uses_density = False

    def run(self, ctx: RunContext) -> nn.Module:
        ctx.train()
        return ctx.model
