"""Reading the official python-version CIFAR batch files: a restricted unpickler (no code
runs), every defect (missing, corrupt, wrong shape or labels) a one-line error naming the file."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from bench.data.datasets import IMAGE_SHAPE, dataset_info
from bench.data.fetch import ensure_dataset
from bench.errors import BenchError

_ROW = 3 * 32 * 32
_NUMPY_GLOBALS = {"_reconstruct", "ndarray", "dtype", "scalar", "_frombuffer"}


class _CifarUnpickler(pickle.Unpickler):
    """Loads only what CIFAR batch files hold (dicts, lists, numpy arrays): no code runs."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "_codecs" and name == "encode":  # bytes pickled by Python 3, protocol 2
            return super().find_class(module, name)
        if (module == "numpy" or module.startswith("numpy.")) and name in _NUMPY_GLOBALS:
            if module.startswith("numpy.core"):  # NumPy 1 name of numpy._core (NumPy 2)
                try:
                    return super().find_class("numpy._core" + module[len("numpy.core"):], name)
                except (ImportError, AttributeError):
                    pass
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"unexpected global {module}.{name}")


def _read_batch(path: Path, label_key: bytes, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """One official batch file as (uint8 [n,3,32,32], int64 [n]); any defect names the file."""
    try:
        with open(path, "rb") as f:
            obj = _CifarUnpickler(f, encoding="bytes").load()
    except FileNotFoundError:
        raise BenchError(f"CIFAR file {path} is missing") from None
    except Exception as e:  # truncated or garbage pickles raise many different types
        raise BenchError(
            f"CIFAR file {path} is corrupt or not a CIFAR batch ({type(e).__name__}: {e}); "
            f"replace it with the official file"
        ) from None
    if not isinstance(obj, dict):
        raise BenchError(f"CIFAR file {path} holds a {type(obj).__name__}, not a batch dict")
    for key in (b"data", label_key):
        if key not in obj:
            raise BenchError(f"CIFAR file {path} has no {key.decode()!r} entry")
    data = np.asarray(obj[b"data"])
    if data.ndim != 2 or data.shape[1] != _ROW or data.dtype != np.uint8:
        raise BenchError(
            f"CIFAR file {path}: 'data' is {data.dtype} {list(data.shape)}, "
            f"expected uint8 [n, {_ROW}]"
        )
    try:
        labels = np.asarray(obj[label_key], dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        labels = np.zeros(0, dtype=np.float64)  # reported as malformed just below
    key = label_key.decode()
    if labels.dtype != np.int64 or labels.shape != (data.shape[0],):
        raise BenchError(
            f"CIFAR file {path}: {key!r} must be {data.shape[0]} integers (one per image)"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise BenchError(
            f"CIFAR file {path}: {key!r} has labels in [{labels.min()}, {labels.max()}], "
            f"expected [0, {num_classes - 1}]"
        )
    # Official rows are channel-planar: 1024 red, then 1024 green, then 1024 blue values.
    return np.ascontiguousarray(data.reshape(-1, *IMAGE_SHAPE)), labels


def load_split(
    name: str, data_dir: Path | None, split: str, download: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """One split as images uint8 [N,3,32,32] and labels int64 [N], in file order."""
    info = dataset_info(name)
    files = info.files(split)
    folder = ensure_dataset(name, data_dir, download)
    parts = [_read_batch(folder / f, info.label_key, info.num_classes) for f in files]
    images = np.concatenate([x for x, _ in parts]) if len(parts) > 1 else parts[0][0]
    labels = np.concatenate([y for _, y in parts]) if len(parts) > 1 else parts[0][1]
    return images, labels
