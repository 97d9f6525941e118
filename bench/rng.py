"""The suite's own counter-based random numbers: Philox-4x32-10, uniforms, normals, signs.

Fixed random weights (Edge-Popup, PEMN) are stored in an artifact as a 64-bit seed plus an
init scheme and regenerated on load, so every number here is defined by this file alone and
must never drift: nothing comes from ``torch.randn`` or numpy's ``Generator`` distributions.

Stream layout (the same as ``at::Philox4_32(seed, subsequence, offset)`` in PyTorch and
curand's Philox): the key is the seed split into two 32-bit words (low word first); block
``j`` of stream ``s`` is Philox4x32-10 of the 128-bit counter ``(s << 64) | j``, i.e. the
counter words are ``(j_lo, j_hi, s_lo, s_hi)``. Each block yields four uint32 outputs.

- ``random_uint32``: the outputs of blocks 0, 1, 2, ... in order (4 per block).
- ``uniforms``: value ``i`` takes the 64-bit word ``w = x[2i] | x[2i+1] << 32`` and returns
  ``u = ((w >> 12) + 0.5) * 2**-52``: the top 52 bits plus half an ulp, which is exactly
  representable, so ``u`` lies in ``[2**-53, 1 - 2**-53]`` and is never 0 or 1.
- ``normals``: Box-Muller on consecutive pairs ``(u[2i], u[2i+1])``:
  ``z[2i] = sqrt(-2 ln u1) cos(2 pi u2)``, ``z[2i+1] = sqrt(-2 ln u1) sin(2 pi u2)``.
- ``signs``: value ``i`` is ``1 - 2 * bit`` where ``bit`` is bit ``i % 32`` (least significant
  first) of ``x[i // 32]``.

Every draw has the prefix property: the first ``k`` values of an ``n``-value draw equal the
``k``-value draw. Platform independence: Philox is exact integer arithmetic. ``log``, ``cos``
and ``sin`` are NOT taken from numpy or libm (whose float64 results differ by an ulp between
CPUs, SIMD paths and releases); they are computed here with fixed polynomials using only
``+ - * /``, ``sqrt``, ``frexp`` and ``rint``, which IEEE-754 rounds exactly, each as a separate
numpy operation (no fused multiply-add). So ``normals`` is bit-identical on any IEEE-754
machine, and the float32 values weights use (``normals_float32``) are too; the polynomials
are within a few ulp of the true functions.
"""

from __future__ import annotations

import math
import operator

import numpy as np
import torch

from bench.errors import BenchError

__all__ = [
    "philox4x32",
    "random_uint32",
    "uniforms",
    "normals",
    "normals_float32",
    "signs",
    "kaiming_normal",
    "signed_constant",
]

_M0 = np.uint64(0xD2511F53)
_M1 = np.uint64(0xCD9E8D57)
_W0 = 0x9E3779B9
_W1 = 0xBB67AE85
_MASK32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)
_U64_LIMIT = 1 << 64
_CHUNK = 1 << 15  # blocks per chunk: keeps the temporaries in cache


def philox4x32(counters: np.ndarray, key: tuple[int, int], rounds: int = 10) -> np.ndarray:
    """Philox4x32-``rounds`` of each row of ``counters`` (shape ``(..., 4)``, uint32 values)
    under ``key`` (two 32-bit words); returns uint32 of the same shape."""
    ctr = np.asarray(counters, dtype=np.uint64)
    if ctr.shape[-1:] != (4,):
        raise ValueError(f"counters must have shape (..., 4), got {ctr.shape}")
    if np.any(ctr > 0xFFFFFFFF):
        raise ValueError("counter words must be 32-bit")
    k0, k1 = (int(k) for k in key)
    if not (0 <= k0 <= 0xFFFFFFFF and 0 <= k1 <= 0xFFFFFFFF):
        raise ValueError("key words must be 32-bit")
    flat = ctr.reshape(-1, 4)
    out = _philox_words(flat[:, 0], flat[:, 1], flat[:, 2], flat[:, 3], k0, k1, rounds)
    return np.stack(out, axis=-1).astype(np.uint32).reshape(ctr.shape)


def _philox_words(c0: np.ndarray, c1: np.ndarray, c2: np.ndarray, c3: np.ndarray,
                  k0: int, k1: int, rounds: int) -> tuple[np.ndarray, ...]:
    """The Philox rounds on uint64 arrays holding 32-bit words; returns the four output words."""
    for r in range(rounds):
        if r:
            k0 = (k0 + _W0) & 0xFFFFFFFF
            k1 = (k1 + _W1) & 0xFFFFFFFF
        p0 = c0 * _M0  # exact: a 32x32-bit product fits in 64 bits
        p1 = c2 * _M1
        hi1 = p1 >> _SHIFT32
        hi1 ^= c1
        hi1 ^= np.uint64(k0)
        hi0 = p0 >> _SHIFT32
        hi0 ^= c3
        hi0 ^= np.uint64(k1)
        p1 &= _MASK32
        p0 &= _MASK32
        c0, c1, c2, c3 = hi1, p1, hi0, p0
    return c0, c1, c2, c3


def _check(seed: int, n: int, stream: int) -> tuple[int, int, int]:
    seed, n, stream = operator.index(seed), operator.index(n), operator.index(stream)
    if not 0 <= seed < _U64_LIMIT:
        raise BenchError(f"random seed must be an unsigned 64-bit integer, got {seed}")
    if not 0 <= stream < _U64_LIMIT:
        raise BenchError(f"random stream must be an unsigned 64-bit integer, got {stream}")
    if n < 0:
        raise BenchError(f"cannot draw a negative number of random values ({n})")
    return seed, n, stream


def _blocks(seed: int, stream: int, start: int, count: int) -> tuple[np.ndarray, ...]:
    """The four output words (uint64 arrays of 32-bit values) of blocks ``start..start+count``."""
    index = np.arange(start, start + count, dtype=np.uint64)
    c2 = np.full(count, stream & 0xFFFFFFFF, dtype=np.uint64)
    c3 = np.full(count, stream >> 32, dtype=np.uint64)
    return _philox_words(index & _MASK32, index >> _SHIFT32, c2, c3,
                         seed & 0xFFFFFFFF, seed >> 32, 10)


def _chunks(nblocks: int):
    for start in range(0, nblocks, _CHUNK):
        yield start, min(_CHUNK, nblocks - start)


def random_uint32(seed: int, n: int, stream: int = 0) -> np.ndarray:
    """The first ``n`` raw 32-bit Philox4x32-10 outputs of ``(seed, stream)``, as uint32."""
    seed, n, stream = _check(seed, n, stream)
    nblocks = -(-n // 4)
    out = np.empty((nblocks, 4), dtype=np.uint32)
    for start, count in _chunks(nblocks):
        for j, word in enumerate(_blocks(seed, stream, start, count)):
            out[start:start + count, j] = word
    return out.reshape(-1)[:n]


def _words_to_uniforms(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``((w >> 12) + 0.5) * 2**-52`` for ``w = lo | hi << 32``: exact, in (0, 1)."""
    top = hi << np.uint64(20)
    top |= lo >> np.uint64(12)  # w >> 12, a 52-bit integer
    u = top.astype(np.float64)
    u += 0.5
    u *= 2.0**-52
    return u


def uniforms(seed: int, n: int, stream: int = 0) -> np.ndarray:
    """``n`` float64 uniforms in (0, 1) (never 0 or 1), 52 random bits each."""
    seed, n, stream = _check(seed, n, stream)
    nblocks = -(-n // 2)
    out = np.empty((nblocks, 2), dtype=np.float64)
    for start, count in _chunks(nblocks):
        x0, x1, x2, x3 = _blocks(seed, stream, start, count)
        out[start:start + count, 0] = _words_to_uniforms(x0, x1)
        out[start:start + count, 1] = _words_to_uniforms(x2, x3)
    return out.reshape(-1)[:n]


# --- transcendental functions from IEEE-exact operations only --------------------------------

_LN2_HI = 6.93147180369123816490e-01  # 21 trailing zero bits: e * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10
_SQRT_HALF = math.sqrt(0.5)
# log(1+f) = f - s*(f - R(s*s)) with s = f/(2+f), R(z) = sum_k 2 z^k / (2k+1), k = 1..11
_LOG_R = tuple(2.0 / (2 * k + 1) for k in range(11, 0, -1))
# sin x = x * S(x*x), cos x = C(x*x): Taylor series to x^17 and x^18 (|x| <= pi/4)
_SIN_S = tuple((-1.0) ** k / math.factorial(2 * k + 1) for k in range(8, -1, -1))
_COS_C = tuple((-1.0) ** k / math.factorial(2 * k) for k in range(9, -1, -1))
_TWO_PI = 2.0 * math.pi


def _horner(coeffs: tuple[float, ...], z: np.ndarray) -> np.ndarray:
    """``sum coeffs[i] * z**(len-1-i)`` by Horner's rule, one IEEE operation at a time."""
    acc = np.full_like(z, coeffs[0])
    for c in coeffs[1:]:
        acc *= z
        acc += c
    return acc


def _log(x: np.ndarray) -> np.ndarray:
    """Natural log of positive finite normal float64 ``x``, within a few ulp, IEEE-exact ops."""
    m, e = np.frexp(x)  # x = m * 2**e, m in [0.5, 1)
    small = m < _SQRT_HALF
    np.multiply(m, 2.0, out=m, where=small)  # now m in [sqrt(1/2), sqrt(2))
    e = e.astype(np.float64)
    np.subtract(e, 1.0, out=e, where=small)
    f = m - 1.0  # exact (Sterbenz)
    s = f / (2.0 + f)
    r = _horner(_LOG_R, s * s)
    r *= s * s
    r = f - r
    r *= s
    log1p = f - r
    lo = e * _LN2_LO
    lo += log1p
    lo += e * _LN2_HI
    return lo


def _cos_sin_turns(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``cos(2 pi u)`` and ``sin(2 pi u)`` for ``u`` in [0, 1] on the 2**-53 grid."""
    q = np.rint(u * 4.0)  # nearest quarter turn
    x = u - q * 0.25  # exact, |x| <= 1/8 turn
    x *= _TWO_PI
    z = x * x
    s = _horner(_SIN_S, z)
    s *= x
    c = _horner(_COS_C, z)
    quadrant = q.astype(np.uint8) & np.uint8(3)
    odd = (quadrant & np.uint8(1)).astype(bool)
    cos_out = np.where(odd, s, c)
    sin_out = np.where(odd, c, s)
    np.negative(cos_out, out=cos_out, where=(quadrant - np.uint8(1)) < np.uint8(2))  # 1, 2
    np.negative(sin_out, out=sin_out, where=quadrant >= np.uint8(2))  # 2, 3
    return cos_out, sin_out


def normals(seed: int, n: int, stream: int = 0) -> np.ndarray:
    """``n`` float64 standard normals by Box-Muller on consecutive uniform pairs (odd ``n``
    drops the last); bit-identical on every IEEE-754 machine (see the module docstring)."""
    seed, n, stream = _check(seed, n, stream)
    nblocks = -(-n // 2)
    out = np.empty((nblocks, 2), dtype=np.float64)
    for start, count in _chunks(nblocks):
        x0, x1, x2, x3 = _blocks(seed, stream, start, count)
        radius = _log(_words_to_uniforms(x0, x1))
        radius *= -2.0
        np.sqrt(radius, out=radius)
        cos, sin = _cos_sin_turns(_words_to_uniforms(x2, x3))
        cos *= radius
        sin *= radius
        out[start:start + count, 0] = cos
        out[start:start + count, 1] = sin
    return out.reshape(-1)[:n]


def normals_float32(seed: int, n: int, stream: int = 0) -> np.ndarray:
    """``normals`` rounded to float32 (computed in float64): the values weights are built from."""
    return normals(seed, n, stream).astype(np.float32)


def signs(seed: int, n: int, stream: int = 0) -> np.ndarray:
    """``n`` int8 values in {+1, -1}, one random bit each (bit set -> -1)."""
    seed, n, stream = _check(seed, n, stream)
    words = random_uint32(seed, -(-n // 32), stream)
    bits = np.unpackbits(words.astype("<u4").view(np.uint8), bitorder="little")[:n]
    return (1 - 2 * bits.astype(np.int8)).astype(np.int8)


def _numel(shape: tuple[int, ...], fan_in: int) -> tuple[int, float]:
    shape = tuple(operator.index(d) for d in shape)
    if any(d < 0 for d in shape):
        raise BenchError(f"negative dimension in weight shape {shape}")
    fan_in = operator.index(fan_in)
    if fan_in <= 0:
        raise BenchError(f"fan_in must be positive, got {fan_in}")
    return math.prod(shape), math.sqrt(2.0 / fan_in)


def kaiming_normal(shape: tuple[int, ...], fan_in: int, seed: int,
                   stream: int = 0) -> torch.Tensor:
    """Float32 tensor of N(0, 2/fan_in) values: ``normals * sqrt(2/fan_in)`` in float64, cast."""
    numel, std = _numel(shape, fan_in)
    values = normals(seed, numel, stream) * std
    return torch.from_numpy(values.astype(np.float32).reshape(tuple(shape)))


def signed_constant(shape: tuple[int, ...], fan_in: int, seed: int,
                    stream: int = 0) -> torch.Tensor:
    """Float32 tensor of ``+-sqrt(2/fan_in)`` with signs from ``signs``."""
    numel, std = _numel(shape, fan_in)
    values = signs(seed, numel, stream).astype(np.float64) * std
    return torch.from_numpy(values.astype(np.float32).reshape(tuple(shape)))
