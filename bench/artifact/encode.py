"""Writing an artifact: a model's bytes in the layout of ``bench.artifact.format``."""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from bench.artifact.codecs import pack
from bench.artifact.format import (
    ARCH_KEYS,
    CRC,
    FORMAT_VERSION,
    FRAME,
    FRAMING,
    MAGIC,
    RandomWeightConvention,
    ValueCodec,
    check_options,
    plan,
    unwrap,
)
from bench.artifact.maskcode import encode_mask
from bench.artifact.sources import PrototypeGroups, weight_entry
from bench.errors import BenchError
from bench.fsutil import write_atomic


@dataclass(frozen=True)
class ArtifactInfo:
    """Size of an encoded artifact, by component and per prunable tensor."""

    bytes: int  # == len(file)
    breakdown: dict[str, int]  # framing, header, masks, values, other_tensors, prototypes
    layers: list[dict]  # name, numel, kept, mask_codec, mask_bytes, weight, value_bytes


@dataclass(frozen=True)
class _Layer:
    """One prunable layer as encoded: header entry, info row, mask payload, kept values."""

    entry: list[Any]
    info: dict[str, Any]
    payload: bytes
    values: bytes


def _kept_mask(layer: nn.Module) -> Tensor | None:
    """The layer's flat boolean mask, or None when it has none or keeps everything."""
    mask = layer.current_mask()
    if mask is None:
        return None
    mask = mask.detach().cpu().contiguous().reshape(-1).to(torch.bool)
    return None if bool(mask.all()) else mask


def _encode_layer(
    name: str, layer: nn.Module, value_codec: str, convention: str, groups: PrototypeGroups
) -> _Layer:
    weight = layer.weight.detach().cpu().contiguous()
    flat = weight.reshape(-1)
    numel = flat.numel()
    mask = _kept_mask(layer)
    if mask is None:
        codec, ones, payload = None, numel, b""
    else:
        enc = encode_mask(mask)
        codec, ones, payload = enc.codec, enc.ones, enc.payload
    source = getattr(layer, "weight_source", None)
    values = b""
    if source is None:
        entry: Any = "values"
        values = pack(flat if mask is None else flat[mask], value_codec)
    else:
        entry = weight_entry(name, source, weight, mask, convention, groups)
    info = {
        "name": name, "numel": numel, "kept": ones, "mask_codec": codec or "none",
        "mask_bytes": len(payload),
        "weight": "values" if source is None else convention,
        "value_bytes": len(values),
    }
    return _Layer([numel, codec, ones, len(payload), entry], info, payload, values)


def _compressed_header(header_obj: dict[str, Any]) -> bytes:
    try:
        text = json.dumps(header_obj, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise BenchError(f"model.arch is not JSON-serialisable: {exc}") from None
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(text.encode()) + compressor.flush()


def _framed(header: bytes, parts: list[bytes]) -> bytes:
    """Magic, version, header length, header, the body parts, and the checksum."""
    out = bytearray(FRAME.pack(MAGIC, FORMAT_VERSION, len(header)))
    out += header
    for part in parts:
        out += part
    out += CRC.pack(zlib.crc32(out))
    return bytes(out)


def encode(
    model: nn.Module, *, value_codec: ValueCodec = "float32",
    random_weights: RandomWeightConvention = "seeded",
) -> tuple[bytes, ArtifactInfo]:
    """The artifact bytes of ``model`` (see ``bench.artifact.format``) and their breakdown.

    Trainable scores are stored as their current top-k mask; random weights as their recipe
    (``seeded``) or their prototype values (``stored``), checked against the layer first.
    """
    check_options(value_codec, random_weights)
    model = unwrap(model)
    arch = getattr(model, "arch", None)
    if not isinstance(arch, dict) or set(arch) != ARCH_KEYS:
        raise BenchError("model has no arch record (build it with bench.models.build_model)")
    layers, others, layout = plan(model)
    groups = PrototypeGroups()
    encoded = [_encode_layer(name, layer, value_codec, random_weights, groups)
               for name, layer in layers]
    proto_parts = groups.payloads()
    other_parts = [pack(tensor, value_codec) for _, tensor in others]
    header = _compressed_header({
        "arch": arch, "values": value_codec, "random": random_weights, "layout": layout,
        "layers": [e.entry for e in encoded], "prototypes": groups.header(),
    })
    layer_parts = [part for e in encoded for part in (e.payload, e.values)]
    data = _framed(header, [*layer_parts, *proto_parts, *other_parts])
    breakdown = {
        "framing": FRAMING,
        "header": len(header),
        "masks": sum(len(e.payload) for e in encoded),
        "values": sum(len(e.values) for e in encoded),
        "other_tensors": sum(map(len, other_parts)),
        "prototypes": sum(map(len, proto_parts)),
    }
    assert sum(breakdown.values()) == len(data)
    return data, ArtifactInfo(bytes=len(data), breakdown=breakdown,
                              layers=[e.info for e in encoded])


def save(
    model: nn.Module, path: Path, *, value_codec: ValueCodec = "float32",
    random_weights: RandomWeightConvention = "seeded",
) -> ArtifactInfo:
    """Encode ``model`` and write it to ``path`` atomically (temporary file, then rename)."""
    data, info = encode(model, value_codec=value_codec, random_weights=random_weights)
    write_atomic(Path(path), lambda f: f.write(data))
    return info
