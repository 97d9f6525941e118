"""``bench run``'s executor options: in this process, local worker processes, or a Slurm
job array; each option refused where its executor is not the one asked for."""

from __future__ import annotations

import argparse

from bench.errors import BenchError

EXECUTORS = ("inprocess", "local", "slurm")
# option dest -> the executor it belongs to, for one clear error when given to another
_OWNED = {"workers": "local", "devices": "local", "partition": "slurm",
          "gpus_per_task": "slurm", "cpus_per_task": "slurm", "time_limit": "slurm",
          "array_tasks": "slurm", "array_parallelism": "slurm", "sbatch": "slurm",
          "slurm_folder": "slurm", "wait": "slurm"}


def add_executor_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the grid's runs train (README, "Clusters")."""
    group = parser.add_argument_group("executor")
    arg = group.add_argument
    arg("--executor", choices=EXECUTORS, default="inprocess",
        help="inprocess: train here (default); local: --workers processes on this machine; "
        "slurm: submit one job array and return")
    arg("--workers", type=int, help="local: worker processes (default: one per device in "
        "--devices, else 2)")
    arg("--devices", help="local: comma-separated devices, one per worker in turn "
        "(e.g. cuda:0,cuda:1; default --device)")
    arg("--partition", help="slurm: the partition to submit to")
    arg("--gpus-per-task", type=int, help="slurm: GPUs per array task (default 1 with a "
        "CUDA --device, else 0)")
    arg("--cpus-per-task", type=int, help="slurm: CPUs per array task (default 4 on GPU, "
        "else 1); the task's torch threads")
    arg("--time-limit", type=int, help="slurm: minutes per array task (default 240); a task "
        "stopped at its limit checkpoints and requeues")
    arg("--array-tasks", type=int, help="slurm: tasks in the array (default: the runs "
        "left to train); each task trains runs until none is left")
    arg("--array-parallelism", type=int, help="slurm: tasks running at once (default all)")
    arg("--sbatch", action="append", metavar="KEY=VALUE",
        help="slurm: an extra sbatch parameter, e.g. --sbatch mem=16G (repeatable)")
    arg("--slurm-folder", help="slurm: where submitit keeps job files and logs (default "
        "<results>/_slurm/<grid id>)")
    arg("--wait", action="store_true",
        help="slurm: follow the array until the grid is done, with one progress bar")
    arg("--worker-of", help=argparse.SUPPRESS)  # set by the executors for their workers


def check_executor_options(args: argparse.Namespace) -> None:
    """One error line for an option of another executor or a value out of range."""
    if args.worker_of is not None:  # a worker: its launcher checked them
        return
    for dest, owner in _OWNED.items():
        value = getattr(args, dest, None)
        if value not in (None, False) and args.executor != owner:
            flag = "--" + dest.replace("_", "-")
            raise BenchError(f"{flag} belongs to --executor {owner}, not {args.executor}")
    for dest in ("workers", "gpus_per_task", "cpus_per_task", "time_limit", "array_tasks",
                 "array_parallelism"):
        value = getattr(args, dest, None)
        low = 0 if dest == "gpus_per_task" else 1
        if value is not None and value < low:
            raise BenchError(f"--{dest.replace('_', '-')} must be at least {low}, got {value}")
    for item in args.sbatch or []:
        if "=" not in item or not item.split("=", 1)[0].strip():
            raise BenchError(f"--sbatch takes KEY=VALUE (an sbatch long option without its "
                             f"dashes), got {item!r}")
