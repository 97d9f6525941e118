"""ProsPr's memory against its unrolled steps M: the peak memory one scoring call adds, on
VGG-16 by default (the issue's check: the graph of every unrolled step and its backward is
kept for the double backward, so memory grows with M).

``python -m bench.perf.prospr_memory --data-dir DIR [--model vgg16] [--steps 0,1,2,3,5]``
prints one row per M. On CPU each M runs in a fresh process and the figure is its peak
resident memory (``VmHWM``, reset after the model and batch are built) over its resident
memory before scoring; on CUDA it is the allocator's peak over what was allocated before.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from tabulate import tabulate

from bench.api import Recipe, RunContext, RunSpec
from bench.engine import EngineOptions
from bench.harness.data_cache import DataCache
from bench.models import build_model
from bench.provenance import cpu_flags, set_threads
from bench.registry import get_method, load_plugins
from bench.store import RunStore

MIB = 2**20


def _proc_kib(field: str) -> int:
    """A ``/proc/self/status`` memory field (``VmRSS``, ``VmHWM``) in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def measure(model_name: str, steps: int, batch_size: int, device: torch.device,
            data_dir: Path) -> dict:
    """One scoring call of the registered ``prospr`` at M = ``steps`` on a training batch of
    ``batch_size`` (seed 0), as a run scores: added peak MiB and seconds."""
    load_plugins()
    cls = get_method("prospr")
    method = cls(cls.Hparams(steps=steps, batch_size=batch_size))
    train = 10 * -(-2 * batch_size // 10)  # class-balanced, two batches' worth
    data = DataCache(data_dir, device, download=False).get("cifar10", train, 100)
    model = build_model(model_name, data.num_classes, seed=0).to(device)
    spec = RunSpec(method="prospr", model=model_name, dataset="cifar10", density=0.1, seed=0,
                   recipe=Recipe())
    ctx = RunContext(spec=spec, model=model, data=data, recipe=spec.recipe,
                     options=EngineOptions(device=device), store=RunStore(Path(".")))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    else:
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
        before = _proc_kib("VmRSS") * 1024
    t0 = time.perf_counter()
    method.importance(model, ctx)  # scoring writes nothing: the store is never touched
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device)
    else:
        peak = _proc_kib("VmHWM") * 1024
    return {"M": steps, "added peak MiB": round((peak - before) / MIB),
            "seconds": round(time.perf_counter() - t0, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="vgg16")
    parser.add_argument("--steps", default="0,1,2,3,5", help="values of M, comma-separated")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-dir", type=Path, required=True,
                        help="a folder with cifar-10-batches-py")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child's single M
    args = parser.parse_args(argv)
    set_threads(args.threads)
    device = torch.device(args.device)
    if args.one is not None:
        print(json.dumps(measure(args.model, args.one, args.batch_size, device, args.data_dir)))
        return 0
    rows = []
    for m in (int(s) for s in args.steps.split(",")):
        if device.type == "cuda":
            rows.append(measure(args.model, m, args.batch_size, device, args.data_dir))
            continue
        child = subprocess.run(  # a fresh process: no memory left over from the last M
            [sys.executable, "-m", "bench.perf.prospr_memory", "--model", args.model,
             "--batch-size", str(args.batch_size), "--device", "cpu",
             "--data-dir", str(args.data_dir),
             "--threads", str(args.threads), "--one", str(m)],
            capture_output=True, text=True)
        if child.returncode != 0:
            print(f"error: M = {m}: {child.stderr.strip().splitlines()[-1]}", file=sys.stderr)
            return 1
        rows.append(json.loads(child.stdout.strip().splitlines()[-1]))
    where = (torch.cuda.get_device_name(device) if device.type == "cuda"
             else f"cpu ({' '.join(cpu_flags())}), {args.threads} thread(s)")
    print(f"ProsPr scoring memory, {args.model}, batch {args.batch_size}, float32, {where}")
    print(tabulate(rows, headers="keys"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
