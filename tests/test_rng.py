"""The suite's own random numbers: Philox known answers, pinned outputs, and their properties."""

import hashlib
import math

import numpy as np
import pytest
import torch

from bench import rng
from bench.errors import BenchError

# Random123's tests/kat_vectors, the "philox4x32 7" and "philox4x32 10" lines:
# (rounds, counter words, key words, expected output words).
PI_CTR = (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344)
PI_KEY = (0xA4093822, 0x299F31D0)
KAT = [
    (10, (0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    (10, (0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (10, PI_CTR, PI_KEY, (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
    (7, (0, 0, 0, 0), (0, 0), (0x5F6FB709, 0x0D893F64, 0x4F121F81, 0x4F730A48)),
    (7, (0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x5207DDC2, 0x45165E59, 0x4D8EE751, 0x8C52F662)),
    (7, PI_CTR, PI_KEY, (0x4DFCCABA, 0x190A87F0, 0xC47362BA, 0xB6B5242A)),
]


@pytest.mark.parametrize("rounds,ctr,key,want", KAT)
def test_philox_known_answers(rounds, ctr, key, want):
    got = rng.philox4x32(np.array(ctr, dtype=np.uint32), key, rounds=rounds)
    assert got.dtype == np.uint32
    assert tuple(int(v) for v in got) == want


def _philox_reference(ctr, key, rounds=10):
    """A plain scalar Philox4x32 written independently (key bumped before rounds 2..R)."""
    c, k = list(ctr), list(key)
    for r in range(rounds):
        if r:
            k = [(k[0] + 0x9E3779B9) % 2**32, (k[1] + 0xBB67AE85) % 2**32]
        p0, p1 = 0xD2511F53 * c[0], 0xCD9E8D57 * c[2]
        c = [(p1 >> 32) ^ c[1] ^ k[0], p1 % 2**32, (p0 >> 32) ^ c[3] ^ k[1], p0 % 2**32]
    return c


def test_vectorised_philox_matches_a_scalar_reference():
    gen = np.random.default_rng(0)
    ctrs = gen.integers(0, 2**32, size=(64, 4), dtype=np.uint64)
    key = (0x01234567, 0x89ABCDEF)
    got = rng.philox4x32(ctrs, key)
    for row, out in zip(ctrs.tolist(), got.tolist()):
        assert out == _philox_reference(row, key)


def test_stream_layout():
    # Block j of stream s under seed k is Philox of counter (j_lo, j_hi, s_lo, s_hi), key
    # (k_lo, k_hi): the layout of at::Philox4_32(seed, subsequence, offset) in PyTorch.
    seed, stream = 0xDEADBEEFCAFEF00D, (7 << 32) | 5
    raw = rng.random_uint32(seed, 4 * 3, stream).reshape(3, 4)
    for j in range(3):
        ctr = [j, 0, stream & 0xFFFFFFFF, stream >> 32]
        assert raw[j].tolist() == _philox_reference(ctr, [seed & 0xFFFFFFFF, seed >> 32])


def test_pinned_outputs_seed_12345():
    # Outputs of this implementation, pinned: artifacts store only the seed, so these numbers
    # must never change. (The raw words agree with PyTorch's at::Philox4_32(12345, 0, 0).)
    assert rng.random_uint32(12345, 4).tolist() == [3522838145, 796912209, 3536492049, 3811097568]
    assert rng.uniforms(12345, 4).tolist() == [
        0.18554558274807043, 0.8873402999768508, 0.1442961329600735, 0.6459833513696184]
    assert rng.normals(12345, 4).tolist() == [
        1.394497081657193, -1.1934350779541996, -1.1963773544190637, -1.5621960344921577]
    assert rng.normals_float32(12345, 4).tolist() == [
        1.394497036933899, -1.1934350728988647, -1.1963773965835571, -1.5621960163116455]
    assert rng.signs(12345, 4).tolist() == [-1, 1, 1, 1]


def test_pinned_long_draws():
    # Across chunk boundaries and at the extremes of seed and stream.
    f32 = rng.normals_float32(12345, 100_000, stream=3).astype("<f4").tobytes()
    assert hashlib.sha256(f32).hexdigest() == (
        "045e8e70cf178b36be216411870a00ed6f0d7b980943d51f23ff558ca19bc1f3")
    f64 = rng.normals(2**64 - 1, 100_001, stream=2**64 - 1).astype("<f8").tobytes()
    assert hashlib.sha256(f64).hexdigest() == (
        "92f1177589c6fce0c88d8c58f8cfeb8ed6920fdde5a0962c6261ea3ace35ca75")


def test_dtypes_and_lengths():
    for n in (0, 1, 2, 3, 31, 33):
        assert rng.uniforms(1, n).dtype == np.float64 and len(rng.uniforms(1, n)) == n
        assert rng.normals(1, n).dtype == np.float64 and len(rng.normals(1, n)) == n
        assert rng.normals_float32(1, n).dtype == np.float32 and len(rng.normals_float32(1, n)) == n
        assert rng.signs(1, n).dtype == np.int8 and len(rng.signs(1, n)) == n
        assert rng.random_uint32(1, n).dtype == np.uint32 and len(rng.random_uint32(1, n)) == n


def test_deterministic():
    for fn in (rng.random_uint32, rng.uniforms, rng.normals, rng.signs):
        assert np.array_equal(fn(7, 1001, 2), fn(7, 1001, 2))


def test_seeds_and_streams_differ():
    for fn in (rng.random_uint32, rng.uniforms, rng.normals, rng.signs):
        base = fn(7, 1000)
        assert not np.array_equal(base, fn(8, 1000))
        assert not np.array_equal(base, fn(7, 1000, stream=1))
        assert not np.array_equal(base, fn(2**32 + 7, 1000))  # the seed's high word counts too
        assert not np.array_equal(base, fn(7, 1000, stream=2**32))


def test_prefix_property():
    n = 2 * rng._CHUNK * 2 + 7  # several chunks of blocks
    for fn in (rng.random_uint32, rng.uniforms, rng.normals, rng.normals_float32, rng.signs):
        full = fn(99, n, 5)
        for k in (1, 2, 3, 65, 2 * rng._CHUNK - 1, 2 * rng._CHUNK, 2 * rng._CHUNK + 1, n - 1):
            assert np.array_equal(fn(99, k, 5), full[:k]), (fn.__name__, k)


def test_uniform_mapping():
    assert rng._words_to_uniforms(np.zeros(1, np.uint64), np.zeros(1, np.uint64))[0] == 2.0**-53
    top = np.full(1, 0xFFFFFFFF, np.uint64)
    assert rng._words_to_uniforms(top, top)[0] == 1.0 - 2.0**-53
    u = rng.uniforms(3, 1_000_000)
    assert 0.0 < u.min() and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.002


def test_signs_are_the_bits_of_the_raw_stream():
    words = rng.random_uint32(11, 3)
    bits = [(int(w) >> b) & 1 for w in words for b in range(32)]
    assert rng.signs(11, 96).tolist() == [1 - 2 * b for b in bits]
    assert set(np.unique(rng.signs(11, 10_000)).tolist()) == {-1, 1}


def test_own_transcendentals_are_accurate():
    u = np.concatenate([rng.uniforms(5, 200_000), [2.0**-53, 0.5, 0.25, 1.0 - 2.0**-53]])
    np.testing.assert_allclose(rng._log(u), np.log(u), rtol=4e-16, atol=0)
    cos, sin = rng._cos_sin_turns(u)
    np.testing.assert_allclose(cos, np.cos(2 * np.pi * u), rtol=0, atol=2e-15)
    np.testing.assert_allclose(sin, np.sin(2 * np.pi * u), rtol=0, atol=2e-15)
    # and so the normals are Box-Muller of the uniforms, to rounding
    u = rng.uniforms(5, 20_000)
    radius = np.sqrt(-2 * np.log(u[0::2]))
    expected = np.stack([radius * np.cos(2 * np.pi * u[1::2]),
                         radius * np.sin(2 * np.pi * u[1::2])], axis=1).reshape(-1)
    np.testing.assert_allclose(rng.normals(5, 20_000), expected, rtol=0, atol=1e-13)


def test_normal_statistics():
    z = rng.normals(2024, 1_000_000)
    assert abs(z.mean()) < 0.005
    assert abs(z.std() - 1.0) < 0.005
    assert np.isfinite(z).all()


def test_kaiming_normal():
    shape, fan_in = (64, 32, 3, 3), 32 * 9
    w = rng.kaiming_normal(shape, fan_in, seed=3, stream=1)
    assert isinstance(w, torch.Tensor) and w.dtype == torch.float32 and tuple(w.shape) == shape
    std = math.sqrt(2.0 / fan_in)
    assert abs(w.std().item() / std - 1.0) < 0.02
    expected = (rng.normals(3, w.numel(), 1) * std).astype(np.float32).reshape(shape)
    assert np.array_equal(w.numpy(), expected)


def test_signed_constant():
    shape, fan_in = (10, 20), 20
    w = rng.signed_constant(shape, fan_in, seed=4)
    assert w.dtype == torch.float32 and tuple(w.shape) == shape
    value = np.float32(math.sqrt(2.0 / fan_in))
    expected = rng.signs(4, 200).reshape(shape).astype(np.float32) * value
    assert np.array_equal(w.numpy(), expected)


def test_bad_arguments():
    with pytest.raises(BenchError):
        rng.normals(-1, 3)
    with pytest.raises(BenchError):
        rng.uniforms(2**64, 3)
    with pytest.raises(BenchError):
        rng.signs(0, 3, stream=-1)
    with pytest.raises(BenchError):
        rng.normals(0, -1)
    with pytest.raises(BenchError):
        rng.kaiming_normal((3, 3), 0, seed=1)
    with pytest.raises(TypeError):
        rng.normals(1.5, 3)
