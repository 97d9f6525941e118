"""glibc's allocator tuning (bench.hostmem): what it sets, when it leaves glibc alone, and
that the thresholds take effect.

The module keeps what it did in process state (``_state``): the in-process tests reset it
and stand in a fake libc, so this process's allocator is never changed; the real mallopt
runs in subprocesses, which also show its effect (where a 24 MiB block comes from).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from bench import hostmem
from bench.hostmem import (
    HOST_MALLOC_ENV,
    M_MMAP_THRESHOLD,
    M_TRIM_THRESHOLD,
    MMAP_THRESHOLD,
    TRIM_THRESHOLD,
    host_malloc,
    tune_host_malloc,
)

ROOT = Path(__file__).resolve().parents[1]
USER_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
BLOCK = 24 * 2**20  # above glibc's default mmap threshold, below the tuned one
glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="needs glibc")

# ---------------------------------------------------------------------------- in process


class FakeMallopt:
    """Records each call; answers ``result`` (glibc: 1 when the setting is taken)."""

    def __init__(self, result: int = 1) -> None:
        self.result = result
        self.calls: list[tuple[int, int]] = []
        self.argtypes = self.restype = None

    def __call__(self, param: int, value: int) -> int:
        self.calls.append((param, value))
        return self.result


class FakeLibc:
    def __init__(self, result: int = 1) -> None:
        self.mallopt = FakeMallopt(result)


@pytest.fixture
def fresh(monkeypatch) -> pytest.MonkeyPatch:
    """Nothing asked yet in this process, no user or bench setting in the environment."""
    monkeypatch.setattr(hostmem, "_state", dict(hostmem._NOT_ASKED))
    for name in (HOST_MALLOC_ENV, *USER_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(hostmem.platform, "libc_ver", lambda *a, **k: ("glibc", "2.36"))
    return monkeypatch


def use_libc(monkeypatch: pytest.MonkeyPatch, libc: object) -> list[str]:
    """Make loading libc give ``libc`` (an exception is raised); the names asked for."""
    loaded: list[str] = []

    def cdll(name: str, *args, **kwargs):
        loaded.append(name)
        if isinstance(libc, BaseException):
            raise libc
        return libc

    monkeypatch.setattr(hostmem.ctypes, "CDLL", cdll)
    return loaded


def test_glibc_gets_both_thresholds_raised_once(fresh):
    libc = FakeLibc()
    loaded = use_libc(fresh, libc)
    assert host_malloc() == {"tuned": False, "why": "not asked"}
    done = tune_host_malloc()
    assert done == {"tuned": True, "mmap_threshold": MMAP_THRESHOLD,
                    "trim_threshold": TRIM_THRESHOLD}
    assert libc.mallopt.calls == [(M_MMAP_THRESHOLD, 32 * 2**20), (M_TRIM_THRESHOLD, 512 * 2**20)]
    assert (M_MMAP_THRESHOLD, M_TRIM_THRESHOLD) == (-3, -1)  # glibc's malloc.h
    assert len(loaded) == 1
    assert host_malloc() == done
    done["tuned"] = False  # the caller's copy: the process state is not changed through it
    fresh.setenv(HOST_MALLOC_ENV, "off")
    assert tune_host_malloc() == host_malloc() == {"tuned": True, "mmap_threshold": MMAP_THRESHOLD,
                                                   "trim_threshold": TRIM_THRESHOLD}
    assert len(libc.mallopt.calls) == 2 and len(loaded) == 1  # once per process


@pytest.mark.parametrize("value", ["off", "OFF", " off ", "0", "no", "false", "False"])
def test_bench_host_malloc_off_leaves_glibc_alone(fresh, value):
    loaded = use_libc(fresh, AssertionError("libc must not be loaded"))
    fresh.setenv(HOST_MALLOC_ENV, value)
    assert tune_host_malloc() == {"tuned": False, "why": "BENCH_HOST_MALLOC=off"}
    assert host_malloc() == {"tuned": False, "why": "BENCH_HOST_MALLOC=off"}
    assert loaded == []


@pytest.mark.parametrize("value", ["", "on", "1", "offf"])
def test_other_bench_host_malloc_values_tune(fresh, value):
    libc = FakeLibc()
    use_libc(fresh, libc)
    fresh.setenv(HOST_MALLOC_ENV, value)
    assert tune_host_malloc()["tuned"] is True
    assert len(libc.mallopt.calls) == 2


def test_a_users_mmap_threshold_is_reported_as_theirs_and_left_alone(fresh):
    libc = FakeLibc()
    use_libc(fresh, libc)
    fresh.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert tune_host_malloc() == {"tuned": True,
                                  "mmap_threshold": "MALLOC_MMAP_THRESHOLD_=65536",
                                  "trim_threshold": TRIM_THRESHOLD}
    assert libc.mallopt.calls == [(M_TRIM_THRESHOLD, TRIM_THRESHOLD)]  # theirs not overridden


def test_both_user_thresholds_are_reported_and_mallopt_is_not_called(fresh):
    libc = FakeLibc()
    use_libc(fresh, libc)
    fresh.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    fresh.setenv("MALLOC_TRIM_THRESHOLD_", "0")
    assert tune_host_malloc() == {"tuned": True,
                                  "mmap_threshold": "MALLOC_MMAP_THRESHOLD_=131072",
                                  "trim_threshold": "MALLOC_TRIM_THRESHOLD_=0"}
    assert libc.mallopt.calls == []


def test_a_refused_setting_is_reported_not_tuned(fresh):
    libc = FakeLibc(result=0)
    use_libc(fresh, libc)
    assert tune_host_malloc() == {"tuned": False,
                                  "why": f"mallopt refused mmap_threshold={MMAP_THRESHOLD}"}
    assert libc.mallopt.calls == [(M_MMAP_THRESHOLD, MMAP_THRESHOLD)]  # stops at the first


@pytest.mark.parametrize("libc_ver,why", [(("", ""), "not glibc (unknown libc)"),
                                          (("musl", "1.2.4"), "not glibc (musl)")])
def test_another_libc_is_left_alone(fresh, libc_ver, why):
    fresh.setattr(hostmem.platform, "libc_ver", lambda *a, **k: libc_ver)
    loaded = use_libc(fresh, AssertionError("libc must not be loaded"))
    assert tune_host_malloc() == {"tuned": False, "why": why}
    assert loaded == []


def test_a_libc_without_mallopt_is_reported(fresh):
    use_libc(fresh, OSError("libc.so.6: cannot open shared object file"))
    done = tune_host_malloc()
    assert done["tuned"] is False
    assert done["why"] == "no mallopt (libc.so.6: cannot open shared object file)"


# ---------------------------------------------------------------------------- real glibc

PROBE = f"""
import ctypes, ctypes.util, json
from bench.hostmem import host_malloc, tune_host_malloc

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
before = host_malloc()
done = tune_host_malloc()
mapped = libc.mallinfo2().hblkhd
block = libc.malloc({BLOCK})
mapped = libc.mallinfo2().hblkhd - mapped  # bytes the block took as its own mapping
libc.free(block)
print(json.dumps({{"before": before, "done": done, "mapped": mapped}}))
"""


def probe(**env: str) -> dict:
    """Tune in a new process (environment ``env``); what it did and where a block came from."""
    environ = {k: v for k, v in os.environ.items() if k not in (HOST_MALLOC_ENV, *USER_ENV)}
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env={**environ, **env},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@glibc_only
def test_real_glibc_tuned_keeps_big_blocks_in_the_heap():
    off = probe(BENCH_HOST_MALLOC="off")
    assert off["before"] == {"tuned": False, "why": "not asked"}
    assert off["done"] == {"tuned": False, "why": "BENCH_HOST_MALLOC=off"}
    assert off["mapped"] >= BLOCK  # glibc as it is: a block this size is mapped on its own
    tuned = probe()
    assert tuned["before"] == {"tuned": False, "why": "not asked"}
    assert tuned["done"] == {"tuned": True, "mmap_threshold": MMAP_THRESHOLD,
                             "trim_threshold": TRIM_THRESHOLD}
    assert tuned["mapped"] == 0  # from the heap, where the next step finds it again


@glibc_only
def test_real_glibc_keeps_a_users_mmap_threshold():
    theirs = probe(MALLOC_MMAP_THRESHOLD_="65536")
    assert theirs["done"] == {"tuned": True, "mmap_threshold": "MALLOC_MMAP_THRESHOLD_=65536",
                              "trim_threshold": TRIM_THRESHOLD}
    assert theirs["mapped"] >= BLOCK  # their 64 KiB threshold stands: the block is mapped
