"""bench.data: reading official CIFAR files, fetching safely, and seeded on-device batches."""

import dataclasses
import hashlib
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_cifar100_split, write_official_pickle

from bench import data as D
from bench.data import (
    DATASETS,
    DeviceData,
    augment_batch,
    balanced_subset,
    crop_flip,
    ensure_dataset,
    load_data,
    load_split,
    mix_seed,
)
from bench.errors import BenchError

CIFAR10_MEAN = np.array(DATASETS["cifar10"].mean)
CIFAR10_STD = np.array(DATASETS["cifar10"].std)


@pytest.fixture(scope="module")
def real(cifar10_dir) -> DeviceData:
    return load_data("cifar10", cifar10_dir)


def write_tiny_cifar10(root: Path, per_file: int = 10) -> Path:
    """An official-layout cifar-10-batches-py with random pixels, ``per_file`` images a file."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(7)
    for name in DATASETS["cifar10"].train_files + DATASETS["cifar10"].test_files:
        write_official_pickle(folder / name, {
            b"batch_label": name.encode(),
            b"labels": [i % 10 for i in range(per_file)],
            b"data": rng.integers(0, 256, (per_file, 3072), dtype=np.uint8),
            b"filenames": [f"{i}.png".encode() for i in range(per_file)],
        })
    write_official_pickle(folder / "batches.meta", {b"label_names": [b"c"] * 10})
    return folder


def one_line(e: pytest.ExceptionInfo) -> str:
    message = str(e.value)
    assert "\n" not in message
    return message


# --------------------------------------------------------------------------- real CIFAR-10


def test_real_cifar10_shapes_balance_and_pixels(cifar10_dir):
    x, y = load_split("cifar10", cifar10_dir, "train")
    assert x.shape == (2000, 3, 32, 32) and x.dtype == np.uint8 and x.flags.c_contiguous
    assert y.shape == (2000,) and y.dtype == np.int64
    assert np.bincount(y, minlength=10).tolist() == [200] * 10
    tx, ty = load_split("cifar10", cifar10_dir, "test")
    assert tx.shape == (1000, 3, 32, 32) and np.bincount(ty).tolist() == [100] * 10
    pixels = x.transpose(1, 0, 2, 3).reshape(3, -1) / 255.0
    np.testing.assert_allclose(pixels.mean(1), CIFAR10_MEAN, atol=0.03)
    np.testing.assert_allclose(pixels.std(1), CIFAR10_STD, atol=0.03)


def test_rows_are_channel_planar_rgb(cifar10_dir):
    with open(cifar10_dir / "cifar-10-batches-py" / "data_batch_1", "rb") as f:
        raw = pickle.load(f, encoding="bytes")
    x, y = load_split("cifar10", cifar10_dir, "train")
    row = raw[b"data"][3]
    by_hand = np.stack([row[c * 1024:(c + 1) * 1024].reshape(32, 32) for c in range(3)])
    np.testing.assert_array_equal(x[3], by_hand)
    assert y[3] == raw[b"labels"][3]
    # Natural images are smooth: neighbours differ far less than under a wrong (HWC) layout.
    wrong = raw[b"data"][:200].reshape(-1, 32, 32, 3).transpose(0, 3, 1, 2).astype(float)
    right = x[:200].astype(float)
    assert np.abs(np.diff(right, axis=3)).mean() < 0.5 * np.abs(np.diff(wrong, axis=3)).mean()


def test_load_data_subsets_are_balanced(cifar10_dir):
    d = load_data("cifar10", cifar10_dir, train_subset=500, test_subset=100)
    assert d.train_x.shape == (500, 3, 32, 32) and d.train_x.dtype == torch.uint8
    assert torch.bincount(d.train_y).tolist() == [50] * 10
    assert torch.bincount(d.test_y).tolist() == [10] * 10
    assert d.num_classes == 10 and d.device == torch.device("cpu")
    with pytest.raises(BenchError, match="train subset of 505 images"):
        load_data("cifar10", cifar10_dir, train_subset=505)


# --------------------------------------------------------------------------- CIFAR-100


def test_cifar100_files_parse_to_what_was_written(cifar100_dir):
    for seed, split in enumerate(("train", "test")):
        x, y = load_split("cifar100", cifar100_dir, split)
        data, fine = make_cifar100_split(split, seed)
        np.testing.assert_array_equal(x, data.reshape(-1, 3, 32, 32))
        assert y.dtype == np.int64 and y.tolist() == fine
    d = load_data("cifar100", cifar100_dir)
    assert d.num_classes == 100 and len(d.train_y) == 500 and len(d.test_y) == 200
    assert torch.bincount(d.train_y, minlength=100).tolist() == [5] * 100


# --------------------------------------------------------------------------- subsets


def test_balanced_subset_is_deterministic_balanced_and_sorted():
    labels = np.random.default_rng(3).integers(0, 10, 5000)
    np.random.seed(123)  # the global numpy state must not matter
    a = balanced_subset(labels, 1000, 10)
    np.random.seed(456)
    b = balanced_subset(labels, 1000, 10)
    np.testing.assert_array_equal(a, b)
    assert np.all(np.diff(a) > 0)
    assert np.bincount(labels[a], minlength=10).tolist() == [100] * 10
    np.testing.assert_array_equal(balanced_subset(labels, 5000, 10), np.arange(5000))
    np.testing.assert_array_equal(balanced_subset(labels, 9999, 10), np.arange(5000))


@pytest.mark.parametrize("n, message", [
    (5, "smaller than the 10 classes"),
    (1005, "multiple of 10"),
    (0, "smaller than the 10 classes"),
])
def test_balanced_subset_rejects_bad_sizes(n, message):
    with pytest.raises(BenchError, match=message):
        balanced_subset(np.arange(2000) % 10, n, 10)


def test_balanced_subset_needs_enough_of_each_class():
    labels = np.array([0] * 100 + [1] * 3)
    with pytest.raises(BenchError, match="class 1 has only 3"):
        balanced_subset(labels, 20, 2)


# --------------------------------------------------------------------------- finding data


def test_missing_data_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.delenv("BENCH_NO_DOWNLOAD")
    with pytest.raises(BenchError) as e:
        ensure_dataset("cifar10", tmp_path, download=False)
    message = one_line(e)
    assert str(tmp_path / "cifar-10-batches-py") in message
    assert "put the official python-version files there" in message and "--data-dir" in message
    assert not list(tmp_path.iterdir())


def test_no_download_env_disables_downloads(tmp_path):
    # conftest sets BENCH_NO_DOWNLOAD=1: download=True must not reach the network.
    with pytest.raises(BenchError, match="downloads are disabled") as e:
        load_split("cifar100", tmp_path, "train", download=True)
    assert str(tmp_path / "cifar-100-python") in one_line(e)


def test_incomplete_folder_names_the_missing_files(tmp_path):
    folder = write_tiny_cifar10(tmp_path)
    (folder / "data_batch_4").unlink()
    with pytest.raises(BenchError, match="missing data_batch_4"):
        ensure_dataset("cifar10", tmp_path)


def test_unknown_dataset_lists_the_valid_names(tmp_path):
    with pytest.raises(BenchError) as e:
        ensure_dataset("mnist", tmp_path)
    assert one_line(e) == "unknown dataset 'mnist'; valid datasets: cifar10, cifar100"
    with pytest.raises(BenchError, match="valid datasets"):
        load_data("svhn", tmp_path)


def test_data_dir_defaults_to_env(monkeypatch, tmp_path):
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path))
    assert D.default_data_dir() == tmp_path
    monkeypatch.delenv("BENCH_DATA_DIR")
    assert D.default_data_dir() == Path.home() / ".cache" / "bench" / "data"


# --------------------------------------------------------------------------- downloading


def make_archive(tmp_path: Path, add_evil: bool = False) -> tuple[Path, str]:
    """A tar.gz in the official layout (tiny), and its MD5."""
    src = tmp_path / "src"
    write_tiny_cifar10(src)
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
        if add_evil:
            payload = b"owned"
            info = tarfile.TarInfo("../evil.txt")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return archive, hashlib.md5(archive.read_bytes()).hexdigest()


@pytest.fixture
def fake_download(monkeypatch):
    """Point cifar10 at a local URL and MD5, with downloads enabled."""
    monkeypatch.delenv("BENCH_NO_DOWNLOAD")

    def point(archive: Path, md5: str) -> None:
        info = dataclasses.replace(DATASETS["cifar10"], url=archive.as_uri(), md5=md5)
        monkeypatch.setitem(DATASETS, "cifar10", info)

    return point


def test_download_verifies_and_extracts(tmp_path, fake_download):
    archive, md5 = make_archive(tmp_path)
    fake_download(archive, md5)
    data_dir = tmp_path / "data"
    folder = ensure_dataset("cifar10", data_dir)
    assert folder == data_dir / "cifar-10-batches-py"
    assert [p.name for p in data_dir.iterdir()] == ["cifar-10-batches-py"]  # no leftovers
    x, y = load_split("cifar10", data_dir, "train")
    assert x.shape == (50, 3, 32, 32) and y.tolist() == list(range(10)) * 5


def test_download_with_wrong_md5_extracts_nothing(tmp_path, fake_download):
    archive, md5 = make_archive(tmp_path)
    fake_download(archive, "0" * 32)
    data_dir = tmp_path / "data"
    with pytest.raises(BenchError) as e:
        ensure_dataset("cifar10", data_dir)
    message = one_line(e)
    assert "MD5" in message and md5 in message and "0" * 32 in message
    assert "cifar-10-python.tar.gz" in message
    assert not list(data_dir.iterdir())  # bad download deleted, nothing extracted


def test_download_refuses_paths_escaping_the_folder(tmp_path, fake_download):
    archive, md5 = make_archive(tmp_path, add_evil=True)
    fake_download(archive, md5)
    data_dir = tmp_path / "deep" / "data"
    with pytest.raises(BenchError, match="unsafe entry '../evil.txt'"):
        ensure_dataset("cifar10", data_dir)
    assert not (tmp_path / "deep" / "evil.txt").exists()
    assert not (data_dir / "cifar-10-batches-py").exists()


def test_archive_put_there_by_hand_is_checked_and_used(tmp_path, monkeypatch):
    archive, md5 = make_archive(tmp_path)  # downloads stay disabled (conftest)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    placed = data_dir / archive.name
    placed.write_bytes(archive.read_bytes()[:-10])
    info = dataclasses.replace(DATASETS["cifar10"], md5=md5)
    monkeypatch.setitem(DATASETS, "cifar10", info)
    with pytest.raises(BenchError, match="has MD5 .*, expected " + md5):
        ensure_dataset("cifar10", data_dir)
    assert placed.exists() and not (data_dir / "cifar-10-batches-py").exists()
    placed.write_bytes(archive.read_bytes())
    assert ensure_dataset("cifar10", data_dir) == data_dir / "cifar-10-batches-py"
    assert load_split("cifar10", data_dir, "test")[0].shape == (10, 3, 32, 32)
    assert sorted(p.name for p in data_dir.iterdir()) == ["cifar-10-batches-py", archive.name]


def test_unreachable_url_is_one_line_with_the_reason(tmp_path, fake_download):
    fake_download(tmp_path / "nothing-here.tar.gz", "0" * 32)
    with pytest.raises(BenchError, match="could not be downloaded \\(URLError") as e:
        ensure_dataset("cifar10", tmp_path / "cache" / "bench" / "data")
    assert str(tmp_path / "cache" / "bench" / "data" / "cifar-10-batches-py") in one_line(e)
    assert not (tmp_path / "cache").exists()  # the folders made for the download are gone


# --------------------------------------------------------------------------- corrupt files


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garbage(path: Path) -> None:
    path.write_bytes(np.random.default_rng(0).bytes(5000))


def _rewrite(changes: dict):
    def edit(path: Path) -> None:
        with open(path, "rb") as f:
            obj = pickle.load(f, encoding="bytes")
        obj.update(changes)
        for key in [k for k, v in changes.items() if v is None]:
            del obj[key]
        write_official_pickle(path, obj)
    return edit


def _code(path: Path) -> None:
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    path.write_bytes(pickle.dumps({b"data": Evil()}, protocol=2))


@pytest.mark.parametrize("corrupt, message", [
    (_truncate, "corrupt"),
    (_garbage, "corrupt"),
    (_code, "unexpected global __builtin__.print"),  # refused, never called
    (lambda p: p.write_bytes(pickle.dumps([1, 2, 3], protocol=2)), "not a batch dict"),
    (_rewrite({b"data": np.zeros((10, 3000), np.uint8)}), "expected uint8"),
    (_rewrite({b"data": np.zeros((10, 3072), np.float32)}), "expected uint8"),
    (_rewrite({b"labels": [10] * 10}), "labels in \\[10, 10\\]"),
    (_rewrite({b"labels": [1] * 9}), "10 integers"),
    (_rewrite({b"labels": None}), "no 'labels' entry"),
])
def test_corrupt_file_is_named(tmp_path, corrupt, message):
    folder = write_tiny_cifar10(tmp_path)
    corrupt(folder / "data_batch_3")
    with pytest.raises(BenchError, match=message) as e:
        load_split("cifar10", tmp_path, "train")
    assert str(folder / "data_batch_3") in one_line(e)
    load_split("cifar10", tmp_path, "test")  # the other split still reads


# --------------------------------------------------------------------------- augmentation


def numpy_crop_flip(img: np.ndarray, dy: int, dx: int, flip: bool) -> np.ndarray:
    padded = np.pad(img, ((0, 0), (4, 4), (4, 4)))
    out = padded[:, dy:dy + 32, dx:dx + 32]
    return out[:, :, ::-1] if flip else out


def test_crop_flip_matches_hand_computed_crops(real):
    x = real.train_x[:6]
    offsets = torch.tensor([[0, 0], [8, 8], [1, 7], [4, 4], [8, 0], [3, 5]])
    flips = torch.tensor([False, True, True, False, False, True])
    out = crop_flip(x, offsets, flips)
    assert out.dtype == torch.uint8 and out.shape == x.shape and out.is_contiguous()
    for i in range(6):
        expected = numpy_crop_flip(x[i].numpy(), *offsets[i].tolist(), bool(flips[i]))
        np.testing.assert_array_equal(out[i].numpy(), expected)
    np.testing.assert_array_equal(out[3].numpy(), x[3].numpy())  # centre crop, no flip


def position_images(n: int) -> torch.Tensor:
    """Images whose channels 0/1 hold row+1/col+1, so crops and flips can be read back."""
    r = torch.arange(1, 33, dtype=torch.uint8)
    img = torch.stack([r.view(32, 1).expand(32, 32), r.view(1, 32).expand(32, 32),
                       torch.full((32, 32), 200, dtype=torch.uint8)])
    return img.expand(n, 3, 32, 32).contiguous()


def test_crop_flip_draws_every_offset_and_flips_half():
    x = position_images(4000)
    out = augment_batch(x, D.make_generator("cpu", 0, 0), "crop-flip")
    centre = out[:, :, 16, 16].long()  # always inside the image: its source pixel is known
    dy = centre[:, 0] - 1 - 16 + 4
    flipped = out[:, 1, 16, 17].long() < out[:, 1, 16, 16].long()
    dx = torch.where(flipped, centre[:, 1] - 1 - 15 + 4, centre[:, 1] - 1 - 16 + 4)
    assert set(dy.tolist()) == set(range(9)) and set(dx.tolist()) == set(range(9))
    assert 0.45 < flipped.float().mean().item() < 0.55
    for i in range(0, 4000, 397):  # the readback agrees with the whole image
        expected = numpy_crop_flip(x[i].numpy(), int(dy[i]), int(dx[i]), bool(flipped[i]))
        np.testing.assert_array_equal(out[i].numpy(), expected)


def torchvision_crop_flip(img: np.ndarray, top: int, left: int, flip: bool) -> np.ndarray:
    """What torchvision's ``RandomCrop(32, padding=4)`` then ``RandomHorizontalFlip()`` (the PX
    authors' and open_lth's training transforms) make of a [C,32,32] image with their draws
    fixed, written pixel by pixel from their source (``transforms.py``): ``F.pad(img, 4,
    fill=0, padding_mode="constant")`` adds 4 zero rows and columns on every side;
    ``get_params`` draws ``top`` and ``left`` as ``randint(0, 40 - 32 + 1)``, 0..8;
    ``F.crop(img, top, left, 32, 32)`` keeps those rows and columns; ``F.hflip`` reverses the
    width."""
    c, h, w = img.shape
    padded = np.zeros((c, h + 8, w + 8), dtype=img.dtype)
    padded[:, 4:4 + h, 4:4 + w] = img
    out = np.empty((c, 32, 32), dtype=img.dtype)
    for row in range(32):
        for col in range(32):
            out[:, row, col] = padded[:, top + row, left + (31 - col if flip else col)]
    return out


def test_crop_flip_gives_torchvisions_pixels_for_every_offset_and_flip(real):
    x = real.train_x[:2]
    cases = [(top, left, flip) for top in range(9) for left in range(9) for flip in (0, 1)]
    offsets = torch.tensor([[t, left] for t, left, _ in cases])
    flips = torch.tensor([bool(f) for *_, f in cases])
    for image in x:
        out = crop_flip(image.expand(len(cases), 3, 32, 32), offsets, flips)
        for got, (top, left, flip) in zip(out, cases):
            np.testing.assert_array_equal(
                got.numpy(), torchvision_crop_flip(image.numpy(), top, left, bool(flip)))


def test_device_batches_are_torchvision_crops_of_their_images(real):
    """Every image of a crop-flip epoch (the device path, whole-epoch gather) is torchvision's
    crop and flip of the image at its place in the epoch, and all 81 offsets occur."""
    plain = torch.cat([x for x, _ in real.train_batches(128, 3, 1, "none", normalized=False)])
    augmented = torch.cat([x for x, _ in real.train_batches(128, 3, 1, normalized=False)])
    seen = set()
    for source, got in zip(plain.numpy(), augmented.numpy()):
        found = [(t, left, f) for t in range(9) for left in range(9) for f in (False, True)
                 if np.array_equal(got, numpy_crop_flip(source, t, left, f))]  # a quick search
        assert found, "not a crop and flip of its source image"
        np.testing.assert_array_equal(got, torchvision_crop_flip(source, *found[0]))
        seen.update((t, left) for t, left, _ in found)
    assert len(plain) == 1920 and len(seen) == 81


def test_flip_only_and_none(real):
    x = real.train_x[:400]
    out = augment_batch(x, D.make_generator("cpu", 1, 0), "flip")
    same = (out == x).flatten(1).all(1)
    mirrored = (out == x.flip(3)).flatten(1).all(1)
    assert bool((same | mirrored).all()) and 150 < int(mirrored.sum()) < 250
    assert augment_batch(x, D.make_generator("cpu", 1, 0), "none") is x
    with pytest.raises(BenchError, match="unknown augmentation 'cutout'"):
        augment_batch(x, D.make_generator("cpu", 1, 0), "cutout")


def test_augmentation_is_deterministic_per_generator_seed(real):
    x = real.train_x[:64]
    a = augment_batch(x, D.make_generator("cpu", 5, 2), "crop-flip")
    b = augment_batch(x, D.make_generator("cpu", 5, 2), "crop-flip")
    c = augment_batch(x, D.make_generator("cpu", 5, 3), "crop-flip")
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_normalize_is_exact(real):
    x = real.train_x[:8]
    mean = np.array(DATASETS["cifar10"].mean, np.float32).reshape(1, 3, 1, 1)
    std = np.array(DATASETS["cifar10"].std, np.float32).reshape(1, 3, 1, 1)
    expected = (x.numpy().astype(np.float32) / np.float32(255) - mean) / std
    got = real.normalize(x)
    assert got.dtype == torch.float32
    np.testing.assert_array_equal(got.numpy(), expected)


def test_mix_seed_is_pinned_and_separates_streams():
    assert mix_seed(0, 0) == 0x53836E97A68CBF37  # changing it changes every recorded run
    values = {mix_seed(s, e) for s in range(20) for e in range(50)}
    assert len(values) == 1000 and all(0 <= v < 2**63 for v in values)
    assert mix_seed(1, 0) != mix_seed(0, 1) and mix_seed(-1, 0) != mix_seed(0, -1)


# --------------------------------------------------------------------------- batches


def test_train_batches_cover_each_image_at_most_once_with_its_label(real):
    full = real.normalize(real.train_x)
    index = {full[i].numpy().tobytes(): i for i in range(len(full))}
    assert len(index) == len(full)  # the subset holds no exact duplicates
    steps = real.steps_per_epoch(128)
    assert steps == 2000 // 128
    seen = []
    batches = list(real.train_batches(128, seed=0, epoch=0, augment="none"))
    assert len(batches) == steps
    for x, y in batches:
        assert x.shape == (128, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
        idx = [index[row.numpy().tobytes()] for row in x]
        assert torch.equal(y, real.train_y[idx])
        seen += idx
    assert len(set(seen)) == len(seen) == steps * 128


@pytest.mark.parametrize("augment", ["crop-flip", "pemn-authors"])
def test_drop_last_false_adds_the_partial_batch_and_keeps_the_full_ones(real, augment):
    """``Recipe.drop_last=False`` (the PX authors' and open_lth's loaders): every image once,
    the full batches exactly those of ``drop_last=True`` (same draws, same order)."""
    kept = list(real.train_batches(128, 2, 1, augment, normalized=False, drop_last=False))
    dropped = list(real.train_batches(128, 2, 1, augment, normalized=False))
    assert real.steps_per_epoch(128, drop_last=False) == len(kept) == -(-2000 // 128) == 16
    assert [len(y) for _, y in kept] == [128] * 15 + [2000 - 15 * 128]
    assert sorted(torch.cat([y for _, y in kept]).tolist()) == sorted(real.train_y.tolist())
    for (x, y), (x0, y0) in zip(kept, dropped):
        assert torch.equal(x, x0) and torch.equal(y, y0)
    assert real.steps_per_epoch(2000, drop_last=False) == 1


def test_train_batches_depend_only_on_seed_and_epoch(cifar10_dir, real):
    def epoch(d, seed, e):
        return [(x.clone(), y.clone()) for x, y in d.train_batches(256, seed, e)]

    warm = [epoch(real, 3, e) for e in range(3)]
    fresh = load_data("cifar10", cifar10_dir)  # a "resumed" process: straight to epoch 2
    again = epoch(fresh, 3, 2)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
               for a, b in zip(warm[2], again))
    assert not torch.equal(warm[1][0][0], warm[2][0][0])
    assert not torch.equal(epoch(real, 4, 2)[0][0], again[0][0])


def test_small_train_set_gives_one_batch_of_everything(cifar100_dir):
    d = load_data("cifar100", cifar100_dir, train_subset=100)
    assert d.steps_per_epoch(256) == 1
    (x, y), = list(d.train_batches(256, 0, 0, augment="flip"))
    assert len(x) == 100 and sorted(y.tolist()) == list(range(100))
    with pytest.raises(BenchError, match="batch size"):
        d.steps_per_epoch(0)
    with pytest.raises(BenchError, match="unknown augmentation"):
        d.train_batches(8, 0, 0, augment="mixup")  # raised at the call, not on iteration


def test_test_batches_are_in_order_and_keep_the_tail(real):
    batches = list(real.test_batches(300))
    assert [len(y) for _, y in batches] == [300, 300, 300, 100]
    assert torch.equal(torch.cat([x for x, _ in batches]), real.normalize(real.test_x))
    assert torch.equal(torch.cat([y for _, y in batches]), real.test_y)


def test_pruning_batch_is_balanced_and_seeded(real):
    x, y = real.pruning_batch(per_class=4, seed=7)
    assert x.shape == (40, 3, 32, 32) and x.dtype == torch.float32
    assert torch.bincount(y, minlength=10).tolist() == [4] * 10
    x2, y2 = real.pruning_batch(per_class=4, seed=7)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    x3, _ = real.pruning_batch(per_class=4, seed=8)
    assert not torch.equal(x, x3)
    plain, labels = real.pruning_batch(per_class=3, seed=7, augment="none")
    full = real.normalize(real.train_x)
    for img, label in zip(plain, labels):  # each image is a training image of its label
        match = (full == img).flatten(1).all(1).nonzero().flatten()
        assert len(match) == 1 and real.train_y[match[0]] == label
    with pytest.raises(BenchError, match="needs 201 images of class 0"):
        real.pruning_batch(per_class=201, seed=0)


def test_pruning_batch_is_made_once_per_seed_and_equals_a_fresh_draw(real):
    first = real.pruning_batch(per_class=4, seed=7)
    assert real.pruning_batch(per_class=4, seed=7) is first  # kept, not drawn again
    fresh = real._pruning_batch(4, 7, "crop-flip")
    assert torch.equal(first[0], fresh[0]) and torch.equal(first[1], fresh[1])
    assert real.pruning_batch(per_class=4, seed=7, augment="none") is not first


@pytest.mark.parametrize("kind", ["crop-flip", "flip", "none"])
def test_a_whole_epoch_augmented_at_once_equals_it_batch_by_batch(real, kind):
    """The epoch's draws are made in augment_batch's order and applied in one gather: the
    same pixels and labels as augmenting each batch in turn (the last partial batch too)."""
    from bench.data.seeds import make_generator
    from bench.data.transforms import augment_batch

    size, steps = 48, real.steps_per_epoch(48)
    g = make_generator(real.device, 3, 5)
    order = torch.randperm(len(real.train_y), generator=g, device=real.device)
    expected = []
    for step in range(steps):
        idx = order[step * size:(step + 1) * size]
        expected.append((real.normalize(augment_batch(real.train_x[idx], g, kind)),
                         real.train_y[idx]))
    got = list(real.train_batches(size, seed=3, epoch=5, augment=kind))
    assert len(got) == len(expected) == steps
    for (x, y), (ex, ey) in zip(got, expected):
        assert torch.equal(x, ex) and torch.equal(y, ey)
    if kind != "none":  # the augmentation did something
        plain = list(real.train_batches(size, seed=3, epoch=5, augment="none"))
        assert not torch.equal(plain[0][0], got[0][0])
    raw = list(real.train_batches(size, seed=3, epoch=5, augment=kind, normalized=False))
    for (x, y), (rx, ry) in zip(got, raw):  # the uint8 pixels the compiled step normalises
        assert rx.dtype == torch.uint8 and torch.equal(real.normalize(rx), x)
        assert torch.equal(ry, y)


def test_batches_made_one_at_a_time_come_normalised_either_way(real):
    """"pemn-authors" erases after normalising, so its batches are never uint8."""
    raw = next(iter(real.train_batches(48, seed=3, epoch=5, augment="pemn-authors",
                                       normalized=False)))
    normal = next(iter(real.train_batches(48, seed=3, epoch=5, augment="pemn-authors")))
    assert raw[0].dtype == torch.float32 and torch.equal(raw[0], normal[0])
