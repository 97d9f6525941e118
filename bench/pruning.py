"""Shared pruning machinery: scores -> thresholds -> masks, schedules, pruning data.

Every pruning method uses these, so thresholds, tie handling and schedules are the same
for all: a method only says how it scores weights.

- ``global``: one threshold over all prunable tensors pooled; ``layerwise``: the same
  density in every tensor. Weights already pruned are never revived, unless a method
  prunes with ``revive`` (FORCE: every weight keeps its score and may come back).
- the cut (:mod:`bench.cuts`): ``exact`` keeps exactly ``round(density * n)`` weights
  (ties at the cut broken by position); ``kthvalue``, ``keep-ties`` and ``exact-ceil`` are
  the rules of the authors' codes the suite is checked against.
- the iterative schedule keeps ``density ** (r / R)`` after round r of R (SynFlow's).
- a round whose live scores are all equal (all zero, say) is *degenerate*: the criterion
  ranks nothing, so that round prunes nothing (never by position), and :func:`prune`
  reports it; a degenerate last round is an error, since the target is not reached.
- masks are selected where the scores are (on the GPU for a GPU run): the only value a
  round brings to the host is the degenerate check's one boolean.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from bench.counts import kept_count  # noqa: F401 (re-exported for plugins and tests)
from bench.cuts import CUTS, Cut
from bench.cuts import cut as _cut
from bench.data import mix_seed
from bench.errors import BenchError
from bench.models import prunable_layers
from bench.registry import Method
from bench.scoring_copies import ScoringCopies

if TYPE_CHECKING:
    from bench.context import RunContext
    from bench.store import RunSpec

Scope = Literal["global", "layerwise"]
Importance = dict[str, Tensor]
"""Per prunable layer, one non-negative number per weight: higher is kept first. (Edge-Popup's
trainable ``scores`` are a different thing: parameters of a mask learner.)"""
PRUNING_IMAGES_PER_CLASS = 10
PRUNING_BATCH_SIZE = 256


def exponential_schedule(density: float, rounds: int) -> list[float]:
    """Densities after each of ``rounds`` rounds: ``density ** (r / rounds)``, r = 1..rounds."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    return [density ** (r / rounds) for r in range(1, rounds + 1)]


def _live_scores(layer: nn.Module, score: Tensor, revive: bool = False) -> Tensor:
    """float64 scores with NaN below every number and already-pruned weights at -inf.

    So a NaN-scored live weight is kept only when nothing finite is left, and a pruned
    weight never is (with ``revive``, pruned weights keep their scores).
    """
    score = score.detach().to(layer.weight.device, torch.float64).reshape(layer.weight.shape)
    lowest = torch.finfo(torch.float64).min
    score = torch.nan_to_num(score, nan=lowest, neginf=lowest)
    mask = None if revive else layer.current_mask()
    if mask is not None:
        score = score.masked_fill(~mask, float("-inf"))
    return score


def is_degenerate(live: Tensor) -> bool:
    """True when the live (finite-or-NaN, not pruned) scores of ``live`` are all equal."""
    alive = live > float("-inf")
    if live.numel() < 2:
        return False
    high = torch.where(alive, live, float("-inf")).max()
    low = torch.where(alive, live, float("inf")).min()
    return bool((alive.sum() > 1) & (high == low))  # one value to the host


def _live(model: nn.Module, scores: Importance, revive: bool = False) -> dict[str, Tensor]:
    layers = prunable_layers(model)
    missing = [name for name, _ in layers if name not in scores]
    if missing:
        raise KeyError(f"no scores for prunable tensors {missing}")
    return {name: _live_scores(layer, scores[name], revive) for name, layer in layers}


def _pooled(live: dict[str, Tensor]) -> Tensor:
    """Every layer's scores in one flat tensor, on the scores' device (sorted there too)."""
    return torch.cat([s.flatten() for s in live.values()])


def _degenerate(live: dict[str, Tensor], scope: Scope) -> bool:
    if scope == "layerwise":
        return any(is_degenerate(s.flatten()) for s in live.values())
    return is_degenerate(_pooled(live))


def degenerate_scores(model: nn.Module, scores: Importance, scope: Scope = "global") -> bool:
    """Whether ``scores`` rank nothing: equal over all live weights (of a tensor, layerwise)."""
    return _degenerate(_live(model, scores), scope)


def select_masks(model: nn.Module, scores: Importance, density: float, scope: Scope = "global",
                 cut: Cut = "exact") -> dict[str, Tensor]:
    """Boolean masks keeping the highest scores at ``density`` (global or per tensor)."""
    return _select(_live(model, scores), density, scope, cut)


def _select(live: dict[str, Tensor], density: float, scope: Scope, cut: Cut
            ) -> dict[str, Tensor]:
    if scope == "layerwise":
        return {name: _cut(s.flatten(), density, cut).reshape(s.shape)
                for name, s in live.items()}
    keep = _cut(_pooled(live), density, cut)
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
    score: Callable[[nn.Module], Importance],
    density: float,
    rounds: int = 1,
    scope: Scope = "global",
    cut: Cut = "exact",
    on_degenerate: Callable[[nn.Module, int], None] | None = None,
    revive: bool = False,
) -> list[int]:
    """Score and mask ``model`` in ``rounds`` rounds down to ``density`` (exponential schedule).

    ``score(model)`` sees the current masked model each round. A degenerate round (see the
    module's docstring) leaves the masks alone and calls ``on_degenerate(model, round)``;
    the 1-based numbers of those rounds are returned. A degenerate last round raises
    :class:`BenchError`. With ``revive`` every weight is ranked in every round, pruned ones
    too, and the weights under a mask keep their values until the last round's mask zeroes
    them, so a weight pruned in one round comes back with its value in a later one (FORCE).
    """
    degenerate = []
    for index, round_density in enumerate(exponential_schedule(density, rounds), start=1):
        live = _live(model, score(model), revive)  # once per round: checked, then cut
        if _degenerate(live, scope):
            degenerate.append(index)
            if on_degenerate is not None:
                on_degenerate(model, index)
            if index == rounds:
                raise BenchError(
                    f"pruning round {index} of {rounds} is degenerate: the scores are equal "
                    "over all live weights, so they rank nothing and the target density "
                    f"{density:g} cannot be reached without keeping weights by position "
                    f"(degenerate rounds: {_ranges(degenerate)})")
            continue
        masks = _select(live, round_density, scope, cut)
        if revive:
            _hold_masks(model, masks, final=index == rounds)
        else:
            apply_masks(model, masks)
    return degenerate


def _hold_masks(model: nn.Module, masks: dict[str, Tensor], final: bool) -> None:
    """Replace the masks, keeping the values of the weights they prune (zeroed when final)."""
    for name, layer in prunable_layers(model):
        layer.clear_mask()
        layer.set_mask(masks[name], revivable=not final)


def _ranges(numbers: list[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``"1-3, 7"``."""
    spans: list[list[int]] = []
    for n in numbers:
        if spans and spans[-1][1] == n - 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ", ".join(f"{a}-{b}" if b > a else str(a) for a, b in spans)


def weight_gradients(model: nn.Module) -> Importance:
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


def training_batches(ctx: RunContext, batch_size: int, stream: int
                     ) -> Iterator[tuple[Tensor, Tensor]]:
    """Fresh augmented training batches without end (shuffled epochs, drop_last) from the
    seed's stream ``stream``: for methods that score each step on a new batch of the
    training split (the authors' FORCE, iterative SNIP and ProsPr)."""
    seed, epoch = mix_seed(ctx.seed, stream), 0
    while True:
        yield from ctx.data.train_batches(batch_size, seed, epoch)
        epoch += 1


@dataclass(frozen=True)
class PruneAtInitHparams:
    """Hyperparameters every pruning-at-initialisation method has."""

    scope: Scope = "global"
    cut: Cut = "exact"
    """``exact``: keep round(d n), ties by position; the others: authors' cuts
    (:mod:`bench.cuts`)."""

    def __post_init__(self) -> None:
        if self.cut not in CUTS:
            raise ValueError(f"cut must be one of {', '.join(CUTS)}, got {self.cut!r}")


class PruneAtInit(Method):
    """Score the initialised network, fix the mask, train the kept weights for the budget.

    Subclasses implement :meth:`scores`; ``rounds`` > 1 prunes iteratively with the
    exponential schedule (an ``Hparams`` field named ``rounds`` overrides it).
    """

    Hparams: ClassVar[type] = PruneAtInitHparams
    rounds: ClassVar[int] = 1
    uses_pruning_set: ClassVar[bool] = False  # scores on the seed's pruning set
    revives: ClassVar[bool] = False  # pruned weights may come back (:func:`prune`'s revive)

    def check(self, spec: RunSpec, train_images_per_class: int | None) -> None:
        if (self.uses_pruning_set and train_images_per_class is not None
                and train_images_per_class < PRUNING_IMAGES_PER_CLASS):
            raise BenchError(
                f"{self.name} scores on {PRUNING_IMAGES_PER_CLASS} training images per class, "
                f"but the training subset has {train_images_per_class} per class; raise "
                "--train-subset")

    def importance(self, model: nn.Module, ctx: RunContext) -> Importance:  # pragma: no cover
        raise NotImplementedError

    def explain_degenerate(self, model: nn.Module, ctx: RunContext) -> dict[str, Any]:
        """What a degenerate round's record should say besides its number (PX: float64 check)."""
        return {}

    def kept_copies(self, model: nn.Module,
                    build: Callable[[nn.Module], tuple[Any, list[nn.Module]]]) -> Any:
        """``build(model)``'s scoring copies, made in the first round and refreshed in later
        ones (:class:`ScoringCopies`); :meth:`run` drops them before training."""
        cache = getattr(self, "_scoring_copies", None)
        if cache is None:
            cache = self._scoring_copies = ScoringCopies(build)
        return cache.get(model)

    def release_copies(self) -> None:
        """Drop the copies :meth:`kept_copies` holds."""
        cache = getattr(self, "_scoring_copies", None)
        if cache is not None:
            cache.release()

    def prune_model(self, model: nn.Module, ctx: RunContext) -> list[int]:
        """Score and mask ``model`` down to ``ctx.density`` in every round, training nothing
        (what :meth:`run` does before it trains, and what ``bench.conformance`` checks);
        returns the degenerate rounds, which ``ctx.notes`` records."""
        rounds = getattr(self.hparams, "rounds", self.rounds)
        notes: list[dict[str, Any]] = []

        def degenerate(model: nn.Module, index: int) -> None:
            notes.append({"round": index, **self.explain_degenerate(model, ctx)})
            ctx.notes["degenerate_rounds"] = notes

        try:
            return prune(model, lambda m: self.importance(m, ctx), ctx.density, rounds,
                         self.hparams.scope, self.hparams.cut, degenerate, self.revives)
        finally:
            self.release_copies()

    def run(self, ctx: RunContext) -> nn.Module:
        t0 = time.perf_counter()
        self.prune_model(ctx.model, ctx)
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
