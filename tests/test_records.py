"""Trustworthy records: data and environment provenance, artifacts verified on reuse,
divergence, --force keeping results, damaged records, and input checked before training."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from bench import claims
from bench.cli import main
from bench.data import load_data
from bench.errors import BenchError
from bench.integrity import seal
from bench.registry import _REGISTRY, Method, register
from bench.store import RunStore

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--preset", "smoke", "--width", "0.25", "--train-subset", "500", "--test-subset", "200",
        "--device", "cpu", "--no-progress", "--epochs", "1"]


def records(root: Path) -> list[dict]:
    return [r for _, r in RunStore(root).records()]


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def extra_methods():
    """Register test-only methods for one test and remove them afterwards."""
    added = []

    def add(name, run_fn, uses_density=False, **attrs):
        cls = type(name, (Method,), {"run": run_fn, "uses_density": uses_density,
                                     "description": "test only", **attrs})
        register(name)(cls)
        added.append(name)

    yield add
    for name in added:
        _REGISTRY.pop(name, None)


def altered_copy(src: Path, dst: Path) -> Path:
    """A copy of a CIFAR-10 folder with one byte of the test images changed: same files,
    same sizes, one pixel different."""
    shutil.copytree(src, dst)
    path = dst / "cifar-10-batches-py" / "test_batch"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # the middle of the file is pixel data
    path.write_bytes(bytes(data))
    return dst


# --------------------------------------------------------------------------- provenance


def test_other_images_are_another_run(cifar10_dir, tmp_path, capsys):
    other = altered_copy(cifar10_dir, tmp_path / "other")
    a = load_data("cifar10", cifar10_dir, "cpu", 500, 1000)
    b = load_data("cifar10", other, "cpu", 500, 1000)
    assert a.fingerprint != b.fingerprint
    assert load_data("cifar10", cifar10_dir, "cpu", 500, 1000).fingerprint == a.fingerprint
    store = tmp_path / "r"
    args = ["run", "--methods", "dense", *TINY, "--test-subset", "1000", "--eval-every", "0",
            "--results", str(store)]
    assert run(capsys, *args, "--data-dir", str(cifar10_dir))[0] == 0
    code, out, _ = run(capsys, *args, "--data-dir", str(other))
    assert code == 0 and "trained" in out and "cached" not in out
    first, second = sorted(records(store), key=lambda r: r["started"])
    assert first["spec"]["data"] == a.fingerprint and second["spec"]["data"] == b.fingerprint
    assert first["key"] != second["key"] and first["grid_key"] == second["grid_key"]


def test_records_name_the_numeric_environment_and_threads(cifar10_dir, tmp_path, capsys):
    assert run(capsys, "run", "--methods", "dense", *TINY, "--threads", "1", "--data-dir",
               str(cifar10_dir), "--results", str(tmp_path))[0] == 0
    (record,) = records(tmp_path)
    env = record["environment"]
    assert env["numeric"]["threads"] == 1 and "1 threads" in env["device"]
    assert env["numeric"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert len(env["fingerprint"]) == 12 and record["owner"]["pid"] == os.getpid()


def test_threads_as_torch_users_set_them_and_the_record_says_which_decided(monkeypatch):
    from bench.provenance import choose_threads

    for var in ("BENCH_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    assert choose_threads(None)[1].startswith("the ") and "CPUs" in choose_threads(None)[1]
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert choose_threads(None) == (1, "OMP_NUM_THREADS")  # before: silently ignored
    monkeypatch.setenv("OMP_NUM_THREADS", "3,1")  # nested levels: the first is torch's
    assert choose_threads(None) == (3, "OMP_NUM_THREADS")
    monkeypatch.setenv("BENCH_THREADS", "2")
    assert choose_threads(None) == (2, "BENCH_THREADS")
    assert choose_threads("4") == (4, "--threads")
    monkeypatch.setenv("BENCH_THREADS", "")
    monkeypatch.setenv("OMP_NUM_THREADS", "many")
    with pytest.raises(BenchError, match="OMP_NUM_THREADS must be a whole number"):
        choose_threads(None)


def test_omp_num_threads_decides_a_run_and_its_record_says_so(cifar10_dir, tmp_path, capsys,
                                                               monkeypatch):
    monkeypatch.delenv("BENCH_THREADS", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    code, out, _ = run(capsys, "run", "--methods", "dense", *TINY, "--data-dir",
                       str(cifar10_dir), "--results", str(tmp_path))
    assert code == 0 and "1 thread (OMP_NUM_THREADS)" in out
    (record,) = records(tmp_path)
    assert record["environment"]["numeric"]["threads"] == 1
    assert record["environment"]["threads_from"] == "OMP_NUM_THREADS"
    torch.set_num_threads(2)


def test_a_resume_in_another_environment_says_so(cifar10_dir, tmp_path, capsys, extra_methods):
    calls = []

    def two_phases(self, ctx):
        ctx.train(phase="first")
        if not calls:
            calls.append(1)
            raise KeyboardInterrupt  # as a Ctrl-C after the first phase's checkpoint
        ctx.train(phase="second", final=True)
        return ctx.model

    extra_methods("test-two-phases", two_phases)
    args = ["run", "--methods", "test-two-phases", *TINY, "--data-dir", str(cifar10_dir),
            "--results", str(tmp_path)]
    assert run(capsys, *args, "--threads", "2")[0] == 130
    (record,) = records(tmp_path)
    assert record["status"] == "running" and "interrupted" in record
    code, out, _ = run(capsys, *args, "--threads", "1")
    assert code == 0
    assert "resumes from checkpoints made in another environment (threads 2 -> 1)" in out
    (record,) = records(tmp_path)
    assert record["status"] == "finished"
    assert record["resumed_across_environments"]["difference"] == "threads 2 -> 1"
    torch.set_num_threads(2)


def test_the_grid_says_what_it_holds_before_it_starts(cifar10_dir, tmp_path, capsys):
    args = ["run", "--methods", "dense,random", "--densities", "0.5", *TINY, "--data-dir",
            str(cifar10_dir), "--results", str(tmp_path)]
    code, out, _ = run(capsys, *args)
    assert code == 0 and "2 of 2 runs to train (2 epochs); about" in out and "on cpu" in out
    code, out, _ = run(capsys, *args, "--methods", "dense,lth", "--epochs", "2")
    # dense at 2 epochs is new; lth at d=0.5: 4 pruning rounds, 5 trainings of 2 epochs
    assert "2 of 2 runs to train (12 epochs)" in out


# --------------------------------------------------------------------------- artifacts


def test_a_missing_or_damaged_artifact_is_rerun(cifar10_dir, tmp_path, capsys):
    args = ["run", "--methods", "dense", *TINY, "--data-dir", str(cifar10_dir), "--results",
            str(tmp_path)]
    assert run(capsys, *args)[0] == 0
    (first,) = records(tmp_path)
    artifact = tmp_path / first["key"] / first["metrics"]["artifact_file"]
    assert artifact.name.startswith("model-") and first["metrics"]["artifact_sha256"]
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 1
    artifact.write_bytes(bytes(data))
    code, out, _ = run(capsys, *args)
    assert code == 0 and "does not match the record's checksum; rerunning" in out
    (second,) = records(tmp_path)
    assert second["metrics"] == first["metrics"] and artifact.read_bytes() != bytes(data)
    artifact.unlink()
    code, out, _ = run(capsys, *args)
    assert code == 0 and f"its artifact {artifact.name} is missing; rerunning" in out
    code, out, _ = run(capsys, *args)
    assert code == 0 and "cached" in out


def test_force_keeps_the_finished_result_until_a_new_one_is_finished(
        cifar10_dir, tmp_path, capsys, extra_methods):
    state = {"interrupt": False}

    def dense_or_interrupted(self, ctx):
        ctx.train()
        if state["interrupt"]:
            raise KeyboardInterrupt
        return ctx.model

    extra_methods("test-dense", dense_or_interrupted)
    args = ["run", "--methods", "test-dense", *TINY, "--data-dir", str(cifar10_dir),
            "--results", str(tmp_path)]
    assert run(capsys, *args)[0] == 0
    (before,) = records(tmp_path)
    state["interrupt"] = True
    assert run(capsys, *args, "--force")[0] == 130
    (after,) = records(tmp_path)
    assert after == before  # the running attempt never replaced the result
    code, out, _ = run(capsys, *args)
    assert code == 0 and "cached" in out


# --------------------------------------------------------------------------- divergence


def test_non_finite_weights_are_diverged_and_not_retrained(cifar10_dir, tmp_path, capsys,
                                                           extra_methods):
    def nan_weights(self, ctx):
        ctx.train()
        with torch.no_grad():
            next(ctx.model.parameters()).fill_(float("nan"))
        return ctx.model

    extra_methods("test-nan-weights", nan_weights)
    args = ["run", "--methods", "test-nan-weights,dense", *TINY, "--data-dir", str(cifar10_dir),
            "--results", str(tmp_path)]
    code, out, _ = run(capsys, *args)
    assert code == 1 and "diverged" in out
    by_method = {r["spec"]["method"]: r for r in records(tmp_path)}
    diverged = by_method["test-nan-weights"]
    assert diverged["status"] == "diverged" and "non-finite values" in \
        diverged["error"]["message"]
    assert by_method["dense"]["status"] == "finished"
    code, out, _ = run(capsys, *args)
    assert code == 1 and "diverged (cached)" in out  # a result: not trained again
    starts = [e for e in RunStore(tmp_path).events(diverged["key"]) if e["event"] == "start"]
    assert len(starts) == 1


# --------------------------------------------------------------------------- damaged records


BAD_FINISHED = ['{"status": "finished", "spec": {}}', "WITHOUT_METRICS", '{"status": "finished"}']


def _damage(path: Path, content: str) -> None:
    if content == "WITHOUT_METRICS":
        record = json.loads(path.read_text())
        del record["metrics"]
        content = json.dumps(record)
    path.write_text(content)


@pytest.fixture(scope="module")
def two_run_store(cifar10_dir, tmp_path_factory):
    """A store with two finished tiny runs and its exported snapshot, made once."""
    root = tmp_path_factory.mktemp("two-runs")
    assert main(["run", "--methods", "dense,random", "--densities", "0.5", *TINY,
                 "--data-dir", str(cifar10_dir), "--results", str(root / "r")]) == 0
    assert main(["export", "--results", str(root / "r"), "--out", str(root / "good.json")]) == 0
    return root


@pytest.mark.parametrize("content", BAD_FINISHED)
def test_damaged_finished_records(cifar10_dir, two_run_store, tmp_path, capsys, content):
    store = tmp_path / "r"
    shutil.copytree(two_run_store / "r", store)
    shutil.copy(two_run_store / "good.json", tmp_path / "good.json")
    path = sorted(store.glob("*/record.json"))[0]
    _damage(path, content)
    for argv in (["export", "--results", str(store), "--out", str(tmp_path / "s.json")],
                 ["compare", str(tmp_path / "good.json"), str(store)],
                 ["compare", str(store), str(tmp_path / "good.json")]):
        capsys.readouterr()
        code, _, err = run(capsys, *argv)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and str(path) in lines[0], (argv, err)
        assert "unreadable record" in lines[0] and "Traceback" not in err
    assert not (tmp_path / "s.json").exists()
    snapshot = json.loads((tmp_path / "good.json").read_text())
    snapshot["records"][0] = json.loads(content) if content.startswith("{") else \
        {k: v for k, v in snapshot["records"][0].items() if k != "metrics"}
    (tmp_path / "bad.json").write_text(json.dumps(snapshot))
    code, _, err = run(capsys, "compare", str(tmp_path / "bad.json"), str(tmp_path / "good.json"))
    assert code == 2 and err.startswith("error: unreadable record 0") and len(
        err.strip().splitlines()) == 1
    if content != BAD_FINISHED[0]:
        return
    code, out, _ = run(capsys, "run", "--methods", "dense,random", "--densities", "0.5", *TINY,
                       "--data-dir", str(cifar10_dir), "--results", str(store))
    assert code == 0 and "moved to record.unreadable.0.json and rerunning" in out
    assert len(records(store)) == 2 and (path.parent / "record.unreadable.0.json").exists()


def test_export_onto_a_folder_and_figures_onto_a_file_are_one_line(cifar10_dir, tmp_path,
                                                                   capsys):
    assert run(capsys, "run", "--methods", "dense", *TINY, "--data-dir", str(cifar10_dir),
               "--results", str(tmp_path / "r"))[0] == 0
    (tmp_path / "folder").mkdir()
    code, _, err = run(capsys, "export", "--results", str(tmp_path / "r"), "--out",
                       str(tmp_path / "folder"))
    assert code == 2 and "is a folder" in err and len(err.strip().splitlines()) == 1
    assert list((tmp_path / "folder").iterdir()) == [] and not list(tmp_path.glob(".*.tmp"))
    (tmp_path / "file").write_text("x")
    code, _, err = run(capsys, "figures", "--results", str(tmp_path / "r"), "--out",
                       str(tmp_path / "file"))
    assert code == 2 and "is a file, not a folder" in err


# --------------------------------------------------------------------------- input


@pytest.mark.parametrize("argv, message", [
    (["--methods", "lth:rewind_epoch=5", "--densities", "0.5"], "rewind epoch 5 is past"),
    (["--methods", "lth:budget=total", "--densities", "0.1"], "cannot cover"),
    (["--methods", "snip", "--densities", "0.5", "--train-subset", "50"],
     "snip scores on 10 training images per class, but the training subset has 5"),
    (["--methods", "magnitude", "--densities", "0.5"], "at least 2 epochs"),
])
def test_runs_that_cannot_run_fail_before_anything_trains(cifar10_dir, tmp_path, capsys, argv,
                                                          message):
    code, out, err = run(capsys, "run", *TINY, *argv, "--data-dir", str(cifar10_dir),
                         "--results", str(tmp_path))
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not list(tmp_path.iterdir()) and "runs to train" not in out


def test_results_that_cannot_be_written_are_one_line(cifar10_dir, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    targets = [(tmp_path / "file", "is a file"), (tmp_path / "file" / "sub", "is a file"),
               (Path("/proc/bench-results"), "not writable")]
    if os.geteuid() != 0:  # root writes into read-only folders; a read-only mount stops it
        (tmp_path / "ro").mkdir(mode=0o555)
        targets.append((tmp_path / "ro" / "runs", "not writable"))
    for target, message in targets:
        code, _, err = run(capsys, "run", "--methods", "dense", *TINY, "--data-dir",
                           str(cifar10_dir), "--results", str(target))
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_a_broken_plugin_module_breaks_no_other_command(tmp_path):
    package = tmp_path / "brokenpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "fine.py").write_text(
        "from bench.registry import Method, register\n"
        "@register('test-fine')\nclass Fine(Method):\n    description = 'fine'\n")
    (package / "bad.py").write_text("raise ImportError('missing dependency xyz')\n")
    script = ("import sys; sys.path.insert(0, sys.argv[1]); import bench.registry as r; "
              "r.BUILTIN_PACKAGES = (*r.BUILTIN_PACKAGES, 'brokenpkg'); from bench.cli import "
              "main; sys.exit(main(sys.argv[2:]))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    listed = subprocess.run([sys.executable, "-c", script, str(tmp_path), "list"], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0 and "test-fine" in listed.stdout and "dense" in listed.stdout
    assert "module brokenpkg.bad failed to load" in listed.stderr
    asked = subprocess.run([sys.executable, "-c", script, str(tmp_path), "run", "--methods",
                            "bad", "--results", str(tmp_path / "r")], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=120)
    last = asked.stderr.strip().splitlines()[-1]
    assert asked.returncode == 2 and last.startswith("error: unknown method 'bad'")
    assert "missing dependency xyz" in last


# --------------------------------------------------------------------------- claims


def test_a_claim_is_exclusive_and_a_dead_owner_is_taken_over(tmp_path):
    first = claims.acquire(tmp_path / "run")
    assert first is not None and first.valid()
    assert claims.acquire(tmp_path / "run") is None  # held: a live heartbeat
    first.release()
    second = claims.acquire(tmp_path / "run")
    assert second is not None and second.generation == first.generation + 1
    # a worker of this host that died: its claim is taken over at once
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True)
    data = json.loads(second.path.read_text())
    data["owner"]["pid"] = int(dead.stdout)
    second.path.write_text(json.dumps(seal(data)))  # as the dead owner wrote it
    third = claims.acquire(tmp_path / "run", ttl=3600)
    assert third is not None and not second.valid()  # the old owner sees it lost the run
    assert claims.generations(tmp_path / "run") == [third.generation]
    third.release()


def test_a_claim_whose_heartbeat_stopped_goes_stale(tmp_path):
    held = claims.acquire(tmp_path / "run", ttl=60)
    held._stop.set()  # a paused worker: no heartbeat
    data = json.loads(held.path.read_text())
    data["owner"]["host"] = "elsewhere"  # on another host: only the heartbeat tells
    held.path.write_text(json.dumps(seal(data)))
    assert claims.acquire(tmp_path / "run", ttl=60) is None
    old = time.time() - 120
    os.utime(held.path, (old, old))
    taker = claims.acquire(tmp_path / "run", ttl=60)
    assert taker is not None and not held.valid() and not held.beat()
    taker.release()


def test_the_final_model_is_evaluated_once_where_the_codec_is_lossless(
        cifar10_dir, tmp_path, monkeypatch):
    """float32: the last epoch's test figures are the decoded artifact's (the same model),
    not a second evaluation; float16 (lossy): the trained model's, from the engine."""
    import bench.engine.loop as loop

    calls = []
    real = loop.evaluate

    def counted(model, data, options):
        calls.append(model.training)
        return real(model, data, options)

    monkeypatch.setattr(loop, "evaluate", counted)
    base = ["run", "--preset", "smoke", "--methods", "dense", "--seeds", "0", "--width", "0.25",
            "--epochs", "2", "--eval-every", "1", "--train-subset", "300", "--test-subset",
            "100", "--threads", "1", "--device", "cpu", "--no-progress",
            "--data-dir", str(cifar10_dir)]
    assert main([*base, "--results", str(tmp_path / "f32")]) == 0
    assert len(calls) == 1  # epoch 1 only: epoch 2 is the decoded artifact's evaluation
    [record] = [r for _, r in RunStore(tmp_path / "f32").records()]
    first, last = record["log"]
    assert "test_of" not in first and "test_accuracy" in first
    assert last["test_of"] == "decoded artifact"
    assert last["test_accuracy"] == record["metrics"]["test_accuracy"]
    assert last["test_loss"] == record["metrics"]["test_loss"]
    assert record["metrics"]["decode_max_logit_difference"] == 0.0
    assert main([*base, "--results", str(tmp_path / "f16"), "--value-codec", "float16"]) == 0
    assert len(calls) == 3  # both epochs in the engine
    [lossy] = [r for _, r in RunStore(tmp_path / "f16").records()]
    assert "test_of" not in lossy["log"][-1] and "test_accuracy" in lossy["log"][-1]


def test_the_code_version_is_read_once_per_process(monkeypatch):
    """A commit made in the checkout while a grid runs does not relabel its later runs."""
    from bench import provenance

    provenance.git_commit.cache_clear()
    first = provenance.git_commit()
    calls = []
    monkeypatch.setattr(provenance.subprocess, "run",
                        lambda *a, **k: calls.append(a) or subprocess.CompletedProcess(a, 0, ""))
    assert provenance.git_commit() == first and not calls
    provenance.git_commit.cache_clear()
    provenance.git_commit()
    assert calls  # uncached, it would have asked git again
    provenance.git_commit.cache_clear()
