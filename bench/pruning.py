"""Shared pruning machinery: scores -> thresholds -> masks, schedules, pruning data.

Every pruning method uses these, so thresholds, tie handling and schedules are the same
for all: a method only says how it scores weights.

- ``global``: one threshold over all prunable tensors pooled; ``layerwise``: the same
  density in every tensor. Weights already pruned are never revived.
- the cut: ``exact`` keeps exactly ``round(density * n)`` weights (ties at the cut broken
  by position); ``kthvalue`` is the authors' rule (Synaptic-Flow's ``_global_mask``, used
  by the PX, SNIP, GraSP and SynFlow reference code): prune the ``int((1 - density) * n)``
  smallest scores and every score tied with the largest of them.
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
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, get_args

import torch
from torch import Tensor, nn

from bench.counts import kept_count, pruned_count
from bench.errors import BenchError
from bench.models import prunable_layers
from bench.registry import Method

if TYPE_CHECKING:
    from bench.context import RunContext
    from bench.store import RunSpec

Scope = Literal["global", "layerwise"]
Cut = Literal["exact", "kthvalue"]
CUTS: tuple[str, ...] = get_args(Cut)
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


def _live_scores(layer: nn.Module, score: Tensor) -> Tensor:
    """float64 scores with NaN below every number and already-pruned weights at -inf.

    So a NaN-scored live weight is kept only when nothing finite is left, and a pruned
    weight never is.
    """
    score = score.detach().to(layer.weight.device, torch.float64).reshape(layer.weight.shape)
    lowest = torch.finfo(torch.float64).min
    score = torch.nan_to_num(score, nan=lowest, neginf=lowest)
    mask = layer.current_mask()
    if mask is not None:
        score = score.masked_fill(~mask, float("-inf"))
    return score


def _top(flat: Tensor, k: int) -> Tensor:
    """The ``k`` highest entries; among equal scores the earlier position wins (stable)."""
    keep = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    if k > 0:
        order = torch.sort(flat, descending=True, stable=True).indices
        keep[order[:k]] = True
    return keep


def _above_kthvalue(flat: Tensor, density: float) -> Tensor:
    """The authors' cut: prune the ``int((1-density) n)`` smallest and all tied with them.

    Already-pruned entries (-inf) count among the ``n``, as the authors' zero scores do.
    With fewer than one weight to prune, the mask stays as it is.
    """
    pruned = pruned_count(flat.numel(), density)
    if pruned < 1:
        return flat > float("-inf")
    return flat > flat.kthvalue(pruned).values


def _cut(flat: Tensor, density: float, cut: Cut) -> Tensor:
    if cut == "exact":
        return _top(flat, kept_count(flat.numel(), density))
    if cut == "kthvalue":
        return _above_kthvalue(flat, density)
    raise ValueError(f"unknown cut {cut!r}; valid: {', '.join(CUTS)}")


def is_degenerate(live: Tensor) -> bool:
    """True when the live (finite-or-NaN, not pruned) scores of ``live`` are all equal."""
    alive = live > float("-inf")
    if live.numel() < 2:
        return False
    high = torch.where(alive, live, float("-inf")).max()
    low = torch.where(alive, live, float("inf")).min()
    return bool((alive.sum() > 1) & (high == low))  # one value to the host


def _live(model: nn.Module, scores: Importance) -> dict[str, Tensor]:
    layers = prunable_layers(model)
    missing = [name for name, _ in layers if name not in scores]
    if missing:
        raise KeyError(f"no scores for prunable tensors {missing}")
    return {name: _live_scores(layer, scores[name]) for name, layer in layers}


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
) -> list[int]:
    """Score and mask ``model`` in ``rounds`` rounds down to ``density`` (exponential schedule).

    ``score(model)`` sees the current masked model each round. A degenerate round (see the
    module's docstring) leaves the masks alone and calls ``on_degenerate(model, round)``;
    the 1-based numbers of those rounds are returned. A degenerate last round raises
    :class:`BenchError`.
    """
    degenerate = []
    for index, round_density in enumerate(exponential_schedule(density, rounds), start=1):
        live = _live(model, score(model))  # once per round: checked, then cut
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
        apply_masks(model, _select(live, round_density, scope, cut))
    return degenerate


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


class ScoringCopies:
    """A model's private scoring copies, made once and kept across pruning rounds.

    ``build(model)`` returns what the scorer needs and the networks in it. In each later
    round :meth:`get` brings the model's current masks into every copy's prunable layers
    (which zeroes the weights they prune, as a fresh copy of the masked model would have
    them) and clears their gradients, instead of copying the model again: the same numbers
    as a fresh copy every round, without rebuilding the modules (PX deep-copies three
    networks a round). When the model changed otherwise since the copies were made (a
    weight or buffer differs from the copies' source outside the masks, a pruned weight
    was revived, another model), the copies are made anew.
    """

    def __init__(self, build: Callable[[nn.Module], tuple[Any, list[nn.Module]]]) -> None:
        self._build = build
        self._model: weakref.ref[nn.Module] | None = None
        self._value: Any = None
        self._networks: list[nn.Module] = []
        self._source: dict[str, Tensor] = {}

    def get(self, model: nn.Module) -> Any:
        """The copies for ``model`` as it is now."""
        if self._model is None or self._model() is not model or not self._refresh(model):
            self._value, self._networks = self._build(model)
            self._model = weakref.ref(model)
            self._source = _unmasked_state(model)
        return self._value

    def release(self) -> None:
        """Drop the copies (they hold device memory the training needs)."""
        self._model, self._value, self._networks, self._source = None, None, [], {}

    def _refresh(self, model: nn.Module) -> bool:
        masks = {name: layer.current_mask() for name, layer in prunable_layers(model)}
        layers = [dict(prunable_layers(net)) for net in self._networks]
        state = _unmasked_state(model, clone=False)
        if state.keys() != self._source.keys():
            return False
        ok = torch.ones((), dtype=torch.bool, device=_device(model))
        with torch.no_grad():
            for key, value in state.items():
                source = self._source[key]
                mask = masks.get(key.removesuffix(".weight")) if key.endswith(".weight") else None
                if value.shape != source.shape:
                    return False
                ok &= (value == (source if mask is None else source * mask)).all()
            for copy_layers in layers:  # a weight pruned in a copy must be pruned still
                for name, mask in masks.items():
                    held = copy_layers[name].current_mask()
                    if mask is None and held is not None:  # the model's mask was cleared
                        return False
                    if mask is not None and held is not None:
                        ok &= ~(mask & ~held.to(mask.device)).any()
        if not bool(ok):  # one value to the host
            return False
        for copy_layers in layers:
            for name, mask in masks.items():
                if mask is not None:
                    copy_layers[name].set_mask(mask)
        for net in self._networks:
            for param in net.parameters():
                param.grad = None
        return True


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _unmasked_state(model: nn.Module, clone: bool = True) -> dict[str, Tensor]:
    """The model's parameters and buffers without its masks and mask scores (detached)."""
    return {key: value.detach().clone() if clone else value.detach()
            for key, value in model.state_dict().items()
            if not key.endswith((".mask", ".scores"))}


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
    cut: Cut = "exact"
    """``exact``: keep round(d n), ties by position; ``kthvalue``: the authors' cut."""

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

    def run(self, ctx: RunContext) -> nn.Module:
        t0 = time.perf_counter()
        rounds = getattr(self.hparams, "rounds", self.rounds)
        notes: list[dict[str, Any]] = []

        def degenerate(model: nn.Module, index: int) -> None:
            notes.append({"round": index, **self.explain_degenerate(model, ctx)})
            ctx.notes["degenerate_rounds"] = notes

        try:
            prune(ctx.model, lambda m: self.importance(m, ctx), ctx.density, rounds,
                  self.hparams.scope, self.hparams.cut, degenerate)
        finally:
            self.release_copies()
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
