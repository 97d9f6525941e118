"""Iterative SNIP (de Jorge et al. 2021, "Progressive Skeletonization"): SNIP's connection
sensitivity |theta * dL/dtheta|, recomputed on the surviving weights over several rounds."""

from dataclasses import dataclass

import torch.nn.functional as F

from bench.api import (
    Importance,
    PruneAtInit,
    PruneAtInitHparams,
    RunContext,
    prunable_layers,
    pruning_batches,
    register,
    scoring_copy,
    weight_gradients,
)


@dataclass(frozen=True)
class IterSNIPHparams(PruneAtInitHparams):  # scope and cut come with it
    rounds: int = 5  # the exponential schedule: density ** (r / rounds), r = 1 .. rounds

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.rounds < 1:
            raise ValueError(f"rounds must be >= 1, got {self.rounds}")


@register("my-iter-snip")
class IterSNIP(PruneAtInit):
    """Prune at initialisation in rounds; each round scores the network as it stands."""

    description = "iterative SNIP on the pruning set: |w * dL/dw| on the surviving weights"
    Hparams = IterSNIPHparams
    uses_pruning_set = True  # scores on the seed's 10 images per class (checked up front)

    def importance(self, model, ctx: RunContext) -> Importance:
        net = scoring_copy(model).train()  # masks applied; the run's model is not touched
        for x, y in pruning_batches(ctx):
            F.cross_entropy(net(x), y, reduction="sum").backward()
            ctx.search.count(len(y))  # forward and backward images: the search cost
        grads = weight_gradients(net)
        return {name: (layer.weight.detach() * grads[name]).abs()
                for name, layer in prunable_layers(net)}
