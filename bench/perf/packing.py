"""The ``packing`` section: K fixed-mask ResNet-20 runs trained in one vmapped step
(:mod:`bench.engine.packed`) against the same runs one at a time, for K in ``--pack-sizes``.

Each K trains ``warmup + repeats`` epochs of ``--train-images`` real images at ``--batch``
per run (the last epoch evaluates on a 100-image test subset, outside the timing); the
figure is the training pass of an epoch (CUDA events on a GPU), median after the warm-up.
Runs per minute are per full CIFAR-10 epoch: how many run-epochs an hour of grid buys.
"""

from __future__ import annotations

import statistics
from typing import Any

from torch import nn

from bench.data import DeviceData, load_data
from bench.engine import prepare_model
from bench.engine.loop import TrainRequest, open_phase, train
from bench.engine.packed import train_packed
from bench.perf.masked import masked_variant
from bench.perf.timing import FULL_EPOCH_IMAGES, PerfConfig
from bench.recipe import Recipe

TEST_IMAGES = 100


def _models(k: int, cfg: PerfConfig) -> list[nn.Module]:
    return [prepare_model(masked_variant("fixed mask", seed), cfg.options) for seed in range(k)]


def _epoch_seconds(log: list[dict[str, Any]], warmup: int, key: str) -> float:
    times = [entry[key] for entry in log]
    return statistics.median(times[warmup:] or times)


def packing_rows(cfg: PerfConfig) -> list[dict[str, Any]]:
    """One row per K: seconds per packed epoch, per run-epoch, and the speed-up over one run
    trained alone (K = 1 in the unpacked engine)."""
    images = cfg.train_images or FULL_EPOCH_IMAGES
    data: DeviceData = load_data("cifar10", cfg.data_dir, cfg.device, images, TEST_IMAGES,
                                 download=False)
    epochs = cfg.warmup + cfg.repeats
    recipe = Recipe(epochs=epochs, batch_size=cfg.batch, lr=0.05)
    options = cfg.options
    [alone] = _models(1, cfg)
    single = _epoch_seconds(train(alone, data, recipe, seed=0, options=options).log,
                            cfg.warmup, "train_seconds")
    scale = FULL_EPOCH_IMAGES / (data.steps_per_epoch(cfg.batch) * cfg.batch)
    rows = [{"runs": 1, "how": "alone (engine)", "batch": cfg.batch, "images": images,
             "s_per_epoch": single, "s_per_run_epoch": single, "speedup": 1.0,
             "run_epochs_per_min_full": 60 / (single * scale)}]
    for k in cfg.pack_sizes:
        phases = [open_phase(TrainRequest(m, data, recipe, s, options))
                  for s, m in enumerate(_models(k, cfg))]
        results = train_packed(phases)  # type: ignore[arg-type]
        log = results[0].log  # type: ignore[union-attr]
        packed = _epoch_seconds(log, cfg.warmup, "packed_train_seconds")
        rows.append({"runs": k, "how": "packed", "batch": cfg.batch, "images": images,
                     "s_per_epoch": packed, "s_per_run_epoch": packed / k,
                     "speedup": single * k / packed,
                     "run_epochs_per_min_full": 60 * k / (packed * scale)})
    return rows
