"""Binary mask coding at the entropy: range coding, packed bits, or nothing for constant masks.

Codecs (the writer keeps whichever payload is smallest; see ``docs/bytes.md``):

- ``const``: all ones or all zeros; empty payload.
- ``bits``: ``np.packbits(mask, bitorder="little")``, ``ceil(numel / 8)`` bytes, padding bits 0.
- ``range``: ``constriction``'s range coder (``stream.queue.RangeEncoder``) with the i.i.d.
  Bernoulli model ``Categorical([1 - p, p], perfect=False)``, ``p = ones / numel`` rebuilt from
  the stored integers on both sides; the payload is the compressed uint32 words, little-endian.
  The model's fixed-point quantization belongs to the format: a test pins a payload so that a
  ``constriction`` release that changes it is noticed.

``numel`` and ``ones`` live in the artifact's header; ``decode_mask`` trusts ``numel`` as the
size the caller expects (check it against the tensor's shape first) and checks everything else.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Literal, get_args

import constriction
import numpy as np
import torch

from bench.errors import BenchError

__all__ = ["CODECS", "EncodedMask", "MaskCodec", "encode_mask", "decode_mask", "entropy_bits"]

MaskCodec = Literal["range", "bits", "const"]
CODECS: tuple[MaskCodec, ...] = get_args(MaskCodec)


@dataclass(frozen=True)
class EncodedMask:
    """A flat boolean mask as stored: codec name, length, number of ones and payload bytes."""

    codec: MaskCodec
    numel: int
    ones: int
    payload: bytes


def entropy_bits(numel: int, ones: int) -> float:
    """``numel * H(ones / numel)`` in bits: the Shannon bound for an i.i.d. mask of that density."""
    if not 0 <= ones <= numel:
        raise ValueError(f"need 0 <= ones <= numel, got ones={ones}, numel={numel}")
    if ones in (0, numel):
        return 0.0
    zeros = numel - ones
    return -(ones * math.log2(ones / numel) + zeros * math.log2(zeros / numel))


def _flat_bool(mask: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().to("cpu").numpy()
    array = np.asarray(mask)
    if array.dtype != np.bool_:
        raise TypeError(f"mask must be a boolean array or tensor, got dtype {array.dtype}")
    return array.reshape(-1)


def _model(numel: int, ones: int) -> constriction.stream.model.Categorical:
    """The Bernoulli model both sides build from the stored integers."""
    p = ones / numel
    probabilities = np.array([1.0 - p, p], dtype=np.float64)
    return constriction.stream.model.Categorical(probabilities, perfect=False)


def _range_words(symbols: np.ndarray, numel: int, ones: int) -> np.ndarray:
    encoder = constriction.stream.queue.RangeEncoder()
    encoder.encode(symbols, _model(numel, ones))
    return encoder.get_compressed()


def encode_mask(mask: np.ndarray | torch.Tensor) -> EncodedMask:
    """Encode a boolean mask (any shape, read flat in C order) with the smallest codec."""
    flat = _flat_bool(mask)
    numel = int(flat.size)
    ones = int(np.count_nonzero(flat))
    if ones in (0, numel):
        return EncodedMask("const", numel, ones, b"")
    packed = np.packbits(flat, bitorder="little").tobytes()
    words = _range_words(flat.astype(np.int32), numel, ones)
    ranged = words.astype("<u4").tobytes()
    if len(ranged) < len(packed):
        return EncodedMask("range", numel, ones, ranged)
    return EncodedMask("bits", numel, ones, packed)


def _corrupt(why: str) -> BenchError:
    return BenchError(f"corrupt mask payload: {why}")


def decode_mask(enc: EncodedMask) -> np.ndarray:
    """Decode to a flat bool array of length ``enc.numel``; inconsistent input raises BenchError."""
    codec, payload = enc.codec, enc.payload
    if codec not in CODECS:
        raise _corrupt(f"unknown mask codec {codec!r}")
    try:
        numel, ones = operator.index(enc.numel), operator.index(enc.ones)
    except TypeError:
        numel = ones = -1
    if not 0 <= ones <= numel:
        raise _corrupt(f"bad counts numel={enc.numel!r}, ones={enc.ones!r}")
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise _corrupt(f"payload is {type(payload).__name__}, not bytes")
    payload = bytes(payload)
    if codec == "const":
        if payload or ones not in (0, numel):
            raise _corrupt(f"const mask with {ones} of {numel} ones and {len(payload)} bytes")
        return np.full(numel, ones == numel and numel > 0, dtype=bool)
    if codec == "bits":
        return _decode_bits(payload, numel, ones)
    return _decode_range(payload, numel, ones)


def _decode_bits(payload: bytes, numel: int, ones: int) -> np.ndarray:
    expected = -(-numel // 8)
    if len(payload) != expected:
        raise _corrupt(f"bits payload of {len(payload)} bytes, expected {expected}")
    bits = np.unpackbits(np.frombuffer(payload, dtype=np.uint8), bitorder="little")
    if bits[numel:].any():
        raise _corrupt("nonzero padding bits")
    mask = bits[:numel].astype(bool)
    _check_count(mask, ones)
    return mask


def _decode_range(payload: bytes, numel: int, ones: int) -> np.ndarray:
    if not 0 < ones < numel:
        raise _corrupt(f"range-coded mask with {ones} of {numel} ones")
    if not payload or len(payload) % 4:
        raise _corrupt(f"range payload of {len(payload)} bytes is not a whole number of words")
    words = np.frombuffer(payload, dtype="<u4").astype(np.uint32)
    try:
        decoder = constriction.stream.queue.RangeDecoder(words)
        symbols = decoder.decode(_model(numel, ones), numel)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # constriction may raise anything, incl. a Rust panic
        detail = (str(exc).splitlines() or [""])[0]
        raise _corrupt(f"range decoder failed ({type(exc).__name__}: {detail})") from exc
    symbols = np.asarray(symbols)
    if symbols.shape != (numel,) or ((symbols != 0) & (symbols != 1)).any():
        raise _corrupt("range decoder returned symbols outside {0, 1}")
    mask = symbols.astype(bool)
    _check_count(mask, ones)
    # The encoder is deterministic, so a sound payload is exactly the encoding of its mask.
    if _range_words(symbols.astype(np.int32, copy=False), numel, ones).astype("<u4").tobytes() \
            != payload:
        raise _corrupt("range payload is not the encoding of the mask it decodes to")
    return mask


def _check_count(mask: np.ndarray, ones: int) -> None:
    found = int(np.count_nonzero(mask))
    if found != ones:
        raise _corrupt(f"decoded {found} ones, header says {ones}")
