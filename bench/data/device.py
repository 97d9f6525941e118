"""Both splits of a dataset held on the training device as uint8 (:class:`DeviceData`), and
the shuffled, augmented, normalised batches made there from seeded device generators."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor

from bench.data.augment import erase, pemn_authors
from bench.data.cifar import load_split
from bench.data.datasets import DatasetInfo, dataset_info
from bench.data.fetch import ensure_dataset
from bench.data.fingerprints import data_fingerprint
from bench.data.seeds import PRUNING_STREAM, make_generator
from bench.data.subsets import balanced_subset
from bench.data.transforms import WHOLE_EPOCH, augment_batch, check_augment, whole_epoch
from bench.errors import BenchError


class DeviceData:
    """Both splits held on the training device as uint8; batches normalised/augmented there."""

    def __init__(
        self,
        info: DatasetInfo,
        train_x: Tensor,
        train_y: Tensor,
        test_x: Tensor,
        test_y: Tensor,
        fingerprint: str | None = None,
    ) -> None:
        self.info = info
        self._fingerprint = fingerprint
        self.device = train_x.device
        self.train_x, self.train_y = train_x, train_y
        self.test_x, self.test_y = test_x, test_y
        self._mean = _per_channel(info.mean, self.device)
        self._std = _per_channel(info.std, self.device)
        self._pruning: dict[tuple[int, int, str], tuple[Tensor, Tensor]] = {}

    @property
    def num_classes(self) -> int:
        return self.info.num_classes

    @property
    def fingerprint(self) -> str:
        """16 hex digits of the SHA-256 of both splits' images and labels as loaded: the
        data's identity in run keys (other images, same file sizes: another key)."""
        if self._fingerprint is None:
            self._fingerprint = data_fingerprint(
                self.info.name, *(t.cpu().numpy() for t in
                                  (self.train_x, self.train_y, self.test_x, self.test_y)))
        return self._fingerprint

    def __repr__(self) -> str:
        return (
            f"DeviceData({self.info.name}, train={len(self.train_y)}, "
            f"test={len(self.test_y)}, device={self.device})"
        )

    @property
    def mean_std(self) -> tuple[Tensor, Tensor]:
        """The per-channel mean and standard deviation (shape 1x3x1x1) :meth:`normalize` uses."""
        return self._mean, self._std

    def normalize(self, x_uint8: Tensor) -> Tensor:
        """``(x/255 - mean) / std`` per channel, float32 (:func:`normalize_images`)."""
        return normalize_images(x_uint8, self._mean, self._std)

    def augment(self, x_uint8: Tensor, generator: torch.Generator, kind: str) -> Tensor:
        """``x_uint8`` augmented with ``kind`` (see :func:`augment_batch`), then normalised.

        "pemn-authors" erases its boxes after normalising, to 0 (the channel mean), where the
        authors' torchvision RandomErasing acts (after Normalize)."""
        if kind != "pemn-authors":
            return self.normalize(augment_batch(x_uint8, generator, kind))
        images, boxes = pemn_authors(x_uint8, generator)
        return erase(self.normalize(images), boxes, 0.0)

    def steps_per_epoch(self, batch_size: int, drop_last: bool = True) -> int:
        """Batches per epoch: full ones only with ``drop_last`` (one batch of all images if
        fewer than a batch), else the last, partial one too."""
        _check_batch_size(batch_size)
        if not drop_last:
            return -(-len(self.train_y) // batch_size)
        return max(1, len(self.train_y) // batch_size)

    def train_batches(
        self, batch_size: int, seed: int, epoch: int, augment: str = "crop-flip",
        normalized: bool = True, drop_last: bool = True,
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Shuffled, augmented, normalised batches of epoch ``epoch`` (the last, partial
        batch too unless ``drop_last``, whose draws are the same for the full batches).

        Every random draw comes from a device generator seeded by (seed, epoch), so an epoch's
        batches are the same whether or not earlier epochs ran in this process. With
        ``normalized`` False, the augmentations made for the whole epoch at once hand out
        their uint8 images as they are (views of the epoch's tensor: no kernel per step), for
        a caller that normalises them itself (the compiled step, inside its graph); the
        others are normalised here either way, so check the dtype.
        """
        check_augment(augment)
        steps = self.steps_per_epoch(batch_size, drop_last)  # checks batch_size up front
        size = min(batch_size, len(self.train_y))
        used = min(steps * size, len(self.train_y))
        return self._train_batches(size, steps, used, seed, epoch, augment, normalized)

    def _train_batches(
        self, size: int, steps: int, used: int, seed: int, epoch: int, augment: str,
        normalized: bool,
    ) -> Iterator[tuple[Tensor, Tensor]]:
        g = make_generator(self.device, seed, epoch)
        order = torch.randperm(len(self.train_y), generator=g, device=self.device)
        if augment in WHOLE_EPOCH:  # the same draws in the same order, one gather
            images = whole_epoch(self.train_x, order[:used], size, g, augment)
            labels = self.train_y[order[:used]]
            for step in range(steps):
                part = slice(step * size, (step + 1) * size)
                yield (self.normalize(images[part]) if normalized else images[part]), labels[part]
            return
        for step in range(steps):
            idx = order[step * size : (step + 1) * size]
            yield self.augment(self.train_x[idx], g, augment), self.train_y[idx]

    def test_batches(self, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """The test split in order, normalised, unaugmented; the last batch may be short."""
        _check_batch_size(batch_size)
        return (
            (self.normalize(self.test_x[i : i + batch_size]), self.test_y[i : i + batch_size])
            for i in range(0, len(self.test_y), batch_size)
        )

    def pruning_batch(
        self, per_class: int, seed: int, augment: str = "crop-flip"
    ) -> tuple[Tensor, Tensor]:
        """``per_class`` train images of every class (class order), augmented once, normalised.

        Drawn from a generator seeded by ``seed`` alone, so every method of one seed scores
        its pruning criterion on the same images. Made once per (per_class, seed, augment)
        and kept (pruning methods ask in each of their rounds): treat it as read-only.
        """
        key = (per_class, seed, augment)
        if key not in self._pruning:
            self._pruning[key] = self._pruning_batch(per_class, seed, augment)
        return self._pruning[key]

    def _pruning_batch(self, per_class: int, seed: int, augment: str) -> tuple[Tensor, Tensor]:
        if per_class < 1:
            raise BenchError(f"pruning batch needs at least 1 image per class, got {per_class}")
        check_augment(augment)
        g = make_generator(self.device, seed, PRUNING_STREAM)
        picks = []
        for c in range(self.num_classes):
            idx = torch.nonzero(self.train_y == c).flatten()
            if len(idx) < per_class:
                raise BenchError(
                    f"pruning batch needs {per_class} images of class {c} but the training "
                    f"set has {len(idx)}"
                )
            perm = torch.randperm(len(idx), generator=g, device=self.device)
            picks.append(idx[perm[:per_class]])
        index = torch.cat(picks)
        return self.augment(self.train_x[index], g, augment), self.train_y[index]


def normalize_images(x_uint8: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """``(x/255 - mean) / std`` per channel of uint8 images, in the floating type of
    ``mean`` (float32; float64 where the exactness tests make it so)."""
    return (x_uint8.to(mean.dtype) / 255.0 - mean) / std


def _per_channel(values: tuple[float, float, float], device: torch.device) -> Tensor:
    return torch.tensor(values, dtype=torch.float32, device=device).view(1, 3, 1, 1)


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise BenchError(f"batch size must be >= 1, got {batch_size}")


def load_data(
    name: str,
    data_dir: Path | None = None,
    device: str | torch.device = "cpu",
    train_subset: int | None = None,
    test_subset: int | None = None,
    download: bool = True,
) -> DeviceData:
    """Read both splits (optionally class-balanced subsets) and move them to ``device``."""
    info = dataset_info(name)
    device = torch.device(device)
    ensure_dataset(name, data_dir, download)
    tensors, arrays = [], []
    for split, subset in (("train", train_subset), ("test", test_subset)):
        x, y = load_split(name, data_dir, split, download=False)
        if subset is not None:
            try:
                keep = balanced_subset(y, subset, info.num_classes)
            except BenchError as e:
                raise BenchError(f"{split} {e}") from None
            x, y = x[keep], y[keep]
        arrays += [x, y]
        tensors += [torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)]
    return DeviceData(info, *tensors, fingerprint=data_fingerprint(name, *arrays))
