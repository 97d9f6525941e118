"""The datasets the suite knows (CIFAR-10, CIFAR-100): where they live, how to fetch and
verify them, how to normalise them, and the default data folder."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bench.errors import BenchError

DATA_DIR_ENV = "BENCH_DATA_DIR"
NO_DOWNLOAD_ENV = "BENCH_NO_DOWNLOAD"
IMAGE_SHAPE = (3, 32, 32)


@dataclass(frozen=True)
class DatasetInfo:
    """Where a dataset lives, how to fetch and verify it, and how to normalise it."""

    name: str
    folder: str
    url: str
    md5: str
    num_classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    title: str = ""
    train_files: tuple[str, ...] = ()
    test_files: tuple[str, ...] = ()
    label_key: bytes = b"labels"

    def files(self, split: str) -> tuple[str, ...]:
        """The batch files of one split ("train" or "test"), in reading order."""
        if split not in ("train", "test"):
            raise BenchError(f"unknown split {split!r}; valid splits: train, test")
        return self.train_files if split == "train" else self.test_files


DATASETS: dict[str, DatasetInfo] = {
    "cifar10": DatasetInfo(
        name="cifar10",
        folder="cifar-10-batches-py",
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        md5="c58f30108f718f92721af3b95e74349a",
        num_classes=10,
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2470, 0.2435, 0.2616),
        title="CIFAR-10",
        train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test_files=("test_batch",),
        label_key=b"labels",
    ),
    "cifar100": DatasetInfo(
        name="cifar100",
        folder="cifar-100-python",
        url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        md5="eb9058c3a382ffc7106e4002c42a8d85",
        num_classes=100,
        mean=(0.5071, 0.4865, 0.4409),
        std=(0.2673, 0.2564, 0.2762),
        title="CIFAR-100",
        train_files=("train",),
        test_files=("test",),
        label_key=b"fine_labels",
    ),
}


def dataset_info(name: str) -> DatasetInfo:
    """The DatasetInfo for ``name``; an unknown name is a user error listing the valid ones."""
    try:
        return DATASETS[name]
    except KeyError:
        raise BenchError(
            f"unknown dataset {name!r}; valid datasets: {', '.join(DATASETS)}"
        ) from None


def default_data_dir() -> Path:
    """$BENCH_DATA_DIR if set, else ~/.cache/bench/data."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "bench" / "data"


def downloads_disabled() -> bool:
    """Whether $BENCH_NO_DOWNLOAD forbids fetching (any value but empty, 0, false, no)."""
    value = os.environ.get(NO_DOWNLOAD_ENV, "").strip().lower()
    return value not in ("", "0", "false", "no")
