"""Speed figures measured by a script, never by a timed unit test: ``python -m bench.perf``.

Prints a table with the device name and writes it to ``results/perf/<device>.json``.
Now: the cost of masked layers (fixed mask, top-k scores) over plain dense layers in one
training step (forward + backward + optimiser) of ResNet-20. Timing: warm-up steps, then
the median over repeats (CUDA events on a GPU, perf_counter on CPU).
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tabulate import tabulate
from torch import nn

from bench.engine import EngineOptions, autocast, prepare_model
from bench.masking import trainable_parameters
from bench.models import build_model, prunable_layers


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu-{platform.machine()}-{torch.get_num_threads()}threads"


def time_step(step: Callable[[], None], device: torch.device, warmup: int, repeats: int,
              per_repeat: int) -> float:
    """Median seconds of one call of ``step`` over ``repeats`` timings of ``per_repeat`` calls."""
    for _ in range(warmup):
        step()
    samples = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(per_repeat):
                step()
            end.record()
            torch.cuda.synchronize(device)
            samples.append(start.elapsed_time(end) / 1000 / per_repeat)
        else:
            t0 = time.perf_counter()
            for _ in range(per_repeat):
                step()
            samples.append((time.perf_counter() - t0) / per_repeat)
    return statistics.median(samples)


def masked_variant(kind: str, width: float, seed: int = 0) -> nn.Module:
    """ResNet-20 with plain weights, a fixed 10% mask, or top-k scores at 50%."""
    model = build_model("resnet20", 10, seed=seed, width=width)
    g = torch.Generator().manual_seed(seed)
    for _, layer in prunable_layers(model):
        if kind == "fixed-mask":
            layer.set_mask(torch.rand(layer.weight.shape, generator=g) < 0.1)
        elif kind == "topk-scores":
            layer.weight.requires_grad_(False)
            layer.use_scores(0.5, g)
    return model


def masked_overhead(device: torch.device, batch: int, width: float, repeats: int
                    ) -> list[dict[str, Any]]:
    """Seconds per training step for dense, fixed-mask and top-k models, and their ratios."""
    options = EngineOptions(device=device)
    x = torch.randn(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    if options.cuda:
        x = x.contiguous(memory_format=torch.channels_last)
    rows = []
    for kind in ("dense", "fixed-mask", "topk-scores"):
        model = prepare_model(masked_variant(kind, width), options).train()
        opt = torch.optim.SGD(trainable_parameters(model), lr=0.01, momentum=0.9)

        def step(model: nn.Module = model, opt: torch.optim.Optimizer = opt) -> None:
            with autocast(options):
                loss = F.cross_entropy(model(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        per_repeat = 20 if options.cuda else 3
        seconds = time_step(step, device, warmup=5 if options.cuda else 2, repeats=repeats,
                            per_repeat=per_repeat)
        rows.append({"model": f"resnet20 x{width:g}", "layers": kind, "batch": batch,
                     "seconds_per_step": seconds})
    dense = rows[0]["seconds_per_step"]
    for row in rows:
        row["vs_dense"] = row["seconds_per_step"] / dense
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.perf",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("results/perf"))
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    name = device_name(device)
    rows = masked_overhead(device, args.batch, args.width, args.repeats)
    print(f"device: {name}; torch {torch.__version__}")
    print(tabulate(rows, headers="keys", floatfmt=".4f"))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / (re.sub(r"[^A-Za-z0-9_.-]+", "-", name) + ".json")
    payload = {"device": name, "torch": torch.__version__, "masked_overhead": rows}
    path.write_text(json.dumps(payload, indent=1) + "\n")
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
