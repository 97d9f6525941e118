"""The ``process`` section: whole processes, start to exit, on CPU. One dense ResNet-20 run
(``bench run``, one epoch on ``--train-images`` plus the test split) against the fastest
correct process (:mod:`bench.perf.minimal_process`), each with glibc's allocator as it comes
and tuned (:mod:`bench.hostmem`): wall, user and system seconds and minor page faults
from the child's own resource usage, median of ``--repeats``, variants taking turns."""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.hostmem import HOST_MALLOC_ENV
from bench.perf.timing import PerfConfig
from bench.provenance import default_threads

TRAIN_IMAGES = 5000


RESULTS = "{results}"  # replaced by a fresh folder for every suite process


def _variants(cfg: PerfConfig, threads: int) -> dict[str, tuple[list[str], dict[str, str]]]:
    data = str(cfg.data_dir) if cfg.data_dir else os.environ.get("BENCH_DATA_DIR", "data")
    images = str(cfg.train_images or TRAIN_IMAGES)
    suite = [sys.executable, "-m", "bench", "run", "--methods", "dense", "--preset", "smoke",
             "--epochs", "1", "--train-subset", images, "--test-subset", "10000",
             "--threads", str(threads), "--device", "cpu", "--no-progress",
             "--data-dir", data, "--results", RESULTS]
    minimal = [sys.executable, "-m", "bench.perf.minimal_process", "--data-dir", data,
               "--train-images", images, "--threads", str(threads)]
    return {
        "suite (bench run)": (suite, {}),
        "suite, glibc malloc as it comes": (suite, {HOST_MALLOC_ENV: "off"}),
        "minimal process": (minimal + ["--tune-malloc"], {}),
        "minimal process, glibc malloc as it comes": (minimal, {}),
    }


def _measure(command: list[str], env: dict[str, str]) -> dict[str, float]:
    start = time.perf_counter()
    proc = subprocess.Popen(command, env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise BenchError(f"{' '.join(command[1:4])} failed ({proc.returncode}):\n{output[-2000:]}")
    found = re.search(r"test accuracy ([0-9.]+%)", output)
    accuracy = found.group(1) if found else ""
    return {"wall_s": wall, "user_s": usage.ru_utime, "sys_s": usage.ru_stime,
            "minor_faults": usage.ru_minflt, "accuracy": accuracy}


def process_rows(cfg: PerfConfig) -> list[dict[str, Any]]:
    """One row per variant: medians over ``cfg.repeats`` processes, and wall time over the
    fastest minimal process's."""
    if cfg.device.type != "cpu":
        raise BenchError("the process section measures CPU runs: use --device cpu")
    threads = default_threads()
    samples: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-perf-process-") as tmp:
        for repeat in range(cfg.repeats):
            for index, (name, (command, env)) in enumerate(_variants(cfg, threads).items()):
                fresh = str(Path(tmp) / f"results-{repeat}-{index}")
                command = [fresh if part == RESULTS else part for part in command]
                samples.setdefault(name, []).append(_measure(command, env))
    rows = []
    for name, runs in samples.items():
        row: dict[str, Any] = {"variant": name, "threads": threads,
                               "train_images": cfg.train_images or TRAIN_IMAGES}
        for key in ("wall_s", "user_s", "sys_s", "minor_faults"):
            row[key] = statistics.median(r[key] for r in runs)
        row["accuracy"] = runs[0]["accuracy"]
        row["samples_s"] = [r["wall_s"] for r in runs]
        rows.append(row)
    fastest = min(r["wall_s"] for r in rows if r["variant"].startswith("minimal"))
    for row in rows:
        row["over_fastest_minimal"] = row["wall_s"] / fastest
    return rows
