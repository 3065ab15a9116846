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
leading object, then every second one, ...); within a rank, the objects that share a model (the same ``u`` and
``m``), if there are at least :data:`GROUP_MIN` of them, are coded together with one categorical model, the others
with one model each, so a chunk of jets builds a few hundred models, not one per object.

The ``bounded`` codec codes a column this way in a chunk where its steps are non-increasing within every event, it
has no exception (a value stored exactly) and the model codes it in fewer bits than the hand-built parts (or the
learned entropy model), tables included. Byte layout: ``docs/format.md``, §6.3.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import constriction
import numpy as np

from hepae.codecs import entropy, kernels
from hepae.errors import CodecError, UnknownLayoutError

VERSION = 2  # 1: one model per object (a development version of format 10, never released)
MAX_LEFT = 4096
"""Objects per event the model takes; a chunk with larger events codes its columns as before."""
MAX_STEP = 1 << 61
"""A column is coded as order statistics only if its steps lie within this of each other (``2 v`` stays in int64)."""
GROUP_MIN = 16
"""Objects of one rank with the same model that are coded with one shared model; fewer: one model per object."""
_SCALE = 1 << kernels.PROB_BITS
_GROUP_ROWS = 1 << 14  # models computed at once (each a row of the table's width)
_BATCH_ELEMENTS = 1 << 21  # probabilities of per-object models handed to the coder at once (16 MB)
_FAMILY = constriction.stream.model.Categorical(perfect=False)  # per-object models, one row of probabilities each
_COLUMN_BITS = 8.0 * (8 + 8 + 4 + 4)  # a column's index, low and table size, its residual stream's one-token table
_PART_BITS = 8.0 * (8 + 7 * 16 + 16 + 8)  # the part's pack_arrays header, its [layout, B], the coder's final words


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
        self.order = np.argsort(self.rank.astype(np.uint16), kind="stable")  # ranks < MAX_LEFT: a radix sort
        self.bounds = np.concatenate([[0], np.cumsum(np.bincount(self.rank))]).astype(np.int64)

    def rows(self, r: int) -> np.ndarray:
        """The objects of rank ``r``, in row order."""
        return self.order[self.bounds[r]:self.bounds[r + 1]]

    def plan(self, r: int, upper: np.ndarray, alphabet: int) -> list[tuple[np.ndarray, np.ndarray, int]]:
        """How the objects of rank ``r`` are coded, in order, as ``(rows, their u, m)``: each group of at least
        :data:`GROUP_MIN` objects with the same ``u`` and ``m`` (by ``u``, then ``m``; ``m`` its model's), then the
        other objects in row order (``m`` -1: a model per object), in slices. Objects with ``u`` 0 are left out:
        their token is 0. ``upper`` holds ``u`` of every object of the rank, in row order; ``alphabet`` is ``T``."""
        rows = self.rows(r)
        left = self.left[rows]
        order = np.argsort(left.astype(np.uint16), kind="stable")  # by u, then m, then row: two radix sorts
        order = order[np.argsort(upper[order].astype(np.uint16), kind="stable")]
        u, m = upper[order], left[order]
        starts = np.flatnonzero(np.r_[True, (u[1:] != u[:-1]) | (m[1:] != m[:-1])])
        ends = np.r_[starts[1:], len(order)]
        big = (ends - starts >= GROUP_MIN) & (u[starts] > 0)
        out = [(rows[order[a:b]], u[a:b], int(m[a])) for a, b in zip(starts[big], ends[big])]
        alone = np.sort(order[np.repeat(~big, ends - starts) & (u > 0)])  # positions in the rank, in row order
        size = max(1, _BATCH_ELEMENTS // alphabet)
        out.extend((rows[alone[a:a + size]], upper[alone[a:a + size]], -1) for a in range(0, len(alone), size))
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
        """``(len(upper), T)``: the model's frequencies for each pair of ``u`` and ``m`` (docs/format.md §6.3)."""
        return kernels.order_statistic_frequencies(self.powers, self.base, self.allowed, self.cumulative,
                                                   np.ascontiguousarray(upper, np.int64),
                                                   np.ascontiguousarray(left, np.int64))

    def encode(self, coder: Any, token: np.ndarray, rows: np.ndarray, upper: np.ndarray, m: int, left: np.ndarray
               ) -> None:
        """Push the tokens of one step of :meth:`_Events.plan` onto ``coder``."""
        symbols = token[rows].astype(np.int32)
        if m >= 0:
            u = int(upper[0])
            coder.encode_reverse(symbols, _model(self.frequencies(upper[:1], np.array([m]))[0, :u + 1]))
        else:
            coder.encode_reverse(symbols, _FAMILY, self.frequencies(upper, left[rows]) / _SCALE)

    def decode(self, coder: Any, rows: np.ndarray, upper: np.ndarray, m: int, left: np.ndarray) -> np.ndarray:
        """The tokens of one step of :meth:`_Events.plan`, checked to be tokens its models allow."""
        if m >= 0:
            u = int(upper[0])
            decoded = coder.decode(_model(self.frequencies(upper[:1], np.array([m]))[0, :u + 1]), len(rows))
        else:
            decoded = coder.decode(_FAMILY, self.frequencies(upper, left[rows]) / _SCALE)
        decoded = np.asarray(decoded, np.int64)
        if (decoded > upper).any() or (self.base[decoded] == 0).any():  # the coder's models leak to every token
            raise CodecError("coded chunk: its sorted columns decode to tokens their model does not allow (corrupted)")
        return decoded


def _model(frequencies: np.ndarray) -> constriction.stream.model.Categorical:
    """One shared model: frequencies summing to ``2**15`` (exact in float64), as every table of the entropy coder."""
    return constriction.stream.model.Categorical(np.asarray(frequencies, np.float64) / _SCALE, perfect=False)


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
    tie = np.flatnonzero((rank > 0) & (token == upper))
    stored = width.copy()
    stored[tie] = _bit_length(raw[tie - 1])
    return stored


class _Column:
    """One column's steps as the model codes them: its ``low``, tokens, raw bits (and how many of them it stores),
    table, and each object's bound ``upper``; the steps checked to be codable (:func:`_codable`)."""

    def __init__(self, steps: np.ndarray, events: _Events, counts: np.ndarray) -> None:
        if not _codable(steps, counts):
            raise CodecError(f"order statistics: a column is not sorted within its events, or its steps span "
                             f"{MAX_STEP} or more")
        self.low = int(steps.min())
        self.token, width, self.raw = _tokens(steps - self.low)
        self.frequencies = entropy.normalized_frequencies(np.bincount(self.token))
        self.upper = _previous(self.token, events.rank, len(self.frequencies) - 1)
        self.stored = _stored_widths(self.token, width, self.raw, events.rank, self.upper)


def _codable(column: np.ndarray, counts: np.ndarray) -> bool:
    """Steps within :data:`MAX_STEP` of each other that never increase within an event."""
    return len(column) > 0 and int(column.max()) - int(column.min()) < MAX_STEP \
        and (len(column) < 2 or sorted_within_events(column, counts))


def estimated_bits(steps: np.ndarray, counts: np.ndarray) -> float:
    """Bits of coding one column's steps (sorted within events, no exception) with the model, its table and integers
    included (not the part's own header, :data:`_PART_BITS`, paid once per chunk)."""
    events = _events_within_limits(counts, len(steps))
    column = _Column(steps, events, counts)
    token, frequencies, upper = column.token, column.frequencies, column.upper
    table = _Table(frequencies, events.max_left)
    key = upper * (events.max_left + 1) + events.left
    present = np.zeros(len(frequencies) * (events.max_left + 1), bool)
    present[key] = True
    keys = np.flatnonzero(present)  # each distinct (u, m), in order
    index = np.zeros(len(present), np.int64)
    index[keys] = np.arange(len(keys))
    group = index[key]
    own = np.zeros(len(token), np.int64)
    for start in range(0, len(keys), _GROUP_ROWS):  # each distinct (u, m) once
        part = keys[start:start + _GROUP_ROWS]
        rows = table.frequencies(part // (events.max_left + 1), part % (events.max_left + 1))
        members = (group >= start) & (group < start + len(part))
        own[members] = rows[group[members] - start, token[members]]
    return float(kernels.PROB_BITS * len(own) - np.log2(own).sum()) + float(column.stored.sum()) \
        + 8.0 * len(entropy.varints(frequencies)) + _COLUMN_BITS


def candidate(column: np.ndarray, flags: np.ndarray, counts: np.ndarray | None) -> bool:
    """Whether the model may code a column of one chunk: no exception, steps within :data:`MAX_STEP` of each other,
    never increasing within an event, in events of at most :data:`MAX_LEFT` objects, some of more than one."""
    return counts is not None and len(column) > 1 and 2 <= int(np.max(counts, initial=0)) <= MAX_LEFT \
        and not flags.any() and _codable(column, counts)


def choose(steps: np.ndarray, counts: np.ndarray | None, coded_bits: Sequence[float | None]) -> list[int]:
    """The columns of one chunk to code with the model: of the :func:`candidate` columns (``coded_bits[j]`` what
    column ``j`` costs otherwise, None for the others), those it codes in fewer bits; none unless together they
    save more than the part's header costs."""
    if counts is None:
        return []
    gains = {j: bits - estimated_bits(steps[:, j], counts) for j, bits in enumerate(coded_bits) if bits is not None}
    chosen = [j for j, gain in gains.items() if gain > 0]
    return chosen if sum(gains[j] for j in chosen) > _PART_BITS else []


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
        column = _Column(steps[:, j], events, counts)
        order = events.order  # raw bits rank after rank, as the decoder reads them
        raw_parts.append((bit, kernels.pack_raw(column.stored[order], column.raw[order], bit & 63)))
        bit += int(column.stored.sum())
        lows.append(column.low)
        tables.append(column.frequencies)
        plan = [step for r in range(len(events.bounds) - 1)
                for step in events.plan(r, column.upper[events.rows(r)], len(column.frequencies))]
        coded.append((_Table(column.frequencies, events.max_left), plan, column.token))
    coder = constriction.stream.stack.AnsCoder()
    for table, plan, token in reversed(coded):  # a stack: the last symbols first
        for rows, upper, m in reversed(plan):
            table.encode(coder, token, rows, upper, m, events.left)
    return entropy.pack_arrays([np.array([VERSION, k], np.int64), np.asarray(columns, np.int64),
                                np.array(lows, np.int64), np.array([len(t) for t in tables], np.int32),
                                entropy.varints(np.concatenate(tables)), coder.get_compressed().astype(np.uint32),
                                entropy.joined_raw(raw_parts, bit)])


def _events_within_limits(counts: np.ndarray, n: int) -> _Events:
    """The chunk's :class:`_Events`, refused beyond :data:`MAX_LEFT` objects an event."""
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
                                 "(written by a development version of format 10, by a newer hepae, or corrupted)")
    expected = (np.int64, np.int64, np.int32, np.uint8, np.uint32, np.uint8)
    if any(a.dtype != d for a, d in zip((columns, lows, sizes, table_bytes, words, packed), expected)) \
            or header[1] != k or len(columns) == 0 or len(lows) != len(columns) or len(sizes) != len(columns) \
            or (len(columns) and (columns.min() < 0 or columns.max() >= k or (np.diff(columns) <= 0).any())) \
            or (sizes < 1).any() or (sizes > entropy.MAX_TOKEN // 2 + 1).any() \
            or (lows < -MAX_STEP).any() or (lows > MAX_STEP).any():
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
        for r in range(len(events.bounds) - 1):  # rank after rank: each object's predecessor is decoded before it
            rows = events.rows(r)  # u: a token of the table (checked when decoded), or its last one
            upper = token[rows - 1] if r > 0 else np.full(len(rows), len(base) - 1, np.int64)
            for members, bound, m in events.plan(r, upper, len(base)):
                token[members] = table.decode(coder, members, bound, m, events.left)
        for r in range(len(events.bounds) - 1):  # raw bits rank after rank: a tie reads its predecessor's
            rows = events.rows(r)
            width = entropy.token_width(token[rows] << 1)
            if r > 0:
                tie = np.flatnonzero(token[rows] == token[rows - 1])
                width[tie] = _bit_length(raw[rows[tie] - 1])
            if bit + int(width.sum()) > 8 * len(packed):
                raise CodecError("coded chunk: its sorted columns have too few raw bytes (truncated or corrupted)")
            raw[rows], bit = kernels.unpack_raw(np.ascontiguousarray(width, np.int64), raw_words, bit)
        values = entropy.detokenize(token << 1, raw) >> np.uint64(1)
        if len(values) and int(values.max()) >= MAX_STEP:
            raise CodecError("coded chunk: its sorted columns decode to steps out of range (corrupted)")
        out[j] = values.astype(np.int64) + low
    if not coder.is_empty():
        raise CodecError("coded chunk: its sorted columns do not decode to their end (corrupted)")
    if len(packed) != -(-bit // 8):
        raise CodecError("coded chunk: its sorted columns have the wrong number of raw bytes (corrupted)")
    return out


__all__ = ["GROUP_MIN", "MAX_LEFT", "MAX_STEP", "candidate", "choose", "decode", "encode", "estimated_bits",
           "sorted_within_events"]
