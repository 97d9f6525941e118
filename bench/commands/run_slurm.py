"""``bench run --executor slurm``: the grid's unfinished runs as one Slurm job array, through
submitit. Each array task is an in-process worker on the shared store: it claims runs until
none is left, so an array may have more or fewer tasks than runs. A task preempted or at its
time limit gets submitit's signal, saves like Ctrl-C and is requeued; its run resumes from
the last epoch's checkpoint, in whichever task claims it next.
"""

from __future__ import annotations

import argparse
import copy
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.commands.follow import follow
from bench.commands.run_setup import prepare, record_manifest
from bench.commands.run_summary import followed_exit
from bench.defaults import EXIT_INTERRUPTED
from bench.errors import BenchError
from bench.wording import counted

DEFAULT_TIME_LIMIT = 240  # minutes per task
TIMEOUT_REQUEUES = 10  # a task reaching its time limit is requeued this often at most
LIVE_STATES = "PENDING,RUNNING,SUSPENDED,COMPLETING,CONFIGURING,REQUEUED,RESIZING"

try:  # the callable class submitit pickles; without submitit, --executor slurm says so
    from submitit.helpers import Checkpointable
except ImportError:  # pragma: no cover - submitit is a dependency
    Checkpointable = object  # type: ignore[assignment,misc]


class SlurmWorker(Checkpointable):
    """One array task: ``bench run`` with the submitted options, in-process, as a worker of
    grid ``grid``. Checkpointable: on submitit's signal it is requeued with what it holds."""

    def __init__(self, argv: list[str], grid: str) -> None:
        self.argv, self.grid = list(argv), grid

    def __call__(self, task: int) -> int:
        from bench.commands.run_inprocess import run_here

        _StopSignals().install()
        from bench.commands.run_options import add_arguments

        parser = argparse.ArgumentParser(prog="bench run (slurm worker)")
        add_arguments(parser)
        args = parser.parse_args(self.argv)
        args.argv, args.executor, args.worker_of, args.no_progress = (
            self.argv, "inprocess", self.grid, True)
        return run_here(args)


class _StopSignals:
    """A task's stop signals, each handled once: submitit's USR2 (time limit or preemption:
    checkpoint, requeue, exit) and Slurm's SIGTERM (scancel, preemption without USR2), which
    submitit ignores and we turn into Ctrl-C, so the run saves and frees its claim before
    the SIGKILL that follows. Once one has begun, later ones (the requeue's own SIGTERM) must
    not interrupt the saving."""

    def __init__(self) -> None:
        self.stopping = False

    def install(self) -> None:
        requeue = signal.getsignal(signal.SIGUSR2)  # submitit's, set before our call

        def on_usr2(signum: int, frame: Any) -> None:
            if not self.stopping:
                self.stopping = True
                try:
                    if callable(requeue):
                        requeue(signum, frame)  # exits once requeued
                except Exception as exc:  # not requeued (timed out too often): save, stop
                    raise KeyboardInterrupt(str(exc)) from exc

        def on_term(signum: int, _frame: Any) -> None:
            if not self.stopping:
                self.stopping = True
                raise KeyboardInterrupt(f"signal {signum}")

        signal.signal(signal.SIGUSR2, on_usr2)
        signal.signal(signal.SIGTERM, on_term)


def slurm_parameters(args: argparse.Namespace, tasks: int, name: str) -> dict[str, Any]:
    """submitit's SlurmExecutor parameters from the command line."""
    gpus = args.gpus_per_task
    if gpus is None:
        gpus = 1 if (args.device or "").startswith("cuda") else 0
    extra = dict(item.split("=", 1) for item in args.sbatch or [])
    params: dict[str, Any] = {
        "job_name": name, "time": args.time_limit or DEFAULT_TIME_LIMIT,
        "cpus_per_task": args.cpus_per_task or (4 if gpus else 1), "ntasks_per_node": 1,
        "nodes": 1, "array_parallelism": args.array_parallelism or tasks,
        "additional_parameters": {k.strip(): v.strip() for k, v in extra.items()},
    }
    if gpus:
        params["gpus_per_task"] = gpus
    if args.partition:
        params["partition"] = args.partition
    return params


def array_alive(job_id: str) -> bool:
    """Whether any task of array ``job_id`` is still queued or running (squeue)."""
    done = subprocess.run(["squeue", "-h", "-j", job_id, "-t", LIVE_STATES, "-o", "%i"],
                          capture_output=True, text=True, timeout=60)
    return done.returncode == 0 and bool(done.stdout.strip())


def _unfinished(setup: Any) -> list[Any]:
    from bench.harness.records import reusable, stored_record

    quiet = lambda _message: None  # noqa: E731 - the workers announce what they redo
    return [s for s in setup.specs
            if not reusable(setup.store, s, stored_record(setup.store, s, quiet), quiet)]


def submit(args: argparse.Namespace) -> int:
    """Check the grid here (on CPU), submit its unfinished runs as one array, and return,
    or with ``--wait`` follow the array until the grid is done."""
    try:
        import submitit
    except ImportError:
        raise BenchError("--executor slurm needs submitit: pip install submitit") from None
    if shutil.which("sbatch") is None:
        raise BenchError("--executor slurm: no sbatch on PATH (is this a Slurm login node?)")
    here = copy.copy(args)
    here.device = "cpu"  # a login node may have no GPU: the workers use --device themselves
    setup = prepare(here)
    todo = _unfinished(setup)
    if not todo:
        print(f"all {counted(len(setup.specs), 'run')} are already in {setup.store.root}; "
              "nothing to submit")
        return 0
    from bench.harness.manifest import grid_id

    gid = grid_id(setup.specs)
    tasks = args.array_tasks or len(todo)
    folder = Path(args.slurm_folder or setup.store.root / "_slurm" / gid)
    executor = submitit.SlurmExecutor(folder=str(folder), max_num_timeout=TIMEOUT_REQUEUES)
    executor.update_parameters(**slurm_parameters(args, tasks, f"bench-{gid}"))
    jobs = executor.map_array(SlurmWorker(args.argv, gid), range(tasks))
    array = str(jobs[0].job_id).split("_")[0]
    manifest = record_manifest(setup, args, {"kind": "slurm", "job_id": array, "tasks": tasks,
                                             "folder": str(folder)}, None)
    print(f"{counted(len(setup.specs), 'run')}, {len(todo)} to train, "
          f"results in {setup.store.root}")
    print(f"submitted Slurm array {array}: {tasks} tasks (grid {gid}; logs in {folder})")
    print(f"follow: python -m bench status --results {setup.store.root}   cancel: scancel {array}")
    if not args.wait:
        return 0
    try:
        states = follow(setup.store, manifest, setup.specs, lambda: array_alive(array),
                        progress=not args.no_progress)
    except KeyboardInterrupt:  # only the following stops: the array is the cluster's now
        print(f"stopped following; array {array} goes on (bench status to look, scancel "
              f"{array} to stop it)", file=sys.stderr)
        return EXIT_INTERRUPTED
    return followed_exit(states, f"array {array} has ended; rerun the same command to "
                         "submit them again")
