"""Value codecs: float tensors as little-endian float32, float16 or bfloat16 bytes, and back."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from bench.artifact.format import VALUE_CODECS, ValueCodec
from bench.errors import BenchError

_NUMPY_DTYPE: dict[str, str] = {"float32": "<f4", "float16": "<f2", "bfloat16": "<u2"}
assert tuple(_NUMPY_DTYPE) == VALUE_CODECS  # one entry per codec the format names


def lossless(codec: str) -> bool:
    """Whether ``codec`` stores a float32 model's values exactly (float32 does; the 16-bit
    codecs round them)."""
    return codec == "float32"


def itemsize(codec: ValueCodec) -> int:
    """Bytes per value in ``codec``."""
    return np.dtype(_NUMPY_DTYPE[codec]).itemsize


def pack(values: Tensor, codec: str) -> bytes:
    """A float tensor's elements, row-major, in the value codec (little-endian)."""
    if not values.is_floating_point():
        raise BenchError(f"cannot store a {values.dtype} tensor as floating-point values")
    flat = values.detach().to("cpu", torch.float32).contiguous().reshape(-1)
    if codec == "float32":
        return flat.numpy().astype("<f4", copy=False).tobytes()
    if codec == "float16":
        return flat.to(torch.float16).numpy().astype("<f2", copy=False).tobytes()
    return flat.to(torch.bfloat16).view(torch.int16).numpy().astype("<i2", copy=False).tobytes()


def unpack(buf: bytes, count: int, codec: str) -> Tensor:
    """``count`` values of the value codec as a float32 CPU tensor."""
    array = np.frombuffer(buf, dtype=_NUMPY_DTYPE[codec], count=count)
    if codec == "bfloat16":
        bits = torch.from_numpy(array.astype(np.uint16).view(np.int16).copy())
        return bits.view(torch.bfloat16).to(torch.float32)
    return torch.from_numpy(array.astype(np.float32))
