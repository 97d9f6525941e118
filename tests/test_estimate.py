"""The grid's time estimate: what it times and how it adds up (its accuracy against real
runs is measured by ``python -m bench.perf.estimate_check``, not here)."""

from __future__ import annotations

import itertools

import pytest
import torch

import bench.estimate as est
from bench.engine import EngineOptions
from bench.grid import preset_specs
from bench.presets import get_preset
from bench.provenance import set_threads
from bench.registry import get_method
from bench.store import RunStore

CPU = EngineOptions(device=torch.device("cpu"))


def smoke_spec(method: str, density: float = 0.2):
    return next(s for s in preset_specs(get_preset("smoke"))
                if s.method == method and s.density in (density, 1.0))


@pytest.mark.parametrize("method, density, family", [
    ("dense", 1.0, "dense"), ("snip", 0.2, "fixed mask"), ("lth", 0.2, "fixed mask"),
    ("edge-popup", 0.2, "top-k"), ("pemn-rp", 0.2, "top-k")])
def test_each_method_is_timed_as_its_final_model_trains(method, density, family):
    assert est.step_family(get_method(method), density) == family


def test_a_step_is_timed_on_the_masked_model_as_the_median_of_the_timed_steps(
        data300, monkeypatch):
    clock = itertools.count()
    ticks = iter([0, 9, 0, 9] + [0, 1, 0, 5, 0, 2, 0, 3, 0, 4, 0, 100])  # 2 warm-up, 6 timed
    monkeypatch.setattr(est.time, "perf_counter", lambda: next(ticks, next(clock)))
    spec = smoke_spec("edge-popup")
    assert est.step_seconds(spec, data300, CPU, "top-k") == 3.5  # median of 1 5 2 3 4 100


def test_scoring_is_one_round_timed_times_the_rounds(data300, monkeypatch, tmp_path):
    calls = []
    pruner = get_method("synflow")
    monkeypatch.setattr(pruner, "prune_model",
                        lambda self, model, ctx: calls.append(
                            getattr(self.hparams, "rounds", self.rounds)))
    ticks = iter([10.0, 12.5])
    monkeypatch.setattr(est.time, "perf_counter", lambda: next(ticks))
    store = RunStore(tmp_path)
    assert est.search_seconds(smoke_spec("synflow"), data300, CPU, store) == 2.5 * 100
    assert calls == [1]  # one round, timed
    assert est.search_seconds(smoke_spec("lth"), data300, CPU, store) == 0.0  # trains instead


def test_the_line_sums_training_evaluation_and_scoring_and_names_the_threads(
        data300, monkeypatch, tmp_path):
    monkeypatch.setattr(est, "step_seconds", lambda spec, data, options, family:
                        {"dense": 0.1, "fixed mask": 0.2, "top-k": 0.4}[family])
    monkeypatch.setattr(est, "eval_image_seconds", lambda spec, data, options, family:
                        {"dense": 0.01, "fixed mask": 0.02, "top-k": 0.03}[family])
    monkeypatch.setattr(est, "search_seconds", lambda spec, data, options, store:
                        7.0 if spec.method == "synflow" else 0.0)

    class Cache:
        def get(self, *args):
            return data300

    set_threads(1, "BENCH_THREADS")
    specs = [smoke_spec("dense"), smoke_spec("synflow"), smoke_spec("edge-popup")]
    grid = est.estimate_grid(specs, RunStore(tmp_path), Cache(), CPU)
    steps = data300.steps_per_epoch(64, True)  # smoke: batch 64, 2 epochs, eval each epoch
    test = len(data300.test_y)
    images = 2 * test + 2 * test  # epoch 1, the artifact (epoch 2's), the decode check's batch
    expected = {"dense": 0.1 * 2 * steps + 0.01 * images,
                "synflow": 0.2 * 2 * steps + 0.02 * images + 7,
                "edge-popup": 0.4 * 2 * steps + 0.03 * images}
    assert grid.per_run == pytest.approx({s.key: expected[s.method] for s in specs})
    assert grid.seconds == pytest.approx(sum(expected.values()))
    assert grid.line().endswith("on cpu, 1 thread (BENCH_THREADS)")


def test_evaluation_is_one_evaluation_batch_timed_per_image(data300, monkeypatch):
    ticks = iter([10.0, 13.0])
    monkeypatch.setattr(est.time, "perf_counter", lambda: next(ticks))
    seconds = est.eval_image_seconds(smoke_spec("snip"), data300, CPU, "fixed mask")
    assert seconds == 3.0 / min(CPU.eval_batch_size, len(data300.test_y))


@pytest.mark.parametrize("epochs, eval_every, expected", [
    (2, 1, 2 * 10_000 + 2 * 1000),  # epoch 1, the artifact (the last epoch's accuracy), and
    (160, 10, 16 * 10_000 + 2 * 1000),  # the decode check's one batch through both models
    (5, 0, 1 * 10_000 + 2 * 1000),
])
def test_a_run_evaluates_its_epochs_the_artifact_and_the_decode_check(epochs, eval_every,
                                                                      expected):
    options = EngineOptions(eval_every=eval_every)
    assert est.eval_images(epochs, 10_000, options) == expected
