"""Columns sorted within their events: the order-statistic model of the entropy coder.

The objects of an event are almost always stored sorted by one of their columns (jets, leptons and photons by
decreasing pT). Coded value by value, as the hand-built parts code them, the ``n`` values of an event cost as
much as if they could come in any of their ``n!`` orders: ``log2(n!)`` bits per event are spent on an order the
file already fixes (``E[log2 n!] / E[n]`` = 0.96 bits a jet for the Poisson(2.6) jets of ``make-sample``, more
where events hold more objects).

The model takes the values of one column of an event as drawn independently from the chunk's table of the
column's tokens, then sorted. An object's token, given the token ``u`` of the object before it in the event and
the ``m`` objects left in the event (this one included), is then the largest of ``m`` draws known to be at most
``u``::

    P(t) = (F(t)**m - F(t - 1)**m) / F(u)**m        for t <= u

with ``F`` the table's cumulative frequency; an event's leading object is the largest of its ``n`` draws. The
frequencies are integers computed by :func:`hepae.codecs.kernels.order_statistic_frequencies`, so encoder and
decoder have the same ones on every machine; they are coded by the same ``constriction`` ANS coder and
categorical models as every other stream (:mod:`hepae.codecs.entropy`).

The tokens are the hybrid-uint tokens of ``2 * (steps - low)`` (``low`` the chunk's least step of the column),
halved: non-decreasing in the steps, so the values' order is the tokens' order. An object whose token equals the
one before it stores its raw bits in as many bits as the previous object's raw value needs (it is at most that
value); the others store their raw bits as every stream does. Objects are coded rank after rank (every event's
leading object, then every second one, ...), so that each rank decodes in one batch.

The ``bounded`` codec codes a column this way in a chunk where its steps are non-increasing within every event, it
has no exception (a value stored exactly) and the model codes it in fewer bits than the hand-built parts (or the
learned entropy model), tables included. Byte layout: ``docs/format.md``, §6.3.
"""

from __future__ import annotations

from collections.abc import Sequence

import constriction
import numpy as np

from hepae.codecs import entropy, kernels
from hepae.errors import CodecError, UnknownLayoutError

VERSION = 1
MAX_LEFT = 4096
"""Objects per event the model takes; a chunk with larger events codes its columns as before."""
_SCALE = 1 << kernels.ORDER_PROB_BITS
_BATCH_ELEMENTS = 1 << 21  # probabilities handed to the coder at once (16 MB of float64)
_FAMILY = constriction.stream.model.Categorical(perfect=False)  # one categorical model per symbol
_OVERHEAD_BITS = 64.0 * 3  # a column's index, low and table size in the chunk


class _Events:
    """The events of one chunk: each object's rank and the objects left in its event (itself included), and
    the objects rank after rank (``order[bounds[r]:bounds[r + 1]]``: the objects of rank ``r``, in row order)."""

    def __init__(self, counts: np.ndarray, n: int) -> None:
        counts = np.asarray(counts, np.int64)
        if int(counts.sum()) != n or (counts < 0).any():
            raise CodecError(f"order statistics: the per-event counts hold {int(counts.sum())} objects, not {n}")
        self.rank = np.arange(n, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
        self.left = np.repeat(counts, counts) - self.rank
        self.max_left = int(counts.max()) if len(counts) else 0
        self.order = np.argsort(self.rank, kind="stable")
        self.bounds = np.concatenate([[0], np.cumsum(np.bincount(self.rank))]).astype(np.int64)

    def batches(self, alphabet: int) -> list[np.ndarray]:
        """The objects in the order they are coded: rank after rank, each rank in slices of bounded size; none
        for a one-token alphabet (every token is certain)."""
        if alphabet < 2:
            return []
        size = max(1, _BATCH_ELEMENTS // alphabet)
        out = []
        for r in range(len(self.bounds) - 1):
            rows = self.order[self.bounds[r]:self.bounds[r + 1]]
            out.extend(rows[i:i + size] for i in range(0, len(rows), size))
        return out


class _Table:
    """A column's token table (frequencies summing to ``2**15``, the last one used) and the integers the model
    derives from it."""

    def __init__(self, frequencies: np.ndarray, max_left: int) -> None:
        self.base = np.asarray(frequencies, np.int64)
        self.cumulative = np.cumsum(self.base)
        self.allowed = np.cumsum(self.base > 0).astype(np.int64)
        self.powers = kernels.order_statistic_powers(self.cumulative, max(max_left, 1))

    def frequencies(self, upper: np.ndarray, left: np.ndarray) -> np.ndarray:
        return kernels.order_statistic_frequencies(self.powers, self.base, self.allowed, self.cumulative,
                                                   np.ascontiguousarray(upper, np.int64),
                                                   np.ascontiguousarray(left, np.int64))

    def own_frequencies(self, upper: np.ndarray, left: np.ndarray, token: np.ndarray) -> np.ndarray:
        return kernels.order_statistic_own_frequencies(self.powers, self.base, self.allowed, self.cumulative,
                                                       upper, left, token)


def sorted_within_events(column: np.ndarray, counts: np.ndarray | None) -> bool:
    """Whether the steps of ``column`` never increase from one object of an event to the next."""
    if counts is None or len(column) < 2:
        return False
    starts = np.cumsum(counts) - counts
    later = np.ones(len(column), bool)
    later[starts[np.asarray(counts) > 0]] = False
    return bool((np.diff(column)[later[1:]] <= 0).all())


def _tokens(v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(token, raw width, raw bits)`` of non-negative ``v``: the hybrid-uint tokens of ``2 v``, halved (their lowest
    bit is always 0), non-decreasing in ``v``."""
    token, width, raw = entropy.tokenize(np.asarray(v, np.uint64) << np.uint64(1))
    return token.astype(np.int64) >> 1, width.astype(np.int64), raw


def _bit_length(x: np.ndarray) -> np.ndarray:
    """Bits of each non-negative integer (0 for 0), in integer arithmetic."""
    x = np.asarray(x, np.uint64).copy()
    out = np.zeros(len(x), np.int64)
    for shift in (32, 16, 8, 4, 2, 1):
        big = x >= np.uint64(1 << shift)
        out[big] += shift
        x[big] >>= np.uint64(shift)
    return out + (x > 0)


def _previous(values: np.ndarray, rank: np.ndarray, first: int) -> np.ndarray:
    """Each object's predecessor's value in its event (``first`` for an event's leading object)."""
    out = np.full(len(values), first, dtype=values.dtype)
    later = np.flatnonzero(rank > 0)
    out[later] = values[later - 1]
    return out


def _stored_widths(token: np.ndarray, width: np.ndarray, raw: np.ndarray, rank: np.ndarray, upper: np.ndarray
                   ) -> np.ndarray:
    """Raw bits each object stores: as many as its predecessor's raw value needs where their tokens are equal."""
    tie = (rank > 0) & (token == upper)
    return np.where(tie, _bit_length(_previous(raw, rank, 0)), width)


def estimated_bits(steps: np.ndarray, counts: np.ndarray) -> float:
    """Bits of coding one column's steps (sorted within events, no exception) with the model, table included."""
    events = _Events(counts, len(steps))
    if events.max_left > MAX_LEFT:
        return np.inf
    token, width, raw = _tokens(steps - steps.min())
    frequencies = entropy.normalized_frequencies(np.bincount(token))
    table = _Table(frequencies, events.max_left)
    upper = _previous(token, events.rank, len(frequencies) - 1)
    own = table.own_frequencies(upper, events.left, token)
    stored = _stored_widths(token, width, raw, events.rank, upper)
    return float(kernels.ORDER_PROB_BITS * len(own) - np.log2(own).sum()) + float(stored.sum()) \
        + 8.0 * len(entropy.varints(frequencies)) + _OVERHEAD_BITS


def choose(steps: np.ndarray, flags: Sequence[np.ndarray], counts: np.ndarray | None, coded_bits: Sequence[float]
           ) -> list[int]:
    """The columns of one chunk to code with the model: sorted within every event, no exception, and fewer bits
    than ``coded_bits[j]``, what the column costs otherwise."""
    if counts is None or len(steps) < 2 or np.max(counts, initial=0) < 2 or np.max(counts) > MAX_LEFT:
        return []
    return [j for j in range(steps.shape[1])
            if not flags[j].any() and sorted_within_events(steps[:, j], counts)
            and estimated_bits(steps[:, j], counts) < coded_bits[j]]


def encode(steps: np.ndarray, columns: Sequence[int], counts: np.ndarray | None) -> np.ndarray:
    """The columns' steps (each sorted within every event) as bytes (``docs/format.md``, §6.3); nothing for no
    column."""
    if not columns:
        return np.zeros(0, np.uint8)
    n, k = steps.shape
    if counts is None:
        raise CodecError("order statistics: sorted columns need the per-event counts")
    events = _events_within_limits(counts, n)
    lows, tables, coded, raw_parts, bit = [], [], [], [], 0
    for j in columns:
        column = steps[:, j]
        if not sorted_within_events(column, counts) and n > 1:
            raise CodecError(f"order statistics: column {j} is not sorted within its events")
        low = int(column.min())
        token, width, raw = _tokens(column - low)
        frequencies = entropy.normalized_frequencies(np.bincount(token))
        upper = _previous(token, events.rank, len(frequencies) - 1)
        stored = _stored_widths(token, width, raw, events.rank, upper)
        order = events.order  # raw bits rank after rank, as the decoder reads them
        raw_parts.append((bit, kernels.pack_raw(stored[order], raw[order], bit & 63)))
        bit += int(stored.sum())
        lows.append(low)
        tables.append(frequencies)
        coded.append((_Table(frequencies, events.max_left), token, upper))
    coder = constriction.stream.stack.AnsCoder()
    for table, token, upper in reversed(coded):  # a stack: the last symbols first
        for rows in reversed(events.batches(len(table.base))):
            probabilities = table.frequencies(upper[rows], events.left[rows]) / _SCALE
            coder.encode_reverse(token[rows].astype(np.int32), _FAMILY, probabilities)
    return entropy.pack_arrays([np.array([VERSION, k], np.int64), np.asarray(columns, np.int64),
                                np.array(lows, np.int64), np.array([len(t) for t in tables], np.int32),
                                entropy.varints(np.concatenate(tables)), coder.get_compressed().astype(np.uint32),
                                entropy.joined_raw(raw_parts, bit)])


def _events_within_limits(counts: np.ndarray, n: int) -> _Events:
    events = _Events(counts, n)
    if events.max_left > MAX_LEFT:
        raise CodecError(f"order statistics: an event holds {events.max_left} objects, more than {MAX_LEFT}")
    return events


def decode(data: np.ndarray, counts: np.ndarray | None, n: int, k: int) -> dict[int, np.ndarray]:
    """Inverse of :func:`encode`: the steps of each column it holds, by column; ``k`` the chunk's columns.
    Every size is checked before anything of that size is allocated; a damaged part raises :class:`CodecError`."""
    try:
        header, columns, lows, sizes, table_bytes, words, packed = entropy.unpack_arrays(np.asarray(data, np.uint8))
    except ValueError as err:
        raise CodecError(f"coded chunk: its sorted columns are damaged: {err}") from None
    if header.dtype != np.int64 or len(header) != 2:
        raise CodecError("coded chunk: its sorted columns have no valid header (corrupted)")
    if header[0] != VERSION:
        raise UnknownLayoutError(f"coded chunk: its sorted columns have layout {int(header[0])}, not {VERSION} "
                                 "(written by a newer hepae, or corrupted)")
    expected = (np.int64, np.int64, np.int32, np.uint8, np.uint32, np.uint8)
    if any(a.dtype != d for a, d in zip((columns, lows, sizes, table_bytes, words, packed), expected)) \
            or header[1] != k or len(lows) != len(columns) or len(sizes) != len(columns) \
            or (len(columns) and (columns.min() < 0 or columns.max() >= k or (np.diff(columns) <= 0).any())) \
            or (sizes < 1).any() or (sizes > entropy.MAX_TOKEN // 2 + 1).any() or (np.abs(lows) > 1 << 62).any():
        raise CodecError("coded chunk: its sorted columns have an unknown layout (corrupted)")
    if counts is None:
        raise CodecError("coded chunk holds columns sorted within events: decoding needs the per-event counts")
    events = _events_within_limits(counts, n)
    try:
        frequencies = entropy.from_varints(table_bytes)
    except ValueError as err:
        raise CodecError(f"coded chunk: its sorted columns' tables are damaged: {err}") from None
    if len(frequencies) != int(sizes.sum()):
        raise CodecError("coded chunk: its sorted columns' tables have the wrong size (corrupted)")
    tables = np.split(frequencies, np.cumsum(sizes)[:-1])
    if any(int(t.sum()) != _SCALE or t[-1] == 0 for t in tables):
        raise CodecError("coded chunk: a sorted column has a damaged frequency table")
    try:
        coder = constriction.stream.stack.AnsCoder(words)
    except ValueError as err:
        raise CodecError(f"coded chunk: its sorted columns are damaged: {err}") from None
    raw_words = entropy.raw_words(packed)
    bit = 0
    out = {}
    for j, low, base in zip(columns.tolist(), lows.tolist(), tables):
        table = _Table(base, events.max_left)
        token = np.zeros(n, np.int64)
        raw = np.zeros(n, np.uint64)
        for rows in events.batches(len(base)):  # rank after rank: each object's predecessor is decoded before it
            upper = np.where(events.rank[rows] > 0, token[np.maximum(rows - 1, 0)], len(base) - 1)
            probabilities = table.frequencies(upper, events.left[rows]) / _SCALE
            token[rows] = coder.decode(_FAMILY, probabilities)
        for r in range(len(events.bounds) - 1):  # raw bits rank after rank: a tie reads its predecessor's
            rows = events.order[events.bounds[r]:events.bounds[r + 1]]
            width = entropy.token_width(token[rows] << 1)
            if r > 0:
                width = np.where(token[rows] == token[rows - 1], _bit_length(raw[rows - 1]), width)
            if bit + int(width.sum()) > 8 * len(packed):
                raise CodecError("coded chunk: its sorted columns have too few raw bytes (truncated or corrupted)")
            raw[rows], bit = kernels.unpack_raw(np.ascontiguousarray(width, np.int64), raw_words, bit)
        values = entropy.detokenize(token << 1, raw).astype(np.int64) >> 1
        out[j] = values + low
    if not coder.is_empty():
        raise CodecError("coded chunk: its sorted columns do not decode to their end (corrupted)")
    if len(packed) != -(-bit // 8):
        raise CodecError("coded chunk: its sorted columns have the wrong number of raw bytes (corrupted)")
    return out


__all__ = ["MAX_LEFT", "choose", "decode", "encode", "estimated_bits", "sorted_within_events"]
