"""The shared pruning machinery (bench.pruning): schedules, thresholds, masks, pruning data.

Every pruning method goes through these functions, so the properties are checked here once:
exact kept counts for global and layerwise thresholds, pruned weights never revived, ties and
NaN scores, the exponential schedule, private scoring copies, the seed's pruning set,
rewinding, masks that survive real SGD steps, and the layer-collapse flag. And the scoring
copies PX and SynFlow keep across rounds: the same scores and masks as fresh copies, made
anew when the model changed outside its masks, dropped after pruning.
"""

from __future__ import annotations

import copy
import gc
import math
import weakref
from types import SimpleNamespace
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bench.context import SearchCost
from bench.data import DATASETS, DeviceData, mix_seed
from bench.engine import EngineOptions, state_snapshot, train
from bench.errors import BenchError
from bench.metrics import model_metrics
from bench.models import PrunableLinear, build_model, prunable_layers
from bench.pruning import (
    PRUNING_IMAGES_PER_CLASS,
    apply_masks,
    degenerate_scores,
    exponential_schedule,
    kept_count,
    prune,
    pruning_batches,
    rewind,
    scoring_copy,
    select_masks,
    training_batches,
    weight_gradients,
)
from bench.recipe import Recipe

DENSITIES = [0.5, 0.1, 0.02]


# ---------------------------------------------------------------------------- helpers


def resnet(width: float = 0.5, seed: int = 0) -> nn.Module:
    return build_model("resnet20", 10, seed=seed, width=width)


def total_weights(model: nn.Module) -> int:
    return sum(layer.weight.numel() for _, layer in prunable_layers(model))


def gaussian_scores(model: nn.Module, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {name: torch.randn(layer.weight.shape, generator=g)
            for name, layer in prunable_layers(model)}


def magnitude(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: layer.weight.detach().abs() for name, layer in prunable_layers(model)}


SCORERS = {"random": lambda m: gaussian_scores(m, 7), "magnitude": magnitude}


def mask_of(layer: nn.Module) -> torch.Tensor:
    mask = layer.current_mask()
    return torch.ones_like(layer.weight, dtype=torch.bool) if mask is None else mask.cpu()


def masks_of(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: mask_of(layer).clone() for name, layer in prunable_layers(model)}


def synthetic_data(n: int = 200, seed: int = 0) -> DeviceData:
    """A tiny CIFAR-10-shaped DeviceData: random uint8 images, n // 10 per class."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    y = torch.arange(n) % 10
    return DeviceData(DATASETS["cifar10"], x, y, x[: n // 4], y[: n // 4])


# ---------------------------------------------------------------------------- schedule


def test_exponential_schedule_values():
    assert exponential_schedule(0.5, 1) == [0.5]
    two = exponential_schedule(0.01, 2)
    assert two[0] == pytest.approx(0.1, rel=1e-12) and two[1] == 0.01
    sched = exponential_schedule(0.02, 100)
    assert len(sched) == 100
    assert sched[-1] == 0.02  # the last round lands exactly on the target
    for r, d in enumerate(sched, 1):
        assert d == pytest.approx(0.02 ** (r / 100), rel=1e-12)
    ratios = [b / a for a, b in zip(sched, sched[1:])]
    assert all(r == pytest.approx(0.02 ** 0.01, rel=1e-9) for r in ratios)  # geometric
    assert sched[0] == pytest.approx(0.9616, abs=1e-4)  # 0.02 ** 0.01
    with pytest.raises(ValueError):
        exponential_schedule(0.5, 0)


def test_kept_count_is_the_nearest_whole_number():
    assert kept_count(10, 0.5) == 5
    assert kept_count(67992, 0.02) == 1360  # 1359.84
    assert kept_count(216, 0.1) == 22  # 21.6
    assert kept_count(1000, 0.0001) == 0
    assert kept_count(1000, 1.0) == 1000
    for n in (1, 7, 128, 4608, 67992):
        for d in (0.9, 0.5, 0.3, 0.1, 0.02, 0.001):
            assert abs(kept_count(n, d) - d * n) <= 0.5


# ---------------------------------------------------------------------------- thresholds


@pytest.mark.parametrize("scorer", list(SCORERS))
@pytest.mark.parametrize("density", DENSITIES)
def test_global_threshold_keeps_exactly_the_highest_scores(scorer, density):
    model = resnet(0.5)
    scores = SCORERS[scorer](model)
    total = total_weights(model)
    masks = select_masks(model, scores, density, "global")
    assert sum(int(m.sum()) for m in masks.values()) == kept_count(total, density)
    kept = torch.cat([scores[n][masks[n]].flatten() for n in masks])
    dropped = torch.cat([scores[n][~masks[n]].flatten() for n in masks])
    assert kept.min() >= dropped.max()
    apply_masks(model, masks)
    metrics = model_metrics(model)
    assert metrics["parameters_kept"] == round(density * total)
    assert abs(metrics["density"] - density) <= 0.5 / total  # within one weight of the target
    for name, layer in prunable_layers(model):
        assert torch.equal(mask_of(layer), masks[name])


@pytest.mark.parametrize("scorer", list(SCORERS))
@pytest.mark.parametrize("density", DENSITIES)
def test_layerwise_threshold_keeps_the_density_in_every_tensor(scorer, density):
    model = resnet(0.5)
    scores = SCORERS[scorer](model)
    masks = select_masks(model, scores, density, "layerwise")
    for name, layer in prunable_layers(model):
        mask = masks[name]
        assert mask.shape == layer.weight.shape
        assert int(mask.sum()) == round(density * layer.weight.numel())
        if mask.any() and not mask.all():
            assert scores[name][mask].min() >= scores[name][~mask].max()
    apply_masks(model, masks)
    for name, density_here in model_metrics(model)["density_per_tensor"].items():
        numel = model.get_submodule(name.removesuffix(".weight")).weight.numel()
        assert density_here * numel == pytest.approx(round(density * numel))


def test_select_masks_needs_a_score_for_every_prunable_tensor():
    model = resnet(0.25)
    scores = magnitude(model)
    scores.pop("fc")
    with pytest.raises(KeyError, match="fc"):
        select_masks(model, scores, 0.5)


@pytest.mark.parametrize("scope", ["global", "layerwise"])
def test_already_pruned_weights_are_never_revived(scope):
    model = resnet(0.25)
    first = select_masks(model, gaussian_scores(model, 1), 0.5, scope)
    apply_masks(model, first)
    # Importance that rank every pruned weight above every live one: still none comes back.
    scores = {name: torch.where(first[name], torch.rand(m.shape), 10 + torch.rand(m.shape))
              for name, m in first.items()}
    second = select_masks(model, scores, 0.25, scope)
    for name, mask in second.items():
        assert not (mask & ~first[name]).any()
    if scope == "global":
        assert sum(int(m.sum()) for m in second.values()) == kept_count(total_weights(model), 0.25)
    else:
        for name, layer in prunable_layers(model):
            assert int(second[name].sum()) == kept_count(layer.weight.numel(), 0.25)
    apply_masks(model, second)
    for name, layer in prunable_layers(model):
        assert torch.equal(mask_of(layer), second[name])
        assert (layer.weight[~second[name]] == 0).all()


@pytest.mark.parametrize("scope", ["global", "layerwise"])
def test_prune_in_rounds_follows_the_schedule_and_never_revives(scope):
    """Fresh random scores every round: only the -inf of pruned weights keeps masks nested."""
    model = resnet(0.25)
    total = total_weights(model)
    seen: list[dict[str, torch.Tensor]] = []
    draws = iter(range(100))

    def score(m: nn.Module) -> dict[str, torch.Tensor]:
        seen.append(masks_of(m))
        for _, layer in prunable_layers(m):  # the scorer sees the current masked model
            assert (layer.weight[~mask_of(layer)] == 0).all()
        return gaussian_scores(m, next(draws))

    prune(model, score, 0.05, rounds=5, scope=scope)
    seen.append(masks_of(model))
    assert len(seen) == 6  # five scorings and the final state
    assert all(m.all() for m in seen[0].values())  # round 1 scores the dense model
    for before, after, d in zip(seen, seen[1:], exponential_schedule(0.05, 5)):
        for name in after:
            assert not (after[name] & ~before[name]).any()
        if scope == "global":
            assert sum(int(m.sum()) for m in after.values()) == kept_count(total, d)
        else:
            for m in after.values():
                assert int(m.sum()) == kept_count(m.numel(), d)


# ---------------------------------------------------------------------------- ties and NaN


@pytest.mark.parametrize("density", DENSITIES)
def test_all_tied_scores_still_give_the_exact_count(density):
    model = resnet(0.25)
    total = total_weights(model)
    zeros = {name: torch.zeros(layer.weight.shape) for name, layer in prunable_layers(model)}
    masks = select_masks(model, zeros, density, "global")
    assert sum(int(m.sum()) for m in masks.values()) == kept_count(total, density)
    assert all(torch.equal(a, b) for a, b in
               zip(masks.values(), select_masks(model, zeros, density, "global").values()))
    layerwise = select_masks(model, zeros, density, "layerwise")
    for name, layer in prunable_layers(model):
        assert int(layerwise[name].sum()) == kept_count(layer.weight.numel(), density)


def test_ties_at_the_cut_fill_up_to_the_exact_count():
    layer = PrunableLinear(10, 10, bias=False)
    model = nn.Sequential(layer)
    # 30 distinct high scores, 40 tied at 0.5, 30 distinct low ones; keep 50.
    scores = torch.cat([torch.linspace(2, 3, 30), torch.full((40,), 0.5),
                        torch.linspace(-3, 0, 30)])
    scores = scores[torch.randperm(100, generator=torch.Generator().manual_seed(0))]
    for scope in ("global", "layerwise"):
        mask = select_masks(model, {"0": scores.view(10, 10)}, 0.5, scope)["0"].flatten()
        assert int(mask.sum()) == 50
        assert mask[scores > 0.5].all()  # everything above the cut kept
        assert not mask[scores < 0.5].any()  # nothing below it
        assert int(mask[scores == 0.5].sum()) == 20


def test_ties_at_the_cut_are_broken_by_position():
    layer = PrunableLinear(20, 1, bias=False)
    model = nn.Sequential(layer)
    mask = select_masks(model, {"0": torch.zeros(1, 20)}, 0.25)["0"].flatten()
    kept = torch.nonzero(mask).flatten().tolist()
    assert kept == [0, 1, 2, 3, 4]  # the earliest positions win


def test_kthvalue_cut_prunes_the_authors_count_and_every_tie_at_the_threshold():
    """The authors' rule: prune int((1-d) n) smallest, and all scores equal to the last."""
    model = nn.Sequential(PrunableLinear(6, 1, bias=False))
    scores = torch.tensor([[3.0, 1.0, 1.0, 1.0, 2.0, 0.5]])
    # d = 0.5: prune int(3) -> threshold = 3rd smallest = 1.0 -> every 1.0 goes: 2 kept
    mask = select_masks(model, {"0": scores}, 0.5, cut="kthvalue")["0"].flatten()
    assert mask.tolist() == [True, False, False, False, True, False]
    # the exact cut keeps 3: the two above the tie and the first tied position
    exact = select_masks(model, {"0": scores}, 0.5, cut="exact")["0"].flatten()
    assert exact.tolist() == [True, True, False, False, True, False]
    # fewer than one weight to prune: the mask stays as it is
    keep_all = select_masks(model, {"0": scores}, 0.9, cut="kthvalue")["0"]
    assert bool(keep_all.all())
    with pytest.raises(ValueError, match="unknown cut"):
        select_masks(model, {"0": scores}, 0.5, cut="nearest")


def test_kthvalue_cut_counts_pruned_weights_and_never_revives_them():
    layer = PrunableLinear(5, 2, bias=False)
    model = nn.Sequential(layer)
    layer.set_mask(torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]], dtype=torch.bool))
    scores = torch.arange(10.0, 0.0, -1.0).view(2, 5)  # the pruned two score highest
    mask = select_masks(model, {"0": scores}, 0.5, cut="kthvalue")["0"]
    # n = 10 counts the pruned two (lowest after masking): prune int(5) -> 3 live ones go
    assert mask.tolist() == [[False, False, True, True, True], [True, True, False, False, False]]


def test_keep_ties_cut_keeps_the_floor_count_and_every_tie_at_the_threshold():
    """FORCE's rule: the int(d n)-th largest score is the threshold, all at or above it kept."""
    model = nn.Sequential(PrunableLinear(6, 1, bias=False))
    scores = torch.tensor([[3.0, 1.0, 1.0, 1.0, 2.0, 0.5]])
    # d = 0.5: int(3) -> the 3rd largest is 1.0 -> every 1.0 stays: 5 kept
    mask = select_masks(model, {"0": scores}, 0.5, cut="keep-ties")["0"].flatten()
    assert mask.tolist() == [True, True, True, True, True, False]
    # d = 0.49: int(2.94) = 2 -> threshold 2.0: the two above it
    mask = select_masks(model, {"0": scores}, 0.49, cut="keep-ties")["0"].flatten()
    assert mask.tolist() == [True, False, False, False, True, False]
    assert not select_masks(model, {"0": scores}, 0.1, cut="keep-ties")["0"].any()  # int(0.6)


def test_keep_ties_cut_never_keeps_a_pruned_weight():
    layer = PrunableLinear(5, 2, bias=False)
    model = nn.Sequential(layer)
    layer.set_mask(torch.tensor([[0, 0, 0, 1, 1], [0, 0, 0, 0, 1]], dtype=torch.bool))
    # 3 live weights, int(0.5 * 10) = 5 asked for: the threshold falls on the pruned ones
    mask = select_masks(model, {"0": torch.ones(2, 5)}, 0.5, cut="keep-ties")["0"]
    assert torch.equal(mask, layer.current_mask())


def test_exact_ceil_cut_keeps_the_ceiling_count_ties_by_position():
    """ProsPr's rule: ceil(d n) kept, where the suite's exact cut keeps round(d n)."""
    model = nn.Sequential(PrunableLinear(10, 1, bias=False))
    scores = torch.tensor([[5.0, 1.0, 1.0, 4.0, 1.0, 0.0, 0.0, 3.0, 1.0, 2.0]])
    ceil = select_masks(model, {"0": scores}, 0.41, cut="exact-ceil")["0"].flatten()
    exact = select_masks(model, {"0": scores}, 0.41, cut="exact")["0"].flatten()
    assert int(ceil.sum()) == 5 and int(exact.sum()) == 4  # ceil(4.1) and round(4.1)
    assert ceil.tolist() == [True, True, False, True, False, False, False, True, False, True]
    assert kept_count(270896, 0.1, "ceil") == 27090 and kept_count(270896, 0.1, "floor") == 27089


def test_revive_ranks_pruned_weights_and_brings_them_back_with_their_values():
    """FORCE's rounds: every weight is scored in every round, a weight pruned in round 1 can
    come back in round 2 with its initial value, and only the last mask zeroes weights."""
    model = resnet(0.25)
    initial = {name: layer.weight.detach().clone() for name, layer in prunable_layers(model)}
    first_masks: dict[str, torch.Tensor] = {}
    seen = []

    def score(m: nn.Module) -> dict[str, torch.Tensor]:
        seen.append(masks_of(m))
        for name, layer in prunable_layers(m):  # the weights under the masks keep values
            assert torch.equal(layer.weight.detach(), initial[name])
        if len(seen) == 1:
            return magnitude(m)
        first_masks.update(seen[1])  # round 2 ranks round 1's pruned weights on top
        return {n: 10 * (~mask).double() + magnitude(m)[n].double() for n, mask in seen[1].items()}

    prune(model, score, 0.1, rounds=2, scope="global", cut="exact", revive=True)
    total = total_weights(model)
    final = masks_of(model)
    assert sum(int(m.sum()) for m in final.values()) == kept_count(total, 0.1)
    revived = sum(int((final[n] & ~first_masks[n]).sum()) for n in final)
    assert revived == kept_count(total, 0.1)  # all kept weights were pruned in round 1
    for name, layer in prunable_layers(model):
        assert torch.equal(layer.weight.detach(), initial[name] * final[name])


def test_prune_without_revive_still_never_revives_when_scores_ask_for_it():
    model = resnet(0.25)
    masks = []

    def score(m: nn.Module) -> dict[str, torch.Tensor]:
        masks.append(masks_of(m))
        if len(masks) == 1:
            return magnitude(m)
        return {n: 10 * (~mask).double() + magnitude(m)[n] for n, mask in masks[-1].items()}

    prune(model, score, 0.1, rounds=2, scope="global", cut="exact")
    assert all(not (mask_of(layer) & ~masks[1][n]).any() for n, layer in prunable_layers(model))


@pytest.mark.parametrize("scope", ["global", "layerwise"])
def test_a_round_of_equal_scores_is_degenerate_prunes_nothing_and_is_reported(scope):
    model = resnet(0.25)
    before = {}
    calls = []

    def score(m: nn.Module) -> dict[str, torch.Tensor]:
        calls.append(len(calls) + 1)
        if len(calls) == 2:  # round 2: all zero over the live weights
            before.update(masks_of(m))
            return {name: torch.zeros(layer.weight.shape) for name, layer in prunable_layers(m)}
        return magnitude(m)

    seen = []
    degenerate = prune(model, score, 0.2, rounds=4, scope=scope,
                       on_degenerate=lambda m, r: seen.append((r, masks_of(m))))
    assert degenerate == [2] and [r for r, _ in seen] == [2]
    assert all(torch.equal(before[n], seen[0][1][n]) for n in before)  # round 2 pruned nothing
    assert model_metrics(model)["parameters_kept"] <= kept_count(total_weights(model), 0.2) + 9


def test_degenerate_scores_ignore_pruned_weights():
    model = nn.Sequential(PrunableLinear(4, 1, bias=False))
    model[0].set_mask(torch.tensor([[1, 1, 0, 0]], dtype=torch.bool))
    live_equal = torch.tensor([[0.5, 0.5, 9.0, 1.0]])
    assert degenerate_scores(model, {"0": live_equal})
    assert not degenerate_scores(model, {"0": torch.tensor([[0.5, 0.6, 9.0, 9.0]])})


def test_a_degenerate_last_round_is_an_error_not_a_positional_mask():
    model = resnet(0.25)

    def zeros(m: nn.Module) -> dict[str, torch.Tensor]:
        return {n: torch.zeros(layer.weight.shape) for n, layer in prunable_layers(m)}

    with pytest.raises(BenchError, match="round 1 of 1 is degenerate"):
        prune(model, zeros, 0.5)
    assert all(layer.current_mask() is None for _, layer in prunable_layers(model))


@pytest.mark.parametrize("scope", ["global", "layerwise"])
def test_nan_scores_are_never_kept(scope):
    model = resnet(0.25)
    scores = gaussian_scores(model, 3)
    g = torch.Generator().manual_seed(4)
    nan_at = {name: torch.rand(s.shape, generator=g) < 0.3 for name, s in scores.items()}
    for name, s in scores.items():
        s[nan_at[name]] = float("nan")
        s.view(-1)[0] = float("nan")  # at least one in every tensor
        nan_at[name].view(-1)[0] = True
    masks = select_masks(model, scores, 0.5, scope)  # 50% kept < 70% finite
    for name, mask in masks.items():
        assert not (mask & nan_at[name]).any()
    if scope == "global":
        assert sum(int(m.sum()) for m in masks.values()) == kept_count(total_weights(model), 0.5)
    else:
        for mask in masks.values():
            assert int(mask.sum()) == kept_count(mask.numel(), 0.5)


def test_nan_scores_never_make_the_mask_pick_pruned_weights():
    layer = PrunableLinear(20, 1, bias=False)
    model = nn.Sequential(layer)
    alive = torch.ones(1, 20, dtype=torch.bool)
    alive[0, :8] = False
    layer.set_mask(alive)  # 12 live weights: 4 finite scores, 8 NaN
    scores = torch.full((1, 20), float("nan"))
    scores[0, 8:12] = torch.tensor([1.0, 2.0, 3.0, 4.0])
    mask = select_masks(model, {"0": scores}, 0.5)["0"]  # keep 10
    assert not (mask & ~alive).any()  # never a dead weight
    assert mask[0, 8:12].all()  # every finite score before any NaN
    apply_masks(model, {"0": mask})
    assert layer.kept() == kept_count(20, 0.5)


# ---------------------------------------------------------------------------- masks


def test_apply_masks_zeroes_exactly_the_pruned_weights():
    model = resnet(0.25)
    before = {name: layer.weight.detach().clone() for name, layer in prunable_layers(model)}
    masks = select_masks(model, gaussian_scores(model, 5), 0.3)
    apply_masks(model, masks)
    for name, layer in prunable_layers(model):
        assert layer.mask.dtype == layer.weight.dtype
        assert torch.equal(layer.weight[masks[name]], before[name][masks[name]])
        assert (layer.weight[~masks[name]] == 0).all()
        assert layer.kept() == int(masks[name].sum())


def test_masks_stay_applied_through_real_sgd_steps():
    """SGD, momentum 0.9, weight decay 5e-4: pruned weights stay exactly zero, kept ones move."""
    model = resnet(0.25)
    prune(model, lambda m: gaussian_scores(m, 0), 0.1)
    masks = masks_of(model)
    start = {name: layer.weight.detach().clone() for name, layer in prunable_layers(model)}
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 3, 32, 32, generator=g), torch.randint(0, 10, (16,), generator=g)
    model.train()
    for _ in range(4):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    for name, layer in prunable_layers(model):
        assert (layer.weight[~masks[name]] == 0).all()
        assert torch.equal(mask_of(layer), masks[name])
        assert not torch.equal(layer.weight[masks[name]], start[name][masks[name]])


def test_masks_stay_applied_through_the_engine(tmp_path):
    model = resnet(0.25)
    prune(model, magnitude, 0.05, rounds=2)
    masks = masks_of(model)
    kept = model_metrics(model)["parameters_kept"]
    recipe = Recipe(epochs=2, batch_size=50, lr=0.1, momentum=0.9, weight_decay=5e-4)
    result = train(model, synthetic_data(100), recipe, seed=0,
                   options=EngineOptions(eval_every=0), checkpoint=tmp_path / "c.ckpt")
    assert result.steps == 4
    for name, layer in prunable_layers(model):
        assert (layer.weight[~masks[name]] == 0).all()
        assert int((layer.weight != 0).sum()) == int(masks[name].sum())
    assert model_metrics(model)["parameters_kept"] == kept == kept_count(total_weights(model), 0.05)


# ---------------------------------------------------------------------------- scoring helpers


def test_weight_gradients_are_zero_for_unused_layers():
    model = nn.Sequential(PrunableLinear(4, 3, bias=False), PrunableLinear(3, 2, bias=False))
    model[0](torch.ones(1, 4)).sum().backward()  # the second layer never runs
    grads = weight_gradients(model)
    assert torch.equal(grads["0"], model[0].weight.grad)
    assert torch.equal(grads["1"], torch.zeros(2, 3))


def test_scoring_copy_is_private():
    model = resnet(0.25)
    apply_masks(model, select_masks(model, gaussian_scores(model, 0), 0.5))
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    for _, layer in prunable_layers(model):
        layer.weight.requires_grad_(False)
    clone = scoring_copy(model, dtype=torch.float64)
    assert all(p.grad is None for p in clone.parameters())
    assert all(layer.weight.requires_grad and layer.weight.dtype == torch.float64
               for _, layer in prunable_layers(clone))
    assert all(not layer.weight.requires_grad for _, layer in prunable_layers(model))
    assert all(p.grad is not None for n, p in model.named_parameters() if "bn" in n)
    with torch.no_grad():
        for p in clone.parameters():
            p.fill_(1.0)
    assert all(not torch.all(layer.weight == 1) for _, layer in prunable_layers(model))


def test_pruning_batches_are_the_seeds_pruning_set():
    data = synthetic_data(300)
    ctx = SimpleNamespace(seed=3, data=data, search=SearchCost())
    batches = list(pruning_batches(ctx))
    assert len(batches) == 1  # 100 images, batch 256
    x, y = batches[0]
    assert x.shape == (10 * PRUNING_IMAGES_PER_CLASS, 3, 32, 32) and x.dtype == torch.float32
    assert torch.equal(torch.bincount(y, minlength=10), torch.full((10,), 10))
    ex, ey = data.pruning_batch(PRUNING_IMAGES_PER_CLASS, 3)
    assert torch.equal(x, ex) and torch.equal(y, ey)
    x2, _ = next(iter(pruning_batches(ctx)))
    assert torch.equal(x, x2)  # drawn once per seed: the same for every method
    other, _ = next(iter(pruning_batches(SimpleNamespace(seed=4, data=data))))
    assert not torch.equal(x, other)
    small = list(pruning_batches(ctx, batch_size=32))
    assert [len(b[1]) for b in small] == [32, 32, 32, 4]
    assert torch.equal(torch.cat([b[0] for b in small]), x)


def test_training_batches_are_fresh_seeded_and_run_on_past_an_epoch():
    data = synthetic_data(300)
    ctx = SimpleNamespace(seed=3, data=data)
    stream = training_batches(ctx, 64, stream=11)
    batches = [next(stream) for _ in range(9)]  # 4 full batches an epoch: over two epochs
    assert all(x.shape == (64, 3, 32, 32) and x.dtype == torch.float32 for x, _ in batches)
    first_epoch = torch.cat([y for _, y in batches[:4]])
    assert len(first_epoch) == 256  # drop_last; no image twice within an epoch
    again = training_batches(SimpleNamespace(seed=3, data=data), 64, stream=11)
    assert all(torch.equal(x, next(again)[0]) for x, _ in batches)  # seeded
    other = next(training_batches(ctx, 64, stream=12))[0]
    assert not torch.equal(other, batches[0][0])  # another stream, another batch
    assert not torch.equal(batches[0][0], batches[4][0])  # the next epoch reshuffles
    expected = next(data.train_batches(64, mix_seed(3, 11), 1))
    assert torch.equal(batches[4][0], expected[0]) and torch.equal(batches[4][1], expected[1])


# ---------------------------------------------------------------------------- rewind


def test_rewind_restores_the_snapshot_and_keeps_pruned_weights_at_zero():
    model = resnet(0.25)
    model.train()
    model(torch.randn(8, 3, 32, 32))  # non-trivial BatchNorm statistics
    snapshot = state_snapshot(model)
    with torch.no_grad():  # "training": every parameter and statistic moves
        for p in model.parameters():
            p.add_(torch.randn_like(p))
        model(torch.randn(8, 3, 32, 32))
    prune(model, magnitude, 0.2)
    masks = masks_of(model)
    rewind(model, snapshot)
    state = model.state_dict()
    for name, layer in prunable_layers(model):
        old = snapshot[f"{name}.weight"]
        assert torch.equal(layer.weight[masks[name]], old[masks[name]])
        assert (layer.weight[~masks[name]] == 0).all()
        assert torch.equal(mask_of(layer), masks[name])
    prunable = {f"{name}.weight" for name in masks}
    for key, value in snapshot.items():
        if key not in prunable:
            assert torch.equal(state[key], value), key  # biases, norm params and statistics


def test_rewind_never_loads_a_snapshots_mask():
    model = resnet(0.25)
    apply_masks(model, select_masks(model, gaussian_scores(model, 0), 0.5))
    snapshot = state_snapshot(model)  # holds the 50% masks
    prune(model, lambda m: gaussian_scores(m, 1), 0.1)
    masks = masks_of(model)
    rewind(model, snapshot)
    assert all(torch.equal(a, b) for a, b in zip(masks_of(model).values(), masks.values()))
    assert model_metrics(model)["parameters_kept"] == kept_count(total_weights(model), 0.1)


# ---------------------------------------------------------------------------- layer collapse


def test_layer_collapse_is_flagged_and_named():
    model = resnet(0.5)
    assert not model_metrics(model)["layer_collapse"]
    scores = gaussian_scores(model, 0)
    scores["conv"] = scores["conv"] - 100  # the stem conv ranks below everything else
    scores["blocks.3.shortcut.0"] = scores["blocks.3.shortcut.0"] - 100
    prune(model, lambda m: scores, 0.5)
    metrics = model_metrics(model)
    assert metrics["layer_collapse"] is True
    assert metrics["collapsed_tensors"] == ["conv.weight", "blocks.3.shortcut.0.weight"]
    assert metrics["parameters_kept"] == kept_count(total_weights(model), 0.5)
    assert math.isclose(metrics["density_per_tensor"]["conv.weight"], 0.0)


# ---------------------------------------------------------------------------- kept scoring copies
# PX and SynFlow keep their scoring copies across rounds (bench.pruning.ScoringCopies) and
# bring the model's current masks into them instead of copying the model every round. The
# scores must be the very numbers fresh copies of the same masked model give.


def _methods() -> dict[str, Any]:
    from baselines.synflow import SynFlow, SynFlowHparams
    from methods.px import PX, PX2024, PXClean, PXHparams
    from methods.px.plugin import PXCleanHparams

    return {"synflow": (SynFlow, SynFlowHparams), "px": (PX, PXHparams),
            "px-2024": (PX2024, PXHparams), "px-clean": (PXClean, PXCleanHparams)}


KEPT_METHODS = ["synflow", "px", "px-2024", "px-clean"]  # SynFlow and the three PX variants


def scoring_ctx(model: nn.Module | None = None, density: float = 0.3) -> SimpleNamespace:
    """What importance() and run() use of a RunContext: a fixed pruning set on the CPU."""
    return SimpleNamespace(seed=0, data=synthetic_data(100), search=SearchCost(), notes={},
                           device=torch.device("cpu"), model=model, density=density,
                           train=lambda: None)


def fresh_scores(method: Any, model: nn.Module, ctx: SimpleNamespace) -> dict[str, torch.Tensor]:
    """The method's scores on copies made now from ``model`` (nothing kept)."""
    from baselines.synflow import synflow_scores
    from methods.px import px_scores

    if method.name == "synflow":
        return synflow_scores(model)
    return px_scores(model, (x for x, _ in pruning_batches(ctx)), method.variant, copies=None)


@pytest.fixture
def copies_made(monkeypatch) -> list[Any]:
    """Every ScoringCopies a method makes, each counting how often it builds its copies."""
    import bench.pruning

    made: list[Any] = []

    class Counting(bench.pruning.ScoringCopies):
        def __init__(self, build):
            self.builds = 0

            def counted(model):
                self.builds += 1
                return build(model)

            super().__init__(counted)
            made.append(self)

    monkeypatch.setattr(bench.pruning, "ScoringCopies", Counting)
    return made


def _live_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor],
                masks: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(a[n][masks[n]], b[n][masks[n]]) for n in masks)


@pytest.mark.parametrize("name", KEPT_METHODS)
def test_kept_copies_score_exactly_as_fresh_copies_round_after_round(name, copies_made):
    method = _methods()[name][0]()
    model = resnet(0.25)
    ctx = scoring_ctx()
    rounds: list[tuple[dict, dict, dict]] = []  # (masks, kept scores, fresh scores)

    def score(m: nn.Module) -> dict[str, torch.Tensor]:
        fresh = fresh_scores(method, m, ctx)
        kept = method.importance(m, ctx)
        rounds.append((masks_of(m), kept, fresh))
        return kept

    prune(model, score, 0.3, rounds=4, scope=method.hparams.scope, cut=method.hparams.cut)
    assert len(rounds) == 4
    assert len(copies_made) == 1 and copies_made[0].builds == 1  # made once, refreshed 3 times
    for index, (masks, kept, fresh) in enumerate(rounds, start=1):
        assert kept.keys() == fresh.keys() == masks.keys()
        for layer in kept:
            assert kept[layer].dtype == fresh[layer].dtype
            assert torch.equal(kept[layer], fresh[layer]), (name, index, layer)
    first_masks, first, _ = rounds[0]
    assert all(m.all() for m in first_masks.values())  # round 1: the dense model
    for masks, _, fresh in rounds[1:]:
        assert not all(m.all() for m in masks.values())  # later rounds: masked models ...
        # ... whose masks change the scores of the weights still live: copies left as in
        # round 1 would not give these numbers, so the equality above checks the refresh.
        assert not _live_equal(fresh, first, masks)


@pytest.mark.parametrize("name", KEPT_METHODS)
def test_a_run_with_kept_copies_ends_with_the_masks_of_a_run_without(name, monkeypatch,
                                                                     copies_made):
    cls, hparams = _methods()[name]
    outcomes = []
    for keep in (True, False):
        method = cls(hparams(rounds=5))
        built_fresh: list[int] = []
        if not keep:
            def always_fresh(model, build, built_fresh=built_fresh):
                built_fresh.append(1)
                return build(model)[0]

            monkeypatch.setattr(method, "kept_copies", always_fresh)
        ctx = scoring_ctx(resnet(0.25), density=0.1)
        trained = []
        ctx.train = lambda trained=trained: trained.append(True)
        method.run(ctx)
        assert trained == [True]
        assert len(built_fresh) == (0 if keep else 5)
        outcomes.append((masks_of(ctx.model), ctx.search, ctx.notes))
    assert [c.builds for c in copies_made] == [1]  # the kept run: one build for five rounds
    (kept_masks, kept_search, kept_notes), (fresh_masks, fresh_search, fresh_notes) = outcomes
    assert kept_masks.keys() == fresh_masks.keys()
    assert all(torch.equal(kept_masks[n], fresh_masks[n]) for n in kept_masks), name
    assert sum(int(m.sum()) for m in kept_masks.values()) < 0.5 * total_weights(resnet(0.25))
    assert (kept_search.forward_images, kept_search.backward_images) == (
        fresh_search.forward_images, fresh_search.backward_images)
    assert kept_notes == fresh_notes


def _network_copy(model: nn.Module) -> tuple[nn.Module, list[nn.Module]]:
    net = scoring_copy(model)
    return net, [net]


def _counting(build):
    calls: list[nn.Module] = []

    def counted(model):
        calls.append(model)
        return build(model)

    return counted, calls


def test_scoring_copies_take_the_models_new_masks_without_rebuilding():
    from bench.pruning import ScoringCopies

    model = resnet(0.25)
    build, calls = _counting(_network_copy)
    copies = ScoringCopies(build)
    net = copies.get(model).eval()  # eval: the pass below leaves the BN statistics as they are
    net(torch.ones(1, 3, 32, 32)).sum().backward()  # a scoring pass leaves gradients
    for round_density in (0.6, 0.3):
        prune(model, lambda m: gaussian_scores(m, 5), round_density)
        assert copies.get(model) is net and len(calls) == 1
        assert all(p.grad is None for p in net.parameters())
        held = dict(prunable_layers(net))
        for name, layer in prunable_layers(model):
            assert torch.equal(held[name].current_mask(), layer.current_mask())
            assert torch.equal(held[name].weight, layer.weight)  # pruned ones zeroed
        assert all(torch.equal(a, b) for a, b in
                   zip(net.state_dict().values(), scoring_copy(model).state_dict().values()))


def _change_a_live_weight(model: nn.Module) -> None:
    live = model.conv.current_mask()
    model.conv.weight.view(-1)[torch.nonzero(live.flatten())[0]] += 1.0


def _set_a_pruned_weight(model: nn.Module) -> None:
    pruned = ~model.conv.current_mask()
    model.conv.weight.view(-1)[torch.nonzero(pruned.flatten())[0]] = 1.0


def _loosen_a_mask(model: nn.Module) -> None:  # revived in the mask, its weight still 0
    model.conv.mask.fill_(1.0)


def _change_a_bias(model: nn.Module) -> None:
    model.fc.bias += 0.5


def _move_batchnorm_statistics(model: nn.Module) -> None:
    model.train()(torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0)))


CHANGES = {"live weight": _change_a_live_weight, "pruned weight set": _set_a_pruned_weight,
           "mask loosened": _loosen_a_mask, "bias": _change_a_bias,
           "batchnorm statistics": _move_batchnorm_statistics}
# A weight left non-zero under its zero mask never matches "source x mask": the copies are
# made anew every time (correct, only not kept). Every other change is kept from then on.
REBUILT_EVERY_TIME = {"pruned weight set"}


@pytest.mark.parametrize("change", list(CHANGES))
def test_scoring_copies_are_rebuilt_when_the_model_changed_outside_its_masks(change):
    from bench.pruning import ScoringCopies

    model = resnet(0.25)
    prune(model, lambda m: gaussian_scores(m, 1), 0.5)
    build, calls = _counting(_network_copy)
    copies = ScoringCopies(build)
    first = copies.get(model)
    assert copies.get(model) is first  # unchanged: kept
    with torch.no_grad():
        CHANGES[change](model)
    again = copies.get(model)
    assert again is not first and len(calls) == 2
    assert all(torch.equal(a, b) for a, b in
               zip(again.state_dict().values(), model.state_dict().values()))
    if change in REBUILT_EVERY_TIME:
        assert copies.get(model) is not again and len(calls) == 3
    else:
        assert copies.get(model) is again and len(calls) == 2  # kept from then on


def test_scoring_copies_are_rebuilt_for_another_model():
    from bench.pruning import ScoringCopies

    model = resnet(0.25)
    prune(model, lambda m: gaussian_scores(m, 1), 0.5)
    twin = copy.deepcopy(model)  # equal in every number, but another model
    build, calls = _counting(_network_copy)
    copies = ScoringCopies(build)
    first = copies.get(model)
    second = copies.get(twin)
    assert second is not first and calls == [model, twin]
    assert copies.get(model) is not second and len(calls) == 3


@pytest.mark.parametrize("name", ["px", "px-clean"])
def test_kept_copies_follow_a_cleared_mask(name, copies_made):
    method = _methods()[name][0]()
    model = resnet(0.25)
    prune(model, lambda m: gaussian_scores(m, 1), 0.5)  # masked before the copies are made
    ctx = scoring_ctx()
    method.importance(model, ctx)
    model.blocks[0].conv1.clear_mask()  # dense again: its pruned weights are live (and 0)
    fresh = fresh_scores(method, model, ctx)
    kept = method.importance(model, ctx)
    assert all(torch.equal(kept[n], fresh[n]) for n in fresh)


@pytest.mark.parametrize("name", ["synflow", "px-clean"])
def test_release_copies_drops_them(name, copies_made):
    method = _methods()[name][0]()
    method.release_copies()  # nothing kept yet: nothing to do
    model = resnet(0.25)
    ctx = scoring_ctx()
    method.importance(model, ctx)
    (cache,) = copies_made
    held = weakref.ref(cache.get(model))
    assert held() is not None and cache.builds == 1
    method.release_copies()
    gc.collect()
    assert held() is None  # no reference left: their memory is free
    method.importance(model, ctx)
    assert cache.builds == 2  # the next round makes new ones


def test_run_releases_the_copies_even_when_pruning_fails(monkeypatch, copies_made):
    import bench.pruning
    from baselines.synflow import SynFlow

    def failing_prune(model, score, *args, **kwargs):
        score(model)
        raise BenchError("round 2 failed")

    monkeypatch.setattr(bench.pruning, "prune", failing_prune)
    method = SynFlow()
    ctx = scoring_ctx(resnet(0.25))
    with pytest.raises(BenchError, match="round 2 failed"):
        method.run(ctx)
    (cache,) = copies_made
    assert cache.builds == 1
    cache.get(ctx.model)
    assert cache.builds == 2  # nothing was kept after the failed run
