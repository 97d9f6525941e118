"""Reading an artifact: the eval-mode CPU model its bytes rebuild, every field checked."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from bench.artifact.codecs import itemsize, unpack
from bench.artifact.format import (
    CRC,
    Corrupt,
    build,
    header_int,
    header_lists,
    header_options,
    plan,
    read_header,
)
from bench.artifact.maskcode import CODECS as MASK_CODECS
from bench.artifact.maskcode import EncodedMask, decode_mask
from bench.artifact.sources import (
    Prototype,
    read_prototypes,
    recipe,
    set_from_prototype,
    stored_entry,
)
from bench.errors import BenchError
from bench.models.masked_weights import RandomWeights


class _Reader:
    """Sequential reads from the body, which ends where the checksum begins."""

    def __init__(self, data: bytes, start: int, end: int) -> None:
        self.data, self.pos, self.end = data, start, end

    def take(self, n: int, what: str) -> bytes:
        if n > self.end - self.pos:
            raise Corrupt(f"body ends inside {what} ({n} bytes needed, "
                          f"{self.end - self.pos} left)")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk


@dataclass(frozen=True)
class _Pending:
    """A prunable layer read from the body, applied once the prototypes are read too.

    ``source``: None (``values`` holds the kept trained weights), a RandomWeights
    (``seeded``) or ``(group, period)`` (``stored``).
    """

    layer: nn.Module
    mask: Tensor | None
    values: Tensor | None
    source: RandomWeights | tuple[int, int | None] | None


def _read_mask(reader: _Reader, what: str, entry: list[Any], expected: int) -> Tensor | None:
    """The layer's mask (None when it keeps everything) from its entry and payload."""
    numel, codec, ones, nbytes, _ = entry
    if header_int(numel, f"{what} numel") != expected:
        raise Corrupt(f"{what}: mask of {numel} entries, the layer has {expected} weights")
    ones = header_int(ones, f"{what} ones", 0, numel + 1)
    payload = reader.take(header_int(nbytes, f"{what} mask length"), f"{what} mask")
    if codec is None:
        if ones != numel or payload:
            raise Corrupt(f"{what}: no mask but {ones} of {numel} kept, {nbytes} mask bytes")
        return None
    if codec not in MASK_CODECS:
        raise Corrupt(f"{what}: unknown mask codec {codec!r}")
    try:
        flat = decode_mask(EncodedMask(codec, numel, ones, payload))
    except BenchError as exc:
        raise Corrupt(f"{what}: {exc}") from None
    return None if ones == numel else torch.from_numpy(flat)


def _read_layer(
    reader: _Reader, name: str, layer: nn.Module, entry: Any, value_codec: str,
    convention: str, n_groups: int,
) -> _Pending:
    what = f"layer {name}"
    if not isinstance(entry, list) or len(entry) != 5:
        raise Corrupt(f"{what}: bad entry {entry!r}")
    mask = _read_mask(reader, what, entry, layer.weight.numel())
    ones, weight = entry[2], entry[4]
    if weight == "values":
        raw = reader.take(ones * itemsize(value_codec), f"{what} values")
        return _Pending(layer, mask, unpack(raw, ones, value_codec), None)
    if convention == "seeded":
        return _Pending(layer, mask, None, recipe(weight, what))
    return _Pending(layer, mask, None, stored_entry(weight, what, n_groups))


def _restore(pending: _Pending, prototypes: list[Prototype]) -> None:
    """Set a layer's weights and mask (under ``torch.no_grad``)."""
    layer, mask, source = pending.layer, pending.mask, pending.source
    shape = tuple(layer.weight.shape)
    if isinstance(source, RandomWeights):
        layer.set_random_weights(source)
    elif source is not None:
        set_from_prototype(layer, source[0], source[1], prototypes)
    else:
        dense = torch.zeros(layer.weight.numel(), dtype=torch.float32)
        if mask is None:
            dense.copy_(pending.values)
        else:
            dense[mask] = pending.values
        layer.weight.copy_(dense.reshape(shape))
    if mask is not None:
        layer.set_mask(mask.reshape(shape))


def _decode(data: bytes) -> nn.Module:
    header, start = read_header(data)
    value_codec, convention = header_options(header)
    model = build(header["arch"])
    layers, others, layout = plan(model)
    entries, groups = header_lists(header, layers, convention, layout)
    reader = _Reader(data, start, len(data) - CRC.size)
    pending = [_read_layer(reader, name, layer, entry, value_codec, convention, len(groups))
               for (name, layer), entry in zip(layers, entries)]
    prototypes = read_prototypes(groups, reader.take)
    size = itemsize(value_codec)
    with torch.no_grad():
        for item in pending:
            _restore(item, prototypes)
        for key, tensor in others:
            raw = reader.take(tensor.numel() * size, key)
            tensor.copy_(unpack(raw, tensor.numel(), value_codec).reshape(tensor.shape))
    if reader.pos != reader.end:
        raise Corrupt(f"{reader.end - reader.pos} unexpected bytes after the last tensor")
    return model.eval()


def decode(data: bytes, source: str = "<bytes>") -> nn.Module:
    """The eval-mode CPU model an artifact encodes; anything wrong raises BenchError."""
    try:
        return _decode(bytes(data))
    except Corrupt as exc:
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
