"""The PEMN authors' augmentation (bench.data.augment): each operation on tiny hand-computed images,
the per-image dispatch, the random draws, and the pipeline on real CIFAR-10."""

import math

import numpy as np
import pytest
import torch

from bench.data import AUGMENTS, augment_batch, load_data, make_generator
from bench.data import augment as A
from bench.presets import RECIPES
from bench.recipe import AUGMENTATIONS, Recipe


def image(*channels) -> torch.Tensor:
    """A uint8 batch of one image [1,3,H,W] from three nested lists (one per channel)."""
    return torch.tensor([channels], dtype=torch.uint8)


def same_channels(rows) -> torch.Tensor:
    """A [1,3,H,W] image whose three channels all hold ``rows``."""
    return image(rows, rows, rows)


def positions(n: int) -> torch.Tensor:
    """[1,3,n,n], every channel 1..n*n in reading order: where each pixel came from shows."""
    return (torch.arange(n * n, dtype=torch.uint8) + 1).view(1, 1, n, n).expand(1, 3, n, n)


def assert_image(got: torch.Tensor, *expected) -> None:
    """``got`` is uint8 and equals the channels ``expected`` (one given: all three equal it)."""
    assert got.dtype == torch.uint8
    channels = expected if len(expected) == 3 else expected * 3
    np.testing.assert_array_equal(got[0].numpy(), np.array(channels))


def random_images(n: int, seed: int = 0, size: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)


# --------------------------------------------------------------------------- pixel values


def test_posterize_keeps_the_high_bits():
    x = same_channels([[0, 3, 4, 7, 100, 255, 128, 129]])
    assert_image(A.posterize(x, 6), [[0, 0, 4, 4, 100, 252, 128, 128]])
    assert_image(A.posterize(x, 1), [[0, 0, 0, 0, 0, 128, 128, 128]])
    assert torch.equal(A.posterize(x, 8), x)


def test_solarize_inverts_from_the_threshold():
    x = same_channels([[0, 152, 153, 200, 255]])
    assert_image(A.solarize(x, 153.0), [[0, 152, 102, 55, 0]])
    assert_image(A.solarize(x, 152.5), [[0, 152, 102, 55, 0]])
    assert_image(A.solarize(x, 152.0), [[0, 103, 102, 55, 0]])


def test_equalize_uses_the_cumulative_histogram_lookup():
    flat = torch.arange(1024)
    c0 = torch.where(flat < 512, 50, torch.where(flat < 768, 100, 200))  # step 768 // 255 = 3
    c1 = torch.full((1024,), 7)  # one value: step 0, left alone
    c2 = torch.where(flat < 300, 10, torch.where(flat < 600, 20, 30))  # step 600 // 255 = 2
    x = torch.stack([c0, c1, c2]).view(1, 3, 32, 32).to(torch.uint8)
    out = A.equalize(x).view(3, 1024)
    # c0: 50 -> (0 + 1) // 3, 100 -> (512 + 1) // 3, 200 -> (768 + 1) // 3 = 256, capped
    assert torch.equal(out[0], torch.where(flat < 512, 0, torch.where(flat < 768, 171, 255)))
    assert torch.equal(out[1], c1)
    # c2: 10 -> (0 + 1) // 2, 20 -> (300 + 1) // 2, 30 -> (600 + 1) // 2 = 300, capped
    assert torch.equal(out[2], torch.where(flat < 300, 0, torch.where(flat < 600, 150, 255)))
    small = random_images(1, size=4)  # 16 pixels: step is always 0
    assert torch.equal(A.equalize(small), small)


def test_autocontrast_stretches_each_channel_to_full_range():
    x = image([[0, 10], [51, 20]], [[1, 2], [86, 30]], [[77, 77], [77, 77]])
    assert_image(A.autocontrast(x), [[0, 50], [255, 100]], [[0, 3], [255, 87]],
                 [[77, 77], [77, 77]])  # x5, (x-1)x3, constant: unchanged


def test_grayscale_truncates_torchvision_luma():
    x = image([[100, 255, 200, 0]], [[100, 255, 100, 0]], [[100, 255, 50, 10]])
    np.testing.assert_array_equal(A.grayscale(x)[0, 0].numpy(), [[99, 254, 124, 1]])


def test_brightness_scales_truncates_and_clamps():
    assert_image(A.adjust_brightness(same_channels([[0, 3, 100, 200]]), 1.5), [[0, 4, 150, 255]])
    assert_image(A.adjust_brightness(same_channels([[255, 1, 101, 0]]), 0.5), [[127, 0, 50, 0]])


# luma of (255,255,255), (0,0,0), (200,100,50), (0,0,0): 254, 0, 124, 0; mean 94.5
COLOURS = image([[255, 0], [200, 0]], [[255, 0], [100, 0]], [[255, 0], [50, 0]])


def test_contrast_blends_with_the_mean_luma():
    assert_image(A.adjust_contrast(COLOURS, 0.5),  # x/2 + 47.25
                 [[174, 47], [147, 47]], [[174, 47], [97, 47]], [[174, 47], [72, 47]])
    assert_image(A.adjust_contrast(COLOURS, 2.0),  # 2x - 94.5
                 [[255, 0], [255, 0]], [[255, 0], [105, 0]], [[255, 0], [5, 0]])


def test_saturation_blends_with_the_luma():
    assert_image(A.adjust_saturation(COLOURS, 0.0), [[254, 0], [124, 0]])
    assert_image(A.adjust_saturation(COLOURS, 0.5),  # (x + luma) / 2
                 [[254, 0], [162, 0]], [[254, 0], [112, 0]], [[254, 0], [87, 0]])
    assert_image(A.adjust_saturation(COLOURS, 2.0),  # 2x - luma
                 [[255, 0], [255, 0]], [[255, 0], [76, 0]], [[255, 0], [0, 0]])


def test_blend_rounds_factor_and_one_minus_factor_separately():
    f = 1.0 - float(torch.linspace(0.0, 0.9, 31)[12])  # RandAugment's 1 - 0.36
    x = same_channels([[15, 16, 255]])
    # f and 1 - f are each rounded to float32, so f*15 + (1-f)*15 lands just under 15
    assert_image(A.blend(x, x, f), [[14, 16, 255]])
    assert_image(A.blend(x, x, 1.0), [[15, 16, 255]])


def test_smoothing_rounds_the_interior_and_keeps_the_border():
    x = image([[1, 1, 1], [1, 0, 1], [1, 0, 0]],  # 6 neighbours: 6/13 rounds to 0
              [[1, 1, 1], [1, 0, 1], [1, 1, 0]],  # 7/13 rounds to 1
              [[0, 0, 0], [0, 130, 0], [0, 0, 0]])  # 650/13 = 50
    assert_image(A.smoothed(x), [[1, 1, 1], [1, 0, 1], [1, 0, 0]],
                 [[1, 1, 1], [1, 1, 1], [1, 1, 0]], [[0, 0, 0], [0, 50, 0], [0, 0, 0]])


def test_sharpness_blends_with_the_smoothed_image():
    x = image([[0, 0, 0], [0, 130, 0], [0, 0, 0]], [[13] * 3] * 3,
              [[26, 26, 26], [26, 0, 26], [26, 26, 26]])  # centre smoothed: 50, 13, 208/13=16
    assert_image(A.adjust_sharpness(x, 2.0), [[0, 0, 0], [0, 210, 0], [0, 0, 0]],
                 [[13] * 3] * 3, [[26, 26, 26], [26, 0, 26], [26, 26, 26]])
    assert_image(A.adjust_sharpness(x, 0.0), [[0, 0, 0], [0, 50, 0], [0, 0, 0]],
                 [[13] * 3] * 3, [[26, 26, 26], [26, 16, 26], [26, 26, 26]])
    tiny = random_images(1, size=2)
    assert A.adjust_sharpness(tiny, 0.0) is tiny


# --------------------------------------------------------------------------- geometry


def test_shear_x_fixes_the_top_left_corner():
    # source column = column + round(0.3 * (row + 0.5)): shifts 0, 0, 1, 1, 1
    assert_image(A.geometric(positions(5), "shear-x", 0.3),
                 [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10], [12, 13, 14, 15, 0],
                  [17, 18, 19, 20, 0], [22, 23, 24, 25, 0]])
    assert_image(A.geometric(positions(5), "shear-x", -0.3),
                 [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10], [0, 11, 12, 13, 14],
                  [0, 16, 17, 18, 19], [0, 21, 22, 23, 24]])


def test_shear_y_fixes_the_top_left_corner():
    # source row = row + round(0.3 * (column + 0.5)): shifts 0, 0, 1, 1, 1
    assert_image(A.geometric(positions(5), "shear-y", 0.3),
                 [[1, 2, 8, 9, 10], [6, 7, 13, 14, 15], [11, 12, 18, 19, 20],
                  [16, 17, 23, 24, 25], [21, 22, 0, 0, 0]])


def test_translate_moves_whole_pixels_and_fills_zero():
    assert_image(A.geometric(positions(5), "translate-x", 2.7),  # int(2.7) = 2 to the right
                 [[0, 0, 1, 2, 3], [0, 0, 6, 7, 8], [0, 0, 11, 12, 13],
                  [0, 0, 16, 17, 18], [0, 0, 21, 22, 23]])
    assert_image(A.geometric(positions(5), "translate-x", -2.7),  # int(-2.7) = -2
                 [[3, 4, 5, 0, 0], [8, 9, 10, 0, 0], [13, 14, 15, 0, 0],
                  [18, 19, 20, 0, 0], [23, 24, 25, 0, 0]])
    assert_image(A.geometric(positions(5), "translate-y", 1.2),
                 [[0] * 5, [1, 2, 3, 4, 5], [6, 7, 8, 9, 10], [11, 12, 13, 14, 15],
                  [16, 17, 18, 19, 20]])


def test_rotate_turns_counter_clockwise_about_the_centre():
    assert_image(A.geometric(positions(5), "rotate", 20.0),
                 [[0, 3, 4, 5, 0], [1, 7, 8, 9, 15], [6, 12, 13, 14, 20],
                  [11, 17, 18, 19, 25], [0, 21, 22, 23, 0]])
    x = positions(4)
    assert torch.equal(A.geometric(x, "rotate", 90.0), torch.rot90(x, 1, (2, 3)))
    assert torch.equal(A.geometric(x, "rotate", -90.0), torch.rot90(x, -1, (2, 3)))


def test_rotate_12_degrees_matches_the_nearest_source_pixel():
    n, a = 9, math.radians(12.0)
    x = positions(n)
    expected = np.zeros((n, n), np.uint8)
    for r in range(n):
        for c in range(n):  # inverse map about the centre, y pointing down
            xc, yc = c - 4, r - 4
            sx = math.cos(a) * xc - math.sin(a) * yc + 4
            sy = math.sin(a) * xc + math.cos(a) * yc + 4
            assert min(abs(sx % 1 - 0.5), abs(sy % 1 - 0.5)) > 1e-3  # no tie to break
            if 0 <= round(sy) < n and 0 <= round(sx) < n:
                expected[r, c] = x[0, 0, round(sy), round(sx)]
    assert_image(A.geometric(x, "rotate", 12.0), expected.tolist())


def test_unknown_geometric_operation_is_refused():
    with pytest.raises(ValueError, match="not a geometric operation"):
        A.geometric_matrix("brightness", 0.3, 5, 5)


# --------------------------------------------------------------------------- erasing


def test_erase_sets_each_image_box_in_every_channel():
    x = positions(5).float().repeat(2, 1, 1, 1)
    boxes = torch.tensor([[1, 2, 2, 3], [0, 0, 0, 0]])  # rows 1-2, columns 2-4; nothing
    out = A.erase(x, boxes, -1.5)
    expected = x[0, 0].clone()
    expected[1:3, 2:5] = -1.5
    assert all(torch.equal(out[0, c], expected) for c in range(3))
    assert torch.equal(out[1], x[1])
    assert torch.equal(A.erase(positions(5), boxes[:1])[0, 0, 1], torch.tensor([6, 7, 0, 0, 0],
                                                                               dtype=torch.uint8))


def test_erasing_boxes_follow_random_erasing_rules():
    g = torch.Generator().manual_seed(0)
    boxes = A.erasing_boxes(20000, 32, 32, g, torch.device("cpu"))
    top, left, tall, wide = boxes.unbind(1)
    erased = tall > 0
    assert 0.19 < erased.float().mean().item() < 0.21
    assert bool((wide[~erased] == 0).all() and (top[~erased] >= 0).all())
    t, w = tall[erased], wide[erased]
    assert int(t.min()) >= 2 and int(w.min()) >= 2 and int(t.max()) <= 31 and int(w.max()) <= 31
    assert bool(((t * w) <= 0.33 * 1024 * 1.3).all()) and bool(((t * w) >= 0.02 * 1024 * 0.5).all())
    assert 0.2 <= (t / w).min().item() < 0.4 and 2.5 < (t / w).max().item() <= 4.5  # rounded sides
    assert bool((top[erased] + t <= 32).all() and (left[erased] + w <= 32).all())
    assert int(top[erased].min()) == 0 and int(left[erased].min()) == 0
    always = A.erasing_boxes(100, 32, 32, torch.Generator().manual_seed(1),
                             torch.device("cpu"), p=1.0)
    assert bool((always[:, 2] > 0).all())
    # a 1-pixel-high image: no box height is below 1, so no attempt fits and nothing is erased
    flat = A.erasing_boxes(100, 1, 64, torch.Generator().manual_seed(2),
                           torch.device("cpu"), p=1.0)
    assert bool((flat[:, 2:] == 0).all())


# --------------------------------------------------------------------------- RandAugment


def test_randaugment_magnitudes_at_bin_12_of_31():
    m = A.ra_magnitudes(32, 32)
    assert m["shear-x"] == m["shear-y"] == pytest.approx(0.12, abs=1e-6)
    assert int(m["translate-x"]) == int(m["translate-y"]) == 5  # 150/331 * 32 * 12/30 = 5.8
    assert m["rotate"] == 12.0 and m["posterize"] == 6.0 and m["solarize"] == 153.0
    assert m["brightness"] == m["color"] == m["contrast"] == m["sharpness"]
    assert m["brightness"] == pytest.approx(0.36, abs=1e-6)
    assert m["identity"] == m["autocontrast"] == m["equalize"] == 0.0
    assert list(m) == list(A.RA_OPS) and len(A.RA_OPS) == 14
    assert A.ra_magnitudes(32, 32, magnitude=0)["posterize"] == 8.0


def single_op(x: torch.Tensor, name: str, negative: bool) -> torch.Tensor:
    """``name`` applied to every image of ``x`` by its own function (bin 12 of 31)."""
    m = A.ra_magnitudes(*x.shape[-2:])[name]
    signed = -m if negative and name in A.SIGNED else m
    if name in A.GEOMETRIC:
        return A.geometric(x, name, signed)
    enhance = {"brightness": A.adjust_brightness, "color": A.adjust_saturation,
               "contrast": A.adjust_contrast, "sharpness": A.adjust_sharpness}
    if name in enhance:
        return enhance[name](x, 1.0 + signed)
    return {"identity": lambda v: v, "posterize": lambda v: A.posterize(v, int(m)),
            "solarize": lambda v: A.solarize(v, m), "autocontrast": A.autocontrast,
            "equalize": A.equalize}[name](x)


def test_apply_ops_gives_each_image_its_own_operation_and_sign():
    combos = [(k, neg) for k in range(len(A.RA_OPS)) for neg in (False, True)]
    x = random_images(len(combos), seed=3)
    x[::3] //= 2  # darker and lower-contrast images too
    op = torch.tensor([k for k, _ in combos])
    negative = torch.tensor([neg for _, neg in combos])
    out = A.apply_ops(x, op, negative)
    assert out.dtype == torch.uint8 and out.shape == x.shape
    for i, (k, neg) in enumerate(combos):
        expected = single_op(x[i:i + 1], A.RA_OPS[k], neg)
        assert torch.equal(out[i:i + 1], expected), (A.RA_OPS[k], neg)
    changed = {A.RA_OPS[k] for i, (k, _) in enumerate(combos) if not torch.equal(out[i], x[i])}
    assert changed == set(A.RA_OPS) - {"identity"}


def test_apply_ops_leaves_tiny_images_unsharpened():
    x = random_images(2, size=2)
    sharp = A.RA_OPS.index("sharpness")
    out = A.apply_ops(x, torch.tensor([sharp, sharp]), torch.tensor([False, True]))
    assert torch.equal(out, x)


def test_jitter_applies_factors_in_each_image_order():
    x = random_images(4, seed=4)
    order = torch.tensor([[0, 1, 2, 3], [2, 3, 1, 0], [3, 0, 2, 1], [1, 2, 0, 3]])
    factors = torch.tensor([[0.8, 1.2, 0.9], [1.1, 0.85, 1.19], [1.0, 0.81, 1.05],
                            [0.95, 1.15, 0.82]], dtype=torch.float64)
    fns = (A.adjust_brightness, A.adjust_contrast, A.adjust_saturation)
    out = A.jitter(x, order, factors)
    for i in range(4):
        expected = x[i:i + 1]
        for fn in order[i].tolist():
            if fn < 3:
                expected = fns[fn](expected, float(factors[i, fn]))
        assert torch.equal(out[i:i + 1], expected)
        assert not torch.equal(out[i], x[i])


def test_color_jitter_draws_factors_within_strength():
    x = same_channels([[100] * 8] * 8).repeat(500, 1, 1, 1)
    out = A.color_jitter(x, torch.Generator().manual_seed(5), 0.2)
    # grey images: contrast and saturation keep 100-ish, brightness scales by 0.8..1.2
    values = out.float().mean(dim=(1, 2, 3))
    assert 75 <= values.min().item() < 85 and 115 < values.max().item() <= 121
    assert values.std().item() > 5


# --------------------------------------------------------------------------- the pipeline


def test_pipeline_is_deterministic_per_generator_seed_and_keeps_shape():
    x = random_images(64, seed=6)
    a, boxes_a = A.pemn_authors(x, make_generator("cpu", 5, 2))
    b, boxes_b = A.pemn_authors(x, make_generator("cpu", 5, 2))
    c, boxes_c = A.pemn_authors(x, make_generator("cpu", 5, 3))
    assert torch.equal(a, b) and torch.equal(boxes_a, boxes_b)
    assert not torch.equal(a, c) and not torch.equal(boxes_a, boxes_c)
    assert a.dtype == torch.uint8 and a.shape == x.shape and boxes_a.shape == (64, 4)
    assert int(a.min()) >= 0 and int(a.max()) <= 255
    assert torch.equal(augment_batch(x, make_generator("cpu", 5, 2), "pemn-authors"), a)


def test_augmentation_name_is_listed_once_and_used_by_the_pemn_recipe():
    assert AUGMENTS is AUGMENTATIONS and "pemn-authors" in AUGMENTATIONS
    assert AUGMENTATIONS[:3] == ("crop-flip", "flip", "none")
    assert Recipe(augment="pemn-authors").augment == "pemn-authors"
    assert RECIPES["pemn-authors"].augment == "pemn-authors"


@pytest.fixture(scope="module")
def cifar(cifar10_dir):
    return load_data("cifar10", cifar10_dir)


def test_pipeline_on_cifar_changes_images_plausibly(cifar):
    x = cifar.train_x[:500]
    out, boxes = A.pemn_authors(x, make_generator("cpu", 0, 0))
    changed = (out != x).flatten(1).any(1).float().mean().item()
    assert changed > 0.95  # two identities and no flip: about 1/14**2 / 2 of images
    before, after = x.float(), out.float()
    assert after.mean().item() == pytest.approx(before.mean().item(), abs=25)
    assert 0.7 < after.std().item() / before.std().item() < 1.4
    per_image = after.flatten(1).std(1)
    assert (per_image > 5).float().mean().item() > 0.95  # not washed out to flat images
    def corr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        a, b = a.float().flatten(1), b.float().flatten(1)
        a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
        return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + 1e-9)

    similar = torch.maximum(corr(x, out), corr(x.flip(3), out))  # the flip undone
    assert similar.median().item() > 0.45  # mostly still the same picture (0.61 here)
    assert 0.12 < (boxes[:, 2] > 0).float().mean().item() < 0.28


def test_device_data_erases_after_normalising(cifar):
    x = cifar.train_x[:200]
    got = cifar.augment(x, make_generator("cpu", 1, 4), "pemn-authors")
    images, boxes = A.pemn_authors(x, make_generator("cpu", 1, 4))
    assert torch.equal(got, A.erase(cifar.normalize(images), boxes, 0.0))
    erased = boxes[:, 2] > 0
    i = int(erased.nonzero()[0])
    top, left, tall, wide = boxes[i].tolist()
    assert bool((got[i, :, top:top + tall, left:left + wide] == 0).all())
    a, ya = next(iter(cifar.train_batches(250, 2, 0, "pemn-authors")))
    b, yb = next(iter(cifar.train_batches(250, 2, 0, "pemn-authors")))
    assert torch.equal(a, b) and torch.equal(ya, yb) and a.dtype == torch.float32
    zero_pixels = (a == 0).all(1).flatten(1).any(1).float().mean().item()
    assert 0.1 < zero_pixels < 0.3  # the erased images (other exact zeros are rare)
    px, py = cifar.pruning_batch(per_class=2, seed=0, augment="pemn-authors")
    assert px.shape == (20, 3, 32, 32) and torch.bincount(py).tolist() == [2] * 10


def test_matches_pillow_where_pillow_computes_the_same(cifar):
    ImageOps = pytest.importorskip("PIL.ImageOps")
    from PIL import Image

    x = cifar.train_x[:40]
    ops = {"equalize": (A.equalize, ImageOps.equalize),
           "posterize": (lambda v: A.posterize(v, 6), lambda p: ImageOps.posterize(p, 6)),
           "solarize": (lambda v: A.solarize(v, 153.0), lambda p: ImageOps.solarize(p, 153))}
    for name, (ours, pil) in ops.items():
        got = ours(x)
        for i in range(len(x)):
            p = pil(Image.fromarray(x[i].permute(1, 2, 0).numpy()))
            expected = torch.from_numpy(np.asarray(p).copy()).permute(2, 0, 1)
            assert torch.equal(got[i], expected), (name, i)
