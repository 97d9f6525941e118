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
    monkeypatch.setattr(est, "search_seconds", lambda spec, data, options, store:
                        7.0 if spec.method == "synflow" else 0.0)

    class Cache:
        def get(self, *args):
            return data300

    set_threads(1, "BENCH_THREADS")
    specs = [smoke_spec("dense"), smoke_spec("synflow"), smoke_spec("edge-popup")]
    grid = est.estimate_grid(specs, RunStore(tmp_path), Cache(), CPU)
    steps = data300.steps_per_epoch(64, True)  # smoke: batch 64, 2 epochs, eval each epoch
    evals = 3 * len(data300.test_y) / 64 / 3
    expected = {"dense": 0.1 * (2 * steps + evals), "synflow": 0.2 * (2 * steps + evals) + 7,
                "edge-popup": 0.4 * (2 * steps + evals)}
    assert grid.per_run == pytest.approx({s.key: expected[s.method] for s in specs})
    assert grid.seconds == pytest.approx(sum(expected.values()))
    assert grid.line().endswith("on cpu, 1 thread (BENCH_THREADS)")
