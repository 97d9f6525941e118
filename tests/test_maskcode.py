"""Mask coding: exact round trips, sizes at the entropy, smaller codec wins, corruption caught."""

import numpy as np
import pytest
import torch

from bench.artifact.maskcode import EncodedMask, decode_mask, encode_mask, entropy_bits
from bench.errors import BenchError


def _mask(n: int, density: float, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random(n) < density


@pytest.mark.parametrize("n", [1, 7, 8, 9, 1000, 300_000])
@pytest.mark.parametrize("density", [0.5, 0.1, 0.02, 0.001, 0.999, 1.0, 0.0])
def test_round_trip(n, density):
    mask = _mask(n, density, seed=n)
    enc = encode_mask(mask)
    assert enc.numel == n and enc.ones == int(mask.sum())
    out = decode_mask(enc)
    assert out.dtype == np.bool_ and out.shape == (n,)
    assert np.array_equal(out, mask)


def test_const_and_empty():
    assert encode_mask(np.ones(50, bool)) == EncodedMask("const", 50, 50, b"")
    assert encode_mask(np.zeros(50, bool)) == EncodedMask("const", 50, 0, b"")
    empty = encode_mask(np.zeros(0, bool))
    assert empty.codec == "const" and decode_mask(empty).shape == (0,)


def test_torch_and_shaped_input():
    mask = torch.from_numpy(_mask(6 * 5 * 3 * 3, 0.1, seed=1)).reshape(6, 5, 3, 3)
    out = decode_mask(encode_mask(mask))
    assert np.array_equal(out, mask.reshape(-1).numpy())
    with pytest.raises(TypeError):
        encode_mask(np.zeros(10, dtype=np.float32))


@pytest.mark.parametrize("density", [0.5, 0.1, 0.02])
def test_size_within_two_percent_of_entropy(density):
    mask = _mask(250_000, density, seed=2)
    enc = encode_mask(mask)
    bound = entropy_bits(enc.numel, enc.ones)
    assert 8 * len(enc.payload) <= 1.02 * bound
    assert np.array_equal(decode_mask(enc), mask)


def test_chooser_picks_the_smaller():
    for n, density in [(9, 0.5), (1000, 0.5), (1000, 0.3), (1000, 0.02), (100_000, 0.45)]:
        mask = _mask(n, density, seed=3)
        enc = encode_mask(mask)
        packed = -(-n // 8)
        if enc.codec == "bits":
            assert len(enc.payload) == packed
        else:
            assert enc.codec == "range" and len(enc.payload) < packed
    assert encode_mask(_mask(100_000, 0.02)).codec == "range"


def test_entropy_bits():
    assert entropy_bits(10, 0) == entropy_bits(10, 10) == entropy_bits(0, 0) == 0.0
    assert entropy_bits(8, 4) == pytest.approx(8.0)
    assert entropy_bits(1000, 100) == pytest.approx(1000 * 0.4689955935892812)


def test_pinned_range_payload():
    # The range coder's model quantization is part of the stored format: pin one payload so a
    # constriction release that changes it is caught here, not in old artifacts.
    mask = (np.arange(200) * 37 % 10) == 0
    enc = encode_mask(mask)
    assert enc == EncodedMask("range", 200, 20, bytes.fromhex("3e97afef44d8627eff82c89b"))
    assert np.array_equal(decode_mask(enc), mask)


def test_header_and_bits_validation():
    mask = _mask(100, 0.5, seed=4)
    enc = encode_mask(mask)
    assert enc.codec == "bits"
    bad = [
        EncodedMask("bits", 100, enc.ones, enc.payload[:-1]),
        EncodedMask("bits", 100, enc.ones + 1, enc.payload),
        EncodedMask("bits", 100, enc.ones, enc.payload[:-1] + bytes([enc.payload[-1] | 0x80])),
        EncodedMask("zstd", 100, enc.ones, enc.payload),
        EncodedMask("bits", 100, 101, enc.payload),
        EncodedMask("const", 100, 3, b""),
        EncodedMask("const", 100, 100, b"\x00"),
        EncodedMask("range", 100, 0, b"\x00\x00\x00\x00"),
        EncodedMask("range", 100, 10, b""),
        EncodedMask("range", 100, 10, b"\x00\x00\x00"),
    ]
    for item in bad:
        with pytest.raises(BenchError, match="corrupt mask payload"):
            decode_mask(item)


def test_corrupted_range_payloads():
    gen = np.random.default_rng(12345)
    detected = 0
    for trial in range(60):
        mask = _mask(int(gen.integers(200, 20_000)), [0.1, 0.02, 0.3][trial % 3], seed=trial)
        enc = encode_mask(mask)
        assert enc.codec == "range"
        payload = bytearray(enc.payload)
        if trial % 3 == 0:
            payload = payload[: int(gen.integers(0, len(payload)))]
        else:
            i = int(gen.integers(len(payload)))
            payload[i] ^= 1 << int(gen.integers(8))
        try:
            out = decode_mask(EncodedMask("range", enc.numel, enc.ones, bytes(payload)))
        except BenchError as exc:
            assert str(exc).startswith("corrupt mask payload: ")
            detected += 1
        else:  # undetectable: the payload is a valid encoding of another mask
            assert out.shape == (enc.numel,) and int(out.sum()) == enc.ones
    assert detected >= 55
