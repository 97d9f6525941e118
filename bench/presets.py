"""Named recipes and experiment presets: the papers' protocols and the suite's own grids.

A preset is a grid (methods, models, datasets, densities, seeds) plus the recipe every
method trains its final model with; ``method_recipes`` gives some methods another named
recipe and ``method_densities`` other densities (e.g. the mask learners of ``pemn-resnet``
train with Edge-Popup's recipe at PEMN's keep ratio 0.5). Every CLI option of ``bench run``
overrides the preset; ``--budget-scale`` scales every recipe's epochs. ``quick`` is the
default.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from bench.errors import BenchError
from bench.recipe import Recipe, scaled_epochs

PEMN_KNOTS = ((0.0, 0.0), (0.4, 1.0), (0.8, 0.05), (1.0, 0.0))

RECIPES: dict[str, Recipe] = {
    # PX paper, ResNet-20 / CIFAR-10: SGD 0.1, x0.1 at 80 and 120 of 160 epochs. As the PX
    # authors' train_classification.py trains (tests/test_px_lockstep.py): the last partial
    # batch of an epoch trains too, biases start as torch's default (uniform).
    "px-resnet20": Recipe(epochs=160, batch_size=128, optimizer="sgd", lr=0.1, momentum=0.9,
                          weight_decay=1e-4, schedule="multistep", milestones=(80, 120),
                          drop_last=False, bias_init="uniform"),
    # PX paper, VGG-16 / CIFAR-100: SGD Nesterov 0.1, x0.1 at 60 and 120 of 160 epochs; the
    # authors' loop as for px-resnet20.
    "px-vgg16": Recipe(epochs=160, batch_size=128, optimizer="nesterov", lr=0.1, momentum=0.9,
                       weight_decay=5e-4, schedule="multistep", milestones=(60, 120),
                       drop_last=False, bias_init="uniform"),
    # Edge-Popup's CIFAR recipe: SGD 0.1 momentum 0.9, cosine, wd 5e-4, 100 epochs.
    "edge-popup": Recipe(epochs=100, batch_size=128, optimizer="sgd", lr=0.1, momentum=0.9,
                         weight_decay=5e-4, schedule="cosine"),
    # PEMN authors' ConvMixer recipe: AdamW 0.05, wd 0.005, batch 512, piecewise-linear, and
    # their augmentation: flip, RandAugment(2, 12), colour jitter 0.2, random erasing 0.2.
    "pemn-authors": Recipe(epochs=100, batch_size=512, optimizer="adamw", lr=0.05,
                           weight_decay=0.005, schedule="piecewise", knots=PEMN_KNOTS,
                           augment="pemn-authors"),
    "smoke": Recipe(epochs=2, batch_size=64, lr=0.05, weight_decay=5e-4),
    "quick": Recipe(epochs=20, batch_size=128, lr=0.1, weight_decay=5e-4),
}

PX_DENSITIES = tuple(round(0.8 ** (2 * i), 10) for i in range(1, 10))
# px-2024 is the paper's PX (the release that came with it); px (the authors' current code)
# and px-clean (the paper's equations) run beside it; NTK-SAP is in the paper's figure,
# SynFlow-L2 in its code.
PX_METHODS = ("random", "magnitude-init", "snip", "grasp", "synflow", "px-2024", "px",
              "px-clean", "ntk-sap", "synflow-l2")
# NTK-SAP's authors draw R = 5 networks per round on CIFAR-10 only, R = 1 elsewhere.
PX_VGG_METHODS = tuple("ntk-sap:draws=1" if m == "ntk-sap" else m for m in PX_METHODS)
# The newer pruning-at-initialisation baselines the field draws beside PX.
FIELD_BASELINES = ("ntk-sap", "synflow-l2", "iter-snip", "force", "prospr", "random-erk")
# Every pruning-at-initialisation method of the suite.
PAI_METHODS = ("random", "random-erk", "magnitude-init", "snip", "iter-snip", "grasp",
               "synflow", "synflow-l2", "force", "prospr", "ntk-sap", "px-2024", "px",
               "px-clean")
PEMN_VARIANTS = ("dense", "pemn-mask", "pemn-one-layer", "pemn-mp") + tuple(
    f"pemn-rp:ratio={r}" for r in ("0.1", "0.01", "0.001", "0.0001", "1e-05"))
MASK_LEARNERS = ("edge-popup", "pemn-mask", "pemn-one-layer", "pemn-mp", "pemn-rp")


@dataclass(frozen=True)
class Preset:
    """A named grid plus the recipe every method trains its final model with."""

    name: str
    description: str
    recipe: str
    models: tuple[str, ...] = ("resnet20",)
    datasets: tuple[str, ...] = ("cifar10",)
    densities: tuple[float, ...] = (0.5, 0.2, 0.1, 0.05, 0.02)
    seeds: tuple[int, ...] = (0,)
    methods: tuple[str, ...] = ("all",)
    method_recipes: dict[str, str] = field(default_factory=dict)
    method_densities: dict[str, tuple[float, ...]] = field(default_factory=dict)
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    train_subset: int | None = None
    test_subset: int | None = None
    # A reduced budget: every method's recipe at this many epochs (milestones scaled along).
    epochs: int | None = None
    # The paper preset this one is a reduced version of (``bench figures --paper --preset``).
    reduces: str | None = None
    # The precision training runs in on CUDA unless ``--precision`` says (None: the engine's
    # bfloat16): the PX presets train as the PX authors did, float16 with loss scaling.
    cuda_precision: str | None = None
    # Recipe fields this preset sets on every recipe it uses: a reduced preset whose committed
    # records were trained before its named recipe changed keeps their loop (and run keys).
    recipe_options: dict[str, Any] = field(default_factory=dict)

    @property
    def reduced_budget(self) -> bool:
        """Whether every method trains fewer epochs here than its recipe says."""
        return self.epochs is not None

    def recipe_for(self, method: str, scale: float = 1.0) -> Recipe:
        """The recipe ``method`` trains with in this preset (at the preset's ``epochs`` where
        it names a reduced budget), epochs scaled by ``scale``."""
        recipe = RECIPES[self.method_recipes.get(method, self.recipe)]
        if self.recipe_options:
            recipe = replace(recipe, **self.recipe_options)
        if self.reduced_budget:
            recipe = recipe.with_epochs(self.epochs)
        if scale != 1.0:
            recipe = recipe.with_epochs(scaled_epochs(recipe.epochs, scale))
        return recipe


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            name="smoke",
            description="every method in minutes on 2 CPU cores: ResNet-20, 2000/1000 "
            "CIFAR-10 images, 2 epochs, densities 0.5 and 0.2",
            recipe="smoke",
            densities=(0.5, 0.2),
            train_subset=2000,
            test_subset=1000,
        ),
        Preset(
            name="quick",
            description="a first look on one GPU: ResNet-20, full CIFAR-10, 20 epochs, "
            "densities 0.5 to 0.02, one seed",
            recipe="quick",
        ),
        Preset(
            name="px-cifar10-resnet20",
            description="PX paper Fig. 2: ResNet-20 / CIFAR-10, 160 epochs, nine sparsities "
            "36%-98.2%, three seeds",
            recipe="px-resnet20",
            densities=PX_DENSITIES,
            seeds=(0, 1, 2),
            methods=PX_METHODS,
            cuda_precision="float16",
        ),
        Preset(
            name="px-cifar100-vgg16",
            description="PX paper Fig. 2: VGG-16-BN / CIFAR-100, 160 epochs, nine sparsities, "
            "three seeds",
            recipe="px-vgg16",
            models=("vgg16",),
            datasets=("cifar100",),
            densities=PX_DENSITIES,
            seeds=(0, 1, 2),
            methods=PX_VGG_METHODS,
            cuda_precision="float16",
        ),
        Preset(
            name="pai-cifar10-resnet20",
            description="every pruning-at-initialisation method of the suite in one grid "
            "(random, random ERK, magnitude, SNIP, iterative SNIP, GraSP, SynFlow, "
            "SynFlow-L2, FORCE, ProsPr, NTK-SAP, the three PX): ResNet-20 / CIFAR-10, the "
            "PX recipe and nine sparsities 36%-98.2%, three seeds",
            recipe="px-resnet20",
            densities=PX_DENSITIES,
            seeds=(0, 1, 2),
            methods=PAI_METHODS,
            cuda_precision="float16",
        ),
        Preset(
            name="px-cifar10-resnet20-reduced",
            description="the suite's first real results: full CIFAR-10 / ResNet-20, dense, "
            "random, SNIP, SynFlow, px-2024, px-clean and the field's newer baselines "
            "(NTK-SAP, SynFlow-L2, iterative SNIP, FORCE, ProsPr, random ERK) at sparsities "
            "90% and 98% and pemn-mp (keep ratio 0.5, Edge-Popup's recipe), every recipe cut "
            "to 4 of its epochs (PX's 160, Edge-Popup's 100) and the loop its first records "
            "trained with (last partial batch dropped, zero biases), one seed. Its first "
            "twelve runs took 1 h 38 min on 2 CPU cores (AVX-512, 2 threads: about 8 minutes "
            "a run), so all 24 take about 3 h 20 min there",
            recipe="px-resnet20",
            densities=(0.1, 0.02),
            methods=("dense", "random", "snip", "synflow", "px-2024", "px-clean", "pemn-mp",
                     *FIELD_BASELINES),
            method_recipes={"pemn-mp": "edge-popup"},
            method_densities={"pemn-mp": (0.5,)},
            epochs=4,
            reduces="px-cifar10-resnet20",
            cuda_precision="float16",
            # results/px-cifar10-resnet20-reduced was trained before px-resnet20 took the PX
            # authors' loop (last partial batch, uniform biases); the preset keeps its loop.
            recipe_options={"drop_last": True, "bias_init": "zero"},
        ),
        Preset(
            name="pemn-convmixer",
            description="PEMN bars: ConvMixer-{256,512}/{6,8} on CIFAR-10, dense and every "
            "PEMN variant, keep ratio 0.5, the authors' recipe (100 epochs)",
            recipe="pemn-authors",
            models=("convmixer-256-6", "convmixer-256-8", "convmixer-512-6", "convmixer-512-8"),
            densities=(0.5,),
            methods=PEMN_VARIANTS,
        ),
        Preset(
            name="pemn-convmixer-reduced",
            description="PEMN bars on 2 CPU cores: ConvMixer-256/6 / CIFAR-10, dense and "
            "every PEMN variant at keep ratio 0.5, the authors' recipe and augmentation cut to "
            "1 of its 100 epochs over a class-balanced 20,000 of the 50,000 training images "
            "(39 steps of 512; tested on all 10,000). Why so small: one ConvMixer-256/6 step "
            "of 512 images took 15-45 s on one AVX2 core (2-core AMD EPYC, float32); its runs "
            "took 18 to 44 minutes each on one thread of that machine while the other core "
            "was busy, about 5 hours for the nine",
            recipe="pemn-authors",
            models=("convmixer-256-6",),
            densities=(0.5,),
            methods=PEMN_VARIANTS,
            train_subset=20000,
            epochs=1,
            reduces="pemn-convmixer",
        ),
        Preset(
            name="pemn-resnet",
            description="PEMN compression curves: ResNet-32/56 on CIFAR-10/100, random and "
            "magnitude at sparsity 90-96% against pemn-mp and pemn-rp 1e-1, 1e-2",
            recipe="px-resnet20",
            models=("resnet32", "resnet56"),
            datasets=("cifar10", "cifar100"),
            densities=(0.1, 0.08, 0.06, 0.04),
            methods=("random", "magnitude", "pemn-mp", "pemn-rp:ratio=0.1",
                     "pemn-rp:ratio=0.01"),
            method_recipes={m: "edge-popup" for m in MASK_LEARNERS},
            method_densities={m: (0.5,) for m in MASK_LEARNERS},
        ),
        Preset(
            name="pemn-resnet-reduced",
            description="PEMN compression curves on 2 CPU cores: ResNet-32 / CIFAR-10, dense, "
            "random and magnitude at the paper's sparsities 90-96% and at 98% (where a sparse "
            "file comes down to PEMN's real size, about 65 against 78 kB) against pemn-mp and "
            "pemn-rp 1e-1, 1e-2 (keep ratio 0.5), every recipe cut to 2 epochs (px-resnet20's "
            "160, lr x0.1 at 1 and 2; Edge-Popup's 100 for the mask learners) over a "
            "class-balanced 25,000 of the 50,000 training images (tested on all 10,000). Why: "
            "a ResNet-32 step of 128 took about 1.2 s on one AVX2 core (2-core AMD EPYC, "
            "float32); the runs took 9-10 minutes each on one thread there, 2.2 hours of one "
            "core for the fourteen; magnitude pruning needs 2 epochs (dense, then fine-tune)",
            recipe="px-resnet20",
            models=("resnet32",),
            densities=(0.1, 0.08, 0.06, 0.04, 0.02),
            methods=("dense", "random", "magnitude", "pemn-mp", "pemn-rp:ratio=0.1",
                     "pemn-rp:ratio=0.01"),
            method_recipes={m: "edge-popup" for m in MASK_LEARNERS},
            method_densities={m: (0.5,) for m in MASK_LEARNERS},
            train_subset=25000,
            epochs=2,
            reduces="pemn-resnet",
        ),
    )
}

DEFAULT_PRESET = "quick"


def get_preset(name: str) -> Preset:
    """The preset called ``name``; an unknown name is a one-line error listing valid ones."""
    if name not in PRESETS:
        raise BenchError(f"unknown preset {name!r}; valid presets: {', '.join(PRESETS)}")
    return PRESETS[name]


def get_recipe(name: str) -> Recipe:
    """The named recipe; an unknown name is a one-line error listing valid ones."""
    if name not in RECIPES:
        raise BenchError(f"unknown recipe {name!r}; valid recipes: {', '.join(RECIPES)}")
    return RECIPES[name]
