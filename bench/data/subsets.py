"""Class-balanced subsets of a split: the same images for every run seed and method."""

from __future__ import annotations

import numpy as np

from bench.errors import BenchError


def check_balanced(n: int, num_classes: int) -> None:
    """A subset of ``n`` images can hold the same number of each of ``num_classes`` classes
    (else one error line); a size beyond the split means the whole split, checked on load."""
    if n < num_classes:
        raise BenchError(
            f"subset of {n} images is smaller than the {num_classes} classes; "
            f"use at least {num_classes}"
        )
    if n % num_classes:
        raise BenchError(
            f"subset of {n} images cannot be class-balanced: use a multiple of {num_classes}"
        )


def balanced_subset(labels: np.ndarray, n: int, num_classes: int) -> np.ndarray:
    """Sorted indices of ``n // num_classes`` images per class, the same for every run seed.

    Uses a fixed generator (seed 0) so all seeds and methods see the same images;
    ``n >= len(labels)`` keeps everything.
    """
    labels = np.asarray(labels)
    if n >= len(labels):
        return np.arange(len(labels))
    check_balanced(n, num_classes)
    per = n // num_classes
    rng = np.random.default_rng(0)
    keep = []
    for c in range(num_classes):
        idx = np.flatnonzero(labels == c)
        if len(idx) < per:
            raise BenchError(
                f"subset of {n} images needs {per} per class but class {c} has only {len(idx)}"
            )
        keep.append(rng.permutation(idx)[:per])
    return np.sort(np.concatenate(keep))
