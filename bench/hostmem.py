"""glibc's allocator tuned for training loops: big temporaries reused, not mapped per step.

By default glibc serves every allocation above its (dynamic) mmap threshold with a fresh
``mmap`` and gives it back with ``munmap`` on free, and returns the top of the heap to the
system past 128 KiB. A CPU training step allocates and frees activations of a few MiB
each, so every step maps and faults in new pages: measured on a 2-core machine, 15
million minor page faults and 38 s of system time in a 61 s run. Raising the two
thresholds keeps those blocks in the heap for the next step. It changes no number, only
where memory comes from, so it is not part of the numeric environment; records state it.

``BENCH_HOST_MALLOC=off`` leaves glibc as it is; glibc's own ``MALLOC_MMAP_THRESHOLD_`` /
``MALLOC_TRIM_THRESHOLD_`` in the environment win over these defaults.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
from typing import Any

HOST_MALLOC_ENV = "BENCH_HOST_MALLOC"
M_TRIM_THRESHOLD = -1  # glibc malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 2**20  # glibc's largest (DEFAULT_MMAP_THRESHOLD_MAX on 64-bit)
TRIM_THRESHOLD = 512 * 2**20

_NOT_ASKED: dict[str, Any] = {"tuned": False, "why": "not asked"}
_state: dict[str, Any] = dict(_NOT_ASKED)


def tune_host_malloc() -> dict[str, Any]:
    """Raise glibc's mmap and trim thresholds for this process (once); what was done."""
    global _state
    if _state == _NOT_ASKED:
        _state = _tune()
    return dict(_state)


def host_malloc() -> dict[str, Any]:
    """What :func:`tune_host_malloc` did in this process (``tuned`` False if not called)."""
    return dict(_state)


def _tune() -> dict[str, Any]:
    if os.environ.get(HOST_MALLOC_ENV, "").strip().lower() in ("off", "0", "no", "false"):
        return {"tuned": False, "why": f"{HOST_MALLOC_ENV}=off"}
    libc_name, _ = platform.libc_ver()
    if libc_name != "glibc":
        return {"tuned": False, "why": f"not glibc ({libc_name or 'unknown libc'})"}
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError) as exc:
        return {"tuned": False, "why": f"no mallopt ({exc})"}
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    settings: dict[str, Any] = {"tuned": True}
    for key, param, value, env in (
            ("mmap_threshold", M_MMAP_THRESHOLD, MMAP_THRESHOLD, "MALLOC_MMAP_THRESHOLD_"),
            ("trim_threshold", M_TRIM_THRESHOLD, TRIM_THRESHOLD, "MALLOC_TRIM_THRESHOLD_")):
        if env in os.environ:  # glibc read it at start-up: the user's choice stands
            settings[key] = f"{env}={os.environ[env]}"
        elif mallopt(param, value) == 1:
            settings[key] = value
        else:
            return {"tuned": False, "why": f"mallopt refused {key}={value}"}
    return settings
