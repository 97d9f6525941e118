"""Where a result was computed: device, instruction set, threads, library and code versions.

The *numeric environment* is what can change a run's numbers for the same spec and data:
the device, the CPU instruction-set level oneDNN dispatches on (AVX2, AVX-512, AMX), the
thread count, torch and numpy versions, and the speed switches. Its fingerprint is stored
in every record; two records of one spec are expected to be bit-identical only when their
fingerprints (and the code) agree, and ``bench compare`` compares exactly only then.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import torch

import bench
from bench.errors import BenchError
from bench.hostmem import host_malloc

THREADS_ENV = "BENCH_THREADS"
_CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16")


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, and a Slurm task's
    ``SLURM_CPUS_PER_TASK`` where fewer: without cgroups the mask is the whole node), at
    least 1."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    granted = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if granted.isdigit() and int(granted) > 0:
        cpus = min(cpus, int(granted))
    return max(1, cpus)


OMP_ENV = "OMP_NUM_THREADS"
_threads_from: list[str] = []
"""Which setting decided this process's thread count (:func:`choose_threads`)."""


def choose_threads(arg: str | int | None = None, workers: int = 1) -> tuple[int, str]:
    """The torch threads to use and which setting decided: ``--threads``, else
    ``$BENCH_THREADS``, else ``$OMP_NUM_THREADS`` (as torch users set it; the first level
    of a nested list), else the CPUs this process may use split between ``workers``
    (never more threads than cores: on a 2-core box, 2 threads where 1 core was busy
    ran 8x slower)."""
    if arg is not None:
        return parse_threads(arg), "--threads"
    for env in (THREADS_ENV, OMP_ENV):
        text = os.environ.get(env, "").strip()
        if text:
            return parse_threads(text.split(",")[0], env), env
    cpus = available_cpus()
    return max(1, cpus // max(1, workers)), (
        f"the {cpus} CPUs this process may use" + (f", split between {workers} workers"
                                                    if workers > 1 else ""))


def default_threads(workers: int = 1) -> int:
    """:func:`choose_threads` without ``--threads``: the count alone."""
    return choose_threads(None, workers)[0]


def parse_threads(text: str | int, what: str = "--threads") -> int:
    try:
        n = int(text)
    except (TypeError, ValueError):
        raise BenchError(f"{what} must be a whole number of threads, got {text!r}") from None
    if not 1 <= n <= 1024:
        raise BenchError(f"{what} must be between 1 and 1024, got {n}")
    return n


def set_threads(n: int, decided_by: str | None = None) -> None:
    """torch's intra-op thread count for this process (results depend on it on CPU), and
    which setting decided it (records say so)."""
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    if decided_by is not None:
        _threads_from[:] = [decided_by]


def threads_decided_by() -> str | None:
    """What :func:`set_threads` was told decided the thread count (None: not told)."""
    return _threads_from[0] if _threads_from else None


def cpu_flags() -> list[str]:
    """The instruction-set flags of this CPU that decide oneDNN's kernels (Linux only)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    for line in text.splitlines():
        if line.startswith("flags"):
            present = set(line.split(":", 1)[1].split())
            return [f for f in _CPU_FLAGS if f in present]
    return []


def machine_kind() -> str:
    """The CPU kind float32 results depend on: vendor and the widest instruction-set class
    oneDNN dispatches on, e.g. ``amd-avx2``, ``intel-avx512``, ``amd-avx512-bf16`` (Zen 4),
    ``intel-avx512-amx`` (Sapphire Rapids and later). Iterative float32 pruning gives
    bit-identical masks only on one kind (and one thread count, one torch version)."""
    flags = set(cpu_flags())
    isa = next((name for flag, name in (("amx_tile", "avx512-amx"),
                                        ("avx512_bf16", "avx512-bf16"),
                                        ("avx512f", "avx512"), ("avx2", "avx2"))
                if flag in flags), "baseline")
    return f"{_cpu_vendor()}-{isa}"


def _cpu_vendor() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.machine() or "unknown"
    for line in text.splitlines():
        if line.startswith("vendor_id"):
            vendor = line.split(":", 1)[1].strip()
            return {"GenuineIntel": "intel", "AuthenticAMD": "amd"}.get(vendor, vendor.lower())
    return platform.machine() or "unknown"


def numeric_environment(device: torch.device, switches: dict[str, Any]) -> dict[str, Any]:
    """The fields that can change a run's numbers (see the module docstring)."""
    env: dict[str, Any] = {
        "device_type": device.type,
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_flags": cpu_flags(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        **switches,
    }
    if device.type == "cuda":
        env["device"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
        env["cudnn"] = torch.backends.cudnn.version()
    return env


def fingerprint(numeric: dict[str, Any]) -> str:
    """12 hex digits of the SHA-256 of the numeric environment."""
    text = json.dumps(numeric, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def precision_of(switches: dict[str, Any]) -> str:
    """The training precision a record's speed switches name: float16 (with loss scaling),
    bfloat16 or float32."""
    return "float16" if switches.get("fp16") else "bfloat16" if switches.get("bf16") else \
        "float32"


def environment(device: torch.device, switches: dict[str, Any]) -> dict[str, Any]:
    """What every record stores: a readable device name, the precision, the numeric
    environment and its fingerprint, and the versions of Python, the suite and its code."""
    numeric = numeric_environment(device, switches)
    if device.type == "cuda":
        name = numeric["device"]
    else:
        cpu = platform.processor() or platform.machine()
        name = f"cpu ({cpu}, {numeric['cpu_capability']}, {numeric['threads']} threads)"
    return {
        "device": name,
        "precision": precision_of(switches),
        "fingerprint": fingerprint(numeric),
        "numeric": numeric,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "bench": bench.__version__,
        "git_commit": git_commit(),
        "threads_from": threads_decided_by(),
        "host_malloc": host_malloc(),
        **switches,
    }


def describe_difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    """``threads 2 -> 1, torch a -> b``: how two numeric environments differ."""
    keys = sorted(set(old) | set(new))
    return ", ".join(f"{k} {old.get(k)} -> {new.get(k)}" for k in keys
                     if old.get(k) != new.get(k)) or "no difference"


@functools.cache
def git_commit() -> str | None:
    """The suite's git commit (with ``+dirty`` for uncommitted changes), or None outside git.

    Read once per process: the code a process runs is what it loaded, so a commit made in
    the checkout while a grid runs must not relabel its later runs (it did: one grid's
    records named three commits).
    """
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root, capture_output=True, text=True, timeout=10,
        )
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None
