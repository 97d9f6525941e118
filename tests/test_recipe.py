"""Learning-rate schedules and recipe validation, checked against hand-computed values."""

import math
from dataclasses import replace

import pytest

from bench.errors import BenchError
from bench.grid import preset_specs
from bench.presets import FIELD_BASELINES, RECIPES, get_preset
from bench.recipe import Recipe, lr_factor
from bench.reports.labels import budget_label


def test_multistep_drops_at_the_start_of_milestone_epochs():
    r = Recipe(epochs=10, schedule="multistep", milestones=(4, 8), gamma=0.1)
    spe = 5
    assert lr_factor(r, 0, spe) == 1.0
    assert lr_factor(r, 4 * spe - 1, spe) == 1.0
    assert lr_factor(r, 4 * spe, spe) == pytest.approx(0.1)
    assert lr_factor(r, 8 * spe, spe) == pytest.approx(0.01)


def test_cosine_per_iteration():
    r = Recipe(epochs=2, schedule="cosine")
    assert lr_factor(r, 0, 10) == 1.0
    assert lr_factor(r, 10, 10) == pytest.approx(0.5)
    assert lr_factor(r, 5, 10) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.25)))


def test_piecewise_linear_pemn_shape():
    knots = ((0.0, 0.0), (0.4, 1.0), (0.8, 0.05), (1.0, 0.0))
    r = Recipe(epochs=10, schedule="piecewise", knots=knots)
    spe = 10  # 100 iterations
    assert lr_factor(r, 0, spe) == 0.0
    assert lr_factor(r, 20, spe) == pytest.approx(0.5)
    assert lr_factor(r, 40, spe) == pytest.approx(1.0)
    assert lr_factor(r, 60, spe) == pytest.approx(1.0 + (0.05 - 1.0) * 0.5)
    assert lr_factor(r, 90, spe) == pytest.approx(0.025)


def test_warmup_ramps_linearly():
    r = Recipe(epochs=4, schedule="constant", warmup_epochs=1)
    assert lr_factor(r, 0, 4) == pytest.approx(0.25)
    assert lr_factor(r, 3, 4) == pytest.approx(1.0)
    assert lr_factor(r, 4, 4) == 1.0


def test_with_epochs_scales_milestones():
    r = Recipe(epochs=160, schedule="multistep", milestones=(80, 120))
    assert r.with_epochs(16).milestones == (8, 12)
    assert r.with_epochs(160) is r


def test_bad_recipes_are_user_errors():
    with pytest.raises(BenchError, match="optimizer"):
        Recipe(optimizer="adam")
    with pytest.raises(BenchError, match="epochs"):
        Recipe(epochs=0)
    with pytest.raises(BenchError, match="knots"):
        Recipe(schedule="piecewise")


def test_round_trip_through_dict():
    r = Recipe(epochs=7, schedule="piecewise", knots=((0, 0), (1, 1)), milestones=(3,))
    assert Recipe.from_dict(r.as_dict()) == r
    assert Recipe.from_dict(r.canonical()) == r


def test_defaults_are_pinned():
    # Run keys omit recipe fields at their defaults: changing a default silently changes what
    # old keys mean. If this fails, bump bench.store.SUITE_KEY_VERSION along with the change.
    assert Recipe().as_dict() == {
        "epochs": 1, "batch_size": 128, "optimizer": "sgd", "lr": 0.1, "momentum": 0.9,
        "weight_decay": 1e-4, "schedule": "cosine", "milestones": [], "gamma": 0.1, "knots": [],
        "warmup_epochs": 0.0, "label_smoothing": 0.0, "augment": "crop-flip",
        "drop_last": True, "bias_init": "zero",
    }


def test_the_px_recipes_train_as_their_authors_loop():
    """The PX authors' loop (tests/test_px_lockstep.py) trains each epoch's partial batch and
    keeps torch's default biases; the suite's neutral defaults stay out of other keys."""
    for name in ("px-resnet20", "px-vgg16"):
        assert RECIPES[name].canonical()["drop_last"] is False
        assert RECIPES[name].canonical()["bias_init"] == "uniform"
    for name in ("edge-popup", "pemn-authors", "smoke", "quick"):
        assert not {"drop_last", "bias_init"} & set(RECIPES[name].canonical())
    with pytest.raises(BenchError, match="bias_init"):
        Recipe(bias_init="normal")


def test_a_reduced_preset_cuts_every_recipe_to_its_epochs():
    preset = get_preset("px-cifar10-resnet20-reduced")
    full = get_preset(preset.reduces)
    px = preset.recipe_for("px-2024")
    # the loop its committed records trained with: last partial batch dropped, zero biases
    assert px == replace(full.recipe_for("px-2024").with_epochs(4), drop_last=True,
                         bias_init="zero")
    assert budget_label(px.as_dict()) == "px-resnet20 with drop_last=True, bias_init=zero, " \
        "4 of 160 ep"
    assert budget_label(full.recipe_for("px-2024").as_dict()) == "px-resnet20, 160 ep"
    other = replace(px, weight_decay=5e-4).as_dict()  # not a loop option: a custom recipe
    assert budget_label(other).startswith("custom-")
    assert (px.epochs, px.milestones, px.lr, px.schedule) == (4, (2, 3), 0.1, "multistep")
    pemn = preset.recipe_for("pemn-mp")  # the mask learner keeps Edge-Popup's recipe
    assert (pemn.epochs, pemn.schedule, pemn.weight_decay) == (4, "cosine", 5e-4)
    assert preset.recipe_for("snip", scale=0.25).epochs == 1  # --budget-scale applies after
    specs = preset_specs(preset)
    assert {s.recipe.epochs for s in specs} == {4}
    assert sorted((s.method, s.density) for s in specs if s.method in ("dense", "pemn-mp")) \
        == [("dense", 1.0), ("pemn-mp", 0.5)]
    assert len(specs) == 2 + (5 + len(FIELD_BASELINES)) * 2  # at 0.1 and 0.02
