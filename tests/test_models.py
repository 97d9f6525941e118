"""Tests for bench.models: shapes, pinned parameter counts, prunable layers, seeded init."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from bench.errors import BenchError
from bench.models import (
    PRUNABLE_TYPES,
    PrunableConv2d,
    PrunableLinear,
    build_model,
    describe_model,
    init_weights,
    model_names,
    prunable_layers,
    validate_model,
)
from bench.models.resnet import ShortcutA

torch.set_num_threads(2)

SMALL = 0.125  # width multiplier that keeps every model tiny


# ---------------------------------------------------------------- independent parameter formulas


def conv(k: int, cin: int, cout: int, bias: bool = False, groups: int = 1) -> int:
    return k * k * (cin // groups) * cout + (cout if bias else 0)


def bn(c: int) -> int:
    return 2 * c


def linear(i: int, o: int) -> int:
    return i * o + o


def resnet_params(depth: int, classes: int, shortcut: str) -> int:
    n = (depth - 2) // 6
    total = conv(3, 3, 16) + bn(16)
    cin = 16
    for c in (16, 32, 64):
        for _ in range(n):
            total += conv(3, cin, c) + bn(c) + conv(3, c, c) + bn(c)
            if cin != c and shortcut == "B":
                total += conv(1, cin, c) + bn(c)
            cin = c
    return total + linear(64, classes)


def vgg16_params(classes: int) -> int:
    cfg = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    total, cin = 0, 3
    for c in cfg:
        total += conv(3, cin, c, bias=True) + bn(c)
        cin = c
    return total + linear(512, classes)


def convmixer_params(h: int, d: int, classes: int, k: int = 5, p: int = 2) -> int:
    block = conv(k, h, h, groups=h) + bn(h) + conv(1, h, h) + bn(h)
    return conv(p, 3, h) + bn(h) + d * block + linear(h, classes)


def vit_params(w: int, d: int, classes: int, mlp: int = 2, patch: int = 4) -> int:
    tokens = 1 + (32 // patch) ** 2
    ln = 2 * w
    block = ln + linear(w, 3 * w) + linear(w, w) + ln + linear(w, mlp * w) + linear(mlp * w, w)
    embed = conv(patch, 3, w, bias=True) + w + tokens * w
    return embed + d * block + ln + linear(w, classes)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------- building and forward


@pytest.mark.parametrize("name", [*model_names(), "convmixer", "vit"])
@pytest.mark.parametrize("classes", [10, 100])
def test_forward_shape_and_channels_last(name: str, classes: int) -> None:
    model = build_model(name, classes, seed=1, width=SMALL).eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = model(x)
        y_cl = model(x.contiguous(memory_format=torch.channels_last))
    assert y.shape == (2, classes)
    assert torch.isfinite(y).all()
    # deep nets at init have large logits in eval mode: compare relative to their scale
    torch.testing.assert_close(y_cl, y, rtol=1e-3, atol=1e-4 * y.abs().max().item())


@pytest.mark.parametrize("name", ["resnet20", "vgg16", "convmixer-256-6", "vit-256-6"])
def test_autocast_bf16_train_step(name: str) -> None:
    model = build_model(name, 10, width=SMALL).train()
    x = torch.randn(4, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = nn.functional.cross_entropy(model(x), torch.arange(4))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in model.parameters())


def test_names_and_descriptions() -> None:
    names = model_names()
    assert names[:4] == ["resnet20", "resnet32", "resnet56", "vgg16"]
    assert "convmixer-256-6" in names and "vit-256-6" in names
    for name in names:
        text = describe_model(name)
        assert text and "\n" not in text
    assert build_model("convmixer", 10, width=SMALL).arch["name"] == "convmixer-256-6"
    assert build_model("vit", 10, width=SMALL).arch["name"] == "vit-256-6"
    assert validate_model("ResNet20", shortcut="a") == ("resnet20", {"width": 1.0, "shortcut": "A"})


# ---------------------------------------------------------------- pinned parameter counts


PINNED = {
    ("resnet20", "B"): 272_474,
    ("resnet20", "A"): 269_722,  # the classic "0.27M" of He et al.
    ("resnet32", "B"): 466_906,
    ("resnet56", "B"): 855_770,
    ("vgg16", None): 14_728_266,
    ("convmixer-256-6", None): 443_914,
    ("vit-256-6", None): 3_195_146,
}


def test_pinned_counts_match_formulas() -> None:
    assert resnet_params(20, 10, "B") == PINNED[("resnet20", "B")]
    assert resnet_params(20, 10, "A") == PINNED[("resnet20", "A")]
    assert resnet_params(32, 10, "B") == PINNED[("resnet32", "B")]
    assert resnet_params(56, 10, "B") == PINNED[("resnet56", "B")]
    assert vgg16_params(10) == PINNED[("vgg16", None)]
    assert convmixer_params(256, 6, 10) == PINNED[("convmixer-256-6", None)]
    assert vit_params(256, 6, 10) == PINNED[("vit-256-6", None)]


@pytest.mark.parametrize(("name", "shortcut"), list(PINNED))
def test_parameter_counts(name: str, shortcut: str | None) -> None:
    kwargs = {"shortcut": shortcut} if shortcut else {}
    assert n_params(build_model(name, 10, **kwargs)) == PINNED[(name, shortcut)]


def test_parameter_counts_other_shapes() -> None:
    assert n_params(build_model("resnet20", 100)) == resnet_params(20, 100, "B")
    assert n_params(build_model("convmixer-512-8", 100)) == convmixer_params(512, 8, 100)
    model = build_model("convmixer-256-6", 10, kernel=9, patch=1)
    assert n_params(model) == convmixer_params(256, 6, 10, k=9, p=1)
    model = build_model("vit-256-8", 100, mlp_ratio=4, patch=8)
    assert n_params(model) == vit_params(256, 8, 100, mlp=4, patch=8)


def test_width_multiplier() -> None:
    model = build_model("resnet20", 10, width=0.25)
    assert model.conv.out_channels == 4 and model.fc.in_features == 16
    model = build_model("vgg16", 10, width=0.25)
    assert model.fc.in_features == 128
    model = build_model("convmixer-256-6", 10, width=0.25)
    assert model.fc.in_features == 64
    model = build_model("vit-512-6", 10, width=0.5)
    assert model.fc.in_features == 256 and model.blocks[0].attn.heads == 4
    assert build_model("vit-512-6", 10).blocks[0].attn.heads == 8


# ---------------------------------------------------------------- prunable layers


def test_prunable_layers_resnet20_option_b() -> None:
    layers = prunable_layers(build_model("resnet20", 10, width=0.25))
    expected = ["conv"]
    for i in range(9):
        expected += [f"blocks.{i}.conv1", f"blocks.{i}.conv2"]
        if i in (3, 6):
            expected.append(f"blocks.{i}.shortcut.0")
    expected.append("fc")
    assert [n for n, _ in layers] == expected
    assert len(layers) == 22
    assert isinstance(layers[-1][1], PrunableLinear)
    assert all(isinstance(m, PrunableConv2d) for _, m in layers[:-1])


def test_prunable_layers_resnet20_option_a() -> None:
    layers = prunable_layers(build_model("resnet20", 10, width=0.25, shortcut="A"))
    assert len(layers) == 20
    assert not any("shortcut" in n for n, _ in layers)


@pytest.mark.parametrize("name", ["resnet56", "vgg16", "convmixer-256-8"])
def test_every_conv_and_linear_is_prunable(name: str) -> None:
    model = build_model(name, 10, width=SMALL)
    dense = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(prunable_layers(model)) == len(dense)
    assert all(isinstance(m, PRUNABLE_TYPES) for m in dense)


def test_prunable_layers_convmixer() -> None:
    model = build_model("convmixer-256-6", 10, width=SMALL)
    names = [n for n, _ in prunable_layers(model)]
    assert len(names) == 1 + 2 * 6 + 1
    assert names[0] == "stem" and names[-1] == "fc"
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert all(m.bias is None for m in convs)
    assert model.fc.bias is not None


def test_prunable_layers_vit() -> None:
    model = build_model("vit-256-6", 10, width=SMALL)
    layers = prunable_layers(model)
    names = [n for n, _ in layers]
    assert len(layers) == 4 * 6 + 1
    assert names[-1] == "fc" and not any("patch_embed" in n for n in names)
    assert type(model.patch_embed) is nn.Conv2d
    assert all(type(m) is PrunableLinear for _, m in layers)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == len(layers)


def test_activations_are_modules_not_inplace() -> None:
    model = build_model("resnet20", 10, width=SMALL)
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    assert len(relus) == 1 + 2 * 9 and not any(m.inplace for m in relus)
    vgg = build_model("vgg16", 10, width=SMALL)
    assert sum(isinstance(m, nn.ReLU) for m in vgg.modules()) == 13
    mixer = build_model("convmixer-256-6", 10, width=SMALL)
    assert sum(isinstance(m, nn.GELU) for m in mixer.modules()) == 1 + 2 * 6
    # every ReLU call site is its own module: hooks fire exactly once per site
    calls = []
    for m in relus:
        m.register_forward_hook(lambda mod, inp, out: calls.append(mod))
    model(torch.randn(2, 3, 32, 32))
    assert len(calls) == len(relus) and len(set(map(id, calls))) == len(relus)


# ---------------------------------------------------------------- option A shortcut


def test_option_a_shortcut() -> None:
    sc = ShortcutA(16, 32, stride=2)
    assert list(sc.parameters()) == [] and list(sc.buffers()) == []
    x = torch.randn(2, 16, 32, 32)
    y = sc(x)
    assert y.shape == (2, 32, 16, 16)
    torch.testing.assert_close(y[:, 8:24], x[:, :, ::2, ::2])
    assert y[:, :8].abs().sum() == 0 and y[:, 24:].abs().sum() == 0
    odd = ShortcutA(3, 6, stride=2)(torch.randn(1, 3, 8, 8))
    assert odd.shape == (1, 6, 4, 4)
    model = build_model("resnet20", 10, width=0.25, shortcut="A")
    assert isinstance(model.blocks[3].shortcut, ShortcutA)
    assert sum(n_params(b.shortcut) for b in model.blocks) == 0


# ---------------------------------------------------------------- initialisation


def _equal_state(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("name", ["resnet20", "vgg16", "convmixer-256-6", "vit-256-6"])
def test_same_seed_identical_different_seed_differs(name: str) -> None:
    torch.manual_seed(123)  # global RNG state must not matter
    a = build_model(name, 10, seed=7, width=SMALL)
    torch.manual_seed(456)
    b = build_model(name, 10, seed=7, width=SMALL)
    c = build_model(name, 10, seed=8, width=SMALL)
    assert _equal_state(a, b)
    assert not _equal_state(a, c)


def test_build_leaves_global_rng_alone() -> None:
    torch.manual_seed(0)
    expected = torch.rand(4)
    torch.manual_seed(0)
    build_model("resnet20", 10, width=SMALL)
    assert torch.equal(torch.rand(4), expected)


def test_reinit_restores_build_state() -> None:
    model = build_model("resnet20", 10, seed=3, width=0.25)
    fresh = build_model("resnet20", 10, seed=3, width=0.25)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    model.train()(torch.randn(4, 3, 32, 32))  # moves BN running stats
    init_weights(model, 3)
    assert _equal_state(model, fresh)


def test_kaiming_std_and_constants() -> None:
    model = build_model("resnet20", 10)
    w = model.blocks[8].conv2.weight  # 64 x 64 x 3 x 3
    assert w.numel() == 36_864
    expected = math.sqrt(2.0 / (64 * 9))
    assert abs(w.std().item() / expected - 1) < 0.03
    assert abs(w.mean().item()) < 0.05 * expected
    fc = model.fc.weight
    assert abs(fc.std().item() / math.sqrt(2.0 / 64) - 1) < 0.15
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)
    assert torch.all(model.fc.bias == 0)


def test_init_depthwise_biases_and_norms() -> None:
    mixer = build_model("convmixer-256-6", 10)
    dw = mixer.blocks[0].dw.weight  # fan_in = 5 * 5 (groups = channels)
    assert abs(dw.std().item() / math.sqrt(2.0 / 25) - 1) < 0.05
    vgg = build_model("vgg16", 10, width=0.25)
    biases = [m.bias for m in vgg.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(biases) == 14 and all(torch.all(b == 0) for b in biases)
    vit = build_model("vit-256-6", 10)
    for m in vit.modules():
        if isinstance(m, nn.LayerNorm):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)
    assert abs(vit.pos_embed.std().item() / 0.02 - 1) < 0.05
    assert abs(vit.cls_token.std().item() / 0.02 - 1) < 0.3
    pe = vit.patch_embed.weight  # non-prunable conv is Kaiming too
    assert abs(pe.std().item() / math.sqrt(2.0 / (3 * 16)) - 1) < 0.05
    assert torch.all(vit.patch_embed.bias == 0)


# ---------------------------------------------------------------- arch round trip


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("resnet20", {"width": 0.5, "shortcut": "a"}),
        ("resnet32", {"width": 0.25}),
        ("vgg16", {"width": 0.125}),
        ("convmixer", {"width": 0.125, "kernel": 3}),
        ("vit-512-6", {"width": 0.125, "mlp_ratio": 4}),
    ],
)
def test_arch_round_trip(name: str, kwargs: dict) -> None:
    model = build_model(name, 100, seed=5, **kwargs)
    arch = json.loads(json.dumps(model.arch))  # as stored in a file header
    assert set(arch) == {"name", "num_classes", "kwargs"}
    rebuilt = build_model(arch["name"], arch["num_classes"], seed=5, **arch["kwargs"])
    assert rebuilt.arch == model.arch
    assert _equal_state(model, rebuilt)


def test_arch_lists_resolved_defaults() -> None:
    arch = build_model("resnet20", 10, width=0.25).arch
    assert arch == {
        "name": "resnet20",
        "num_classes": 10,
        "kwargs": {"width": 0.25, "shortcut": "B"},
    }
    arch = build_model("vit", 10, width=0.25).arch
    assert arch["kwargs"] == {"width": 0.25, "mlp_ratio": 2, "patch": 4}


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("bad", ["resnet18", "vgg", "convmixer-256", "vit-0-6", ""])
def test_unknown_name(bad: str) -> None:
    with pytest.raises(BenchError) as info:
        build_model(bad, 10)
    message = str(info.value)
    assert "\n" not in message
    for valid in ("resnet20", "resnet32", "resnet56", "vgg16", "convmixer", "vit"):
        assert valid in message
    with pytest.raises(BenchError):
        describe_model(bad)


def test_bad_kwargs() -> None:
    with pytest.raises(BenchError, match="valid options: width, shortcut"):
        build_model("resnet20", 10, depth=3)
    with pytest.raises(BenchError, match="valid options: width, mlp_ratio, patch"):
        build_model("vit", 10, shortcut="A")
    with pytest.raises(BenchError, match="shortcut"):
        build_model("resnet20", 10, shortcut="C")
    with pytest.raises(BenchError, match="width"):
        build_model("vgg16", 10, width=0)
    with pytest.raises(BenchError, match="patch"):
        build_model("vit", 10, patch=5)
    with pytest.raises(BenchError, match="kernel"):
        validate_model("convmixer", kernel=2.5)
    with pytest.raises(BenchError, match="num_classes"):
        build_model("resnet20", 0)


def test_uniform_biases_are_torchs_default_from_their_own_stream():
    """``bias_init="uniform"`` (the PX recipes): U(-1/sqrt(fan_in), 1/sqrt(fan_in)) biases,
    the same for the same seed, and every weight exactly as with zero biases."""
    zero = build_model("vgg16", 100, seed=4, width=0.25)
    uniform = build_model("vgg16", 100, seed=4, width=0.25, bias_init="uniform")
    again = build_model("vgg16", 100, seed=4, width=0.25, bias_init="uniform")
    for (name, a), b, c in zip(zero.state_dict().items(), uniform.state_dict().values(),
                               again.state_dict().values()):
        assert torch.equal(b, c), name
        if not name.endswith("bias") or "bn" in name:
            assert torch.equal(a, b), name
    layers = [m for m in uniform.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    scaled = torch.cat([m.bias.flatten() * m.weight[0].numel() ** 0.5 for m in layers])
    assert scaled.abs().max() < 1 and scaled.var().item() == pytest.approx(1 / 3, rel=0.1)
    other = build_model("vgg16", 100, seed=5, width=0.25, bias_init="uniform")
    assert not torch.equal(other.fc.bias, uniform.fc.bias)
