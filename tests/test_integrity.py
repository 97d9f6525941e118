"""Nothing damaged is ever used: checkpoints, shared trainings and records fail their checksum
when a byte changes and are set aside, their work redone; paths read from files never leave
the store; a plugin that breaks its contract is named; packing and resumes keep the books."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from bench.cli import main
from bench.engine import EngineOptions, train
from bench.engine.checkpoints import Progress, load_checkpoint
from bench.engine.optimizer import make_optimizer
from bench.fsutil import sha256_file
from bench.integrity import DamagedFile, load_torch, read_checked, seal, write_checked
from bench.models import build_model, prunable_layers
from bench.provenance import fingerprint, numeric_environment
from bench.recipe import Recipe
from bench.registry import _REGISTRY, Method, register
from bench.shared_training import load_shared, save_shared
from bench.store import RunSpec, RunStore, UnreadableRecord

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--preset", "smoke", "--width", "0.25", "--train-subset", "300", "--test-subset", "100",
        "--device", "cpu", "--no-progress", "--threads", "1"]


def flip_inside(path: Path, tensor: torch.Tensor) -> None:
    """Flip one bit in the middle of ``tensor``'s bytes where ``path`` stores them (the damage
    ``torch.load`` does not notice: its archive's CRC is not checked)."""
    data = bytearray(path.read_bytes())
    raw = tensor.detach().contiguous().numpy().tobytes()
    at = data.find(raw)
    assert at >= 0, "the tensor's bytes are not in the file"
    data[at + len(raw) // 2] ^= 0x10
    path.write_bytes(bytes(data))


# ------------------------------------------------------------------ checksummed files


def test_a_checked_file_refuses_any_flipped_bit_a_truncation_and_a_foreign_file(tmp_path):
    path = tmp_path / "x.bin"
    write_checked(path, b"payload" * 100)
    assert read_checked(path) == b"payload" * 100
    good = path.read_bytes()
    for at in (0, 20, len(good) // 2, len(good) - 1):
        damaged = bytearray(good)
        damaged[at] ^= 0x01
        path.write_bytes(bytes(damaged))
        with pytest.raises(DamagedFile, match=str(path)):
            read_checked(path)
    for content in (good[:-1], good[:10], b"", b"PK\x03\x04 a zip from an older version"):
        path.write_bytes(content)
        with pytest.raises(DamagedFile):
            read_checked(path)


def test_a_seal_fails_when_any_value_changes():
    from bench.integrity import unseal

    record = seal({"status": "finished", "metrics": {"test_accuracy": 13.0, "loss": 2.38767}})
    assert unseal(json.loads(json.dumps(record)), "r") == record  # survives a JSON round trip
    for damaged in ({**record, "status": "failed"},
                    {**record, "metrics": {"test_accuracy": 15.0, "loss": 2.38767}}):
        with pytest.raises(DamagedFile):
            unseal(damaged, "r")


def _checkpointed(tmp_path: Path, data) -> tuple[Path, torch.nn.Module, Recipe]:
    """A ResNet-20 (width 0.25) trained 2 epochs on 300 real images, checkpointed."""
    recipe = Recipe(epochs=2, batch_size=100, lr=0.05)
    model = build_model("resnet20", 10, seed=0, width=0.25)
    path = tmp_path / "train.ckpt"
    train(model, data, recipe, seed=0, options=EngineOptions(eval_every=0), checkpoint=path)
    return path, model, recipe


def test_a_damaged_checkpoint_is_set_aside_and_the_phase_trained_again(tmp_path, data300,
                                                                        capsys):
    path, trained, recipe = _checkpointed(tmp_path, data300)
    fresh = build_model("resnet20", 10, seed=0, width=0.25)
    flip_inside(path, trained.conv.weight)
    result = train(fresh, data300, recipe, seed=0, options=EngineOptions(eval_every=0),
                   checkpoint=path)
    err = capsys.readouterr().err
    assert f"warning: {path} is damaged" in err and "train.ckpt.damaged.0" in err
    assert (tmp_path / "train.ckpt.damaged.0").exists()
    assert result.resumed_at_epoch == 0  # trained again, not resumed from the damaged file
    for (name, a), b in zip(trained.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(a, b), name  # the uninterrupted training's weights, exactly


def test_an_intact_checkpoint_resumes_and_an_old_unchecked_one_is_not_trusted(tmp_path,
                                                                              data300):
    path, trained, recipe = _checkpointed(tmp_path, data300)
    model = build_model("resnet20", 10, seed=0, width=0.25)
    optimizer = make_optimizer(list(model.parameters()), recipe, EngineOptions())
    assert load_checkpoint(path, recipe, model, optimizer).epoch == 2
    assert torch.equal(model.conv.weight, trained.conv.weight)
    torch.save(load_torch(path), path)  # as the suite wrote it before checksums
    assert load_checkpoint(path, recipe, model, optimizer) == Progress()


def test_a_damaged_shared_training_is_set_aside_and_trained_again(tmp_path, capsys):
    from bench.engine import TrainResult

    store = RunStore(tmp_path)
    model = build_model("resnet20", 10, seed=0, width=0.25)
    result = TrainResult([{"epoch": 1, "train_loss": 2.0}], 1, 3, 1.5, 0, {})
    save_shared(store, "c" * 32, model, result, {"run": "0" * 16, "phase": "round0"})
    (path,) = (tmp_path / "_shared" / "trainings").glob("*.pt")
    flip_inside(path, model.blocks[0].conv1.weight)
    assert load_shared(store, "c" * 32) is None  # before: loaded, another weight in it
    assert "is damaged" in capsys.readouterr().err
    assert not path.exists() and path.with_name(path.name + ".damaged.0").exists()


def test_a_damaged_record_is_unreadable_and_its_run_redone(tmp_path):
    store = RunStore(tmp_path)
    spec = RunSpec(method="dense", model="resnet20", dataset="cifar10", density=1.0, seed=0,
                   recipe=Recipe())
    metrics = {"test_accuracy": 13.0, "test_loss": 2.38767, "artifact_bytes": 10,
               "artifact_file": "model-0123456789abcdef.bpa"}
    store.write(spec.key, {"status": "finished", "key": spec.key, "spec": spec.to_record(),
                           "metrics": metrics})
    path = store.record_path(spec.key)
    path.write_text(path.read_text().replace("13.0", "15.0"))
    with pytest.raises(UnreadableRecord, match="does not match its checksum"):
        store.read(spec.key)


def test_checksums_are_checked_for_the_real_files_of_a_run(cifar10_dir, tmp_path):
    assert main(["run", "--methods", "lth", "--densities", "0.64", *TINY, "--epochs", "1",
                 "--data-dir", str(cifar10_dir), "--results", str(tmp_path)]) == 0
    store = RunStore(tmp_path)
    ((_, record),) = store.records()
    assert json.loads(store.record_path(record["key"]).read_text())["checksum"]
    for path in (tmp_path / "_shared" / "trainings").glob("*.pt"):
        load_torch(path)  # each verifies
    (manifest,) = (tmp_path / "_grids").glob("*.json")
    assert json.loads(manifest.read_text())["checksum"].startswith("sha256:")


# ------------------------------------------------------------------ paths are data


def _finished_record(store: RunStore, cifar10_dir: Path) -> tuple[Path, dict]:
    assert main(["run", "--methods", "dense", *TINY, "--epochs", "1", "--data-dir",
                 str(cifar10_dir), "--results", str(store.root)]) == 0
    ((path, record),) = store.records()
    return path, record


@pytest.mark.parametrize("name", ["../../../../../../../etc/passwd", "/etc/passwd",
                                  "model-0123456789abcdef.bpa/../../x", "record.json"])
def test_a_record_naming_a_file_outside_its_run_folder_is_refused_and_rerun(
        cifar10_dir, tmp_path, capsys, name):
    store = RunStore(tmp_path)
    path, record = _finished_record(store, cifar10_dir)
    target = Path("/etc/passwd")
    record["metrics"].update(artifact_file=name, artifact_bytes=target.stat().st_size,
                             artifact_sha256=sha256_file(target))
    path.write_text(json.dumps(seal(record)))  # a valid checksum: a crafted record
    with pytest.raises(UnreadableRecord, match="not a plain artifact name"):
        store.read(record["key"])
    out = tmp_path / "snap.json"
    assert main(["export", "--results", str(tmp_path), "--out", str(out)]) == 2
    assert not out.exists()
    capsys.readouterr()
    assert main(["run", "--methods", "dense", *TINY, "--epochs", "1", "--data-dir",
                 str(cifar10_dir), "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "is not a plain artifact name" in out
    assert "moved to record.unreadable.0.json and rerunning" in out
    ((_, again),) = store.records()
    assert again["metrics"]["artifact_file"].startswith("model-")


def test_a_manifest_naming_a_key_outside_the_store_is_set_aside(tmp_path, capsys):
    outside = tmp_path / "outside" / "x"
    outside.mkdir(parents=True)
    (outside / "record.json").write_text(json.dumps({"status": "finished"}))
    store = tmp_path / "store"
    (store / "_grids").mkdir(parents=True)
    gid = "0123456789ab"
    manifest = {"id": gid, "runs": [{"key": "../outside/x", "label": "sneaky",
                                     "planned_epochs": 1}]}
    (store / "_grids" / f"{gid}.json").write_text(json.dumps(seal(manifest)))
    assert main(["status", "--results", str(store)]) == 2
    err = capsys.readouterr().err
    assert "is damaged (a run key is '../outside/x', not a key" in err
    assert "sneaky" not in err and (store / "_grids" / f"{gid}.json.damaged.0").exists()


def test_a_store_never_builds_a_path_from_a_key_that_is_not_hex(tmp_path):
    store = RunStore(tmp_path)
    for key in ("../x", "/etc", "0123456789abcdeg", "0123456789abcdef/../.."):
        with pytest.raises(Exception, match="not a key"):
            store.run_dir(key)
    with pytest.raises(Exception, match="not a plain artifact file name"):
        store.artifact_path("0123456789abcdef", "../record.json")


# ------------------------------------------------------------------ damaged manifests


def test_a_manifest_of_random_bytes_is_set_aside_and_run_is_not_blocked(cifar10_dir, tmp_path,
                                                                        capsys):
    args = ["run", "--methods", "dense", *TINY, "--epochs", "1", "--data-dir",
            str(cifar10_dir), "--results", str(tmp_path)]
    assert main(args) == 0
    (manifest,) = (tmp_path / "_grids").glob("*.json")
    manifest.write_bytes(os.urandom(4096))
    capsys.readouterr()
    assert main(["status", "--results", str(tmp_path)]) == 2  # nothing left to show
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"warning: {manifest} is damaged (is not UTF-8 text")
    assert err[1].startswith("error: no grid was launched") and len(err) == 2
    manifest.write_bytes(os.urandom(4096))
    assert main(["status", "--json", "--results", str(tmp_path)]) == 2
    manifest.write_bytes(os.urandom(4096))
    assert main(args) == 0  # before: UnicodeDecodeError until the file was deleted by hand
    assert json.loads(manifest.read_text())["id"] == manifest.stem
    assert main(["status", "--results", str(tmp_path)]) == 0


# ------------------------------------------------------------------ the plugin contract


@pytest.fixture
def plugin():
    """Register test-only methods for one test and remove them afterwards."""
    added = []

    def add(name, run):
        register(name)(type(name, (Method,), {"run": run, "description": "test only"}))
        added.append(name)

    yield add
    for name in added:
        _REGISTRY.pop(name, None)


def test_a_plugin_that_breaks_its_contract_fails_naming_the_method_and_the_rule(
        cifar10_dir, tmp_path, plugin, capsys):
    def returns_none(self, ctx):
        ctx.train()

    def keeps_every_weight(self, ctx):
        ctx.train()
        return ctx.model

    def trains_without_a_final_phase(self, ctx):
        _, layer = prunable_layers(ctx.model)[0]
        layer.set_mask(torch.ones_like(layer.weight))
        ctx.train(phase="warm-up")
        return ctx.model

    def returns_another_network(self, ctx):
        return torch.nn.Linear(3, 10)

    rules = {
        "test-none": (returns_none, "run() must return the trained model (an nn.Module); "
                      "it returned None"),
        "test-unmasked": (keeps_every_weight, "the run asks for density 0.5 but the returned "
                          "model has no mask on any prunable layer"),
        "test-no-final": (trains_without_a_final_phase, "marked no phase final"),
        "test-other": (returns_another_network, "returned a model without prunable layers"),
    }
    for name, (run, _) in rules.items():
        plugin(name, run)
    assert main(["run", "--methods", ",".join(rules), "--densities", "0.5", *TINY, "--epochs",
                 "1", "--data-dir", str(cifar10_dir), "--results", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    by_method = {r["spec"]["method"]: r for _, r in RunStore(tmp_path).records()}
    for name, (_, rule) in rules.items():
        message = by_method[name]["error"]["message"]
        assert by_method[name]["status"] == "failed" and f"method {name!r}" in message, message
        assert rule in message and rule in out
    assert "NoneType" not in out


# ------------------------------------------------------------------ packing and the gate


def test_packing_enters_the_numeric_environment():
    cpu = torch.device("cpu")
    alone = EngineOptions().switches()
    packed = EngineOptions(pack=2).switches()
    assert "pack" not in alone and packed["pack"] == 2  # unpacked fingerprints unchanged
    assert fingerprint(numeric_environment(cpu, alone)) != fingerprint(
        numeric_environment(cpu, packed))


@pytest.mark.slow
def test_a_packed_and_an_unpacked_run_are_never_compared_to_the_bit(cifar10_dir, tmp_path,
                                                                    capsys):
    grid = ["run", "--methods", "snip,random", "--densities", "0.2", *TINY, "--epochs", "1",
            "--data-dir", str(cifar10_dir)]
    assert main([*grid, "--pack", "1", "--results", str(tmp_path / "one")]) == 0
    assert main([*grid, "--pack", "2", "--results", str(tmp_path / "two")]) == 0
    one = {r["key"]: r for _, r in RunStore(tmp_path / "one").records()}
    two = {r["key"]: r for _, r in RunStore(tmp_path / "two").records()}
    assert one.keys() == two.keys()  # the same specs, the same keys
    for key in one:
        assert one[key]["environment"]["fingerprint"] != two[key]["environment"]["fingerprint"]
        assert two[key]["environment"]["numeric"]["pack"] == 2
    capsys.readouterr()
    main(["compare", str(tmp_path / "one"), str(tmp_path / "two"), "--single-seed-drop", "50"])
    assert "same environment" not in capsys.readouterr().out


# ------------------------------------------------------------------ resumed LTH


def _lth(results: Path, data: Path) -> list[str]:
    return [sys.executable, "-m", "bench", "run", "--methods", "lth", "--densities", "0.5",
            *TINY, "--epochs", "2", "--data-dir", str(data), "--results", str(results)]


@pytest.mark.slow
def test_an_lth_run_killed_in_round_3_books_its_own_rounds_as_its_own(cifar10_dir, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    straight = subprocess.run(_lth(tmp_path / "straight", cifar10_dir), cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=900)
    assert straight.returncode == 0, straight.stderr
    proc = subprocess.Popen(_lth(tmp_path / "killed", cifar10_dir), cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while not list((tmp_path / "killed").glob("*/checkpoints/round3.ckpt")):
        assert proc.poll() is None, "run finished before round 3"
        assert time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed = subprocess.run(_lth(tmp_path / "killed", cifar10_dir), cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr
    ((_, a),), ((_, b),) = RunStore(tmp_path / "straight").records(), \
        RunStore(tmp_path / "killed").records()
    assert a["metrics"] == b["metrics"]
    assert not any("shared_from" in p for p in b["phases"])  # before: rounds 0-2 from itself
    assert b["budget"]["search"]["shared_epochs"] == a["budget"]["search"]["shared_epochs"] == 0
    assert b["budget"]["search"]["extra_epochs"] == a["budget"]["search"]["extra_epochs"]
    assert all(p["seconds"] > 0 for p in b["phases"])  # before: 0 s for rounds 0-2
    assert [p["epochs"] for p in a["phases"]] == [p["epochs"] for p in b["phases"]]
    ratio = b["budget"]["all_phases_train_seconds"] / a["budget"]["all_phases_train_seconds"]
    assert 0.5 < ratio < 2.0, ratio  # the same work, timed on a busy machine
