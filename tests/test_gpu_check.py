"""The prepared GPU check script (bench/perf/gpu_check.sh) runs the CUDA tests (skipped here)
and its three bench perf steps end to end, here on the CPU at toy sizes, and leaves what the
device call brings back."""

import json
import os
import subprocess

import pytest
from conftest import CIFAR10_SCRIPT
from small_grid import ROOT


@pytest.mark.long  # over 1.5 minutes on 2 cores: CI leaves it out (--long)
def test_the_gpu_check_script_runs_every_step_and_writes_its_files(tmp_path):
    if not CIFAR10_SCRIPT.is_file():
        pytest.skip(f"no {CIFAR10_SCRIPT} to make the data from")
    env = {**os.environ, "BENCH_CHECK_SMALL": "1", "BENCH_CHECK_DATA": str(CIFAR10_SCRIPT.parent),
           "PYTHONPATH": str(ROOT)}
    out = tmp_path / "out"
    done = subprocess.run(["bash", "bench/perf/gpu_check.sh", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    summary = (out / "gpu.txt").read_text()
    for step in ("tests", "packing", "compiled", "grid"):
        assert f"{step}: exit 0" in summary, summary
    tests = (out / "tests" / "log.txt").read_text()  # the CUDA tests: collected, skipped here
    assert "SKIPPED" in tests and "no CUDA device" in tests and "passed" not in tests, tests
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert len(files) <= 9 and all(len(p.split("/")) <= 2 for p in files), files  # comes back
    packing = json.loads(next((out / "packing").glob("*.json")).read_text())
    assert [(row["runs"], row["how"]) for row in packing["packing"]] == [
        (1, "alone (engine)"), (1, "packed"), (2, "packed")]
    grid = json.loads(next((out / "grid").glob("*.json")).read_text())
    assert [row["pack"] for row in grid["grid"]] == [1, 8]
    assert all(row["finished"] == row["runs"] == 2 for row in grid["grid"])
    compiled = json.loads(next((out / "compiled").glob("*-compiled.json")).read_text())
    assert {row["update"] for row in compiled["update"]} == {"torch step", "compiled"}
