"""Lottery Ticket Hypothesis: iterative magnitude pruning with rewinding.

Frankle & Carbin 2019; rewinding per Frankle et al. 2020. Train, prune a fraction of the
remaining weights (global magnitude), rewind the survivors to their values at the end of
epoch ``rewind_epoch`` of the first training (0: the original initialisation), repeat until
the target density; the last round's model is the result. Rounds: ceil(log d / log(1-p)),
the last one landing exactly on d. The search cost is every training but the last.
Every training is shared (``ctx.train(share=True)``): the rounds a lower target density
has in common with a higher one of the same seed and recipe (0.8, 0.64, ...) are trained
once in a store and loaded by the other runs, whose records count them as
``search.shared_epochs``.

Against facebookresearch/open_lth (the reference implementation; file:line at its HEAD):

Matches open_lth:
- prunable tensors: the weight of every Conv2d and Linear, the stem conv, the 1x1 shortcut
  convs and, for CIFAR ResNets, the classifier ``fc.weight`` (``models/base.py:38-46``;
  ``cifar_resnet.py:151-154`` sets no ``pruning_layers_to_ignore``). Biases and BatchNorm
  are never pruned.
- one global magnitude ranking over the surviving weights of all pruned tensors; pruned
  weights never come back (``pruning/sparse_global.py:50-55``).
- rewinding loads the whole state at the rewind step, every weight, bias, BatchNorm affine
  parameter and running statistic, then applies the mask (``lottery/runner.py:112-114``,
  ``pruning/pruned_model.py:31-41``); the rewind step is a point of the first training
  (``--rewinding_steps``, ``lottery/desc.py:108-113``), 0 meaning the initialisation.
- every training gets a fresh optimiser (``training/train.py:64``) and the state at the
  rewind step is the end of a training with the same recipe (``lottery/runner.py:78-106``);
  weight decay applies to every parameter in both (``training/optimizers.py:15-23``).

Differs from open_lth (options give open_lth's behaviour where it is one):
- classifier: open_lth prunes it for CIFAR ResNets but ignores it for CIFAR VGG
  (``models/cifar_vgg.py:114-118``: ``pruning_layers_to_ignore='fc.weight'``).
  ``prune_classifier=False`` leaves the last prunable layer (``fc`` in every suite model)
  dense; as in open_lth it still counts in the density (``sparse_global.py:33-43``: the
  remaining count runs over every masked tensor, ignored ones included). Default True,
  open_lth's ResNet setting and the suite's definition of prunable tensors.
- count per round: the suite keeps round((1-p)^r * N) after round r and the last round
  exactly round(d * N), ties at the cut broken by position. open_lth prunes
  ceil(p * remaining) + 1 surviving weights and every weight tied with the largest of
  them (``sparse_global.py:36-38,52-54``: the threshold is the sorted magnitude at index
  ceil(p * remaining) and only magnitudes strictly above it survive). ``count="open-lth"``
  does that in every round but the last, never going below the target, and the last round
  still lands exactly on round(d * N).
- the rounds' training: the suite trains every round for the recipe's full budget with its
  schedule restarted (the reported model gets the same budget as every other method).
  open_lth trains level 0 to the rewind step k, then with a fresh optimiser from k to the
  end, and trains every pruned level from k to the end with the learning-rate schedule
  continued from step k (``train.py:84-92``, ``lottery/runner.py:112-120``).
  ``retrain="from-rewind"`` does that (phases ``rewind`` then ``round0..R``, each of the
  later ones E - k epochs); it needs a constant or multistep schedule without warm-up past
  k, since the engine's cosine and piecewise schedules cannot start mid-way.
- data order: open_lth's is random and unrepeatable unless ``data_order_seed`` is set
  (then every level sees the same order at the same epoch, ``train.py:98``); the suite's
  is seeded per (run seed, round, epoch), so each round sees another order.
- the number of rounds follows from the target density here; open_lth runs ``--levels``.
- initialisation is the suite's (BatchNorm gamma 1); open_lth's ResNet default draws
  BatchNorm gamma uniformly from [0, 1) (``batchnorm_init='uniform'``,
  ``models/bn_initializers.py:9-12``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Literal

import torch
from torch import Tensor, nn

from baselines.magnitude_init import magnitude_scores
from bench.api import (
    BenchError,
    Importance,
    Method,
    Recipe,
    RunContext,
    RunSpec,
    apply_masks,
    classifier_name,
    kept_count,
    prunable_layers,
    prune,
    register,
    rewind,
)

Count = Literal["nearest", "open-lth"]
Retrain = Literal["full", "from-rewind"]
COUNTS: tuple[str, ...] = ("nearest", "open-lth")
RETRAINS: tuple[str, ...] = ("full", "from-rewind")


@dataclass(frozen=True)
class LTHHparams:
    rewind_epoch: int = 1
    prune_fraction: float = 0.2
    budget: Literal["per-round", "total"] = "per-round"
    prune_classifier: bool = True
    """False: the classifier stays dense but counts in the density (open_lth's VGG)."""
    count: Count = "nearest"
    """``open-lth``: each round but the last prunes ceil(p * remaining) + 1 and all ties."""
    retrain: Retrain = "full"
    """``from-rewind``: trainings after the rewind point run epochs k..E (open_lth)."""

    def __post_init__(self) -> None:
        if not 0.0 < self.prune_fraction < 1.0:
            raise ValueError(f"prune_fraction must be in (0, 1), got {self.prune_fraction}")
        if self.rewind_epoch < 0:
            raise ValueError("rewind_epoch must be >= 0")
        if self.count not in COUNTS:
            raise ValueError(f"count must be one of {', '.join(COUNTS)}, got {self.count!r}")
        if self.retrain not in RETRAINS:
            raise ValueError(f"retrain must be one of {', '.join(RETRAINS)}, "
                             f"got {self.retrain!r}")


def round_densities(density: float, prune_fraction: float) -> list[float]:
    """Density after each pruning round: (1-p)^r, the last one exactly ``density``."""
    if density >= 1.0:
        return []
    rounds = math.ceil(math.log(density) / math.log(1.0 - prune_fraction) - 1e-9)
    return [(1.0 - prune_fraction) ** r for r in range(1, rounds)] + [density]


def current_masks(model: nn.Module) -> dict[str, Tensor]:
    """Every prunable layer's boolean mask (all True where it has none yet)."""
    out = {}
    for name, layer in prunable_layers(model):
        mask = layer.current_mask()
        out[name] = (torch.ones(layer.weight.shape, dtype=torch.bool) if mask is None
                     else mask.detach().cpu().bool())
    return out


def open_lth_masks(model: nn.Module, prune_fraction: float, ignore: frozenset[str] = frozenset()
                   ) -> dict[str, Tensor]:
    """open_lth's ``sparse_global.Strategy.prune`` on the suite's layers (boolean masks).

    ``n = ceil(p * remaining)`` with ``remaining`` counted over every prunable tensor (the
    ignored ones too); the threshold is the ``n``-th (0-based) smallest surviving
    magnitude of the pruned tensors, and only magnitudes strictly above it survive, so
    ``n + 1`` weights go, plus any tied with the threshold.
    """
    masks = current_masks(model)
    remaining = sum(int(m.sum()) for m in masks.values())
    n = math.ceil(prune_fraction * remaining)
    magnitude = {name: layer.weight.detach().abs().cpu().float()
                 for name, layer in prunable_layers(model) if name not in ignore}
    live = torch.cat([magnitude[name][masks[name]] for name in magnitude])
    if n >= live.numel():
        raise BenchError(f"lth: open_lth's rule would prune {n + 1} of the {live.numel()} "
                         "surviving prunable weights")
    threshold = live.kthvalue(n + 1).values
    return {name: mask & (magnitude[name] > threshold) if name in magnitude else mask
            for name, mask in masks.items()}


def resumed_recipe(recipe: Recipe, start_epoch: int) -> Recipe:
    """The recipe's schedule from epoch ``start_epoch`` to its end, as a recipe of its own.

    Exact for ``constant`` and ``multistep`` with no warm-up past ``start_epoch``; anything
    else is a :class:`BenchError` (the engine's other schedules cannot start mid-way).
    """
    if start_epoch == 0:
        return recipe
    if recipe.schedule not in ("constant", "multistep"):
        raise BenchError(f"lth retrain=from-rewind needs a constant or multistep schedule; "
                         f"the {recipe.schedule} schedule cannot resume at epoch {start_epoch}")
    if recipe.warmup_epochs > start_epoch:
        raise BenchError(f"lth retrain=from-rewind: warm-up of {recipe.warmup_epochs:g} epochs "
                         f"runs past the rewind epoch {start_epoch}")
    if start_epoch >= recipe.epochs:
        raise BenchError(f"lth retrain=from-rewind: rewind epoch {start_epoch} leaves nothing "
                         f"of the {recipe.epochs}-epoch training")
    lr = recipe.lr
    if recipe.schedule == "multistep":
        lr *= recipe.gamma ** sum(1 for m in recipe.milestones if m <= start_epoch)
    return replace(recipe, epochs=recipe.epochs - start_epoch, lr=lr, warmup_epochs=0.0,
                   milestones=tuple(m - start_epoch for m in recipe.milestones
                                    if m > start_epoch))


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

    def recipes(self, recipe: Recipe, epochs: int) -> tuple[Recipe | None, Recipe]:
        """(the first training up to the rewind point or None, every later training)."""
        hp = self.hparams
        full = recipe.with_epochs(epochs)
        if hp.retrain == "full" or hp.rewind_epoch == 0:
            return None, full
        return replace(full, epochs=hp.rewind_epoch), resumed_recipe(full, hp.rewind_epoch)

    def check(self, spec: RunSpec, train_images_per_class: int | None) -> None:
        _, epochs = self.schedule(spec.density, spec.recipe.epochs)
        self.recipes(spec.recipe, epochs)

    def planned_epochs(self, spec: RunSpec) -> int:
        densities, epochs = self.schedule(spec.density, spec.recipe.epochs)
        head, later = self.recipes(spec.recipe, epochs)
        return (head.epochs if head else 0) + later.epochs * (len(densities) + 1)

    def run(self, ctx: RunContext) -> nn.Module:
        hp = self.hparams
        densities, epochs = self.schedule(ctx.density, ctx.recipe.epochs)
        head, recipe = self.recipes(ctx.recipe, epochs)
        total = sum(layer.weight.numel() for _, layer in prunable_layers(ctx.model))
        target = kept_count(total, ctx.density)
        ignore = frozenset() if hp.prune_classifier else frozenset({classifier_name(ctx.model)})
        for name in ignore:
            size = dict(prunable_layers(ctx.model))[name].weight.numel()
            if densities and target < size:
                raise BenchError(f"lth prune_classifier=false: density {ctx.density:g} keeps "
                                 f"{target} weights, fewer than the classifier's {size}")

        def scores(model: nn.Module) -> Importance:
            out = magnitude_scores(model)
            for name in ignore:  # ranked above everything: kept, and counted in the density
                out[name] = torch.full_like(out[name], float("inf"))
            return out

        if head is None:
            first = ctx.train(recipe=recipe, phase="round0", final=not densities,
                              snapshot_epochs=(hp.rewind_epoch,), share=True)
            snapshot = first.snapshots[hp.rewind_epoch]
        else:  # open_lth: train to the rewind step, then on from it with a fresh optimiser
            snapshot = ctx.train(recipe=head, phase="rewind", snapshot_epochs=(hp.rewind_epoch,),
                                 share=True).snapshots[hp.rewind_epoch]
            ctx.train(recipe=recipe, phase="round0", final=not densities, share=True)
        for r, density in enumerate(densities, 1):
            t0 = time.perf_counter()
            if hp.count == "open-lth" and r < len(densities):
                masks = open_lth_masks(ctx.model, hp.prune_fraction, ignore)
                if sum(int(m.sum()) for m in masks.values()) >= target:
                    apply_masks(ctx.model, masks)
                else:  # never below the target: land on it now
                    prune(ctx.model, scores, ctx.density)
            else:
                prune(ctx.model, scores, density)
            rewind(ctx.model, snapshot)
            ctx.search.seconds += time.perf_counter() - t0
            ctx.train(recipe=recipe, phase=f"round{r}", final=r == len(densities), share=True)
        ctx.search.extra_epochs += (head.epochs if head else 0) + recipe.epochs * len(densities)
        return ctx.model
