"""End to end on real CIFAR-10: train, record, cache, force, fail, diverge, resume."""

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
from bench.registry import _REGISTRY, Method, register
from bench.store import RunStore

ROOT = Path(__file__).resolve().parents[1]
# A tiny but real configuration: ResNet-20 at quarter width, 1000/500 real images.
TINY = ["--preset", "smoke", "--width", "0.25", "--train-subset", "1000", "--test-subset", "500",
        "--device", "cpu", "--no-progress"]


def records(root: Path) -> list[dict]:
    return [r for _, r in RunStore(root).records()]


@pytest.fixture
def extra_methods():
    """Register test-only methods for one test and remove them afterwards."""
    added = []

    def add(name, run, uses_density=False):
        cls = type(name, (Method,), {"run": run, "uses_density": uses_density,
                                     "description": "test only"})
        register(name)(cls)
        added.append(name)

    yield add
    for name in added:
        _REGISTRY.pop(name, None)


def test_dense_smoke_preset_learns(cifar10_dir, tmp_path, capsys):
    code = main(["run", "--methods", "dense", "--preset", "smoke", "--data-dir", str(cifar10_dir),
                 "--results", str(tmp_path), "--device", "cpu", "--no-progress"])
    assert code == 0
    (record,) = records(tmp_path)
    assert record["status"] == "finished"
    assert record["metrics"]["test_accuracy"] > 25.0  # chance is 10%
    assert len(record["log"]) == record["spec"]["recipe"]["epochs"]
    assert record["budget"]["steps"] == 2000 // 64 * record["spec"]["recipe"]["epochs"]
    assert record["environment"]["torch"] == torch.__version__
    metrics = record["metrics"]
    artifact = tmp_path / record["key"] / metrics["artifact_file"]
    assert metrics["artifact_bytes"] == artifact.stat().st_size
    assert sum(metrics["artifact_breakdown"].values()) == metrics["artifact_bytes"]
    assert metrics["decode_max_logit_difference"] == 0.0  # the decoded model is the trained one
    assert metrics["density"] == 1.0 and not metrics["layer_collapse"]
    assert metrics["compression_ratio"] == metrics["dense_bytes"] / metrics["artifact_bytes"]
    out = capsys.readouterr().out
    assert "trained, test accuracy" in out


def test_identical_specs_give_identical_results_and_reruns_are_cached(cifar10_dir, tmp_path,
                                                                      capsys):
    args = ["run", "--methods", "dense", *TINY, "--epochs", "1", "--data-dir", str(cifar10_dir)]
    assert main([*args, "--results", str(tmp_path / "a")]) == 0
    assert main([*args, "--results", str(tmp_path / "b")]) == 0
    (a,), (b,) = records(tmp_path / "a"), records(tmp_path / "b")
    assert a["key"] == b["key"]
    assert a["metrics"] == b["metrics"]
    assert [e["train_loss"] for e in a["log"]] == [e["train_loss"] for e in b["log"]]
    capsys.readouterr()

    assert main([*args, "--results", str(tmp_path / "a")]) == 0
    assert "cached, test accuracy" in capsys.readouterr().out
    assert records(tmp_path / "a")[0]["started"] == a["started"]

    assert main([*args, "--results", str(tmp_path / "a"), "--force"]) == 0
    assert "trained, test accuracy" in capsys.readouterr().out
    forced = records(tmp_path / "a")[0]
    assert forced["metrics"] == a["metrics"] and forced["finished"] >= a["finished"]


def test_a_failing_run_is_recorded_and_the_grid_goes_on(cifar10_dir, tmp_path, extra_methods):
    def broken(self, ctx):
        raise RuntimeError("this method is broken")

    def nan(self, ctx):
        with torch.no_grad():
            for p in ctx.model.parameters():
                p.fill_(float("nan"))
        ctx.train()
        return ctx.model

    extra_methods("test-broken", broken)
    extra_methods("test-nan", nan)
    code = main(["run", "--methods", "test-broken,test-nan,dense", *TINY, "--epochs", "1",
                 "--data-dir", str(cifar10_dir), "--results", str(tmp_path)])
    assert code == 1
    by_method = {r["spec"]["method"]: r for r in records(tmp_path)}
    assert by_method["test-broken"]["status"] == "failed"
    assert "this method is broken" in by_method["test-broken"]["error"]["message"]
    assert "Traceback" in by_method["test-broken"]["error"]["traceback"]
    assert by_method["test-nan"]["status"] == "diverged"
    assert by_method["dense"]["status"] == "finished"


def test_unreadable_record_is_named_and_rerun(cifar10_dir, tmp_path, capsys):
    args = ["run", "--methods", "dense", *TINY, "--epochs", "1", "--data-dir", str(cifar10_dir),
            "--results", str(tmp_path)]
    assert main(args) == 0
    (path,) = tmp_path.glob("*/record.json")
    path.write_text('{"status": "finished", "spec": ')  # torn write from some other tool
    capsys.readouterr()
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"unreadable record {path}" in out and "rerunning" in out
    assert records(tmp_path)[0]["status"] == "finished"
    assert (path.parent / "record.unreadable.0.json").exists()


def _bench(results: Path, data: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "bench", "run", "--methods", "dense", *TINY, "--epochs", "4",
            "--data-dir", str(data), "--results", str(results), *extra]


def test_killed_run_resumes_to_the_uninterrupted_result(cifar10_dir, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    straight = subprocess.run(_bench(tmp_path / "straight", cifar10_dir), cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=600)
    assert straight.returncode == 0, straight.stderr

    proc = subprocess.Popen(_bench(tmp_path / "killed", cifar10_dir), cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not list((tmp_path / "killed").glob("*/checkpoints/train.ckpt")):
        assert proc.poll() is None, "run finished before it could be interrupted"
        assert time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (interrupted,) = records(tmp_path / "killed")
    assert interrupted["status"] == "running"

    resumed = subprocess.run(_bench(tmp_path / "killed", cifar10_dir), cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    (a,), (b,) = records(tmp_path / "straight"), records(tmp_path / "killed")
    assert b["status"] == "finished" and b["phases"][0]["resumed_at_epoch"] >= 1
    assert a["metrics"] == b["metrics"]
    timings = ("seconds", "train_seconds")
    strip = [{k: v for k, v in e.items() if k not in timings} for e in a["log"]]
    assert strip == [{k: v for k, v in e.items() if k not in timings} for e in b["log"]]
    assert not list((tmp_path / "killed").glob("*/checkpoints/*"))  # cleaned up when finished


def test_report_pools_seeds(cifar10_dir, tmp_path, capsys):
    assert main(["run", "--methods", "dense", *TINY, "--epochs", "1", "--seeds", "0,1",
                 "--data-dir", str(cifar10_dir), "--results", str(tmp_path)]) == 0
    accs = sorted(r["metrics"]["test_accuracy"] for r in records(tmp_path))
    capsys.readouterr()
    assert main(["report", "--results", str(tmp_path), "--format", "csv"]) == 0
    import io

    import pandas as pd

    table = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert len(table) == 1 and table["n"][0] == 2 and table["seeds"][0] == "0,1"
    assert table["accuracy_mean"][0] == pytest.approx(sum(accs) / 2)
    assert table["accuracy_std"][0] == pytest.approx(abs(accs[1] - accs[0]) / 2 ** 0.5)
    assert main(["report", "--results", str(tmp_path)]) == 0
    assert "±" in capsys.readouterr().out
    json.dumps(records(tmp_path))  # records are plain JSON
