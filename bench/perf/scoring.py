"""The ``scoring`` section: 100 pruning rounds of PX (on its 100-image pruning set), PX-clean
and SynFlow on ResNet-20, each method taken from the registry and scored through its
``importance`` hook as a run would."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from bench.api import PRUNING_IMAGES_PER_CLASS, Recipe, RunContext, RunSpec, prune
from bench.data import DeviceData
from bench.models import build_model
from bench.perf.timing import PerfConfig, repeat, summary
from bench.registry import get_method
from bench.store import RunStore

SCORERS = ("px", "px-clean", "synflow")
DENSITY = 0.02


def scorer(name: str, model: nn.Module, data: DeviceData, cfg: PerfConfig
           ) -> Callable[[nn.Module], Any]:
    """``name``'s pruning score as :func:`bench.pruning.prune` calls it, in a context of seed
    0 (the pruning set of seed 0) that trains and stores nothing."""
    cls = get_method(name)
    method = cls(cls.Hparams())
    spec = RunSpec(method=name, model="resnet20", dataset=data.info.name, density=DENSITY,
                   seed=0, recipe=Recipe())
    ctx = RunContext(spec=spec, model=model, data=data, recipe=spec.recipe,
                     options=cfg.options, store=RunStore(Path(".")))  # scoring writes nothing
    return lambda m: method.importance(m, ctx)


def scoring_rows(cfg: PerfConfig, data: DeviceData) -> list[dict[str, Any]]:
    """Seconds for ``scoring_rounds`` rounds of PX (100 images), PX-clean and SynFlow."""
    rows = []
    repeats = cfg.repeats if cfg.device.type == "cuda" else 1
    for name in SCORERS:
        def run(name: str = name) -> None:
            model = build_model("resnet20", data.num_classes, seed=0).to(cfg.device)
            prune(model, scorer(name, model, data, cfg), DENSITY, cfg.scoring_rounds)

        samples = repeat(run, cfg.device, 1, repeats)
        images = (PRUNING_IMAGES_PER_CLASS * data.num_classes
                  if getattr(get_method(name), "uses_pruning_set", False) else 0)
        rows.append({"method": name, "rounds": cfg.scoring_rounds, "images": images,
                     **summary(samples, 1)})
    return rows
