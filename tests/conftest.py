"""Shared fixtures: real CIFAR-10 subset, tiny official-format CIFAR-100, the --slow switch.

No test may touch the network: BENCH_NO_DOWNLOAD is set before anything imports bench.
"""

import os
import pickle
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

pytest_plugins = ["slurm_cluster"]
os.environ["BENCH_NO_DOWNLOAD"] = "1"

CIFAR10_SCRIPT = Path(__file__).resolve().parents[2] / "shared/data/cifar10_from_jpeg.py"
CIFAR10_FILES = [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"]
TEST_SUBSET = (2000, 1000)  # train, test: class-balanced, as CI prepares it


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", default=False,
                     help="also run tests marked slow (long real-data runs)")
    parser.addoption("--conformance", action="store_true", default=False,
                     help="also run every reference-mask check (about 10 minutes)")
    parser.addoption("--long", action="store_true", default=False,
                     help="also run the real-data tests of over a minute and a half that "
                     "CI's 30 minutes leave out (about 8 minutes on 2 cores)")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long real-data tests, run with --slow (CI does)")
    config.addinivalue_line("markers", "conformance: the other reference-mask checks, run "
                            "with --conformance")
    config.addinivalue_line("markers", "lockstep: training in lockstep with the authors' code "
                            "from a checkout of their repository (skipped without one)")
    config.addinivalue_line("markers", "cuda: needs a CUDA device (skipped without one)")
    config.addinivalue_line("markers", "long: real-data tests of over 1.5 minutes that CI "
                            "leaves out to stay under 30 minutes, run with --long")


def pytest_collection_modifyitems(config, items):
    import torch

    if not torch.cuda.is_available():
        skip_cuda = pytest.mark.skip(reason="cuda test: no CUDA device here")
        for item in items:
            if "cuda" in item.keywords:
                item.add_marker(skip_cuda)
    for option, marker in (("--slow", "slow"), ("--conformance", "conformance"),
                           ("--long", "long")):
        if config.getoption(option):
            continue
        skip = pytest.mark.skip(reason=f"{marker} test: run with {option}")
        for item in items:
            if marker in item.keywords:
                item.add_marker(skip)


def pytest_terminal_summary(terminalreporter):
    """Which lockstep comparisons with the authors' code ran (and what they measured), and
    which were skipped and why: CI's log says so."""
    from authors_code import REPORTS

    lines = []
    for outcome in ("passed", "failed", "skipped"):
        for rep in terminalreporter.stats.get(outcome, []):
            if "lockstep" in getattr(rep, "keywords", {}) and rep.when in ("call", "setup"):
                why = rep.longrepr[2] if outcome == "skipped" else ""
                lines.append(f"{outcome}: {rep.nodeid} {why}".rstrip())
    if lines or REPORTS:
        terminalreporter.section("lockstep with the authors' code")
        for line in [*lines, *REPORTS]:
            terminalreporter.write_line(line)


def _unavailable(reason: str):
    """Fail in CI (the data must be there), skip on a developer machine."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def _complete(root: Path) -> bool:
    return all((root / "cifar-10-batches-py" / f).is_file() for f in CIFAR10_FILES)


def _prepared_cifar10(env_var: str, cache_name: str, script_args: list[str]) -> Path:
    """The folder ``$env_var`` names, else one the shared JPEG script writes once and caches."""
    env = os.environ.get(env_var)
    if env:
        root = Path(env)
        if not _complete(root):
            _unavailable(f"{env_var}={env} has no complete cifar-10-batches-py folder")
        return root
    root = Path(tempfile.gettempdir()) / cache_name
    if _complete(root):
        return root
    if not CIFAR10_SCRIPT.is_file():
        _unavailable(f"no real CIFAR-10: set {env_var} or provide {CIFAR10_SCRIPT}")
    staging = Path(tempfile.mkdtemp(prefix=root.name + "-", dir=root.parent))
    try:
        done = subprocess.run([sys.executable, str(CIFAR10_SCRIPT), str(staging), *script_args],
                              capture_output=True, text=True)
        if done.returncode:
            pytest.fail(f"{CIFAR10_SCRIPT} failed:\n{done.stderr}")
        try:
            staging.rename(root)  # atomic: a half-written cache is never seen
        except OSError:
            if not _complete(root):  # else a parallel session built it first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


@pytest.fixture(scope="session")
def cifar10_dir() -> Path:
    """A data dir holding cifar-10-batches-py: a real class-balanced 2000/1000 subset."""
    train, test = TEST_SUBSET
    return _prepared_cifar10("BENCH_TEST_DATA", f"bench-test-cifar10-{train}-{test}",
                             ["--train", str(train), "--test", str(test)])


@pytest.fixture(scope="session")
def cifar10_full_dir() -> Path:
    """All of CIFAR-10 (the reference-mask fixtures were computed on its pruning set)."""
    return _prepared_cifar10("BENCH_TEST_FULL_DATA", "bench-test-cifar10-full", [])


class Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 strings, as the official CIFAR files hold them."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj):
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def write_official_pickle(path: Path, obj) -> None:
    """Pickle ``obj`` the way the official CIFAR release did (protocol 2, Python 2 strings)."""
    with open(path, "wb") as f:
        Py2Pickler(f, protocol=2).dump(obj)


CIFAR100_PER_CLASS = {"train": 5, "test": 2}


def make_cifar100_split(split: str, seed: int) -> tuple[np.ndarray, list[int]]:
    """Deterministic random images (uint8 [n, 3072]) and shuffled fine labels for one split."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(100), CIFAR100_PER_CLASS[split])
    rng.shuffle(labels)
    data = rng.integers(0, 256, size=(len(labels), 3072), dtype=np.uint8)
    return data, [int(c) for c in labels]


@pytest.fixture(scope="session")
def cifar100_dir(tmp_path_factory) -> Path:
    """A data dir holding a tiny cifar-100-python (5 train / 2 test images per class)."""
    root = tmp_path_factory.mktemp("cifar100")
    folder = root / "cifar-100-python"
    folder.mkdir()
    for seed, split in enumerate(("train", "test")):
        data, fine = make_cifar100_split(split, seed)
        write_official_pickle(folder / split, {
            b"filenames": [f"img_{i:05d}.png".encode() for i in range(len(fine))],
            b"batch_label": f"{split}ing batch 1 of 1".encode(),
            b"fine_labels": fine,
            b"coarse_labels": [c // 5 for c in fine],
            b"data": data,
        })
    write_official_pickle(folder / "meta", {
        b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
        b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)],
    })
    return root


@pytest.fixture(scope="session")
def straight_grid(cifar10_dir, tmp_path_factory) -> dict[str, tuple]:
    """The small grid (tests/small_grid.py) run once in one process: what every multi-worker
    run of it must leave in its store."""
    from small_grid import ENV, ROOT, RUNS, command, outcome

    root = tmp_path_factory.mktemp("straight")
    done = subprocess.run(command(root, cifar10_dir), cwd=ROOT, env=ENV, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    result = outcome(root)
    assert len(result) == RUNS and all(v[0] == "finished" for v in result.values())
    return result


@pytest.fixture(scope="session")
def data64(cifar10_dir):
    """300/100 real CIFAR-10 images whose batches come out in float64 (normalised by
    float64 constants)."""
    from bench.data import load_data

    data = load_data("cifar10", cifar10_dir, "cpu", 300, 100, download=False)
    data._mean, data._std = data._mean.double(), data._std.double()
    return data


@pytest.fixture(scope="session")
def data300(cifar10_dir):
    """300/100 real CIFAR-10 images on the CPU (float32), for engine-level tests."""
    from bench.data import load_data

    return load_data("cifar10", cifar10_dir, "cpu", 300, 100, download=False)
