"""Compiled loops of the codecs' per-value work (numba): tokens, raw bits, predictions and their inverses.

Each function does, value after value, what :mod:`hepae.codecs.entropy` and
:mod:`hepae.codecs.residual_prediction` specify (the hybrid-uint tokens, the little-endian raw bit string
and the fixed-point predictions of ``docs/format.md``) in one pass without temporaries; numpy needs a dozen
passes over each column for the same. The arithmetic is integer only (uint64 and int64, floor division as
numpy's), so the result is the same on every machine.

numba is imported, and the functions compiled, on the first call of any of them (``import hepae`` stays
quick); compiled code is cached by numba (next to this file, or in the user's cache directory) and loaded
from there by later processes.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

DIRECT_BITS = 4
"""Values below ``2**DIRECT_BITS`` are their own token (the hybrid-uint tokens of :mod:`hepae.codecs.entropy`)."""
KEPT = 2
"""Bits below the leading one that a larger value keeps in its token."""
_DIRECT = 1 << DIRECT_BITS
_SUBBUCKETS = 1 << KEPT

_SOURCES: dict[str, tuple[Callable[..., Any], bool]] = {}  # name -> (Python function, inlined into its callers)
_COMPILING = threading.Lock()


def _compile_all() -> None:
    """Replace every kernel of this module by its numba dispatcher (once; compiled lazily per signature)."""
    with _COMPILING:
        import numba

        for name, (function, inline) in _SOURCES.items():
            if isinstance(globals()[name], numba.core.dispatcher.Dispatcher):
                continue
            globals()[name] = numba.njit(cache=True, nogil=True, boundscheck=False,
                                         inline="always" if inline else "never")(function)


def _kernel(function: Callable[..., Any] | None = None, *, inline: bool = False) -> Any:
    """Register ``function`` as a kernel: until the first call of any kernel, a stand-in that compiles them all."""
    def register(function: Callable[..., Any]) -> Callable[..., Any]:
        _SOURCES[function.__name__] = (function, inline)

        @functools.wraps(function)
        def first_call(*args: Any) -> Any:
            _compile_all()
            return globals()[function.__name__](*args)

        return first_call

    return register(function) if function is not None else register


@_kernel
def tokenize(u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(token, raw_width, raw_bits)`` of non-negative integers (``entropy.tokenize``)."""
    n = len(u)
    token = np.empty(n, np.int32)
    width = np.zeros(n, np.int64)
    raw = np.zeros(n, np.uint64)
    one = np.uint64(1)
    for i in range(n):
        v = u[i]
        if v < np.uint64(_DIRECT):
            token[i] = np.int32(v)
            continue
        high = 0  # index of the highest set bit
        rest = v
        for shift in (32, 16, 8, 4, 2, 1):
            if rest >> np.uint64(shift):
                rest >>= np.uint64(shift)
                high += shift
        w = high - KEPT - 1
        top = np.int64((v >> np.uint64(w + 1)) & np.uint64(_SUBBUCKETS - 1))
        low = np.int64(v & one)
        token[i] = np.int32(_DIRECT + ((high - DIRECT_BITS) * _SUBBUCKETS + top) * 2 + low)
        width[i] = w
        raw[i] = (v >> one) & ((one << np.uint64(w)) - one)
    return token, width, raw


@_kernel
def detokenize(token: np.ndarray, words: np.ndarray, first_bit: int) -> tuple[np.ndarray, int]:
    """The values of tokens whose raw bits start at bit ``first_bit`` of ``words`` (uint64, two spare words at
    the end), and the bit after the last one read. The caller checks that the words hold them."""
    n = len(token)
    out = np.empty(n, np.uint64)
    bit = first_bit
    one = np.uint64(1)
    for i in range(n):
        t = token[i]
        if t < _DIRECT:
            out[i] = np.uint64(t)
            continue
        w = (t - _DIRECT) // (2 * _SUBBUCKETS) + DIRECT_BITS - KEPT - 1
        word, shift = bit >> 6, bit & 63
        value = words[word] >> np.uint64(shift)
        if shift + w > 64:
            value |= words[word + 1] << np.uint64(64 - shift)
        raw = value & ((one << np.uint64(w)) - one)
        bit += w
        top = np.uint64(_SUBBUCKETS | (((t - _DIRECT) // 2) % _SUBBUCKETS))
        low = np.uint64((t - _DIRECT) % 2)
        out[i] = (top << np.uint64(w + 1)) | (raw << one) | low
    return out, bit


@_kernel
def raw_bits(token: np.ndarray) -> int:
    """How many raw bits follow these tokens."""
    total = 0
    for t in token:
        if t >= _DIRECT:
            total += (t - _DIRECT) // (2 * _SUBBUCKETS) + DIRECT_BITS - KEPT - 1
    return total


@_kernel
def pack_raw(width: np.ndarray, raw: np.ndarray, first_bit: int) -> np.ndarray:
    """The raw bits as a little-endian bit string (uint64 words, two spare at the end): each value's ``width``
    bits, in order, the first at bit ``first_bit`` (< 64) of the first word."""
    total = first_bit
    for w in width:
        total += w
    out = np.zeros(total // 64 + 2, np.uint64)
    bit = first_bit
    for i in range(len(width)):
        w = width[i]
        if w == 0:
            continue
        word, shift = bit >> 6, bit & 63
        out[word] |= raw[i] << np.uint64(shift)
        if shift + w > 64:
            out[word + 1] |= raw[i] >> np.uint64(64 - shift)
        bit += w
    return out


@_kernel
def bins(position: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """``np.searchsorted(edges, position, side="right")`` for increasing ``edges``."""
    out = np.empty(len(position), np.int64)
    m = len(edges)
    for i in range(len(position)):
        p = position[i]
        base, size = 0, m + 1  # positions 0..m; the answer is the number of edges <= p
        while size > 1:
            half = size >> 1
            base = base + half if edges[base + half - 1] <= p else base
            size -= half
        out[i] = base
    return out


# -- residual prediction (hepae.codecs.residual_prediction) -----------------------------------------

@_kernel(inline=True)
def _curve_at(p: int, knots: np.ndarray, values: np.ndarray) -> int:
    """The piecewise-linear function through ``(knots, values)`` at ``p`` (floor division)."""
    m = len(knots)
    if m == 1:
        return values[0]
    base, size = 0, m  # the last knot <= p (0 if none), by a bisection without data-dependent branches
    while size > 1:
        half = size >> 1
        base = base + half if knots[base + half] <= p else base
        size -= half
    i = min(base, m - 2)
    left, right = knots[i], knots[i + 1]
    inside = min(max(p, left), right) - left
    return values[i] + ((values[i + 1] - values[i]) * inside) // (right - left)


@_kernel
def curve(position: np.ndarray, knots: np.ndarray, values: np.ndarray) -> np.ndarray:
    out = np.empty(len(position), np.int64)
    for i in range(len(position)):
        out[i] = _curve_at(position[i], knots, values)
    return out


@_kernel(inline=True)
def _predict_at(steps: np.ndarray, i: int, used: np.ndarray, weights: np.ndarray, constant: int, context: int,
                knots: np.ndarray, values: np.ndarray, fraction: int) -> int:
    total = constant
    for u in range(len(used)):
        total += steps[i, used[u]] * weights[u]
    total >>= fraction
    if context >= 0:
        total += _curve_at(steps[i, context], knots, values)
    return total


@_kernel
def predict(steps: np.ndarray, used: np.ndarray, weights: np.ndarray, constant: int, context: int,
            knots: np.ndarray, values: np.ndarray, fraction: int) -> np.ndarray:
    """One column's prediction per row: ``(constant + sum(steps[:, used] * weights)) >> fraction``, plus the
    context curve of ``steps[:, context]`` (none if ``context < 0``)."""
    out = np.empty(steps.shape[0], np.int64)
    for i in range(steps.shape[0]):
        out[i] = _predict_at(steps, i, used, weights, constant, context, knots, values, fraction)
    return out


@_kernel
def residual_tokens(steps: np.ndarray, j: int, flags: np.ndarray, used: np.ndarray, weights: np.ndarray,
                    constant: int, context: int, knots: np.ndarray, values: np.ndarray, fraction: int) -> np.ndarray:
    """Column ``j``'s tokens: 0 where ``flags`` (an exception), else ``1 + zigzag(steps - prediction)``."""
    out = np.empty(steps.shape[0], np.uint64)
    for i in range(steps.shape[0]):
        if flags[i]:
            out[i] = 0
            continue
        d = steps[i, j] - _predict_at(steps, i, used, weights, constant, context, knots, values, fraction)
        out[i] = np.uint64((d << 1) ^ (d >> 63)) + np.uint64(1)
    return out


@_kernel
def undo_column(steps: np.ndarray, tokens: np.ndarray, j: int, used: np.ndarray, weights: np.ndarray,
                constant: int, context: int, knots: np.ndarray, values: np.ndarray, fraction: int) -> None:
    """Fill ``steps[:, j]`` from the tokens of :func:`residual_tokens` (exceptions: 0)."""
    one = np.uint64(1)
    for i in range(steps.shape[0]):
        t = tokens[i]
        if t == 0:
            steps[i, j] = 0
            continue
        u = t - one
        d = np.int64(u >> one) ^ -np.int64(u & one)
        steps[i, j] = d + _predict_at(steps, i, used, weights, constant, context, knots, values, fraction)
