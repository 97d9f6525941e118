"""Data sets loaded once per process and shared by the runs of a grid."""

from __future__ import annotations

from pathlib import Path

import torch

from bench.data import DeviceData, load_data
from bench.store import RunSpec


class DataCache:
    """Loads each (dataset, subsets) once per grid, onto the run device."""

    def __init__(self, data_dir: Path | None, device: torch.device, download: bool = True) -> None:
        self.data_dir = data_dir
        self.device = device
        self.download = download
        self._cache: dict[tuple[str, int | None, int | None], DeviceData] = {}

    def get(self, dataset: str, train_subset: int | None, test_subset: int | None) -> DeviceData:
        key = (dataset, train_subset, test_subset)
        if key not in self._cache:
            self._cache[key] = load_data(
                dataset, self.data_dir, self.device, train_subset, test_subset, self.download
            )
        return self._cache[key]

    def bind(self, spec: RunSpec) -> RunSpec:
        """``spec`` with the fingerprint of the data it names (loading that data once)."""
        return spec.with_data(self.get(spec.dataset, spec.train_subset, spec.test_subset)
                              .fingerprint)
