"""Shared pruning machinery: scores -> thresholds -> masks, schedules, pruning data.

Every pruning method uses these, so thresholds, tie handling and schedules are the same
for all: a method only says how it scores weights.

- ``global``: one threshold over all prunable tensors pooled; ``layerwise``: the same
  density in every tensor. Both keep exactly ``round(density * n)`` weights (ties at the
  cut broken by position), and weights already pruned are never revived.
- the iterative schedule keeps ``density ** (r / R)`` after round r of R (SynFlow's).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

import torch
from torch import Tensor, nn

from bench.errors import BenchError
from bench.models import prunable_layers
from bench.registry import Method

if TYPE_CHECKING:
    from bench.harness import RunContext
    from bench.store import RunSpec

Scope = Literal["global", "layerwise"]
Scores = dict[str, Tensor]
PRUNING_IMAGES_PER_CLASS = 10
PRUNING_BATCH_SIZE = 256


def exponential_schedule(density: float, rounds: int) -> list[float]:
    """Densities after each of ``rounds`` rounds: ``density ** (r / rounds)``, r = 1..rounds."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    return [density ** (r / rounds) for r in range(1, rounds + 1)]


def kept_count(numel: int, density: float) -> int:
    """Weights kept out of ``numel`` at ``density``: the nearest whole number."""
    return int(round(density * numel))


def _live_scores(layer: nn.Module, score: Tensor) -> Tensor:
    """float64 scores with NaN below every number and already-pruned weights at -inf.

    So a NaN-scored live weight is kept only when nothing finite is left, and a pruned
    weight never is.
    """
    score = score.detach().to(torch.float64).reshape(layer.weight.shape)
    lowest = torch.finfo(torch.float64).min
    score = torch.nan_to_num(score, nan=lowest, neginf=lowest)
    mask = layer.current_mask()
    if mask is not None:
        score = score.masked_fill(~mask.to(score.device), float("-inf"))
    return score


def _top(flat: Tensor, k: int) -> Tensor:
    """The ``k`` highest entries; among equal scores the earlier position wins (stable)."""
    keep = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    if k > 0:
        order = torch.sort(flat, descending=True, stable=True).indices
        keep[order[:k]] = True
    return keep


def select_masks(model: nn.Module, scores: Scores, density: float, scope: Scope = "global"
                 ) -> dict[str, Tensor]:
    """Boolean masks keeping the highest scores at ``density`` (global or per tensor)."""
    layers = prunable_layers(model)
    missing = [name for name, _ in layers if name not in scores]
    if missing:
        raise KeyError(f"no scores for prunable tensors {missing}")
    live = {name: _live_scores(layer, scores[name]) for name, layer in layers}
    if scope == "layerwise":
        return {name: _top(s.flatten(), kept_count(s.numel(), density)).reshape(s.shape)
                for name, s in live.items()}
    flat = torch.cat([s.flatten().cpu() for s in live.values()])
    keep = _top(flat, kept_count(flat.numel(), density))
    masks, offset = {}, 0
    for name, s in live.items():
        masks[name] = keep[offset:offset + s.numel()].reshape(s.shape)
        offset += s.numel()
    return masks


def apply_masks(model: nn.Module, masks: dict[str, Tensor]) -> None:
    """Fix the masks on the model's prunable layers (pruned weights are zeroed)."""
    for name, layer in prunable_layers(model):
        layer.set_mask(masks[name])


def prune(
    model: nn.Module,
    score: Callable[[nn.Module], Scores],
    density: float,
    rounds: int = 1,
    scope: Scope = "global",
) -> None:
    """Score and mask ``model`` in ``rounds`` rounds down to ``density`` (exponential schedule).

    ``score(model)`` sees the current masked model each round.
    """
    for round_density in exponential_schedule(density, rounds):
        apply_masks(model, select_masks(model, score(model), round_density, scope))


def weight_gradients(model: nn.Module) -> Scores:
    """d(objective)/d(weight) of each prunable layer after a backward pass (0 where unused)."""
    return {name: (layer.weight.grad if layer.weight.grad is not None
                   else torch.zeros_like(layer.weight))
            for name, layer in prunable_layers(model)}


def scoring_copy(model: nn.Module, dtype: torch.dtype | None = None) -> nn.Module:
    """A private copy to score on: the run's model is never touched (no hooks, modes, grads)."""
    clone = copy.deepcopy(model)
    if dtype is not None:
        clone = clone.to(dtype)
    for p in clone.parameters():
        p.grad = None
    for _, layer in prunable_layers(clone):
        layer.weight.requires_grad_(True)
    return clone


def pruning_batches(ctx: RunContext, batch_size: int = PRUNING_BATCH_SIZE
                    ) -> Iterator[tuple[Tensor, Tensor]]:
    """The seed's pruning set (10 augmented images per class) in batches on the device."""
    x, y = ctx.data.pruning_batch(PRUNING_IMAGES_PER_CLASS, ctx.seed)
    for i in range(0, len(y), batch_size):
        yield x[i:i + batch_size], y[i:i + batch_size]


@dataclass(frozen=True)
class PruneAtInitHparams:
    """Hyperparameters every pruning-at-initialisation method has."""

    scope: Scope = "global"


class PruneAtInit(Method):
    """Score the initialised network, fix the mask, train the kept weights for the budget.

    Subclasses implement :meth:`scores`; ``rounds`` > 1 prunes iteratively with the
    exponential schedule (an ``Hparams`` field named ``rounds`` overrides it).
    """

    Hparams: ClassVar[type] = PruneAtInitHparams
    rounds: ClassVar[int] = 1
    uses_pruning_set: ClassVar[bool] = False  # scores on the seed's pruning set

    def check(self, spec: RunSpec, train_images_per_class: int | None) -> None:
        if (self.uses_pruning_set and train_images_per_class is not None
                and train_images_per_class < PRUNING_IMAGES_PER_CLASS):
            raise BenchError(
                f"{self.name} scores on {PRUNING_IMAGES_PER_CLASS} training images per class, "
                f"but the training subset has {train_images_per_class} per class; raise "
                "--train-subset")

    def scores(self, model: nn.Module, ctx: RunContext) -> Scores:  # pragma: no cover
        raise NotImplementedError

    def run(self, ctx: RunContext) -> nn.Module:
        t0 = time.perf_counter()
        rounds = getattr(self.hparams, "rounds", self.rounds)
        prune(ctx.model, lambda m: self.scores(m, ctx), ctx.density, rounds, self.hparams.scope)
        ctx.search.seconds += time.perf_counter() - t0
        ctx.train()
        return ctx.model


def rewind(model: nn.Module, snapshot: dict[str, Tensor]) -> None:
    """Load an earlier state (weights, norm statistics) into a pruned model, keeping its masks.

    The snapshot's weights under a zero mask are zeroed again, so pruned stays pruned.
    """
    state = model.state_dict()
    with torch.no_grad():
        for key, value in snapshot.items():
            if key in state and not key.endswith((".mask", ".scores")):
                state[key].copy_(value.to(state[key].device))
        for _, layer in prunable_layers(model):
            if layer.mask is not None:
                layer.weight.mul_(layer.mask)
