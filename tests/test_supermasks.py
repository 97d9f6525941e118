"""Edge-Popup and PEMN: prototype semantics, frozen weights, artifacts, every architecture."""

import pytest
import torch
import torch.nn.functional as F

from baselines.edge_popup import EdgePopup
from bench import artifact
from bench.cli import main
from bench.counts import fan_in
from bench.metrics import model_metrics, paper_bytes
from bench.models import PrunableConv2d, build_model, prunable_layers
from bench.rng import kaiming_normal
from bench.store import RunStore
from bench.supermasks import (
    NORM_TYPES,
    make_supermask,
    supermask_parameters,
    weight_seed,
)
from methods.pemn import (
    PEMN_EQ10,
    PEMNMask,
    PEMNMaxLayerPadding,
    PEMNOneLayer,
    PEMNRandomVectorPadding,
    RandomVectorHparams,
    unique_values,
)

SEED = 11


def learner(method, model_name="resnet20", density=0.5, **kwargs):
    model = build_model(model_name, 10, seed=0, **kwargs)
    make_supermask(model, method.weight_sources(model, SEED), density, score_seed=1)
    return model


def sizes(model):
    return [layer.weight.numel() for _, layer in prunable_layers(model)]


def test_unique_values_follow_each_variants_formula():
    model = learner(PEMNMask(), width=0.5)
    assert unique_values(model) == sum(sizes(model))

    model = learner(PEMNOneLayer(), width=0.5)
    shapes = {}
    for _, layer in prunable_layers(model):
        is_conv = isinstance(layer, PrunableConv2d)
        key = ("conv", tuple(layer.weight.shape)) if is_conv else id(layer)
        shapes.setdefault(key, layer.weight.numel())
    assert unique_values(model) == sum(shapes.values()) < sum(sizes(model))

    model = learner(PEMNMaxLayerPadding(), width=0.5)
    d_max = max(sizes(model))
    assert unique_values(model) == d_max

    for ratio in (1e-1, 1e-2, 1e-3, 1e-4, 1e-5):
        model = learner(PEMNRandomVectorPadding(RandomVectorHparams(ratio=ratio)), width=0.5)
        assert unique_values(model) == int(d_max * ratio) + 1
        weights = [layer.weight.flatten() for _, layer in prunable_layers(model)]
        distinct = torch.unique(torch.cat(weights))
        assert len(distinct) <= int(d_max * ratio) + 1


def test_each_layer_is_the_expected_slice_of_the_prototype():
    model = learner(PEMNMaxLayerPadding(), width=0.5)
    layers = prunable_layers(model)
    proto = max(range(len(layers)), key=lambda i: (layers[i][1].weight.numel(), -i))
    d_max, proto_fan_in = layers[proto][1].weight.numel(), fan_in(layers[proto][1])
    draw = kaiming_normal((d_max,), proto_fan_in, SEED, proto)
    for _, layer in layers:  # row-major prefix of the prototype, no rescaling
        assert torch.equal(layer.weight.flatten(), draw[:layer.weight.numel()])

    ratio = 1e-3
    model = learner(PEMNRandomVectorPadding(RandomVectorHparams(ratio=ratio)), width=0.5)
    v = draw[:int(d_max * ratio) + 1]
    for _, layer in prunable_layers(model):  # tiled, restarting at v[0] in every layer
        n = layer.weight.numel()
        assert torch.equal(layer.weight.flatten(), v.repeat(n // len(v) + 1)[:n])

    model = learner(PEMNOneLayer(), width=0.5)
    first = {}
    for _, layer in prunable_layers(model):
        if isinstance(layer, PrunableConv2d):
            ref = first.setdefault(tuple(layer.weight.shape), layer)
            assert torch.equal(layer.weight, ref.weight)
    convs = [m for _, m in prunable_layers(model) if isinstance(m, PrunableConv2d)]
    assert len(first) < len(convs)


def test_edge_popup_weights_are_signed_constants():
    model = learner(EdgePopup(), width=0.5)
    for _, layer in prunable_layers(model):
        expected = (2 / fan_in(layer)) ** 0.5
        assert torch.allclose(layer.weight.abs(), torch.full_like(layer.weight, expected))
        assert (layer.weight > 0).float().mean().item() == pytest.approx(0.5, abs=0.1)


@pytest.mark.parametrize("train_norm", [True, False])
def test_only_scores_and_norm_parameters_ever_change(train_norm):
    model = learner(PEMNRandomVectorPadding(), width=0.5)
    params = supermask_parameters(model, train_norm)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.AdamW(params, lr=0.05, weight_decay=0.005)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 3, 32, 32, generator=g), torch.randint(0, 10, (16,), generator=g)
    for _ in range(3):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    after = model.state_dict()
    norm_keys = {f"{name}.{p}" for name, m in model.named_modules() if isinstance(m, NORM_TYPES)
                 for p in ("weight", "bias")}
    for key, value in before.items():
        changed = not torch.equal(value, after[key])
        trainable = key.endswith("scores") or (train_norm and key in norm_keys)
        running = key.endswith(("running_mean", "running_var", "num_batches_tracked"))
        if key.endswith("scores"):
            assert changed, key
        elif not trainable and not running:
            assert not changed, key
        if key in norm_keys and key.endswith("weight"):
            assert changed == train_norm, key


@pytest.mark.parametrize("method", [PEMNMask(), PEMNOneLayer(), PEMNMaxLayerPadding(),
                                    PEMNRandomVectorPadding(RandomVectorHparams(ratio=1e-5)),
                                    EdgePopup()], ids=lambda m: type(m).__name__)
@pytest.mark.parametrize("model_name", ["convmixer-256-6", "vit-256-6"])
def test_every_variant_on_convmixer_and_vit_round_trips(method, model_name):
    model = learner(method, model_name)
    params = supermask_parameters(model, True)
    opt = torch.optim.SGD(params, lr=0.1, momentum=0.9)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    F.cross_entropy(model(x), torch.arange(4)).backward()
    opt.step()
    model.eval()
    data, info = artifact.encode(model)
    assert info.breakdown["values"] == 0  # weights travel as a recipe, never as values
    decoded = artifact.decode(data)
    with torch.no_grad():
        assert torch.equal(decoded(x), model(x))


def test_pemn_artifact_is_recipe_plus_masks_plus_norms():
    model = learner(PEMNRandomVectorPadding(RandomVectorHparams(ratio=1e-2)))
    data, info = artifact.encode(model)
    assert info.breakdown["values"] == 0 and info.breakdown["prototypes"] == 0
    assert info.breakdown["header"] < 2000
    assert info.bytes == sum(info.breakdown.values())
    stored, stored_info = artifact.encode(model, random_weights="stored")
    assert stored_info.breakdown["prototypes"] == 4 * unique_values(model)
    m = model_metrics(model)
    eq10 = paper_bytes(model, PEMN_EQ10, m)
    assert eq10["bytes"] == 4 * unique_values(model) + -(-m["parameters_prunable"] // 8)
    assert weight_seed(0) != weight_seed(1)


@pytest.mark.long  # over 1.5 minutes on 2 cores: CI leaves it out (--long)
def test_smoke_run_of_every_mask_learner(cifar10_dir, tmp_path):
    code = main(["run", "--methods", "edge-popup,pemn-mask,pemn-one-layer,pemn-mp,pemn-rp",
                 "--preset", "smoke", "--densities", "0.5", "--device", "cpu", "--no-progress",
                 "--data-dir", str(cifar10_dir), "--results", str(tmp_path)])
    assert code == 0
    records = {r["spec"]["method"]: r for _, r in RunStore(tmp_path).records()}
    assert set(records) == {"edge-popup", "pemn-mask", "pemn-one-layer", "pemn-mp", "pemn-rp"}
    for record in records.values():
        m = record["metrics"]
        assert record["status"] == "finished"
        assert m["decode_max_logit_difference"] == 0.0
        assert m["artifact_breakdown"]["values"] == 0
        assert m["density"] == pytest.approx(0.5, abs=1e-3)
        assert m["artifact_bytes_stored_convention"] > 0
    assert records["pemn-mask"]["metrics"]["test_accuracy"] > 15.0  # chance is 10%
    assert records["pemn-rp"]["metrics"]["paper_bytes"]["formula"] == "pemn-eq10"
