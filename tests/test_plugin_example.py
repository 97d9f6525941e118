"""README's plugin example (tests/plugin_example): installed as a distribution, found through its
entry point, run for real on CIFAR-10, and word for word what README shows."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+
ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "tests" / "plugin_example"
TINY = ["--preset", "smoke", "--width", "0.25", "--train-subset", "500", "--test-subset", "200",
        "--device", "cpu", "--no-progress", "--epochs", "1", "--threads", "1"]


def installed(site: Path) -> Path:
    """What ``pip install`` leaves: the module and a dist-info with the pyproject's entry points."""
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    site.mkdir(parents=True, exist_ok=True)
    shutil.copy(EXAMPLE / "iter_snip.py", site)
    info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\n"
                                   f"Version: {project['version']}\n")
    lines = []
    for group, entries in project["entry-points"].items():
        lines.append(f"[{group}]")
        lines += [f"{name} = {target}" for name, target in entries.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return site


def bench(site: Path, *argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]),
           "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "bench", *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def test_readme_shows_the_example_files_verbatim():
    readme = (ROOT / "README.md").read_text()
    for name in ("iter_snip.py", "pyproject.toml"):
        assert (EXAMPLE / name).read_text() in readme, f"README's copy of {name} differs"


def test_the_installed_plugin_is_listed_and_checks_its_hyperparameters(tmp_path, cifar10_dir):
    site = installed(tmp_path / "site")
    listing = bench(site, "list")
    assert listing.returncode == 0 and "my-iter-snip" in listing.stdout, listing.stderr
    bad = bench(site, "run", "--methods", "my-iter-snip", "--my-iter-snip-rounds", "0", *TINY,
                "--data-dir", str(cifar10_dir), "--results", str(tmp_path / "runs"))
    assert bad.returncode == 2 and "rounds must be >= 1" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_the_installed_plugin_runs_a_real_grid(tmp_path, cifar10_dir):
    site = installed(tmp_path / "site")
    done = bench(site, "run", "--methods", "my-iter-snip", "--densities", "0.1", "--seeds", "0",
                 *TINY, "--data-dir", str(cifar10_dir), "--results", str(tmp_path / "runs"))
    assert done.returncode == 0, done.stderr[-2000:]
    (path,) = (tmp_path / "runs").rglob("record.json")
    record = json.loads(path.read_text())
    assert record["status"] == "finished" and record["spec"]["method"] == "my-iter-snip"
    assert abs(record["metrics"]["density"] - 0.1) < 0.01
    search = record["budget"]["search"]
    assert search["forward_images"] == 5 * 100 and search["backward_images"] == 5 * 100
    assert record["budget"]["epochs"] == 1
