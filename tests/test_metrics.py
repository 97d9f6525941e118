"""Record metrics against hand computations: MACs, densities, parameters, bytes, collapse."""

import pytest
import torch
from torch import nn

from bench.metrics import dense_bytes, model_metrics, paper_bytes
from bench.models import PrunableConv2d, PrunableLinear, build_model, prunable_layers
from bench.models.masked_weights import RandomWeights
from bench.reports.paper_bytes import model_pemn_way_bytes, pemn_way_bytes


def tiny(extra_norm: bool = False) -> nn.Module:
    """Two convs, one BatchNorm and a classifier; ``extra_norm`` adds a BatchNorm1d(10)."""
    return nn.Sequential(
        PrunableConv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
        PrunableConv2d(4, 2, 1, stride=2, bias=False), nn.Flatten(),
        PrunableLinear(2 * 16 * 16, 10), *([nn.BatchNorm1d(10)] if extra_norm else []),
    )


def test_macs_and_densities_by_hand():
    model = tiny()
    m = model_metrics(model)
    conv1, conv2, fc = 4 * 3 * 9 * 32 * 32, 2 * 4 * 16 * 16, 512 * 10
    assert m["macs_dense"] == m["macs_sparse"] == conv1 + conv2 + fc
    assert m["parameters_prunable"] == 108 + 8 + 5120
    assert m["parameters_total"] == 108 + 8 + 5120 + 10 + 8  # + fc bias + BN affine
    assert m["values_dense"] == m["parameters_total"] + 8  # + BN running mean and var

    first = torch.zeros(4, 3, 3, 3)
    first.view(-1)[:27] = 1  # keep 27 of 108
    model[0].set_mask(first)
    last = torch.zeros(10, 512)
    last[:, :128] = 1  # keep 1280 of 5120
    model[5].set_mask(last)
    m = model_metrics(model)
    assert m["macs_sparse"] == 27 * 32 * 32 + conv2 + 1280
    assert m["theoretical_speedup"] == (conv1 + conv2 + fc) / m["macs_sparse"]
    assert m["parameters_kept"] == 27 + 8 + 1280
    assert m["density"] == (27 + 8 + 1280) / (108 + 8 + 5120)
    assert m["density_per_tensor"] == {"0.weight": 0.25, "3.weight": 1.0, "5.weight": 0.25}
    assert m["values_stored"] == m["values_dense"] - (108 - 27) - (5120 - 1280)
    assert paper_bytes(model, "nonzeros-x32", m)["bytes"] == 4 * m["values_stored"]
    assert paper_bytes(model, "csr-2x", m)["bytes"] == 4 * (m["values_stored"] + 1315)
    assert not m["layer_collapse"]


def test_resnet20_macs_match_the_architecture():
    # He et al.'s ResNet-20: 3x3 convs over 32x32 / 16x16 / 8x8 maps, plus a 64x10 classifier.
    per_stage = [(16, 16, 32), (32, 16, 16), (64, 32, 8)]
    expected = 16 * 3 * 9 * 32 * 32 + 640
    for out, inp, size in per_stage:
        expected += out * inp * 9 * size * size + 5 * out * out * 9 * size * size
    option_a = model_metrics(build_model("resnet20", 10, shortcut="A"))
    assert option_a["macs_dense"] == expected == 40_551_040
    option_b = model_metrics(build_model("resnet20", 10))
    assert option_b["macs_dense"] == expected + 32 * 16 * 16 * 16 + 64 * 32 * 8 * 8


def test_layer_collapse_is_flagged():
    model = build_model("resnet20", 10, width=0.25)
    name, layer = prunable_layers(model)[5]
    layer.set_mask(torch.zeros_like(layer.weight))
    m = model_metrics(model)
    assert m["layer_collapse"] and m["collapsed_tensors"] == [f"{name}.weight"]


def test_dense_bytes_is_every_inference_value_in_float32():
    model = build_model("resnet20", 10, width=0.5)
    state = model.state_dict()
    expected = sum(t.numel() for k, t in state.items() if not k.endswith("num_batches_tracked"))
    assert dense_bytes(model) == 4 * expected
    for _, layer in prunable_layers(model):
        layer.use_scores(0.5)
    assert dense_bytes(model) == 4 * expected  # scores are not part of the model


def _masked(model: nn.Module) -> nn.Module:
    """Keep 27 of conv1's 108 weights and 1280 of the classifier's 5120 (conv2 dense)."""
    first = torch.zeros(4, 3, 3, 3)
    first.view(-1)[:27] = 1
    model[0].set_mask(first)
    last = torch.zeros(10, 512)
    last[:, :128] = 1
    model[5].set_mask(last)
    return model


def test_pemn_way_count_by_hand_weights_only():
    # prunable weights: 108 + 8 + 5120 = 5236, a 1-bit mask over them is ceil(5236/8) = 655
    # bytes; kept: 27 + 8 + 1280 = 1315, at 32 bits 5260 bytes. BatchNorm (8 affine + 8
    # running values), the extra BatchNorm1d(10) and the classifier's 10 biases never count.
    for extra_norm in (False, True):
        model = _masked(tiny(extra_norm))
        m = model_metrics(model)
        assert paper_bytes(model, "pemn-sparse", m)["bytes"] == 5260 + 655 == 5915
        assert model_pemn_way_bytes(model, m) == 5915
        assert pemn_way_bytes(m) == 5915  # from a record's metrics alone
    # the nonzeros-x32 convention does count the norms: it moves with the extra BatchNorm
    with_bn = model_metrics(_masked(tiny(True)))
    without = model_metrics(_masked(tiny(False)))
    assert 4 * with_bn["values_stored"] - 4 * without["values_stored"] == 4 * 4 * 10
    dense = model_metrics(tiny())
    assert paper_bytes(tiny(), "pemn-sparse", dense)["bytes"] == 4 * 5236 == 20944  # no mask


def test_pemn_way_count_matches_eq10_on_random_weights():
    from methods.pemn import PEMN_EQ10, padded_weights

    for extra_norm in (False, True):
        model = _masked(tiny(extra_norm))
        for i, (_, layer) in enumerate(prunable_layers(model)):
            layer.set_random_weights(RandomWeights("kaiming-normal", seed=0, stream=i,
                                                   fan_in=layer.weight[0].numel()))
        m = model_metrics(model)
        # every layer its own random values (pemn-mask, Edge-Popup): 4 * 5236 + 655
        assert model_pemn_way_bytes(model, m) == 4 * 5236 + 655 == 21599
        assert paper_bytes(model, PEMN_EQ10, m)["bytes"] == 21599  # the PEMN side agrees
        record = {**m, "artifact_bytes_stored_convention": 1,
                  "paper_bytes": {"formula": "nonzeros-x32", "bytes": 0}}
        assert pemn_way_bytes(record) == 21599
        # MP: every layer a prefix of the largest (the classifier, 5120 values)
        for name, layer in prunable_layers(model):
            layer.set_random_weights(padded_weights(model, 0)[name])
        m = model_metrics(model)
        eq10 = paper_bytes(model, PEMN_EQ10, m)
        assert eq10["bytes"] == 4 * 5120 + 655 == 21135
        assert pemn_way_bytes({**m, "paper_bytes": eq10}) == 21135
        with pytest.raises(ValueError, match="pemn-eq10"):
            model_pemn_way_bytes(model, m)  # shared prototypes are the plugin's count
    assert pemn_way_bytes(None) is None and pemn_way_bytes({}) is None
