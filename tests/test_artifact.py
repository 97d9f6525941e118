"""The artifact: exact round trips for every family, weight source and mask; sizes; corruption."""

import json
import os
import random
import re
import struct
import zlib

import pytest
import torch
import torch.nn.functional as F

from bench import artifact
from bench.artifact import decode, encode, load, save
from bench.artifact.maskcode import entropy_bits
from bench.errors import BenchError
from bench.metrics import dense_bytes
from bench.models import build_model, prunable_layers
from bench.models.masked_weights import RandomWeights, topk_mask, trainable_parameters

FAMILIES = {
    "resnet": ("resnet20", {"width": 0.25}),
    "vgg": ("vgg16", {"width": 0.125}),
    "convmixer": ("convmixer-32-2", {}),
    "vit": ("vit-32-2", {}),
}
SOURCES = ["trained", "kaiming", "signed", "one-layer", "max-layer", "tiled"]
MASKS = ["none", "fixed", "scores"]
PERIOD = 200  # longer than some small layers, shorter than the others


def _batch(seed: int = 0) -> torch.Tensor:
    return torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def _set_source(model: torch.nn.Module, source: str) -> None:
    """Give every prunable layer the weights of ``source`` (PEMN prototypes included)."""
    layers = [layer for _, layer in prunable_layers(model)]
    fan_ins = [layer.weight[0].numel() for layer in layers]
    largest = max(range(len(layers)), key=lambda i: layers[i].weight.numel())
    first_of_shape: dict[tuple[int, ...], int] = {}
    for i, layer in enumerate(layers):
        shape = tuple(layer.weight.shape)
        j = {"one-layer": first_of_shape.setdefault(shape, i),
             "max-layer": largest, "tiled": largest}.get(source, i)
        scheme = "signed-constant" if source == "signed" else "kaiming-normal"
        period = PERIOD if source == "tiled" else None
        if source != "trained":
            layer.set_random_weights(RandomWeights(scheme, 11, j, fan_ins[j], period))


def _set_masks(model: torch.nn.Module, kind: str, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    for _, layer in prunable_layers(model):
        if kind == "fixed":
            layer.set_mask(torch.rand(layer.weight.shape, generator=g) < 0.3)
        elif kind == "scores":
            layer.use_scores(0.5, g)


def _train(model: torch.nn.Module, steps: int = 2) -> None:
    """A couple of SGD steps in train mode: BN statistics and weights become non-trivial."""
    opt = torch.optim.SGD(trainable_parameters(model), lr=0.02, momentum=0.9)
    g = torch.Generator().manual_seed(5)
    model.train()
    for _ in range(steps):
        x = torch.randn(8, 3, 32, 32, generator=g)
        y = torch.randint(0, model.arch["num_classes"], (8,), generator=g)
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()


def _model(family: str, source: str, mask: str) -> torch.nn.Module:
    name, kwargs = FAMILIES[family]
    model = build_model(name, 10, seed=1, **kwargs)
    _set_source(model, source)
    _set_masks(model, mask)
    _train(model)
    return model.eval()


def _check_info(data: bytes, info: artifact.ArtifactInfo, model: torch.nn.Module) -> None:
    assert info.bytes == len(data) == sum(info.breakdown.values())
    assert set(info.breakdown) == {"framing", "header", "masks", "values", "other_tensors",
                                   "prototypes"}
    assert [row["name"] for row in info.layers] == [n for n, _ in prunable_layers(model)]
    assert sum(row["mask_bytes"] for row in info.layers) == info.breakdown["masks"]
    assert sum(row["value_bytes"] for row in info.layers) == info.breakdown["values"]


@pytest.mark.parametrize("mask", MASKS)
@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("family", list(FAMILIES))
def test_round_trip_is_bit_identical(family, source, mask, tmp_path):
    model = _model(family, source, mask)
    x = _batch()
    with torch.no_grad():
        reference = model(x)
    conventions = ["seeded"] if source == "trained" else list(artifact.RANDOM_WEIGHT_CONVENTIONS)
    for convention in conventions:
        data, info = encode(model, random_weights=convention)
        _check_info(data, info, model)
        decoded = decode(data)
        assert not decoded.training
        with torch.no_grad():
            assert torch.equal(decoded(x), reference), convention
        for (_, a), (_, b) in zip(prunable_layers(model), prunable_layers(decoded)):
            assert a.weight_source == b.weight_source
        assert encode(decoded, random_weights=convention)[0] == data
        weights = {row["weight"] for row in info.layers}
        assert weights == {"values" if source == "trained" else convention}
        if convention == "seeded":
            assert info.breakdown["prototypes"] == 0
            assert (info.breakdown["values"] == 0) == (source != "trained")
    path = tmp_path / "model.bnch"
    info = save(model, path)
    assert info.bytes == os.path.getsize(path)
    assert path.read_bytes() == encode(model)[0]
    assert [p.name for p in tmp_path.iterdir()] == ["model.bnch"]  # no temporary left behind


def test_stored_prototypes_are_one_vector_per_shared_stream():
    model = build_model("resnet20", 10, width=0.25)
    _set_source(model, "tiled")
    _, info = encode(model, random_weights="stored")
    assert info.breakdown["prototypes"] == 4 * PERIOD  # one group: the largest layer's stream
    _set_source(model, "max-layer")
    _, info = encode(model, random_weights="stored")
    largest = max(layer.weight.numel() for _, layer in prunable_layers(model))
    assert info.breakdown["prototypes"] == 4 * largest


@pytest.mark.parametrize("codec", [c for c in artifact.VALUE_CODECS if c != "float32"])
def test_lossy_codecs_halve_the_values_and_decode_close(codec):
    model = _model("resnet", "trained", "fixed")
    x = _batch()
    with torch.no_grad():
        reference = model(x)
    full, info32 = encode(model)
    data, info = encode(model, value_codec=codec)
    assert len(data) < len(full)
    for a, b in zip(info.layers, info32.layers):
        assert 2 * a["value_bytes"] == b["value_bytes"] and a["mask_bytes"] == b["mask_bytes"]
    assert 2 * info.breakdown["values"] == info32.breakdown["values"]
    assert 2 * info.breakdown["other_tensors"] == info32.breakdown["other_tensors"]
    with torch.no_grad():
        out = decode(data)(x)
    error = (out - reference).abs().max().item()
    assert 0 < error <= {"float16": 0.01, "bfloat16": 0.08}[codec] * reference.abs().max().item()


def _masked_resnet20(density: float) -> torch.nn.Module:
    model = build_model("resnet20", 10)
    g = torch.Generator().manual_seed(3)
    for _, layer in prunable_layers(model):
        layer.set_mask(topk_mask(torch.rand(layer.weight.shape, generator=g), density))
    return model


def test_sizes_at_density_0_1():
    model = _masked_resnet20(0.1)
    layers = [layer for _, layer in prunable_layers(model)]
    data, info = encode(model)
    kept = sum(layer.kept() for layer in layers)
    assert info.breakdown["values"] == 4 * kept
    bound = sum(entropy_bits(layer.weight.numel(), layer.kept()) for layer in layers) / 8
    assert bound <= info.breakdown["masks"] <= 1.02 * bound
    for i, layer in enumerate(layers):
        layer.set_random_weights(RandomWeights("kaiming-normal", 7, i, layer.weight[0].numel()))
    seeded, info = encode(model)
    assert info.breakdown["values"] == info.breakdown["prototypes"] == 0
    assert len(seeded) < dense_bytes(model) / 20 and len(seeded) < len(data) / 4


def test_channels_last_weights_encode_the_same():
    model = _model("resnet", "trained", "fixed")
    data, _ = encode(model)
    assert encode(model.to(memory_format=torch.channels_last))[0] == data


def test_encode_refuses_weights_that_left_their_recipe():
    model = build_model("resnet20", 10, width=0.25)
    _set_source(model, "kaiming")
    layer = prunable_layers(model)[3][1]
    with torch.no_grad():
        layer.weight[0, 0, 0, 0] += 1.0
    with pytest.raises(BenchError, match="recipe"):
        encode(model)
    with pytest.raises(BenchError, match="value codec"):
        encode(model, value_codec="int8")
    with pytest.raises(BenchError, match="convention"):
        encode(model, random_weights="paper")


# ---------------------------------------------------------------- corruption


@pytest.fixture(scope="module")
def artifact_bytes() -> bytes:
    model = build_model("resnet20", 10, width=0.25)
    _set_masks(model, "fixed")
    _set_source(model, "one-layer")
    prunable_layers(model)[-1][1].weight_source = None  # one layer of stored values too
    return encode(model, random_weights="stored")[0]


def _corruptions(data: bytes, count: int, seed: int = 0) -> list[tuple[str, bytes]]:
    rnd = random.Random(seed)
    out = [("truncate 0", data[:0]), (f"truncate {len(data) - 1}", data[:-1])]
    while len(out) < count:
        kind = rnd.choice(["truncate", "flip", "insert", "append"])
        if kind == "truncate":
            n = rnd.randrange(len(data))
            out.append((f"truncate {n}", data[:n]))
        elif kind == "flip":
            bit = rnd.randrange(8 * len(data))
            flipped = bytearray(data)
            flipped[bit // 8] ^= 1 << (bit % 8)
            out.append((f"flip bit {bit}", bytes(flipped)))
        else:
            extra = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 8)))
            at = rnd.randrange(len(data) + 1) if kind == "insert" else len(data)
            out.append((f"{kind} {len(extra)} at {at}", data[:at] + extra + data[at:]))
    return out


def test_every_corruption_raises_bench_error_naming_the_file(artifact_bytes, tmp_path):
    assert isinstance(decode(artifact_bytes), torch.nn.Module)
    for i, (what, data) in enumerate(_corruptions(artifact_bytes, 100)):
        path = tmp_path / f"broken-{i:03d}.bnch"
        path.write_bytes(data)
        with pytest.raises(BenchError, match=re.escape(path.name)) as caught:
            load(path)
        assert "corrupt or unreadable artifact" in str(caught.value), what


@pytest.mark.parametrize("content", [b"", b"hello, this is a plain text file\n", b"BN"])
def test_not_an_artifact(content, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    expected = "truncated" if content == b"BN" else "not a bench artifact"
    with pytest.raises(BenchError, match=rf"notes\.txt: corrupt or unreadable artifact: .*"
                                         rf"{expected}"):
        load(path)


def test_missing_file(tmp_path):
    with pytest.raises(BenchError, match="cannot read"):
        load(tmp_path / "absent.bnch")


def _split(data: bytes) -> tuple[int, dict, bytes]:
    _, version, length = struct.unpack_from("<4sBI", data)
    header = json.loads(zlib.decompress(data[9:9 + length], -15))
    return version, header, data[9 + length:-4]


def _join(version: int, header: bytes | dict, body: bytes, raw: bool = False) -> bytes:
    """A frame with a correct checksum; ``raw``: ``header`` is already the compressed bytes."""
    packed = header if raw else zlib.compress(json.dumps(header).encode(), 9, -15)
    return _with_crc(struct.pack("<4sBI", b"BNCH", version, len(packed)) + packed + body)


def _mutated(data: bytes, change) -> bytes:
    version, header, body = _split(data)
    result = change(header, body)
    return _join(version, header, result if isinstance(result, bytes) else body)


MUTATIONS = {
    "unknown architecture": lambda h, b: h["arch"].update(name="alexnet"),
    "differ": lambda h, b: h["arch"]["kwargs"].update(width=0.5),
    "mask of": lambda h, b: h["layers"][2].__setitem__(0, h["layers"][2][0] + 1),
    "unknown value codec": lambda h, b: h.update(values="float64"),
    "convention": lambda h, b: h.update(random="paper"),
    "unexpected bytes": lambda h, b: b + b"\0\0\0\0",
    "body ends": lambda h, b: b[:-4],
    "bad entry": lambda h, b: h["layers"][0].pop(),
    "corrupt mask payload": lambda h, b: h["layers"][1].__setitem__(2, h["layers"][1][2] - 1),
    "prototype group": lambda h, b: h["layers"][0][4].update(group=99),
    "prototype 0 length": lambda h, b: h["prototypes"][0].__setitem__(4, -1),
    "weight scheme": lambda h, b: h["prototypes"][0].__setitem__(0, "uniform"),
    "expected fields": lambda h, b: h.pop("layout"),
}


@pytest.mark.parametrize("expected", list(MUTATIONS))
def test_consistent_checksum_but_wrong_content(artifact_bytes, expected):
    data = _mutated(artifact_bytes, MUTATIONS[expected])
    with pytest.raises(BenchError, match=rf"^art\.bnch: corrupt or unreadable artifact: .*"
                                         rf"{re.escape(expected)}"):
        decode(data, "art.bnch")


def _with_crc(data: bytes) -> bytes:
    return data + struct.pack("<I", zlib.crc32(data))


def test_bad_frames(artifact_bytes):
    version, header, body = _split(artifact_bytes)
    inner = artifact_bytes[:-4]
    cases = {
        "unknown format version 2": _join(2, header, body),
        "not JSON": _join(version, zlib.compress(b"{not json", 9, -15), body, raw=True),
        "not deflate": _join(version, b"\xff\xfe\xfd", body, raw=True),
        "runs past": _with_crc(inner[:5] + struct.pack("<I", len(inner)) + inner[9:]),
    }
    for expected, data in cases.items():
        with pytest.raises(BenchError, match=re.escape(expected)):
            decode(data)
