"""The LTH recipe's training in lockstep with facebookresearch/open_lth's ``training/train.py``.

From a checkout of open_lth (``$BENCH_OPEN_LTH_CHECKOUT``; skipped without one): their
``train()`` (their optimiser, their per-iteration ``LambdaLR`` schedule, their step) trains
a copy of the suite's masked ResNet-20 with their ``cifar_resnet_20`` default hyperparameters,
which are the suite's ``px-resnet20`` recipe (:func:`test_open_lth_resnet20_hparams_are_the_
px_resnet20_recipe`); the suite's engine trains the other copy with that recipe, on the same
batches of already-augmented real images, one full and one partial batch an epoch, past the
milestone at epoch 80. Two cases: a whole training (LTH's level 0), and a training that
starts at a rewind point with the schedule continued (open_lth's pruned levels; the suite's
``lth:retrain=from-rewind``, :func:`baselines.lth.resumed_recipe`). Tolerance: as in
tests/test_px_lockstep.py, the last bit (:data:`lockstep.EXACT`).

What the copy of the model leaves out: open_lth masks by zeroing the pruned weights before
every forward pass (``PrunedModel._apply_mask``), so pruned weights get gradients and momentum
that never reach a live weight; the suite masks in the forward pass. Both leave every live
weight's update as it is (SGD is elementwise).
"""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch
from authors_code import authors_modules, checkout, describe, report
from lockstep import EXACT, EpochBatches, augmented_images, compare, masked, suite_training
from torch import nn

from baselines.lth import resumed_recipe
from bench.presets import RECIPES

pytestmark = pytest.mark.lockstep

IMAGES, BATCH, EPOCHS = 30, 20, 82  # a full and a partial batch an epoch, past epoch 80
MODULES = ["datasets.registry", "models.registry", "training.train", "models.cifar_resnet",
           "models.initializers", "platforms.local", "platforms.platform", "foundations.step"]


@pytest.fixture(scope="module")
def open_lth():
    ddp = type("DistributedDataParallel", (nn.Module,), {})  # torch's own: no valid MRO now
    with authors_modules(checkout("open_lth"), MODULES,
                         {(torch.nn.parallel, "DistributedDataParallel"): ddp}) as modules:
        yield modules


def test_open_lth_resnet20_hparams_are_the_px_resnet20_recipe(open_lth):
    """Their ``cifar_resnet_20`` defaults are the px-resnet20 recipe, and their loader keeps
    each epoch's partial batch (``iterations_per_epoch`` rounds up; no ``drop_last``)."""
    desc = open_lth["models.cifar_resnet"].Model.default_hparams()
    train, recipe = desc.training_hparams, RECIPES["px-resnet20"]
    milestones = tuple(int(m.removesuffix("ep")) for m in train.milestone_steps.split(","))
    assert (train.optimizer_name, train.lr, train.momentum, train.weight_decay, train.gamma,
            milestones, train.training_steps, train.nesterov_momentum, train.warmup_steps) \
        == ("sgd", recipe.lr, recipe.momentum, recipe.weight_decay, recipe.gamma,
            recipe.milestones, f"{recipe.epochs}ep", 0.0, None)
    assert desc.dataset_hparams.batch_size == recipe.batch_size and not recipe.drop_last
    assert desc.model_hparams.model_init == "kaiming_normal"  # weights only: biases uniform
    assert recipe.bias_init == "uniform" and recipe.schedule == "multistep"


def their_training(open_lth, model: nn.Module, batches: EpochBatches, start_epoch: int,
                   output, monkeypatch) -> torch.optim.Optimizer:
    """Their ``train()`` of ``model`` from epoch ``start_epoch`` to :data:`EPOCHS`; their
    optimiser at the end (handed to the callbacks, which run once more after the last step)."""
    monkeypatch.setattr(open_lth["platforms.platform"], "_PLATFORM",
                        open_lth["platforms.local"].Platform())
    monkeypatch.setattr(np, "product", np.prod, raising=False)  # numpy 2 renamed it
    resnet = open_lth["models.cifar_resnet"].Model
    object.__setattr__(model, "loss_criterion", resnet.get_model_from_name(
        "cifar_resnet_20", open_lth["models.initializers"].kaiming_normal).loss_criterion)
    hparams = replace(resnet.default_hparams().training_hparams, training_steps=f"{EPOCHS}ep")
    seen = []
    step = open_lth["foundations.step"].Step.from_epoch(start_epoch, 0, len(batches))
    open_lth["training.train"].train(hparams, model, batches, str(output),
                                     callbacks=[lambda *args: seen.append(args[3])],
                                     start_step=step)
    return seen[-1]


@pytest.mark.slow
@pytest.mark.parametrize("start_epoch", [0, 2], ids=["whole", "from-rewind-epoch-2"])
def test_lth_recipe_trains_as_open_lths_loop(open_lth, cifar10_dir, monkeypatch, tmp_path,
                                              start_epoch):
    data = augmented_images(cifar10_dir, IMAGES)
    full = replace(RECIPES["px-resnet20"], epochs=EPOCHS, batch_size=BATCH, augment="none")
    recipe = resumed_recipe(full, start_epoch)
    model, _ = masked("resnet20", 10)
    theirs = copy.deepcopy(model)
    optimizer = their_training(open_lth, theirs, EpochBatches(data, full), start_epoch,
                               tmp_path / "open_lth", monkeypatch)
    suite = suite_training(model, data, recipe)
    gaps = compare(suite, theirs, optimizer)
    steps = (EPOCHS - start_epoch) * len(EpochBatches(data, full))
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01)  # past the milestone
    report(f"lth ({'whole training' if not start_epoch else 'from rewind epoch 2'}): {steps} "
           f"steps against {describe(checkout('open_lth'))}: largest relative difference "
           f"{gaps.text()}")
    assert gaps.weights <= EXACT and gaps.state <= EXACT, gaps.text()
