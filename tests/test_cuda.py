"""The CUDA paths on a small masked ResNet-20 (marker ``cuda``; skipped without a CUDA device,
and first in ``bench/perf/gpu_check.sh``): the compiled step with CUDA graphs against the eager
step, packed against one-at-a-time training, bfloat16 and float16 autocast, a killed and
resumed run, and pruning on the device against pruning on the CPU.

Exactness where it can be had: the equivalence checks train in float64 (normalised by
float64 constants), where the two ways differ only in the order of sums, as the CPU tests
do (tests/test_compiled_step.py, tests/test_packing.py). :data:`FLOAT64` bounds what 20
steps make of that (see :func:`test_compiled_step_with_cuda_graphs_equals_the_eager_step`).
"""

from __future__ import annotations

import copy
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from float64_training import assert_same_state, masked_models, opened

from bench.context import SearchCost
from bench.data import DeviceData, load_data
from bench.engine import EngineOptions, prepare_model, train
from bench.engine.packed import train_packed
from bench.models import build_model, prunable_layers
from bench.pruning import PRUNING_IMAGES_PER_CLASS, prune
from bench.recipe import Recipe
from bench.registry import get_method, load_plugins, make_hparams
from bench.store import RunStore

pytestmark = pytest.mark.cuda

ROOT = Path(__file__).resolve().parents[1]
CUDA = torch.device("cuda")
FLOAT64 = 1e-8
"""Largest difference of any weight after 20 float64 steps of two ways to compute one step
(kernels that sum in another order): on the CPU the same comparisons agree to 1e-10 after 6
steps; 1e-8 leaves room for 20 steps and for cuDNN's algorithms."""
RECIPE = Recipe(epochs=2, batch_size=30, lr=0.1, schedule="cosine", weight_decay=5e-4)
"""300 images a 30: 10 steps an epoch, 20 in all."""


@pytest.fixture(scope="module")
def data64(cifar10_dir) -> DeviceData:
    """300/100 real CIFAR-10 images on the GPU whose batches come out in float64."""
    data = load_data("cifar10", cifar10_dir, CUDA, 300, 100, download=False)
    data._mean, data._std = data._mean.double(), data._std.double()
    return data


def on_gpu(models: list[torch.nn.Module]) -> list[torch.nn.Module]:
    """The models as the engine lays them out on the GPU (channels_last)."""
    return [prepare_model(m, EngineOptions(device=CUDA)) for m in models]


DETERMINISTIC = {"magnitude-init": 1.0, "snip": 0.999, "grasp": 0.999, "synflow": 0.999}
"""Methods whose masks follow from the weights and the pruning batch, and the Jaccard index
their GPU masks must reach against the CPU's: 1 where the scores are exact (magnitudes),
0.999 where sums in another order may swap near-ties at the cut (as the reference-mask
fixtures allow, tests/test_conformance.py; SynFlow's float64 over 100 rounds too). PX's
variants are left out: 100 rounds on the CPU take a minute of the GPU check's time."""


def pruned_masks(method: str, data: DeviceData, device: torch.device
                 ) -> dict[str, torch.Tensor]:
    cls = get_method(method)
    plugin = cls(make_hparams(cls, {}))
    model = build_model("resnet20", 10, seed=0).to(device)
    ctx = SimpleNamespace(data=data, seed=0, search=SearchCost(), notes={})
    rounds = getattr(plugin.hparams, "rounds", plugin.rounds)
    prune(model, lambda m: plugin.importance(m, ctx), 0.1, rounds, plugin.hparams.scope,
          plugin.hparams.cut)
    return {n: layer.current_mask().cpu() for n, layer in prunable_layers(model)}


@pytest.mark.parametrize("method", list(DETERMINISTIC))
def test_pruning_on_the_gpu_gives_the_cpus_masks(cifar10_dir, method):
    load_plugins()
    cpu = load_data("cifar10", cifar10_dir, "cpu", 2000, 1000, download=False)
    gpu = DeviceData(cpu.info, *(t.to(CUDA) for t in (cpu.train_x, cpu.train_y, cpu.test_x,
                                                       cpu.test_y)))
    key = (PRUNING_IMAGES_PER_CLASS, 0, "crop-flip")  # the same images: the CPU's draws
    gpu._pruning[key] = tuple(t.to(CUDA) for t in cpu.pruning_batch(*key))
    a, b = pruned_masks(method, cpu, torch.device("cpu")), pruned_masks(method, gpu, CUDA)
    assert sum(int(m.sum()) for m in a.values()) == sum(int(m.sum()) for m in b.values())
    both = sum(int((a[n] & b[n]).sum()) for n in a)
    either = sum(int((a[n] | b[n]).sum()) for n in a)
    assert both / either >= DETERMINISTIC[method], (method, both / either)


@pytest.mark.parametrize("precision, compiled", [("bfloat16", False), ("float16", False),
                                                 ("float16", True)])
def test_autocast_training_finishes_with_a_finite_loss(cifar10_dir, precision, compiled):
    """bfloat16 and float16 autocast, and float16's loss scaling through the compiled step
    with CUDA graphs (bfloat16's compiled step is bench perf's, which the GPU check runs)."""
    data = load_data("cifar10", cifar10_dir, CUDA, 2000, 1000, download=False)
    options = EngineOptions(device=CUDA, precision=precision, compile=compiled)
    model = on_gpu(masked_models(1))[0].float()
    before = model.fc.weight.detach().clone()
    result = train(model, data, Recipe(epochs=2, batch_size=128), seed=0, options=options)
    for entry in result.log:
        assert math.isfinite(entry["train_loss"]) and math.isfinite(entry["test_loss"])
        assert ("loss_scale" in entry) == (precision == "float16")
    assert not torch.equal(before, model.fc.weight)  # steps were taken, not all skipped


def test_packed_training_equals_one_at_a_time(data64):
    options = EngineOptions(device=CUDA, eval_every=0)
    alone, packed = on_gpu(masked_models(2)), on_gpu(masked_models(2))
    for seed, model in enumerate(alone):
        train(model, data64, RECIPE, seed=seed, options=options)
    train_packed([opened(m, data64, RECIPE, seed, options) for seed, m in enumerate(packed)])
    for a, b in zip(alone, packed):
        assert_same_state(a, b, atol=FLOAT64)


def bench_run(results: Path, data: Path) -> list[str]:
    """``bench run`` of one dense ResNet-20 on the GPU, 30 short epochs (time to kill it after
    the first), with deterministic algorithms (``--plain``: no cuDNN autotuning either) so
    that two processes compute the same bits."""
    deterministic = ("import sys, torch; torch.use_deterministic_algorithms(True, "
                     "warn_only=True); torch.backends.cudnn.deterministic = True; "
                     "from bench.cli import main; sys.exit(main(sys.argv[1:]))")
    return [sys.executable, "-c", deterministic, "run", "--methods", "dense", "--width", "0.5",
            "--epochs", "30", "--train-subset", "2000", "--test-subset", "1000", "--device",
            "cuda", "--plain", "--data-dir", str(data), "--results", str(results),
            "--no-progress"]


def test_a_killed_run_resumes_to_the_uninterrupted_records(cifar10_dir, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CUBLAS_WORKSPACE_CONFIG": ":4096:8"}
    straight = subprocess.run(bench_run(tmp_path / "straight", cifar10_dir), cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)
    assert straight.returncode == 0, straight.stderr
    proc = subprocess.Popen(bench_run(tmp_path / "killed", cifar10_dir), cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not list((tmp_path / "killed").glob("*/checkpoints/train.ckpt")):
        assert proc.poll() is None, "the run finished before it could be killed"
        assert time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed = subprocess.run(bench_run(tmp_path / "killed", cifar10_dir), cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    ((_, a),), ((_, b),) = (list(RunStore(tmp_path / d).records()) for d in ("straight",
                                                                              "killed"))
    assert b["status"] == "finished" and b["phases"][0]["resumed_at_epoch"] >= 1
    assert a["environment"]["numeric"]["device_type"] == "cuda"
    assert a["metrics"] == b["metrics"]
    timings = ("seconds", "train_seconds")
    assert [{k: v for k, v in e.items() if k not in timings} for e in a["log"]] == \
        [{k: v for k, v in e.items() if k not in timings} for e in b["log"]]


def test_compiled_step_with_cuda_graphs_equals_the_eager_step(data64):
    compiled_options = EngineOptions(device=CUDA, compile=True, eval_every=0)
    eager_options = EngineOptions(device=CUDA, eval_every=0)
    assert compiled_options.use_cuda_graphs and compiled_options.autocast_dtype is not None
    eager = on_gpu(masked_models(1))[0]
    compiled = copy.deepcopy(eager)
    a = train(eager, data64, RECIPE, seed=0, options=eager_options)
    b = train(compiled, data64, RECIPE, seed=0, options=compiled_options)
    assert a.steps == b.steps == 20
    assert_same_state(eager, compiled, atol=FLOAT64)  # float64: autocast leaves it alone
    assert b.log[-1]["train_loss"] == pytest.approx(a.log[-1]["train_loss"], rel=1e-6)
