"""bench perf: the grid projection's arithmetic, the targets, user mistakes, and a real
(small) CPU measurement that writes its JSON file."""

import json

import pytest

from bench.cli import main
from bench.perf import target_rows, training_left_out
from bench.perf.targets import _grid_minutes
from bench.recipe import Recipe


def _record(method, epochs, phases):
    return {"spec": {"method": method, "recipe": {"epochs": epochs}},
            "phases": [{"epochs": len(times), "log": [{"train_seconds": t} for t in times]}
                       for times in phases]}


def test_training_left_out_scales_each_phase_by_its_steady_epoch():
    full = {"dense": Recipe(epochs=20), "lth": Recipe(epochs=10)}
    records = [
        # 2 of 20 epochs: steady epoch 1.0 s (the first holds compilation) x 2 epochs x 9
        _record("dense", 2, [[5.0, 1.0]]),
        # two rounds of 1 of 10 epochs: a lone epoch is its own estimate, x 9 each
        _record("lth", 1, [[3.0], [2.0]]),
    ]
    assert training_left_out(records, lambda m: full[m]) == 1.0 * 2 * 9 + 3.0 * 9 + 2.0 * 9


def test_grid_target_uses_the_projection_only_for_a_complete_grid():
    quick = _grid_minutes("quick")
    row = {"preset": "quick", "pack": 1, "runs": 71, "finished": 71, "minutes": 4.0,
           "projected_minutes": 42.0, "train_images": "preset"}
    assert quick({"grid": [row]}) == 42.0
    assert quick({"grid": [{**row, "finished": 70}]}) is None
    unscaled = {k: v for k, v in row.items() if k != "projected_minutes"}
    assert quick({"grid": [unscaled]}) == 4.0
    packed = {**row, "pack": 8, "projected_minutes": 12.0}
    assert quick({"grid": [row, packed]}) == 12.0  # the fastest packing
    assert quick({"grid": [{**packed, "train_images": 2000}]}) is None  # not the real grid
    assert _grid_minutes("px-cifar10-resnet20")({"grid": [row]}) is None


def test_targets_say_met_missed_or_not_measured():
    import torch

    epoch = [{"loop": "engine", "s_per_full_epoch": 10.0},
             {"loop": "minimal hand-written", "s_per_full_epoch": 9.5},
             {"loop": "conventional DataLoader (4 workers)", "s_per_full_epoch": 15.0}]
    rows = {r["target"]: r for r in target_rows({"epoch": epoch}, torch.device("cpu"))}
    assert rows["engine time / minimal loop time"]["met"] == "yes"
    assert rows["engine speed-up over conventional loop"]["met"] == "NO"  # 1.5 < 2
    gpu = target_rows({}, torch.device("cuda"))
    assert {r["met"] for r in gpu} == {"not measured"}


@pytest.mark.parametrize("argv, message", [
    (["perf", "--sections", "epoch,speed"], "unknown perf section(s) speed"),
    (["perf", "--sections", "grid"], "the grid section needs --grid PRESET"),
    (["perf", "--grid", "quick", "--grid-scale", "0"], "--grid-scale must be in (0, 1]"),
    (["perf", "--batch", "0"], "--batch and --repeats must be >= 1"),
    (["perf", "--grid", "quick", "--pack", "0"], "--pack '0': give integers >= 1"),
    (["perf", "--grid", "quick", "--pack", "two"], "--pack takes comma-separated integers"),
    (["perf", "--grid", "quick", "--grid-seeds", "-1"], "give non-negative integers"),
    (["perf", "--grid", "quick", "--grid-images", "100"], "--grid-images takes TRAIN,TEST"),
    (["perf", "--grid", "quick", "--grid-densities", "0"], "give densities in (0, 1]"),
    (["perf", "--grid", "quick", "--grid-methods", "nope", "--device", "cpu"],
     "unknown method"),
    # the grid's mistakes before any other section runs (and before any data is read)
    (["perf", "--grid", "nope", "--device", "cpu"], "unknown preset 'nope'"),
    (["perf", "--grid", "quick", "--grid-images", "5,100", "--device", "cpu"],
     "subset of 5 images is smaller than the 10 classes"),
    (["perf", "--grid", "quick", "--grid-images", "100,205", "--device", "cpu"],
     "subset of 205 images cannot be class-balanced"),
    (["perf", "--sections", "packing", "--pack-sizes", "0,2"], "--pack-sizes '0,2': give"),
])
def test_perf_mistakes_are_one_line(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


def test_a_small_cpu_measurement_prints_and_writes_every_loop(cifar10_dir, tmp_path, capsys):
    code = main(["perf", "--device", "cpu", "--sections", "epoch,masked", "--batch", "50",
                 "--train-images", "100", "--repeats", "1", "--warmup", "0", "--workers", "0",
                 "--data-dir", str(cifar10_dir), "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "[targets on cpu]" in out
    [path] = tmp_path.glob("*.json")
    result = json.loads(path.read_text())
    loops = [row["loop"] for row in result["epoch"]]
    assert loops == ["engine", "minimal hand-written", "conventional DataLoader (0 workers)"]
    for row in result["epoch"]:
        assert row["images"] == 100 and row["median_s"] > 0
        assert row["s_per_full_epoch"] == pytest.approx(50_000 * row["median_s"] / 100)
    assert [row["layers"] for row in result["masked"]] == ["dense", "fixed mask", "top-k scores"]
    assert result["config"]["switches"]["cuda_graphs"] is False
    assert {row["target"] for row in result["targets"]} == {
        "engine time / minimal loop time", "engine speed-up over conventional loop"}


@pytest.mark.slow
def test_the_update_section_times_torchs_step_and_the_compiled_update(tmp_path):
    assert main(["perf", "--device", "cpu", "--sections", "update", "--repeats", "1",
                 "--warmup", "0", "--out", str(tmp_path)]) == 0
    [path] = tmp_path.glob("*.json")
    rows = json.loads(path.read_text())["update"]
    assert [(r["optimizer"], r["update"]) for r in rows] == [
        ("sgd nesterov", "torch step"), ("sgd nesterov", "compiled"),
        ("adamw", "torch step"), ("adamw", "compiled")]
    for torch_step, compiled in (rows[0:2], rows[2:4]):
        assert torch_step["vs_torch_step"] == 1 and compiled["median_s"] > 0
        assert compiled["vs_torch_step"] == compiled["median_s"] / torch_step["median_s"]


@pytest.mark.slow
def test_the_grid_section_runs_a_scaled_grid_packed_and_not(cifar10_dir, tmp_path, capsys):
    """A small PX grid (1 of 160 epochs on 300 images), one run at a time and packed in
    pairs: both finish every run, and the projection scales training to the full budget."""
    code = main(["perf", "--device", "cpu", "--sections", "grid", "--grid",
                 "px-cifar10-resnet20", "--budget-scale", "0.00625", "--grid-methods",
                 "random,snip", "--grid-seeds", "0", "--grid-densities", "0.64,0.1073741824",
                 "--grid-images", "300,100", "--pack", "1,2", "--grid-width", "0.25",
                 "--data-dir", str(cifar10_dir), "--out", str(tmp_path),
                 "--grid-results", str(tmp_path / "runs")])
    assert code == 0, capsys.readouterr().err
    [path] = tmp_path.glob("*.json")
    rows = json.loads(path.read_text())["grid"]
    assert [r["pack"] for r in rows] == [1, 2]
    for row in rows:
        assert row["runs"] == row["finished"] == 4 and row["epochs"] == 4
        # 160 epochs on 50000 images instead of 1 on 300: far more than measured
        assert row["projected_minutes"] > 100 * row["train_minutes"]
    packed = [json.loads(p.read_text())
              for p in (tmp_path / "runs" / "pack2").glob("*/record.json")]
    assert sorted(r["log"][-1].get("packed_runs", 1) for r in packed) == [2, 2, 2, 2]
    assert rows[1]["speedup_vs_pack1"] > 0


def test_the_packing_section_times_packs_against_one_run_alone(cifar10_dir, tmp_path):
    code = main(["perf", "--device", "cpu", "--sections", "packing", "--pack-sizes", "1,2",
                 "--batch", "50", "--train-images", "100", "--repeats", "1", "--warmup", "1",
                 "--data-dir", str(cifar10_dir), "--out", str(tmp_path)])
    assert code == 0
    [path] = tmp_path.glob("*.json")
    rows = json.loads(path.read_text())["packing"]
    assert [(r["runs"], r["how"]) for r in rows] == [(1, "alone (engine)"), (1, "packed"),
                                                     (2, "packed")]
    for row in rows:
        assert row["s_per_epoch"] > 0
        assert row["s_per_run_epoch"] == pytest.approx(row["s_per_epoch"] / row["runs"])
        assert row["speedup"] == pytest.approx(rows[0]["s_per_epoch"] / row["s_per_run_epoch"])


def test_prospr_memory_grows_with_its_unrolled_steps(cifar10_dir, capsys):
    """The ProsPr memory script (each M in its own process) on a small network: every
    unrolled step keeps its graph, so the added peak grows with M."""
    from bench.perf.prospr_memory import main as prospr_memory

    assert prospr_memory(["--data-dir", str(cifar10_dir), "--model", "resnet20",
                          "--steps", "0,2", "--batch-size", "20"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines()[3:]]
    added = {int(m): int(mib) for m, mib, _ in rows}
    assert set(added) == {0, 2} and added[2] > added[0] > 0
