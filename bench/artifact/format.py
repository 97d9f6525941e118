"""The artifact's byte layout: frame constants, codec names, the tensor plan and header checks.

Byte layout (version 1, integers little-endian)::

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

1. per prunable layer: its mask payload (``bench.artifact.maskcode``), then for trained weights only
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
from typing import Any, Literal, get_args

from torch import Tensor, nn

from bench.errors import BenchError
from bench.models import build_model, prunable_layers

MAGIC = b"BNCH"
FORMAT_VERSION = 1

ValueCodec = Literal["float32", "float16", "bfloat16"]
VALUE_CODECS: tuple[ValueCodec, ...] = get_args(ValueCodec)
RandomWeightConvention = Literal["seeded", "stored"]
RANDOM_WEIGHT_CONVENTIONS: tuple[RandomWeightConvention, ...] = get_args(RandomWeightConvention)

FRAME = struct.Struct("<4sBI")  # magic, version, compressed header length
CRC = struct.Struct("<I")
FRAMING = FRAME.size + CRC.size
HEADER_KEYS = ("arch", "values", "random", "layout", "layers", "prototypes")  # written order
ARCH_KEYS = frozenset({"name", "num_classes", "kwargs"})
MAX_HEADER = 256 << 20  # decompressed header bytes a reader accepts
U64 = 1 << 64
_SKIPPED_SUFFIXES = ("num_batches_tracked",)


class Corrupt(Exception):
    """What is wrong with an artifact; ``decode`` turns it into a BenchError."""


def check_options(value_codec: str, random_weights: str) -> None:
    """A BenchError unless both are names the format knows (the writer's check)."""
    if value_codec not in VALUE_CODECS:
        raise BenchError(f"unknown value codec {value_codec!r}; valid: {', '.join(VALUE_CODECS)}")
    if random_weights not in RANDOM_WEIGHT_CONVENTIONS:
        raise BenchError(f"unknown random-weight convention {random_weights!r}; "
                         f"valid: {', '.join(RANDOM_WEIGHT_CONVENTIONS)}")


def unwrap(model: nn.Module) -> nn.Module:
    """The module itself when ``model`` is a ``torch.compile`` wrapper."""
    inner = getattr(model, "_orig_mod", None)
    return inner if isinstance(inner, nn.Module) else model


def plan(model: nn.Module) -> tuple[list[tuple[str, nn.Module]], list[tuple[str, Tensor]], int]:
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


# ---------------------------------------------------------------- reading the header


def header_int(value: Any, what: str, low: int = 0, high: int | None = None) -> int:
    """``value`` as a JSON integer in ``[low, high)``, else Corrupt."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise Corrupt(f"{what} is {value!r}, not an integer")
    if value < low or (high is not None and value >= high):
        raise Corrupt(f"{what} = {value} is out of range")
    return value


def _check_frame(data: bytes) -> int:
    """The compressed header's length, once magic, version and checksum are checked."""
    if not data:
        raise Corrupt("empty file, not a bench artifact")
    if data[:len(MAGIC)] != MAGIC[:len(data)]:
        raise Corrupt("not a bench artifact (no BNCH magic)")
    if len(data) < FRAMING:
        raise Corrupt(f"truncated ({len(data)} bytes)")
    _, version, header_len = FRAME.unpack_from(data)
    if version != FORMAT_VERSION:
        raise Corrupt(f"unknown format version {version} (this bench reads {FORMAT_VERSION})")
    (stored_crc,) = CRC.unpack_from(data, len(data) - CRC.size)
    if zlib.crc32(memoryview(data)[:-CRC.size]) != stored_crc:
        raise Corrupt("checksum mismatch (damaged or truncated file)")
    return header_len


def read_header(data: bytes) -> tuple[dict[str, Any], int]:
    """The checked frame's JSON header and the offset where the body starts."""
    header_len = _check_frame(data)
    body = FRAME.size + header_len
    if body > len(data) - CRC.size:
        raise Corrupt(f"header length {header_len} runs past the end of the file")
    inflater = zlib.decompressobj(-15)
    try:
        text = inflater.decompress(data[FRAME.size:body], MAX_HEADER)
    except zlib.error as exc:
        raise Corrupt(f"header is not deflate data ({exc})") from None
    if not inflater.eof or inflater.unused_data or inflater.unconsumed_tail:
        raise Corrupt("header is not one complete deflate stream")
    try:
        header = json.loads(text.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise Corrupt(f"header is not JSON ({exc})") from None
    if not isinstance(header, dict) or set(header) != set(HEADER_KEYS):
        raise Corrupt("header does not have the expected fields")
    return header, body


def _reject_constant(name: str) -> None:
    raise ValueError(f"non-finite constant {name}")


def header_options(header: dict[str, Any]) -> tuple[ValueCodec, RandomWeightConvention]:
    """The header's value codec and random-weight convention, each checked (the reader's)."""
    value_codec, convention = header["values"], header["random"]
    if value_codec not in VALUE_CODECS:
        raise Corrupt(f"unknown value codec {value_codec!r}")
    if convention not in RANDOM_WEIGHT_CONVENTIONS:
        raise Corrupt(f"unknown random-weight convention {convention!r}")
    return value_codec, convention


def build(arch: Any) -> nn.Module:
    """The freshly built model a header's architecture record names."""
    if not isinstance(arch, dict) or set(arch) != ARCH_KEYS:
        raise Corrupt(f"bad architecture record {arch!r}")
    if not isinstance(arch["name"], str) or not isinstance(arch["kwargs"], dict):
        raise Corrupt(f"bad architecture record {arch!r}")
    try:
        return build_model(arch["name"], arch["num_classes"], **arch["kwargs"])
    except BenchError as exc:
        raise Corrupt(f"unknown architecture: {exc}") from None


def header_lists(
    header: dict[str, Any], layers: list[tuple[str, nn.Module]], convention: str, layout: int
) -> tuple[list[Any], list[Any]]:
    """The header's layer entries and prototype groups, checked against the built model."""
    if header["layout"] != layout:
        raise Corrupt("the architecture's tensors differ from the ones encoded")
    entries, groups = header["layers"], header["prototypes"]
    if not isinstance(entries, list) or len(entries) != len(layers):
        raise Corrupt(f"header lists {len(entries) if isinstance(entries, list) else '?'} "
                      f"prunable layers, the architecture has {len(layers)}")
    if not isinstance(groups, list) or (groups and convention != "stored"):
        raise Corrupt("bad prototype list")
    return entries, groups
