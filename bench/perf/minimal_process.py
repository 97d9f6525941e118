"""The fastest correct whole process the ``process`` section compares a suite run with:
``python -m bench.perf.minimal_process``.

It does a run's necessary work and nothing else: read the data (the same class-balanced
subset), build the seed-0 ResNet-20, train it one epoch in the minimal loop (on-device
augmentation, the preset's batch size and learning rate), evaluate it on the test set,
print the accuracy. No records, checkpoints, artifact or second evaluation.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from bench.data import load_data
from bench.engine import EngineOptions, make_optimizer, model_input, prepare_model
from bench.hostmem import tune_host_malloc
from bench.models import build_model
from bench.perf.reference_loops import minimal_epoch
from bench.presets import get_preset
from bench.provenance import set_threads


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.perf.minimal_process",
                                     description=__doc__)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--train-images", type=int, required=True)
    parser.add_argument("--test-images", type=int)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--preset", default="smoke", help="whose dense recipe (batch, lr)")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--tune-malloc", action="store_true",
                        help="glibc's thresholds raised as the suite raises them")
    args = parser.parse_args(argv)
    if args.tune_malloc:
        tune_host_malloc()
    set_threads(args.threads)
    device = torch.device("cpu")
    options = EngineOptions(device=device, channels_last=args.channels_last, eval_every=0)
    recipe = get_preset(args.preset).recipe_for("dense", 1.0)
    data = load_data("cifar10", args.data_dir, device, args.train_images, args.test_images,
                     download=False)
    model = prepare_model(build_model("resnet20", data.num_classes, seed=0), options)
    optimizer = make_optimizer(model.parameters(), recipe, options)
    model.train()
    minimal_epoch(model, optimizer, data, recipe.batch_size, seed=0, epoch=0, options=options)
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in data.test_batches(1000):
            correct += int((model(model_input(x, options)).argmax(1) == y).sum())
    print(f"test accuracy {100 * correct / len(data.test_y):.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
