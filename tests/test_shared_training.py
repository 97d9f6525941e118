"""Trainings shared between runs (LTH's common rounds): loaded, not trained again, and the
result is the one the run computes on its own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bench.cli import main
from bench.engine import EngineOptions
from bench.models import build_model
from bench.recipe import Recipe
from bench.shared_training import load_shared, save_shared, training_key
from bench.store import RunSpec, RunStore

LTH = ["--preset", "smoke", "--methods", "lth", "--seeds", "0", "--width", "0.25",
       "--epochs", "1", "--train-subset", "300", "--test-subset", "100", "--threads", "1",
       "--device", "cpu", "--no-progress"]


def records(root: Path) -> dict[float, dict]:
    out = {}
    for path in root.glob("*/record.json"):
        record = json.loads(path.read_text())
        out[record["spec"]["density"]] = record
    return out


def test_lth_trains_the_rounds_two_densities_share_once(cifar10_dir, tmp_path):
    base = [*LTH, "--data-dir", str(cifar10_dir)]
    assert main(["run", *base, "--densities", "0.64,0.5", "--results", str(tmp_path / "a")]) == 0
    assert main(["run", *base, "--densities", "0.5", "--results", str(tmp_path / "b")]) == 0
    both, alone = records(tmp_path / "a"), records(tmp_path / "b")
    high, low = both[0.64], both[0.5]
    # 0.64: rounds 0-2 trained here; 0.5: rounds 0-2 are the same trainings, 3-4 its own
    assert [p.get("shared_from") for p in high["phases"]] == [None] * 3
    shared = [p["phase"] for p in low["phases"] if "shared_from" in p]
    assert shared == ["round0", "round1", "round2"]
    assert all(p["shared_from"]["run"] == high["key"] for p in low["phases"][:3])
    assert [p["seconds"] for p in low["phases"][:3]] == [0.0] * 3
    search = low["budget"]["search"]
    assert search["extra_epochs"] == 4 and search["shared_epochs"] == 3
    assert alone[0.5]["budget"]["search"]["shared_epochs"] == 0
    # the shared result is what the run computes alone (same machine and threads: exact)
    assert low["metrics"] == alone[0.5]["metrics"]
    for mine, theirs in zip(low["phases"], alone[0.5]["phases"]):
        strip = [{k: v for k, v in e.items() if "seconds" not in k} for e in mine["log"]]
        assert strip == [{k: v for k, v in e.items() if "seconds" not in k}
                         for e in theirs["log"]]


def _spec() -> RunSpec:
    return RunSpec(method="lth", model="resnet20", dataset="cifar10", density=0.5, seed=0,
                   recipe=Recipe(epochs=1), model_kwargs={"width": 0.25}, data="abc")


def test_the_key_changes_with_every_input_of_the_training():
    model = build_model("resnet20", 10, seed=0, width=0.25)
    options = EngineOptions()
    spec, recipe = _spec(), Recipe(epochs=1)
    names = [n for n, _ in model.named_parameters()]

    def key(**change):
        args = {"spec": spec, "phase": "round1", "model": model, "trained": names,
                "recipe": recipe, "seed": 3, "snapshot_epochs": (), "options": options}
        args.update(change)
        return training_key(**args)

    same = key()
    assert key() == same
    other_model = build_model("resnet20", 10, seed=0, width=0.25)
    assert key(model=other_model) == same  # the same state: the same training
    with torch.no_grad():
        other_model.bn.running_mean[0] += 1e-7
    assert key(model=other_model) != same
    assert key(seed=4) != same and key(phase="round2") != same
    assert key(recipe=Recipe(epochs=2)) != same and key(trained=names[:-1]) != same
    assert key(snapshot_epochs=(1,)) != same
    assert key(options=EngineOptions(eval_every=0)) != same
    assert key(spec=RunSpec(**{**spec.__dict__, "data": "abd"})) != same
    assert key(spec=RunSpec(**{**spec.__dict__, "density": 0.1, "method": "x"})) == same


def test_a_torn_shared_file_is_trained_again(tmp_path):
    from bench.engine import TrainResult

    store = RunStore(tmp_path)
    model = build_model("resnet20", 10, seed=0, width=0.25)
    result = TrainResult([{"epoch": 1, "train_loss": 2.0}], 1, 3, 1.5, 0,
                         {1: {"w": torch.ones(2)}})
    save_shared(store, "a" * 32, model, result, {"run": "r", "phase": "round0"})
    kept = load_shared(store, "a" * 32)
    assert kept is not None and kept.result.log == result.log and kept.source["run"] == "r"
    assert torch.equal(kept.result.snapshots[1]["w"], torch.ones(2))
    path = next((tmp_path / "_shared" / "trainings").glob("*.pt"))
    path.write_bytes(path.read_bytes()[:100])
    assert load_shared(store, "a" * 32) is None
    assert load_shared(store, "b" * 32) is None


def test_two_runs_packed_together_train_their_common_rounds_once(cifar10_dir, tmp_path):
    """In one packed window both densities ask for rounds 0-2 at once: one run trains them,
    the other loads them, and its result is the one it gets alone."""
    base = [*LTH, "--data-dir", str(cifar10_dir)]
    assert main(["run", *base, "--densities", "0.64,0.5", "--pack", "2",
                 "--results", str(tmp_path / "a")]) == 0
    assert main(["run", *base, "--densities", "0.5", "--results", str(tmp_path / "b")]) == 0
    both, alone = records(tmp_path / "a"), records(tmp_path / "b")
    high, low = both[0.64], both[0.5]
    assert [p.get("shared_from") for p in high["phases"]] == [None] * 3
    assert [p["phase"] for p in low["phases"] if "shared_from" in p] == [
        "round0", "round1", "round2"]
    assert low["budget"]["search"]["shared_epochs"] == 3
    assert low["metrics"] == alone[0.5]["metrics"]


@pytest.mark.slow
def test_two_workers_train_the_rounds_their_runs_share_once(cifar10_dir, tmp_path):
    """Two worker processes take the two densities at once and both ask for rounds 0-2: one
    trains each round while the other waits for it (before the lease, both trained them)."""
    base = [*LTH, "--data-dir", str(cifar10_dir), "--densities", "0.64,0.5"]
    base[base.index("300")] = "1000"  # rounds long enough for the two workers to overlap
    assert main(["run", *base, "--executor", "local", "--workers", "2",
                 "--results", str(tmp_path / "workers")]) == 0
    assert main(["run", *base, "--results", str(tmp_path / "alone")]) == 0
    workers, alone = records(tmp_path / "workers"), records(tmp_path / "alone")
    for phase in ("round0", "round1", "round2"):
        trained = [d for d, r in workers.items()
                   for p in r["phases"] if p["phase"] == phase and "shared_from" not in p]
        assert len(trained) == 1, (phase, trained)
    assert {d: r["metrics"] for d, r in workers.items()} == {
        d: r["metrics"] for d, r in alone.items()}
