"""CIFAR-10/100 from the official python-version files, held on the training device.

Reads the official ``cifar-10-batches-py`` / ``cifar-100-python`` layout (downloading and
MD5-checking the official archive when allowed), keeps both splits on the device as uint8,
and makes shuffled, augmented, normalised batches there with seeded device generators, so a
run's batches depend only on (seed, epoch) and never on what ran before in the process.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from bench.augment import erase, pemn_authors
from bench.errors import BenchError
from bench.recipe import AUGMENTATIONS

DATA_DIR_ENV = "BENCH_DATA_DIR"
NO_DOWNLOAD_ENV = "BENCH_NO_DOWNLOAD"
DOWNLOAD_TIMEOUT_S = 15.0
AUGMENTS = AUGMENTATIONS  # the augmentation names, listed once in bench.recipe
CROP_PAD = 4
IMAGE_SHAPE = (3, 32, 32)
_ROW = 3 * 32 * 32


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


def _downloads_disabled() -> bool:
    value = os.environ.get(NO_DOWNLOAD_ENV, "").strip().lower()
    return value not in ("", "0", "false", "no")


# --------------------------------------------------------------------------- fetching


def ensure_dataset(name: str, data_dir: Path | None = None, download: bool = True) -> Path:
    """Return ``data_dir/<folder>`` with every batch file present, downloading it if allowed.

    $BENCH_NO_DOWNLOAD=1 acts as ``download=False``. Anything missing that cannot be fetched
    is a one-line BenchError saying where the files belong.
    """
    info = dataset_info(name)
    root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    folder = root / info.folder
    needed = info.train_files + info.test_files
    if folder.is_dir():
        missing = [f for f in needed if not (folder / f).is_file()]
        if not missing:
            return folder
        raise BenchError(
            f"{info.title} in {folder} is incomplete (missing {', '.join(missing)}); put all "
            f"the official python-version files there or pass --data-dir DIR"
        )
    archive = root / Path(info.url).name
    if archive.is_file():  # the official archive, put there by hand
        _check_md5(archive, info.md5)
        _extract(info, archive, root)
        return ensure_dataset(name, root, download=False)
    if not download or _downloads_disabled():
        reason = "downloads are disabled"
    else:
        try:
            _extract(info, _download(info, archive), root)
            archive.unlink(missing_ok=True)
            return ensure_dataset(name, root, download=False)
        except _FetchError as e:
            reason = str(e)
    raise BenchError(
        f"{info.title} not found in {folder} and could not be downloaded ({reason}); put the "
        f"official python-version files there (from {info.url}) or pass --data-dir DIR"
    )


class _FetchError(Exception):
    """The archive could not be fetched (offline, HTTP error): reported as the reason."""


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _check_md5(archive: Path, expected: str) -> None:
    """A hand-placed archive must be the official one before anything reads it."""
    got = _md5(archive)
    if got != expected:
        raise BenchError(
            f"{archive} has MD5 {got}, expected {expected}; replace it with the official archive"
        )


def _download(info: DatasetInfo, archive: Path) -> Path:
    """Fetch the official archive to ``archive`` and verify its MD5 before anything reads it."""
    try:
        archive.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{archive.name}-", suffix=".part", dir=archive.parent)
    except OSError as e:
        raise _FetchError(f"cannot write to {archive.parent}: {e.strerror or e}") from e
    partial = Path(name)
    digest = hashlib.md5()
    try:
        with os.fdopen(fd, "wb") as out:
            with urllib.request.urlopen(info.url, timeout=DOWNLOAD_TIMEOUT_S) as response:
                while chunk := response.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
    except (OSError, ValueError, http.client.HTTPException) as e:  # URLError, timeouts: OSError
        partial.unlink(missing_ok=True)
        reason = " ".join(str(getattr(e, "reason", None) or e).split())
        raise _FetchError(f"{type(e).__name__}: {reason}") from e
    if digest.hexdigest() != info.md5:
        partial.unlink(missing_ok=True)
        raise BenchError(
            f"downloaded {archive} has MD5 {digest.hexdigest()}, expected {info.md5}; deleted "
            f"this broken or tampered download, nothing extracted"
        )
    partial.replace(archive)
    return archive


def _extract(info: DatasetInfo, archive: Path, root: Path) -> None:
    """Extract ``archive`` into a temp dir inside ``root``, then rename its folder into place."""
    staging = Path(tempfile.mkdtemp(prefix=f".{info.folder}-", dir=root))
    try:
        _safe_extract(archive, staging)
        extracted = staging / info.folder
        if not extracted.is_dir():
            raise BenchError(f"archive {archive} does not contain the folder {info.folder}/")
        try:
            extracted.rename(root / info.folder)
        except OSError as e:
            if not (root / info.folder).is_dir():  # else another process finished first
                raise BenchError(f"cannot move {extracted} to {root / info.folder}: {e}") from e
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _safe_extract(archive: Path, dest: Path) -> None:
    """Extract only plain files and folders whose paths stay inside ``dest``."""
    dest = dest.resolve()
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for m in members:
                target = (dest / m.name).resolve()
                if not (m.isfile() or m.isdir()) or not target.is_relative_to(dest):
                    raise BenchError(f"archive {archive} has an unsafe entry {m.name!r}")
            if hasattr(tarfile, "data_filter"):
                tar.extractall(dest, members=members, filter="data")
            else:  # pragma: no cover - Python without PEP 706 backport
                tar.extractall(dest, members=members)
    except (tarfile.TarError, EOFError, OSError) as e:
        raise BenchError(f"cannot extract {archive}: {e}") from e


# --------------------------------------------------------------------------- reading

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


def balanced_subset(labels: np.ndarray, n: int, num_classes: int) -> np.ndarray:
    """Sorted indices of ``n // num_classes`` images per class, the same for every run seed.

    Uses a fixed generator (seed 0) so all seeds and methods see the same images;
    ``n >= len(labels)`` keeps everything.
    """
    labels = np.asarray(labels)
    if n >= len(labels):
        return np.arange(len(labels))
    if n < num_classes:
        raise BenchError(
            f"subset of {n} images is smaller than the {num_classes} classes; "
            f"use at least {num_classes}"
        )
    if n % num_classes:
        raise BenchError(
            f"subset of {n} images cannot be class-balanced: use a multiple of {num_classes}"
        )
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


# --------------------------------------------------------------------------- randomness

_MASK64 = (1 << 64) - 1
PRUNING_STREAM = 0x7072756E696E67  # "pruning": far from any epoch number


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def mix_seed(seed: int, stream: int) -> int:
    """A stable 63-bit generator seed for (seed, stream), e.g. stream = epoch (splitmix64)."""
    return _splitmix64(_splitmix64(seed & _MASK64) ^ (stream & _MASK64)) >> 1


def make_generator(device: torch.device | str, seed: int, stream: int) -> torch.Generator:
    """A torch.Generator on ``device`` seeded from (seed, stream)."""
    g = torch.Generator(device=torch.device(device))
    g.manual_seed(mix_seed(seed, stream))
    return g


# --------------------------------------------------------------------------- augmentation


def crop_flip(x: Tensor, offsets: Tensor, flips: Tensor, pad: int = CROP_PAD) -> Tensor:
    """Crop each image of ``x`` (uint8 [n,C,H,W]) from its zero-padded copy, then mirror it.

    ``offsets`` int [n,2] is the (row, col) of the crop's top-left corner in the padded
    image (0..2*pad); ``flips`` bool [n] mirrors left-right. One gather, no per-image loop.
    """
    n, _, h, w = x.shape
    if pad:
        x = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dev = x.device
    rows = offsets[:, 0:1].to(dev, torch.long) + torch.arange(h, device=dev)  # [n,h]
    cols = torch.arange(w, device=dev).expand(n, w)
    cols = torch.where(flips.to(dev).view(n, 1), cols.flip(1), cols)
    cols = offsets[:, 1:2].to(dev, torch.long) + cols  # [n,w]
    batch = torch.arange(n, device=dev).view(n, 1, 1)
    hwc = x.permute(0, 2, 3, 1)[batch, rows.view(n, h, 1), cols.view(n, 1, w)]  # [n,h,w,C]
    return hwc.permute(0, 3, 1, 2).contiguous()


def augment_batch(x: Tensor, generator: torch.Generator, kind: str = "crop-flip") -> Tensor:
    """Randomly augment uint8 images [n,3,H,W] on their device with ``generator``.

    "crop-flip": zero-pad 4, random crop back to size, random horizontal flip (p=0.5);
    "flip": the flip only; "none": unchanged. Draws crop offsets first, then flips.
    "pemn-authors": bench.augment's flip, RandAugment and ColorJitter; its random erasing
    acts on normalised images, so only :meth:`DeviceData.augment` applies it.
    """
    _check_augment(kind)
    if kind == "none":
        return x
    if kind == "pemn-authors":
        return pemn_authors(x, generator)[0]
    n, dev = x.shape[0], x.device
    if kind == "crop-flip":
        offsets = torch.randint(0, 2 * CROP_PAD + 1, (n, 2), generator=generator, device=dev)
        flips = torch.rand(n, generator=generator, device=dev) < 0.5
        return crop_flip(x, offsets, flips, CROP_PAD)
    flips = torch.rand(n, generator=generator, device=dev) < 0.5
    return torch.where(flips.view(n, 1, 1, 1), x.flip(3), x)


# --------------------------------------------------------------------------- device data


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

    def normalize(self, x_uint8: Tensor) -> Tensor:
        """float32 ``(x/255 - mean) / std`` per channel."""
        return (x_uint8.float() / 255.0 - self._mean) / self._std

    def augment(self, x_uint8: Tensor, generator: torch.Generator, kind: str) -> Tensor:
        """``x_uint8`` augmented with ``kind`` (see :func:`augment_batch`), then normalised.

        "pemn-authors" erases its boxes after normalising, to 0 (the channel mean), where the
        authors' torchvision RandomErasing acts (after Normalize)."""
        if kind != "pemn-authors":
            return self.normalize(augment_batch(x_uint8, generator, kind))
        images, boxes = pemn_authors(x_uint8, generator)
        return erase(self.normalize(images), boxes, 0.0)

    def steps_per_epoch(self, batch_size: int) -> int:
        """Full batches per epoch (drop_last); one batch of all images if fewer than a batch."""
        _check_batch_size(batch_size)
        return max(1, len(self.train_y) // batch_size)

    def train_batches(
        self, batch_size: int, seed: int, epoch: int, augment: str = "crop-flip"
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Shuffled, augmented, normalised batches of epoch ``epoch`` (drop_last).

        Every random draw comes from a device generator seeded by (seed, epoch), so an epoch's
        batches are the same whether or not earlier epochs ran in this process.
        """
        _check_augment(augment)
        steps = self.steps_per_epoch(batch_size)  # checks batch_size before iteration starts
        return self._train_batches(min(batch_size, len(self.train_y)), steps, seed, epoch, augment)

    def _train_batches(
        self, size: int, steps: int, seed: int, epoch: int, augment: str
    ) -> Iterator[tuple[Tensor, Tensor]]:
        g = make_generator(self.device, seed, epoch)
        order = torch.randperm(len(self.train_y), generator=g, device=self.device)
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
        its pruning criterion on the same images.
        """
        if per_class < 1:
            raise BenchError(f"pruning batch needs at least 1 image per class, got {per_class}")
        _check_augment(augment)
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


def _per_channel(values: tuple[float, float, float], device: torch.device) -> Tensor:
    return torch.tensor(values, dtype=torch.float32, device=device).view(1, 3, 1, 1)


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise BenchError(f"batch size must be >= 1, got {batch_size}")


def _check_augment(kind: str) -> None:
    if kind not in AUGMENTS:
        raise BenchError(f"unknown augmentation {kind!r}; valid: {', '.join(AUGMENTS)}")


def data_fingerprint(name: str, *arrays: np.ndarray) -> str:
    """SHA-256 (16 hex digits) over the dataset name and each array's dtype, shape and bytes."""
    digest = hashlib.sha256(name.encode())
    for a in arrays:
        a = np.ascontiguousarray(a)
        digest.update(f"|{a.dtype.str}{a.shape}|".encode())
        digest.update(a.data)
    return digest.hexdigest()[:16]


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
