"""``bench run --executor local``: the grid over N worker processes of this machine.

Each worker is ``bench run`` itself on the same grid (``--executor inprocess``), with its own
device from ``--devices`` in turn and its share of the CPUs as torch threads; the workers
meet in the store through their run claims, and this process follows them.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from bench.commands.follow import follow
from bench.commands.run_setup import RunSetup, prepare, record_manifest
from bench.commands.run_summary import followed_exit
from bench.defaults import resolve_device
from bench.errors import BenchError, printable
from bench.wording import counted

STOP_SECONDS = 30.0  # a worker's grace to save after SIGTERM before it is killed


def worker_devices(args: argparse.Namespace) -> list[str]:
    """The devices the workers take in turn: ``--devices``, else ``--device``'s."""
    import torch

    if args.devices:
        names = [d.strip() for d in args.devices.split(",") if d.strip()]
        if not names:
            raise BenchError("--devices is empty; give e.g. cuda:0,cuda:1")
        return [str(resolve_device(name)) for name in names]
    device = resolve_device(args.device)
    if device.type == "cuda" and device.index is None:
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return [str(device)]


def worker_count(args: argparse.Namespace, devices: list[str]) -> int:
    """``--workers``, else one per GPU, else two on CPU."""
    if args.workers is not None:
        return args.workers
    return len(devices) if devices[0].startswith("cuda") else 2


def worker_command(args: argparse.Namespace, grid: str, device: str, threads: int) -> list[str]:
    """This command again, as one in-process worker of grid ``grid`` (later options win)."""
    return [sys.executable, "-m", "bench", "run", *args.argv, "--executor", "inprocess",
            "--worker-of", grid, "--device", device, "--threads", str(threads), "--no-progress"]


def _start(args: argparse.Namespace, setup: RunSetup, grid: str, devices: list[str],
           n: int) -> list[tuple[subprocess.Popen[bytes], Path]]:
    logs = setup.store.root / "_workers" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    started = []
    for i in range(n):
        name = f"local-{i}"
        env = {**os.environ, "BENCH_WORKER": name, "OMP_NUM_THREADS": str(setup.threads)}
        log = logs / f"{grid}-{name}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(worker_command(args, grid, devices[i % len(devices)],
                                                   setup.threads),
                                    stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=env)
        started.append((proc, log))
    return started


def _alive(procs: list[tuple[subprocess.Popen[bytes], Path]]) -> bool:
    """Whether any worker still runs; reaps every one that ended (a zombie holds its claims
    until reaped)."""
    return any([proc.poll() is None for proc, _ in procs])


def _stop(procs: list[tuple[subprocess.Popen[bytes], Path]], grace: float = 0.0) -> None:
    """Give the workers ``grace`` seconds to end, SIGTERM the rest (each saves like Ctrl-C),
    then kill what is left."""
    for proc, _ in procs:
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    for proc, _ in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc, _ in procs:
        try:
            proc.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_local(args: argparse.Namespace) -> int:
    """Start the workers, follow the grid with one bar, say how each worker ended."""
    from bench.estimate import estimate_grid

    devices = worker_devices(args)
    n = worker_count(args, devices)
    setup = prepare(args, workers=n)
    estimate = estimate_grid(setup.specs, setup.store, setup.data, setup.options)
    manifest = record_manifest(setup, args, {"kind": "local", "workers": n,
                                             "devices": devices}, estimate)
    print(f"{counted(len(setup.specs), 'run')}, preset {args.preset}, "
          f"results in {setup.store.root}")
    print(f"{estimate.line()} in one process; {n} workers share it "
          f"({', '.join(devices)}; {setup.threads} threads each), grid {manifest.id}")
    procs = _start(args, setup, manifest.id, devices, n)
    try:
        states = follow(setup.store, manifest, setup.specs, lambda: _alive(procs),
                        progress=setup.options.progress)
    except KeyboardInterrupt:
        _stop(procs)
        raise
    _stop(procs, grace=STOP_SECONDS)
    return _report(procs, states)


def _report(procs: list[tuple[subprocess.Popen[bytes], Path]], states: list[str]) -> int:
    """How each worker ended, the grid's last line; exit 1 where runs failed or were left."""
    for i, (proc, log) in enumerate(procs):
        if proc.returncode not in (0, 1):
            print(f"warning: worker local-{i} ended with status {proc.returncode}"
                  f"{_last_error(log)}; its log: {log}", file=sys.stderr)
    return followed_exit(states, "no worker is left; rerun the same command to resume them")


def _last_error(log: Path) -> str:
    """``: <its error line>`` from a worker's log (a full disk, say), or nothing."""
    try:
        lines = log.read_text(errors="replace").splitlines()[-20:]
    except OSError:
        return ""
    errors = [line for line in lines if line.startswith("error: ")]
    return f" ({printable(errors[-1])})" if errors else ""
