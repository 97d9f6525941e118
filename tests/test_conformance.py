"""Pruning at initialisation against the authors' code: the reference-mask fixtures.

``../shared/fixtures/reference-masks/`` holds what the authors' pruning code computed on
the suite's seed-0 ResNet-20 and its seed-0 pruning set of the full CIFAR-10 (its README
says how). Each test prunes the same weights with the suite's method and compares the
masks (Jaccard index over all prunable weights) and the per-layer kept counts.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from bench.data import load_data
from bench.harness import SearchCost
from bench.models import build_model, prunable_layers
from bench.pruning import prune
from bench.registry import get_method, load_plugins, make_hparams

FIXTURES = Path(__file__).resolve().parents[2] / "shared/fixtures/reference-masks"
Masks = dict[str, np.ndarray]


def fixture_masks(name: str) -> Masks:
    """The authors' masks of fixture ``name`` (e.g. ``px-d0.1-f32``) by layer."""
    packed = np.load(FIXTURES / f"{name}.npz")
    layers = {key.split("::")[0] for key in packed.files}
    out = {}
    for layer in layers:
        shape = tuple(packed[f"{layer}::shape"])
        bits = np.unpackbits(packed[f"{layer}::bits"])[: int(np.prod(shape))]
        out[layer] = bits.reshape(shape).astype(bool)
    return out


def fixture_counts(name: str) -> dict:
    return json.loads((FIXTURES / "kept-counts.json").read_text())[name]


def jaccard(a: Masks, b: Masks) -> float:
    both = sum(int((a[n] & b[n]).sum()) for n in a)
    either = sum(int((a[n] | b[n]).sum()) for n in a)
    return both / either


def worst_layer_gap(kept: dict[str, int], reference: dict) -> tuple[float, str]:
    """Largest |kept - reference kept| / layer size over the layers, and that layer."""
    gaps = {n: abs(kept[n] - reference["kept"][n]) / reference["total"][n] for n in kept}
    name = max(gaps, key=gaps.get)
    return gaps[name], name


@pytest.fixture(scope="module")
def pruning_data(cifar10_full_dir):
    if not FIXTURES.is_dir():
        pytest.skip(f"no reference masks at {FIXTURES}")
    load_plugins()
    return load_data("cifar10", cifar10_full_dir)


def suite_masks(method: str, density: float, data, **hparams: str) -> Masks:
    """The masks the suite's ``method`` keeps on the seed-0 ResNet-20 (one thread)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cls = get_method(method)
        plugin = cls(make_hparams(cls, hparams))
        model = build_model("resnet20", 10, seed=0)
        ctx = SimpleNamespace(data=data, seed=0, search=SearchCost(), notes={})
        rounds = getattr(plugin.hparams, "rounds", plugin.rounds)
        degenerate = prune(model, lambda m: plugin.scores(m, ctx), density, rounds,
                           plugin.hparams.scope, plugin.hparams.cut)
        assert degenerate == [], f"{method}: degenerate rounds {degenerate}"
        return {n: layer.current_mask().numpy() for n, layer in prunable_layers(model)}
    finally:
        torch.set_num_threads(threads)


def check_against_fixture(method: str, fixture: str, data, min_jaccard: float | None,
                          max_layer_gap: float = 0.02, **hparams: str) -> None:
    reference = fixture_counts(fixture)
    masks = suite_masks(method, reference["density"], data, **hparams)
    kept = {n: int(m.sum()) for n, m in masks.items()}
    gap, layer = worst_layer_gap(kept, reference)
    assert gap <= max_layer_gap, (
        f"{method} vs {fixture}: {layer} keeps {kept[layer]} of {reference['total'][layer]}, "
        f"the authors' code {reference['kept'][layer]}")
    emptied = [n for n in kept if kept[n] == 0 and reference["kept"][n] > 0]
    assert emptied == [], f"{method} empties {emptied}, which the authors' code keeps"
    if min_jaccard is not None:
        j = jaccard(masks, fixture_masks(fixture))
        assert j >= min_jaccard, f"{method} vs {fixture}: Jaccard {j:.4f} < {min_jaccard}"


@pytest.mark.parametrize("method, fixture", [
    ("snip", "snip-d0.1-f32"), ("grasp", "grasp-d0.1-f32"), ("magnitude-init", "mag-d0.1-f32"),
])
def test_one_shot_methods_match_the_authors_masks(pruning_data, method, fixture):
    check_against_fixture(method, fixture, pruning_data, min_jaccard=0.999)


def test_synflow_with_the_authors_cut_matches_their_float64_masks(pruning_data):
    check_against_fixture("synflow", "synflow-d0.1-f64", pruning_data, min_jaccard=0.999,
                          cut="kthvalue")


def test_synflow_default_cut_differs_only_by_the_kept_count_rule(pruning_data):
    """The suite's own cut (exactly round(d n)) moves masks, not scores: still close."""
    check_against_fixture("synflow", "synflow-d0.1-f64", pruning_data, min_jaccard=0.9)


@pytest.mark.slow
@pytest.mark.parametrize("density", [0.5, 0.1, 0.02])
@pytest.mark.parametrize("method, prefix", [("px", "px"), ("px-2024", "px2024")])
def test_px_keeps_the_authors_per_layer_counts(pruning_data, method, prefix, density):
    """Within 2 % of each layer's size of the authors' code, and no layer emptied that
    the authors' code keeps (100 rounds, float32, as they run it)."""
    check_against_fixture(method, f"{prefix}-d{density}-f32", pruning_data, min_jaccard=None,
                          cut="kthvalue")
