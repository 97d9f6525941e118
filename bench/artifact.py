"""The compressed artifact: one file that rebuilds the evaluated network, and nothing else.

The bytes a record reports are ``len`` of this file and its accuracy is that of the model
decoded from it (``docs/bytes.md``). Nothing is pickled. Byte layout (version 1, integers
little-endian)::

    b"BNCH"  u8 version  u32 H  header[H]  body  u32 crc32(everything before it)

``header`` is raw-deflate-compressed UTF-8 JSON::

    {"arch": model.arch, "values": value codec, "random": random-weight convention,
     "layout": crc32 of the names and shapes of the inference tensors,
     "layers": [[numel, mask codec | null, ones, payload bytes, weight], ...],
     "prototypes": [[scheme, seed, stream, fan_in, length], ...]}

with one ``layers`` entry per prunable tensor in ``prunable_layers`` order. The mask codec
is null when the layer has no mask or an all-ones one (then ``ones == numel``); ``weight``
is ``"values"`` (trained weights), a ``RandomWeights`` dict (``seeded``) or
``{"group": g, "period": p}`` (``stored``: prototype group ``g``). The body holds, in order:

1. per prunable layer: its mask payload (``bench.maskcode``), then for trained weights only
   the ``ones`` kept values, row-major over the logical shape, in the value codec;
2. ``stored`` only: per prototype group, ``length`` float32 values: the first values of
   its stream, as many as its layers need (``min(period, numel)`` or ``numel``);
3. every other tensor inference needs (biases, norm parameters and running statistics,
   embeddings), in ``state_dict`` order, in the value codec; names and shapes come from
   the architecture the header names.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from bench.errors import BenchError
from bench.fsutil import write_atomic
from bench.maskcode import CODECS as MASK_CODECS
from bench.maskcode import EncodedMask, decode_mask, encode_mask
from bench.masking import SCHEMES, RandomWeights
from bench.models import build_model, prunable_layers

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "RANDOM_WEIGHT_CONVENTIONS",
    "VALUE_CODECS",
    "ArtifactInfo",
    "decode",
    "encode",
    "load",
    "save",
]

MAGIC = b"BNCH"
FORMAT_VERSION = 1
VALUE_CODECS = ("float32", "float16", "bfloat16")
RANDOM_WEIGHT_CONVENTIONS = ("seeded", "stored")

_FRAME = struct.Struct("<4sBI")  # magic, version, compressed header length
_CRC = struct.Struct("<I")
_FRAMING = _FRAME.size + _CRC.size
_NUMPY_DTYPE = {"float32": "<f4", "float16": "<f2", "bfloat16": "<u2"}
_ITEMSIZE = {"float32": 4, "float16": 2, "bfloat16": 2}
_MAX_HEADER = 256 << 20  # decompressed header bytes a reader accepts
_U64 = 1 << 64
_SKIPPED_SUFFIXES = ("num_batches_tracked",)


@dataclass(frozen=True)
class ArtifactInfo:
    """Size of an encoded artifact, by component and per prunable tensor."""

    bytes: int  # == len(file)
    breakdown: dict[str, int]  # framing, header, masks, values, other_tensors, prototypes
    layers: list[dict]  # name, numel, kept, mask_codec, mask_bytes, weight, value_bytes


# ---------------------------------------------------------------- shared helpers


def _unwrap(model: nn.Module) -> nn.Module:
    """The module itself when ``model`` is a ``torch.compile`` wrapper."""
    inner = getattr(model, "_orig_mod", None)
    return inner if isinstance(inner, nn.Module) else model


def _plan(model: nn.Module) -> tuple[list[tuple[str, nn.Module]], list[tuple[str, Tensor]], int]:
    """Prunable layers, the other inference tensors (state_dict order) and the layout CRC."""
    layers = prunable_layers(model)
    prunable = {name for name, _ in layers}
    skip = {f"{name}.{attr}" for name in prunable for attr in ("weight", "mask", "scores")}
    others: list[tuple[str, Tensor]] = []
    described: list[str] = []
    for key, tensor in model.state_dict().items():
        if key.rsplit(".", 1)[-1] in _SKIPPED_SUFFIXES:
            continue
        if key in skip:
            if key.endswith(".weight"):
                described.append(f"{key}:{tuple(tensor.shape)}")
            continue
        others.append((key, tensor))
        described.append(f"{key}:{tuple(tensor.shape)}")
    return layers, others, zlib.crc32("\n".join(described).encode())


def _pack(values: Tensor, codec: str) -> bytes:
    """A float tensor's elements, row-major, in the value codec (little-endian)."""
    if not values.is_floating_point():
        raise BenchError(f"cannot store a {values.dtype} tensor as floating-point values")
    flat = values.detach().to("cpu", torch.float32).contiguous().reshape(-1)
    if codec == "float32":
        return flat.numpy().astype("<f4", copy=False).tobytes()
    if codec == "float16":
        return flat.to(torch.float16).numpy().astype("<f2", copy=False).tobytes()
    return flat.to(torch.bfloat16).view(torch.int16).numpy().astype("<i2", copy=False).tobytes()


def _unpack(buf: bytes, count: int, codec: str) -> Tensor:
    """``count`` values of the value codec as a float32 CPU tensor."""
    array = np.frombuffer(buf, dtype=_NUMPY_DTYPE[codec], count=count)
    if codec == "bfloat16":
        bits = torch.from_numpy(array.astype(np.uint16).view(np.int16).copy())
        return bits.view(torch.bfloat16).to(torch.float32)
    return torch.from_numpy(array.astype(np.float32))


def _needed(source: RandomWeights, numel: int) -> int:
    """How many leading stream values a layer of ``numel`` weights reads."""
    return numel if source.period is None else min(source.period, numel)


def _from_prototype(proto: Tensor, period: int | None, numel: int) -> Tensor:
    """A layer's flat weights from its group's prototype, as ``RandomWeights.materialize``."""
    if period is None:
        return proto[:numel].clone()
    p = min(period, numel)
    if p == 0:
        return proto[:0].clone()
    return proto[:p].repeat(-(-numel // p))[:numel]


# ---------------------------------------------------------------- encoding


def encode(
    model: nn.Module, *, value_codec: str = "float32", random_weights: str = "seeded"
) -> tuple[bytes, ArtifactInfo]:
    """The artifact bytes of ``model`` (see the module docstring) and their breakdown.

    Trainable scores are stored as their current top-k mask; random weights as their recipe
    (``seeded``) or their prototype values (``stored``), checked against the layer first.
    """
    if value_codec not in VALUE_CODECS:
        raise BenchError(f"unknown value codec {value_codec!r}; valid: {', '.join(VALUE_CODECS)}")
    if random_weights not in RANDOM_WEIGHT_CONVENTIONS:
        raise BenchError(f"unknown random-weight convention {random_weights!r}; "
                         f"valid: {', '.join(RANDOM_WEIGHT_CONVENTIONS)}")
    model = _unwrap(model)
    arch = getattr(model, "arch", None)
    if not isinstance(arch, dict) or set(arch) != {"name", "num_classes", "kwargs"}:
        raise BenchError("model has no arch record (build it with bench.models.build_model)")
    layers, others, layout = _plan(model)

    entries: list[list[Any]] = []
    infos: list[dict[str, Any]] = []
    layer_parts: list[bytes] = []
    groups: dict[tuple[str, int, int, int], int] = {}
    group_lengths: list[int] = []
    mask_total = value_total = 0
    for name, layer in layers:
        weight = layer.weight.detach().cpu().contiguous()
        flat = weight.reshape(-1)
        numel = flat.numel()
        mask = layer.current_mask()
        if mask is not None:
            mask = mask.detach().cpu().contiguous().reshape(-1).to(torch.bool)
            if bool(mask.all()):
                mask = None
        if mask is None:
            codec, ones, payload = None, numel, b""
        else:
            enc = encode_mask(mask)
            codec, ones, payload = enc.codec, enc.ones, enc.payload
        source = getattr(layer, "weight_source", None)
        values = b""
        if source is None:
            entry: Any = "values"
            values = _pack(flat if mask is None else flat[mask], value_codec)
        else:
            if not isinstance(source, RandomWeights):
                raise BenchError(f"layer {name}: weight_source is {type(source).__name__}, "
                                 "not RandomWeights")
            expected = source.materialize(tuple(weight.shape)).reshape(-1)
            kept, want = (flat, expected) if mask is None else (flat[mask], expected[mask])
            if not torch.equal(kept.to(torch.float32), want):
                raise BenchError(f"layer {name}: weights differ from their random-weight recipe "
                                 f"{source.as_dict()} (were they trained or rescaled?)")
            if random_weights == "seeded":
                entry = source.as_dict()
            else:
                key = (source.scheme, source.seed, source.stream, source.fan_in)
                group = groups.setdefault(key, len(groups))
                if group == len(group_lengths):
                    group_lengths.append(0)
                group_lengths[group] = max(group_lengths[group], _needed(source, numel))
                entry = {"group": group, "period": source.period}
        entries.append([numel, codec, ones, len(payload), entry])
        layer_parts += [payload, values]
        mask_total += len(payload)
        value_total += len(values)
        infos.append({
            "name": name, "numel": numel, "kept": ones, "mask_codec": codec or "none",
            "mask_bytes": len(payload),
            "weight": "values" if source is None else random_weights,
            "value_bytes": len(values),
        })

    prototypes = [[*key, length] for key, length in zip(groups, group_lengths)]
    proto_parts = [
        _pack(RandomWeights(key[0], key[1], key[2], key[3]).values(length), "float32")
        for key, length in zip(groups, group_lengths)
    ]
    other_parts = [_pack(tensor, value_codec) for _, tensor in others]

    header_obj = {
        "arch": arch, "values": value_codec, "random": random_weights, "layout": layout,
        "layers": entries, "prototypes": prototypes,
    }
    try:
        text = json.dumps(header_obj, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise BenchError(f"model.arch is not JSON-serialisable: {exc}") from None
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    header = compressor.compress(text.encode()) + compressor.flush()

    out = bytearray(_FRAME.pack(MAGIC, FORMAT_VERSION, len(header)))
    out += header
    for part in (*layer_parts, *proto_parts, *other_parts):
        out += part
    out += _CRC.pack(zlib.crc32(out))
    data = bytes(out)
    breakdown = {
        "framing": _FRAMING,
        "header": len(header),
        "masks": mask_total,
        "values": value_total,
        "other_tensors": sum(map(len, other_parts)),
        "prototypes": sum(map(len, proto_parts)),
    }
    assert sum(breakdown.values()) == len(data)
    return data, ArtifactInfo(bytes=len(data), breakdown=breakdown, layers=infos)


def save(
    model: nn.Module, path: Path, *, value_codec: str = "float32", random_weights: str = "seeded"
) -> ArtifactInfo:
    """Encode ``model`` and write it to ``path`` atomically (temporary file, then rename)."""
    data, info = encode(model, value_codec=value_codec, random_weights=random_weights)
    write_atomic(Path(path), lambda f: f.write(data))
    return info


# ---------------------------------------------------------------- decoding


class _Corrupt(Exception):
    """What is wrong with an artifact; ``decode`` turns it into a BenchError."""


class _Reader:
    """Sequential reads from the body, which ends where the checksum begins."""

    def __init__(self, data: bytes, start: int, end: int) -> None:
        self.data, self.pos, self.end = data, start, end

    def take(self, n: int, what: str) -> bytes:
        if n > self.end - self.pos:
            raise _Corrupt(f"body ends inside {what} ({n} bytes needed, "
                           f"{self.end - self.pos} left)")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk


def _int(value: Any, what: str, low: int = 0, high: int | None = None) -> int:
    """``value`` as a JSON integer in ``[low, high)``, else _Corrupt."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Corrupt(f"{what} is {value!r}, not an integer")
    if value < low or (high is not None and value >= high):
        raise _Corrupt(f"{what} = {value} is out of range")
    return value


def _recipe(value: Any, what: str) -> RandomWeights:
    """A RandomWeights from its header dict, every field checked."""
    fields = ("scheme", "seed", "stream", "fan_in", "period")
    if not isinstance(value, dict) or set(value) != set(fields):
        raise _Corrupt(f"{what}: bad random-weight recipe {value!r}")
    if value["scheme"] not in SCHEMES:
        raise _Corrupt(f"{what}: unknown weight scheme {value['scheme']!r}")
    period = value["period"]
    return RandomWeights(
        value["scheme"],
        _int(value["seed"], f"{what} seed", 0, _U64),
        _int(value["stream"], f"{what} stream", 0, _U64),
        _int(value["fan_in"], f"{what} fan_in", 1),
        None if period is None else _int(period, f"{what} period", 1),
    )


def _read_header(data: bytes) -> tuple[dict[str, Any], int]:
    """The checked frame's JSON header and the offset where the body starts."""
    if not data:
        raise _Corrupt("empty file, not a bench artifact")
    if data[:len(MAGIC)] != MAGIC[:len(data)]:
        raise _Corrupt("not a bench artifact (no BNCH magic)")
    if len(data) < _FRAMING:
        raise _Corrupt(f"truncated ({len(data)} bytes)")
    _, version, header_len = _FRAME.unpack_from(data)
    if version != FORMAT_VERSION:
        raise _Corrupt(f"unknown format version {version} (this bench reads {FORMAT_VERSION})")
    (stored_crc,) = _CRC.unpack_from(data, len(data) - _CRC.size)
    if zlib.crc32(memoryview(data)[:-_CRC.size]) != stored_crc:
        raise _Corrupt("checksum mismatch (damaged or truncated file)")
    body = _FRAME.size + header_len
    if body > len(data) - _CRC.size:
        raise _Corrupt(f"header length {header_len} runs past the end of the file")
    inflater = zlib.decompressobj(-15)
    try:
        text = inflater.decompress(data[_FRAME.size:body], _MAX_HEADER)
    except zlib.error as exc:
        raise _Corrupt(f"header is not deflate data ({exc})") from None
    if not inflater.eof or inflater.unused_data or inflater.unconsumed_tail:
        raise _Corrupt("header is not one complete deflate stream")
    try:
        header = json.loads(text.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _Corrupt(f"header is not JSON ({exc})") from None
    keys = {"arch", "values", "random", "layout", "layers", "prototypes"}
    if not isinstance(header, dict) or set(header) != keys:
        raise _Corrupt("header does not have the expected fields")
    return header, body


def _reject_constant(name: str) -> None:
    raise ValueError(f"non-finite constant {name}")


def _build(arch: Any) -> nn.Module:
    if not isinstance(arch, dict) or set(arch) != {"name", "num_classes", "kwargs"}:
        raise _Corrupt(f"bad architecture record {arch!r}")
    if not isinstance(arch["name"], str) or not isinstance(arch["kwargs"], dict):
        raise _Corrupt(f"bad architecture record {arch!r}")
    try:
        return build_model(arch["name"], arch["num_classes"], **arch["kwargs"])
    except BenchError as exc:
        raise _Corrupt(f"unknown architecture: {exc}") from None


def _decode(data: bytes) -> nn.Module:
    header, start = _read_header(data)
    value_codec, convention = header["values"], header["random"]
    if value_codec not in VALUE_CODECS:
        raise _Corrupt(f"unknown value codec {value_codec!r}")
    if convention not in RANDOM_WEIGHT_CONVENTIONS:
        raise _Corrupt(f"unknown random-weight convention {convention!r}")
    model = _build(header["arch"])
    layers, others, layout = _plan(model)
    if header["layout"] != layout:
        raise _Corrupt("the architecture's tensors differ from the ones encoded")
    entries, groups = header["layers"], header["prototypes"]
    if not isinstance(entries, list) or len(entries) != len(layers):
        raise _Corrupt(f"header lists {len(entries) if isinstance(entries, list) else '?'} "
                       f"prunable layers, the architecture has {len(layers)}")
    if not isinstance(groups, list) or (groups and convention != "stored"):
        raise _Corrupt("bad prototype list")
    itemsize = _ITEMSIZE[value_codec]
    reader = _Reader(data, start, len(data) - _CRC.size)

    pending = []
    for (name, layer), entry in zip(layers, entries):
        what = f"layer {name}"
        if not isinstance(entry, list) or len(entry) != 5:
            raise _Corrupt(f"{what}: bad entry {entry!r}")
        numel, codec, ones, nbytes, weight = entry
        expected = layer.weight.numel()
        if _int(numel, f"{what} numel") != expected:
            raise _Corrupt(f"{what}: mask of {numel} entries, the layer has {expected} weights")
        ones = _int(ones, f"{what} ones", 0, numel + 1)
        payload = reader.take(_int(nbytes, f"{what} mask length"), f"{what} mask")
        if codec is None:
            if ones != numel or payload:
                raise _Corrupt(f"{what}: no mask but {ones} of {numel} kept, {nbytes} mask bytes")
            mask = None
        elif codec not in MASK_CODECS:
            raise _Corrupt(f"{what}: unknown mask codec {codec!r}")
        else:
            try:
                flat = decode_mask(EncodedMask(codec, numel, ones, payload))
            except BenchError as exc:
                raise _Corrupt(f"{what}: {exc}") from None
            mask = None if ones == numel else torch.from_numpy(flat)
        if weight == "values":
            raw = reader.take(ones * itemsize, f"{what} values")
            pending.append((layer, mask, _unpack(raw, ones, value_codec), None))
        elif convention == "seeded":
            pending.append((layer, mask, None, _recipe(weight, what)))
        else:
            if not isinstance(weight, dict) or set(weight) != {"group", "period"}:
                raise _Corrupt(f"{what}: bad weight entry {weight!r}")
            group = _int(weight["group"], f"{what} prototype group", 0, len(groups))
            period = weight["period"]
            period = None if period is None else _int(period, f"{what} period", 1)
            pending.append((layer, mask, None, (group, period)))

    prototypes: list[tuple[RandomWeights, Tensor]] = []
    for g, spec in enumerate(groups):
        if not isinstance(spec, list) or len(spec) != 5:
            raise _Corrupt(f"bad prototype entry {spec!r}")
        scheme, seed, stream, fan_in, length = spec
        source = _recipe({"scheme": scheme, "seed": seed, "stream": stream, "fan_in": fan_in,
                          "period": None}, f"prototype {g}")
        length = _int(length, f"prototype {g} length")
        raw = reader.take(4 * length, f"prototype {g}")
        prototypes.append((source, _unpack(raw, length, "float32")))

    with torch.no_grad():
        for layer, mask, values, source in pending:
            shape = tuple(layer.weight.shape)
            numel = layer.weight.numel()
            if isinstance(source, RandomWeights):
                layer.set_random_weights(source)
            elif source is not None:
                group, period = source
                base, proto = prototypes[group]
                if len(proto) < (numel if period is None else min(period, numel)):
                    raise _Corrupt(f"prototype {group} is too short for a layer of {shape}")
                layer.weight.copy_(_from_prototype(proto, period, numel).reshape(shape))
                layer.weight.requires_grad_(False)
                layer.weight_source = RandomWeights(base.scheme, base.seed, base.stream,
                                                    base.fan_in, period)
            else:
                dense = torch.zeros(numel, dtype=torch.float32)
                if mask is None:
                    dense.copy_(values)
                else:
                    dense[mask] = values
                layer.weight.copy_(dense.reshape(shape))
            if mask is not None:
                layer.set_mask(mask.reshape(shape))
        for key, tensor in others:
            raw = reader.take(tensor.numel() * itemsize, key)
            tensor.copy_(_unpack(raw, tensor.numel(), value_codec).reshape(tensor.shape))
    if reader.pos != reader.end:
        raise _Corrupt(f"{reader.end - reader.pos} unexpected bytes after the last tensor")
    return model.eval()


def decode(data: bytes, source: str = "<bytes>") -> nn.Module:
    """The eval-mode CPU model an artifact encodes; anything wrong raises BenchError."""
    try:
        return _decode(bytes(data))
    except _Corrupt as exc:
        raise BenchError(f"{source}: corrupt or unreadable artifact: {exc}") from None
    except Exception as exc:  # never another exception type, never a wrong model
        raise BenchError(f"{source}: corrupt or unreadable artifact: "
                         f"{type(exc).__name__}: {exc}") from exc


def load(path: Path) -> nn.Module:
    """Decode the artifact file at ``path`` (nothing else needed) into an eval-mode CPU model."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise BenchError(f"{path}: corrupt or unreadable artifact: cannot read "
                         f"({exc.strerror or exc})") from None
    return decode(data, str(path))
