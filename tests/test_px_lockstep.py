"""The PX presets' training in lockstep with the PX authors' ``train_classification.py``.

From a checkout of iurada/px-ntk-pruning (``$BENCH_PX_CHECKOUT``; skipped without one):
their ``Experiment._init_optimizers`` builds the optimiser and the schedule and their
``Experiment.fit`` trains. The same masked model (the suite's ResNet-20, or VGG-16 at an
eighth of its width; one copy each) goes through their loop and the suite's engine with the
preset's recipe, on the same batches of already-augmented real images: one full and one
partial batch an epoch, for enough epochs to pass the first learning-rate milestone
(hard-coded in their code: epoch 80 for CIFAR-10, 60 for CIFAR-100). One substitution,
precision: their loop runs float16 autocast with a GradScaler; here both run float32 (their
``torch.autocast`` is handed ``enabled=False`` and their ``torch.cuda.amp.GradScaler`` turns
itself off without CUDA); tests/test_fp16.py covers the suite's float16 path.

Tolerance: :data:`EXACT`. The two loops run the same kernels on the same model, so they agree
to the last bit (measured: a relative difference of 0 in every weight and momentum buffer).
Nothing looser would mean anything: from weights one float32 ulp apart, the suite's own
training differs by 1e-2 after two steps at this learning rate and by 0.16 after four, so a
loop that differed in any detail would be far off; :func:`test_a_different_loop_fails`
shows one. Whether their model classes compute what the suite's do is checked on one
forward and backward pass (tests/test_px_models.py): there the kernels differ (their average
pool), and rounding is what differs.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch
from authors_code import authors_modules, checkout, describe, report
from lockstep import (
    EXACT,
    PLAIN,
    EpochBatches,
    Gaps,
    augmented_images,
    compare,
    masked,
    suite_training,
)
from torch import nn

from bench.engine import EngineOptions
from bench.presets import RECIPES
from bench.recipe import Recipe

pytestmark = [pytest.mark.slow, pytest.mark.lockstep]

IMAGES, BATCH = 30, 20  # a full batch and a partial one of 10 per epoch
MODULES = ["train_classification", "globals"]
CASES = {  # recipe: (model, model options, classes, their dataset branch, epochs)
    "px-resnet20": ("resnet20", {}, 10, "CIFAR10", 82),
    "px-vgg16": ("vgg16", {"width": 0.125}, 100, "CIFAR100", 62),
}


class Float32Torch:
    """``torch`` as their ``train_classification`` sees it, with autocast turned off."""

    def __getattr__(self, name: str):
        return getattr(torch, name)

    @staticmethod
    def autocast(device_type: str, dtype: torch.dtype, enabled: bool = True):
        return torch.autocast(device_type, dtype=dtype, enabled=False)


class Float16Torch:
    """``torch`` as their ``train_classification`` sees it on a GPU, here on the CPU: their
    float16 autocast as it is, and their ``torch.cuda.amp.GradScaler`` a CPU one."""

    def __getattr__(self, name: str):
        return getattr(torch, name)

    cuda = SimpleNamespace(amp=SimpleNamespace(
        GradScaler=lambda enabled=True: torch.amp.GradScaler("cpu", enabled=enabled)))


def their_training(modules, model: nn.Module, batches: EpochBatches, dataset: str, epochs: int,
                   monkeypatch, half: bool = False) -> object:
    """Their ``Experiment`` with ``model`` and ``batches``: their optimiser and schedule
    (``_init_optimizers``), then their ``fit`` (evaluation left out: it trains nothing); in
    float32, or with ``half`` in float16 with a loss scaler as on their GPUs."""
    tc = modules["train_classification"]
    modules["globals"].CONFIG.update(dataset=dataset, device="cpu", epochs=epochs,
                                     grad_accum_steps=1, use_wandb=False,
                                     experiment_name="lockstep", experiment_args={})
    monkeypatch.setattr(tc, "torch", Float16Torch() if half else Float32Torch())
    experiment = tc.Experiment.__new__(tc.Experiment)
    experiment.model, experiment.data = model, {"train": batches, "test": []}
    with warnings.catch_warnings():  # theirs is deprecated, and off without CUDA
        warnings.simplefilter("ignore")
        experiment._init_optimizers()
    assert experiment.scaler.is_enabled() == half
    experiment.evaluate = lambda loader: {}
    experiment.fit(save_checkpoint=False)
    return experiment


def lockstep(name: str, recipe: Recipe, data_dir, monkeypatch, epochs: int | None = None,
             options: EngineOptions = PLAIN) -> tuple[Gaps, int, object]:
    """Both loops train copies of the masked model of ``name``'s case; the suite's engine
    with ``recipe`` and ``options`` (float16: both in float16). The gaps, the steps and
    their experiment."""
    arch, kwargs, classes, dataset, case_epochs = CASES[name]
    epochs = epochs or case_epochs
    data = augmented_images(data_dir, IMAGES)
    batches = EpochBatches(data, replace(RECIPES[name], batch_size=BATCH))
    model, _ = masked(arch, classes, **kwargs)
    theirs = copy.deepcopy(model)
    with authors_modules(checkout("px"), MODULES) as modules:
        experiment = their_training(modules, theirs, batches, dataset, epochs, monkeypatch,
                                    half=options.loss_scaling)
    suite = suite_training(model, data, replace(recipe, epochs=epochs, batch_size=BATCH,
                                                augment="none"), options)
    if options.loss_scaling:
        assert suite.update.scaler.get_scale() == experiment.scaler.get_scale()
    return compare(suite, theirs, experiment.optimizer), epochs * len(batches), experiment


@pytest.mark.parametrize("name", list(CASES))
def test_px_recipe_trains_as_the_authors_loop(name, cifar10_dir, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # their fit looks for record/<name>/last.pth
    gaps, steps, experiment = lockstep(name, RECIPES[name], cifar10_dir, monkeypatch)
    assert experiment.scheduler.get_last_lr()[0] == pytest.approx(0.01)  # past a milestone
    report(f"{name}: {steps} steps against {describe(checkout('px'))}: largest relative "
           f"difference {gaps.text()}")
    assert gaps.weights <= EXACT and gaps.state <= EXACT, gaps.text()


def test_a_different_loop_fails(cifar10_dir, monkeypatch, tmp_path):
    """The comparison's power: the suite's own default, dropping each epoch's partial batch
    (``drop_last=True``), against their loop, which trains it."""
    monkeypatch.chdir(tmp_path)
    recipe = replace(RECIPES["px-vgg16"], drop_last=True)
    gaps, steps, _ = lockstep("px-vgg16", recipe, cifar10_dir, monkeypatch)
    report(f"px-vgg16 with drop_last=True (not the authors'): {gaps.text()}")
    assert gaps.weights > 1e3 * EXACT and gaps.state > 1e3 * EXACT, gaps.text()


def test_the_float16_path_trains_as_the_authors_float16_step(cifar10_dir, monkeypatch, tmp_path):
    """Their step as it runs on their GPUs (float16 autocast, a GradScaler), on this CPU,
    against the suite's ``precision="float16"`` on the PX ResNet-20 recipe: 12 steps, the
    same loss scale at the end and the same weights and momentum."""
    monkeypatch.chdir(tmp_path)
    gaps, steps, _ = lockstep("px-resnet20", RECIPES["px-resnet20"], cifar10_dir, monkeypatch,
                              epochs=6, options=replace(PLAIN, precision="float16"))
    report(f"px-resnet20 in float16 with loss scaling: {steps} steps against "
           f"{describe(checkout('px'))}: largest relative difference {gaps.text()}")
    assert gaps.weights <= EXACT and gaps.state <= EXACT, gaps.text()
