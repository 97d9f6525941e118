"""Iterative SNIP (de Jorge et al., ICLR 2021, "Progressive Skeletonization"), as the
authors' code computes it (naver/force 7494eed, ``pruning/pruning_algos.py``,
``iterative_pruning`` with ``prune_method=1``).

T = 60 steps on the exponential schedule (the authors' README for CIFAR), each scoring
``|w * dL/dw|`` on the current masked network, BatchNorm on batch statistics, with the
gradient averaged over ``batches_per_step`` fresh augmented training batches of 128 (1 for
CIFAR-10, 10 for CIFAR-100 in their README). Pruned weights stay pruned. Their loss is
``nll_loss`` on the raw logits, i.e. the negative mean logit of the true class, not the
cross-entropy: kept as the default (``loss=nll-logits``), ``loss=cross-entropy`` is the
clean alternative. Their cut keeps int(d N) weights by threshold and every weight tied with
it (``keep-ties``). ``data=pruning-set`` scores every step on the seed's pruning set instead
(what the conformance fixture was made with).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

from bench.api import (
    Cut,
    Importance,
    PruneAtInit,
    PruneAtInitHparams,
    RunContext,
    prunable_layers,
    pruning_batches,
    register,
    scoring_copy,
    training_batches,
    weight_gradients,
)

Loss = Literal["nll-logits", "cross-entropy"]
ScoringData = Literal["training", "pruning-set"]
STEP_BATCH_STREAM = 0x464F5243  # "FORC": the training batches of the steps


@dataclass(frozen=True)
class IterSNIPHparams(PruneAtInitHparams):
    rounds: int = 60
    cut: Cut = "keep-ties"
    loss: Loss = "nll-logits"
    """``nll-logits``: the authors' ``F.nll_loss`` on raw logits; ``cross-entropy``: clean."""
    data: ScoringData = "training"
    """``training``: fresh augmented training batches every step; ``pruning-set``: the
    seed's 10 images per class every step."""
    batch_size: int = 128
    batches_per_step: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.rounds < 1 or self.batch_size < 1 or self.batches_per_step < 1:
            raise ValueError("rounds, batch_size and batches_per_step must be >= 1")


def step_loss(logits: Tensor, labels: Tensor, loss: Loss) -> Tensor:
    """The loss one step's gradient comes from (mean over the batch)."""
    if loss == "nll-logits":
        return F.nll_loss(logits, labels)
    return F.cross_entropy(logits, labels)


def mean_gradients(net: nn.Module, batches: list[tuple[Tensor, Tensor]], loss: Loss,
                   ctx: RunContext) -> dict[str, Tensor]:
    """dL/dw of every prunable layer of ``net`` averaged over ``batches`` (train mode)."""
    net.train()
    for x, y in batches:
        step_loss(net(x), y, loss).backward()
        ctx.search.count(len(y))
    return {name: grad / len(batches) for name, grad in weight_gradients(net).items()}


@register("iter-snip")
class IterSNIP(PruneAtInit):
    """SNIP's |w * dL/dw| recomputed on the surviving weights in 60 steps (FORCE's code)."""

    description = ("iterative SNIP: |w * dL/dw| on the surviving weights over 60 steps "
                   "(de Jorge et al. 2021)")
    Hparams = IterSNIPHparams

    def __init__(self, hparams: IterSNIPHparams | None = None) -> None:
        super().__init__(hparams)
        self.uses_pruning_set = self.hparams.data == "pruning-set"  # checked up front

    def prune_model(self, model: nn.Module, ctx: RunContext) -> list[int]:
        self._stream: Iterator[tuple[Tensor, Tensor]] | None = None  # this run's batches
        try:
            return super().prune_model(model, ctx)
        finally:
            self._stream = None

    def step_batches(self, ctx: RunContext) -> list[tuple[Tensor, Tensor]]:
        """The batches of one step: the next fresh training batches, or the pruning set."""
        hp = self.hparams
        if hp.data == "pruning-set":
            return list(pruning_batches(ctx))
        if getattr(self, "_stream", None) is None:
            self._stream = training_batches(ctx, hp.batch_size, STEP_BATCH_STREAM)
        return [next(self._stream) for _ in range(hp.batches_per_step)]

    def importance(self, model: nn.Module, ctx: RunContext) -> Importance:
        net = scoring_copy(model)
        grads = mean_gradients(net, self.step_batches(ctx), self.hparams.loss, ctx)
        return {name: (layer.weight.detach() * grads[name]).abs()
                for name, layer in prunable_layers(net)}
