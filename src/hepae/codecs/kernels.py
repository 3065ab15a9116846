"""Compiled loops of the codecs' per-value work (numba): tokens, raw bits, predictions and their inverses.

Each function does, value after value, what :mod:`hepae.codecs.entropy` and
:mod:`hepae.codecs.residual_prediction` specify (the hybrid-uint tokens, the little-endian raw bit string
and the fixed-point predictions of ``docs/format.md``) in one pass without temporaries; numpy needs a dozen
passes over each column for the same. What a decoder computes is integer arithmetic (uint64 and int64, floor
division as numpy's) and, for a relative bound, a correctly rounded float64 ``exp`` and ``log`` built from
IEEE additions and multiplications (the last section), so the result is the same on every machine. The
encoder's estimates that only steer its choices (code lengths of candidate tables, least-squares products,
the spread of remainders per bin) are float64: a choice made differently elsewhere would change a file's
size, never a decoded value.

numba is imported, and the functions compiled, on the first call of any of them (``import hepae`` stays
quick); compiled code is cached by numba (next to this file, or in the user's cache directory) and loaded
from there by later processes.
"""

from __future__ import annotations

import functools
import math
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

NUMBA_EXTENSIONS = True
"""Whether numba, at the first kernel call, loads the extensions other packages register with it (vector and
awkward: ~1.5 s, most of it vector importing sympy); hepae's kernels use none of them. The ``hepae`` command
sets this to False: nothing else in its process compiles with numba."""

_SOURCES: dict[str, tuple[Callable[..., Any], bool]] = {}  # name -> (Python function, inlined into its callers)
_COMPILING = threading.Lock()


def _compile_all() -> None:
    """Replace every kernel of this module by its numba dispatcher (once; compiled lazily per signature)."""
    with _COMPILING:
        import numba

        if not NUMBA_EXTENSIONS:
            try:  # numba loads the extensions once, on its first compilation, unless told they are loaded
                from numba.core import entrypoints

                if not entrypoints._already_initialized:
                    entrypoints._already_initialized = True
            except (ImportError, AttributeError):  # another numba: it loads them, which only costs time
                pass

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


@_kernel(inline=True)
def _raw_at(words: np.ndarray, bit: int, w: int) -> np.uint64:
    """The ``w`` bits (1..63) from bit ``bit`` on of the little-endian bit string ``words``."""
    word, shift = bit >> 6, bit & 63
    value = words[word] >> np.uint64(shift)
    if shift + w > 64:
        value |= words[word + 1] << np.uint64(64 - shift)
    return value & ((np.uint64(1) << np.uint64(w)) - np.uint64(1))


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
        raw = _raw_at(words, bit, w)
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
    if m <= 32:  # a class context's few edges: counting those <= p has no branch to mispredict, and vectorizes
        for i in range(len(position)):
            p = position[i]
            count = 0
            for k in range(m):
                count += edges[k] <= p
            out[i] = count
        return out
    for i in range(len(position)):
        p = position[i]
        base, size = 0, m + 1  # positions 0..m; the answer is the number of edges <= p
        while size > 1:
            half = size >> 1
            base = base + half if edges[base + half - 1] <= p else base
            size -= half
        out[i] = base
    return out


# -- code length estimates (the encoder's choices; hepae.codecs.entropy) ---------------------------

@_kernel(inline=True)
def _count_bits(counts: np.ndarray, scale: float) -> tuple[float, float]:
    """Of one frequency table's token counts: the bits of coding them order-0 (``-sum c log2(c / total)``) and of
    storing the table (8 per varint byte of each frequency up to the last used token; ``scale``: the frequencies'
    total). What :func:`hepae.codecs.entropy._bits_of_counts` computes, the table included."""
    total = 0
    last = -1
    for t in range(len(counts)):
        if counts[t] > 0:
            total += counts[t]
            last = t
    if total == 0:
        return 0.0, 0.0
    coded = 0.0
    entries = 0
    per_count = scale / total
    for t in range(last + 1):
        c = counts[t]
        entries += 1
        if c > 0:
            coded -= c * np.log2(c / total)
            frequency = c * per_count
            entries += (frequency >= 128) + (frequency >= 16384)
    return coded, 8.0 * entries


@_kernel
def token_bits_of_rows(token: np.ndarray, alphabet: int, scale: float) -> np.ndarray:
    """Per row of ``(m, n)`` tokens (each below ``alphabet``): the bits of coding it with its own table, the
    table's storage included (raw bits not)."""
    m, n = token.shape
    out = np.empty(m)
    counts = np.empty(alphabet, np.int64)
    for r in range(m):
        counts[:] = 0
        for i in range(n):
            counts[token[r, i]] += 1
        coded, table = _count_bits(counts, scale)
        out[r] = coded + table
    return out


@_kernel
def class_token_bits(token: np.ndarray, classes: np.ndarray, n_classes: int, alphabet: int, scale: float
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``(m, n)`` classes: the bits of coding the ``n`` tokens (each below ``alphabet``) with a table
    per class (classes below ``n_classes``), and the bits of storing those tables."""
    m, n = classes.shape
    bits, tables = np.zeros(m), np.zeros(m)
    counts = np.empty((n_classes, alphabet), np.int64)
    for r in range(m):
        counts[:] = 0
        for i in range(n):
            counts[classes[r, i], token[i]] += 1
        for c in range(n_classes):
            coded, table = _count_bits(counts[c], scale)
            bits[r] += coded
            tables[r] += table
    return bits, tables


# -- residual prediction (hepae.codecs.residual_prediction) -----------------------------------------

@_kernel
def gram(x: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``[x - reference, 1]^T [x - reference, 1]`` in float64 for the ``(n, k)`` integers ``x`` (row-major) and a
    reference per column: the products least squares needs, the constant's column last; one pass over the rows,
    on one thread."""
    n, k = x.shape
    out = np.zeros((k + 1, k + 1))
    row = np.empty(k + 1)
    row[k] = 1.0
    for i in range(n):
        for a in range(k):
            row[a] = x[i, a] - reference[a]
        for a in range(k + 1):
            value = row[a]
            for b in range(a + 1):
                out[a, b] += value * row[b]
    for a in range(k + 1):
        for b in range(a):
            out[b, a] = out[a, b]
    return out


@_kernel
def lower_medians(values: np.ndarray, rows: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Per group ``b`` (the rows ``rows[starts[b]:ends[b]]``), the lower median of ``values`` over them: its
    ``(n - 1) // 2``-th smallest of ``n``."""
    out = np.empty(len(starts), np.int64)
    for b in range(len(starts)):
        group = np.sort(values[rows[starts[b]:ends[b]]])
        out[b] = group[(ends[b] - starts[b] - 1) // 2]
    return out


@_kernel
def screened_curves(remainder: np.ndarray, positions: np.ndarray, rows: np.ndarray, starts: np.ndarray,
                    ends: np.ndarray, keep: np.ndarray, knots: np.ndarray, bin_offsets: np.ndarray,
                    knot_offsets: np.ndarray, limit: int) -> np.ndarray:
    """Every candidate context curve of one remainder at once: row ``c + 1`` of the result is ``remainder``
    minus the curve of position column ``c`` (``positions[c]``), through that column's ``knots`` valued the
    lower medians of ``remainder`` in its bins (:func:`lower_medians`; bins ``bin_offsets[c]:bin_offsets[c + 1]``
    of ``starts``/``ends``/``keep``, ``keep``'s bins give the knots ``knot_offsets[c]:...``), clipped to
    +-``limit``. Row 0 is ``remainder``. The same numbers as fitting and applying each curve in turn."""
    m, n = positions.shape
    out = np.empty((m + 1, n), np.int64)
    out[0] = remainder
    ascending = np.argsort(remainder, kind="mergesort")
    bin_of = np.empty(n, np.int64)
    for c in range(m):
        first, last = bin_offsets[c], bin_offsets[c + 1]
        for b in range(last - first):
            for t in range(starts[first + b], ends[first + b]):
                bin_of[rows[c, t]] = b
        # each bin's lower median: the remainders in ascending order, the one that makes its bin's count reach
        # (size - 1) // 2 + 1 (no sort per bin; equal remainders are equal values, whichever comes first)
        medians = np.empty(last - first, np.int64)
        seen = np.zeros(last - first, np.int64)
        for t in range(n):
            i = ascending[t]
            b = bin_of[i]
            seen[b] += 1
            if seen[b] == (ends[first + b] - starts[first + b] - 1) // 2 + 1:
                medians[b] = remainder[i]
        values = np.empty(knot_offsets[c + 1] - knot_offsets[c], np.int64)
        v = 0
        for b in range(last - first):
            if keep[first + b]:
                values[v] = min(max(medians[b], -limit), limit)
                v += 1
        column_knots = knots[knot_offsets[c]:knot_offsets[c + 1]]
        k = len(column_knots)
        base = 0  # _curve_at's last knot <= p, followed along the rows in increasing position
        for t in range(n):
            i = rows[c, t]
            p = positions[c, i]
            if k == 1:
                out[c + 1, i] = remainder[i] - values[0]
                continue
            while base + 1 < k and column_knots[base + 1] <= p:
                base += 1
            j = min(base, k - 2)
            left, right = column_knots[j], column_knots[j + 1]
            inside = min(max(p, left), right) - left
            out[c + 1, i] = remainder[i] - (values[j] + ((values[j + 1] - values[j]) * inside) // (right - left))
    return out


@_kernel
def spread_groups(weights: np.ndarray, row_bins: np.ndarray, n_bins: np.ndarray, n_classes: int) -> np.ndarray:
    """Per candidate ``c`` (a row of ``row_bins``: each row's bin, of ``n_bins[c]`` bins), each bin's class: the
    bins ranked by the mean of ``weights`` in them (the remainders' spread), stably, cut into ``n_classes``
    groups at the largest gaps between neighbours (the first of equal gaps). Row ``c`` of the result, up to
    ``n_bins[c]``; the numbers of ``np.bincount``, ``np.argsort(kind="stable")`` and ``np.cumsum``."""
    m, n = row_bins.shape
    out = np.zeros((m, max(n_bins.max(), 1)), np.int64)
    for c in range(m):
        size = n_bins[c]
        total = np.zeros(size)
        count = np.zeros(size)
        for i in range(n):  # in row order, as np.bincount adds
            total[row_bins[c, i]] += weights[i]
            count[row_bins[c, i]] += 1.0
        spread = total / np.maximum(count, 1.0)
        order = np.argsort(spread, kind="mergesort")
        gaps = np.empty(max(size - 1, 0))
        for b in range(size - 1):
            gaps[b] = -(spread[order[b + 1]] - spread[order[b]])
        cuts = np.zeros(size, np.int64)
        largest = np.argsort(gaps, kind="mergesort")
        for g in range(min(n_classes - 1, size - 1)):
            cuts[1 + largest[g]] = 1
        running = 0
        for b in range(size):
            running += cuts[b]
            out[c, order[b]] = running
    return out


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


@_kernel(inline=True)
def _token(d: int) -> np.uint64:
    """The token of a difference: ``1 + zigzag(d)`` (0 marks an exception)."""
    return np.uint64((d << 1) ^ (d >> 63)) + np.uint64(1)


@_kernel(inline=True)
def _difference(t: np.uint64) -> int:
    """The difference of a token > 0 (the inverse of :func:`_token`)."""
    u = t - np.uint64(1)
    return np.int64(u >> np.uint64(1)) ^ -np.int64(u & np.uint64(1))


@_kernel
def residual_tokens(steps: np.ndarray, j: int, flags: np.ndarray, used: np.ndarray, weights: np.ndarray,
                    constant: int, context: int, knots: np.ndarray, values: np.ndarray, fraction: int) -> np.ndarray:
    """Column ``j``'s tokens: 0 where ``flags`` (an exception), else ``1 + zigzag(steps - prediction)``."""
    out = np.empty(steps.shape[0], np.uint64)
    for i in range(steps.shape[0]):
        if flags[i]:
            out[i] = 0
            continue
        out[i] = _token(steps[i, j] - _predict_at(steps, i, used, weights, constant, context, knots, values, fraction))
    return out


@_kernel
def undo_column(steps: np.ndarray, tokens: np.ndarray, j: int, used: np.ndarray, weights: np.ndarray,
                constant: int, context: int, knots: np.ndarray, values: np.ndarray, fraction: int) -> None:
    """Fill ``steps[:, j]`` from the tokens of :func:`residual_tokens` (exceptions: 0)."""
    for i in range(steps.shape[0]):
        t = tokens[i]
        steps[i, j] = 0 if t == 0 else \
            _difference(t) + _predict_at(steps, i, used, weights, constant, context, knots, values, fraction)


# -- learned entropy model (hepae.codecs.learned) ---------------------------------------------------

@_kernel(inline=True)
def _fill_inputs(x: np.ndarray, steps: np.ndarray, i: int, others: np.ndarray, rank: np.ndarray, source: np.ndarray,
                 column: np.ndarray, multiplier: np.ndarray, j: int, for_scale: bool) -> None:
    """The integer inputs of row ``i``'s networks: two rank flags (1024: second object, other object), then per
    feature ``(steps[row, column] * multiplier) >> 16`` clipped to int16, ``row`` the object itself
    (``source`` 0) or another object of its event, ``others[source - 1, i]`` (1: the leading object, 2: the
    previous one; the input is 0 where there is none, and for the scale network where the feature is the
    column being coded, whose value is not known yet)."""
    x[0] = 1024 if rank[i] == 1 else 0
    x[1] = 1024 if rank[i] >= 2 else 0
    for f in range(len(source)):
        row = i
        if source[f] > 0:
            row = others[source[f] - 1, i]
            if row < 0 or (for_scale and column[f] == j):
                x[2 + f] = 0
                continue
        v = (steps[row, column[f]] * multiplier[f]) >> 16
        x[2 + f] = min(max(v, -32768), 32767)


@_kernel(inline=True)
def _network_at(x: np.ndarray, w1: np.ndarray, b1: np.ndarray, shift: int, w2: np.ndarray, b2: int) -> int:
    """One integer network: ``b2 + sum(w2 * min(relu(w1 @ x + b1) >> shift, 32767))``, clipped to +-2**28."""
    total = b2
    for h in range(w1.shape[0]):
        z = b1[h]
        for f in range(w1.shape[1]):
            z += w1[h, f] * x[f]
        if z > 0:
            total += w2[h] * min(z >> shift, 32767)
    return min(max(total, -(1 << 28)), 1 << 28)


@_kernel
def learned_classes(steps: np.ndarray, j: int, others: np.ndarray, rank: np.ndarray, source: np.ndarray,
                    column: np.ndarray, multiplier: np.ndarray, w1: np.ndarray, b1: np.ndarray, shift: int,
                    w2: np.ndarray, b2: int, offset: int, class_shift: int, n_classes: int) -> np.ndarray:
    """Column ``j``'s entropy-coder class per row: the scale network's output moved by ``offset``, in bins of
    ``2**class_shift``, clipped to ``[0, n_classes)``."""
    out = np.empty(steps.shape[0], np.int64)
    x = np.empty(2 + len(source), np.int64)
    for i in range(steps.shape[0]):
        _fill_inputs(x, steps, i, others, rank, source, column, multiplier, j, True)
        c = (_network_at(x, w1, b1, shift, w2, b2) + offset) >> class_shift
        out[i] = min(max(c, 0), n_classes - 1)
    return out


@_kernel(inline=True)
def _learned_prediction(steps: np.ndarray, i: int, used: np.ndarray, weights: np.ndarray, constant: int,
                        context: int, knots: np.ndarray, values: np.ndarray, fraction: int, x: np.ndarray, j: int,
                        others: np.ndarray, rank: np.ndarray, source: np.ndarray, column: np.ndarray,
                        multiplier: np.ndarray, w1: np.ndarray, b1: np.ndarray, shift: int, w2: np.ndarray, b2: int,
                        out_multiplier: int) -> int:
    """The hand-built prediction plus the location network's shift, ``(output * out_multiplier) >> 32``."""
    _fill_inputs(x, steps, i, others, rank, source, column, multiplier, j, False)
    shift_steps = (_network_at(x, w1, b1, shift, w2, b2) * out_multiplier) >> 32
    return _predict_at(steps, i, used, weights, constant, context, knots, values, fraction) + shift_steps


@_kernel
def learned_residual_tokens(steps: np.ndarray, j: int, flags: np.ndarray, used: np.ndarray, weights: np.ndarray,
                            constant: int, context: int, knots: np.ndarray, values: np.ndarray, fraction: int,
                            others: np.ndarray, rank: np.ndarray, source: np.ndarray, column: np.ndarray,
                            multiplier: np.ndarray, w1: np.ndarray, b1: np.ndarray, shift: int, w2: np.ndarray,
                            b2: int, out_multiplier: int, low: int, width: int) -> np.ndarray:
    """:func:`residual_tokens` with the learned prediction; with ``width > 0`` the difference is taken modulo
    ``width`` into ``[-(width // 2), width - width // 2)`` (every coded step lies in ``[low, low + width)``)."""
    out = np.empty(steps.shape[0], np.uint64)
    x = np.empty(2 + len(source), np.int64)
    half = width // 2
    for i in range(steps.shape[0]):
        if flags[i]:
            out[i] = 0
            continue
        d = steps[i, j] - _learned_prediction(steps, i, used, weights, constant, context, knots, values, fraction, x,
                                              j, others, rank, source, column, multiplier, w1, b1, shift, w2, b2,
                                              out_multiplier)
        if width > 0:
            d = (d + half) % width - half
        out[i] = _token(d)
    return out


@_kernel
def learned_undo_column(steps: np.ndarray, tokens: np.ndarray, j: int, used: np.ndarray, weights: np.ndarray,
                        constant: int, context: int, knots: np.ndarray, values: np.ndarray, fraction: int,
                        others: np.ndarray, rank: np.ndarray, source: np.ndarray, column: np.ndarray,
                        multiplier: np.ndarray, w1: np.ndarray, b1: np.ndarray, shift: int, w2: np.ndarray, b2: int,
                        out_multiplier: int, low: int, width: int) -> None:
    """Fill ``steps[:, j]`` from :func:`learned_residual_tokens`'s tokens, row after row (the objects a row's
    inputs read come before it, so their column ``j`` is known)."""
    x = np.empty(2 + len(source), np.int64)
    for i in range(steps.shape[0]):
        t = tokens[i]
        if t == 0:
            steps[i, j] = 0
            continue
        d = _difference(t)
        p = _learned_prediction(steps, i, used, weights, constant, context, knots, values, fraction, x, j, others, rank,
                                source, column, multiplier, w1, b1, shift, w2, b2, out_multiplier)
        steps[i, j] = low + (p + d - low) % width if width > 0 else p + d


# -- columns sorted within events (hepae.codecs.order_statistics) ----------------------------------

PROB_BITS = 15
"""Every frequency table of the entropy coder sums to ``2**PROB_BITS`` (:mod:`hepae.codecs.entropy`), and so do the
order-statistic model's frequencies."""
_POWER_BITS = 47  # fixed point of the powers of a cumulative frequency: products stay below 2**62


@_kernel
def order_statistic_powers(cumulative: np.ndarray, max_left: int) -> np.ndarray:
    """``(max_left + 1, T)`` int64: row ``m`` holds ``(cumulative / 2**15)**m`` in fixed point ``2**-47``, each
    power the previous one times ``cumulative``, shifted down (row 0 is not used). Non-decreasing along a row."""
    t_size = len(cumulative)
    out = np.zeros((max_left + 1, t_size), np.int64)
    for t in range(t_size):
        g = cumulative[t] << (_POWER_BITS - PROB_BITS)
        if max_left >= 1:
            out[1, t] = g
        for m in range(2, max_left + 1):
            g = (g * cumulative[t]) >> PROB_BITS
            out[m, t] = g
    return out


@_kernel(inline=True)
def _order_statistic_row(powers: np.ndarray, base: np.ndarray, allowed: np.ndarray, cumulative: np.ndarray,
                         upper: int, left: int, out: np.ndarray) -> None:
    """The frequencies (summing to ``2**15``, at least 1 for every token of the table up to ``upper``, 0 above it)
    of the largest of ``left`` tokens drawn from the table ``base`` and known to be at most ``upper``: the
    differences of ``powers[left]`` up to ``upper``, scaled down; the rest to the first most probable token.
    Where the powers have all underflowed to 0, the table's own frequencies up to ``upper``."""
    scale = np.int64(1) << PROB_BITS
    underflow = powers[left, upper] == 0
    total = cumulative[upper] if underflow else powers[left, upper]
    spare = scale - allowed[upper]
    previous = np.int64(0)
    given = np.int64(0)
    best, best_weight = -1, np.int64(-1)
    for t in range(upper + 1):
        g = cumulative[t] if underflow else powers[left, t]
        weight = g - previous
        previous = g
        if base[t] == 0:
            out[t] = 0
            continue
        f = 1 + (weight * spare) // total
        out[t] = f
        given += f
        if weight > best_weight:
            best, best_weight = t, weight
    out[best] += scale - given
    for t in range(upper + 1, len(out)):
        out[t] = 0


@_kernel
def order_statistic_frequencies(powers: np.ndarray, base: np.ndarray, allowed: np.ndarray, cumulative: np.ndarray,
                                upper: np.ndarray, left: np.ndarray) -> np.ndarray:
    """:func:`_order_statistic_row` of each object: ``(n, T)`` int64."""
    out = np.zeros((len(upper), len(base)), np.int64)
    for i in range(len(upper)):
        _order_statistic_row(powers, base, allowed, cumulative, upper[i], left[i], out[i])
    return out


@_kernel
def unpack_raw(width: np.ndarray, words: np.ndarray, first_bit: int) -> tuple[np.ndarray, int]:
    """Inverse of :func:`pack_raw`: ``width[i]`` bits each (< 64), from bit ``first_bit`` on; and the next bit."""
    out = np.zeros(len(width), np.uint64)
    bit = first_bit
    for i in range(len(width)):
        w = width[i]
        if w == 0:
            continue
        out[i] = _raw_at(words, bit, w)
        bit += w
    return out, bit


# -- float64 exp and log, the same bits on every machine ------------------------------------------------------------
# IEEE 754 fixes the result of a float64 addition, multiplication and division to the bit; it does not fix exp or
# log, and they differ in the last bit between libms and numpy's SIMD loops (numpy's AVX-512 exp of a relative
# bound's reconstruction disagreed with glibc's on 3 % of float64 values). A decoder that reconstructs
# ``exp(log|h| + q * step)`` therefore computes both correctly rounded (the float64 nearest the exact value, one
# answer for every machine): a reduction ``x = n ln2 / 64 + r`` and a polynomial (vectorized), then, where the
# rounding is in doubt, a double-double evaluation (pairs of float64 whose sum carries ~104 bits, Dekker's exact
# products, no fused multiply-add: numba does not contract ``a * b + c``) with a table of ``2**(j/64)`` computed
# in :mod:`decimal` when this module is imported, and for the few values neither settles (and subnormal
# results) :mod:`decimal` itself.

def _exact_math_tables() -> tuple[np.ndarray, ...]:
    """``(split, powers, factorials)``: ``ln 2 / 64`` in three parts (the first with 36 significant bits, so that
    its product with an integer below 2**17 is exact), ``64 / ln 2``, ``ln 2`` in two parts; ``2**(j/64)`` and
    ``1/k!`` as double-double pairs. Exact decimal arithmetic, so the same on every machine."""
    import decimal

    with decimal.localcontext() as context:
        context.prec = 80
        ln2 = decimal.Decimal(2).ln()
        step = ln2 / 64
        mantissa, exponent = np.frexp(float(step))
        first = float(np.ldexp(np.floor(mantissa * 2.0**36), int(exponent) - 36))
        second = float(step - decimal.Decimal(first))
        third = float(step - decimal.Decimal(first) - decimal.Decimal(second))
        ln2_high = float(ln2)
        split = np.array([first, second, third, float(64 / ln2), ln2_high, float(ln2 - decimal.Decimal(ln2_high))])

        def pair(value: decimal.Decimal) -> tuple[float, float]:
            high = float(value)
            return high, float(value - decimal.Decimal(high))

        powers = np.array([pair((decimal.Decimal(j) / 64 * ln2).exp()) for j in range(64)])
        factorials = np.array([pair(1 / decimal.Decimal(math.factorial(k))) for k in range(_EXP_TERMS + 1)])
    return split, powers, factorials


_EXP_TERMS = 11  # |r| <= ln 2 / 128: the first term left out is below 2**-105 of the sum
_EXP_SPLIT, _EXP_POWERS, _EXP_FACTORIALS = _exact_math_tables()
_LN2_64_A, _LN2_64_B, _LN2_64_C, _INV_LN2_64, _LN2_HIGH, _LN2_LOW = (float(v) for v in _EXP_SPLIT)
_POWERS_HIGH, _POWERS_LOW = np.ascontiguousarray(_EXP_POWERS[:, 0]), np.ascontiguousarray(_EXP_POWERS[:, 1])
_FACTORIALS_HIGH = np.ascontiguousarray(_EXP_FACTORIALS[:, 0])
_FACTORIALS_LOW = np.ascontiguousarray(_EXP_FACTORIALS[:, 1])
_FAST_EXP_ERROR = 2.0**-62  # relative error bound of exp's first pass (its analysis: below 2**-65)
_EXP_OVERFLOW = 709.782712893384  # above: exp is beyond the largest float64
_EXP_UNDERFLOW = -745.2  # below: exp rounds to zero
_POWERS_OF_TWO = np.ldexp(1.0, np.arange(-1022, 1023))


@_kernel(inline=True)
def _two_sum(a: float, b: float) -> tuple[float, float]:
    """``(s, e)``: ``s = a + b`` rounded and ``e`` what the rounding lost (Knuth), exactly ``s + e = a + b``."""
    s = a + b
    v = s - a
    return s, (a - (s - v)) + (b - v)


@_kernel(inline=True)
def _quick_two_sum(a: float, b: float) -> tuple[float, float]:
    """:func:`_two_sum` for ``|a| >= |b|``."""
    s = a + b
    return s, b - (s - a)


@_kernel(inline=True)
def _two_product(a: float, b: float) -> tuple[float, float]:
    """``(p, e)``: ``p = a * b`` rounded and ``e`` the rest, exactly ``p + e = a * b`` (Dekker's split)."""
    p = a * b
    c = 134217729.0 * a
    a_high = c - (c - a)
    a_low = a - a_high
    c = 134217729.0 * b
    b_high = c - (c - b)
    b_low = b - b_high
    return p, ((a_high * b_high - p) + a_high * b_low + a_low * b_high) + a_low * b_low


@_kernel(inline=True)
def _dd_add(a: float, a_low: float, b: float, b_low: float) -> tuple[float, float]:
    s, e = _two_sum(a, b)
    return _quick_two_sum(s, e + (a_low + b_low))


@_kernel(inline=True)
def _dd_multiply(a: float, a_low: float, b: float, b_low: float) -> tuple[float, float]:
    p, e = _two_product(a, b)
    return _quick_two_sum(p, e + (a * b_low + a_low * b))


@_kernel(inline=True)
def _reduced(x: float, x_low: float) -> tuple[int, int, float, float]:
    """``(m, j, r, r_low)`` with ``x + x_low = (64 m + j) ln2/64 + r + r_low``, ``|r| <= ln2/128`` (``|x| <= 746``)."""
    n = float(math.floor(x * _INV_LN2_64 + 0.5))
    j = int(n) & 63
    r = x - n * _LN2_64_A  # exact: n has at most 17 bits, the constant 36, and x is close to the product
    p, p_low = _two_product(n, _LN2_64_B)
    r, r_low = _two_sum(r, -p)
    return (int(n) - j) >> 6, j, r, (r_low - p_low) + (x_low - n * _LN2_64_C)


@_kernel(inline=True)
def _exp_double_double(x: float, x_low: float) -> tuple[int, float, float]:
    """``(m, h, low)`` with ``exp(x + x_low) = 2**m (h + low)`` to ~2**-100 relative (``|x| <= 746``)."""
    m, j, r, r_low = _reduced(x, x_low)
    r, r_low = _quick_two_sum(r, r_low)
    h, low = _FACTORIALS_HIGH[_EXP_TERMS], _FACTORIALS_LOW[_EXP_TERMS]
    for k in range(_EXP_TERMS - 1, -1, -1):
        h, low = _dd_multiply(h, low, r, r_low)
        h, low = _dd_add(h, low, _FACTORIALS_HIGH[k], _FACTORIALS_LOW[k])
    h, low = _dd_multiply(h, low, _POWERS_HIGH[j], _POWERS_LOW[j])
    return m, h, low


@_kernel(inline=True)
def _exp_parts(x: float) -> tuple[int, float, float]:
    """``(m, h, low)`` with ``exp(x) = 2**m (h + low)`` to 2**-65 relative, ``0.99 < h + low < 2`` (``|x| <= 746``):
    the reduction of :func:`_exp_double_double`, then a polynomial in float64 for what the double-double ``1 + r``
    leaves. Branch-free, so that a loop of it is vectorized."""
    m, j, r, r_low = _reduced(x, 0.0)
    rest = r_low + (r_low * r + r * r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (
        1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))))  # exp(r + r_low) = 1 + r + rest
    t, t_low = _POWERS_HIGH[j], _POWERS_LOW[j]
    a, a_low = _two_product(t, r)
    h, h_low = _two_sum(t, a)
    return m, h, h_low + (a_low + (t * rest + (t_low + t_low * r)))


@_kernel(inline=True)
def _rounds_to(y: float, e: float, error: float) -> bool:
    """Whether every value within ``error`` of ``y + e`` (``y = fl(y + e)``) rounds to ``y``."""
    return (y + (e + error) == y) & (y + (e - error) == y)


@_kernel(inline=True)
def _exp_first_pass(x: float) -> tuple[float, int, bool]:
    """``(y, m, sure)``: ``exp(x)`` is ``y * 2**m`` rounded correctly if ``sure`` (``|x| <= 746``; branch-free)."""
    m, h, low = _exp_parts(x)
    y, e = _two_sum(h, low)
    return y, m, _rounds_to(y, e, _FAST_EXP_ERROR * y)


@_kernel(inline=True)
def _log_series(f: float) -> float:
    """``log(1 + f)`` for ``|f| < 0.42`` to a few ulps: ``2 atanh(f / (2 + f))`` as a series."""
    s = f / (2.0 + f)
    z = s * s
    series = 1.0 + z * (1.0 / 3 + z * (1.0 / 5 + z * (1.0 / 7 + z * (1.0 / 9 + z * (1.0 / 11 + z * (
        1.0 / 13 + z * (1.0 / 15 + z * (1.0 / 17 + z * (1.0 / 19 + z * (1.0 / 21 + z * (1.0 / 23)))))))))))
    return 2.0 * s * series


@_kernel(inline=True)
def _log_double_double(x: float) -> tuple[float, float]:
    """``log(x)`` (``x > 0`` normal or subnormal, finite) as a double-double, to ~2**-100: a first approximation
    from :func:`_log_series`, then one Newton step on :func:`_exp_double_double`."""
    mantissa, exponent = math.frexp(x)
    if mantissa < 0.7071067811865476:
        mantissa *= 2.0
        exponent -= 1
    y, y_low = _dd_add(exponent * _LN2_HIGH, exponent * _LN2_LOW, _log_series(mantissa - 1.0), 0.0)
    m, h, low = _exp_double_double(y, y_low)  # log(x) = y + log(x / exp(y)) = y + d - d**2 / 2 + ...
    u, u_low = _two_sum(math.ldexp(x, -m), -h)
    d = (u + (u_low - low)) / h
    return _dd_add(y, y_low, d - 0.5 * d * d, 0.0)


@_kernel
def _exact_exp(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(out, unsure)``: ``exp(x)`` correctly rounded, but where ``unsure`` (a double-double evaluation could not
    tell the rounding, or the result is subnormal or next to overflow: :func:`exact_exp` computes those)."""
    n = len(x)
    out = np.empty(n, np.float64)
    scale = np.empty(n, np.int64)
    sure = np.empty(n, np.bool_)
    unsure = np.zeros(n, np.bool_)
    for i in range(n):  # the common case, vectorized (NaN taken to the lower limit: the indices stay in range)
        out[i], scale[i], sure[i] = _exp_first_pass(min(max(_EXP_UNDERFLOW, x[i]), _EXP_OVERFLOW))
    for i in range(n):
        v = x[i]
        if v != v:
            out[i] = v
        elif v > _EXP_OVERFLOW:
            out[i] = math.inf
        elif v < _EXP_UNDERFLOW:
            out[i] = 0.0
        else:
            y, m = out[i], scale[i]
            if not sure[i]:
                m, h, low = _exp_double_double(v, 0.0)  # to ~2**-104
                y, e = _two_sum(h, low)
                if not _rounds_to(y, e, 2.0**-100 * y):
                    unsure[i] = True
            if -1022 < m < 1023:
                out[i] = y * _POWERS_OF_TWO[m + 1022]  # exact: 0.99 < y < 2, the product a normal float64
            else:
                unsure[i] = True
    return out, unsure


@_kernel(inline=True)
def _log_first_pass(mantissa: float, exponent: int) -> tuple[float, bool]:
    """``(y, sure)``: ``log(mantissa * 2**exponent)`` (``0.5 <= mantissa < 1``) is ``y`` rounded correctly if
    ``sure``: a series, then one Newton step on :func:`_exp_parts` (branch-free)."""
    low_half = mantissa < 0.7071067811865476
    mantissa = mantissa * 2.0 if low_half else mantissa
    exponent = exponent - 1 if low_half else exponent
    y0 = exponent * _LN2_HIGH + (exponent * _LN2_LOW + _log_series(mantissa - 1.0))  # a few ulps from log
    m, h, low = _exp_parts(y0)  # log(x) = y0 + log(x / exp(y0)) = y0 + d - d**2 / 2 + ...
    shift = min(max(exponent - m, -1), 1)  # -1, 0 or 1 (clipped for the values the second pass takes)
    u, u_low = _two_sum(mantissa * _POWERS_OF_TWO[shift + 1022], -h)  # exact
    d = (u + (u_low - low)) / h
    y, e = _two_sum(y0, d - 0.5 * d * d)
    return y, _rounds_to(y, e, 2.0**-62 + 2.0**-60 * abs(y))  # exp_parts: 2**-65 of 1, absolute in log


@_kernel
def _exact_log(x: np.ndarray, mantissa: np.ndarray, exponent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(out, unsure)``: ``log(x)`` correctly rounded, but where ``unsure`` (:func:`exact_log` computes those)."""
    n = len(x)
    out = np.empty(n, np.float64)
    sure = np.empty(n, np.bool_)
    unsure = np.zeros(n, np.bool_)
    for i in range(n):  # the common case, vectorized
        v = mantissa[i]
        out[i], sure[i] = _log_first_pass(v if 0.5 <= v < 1.0 else 0.75, exponent[i])  # not NaN: clipped indices
    for i in range(n):
        v = x[i]
        if sure[i] and 2.2250738585072014e-308 <= v <= 1.7976931348623157e308:
            continue
        if v != v or v < 0.0:
            out[i] = math.nan
        elif v == 0.0:
            out[i] = -math.inf
        elif v == math.inf:
            out[i] = math.inf
        else:
            h, low = _log_double_double(v)  # to ~2**-104 of the result and ~2**-106 absolute
            y, e = _two_sum(h, low)
            out[i] = y
            unsure[i] = not _rounds_to(y, e, 2.0**-98 * abs(y) + 2.0**-102)
    return out, unsure


_DECIMAL_DIGITS = 400  # enough for the exact value of any float64 (down to 2**-1074) and to round exp/ln correctly


def _decimal_context() -> Any:
    import decimal

    return decimal.Context(prec=_DECIMAL_DIGITS, rounding=decimal.ROUND_HALF_EVEN, Emax=decimal.MAX_EMAX,
                           Emin=decimal.MIN_EMIN)


def exact_exp(x: np.ndarray) -> np.ndarray:
    """``exp`` of float64 values, correctly rounded (to the float64 nearest the exact value), the same bits on
    every machine: the compiled passes, and exact decimal arithmetic for the few values they cannot round with
    certainty."""
    import decimal

    x = np.ascontiguousarray(x, np.float64)
    out, unsure = _exact_exp(x)
    if unsure.any():
        context = _decimal_context()
        for i in np.flatnonzero(unsure).tolist():
            out[i] = float(context.exp(decimal.Decimal(float(x[i]))))
    return out


def exact_log(x: np.ndarray) -> np.ndarray:
    """``log`` of float64 values, correctly rounded, the same bits on every machine (as :func:`exact_exp`); NaN
    for negative values and NaN, ``-inf`` for zeros, ``inf`` for ``inf``."""
    import decimal

    x = np.ascontiguousarray(x, np.float64)
    mantissa, exponent = np.frexp(x)  # exact
    out, unsure = _exact_log(x, mantissa, exponent.astype(np.int64))
    if unsure.any():
        context = _decimal_context()
        for i in np.flatnonzero(unsure).tolist():
            out[i] = float(context.ln(decimal.Decimal(float(x[i]))))
    return out


@functools.lru_cache(maxsize=256)
def exact_log1p(x: float) -> float:
    """``log(1 + x)`` for ``0 < x < 1`` (a bound), correctly rounded, in exact decimal arithmetic."""
    import decimal

    if not 0.0 < x < 1.0:
        raise ValueError(f"exact_log1p is for 0 < x < 1, got {x!r}")
    context = _decimal_context()
    return float(context.ln(context.add(1, decimal.Decimal(x))))
