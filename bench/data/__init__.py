"""CIFAR-10/100 from the official python-version files, held on the training device.

Reads the official ``cifar-10-batches-py`` / ``cifar-100-python`` layout (downloading and
MD5-checking the official archive when allowed), keeps both splits on the device as uint8,
and makes shuffled, augmented, normalised batches there with seeded device generators, so a
run's batches depend only on (seed, epoch) and never on what ran before in the process.

Modules: :mod:`~bench.data.datasets` (what each dataset is), :mod:`~bench.data.fetch`
(downloading and extracting), :mod:`~bench.data.cifar` (reading the batch files),
:mod:`~bench.data.subsets`, :mod:`~bench.data.seeds`, :mod:`~bench.data.transforms` and
:mod:`~bench.data.augment` (augmentations), :mod:`~bench.data.fingerprints` and
:mod:`~bench.data.device` (:class:`DeviceData`, :func:`load_data`).
"""

from bench.data.cifar import load_split
from bench.data.datasets import (
    DATA_DIR_ENV,
    DATASETS,
    IMAGE_SHAPE,
    NO_DOWNLOAD_ENV,
    DatasetInfo,
    dataset_info,
    default_data_dir,
)
from bench.data.device import DeviceData, load_data
from bench.data.fetch import DOWNLOAD_TIMEOUT_S, ensure_dataset
from bench.data.fingerprints import data_fingerprint
from bench.data.seeds import PRUNING_STREAM, make_generator, mix_seed
from bench.data.subsets import balanced_subset, check_balanced
from bench.data.transforms import AUGMENTS, CROP_PAD, augment_batch, crop_flip

__all__ = [
    "AUGMENTS",
    "CROP_PAD",
    "DATASETS",
    "DATA_DIR_ENV",
    "DOWNLOAD_TIMEOUT_S",
    "IMAGE_SHAPE",
    "NO_DOWNLOAD_ENV",
    "PRUNING_STREAM",
    "DatasetInfo",
    "DeviceData",
    "augment_batch",
    "balanced_subset",
    "check_balanced",
    "crop_flip",
    "data_fingerprint",
    "dataset_info",
    "default_data_dir",
    "ensure_dataset",
    "load_data",
    "load_split",
    "make_generator",
    "mix_seed",
]
