"""The plugin surface: everything a pruning method may use, and the only bench module it imports.

A method subclasses :class:`Method` (or :class:`PruneAtInit` / :class:`MaskLearner`), declares
its hyperparameters as a frozen dataclass, and is made available with :func:`register`. It gets a
:class:`RunContext` (model, data, recipe, the one training engine) and reports what it spends
besides the final training in ``ctx.search`` (:class:`SearchCost`). Names are grouped below by
what they are for; anything not listed here is the suite's own business and may change.
"""

from __future__ import annotations

# the contract: registration, hyperparameters, what a run gives and records
from bench.context import FINAL_PHASE, RunContext, SearchCost
from bench.counts import KeptRounding, erk_densities, fan_in, kept_count, pruned_count
from bench.data import mix_seed
from bench.errors import BenchError
from bench.metrics import PaperFormula, mask_bitmap_bytes

# the model zoo's structure a method may rely on
from bench.models import (
    PRUNABLE_TYPES,
    PrunableConv2d,
    PrunableLinear,
    classifier_name,
    prunable_layers,
    shortcut_norm_names,
)
from bench.models.masked_weights import RandomWeights
from bench.models.resnet import ShortcutA
from bench.models.vit import VisionTransformer

# the shared pruning machinery: scores, cuts, schedules, masks, rewinding
from bench.pruning import (
    CUTS,
    PRUNING_BATCH_SIZE,
    PRUNING_IMAGES_PER_CLASS,
    Cut,
    Importance,
    PruneAtInit,
    PruneAtInitHparams,
    Scope,
    apply_masks,
    exponential_schedule,
    prune,
    pruning_batches,
    rewind,
    scoring_copy,
    select_masks,
    training_batches,
    weight_gradients,
)
from bench.recipe import Recipe
from bench.registry import Method, NoHparams, register
from bench.store import RunSpec
from bench.supermasks import MaskLearner

__all__ = [
    "CUTS", "FINAL_PHASE", "PRUNABLE_TYPES", "PRUNING_BATCH_SIZE", "PRUNING_IMAGES_PER_CLASS",
    "BenchError", "Cut", "KeptRounding", "MaskLearner", "Method", "NoHparams", "PaperFormula",
    "PrunableConv2d", "PrunableLinear", "PruneAtInit", "PruneAtInitHparams", "RandomWeights",
    "Recipe", "RunContext", "RunSpec", "Scope", "Importance", "SearchCost", "ShortcutA",
    "VisionTransformer", "apply_masks", "classifier_name", "erk_densities",
    "exponential_schedule", "fan_in",
    "kept_count", "mask_bitmap_bytes", "mix_seed", "prunable_layers", "prune", "pruned_count",
    "pruning_batches", "register", "rewind", "scoring_copy", "select_masks",
    "shortcut_norm_names", "training_batches", "weight_gradients",
]
