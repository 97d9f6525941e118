"""``bench status`` from the store alone: each run finished, running (owner, epoch), interrupted,
failed or pending; the workers alive; the time left. Manifests and worker beacons round-trip,
and a dead worker (killed, even before it is reaped) stops counting at once."""

import json
import subprocess
import sys
import time

import pytest

from bench.claims import acquire, owner_dead, owner_info
from bench.cli import main
from bench.engine import progress_path
from bench.harness.manifest import manifests, read_manifest, write_manifest
from bench.harness.status import grid_status
from bench.harness.workers import WorkerBeacon, workers
from bench.recipe import Recipe
from bench.store import RunSpec, RunStore

SPECS = [RunSpec(method="dense", model="resnet20", dataset="cifar10", density=1.0, seed=seed,
                 recipe=Recipe(epochs=10, lr=0.1, weight_decay=5e-4)) for seed in range(5)]
METRICS = {"test_accuracy": 50.0, "test_loss": 1.5, "artifact_bytes": 10,
           "artifact_file": "model-0123456789abcdef.bpa"}


def record(spec: RunSpec, status: str, **extra) -> dict:
    out = {"status": status, "spec": spec.to_record(), "key": spec.key,
           "owner": {"host": "node7", "pid": 41, "slurm_array_job": "17",
                     "slurm_array_task": "3"}, **extra}
    if status == "finished":
        out["metrics"] = METRICS
    return out


def progress(store: RunStore, spec: RunSpec, epoch: int) -> None:
    """What the engine leaves beside a phase checkpoint after ``epoch`` epochs."""
    ckpt = store.checkpoint_path(spec.key, "train")
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    ckpt.write_bytes(b"")
    progress_path(ckpt).write_text(json.dumps({"epoch": epoch, "epochs": 10,
                                               "seconds": 3.0 * epoch, "time": time.time()}))


@pytest.fixture
def grid(tmp_path):
    """A store holding one run of each state, and its manifest."""
    store = RunStore(tmp_path)
    finished, running, interrupted, failed, _pending = SPECS
    store.write(finished.key, record(finished, "finished", wall_seconds=20.0))
    store.write(failed.key, record(failed, "failed",
                                   error={"type": "ValueError", "message": "bad mask"}))
    store.write(interrupted.key, record(interrupted, "running"))
    progress(store, interrupted, 4)
    claim = acquire(store.run_dir(running.key))
    progress(store, running, 7)
    manifest = write_manifest(store, SPECS, [10] * 5, command=["run", "--methods", "dense"],
                              executor={"kind": "slurm", "job_id": "17", "tasks": 8},
                              seconds_per_epoch=5.0)
    yield store, manifest
    claim.release()


def test_every_state_is_told_from_the_store(grid):
    store, manifest = grid
    status = grid_status(store, manifest)
    assert [r.state for r in status.runs] == ["finished", "running", "interrupted", "failed",
                                              "pending"]
    running, interrupted, failed = status.runs[1:4]
    assert running.owner["pid"] == owner_info()["pid"] and running.epochs_done == 7
    assert running.phase == "train" and running.heartbeat_age < 60
    assert interrupted.epochs_done == 4 and interrupted.owner["host"] == "node7"
    assert failed.error == "ValueError: bad mask"
    # epochs left (3 + 6 + 10; a failure has ended) at the measured 20 s / 10 epochs
    assert status.seconds_left == pytest.approx(19 * 2.0)
    assert not status.done


def test_before_a_run_finishes_the_rate_comes_from_the_checkpoints(grid):
    store, manifest = grid
    finished = SPECS[0]
    store.run_dir(finished.key).joinpath("record.json").unlink()
    status = grid_status(store, manifest)
    # 3 s per checkpointed epoch; epochs left 10 + 3 + 6 + 10
    assert status.seconds_left == pytest.approx(29 * 3.0)


def test_status_command_shows_owners_epochs_errors_and_workers(grid, capsys):
    store, _ = grid
    with WorkerBeacon(store, manifests(store)[-1].id):
        assert main(["status", "--results", str(store.root)]) == 0
    out = capsys.readouterr().out
    assert "5 runs" in out and "slurm job 17, 8 tasks" in out
    assert "1 finished, 1 running, 1 interrupted, 1 failed, 1 pending" in out
    assert f"pid {owner_info()['pid']}" in out and "epoch 7/10 in train" in out
    assert "resumes from epoch 4 (last: node7 pid 41, slurm 17_3)" in out
    assert "ValueError: bad mask" in out
    assert "workers alive: 1" in out
    assert "time left: about" in out
    assert "finished:" not in out and "pending:" not in out  # listed with --all only
    assert main(["status", "--results", str(store.root), "--all"]) == 0
    out = capsys.readouterr().out
    assert "  finished:\n" in out and "  pending:\n" in out
    assert f"({SPECS[0].key}): finished in " in out


def test_status_json_round_trips(grid, capsys):
    store, manifest = grid
    assert main(["status", "--results", str(store.root), "--json", "--grid", manifest.id]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["state"] for r in data["runs"]][-1] == "pending"
    assert data["grid"]["id"] == manifest.id


def test_manifest_round_trip_keeps_first_launch(tmp_path):
    store = RunStore(tmp_path)
    first = write_manifest(store, SPECS, [10] * 5, command=["run"], executor={"kind": "local"},
                           seconds_per_epoch=None)
    time.sleep(0.01)
    again = write_manifest(store, list(reversed(SPECS)), [10] * 5, command=["run", "-x"],
                           executor={"kind": "slurm"}, seconds_per_epoch=1.0)
    assert again.id == first.id  # the same runs in any order are one grid
    read = read_manifest(store, first.id)
    assert read.created == first.created and read.command == ["run", "-x"]
    assert [m.id for m in manifests(store)] == [first.id]


@pytest.mark.parametrize("argv, message", [
    ([], "no grid was launched on"),
    (["--grid", "abc"], "no grid 'abc' in"),
])
def test_status_mistakes_are_one_line(tmp_path, capsys, argv, message):
    assert main(["status", "--results", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_a_killed_worker_stops_counting_before_it_is_reaped(tmp_path):
    store = RunStore(tmp_path)
    code = ("import sys, time; from bench.harness.workers import WorkerBeacon; "
            "from bench.store import RunStore\n"
            "with WorkerBeacon(RunStore(sys.argv[1]), 'g'):\n"
            "    print('up', flush=True); time.sleep(60)")
    child = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline() == "up\n"
    (alive,) = workers(store)
    assert alive["alive"] and alive["owner"]["pid"] == child.pid
    child.kill()
    time.sleep(0.2)  # a zombie now: not reaped yet
    assert owner_dead(alive["owner"])
    assert not workers(store)[0]["alive"]
    child.wait()
    with WorkerBeacon(store, "g", ttl=0.4) as beacon:
        time.sleep(0.6)  # the heartbeat keeps a live worker fresh past its ttl
        assert [w["alive"] for w in workers(store, ttl=0.4) if w["token"] == beacon.token] \
            == [True]
    assert beacon.token not in [w["token"] for w in workers(store)]  # removed on exit


def test_status_shows_the_shared_training_cache_and_who_trains_one_now(grid, capsys):
    from torch import nn

    from bench.engine import TrainResult
    from bench.shared_training import save_shared

    store, _ = grid
    assert main(["status", "--results", str(store.root)]) == 0
    assert "shared trainings" not in capsys.readouterr().out  # none kept: no line
    result = TrainResult([{"epoch": 1, "train_loss": 2.0}], 1, 3, 1.5, 0, {})
    save_shared(store, "a" * 32, nn.Linear(100, 100), result, {"run": "r", "phase": "round0"})
    lease = acquire(store.root / "_shared" / "leases" / ("b" * 32))
    try:
        assert main(["status", "--results", str(store.root)]) == 0
        out = capsys.readouterr().out
        assert main(["status", "--results", str(store.root), "--json"]) == 0
        data = json.loads(capsys.readouterr().out)["shared_trainings"]
    finally:
        lease.release()
    assert "shared trainings kept: 1 (0.04 MB in _shared/" in out
    assert f"being trained now by {owner_info()['host']} pid {owner_info()['pid']}" in out
    size = (store.root / "_shared" / "trainings" / ("a" * 32 + ".pt")).stat().st_size
    assert data["trainings"] == 1 and data["bytes"] == size > 40_000
    assert [o["pid"] for o in data["training_now"]] == [owner_info()["pid"]]
    assert main(["status", "--results", str(store.root)]) == 0
    assert "being trained now" not in capsys.readouterr().out  # released
