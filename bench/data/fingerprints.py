"""The data's identity in run keys: a SHA-256 over the dataset name and its arrays."""

from __future__ import annotations

import hashlib

import numpy as np


def data_fingerprint(name: str, *arrays: np.ndarray) -> str:
    """SHA-256 (16 hex digits) over the dataset name and each array's dtype, shape and bytes."""
    digest = hashlib.sha256(name.encode())
    for a in arrays:
        a = np.ascontiguousarray(a)
        digest.update(f"|{a.dtype.str}{a.shape}|".encode())
        digest.update(a.data)
    return digest.hexdigest()[:16]
