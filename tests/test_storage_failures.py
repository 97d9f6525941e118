"""The disk refusing, on real small filesystems: a full tmpfs and one remounted read-only in
the middle of a grid. Each command ends in one ``error:`` line naming the path and what to
do, exits non-zero, leaves no partial or empty file, and a grid stops instead of failing
every remaining run the same way.

The filesystems are mounted in a private mount namespace (``unshare -rm``), so the tests
need no root and touch nothing outside; where the machine allows no such namespace they
are skipped with the reason.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cli import main

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
BENCH = f"{shlex.quote(sys.executable)} -m bench"
TINY = ("--preset smoke --width 0.25 --train-subset 300 --test-subset 100 --epochs 1 "
        "--device cpu --no-progress --threads 1")
LISTING = "echo '== files'; find \"$MNT\" -type f -printf '%s %P\\n'"


def _namespaces_allowed() -> str | None:
    """None where a private mount namespace with a tmpfs can be made here, else why not."""
    if not shutil.which("unshare"):
        return "no unshare command"
    done = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=4k tmpfs /mnt"],
                          capture_output=True, text=True)
    return None if done.returncode == 0 else f"no private mount namespace: {done.stderr}"


pytestmark = pytest.mark.skipif(bool(_namespaces_allowed()),
                                reason=str(_namespaces_allowed()))


def in_tmpfs(mount: Path, size: str, script: str) -> tuple[int, str, str, dict[str, int]]:
    """Run ``script`` (bash, ``$MNT`` the mount) with a tmpfs of ``size`` on ``mount``;
    the last command's exit status, its stdout and stderr, and the files left on the
    tmpfs (relative path -> bytes), listed before the namespace and its tmpfs go away."""
    mount.mkdir(parents=True, exist_ok=True)
    body = (f"set -u; export MNT={shlex.quote(str(mount))}; "
            f"mount -t tmpfs -o size={size} tmpfs \"$MNT\" || exit 99; "
            f"{{ {script} ; }} > \"$MNT.out\" 2> \"$MNT.err\"; rc=$?; {LISTING}; exit $rc")
    done = subprocess.run(["unshare", "-rm", "bash", "-c", body], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode != 99, done.stderr
    files = {}
    for line in done.stdout.split("== files\n", 1)[1].splitlines():
        size_text, name = line.split(" ", 1)
        files[name] = int(size_text)
    out = Path(f"{mount}.out").read_text()
    err = Path(f"{mount}.err").read_text()
    return done.returncode, out, err, files


def one_error_line(err: str, *needles: str) -> str:
    """The single ``error:`` line of ``err`` (no traceback anywhere), holding ``needles``."""
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def no_partial_files(files: dict[str, int]) -> None:
    assert not [f for f in files if f.endswith(".tmp")], files
    assert not [f for f, size in files.items() if size == 0 and not f.endswith(".log")], files


@pytest.fixture(scope="module")
def store(cifar10_dir, tmp_path_factory) -> Path:
    """A real finished run to read from (on the ordinary disk)."""
    root = tmp_path_factory.mktemp("store")
    assert main(["run", "--methods", "dense", *TINY.split(), "--data-dir", str(cifar10_dir),
                 "--results", str(root)]) == 0
    return root


def test_a_full_disk_before_the_grid_is_one_line_and_leaves_nothing(cifar10_dir, tmp_path):
    rc, _, err, files = in_tmpfs(
        tmp_path / "mnt", "32k",
        f"{BENCH} run --methods dense {TINY} --data-dir {cifar10_dir} --results $MNT/runs")
    assert rc == 2
    one_error_line(err, "--results: writing a test file to", "the disk is full",
                   "free space there")
    assert files == {}  # the probe and the folders it made are gone


def test_a_disk_that_fills_during_a_grid_stops_it_with_one_line(cifar10_dir, tmp_path):
    rc, out, err, files = in_tmpfs(
        tmp_path / "mnt", "160k",
        f"{BENCH} run --methods dense,random,snip --densities 0.5 {TINY} --eval-every 0 "
        f"--data-dir {cifar10_dir} --results $MNT/runs")
    assert rc == 2, (out, err)
    line = one_error_line(err, "the disk is full", str(tmp_path / "mnt"))
    assert "run the same command again" in line
    assert "failed: [Errno 28]" not in out  # before: each remaining run failed the same way
    # The grid stops at the run that found the disk full: how many runs fit before it depends on
    # the machine (checkpoint sizes), so count the runs that started and did not finish.
    started = {f.split("/")[1] for f in files if f.endswith("events.log")}
    finished = {f.split("/")[1] for f in files if f.endswith("/record.json")}
    assert len(started - finished) <= 1, files  # one run stopped by the full disk
    assert len(started) < 3, files  # and no run after it
    no_partial_files(files)


@pytest.mark.parametrize("command, output", [
    ("export --results {store} --out $MNT/snap.json", "snap.json"),
    ("report --results {store} --out $MNT/table.md", "table.md"),
    ("figures --results {store} --kind bytes --out $MNT/figs", "figs"),
    ("compare {store} {store} --json $MNT/c.json", "c.json"),
])
def test_writing_a_result_to_a_full_disk_is_one_line_and_leaves_no_file(store, tmp_path,
                                                                        command, output):
    fill = "head -c 1M /dev/zero > $MNT/fill 2>/dev/null; "
    rc, _, err, files = in_tmpfs(tmp_path / "mnt", "64k",
                                 fill + BENCH + " " + command.format(store=store))
    assert rc == 2
    one_error_line(err, "the disk is full", output)
    assert set(files) == {"fill"}, files  # no partial snapshot, no empty PNG


def test_a_store_remounted_read_only_during_a_grid_stops_it_with_one_line(cifar10_dir,
                                                                          tmp_path):
    grid = (f"{BENCH} run --methods dense,random,snip,magnitude-init --densities 0.5 {TINY} "
            f"--data-dir {cifar10_dir} --results $MNT/runs")
    script = (f"{grid} & pid=$!; "
              "until grep -qs '\"status\": \"finished\"' $MNT/runs/*/record.json; do "
              "  kill -0 $pid 2>/dev/null || break; sleep 0.05; done; "
              "until mount -o remount,ro $MNT 2>/dev/null; do sleep 0.01; done; wait $pid")
    rc, out, err, files = in_tmpfs(tmp_path / "mnt", "64m", script)
    assert rc == 2, (out, err)
    one_error_line(err, "the filesystem is read-only", "remount it read-write")
    records = [f for f in files if f.endswith("record.json")]
    assert records, files
    no_partial_files(files)


def test_status_and_report_read_a_read_only_store(store, tmp_path):
    script = (f"cp -r {store} $MNT/runs && mount -o remount,ro $MNT && "
              f"{BENCH} status --results $MNT/runs && {BENCH} report --results $MNT/runs")
    rc, out, err, _ = in_tmpfs(tmp_path / "mnt", "64m", script)
    assert rc == 0, err
    assert "dense" in out and "Traceback" not in err
