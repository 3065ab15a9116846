"""Entropy coding of integer streams: a static-model rANS coder, vectorized with numpy.

zstd sees bytes and models them with an order-0 Huffman code, which loses several percent on the
peaked distributions of quantized latents and residuals (up to 1 bit per symbol when one value
dominates). This coder models each stream's values with its own frequency table and codes them
within a fraction of a percent of their empirical (order-0) entropy:

* every non-negative integer ``u`` becomes a *token* and raw bits (a "hybrid uint", as in JPEG XL):
  ``u < 16`` is its own token; a larger ``u`` with ``n + 1`` significant bits keeps its top three
  bits and its lowest bit (a zigzag-folded sign) in the token and stores the ``n - 3`` bits in
  between raw (they are close to uniform);
* tokens are rANS coded (Duda 2013; 32-bit state, 16-bit words, 15-bit probabilities) with one
  frequency table per stream, or per class of a stream (the object's place in its event, or the bin
  of a value decoded earlier) where that pays for the extra tables, stored in the output as varints;
  many lanes run side by side, so the loop runs over numpy vectors of lanes instead of over symbols;
  each stream starts at a whole lane step, so a stream's classes may come from the streams before it;
* raw bits are one bit string.

Decoding depends only on integer arithmetic, so it gives the same symbols on every machine.
:func:`pack_arrays`/:func:`unpack_arrays` hold a codec's other per-chunk data next to the coded bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from hepae.errors import CodecError

PROB_BITS = 15
PROB_SCALE = 1 << PROB_BITS
_STATE_LOW = np.uint64(1 << 16)  # rANS state lives in [2**16, 2**32)
_DIRECT_BITS = 4
_DIRECT = 1 << _DIRECT_BITS  # values below this are their own token
_KEPT = 2  # bits below the leading one that a larger value keeps in its token
_SUBBUCKETS = 1 << _KEPT
_SYMBOLS_PER_LANE = 1024
_MAX_LANES = 2048
_FORMAT = 2  # 2: each stream from a whole lane step on, raw bits as one bit string
MAX_TOKEN = _DIRECT + ((63 - _DIRECT_BITS) * _SUBBUCKETS + _SUBBUCKETS - 1) * 2 + 1  # the token of 2**64 - 1
MAX_CLASSES = 16  # frequency tables per stream a decoder accepts (hepae's codecs use at most 4)


# -- hybrid uint tokens -----------------------------------------------------------------------------

def tokenize(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Non-negative integers -> ``(token, raw_width, raw_bits)`` (``values == detokenize(...)``).

    A value ``u >= 16`` with ``n + 1`` significant bits keeps in its token ``n``, the ``_KEPT`` bits
    below the leading one and its lowest bit (the sign of a zigzag-folded integer, often far from
    50/50); the ``n - _KEPT - 1`` bits in between are raw.
    """
    u = np.asarray(values, dtype=np.uint64)
    n = np.zeros(len(u), dtype=np.int64)  # index of the highest set bit
    big = u >= _DIRECT
    if big.any():
        n[big] = _bit_length(u[big]) - 1
    width = np.where(big, n - _KEPT - 1, 0)
    shift = np.maximum(width, 0).astype(np.uint64) + np.uint64(1)
    top = np.where(big, (u >> shift) & np.uint64(_SUBBUCKETS - 1), 0).astype(np.int64)
    low = (u & np.uint64(1)).astype(np.int64)
    token = np.where(big, _DIRECT + ((n - _DIRECT_BITS) * _SUBBUCKETS + top) * 2 + low, u.astype(np.int64) * ~big)
    raw = np.where(big, (u >> np.uint64(1)) & ((np.uint64(1) << np.maximum(width, 0).astype(np.uint64))
                                               - np.uint64(1)), 0)
    return token.astype(np.int64), width.astype(np.int64), raw.astype(np.uint64)


def token_width(token: np.ndarray) -> np.ndarray:
    """Raw bits that follow each token."""
    t = np.asarray(token, dtype=np.int64)
    return np.where(t < _DIRECT, 0, (t - _DIRECT) // (2 * _SUBBUCKETS) + _DIRECT_BITS - _KEPT - 1)


def detokenize(token: np.ndarray, raw: np.ndarray) -> np.ndarray:
    t = np.asarray(token, dtype=np.int64)
    big = t >= _DIRECT
    width = token_width(t).astype(np.uint64)
    top = np.where(big, _SUBBUCKETS | (((t - _DIRECT) // 2) % _SUBBUCKETS), 0).astype(np.uint64)
    low = np.where(big, (t - _DIRECT) % 2, 0).astype(np.uint64)
    value = (top << (width + np.uint64(1))) | (np.asarray(raw, dtype=np.uint64) << np.uint64(1)) | low
    return np.where(big, value, t.astype(np.uint64))


def _bit_length(u: np.ndarray) -> np.ndarray:
    """Number of significant bits of positive uint64 values."""
    if len(u) == 0 or u.max() < np.uint64(2**53):  # exactly representable: frexp's exponent is the bit length
        return np.frexp(u.astype(np.float64))[1].astype(np.int64)
    n = np.zeros(len(u), dtype=np.int64)
    v = u.copy()
    for shift in (32, 16, 8, 4, 2, 1):
        s = np.uint64(shift)
        high = (v >> s) > 0
        n += np.where(high, shift, 0)
        v = np.where(high, v >> s, v)
    return n + (v > 0)


# -- raw bits ---------------------------------------------------------------------------------------

def _pack_raw(width: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """Raw bits as one little-endian bit string: each value's ``width`` bits, in order (``raw < 2**width``,
    as :func:`tokenize` gives them)."""
    end = np.cumsum(width, dtype=np.int64)
    total = int(end[-1]) if len(end) else 0
    if total == 0:
        return np.zeros(0, np.uint8)
    start = end
    start -= width  # in place: fewer fresh arrays (page faults) on large chunks
    word = start >> 6
    start &= 63  # now the shift within the word
    shift = start.astype(np.uint64)
    out = np.zeros(total // 64 + 2, np.uint64)
    first = np.flatnonzero(np.r_[True, word[1:] != word[:-1]])  # the values that start in each word
    out[word[first]] = np.bitwise_or.reduceat(np.left_shift(raw, shift), first)
    spill = np.flatnonzero(start + width > 64)  # the value that crosses into the next word: its high bits
    out[word[spill] + 1] |= raw[spill] >> (np.uint64(64) - shift[spill])
    return out.astype("<u8").view(np.uint8)[:-(-total // 8)].copy()


def _unpack_raw(width: np.ndarray, packed: np.ndarray, first_bit: int = 0) -> np.ndarray:
    """The raw values of ``width`` bits each, read from bit ``first_bit`` of ``packed`` on."""
    w = np.asarray(width, np.int64)
    start = np.cumsum(w) - w + first_bit
    total = int(w.sum()) + first_bit
    if len(packed) < -(-total // 8):
        raise CodecError("coded stream has too few raw bytes (truncated or corrupted)")
    buffer = np.zeros(total // 64 + 2, "<u8")
    used = min(len(packed), 8 * len(buffer))
    buffer.view(np.uint8)[:used] = packed[:used]
    buffer = buffer.astype(np.uint64)
    word, shift = start >> 6, (start & 63).astype(np.uint64)
    value = buffer[word] >> shift
    spill = shift.astype(np.int64) + w > 64
    value[spill] |= buffer[word[spill] + 1] << (np.uint64(64) - shift[spill])
    return np.where(w > 0, value & ((np.uint64(1) << np.maximum(w, 0).astype(np.uint64)) - np.uint64(1)), 0)


def _unpack_raw_by_width(width: np.ndarray, packed: np.ndarray) -> np.ndarray:
    """Format 1 of :func:`encode_streams`: the raw bits grouped by width."""
    raw = np.zeros(len(width), dtype=np.uint64)
    position = 0
    for w in np.unique(width[width > 0]).tolist():
        where = np.flatnonzero(width == w)
        n_bytes = -(-w * len(where) // 8)
        if position + n_bytes > len(packed):
            raise CodecError("coded stream is truncated (raw bits)")
        bits = np.unpackbits(packed[position:position + n_bytes], bitorder="little")[:w * len(where)]
        size = next(b for b in (1, 2, 4, 8) if 8 * b >= w)  # bytes of the smallest integer that holds w bits
        padded = np.zeros((len(where), 8 * size), dtype=np.uint8)
        padded[:, :w] = bits.reshape(len(where), w)
        raw[where] = np.packbits(padded, axis=1, bitorder="little").view(f"<u{size}").ravel()
        position += n_bytes
    if position != len(packed):
        raise CodecError("coded stream has trailing raw bytes")
    return raw


# -- frequency tables -------------------------------------------------------------------------------

def _varints(values: np.ndarray) -> np.ndarray:
    """Non-negative integers < 2**21 as LEB128 bytes (7 bits each, the high bit set on all but the last):
    most table entries are small, so a table costs 1-2 bytes per entry instead of 2."""
    v = np.asarray(values, dtype=np.int64)
    n_bytes = 1 + (v >= 1 << 7) + (v >= 1 << 14)
    out = np.zeros(int(n_bytes.sum()), np.uint8)
    start = np.cumsum(n_bytes) - n_bytes
    for k in range(3):
        has = n_bytes > k
        more = n_bytes[has] > k + 1
        out[start[has] + k] = ((v[has] >> (7 * k)) & 0x7F) | (more.astype(np.int64) << 7)
    return out


def _table_bits(counts: np.ndarray) -> float:
    """Bits of the stored table of tokens with these counts: its entries up to the last used token."""
    used = np.flatnonzero(counts)
    if len(used) == 0:
        return 0.0
    frequency = counts[:used[-1] + 1] * (PROB_SCALE / counts.sum())
    return 8.0 * float(len(frequency) + (frequency >= 1 << 7).sum() + (frequency >= 1 << 14).sum())


def _from_varints(data: np.ndarray) -> np.ndarray:
    data = np.asarray(data, dtype=np.int64)
    if len(data) and data[-1] & 0x80:
        raise ValueError("truncated table")
    last = np.flatnonzero((data & 0x80) == 0)
    start = np.r_[0, last[:-1] + 1]
    if (last - start >= 3).any():
        raise ValueError("table entry too long")
    out = np.zeros(len(last), np.int64)
    for k in range(3):
        has = start + k <= last
        out[has] |= (data[start[has] + k] & 0x7F) << (7 * k)
    return out


def normalized_frequencies(counts: np.ndarray) -> np.ndarray:
    """Counts -> frequencies summing to ``PROB_SCALE``, every counted token at least 1."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(len(counts), dtype=np.int64)
    if int((counts > 0).sum()) > PROB_SCALE:
        raise CodecError("frequency table cannot be normalized (more distinct tokens than probability steps)")
    freq = counts * PROB_SCALE // total
    freq[(counts > 0) & (freq == 0)] = 1
    excess = int(freq.sum()) - PROB_SCALE
    while excess > 0:  # rare: many tokens were raised to 1; take it back from the most frequent ones
        order = np.argsort(-freq, kind="stable")
        give = np.minimum(freq[order] - 1, 1)[:excess]
        freq[order[:len(give)]] -= give
        excess -= int(give.sum())
    freq[int(np.argmax(counts))] -= excess  # excess <= 0: the remainder goes to the most frequent token
    return freq


def estimated_bits(values: np.ndarray, tables: bool = True) -> float:
    """Bits :func:`encode_streams` needs for one stream (its frequency table too, unless ``tables`` is
    False), within a fraction of a percent; the lanes' final states add 4 bytes per 1024 symbols."""
    token, width, _ = tokenize(values)
    if len(token) == 0:
        return 0.0
    counts = np.bincount(token)  # a stored table has an entry for every token up to the largest
    return _bits_of_counts(counts, tables=tables) + float(width.sum())


def estimated_bits_per_class(values: np.ndarray, classes: np.ndarray) -> tuple[float, float]:
    """``(bits, table bits)`` of one stream coded with a frequency table per class."""
    token, width, _ = tokenize(values)
    if len(token) == 0:
        return 0.0, 0.0
    counts = _class_counts(token, classes)
    bits = sum(_bits_of_counts(c, tables=False) for c in counts) + float(width.sum())
    return bits, sum(_table_bits(c) for c in counts)


# -- rANS -------------------------------------------------------------------------------------------

def _rans_encode(entry: np.ndarray, freq: np.ndarray, cum: np.ndarray, lanes: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Symbols (``entry``: row * width + symbol into the flat tables, a whole number of lane steps) ->
    (final lane states, 16-bit words in the order decoding reads them).

    Lane ``j % lanes`` codes symbol ``j``. Integer division by a frequency uses float64, exact here
    (state < 2**32, frequency < 2**16) and faster than numpy's integer division.
    """
    flat_freq, flat_cum = freq.ravel(), cum.ravel()
    x = np.full(lanes, int(_STATE_LOW), dtype=np.int64)
    words: list[np.ndarray] = []
    for t in range(len(entry) // lanes - 1, -1, -1):
        row = entry[t * lanes:(t + 1) * lanes]
        f = flat_freq[row]
        emit = x >= (f << (32 - PROB_BITS))
        if emit.any():
            words.append(x[emit] & 0xFFFF)
            x[emit] >>= 16
        q = (x / f).astype(np.int64)
        x -= q * f
        x += (q << PROB_BITS) + flat_cum[row]
    ordered = np.concatenate(words[::-1]).astype(np.uint16) if words else np.zeros(0, np.uint16)
    return x.astype(np.uint32), ordered


def _padded(values: np.ndarray, lanes: int, fill: int) -> np.ndarray:
    """``values`` padded with ``fill`` to a whole number of steps."""
    out = np.empty(-(-len(values) // lanes) * lanes, dtype=np.int64)
    out[:len(values)] = values
    out[len(values):] = fill
    return out


def _with_padding_row(freq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tables plus a last row whose only symbol has probability 1 (padding costs nothing); and cumulative starts."""
    padding = np.zeros((1, freq.shape[1]), np.int64)
    padding[0, 0] = PROB_SCALE
    freq = np.vstack([freq, padding])
    return freq, np.concatenate([np.zeros((len(freq), 1), np.int64), np.cumsum(freq, axis=1)[:, :-1]], axis=1)


class _RansDecoder:
    """Decodes lane step after lane step; the rows (tables) of each step's symbols may be given late,
    once what they depend on has been decoded."""

    def __init__(self, states: np.ndarray, words: np.ndarray, freq: np.ndarray):
        self.freq, self.cum = _with_padding_row(freq)
        self.padding_row = len(self.freq) - 1
        width = self.freq.shape[1]
        lookup = np.zeros((len(self.freq), PROB_SCALE), dtype=np.int16)  # (row, slot) -> symbol
        for row in range(len(self.freq)):
            if self.freq[row].sum() == PROB_SCALE:
                lookup[row] = np.repeat(np.arange(width), self.freq[row])
        self.flat_lookup, self.flat_freq, self.flat_cum = lookup.ravel(), self.freq.ravel(), self.cum.ravel()
        self.x, self.words, self.position = states.astype(np.int64), words.astype(np.int64), 0

    @property
    def lanes(self) -> int:
        return len(self.x)

    def decode(self, rows: np.ndarray) -> np.ndarray:
        """The symbols of ``rows`` (padded here to whole lane steps with the zero-cost padding row)."""
        all_rows = _padded(rows, self.lanes, self.padding_row)
        out = np.empty(len(all_rows), dtype=np.int64)
        lanes, width, x = self.lanes, self.freq.shape[1], self.x
        for t in range(len(all_rows) // lanes):
            row = all_rows[t * lanes:(t + 1) * lanes]
            slot = x & (PROB_SCALE - 1)
            symbol = self.flat_lookup[row * PROB_SCALE + slot]
            out[t * lanes:(t + 1) * lanes] = symbol
            entry = row * width + symbol
            x >>= PROB_BITS
            x *= self.flat_freq[entry]
            x += slot - self.flat_cum[entry]
            need = x < int(_STATE_LOW)
            k = int(np.count_nonzero(need))
            if k:
                if self.position + k > len(self.words):
                    raise CodecError("coded stream is truncated (rANS words)")
                x[need] = (x[need] << 16) | self.words[self.position:self.position + k]
                self.position += k
        return out[:len(rows)]

    def finish(self) -> None:
        if self.position != len(self.words) or (self.x != int(_STATE_LOW)).any():
            raise CodecError("coded stream does not decode to its initial state (corrupted)")


# -- streams <-> bytes ------------------------------------------------------------------------------

def _rows(lengths: Sequence[int], classes: Sequence[np.ndarray | None], n_classes: Sequence[int]) -> np.ndarray:
    """The table row of every symbol: one row per (stream, class)."""
    offsets = np.concatenate([[0], np.cumsum(n_classes)[:-1]]).astype(np.int64)
    parts = [np.full(length, offset, np.int64) if c is None else offset + np.asarray(c, dtype=np.int64)
             for length, c, offset in zip(lengths, classes, offsets)]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def _class_counts(tokens: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """``(n_classes, alphabet)`` counts of each token in each class."""
    classes = np.asarray(classes, dtype=np.int64)
    alphabet = int(tokens.max()) + 1
    return np.bincount(classes * alphabet + tokens, minlength=(int(classes.max()) + 1) * alphabet).reshape(-1, alphabet)


def _classes_pay(tokens: np.ndarray, classes: np.ndarray) -> bool:
    """Whether one table per class (their cost included) codes ``tokens`` in fewer bits than one table."""
    counts = _class_counts(tokens, classes)
    return sum(_bits_of_counts(c) for c in counts) < _bits_of_counts(counts.sum(axis=0))


def _bits_of_counts(counts: np.ndarray, tables: bool = True) -> float:
    """Bits of order-0 coding of tokens with these counts (per token), plus their stored table with ``tables``."""
    table = _table_bits(counts) if tables else 0.0
    counts = counts[counts > 0]
    return float(-(counts * np.log2(counts / counts.sum())).sum()) + table if len(counts) else 0.0


StreamClasses = Sequence[np.ndarray | None] | Callable[[int, list[np.ndarray]], np.ndarray | None]
"""Per stream, the class of each value (or None): given as a list, or, for decoding, as a function of
the stream's index and the streams decoded before it (a class may depend on values decoded earlier)."""


def encode_streams(streams: Sequence[np.ndarray], classes: Sequence[np.ndarray | None] | None = None) -> np.ndarray:
    """Non-negative integer streams -> one uint8 array.

    Each stream has its own frequency tables: one, or one per class with ``classes`` (per stream, an
    array of small non-negative ints beside the values, or None) where that makes the stream smaller,
    tables included. Each stream starts at a whole step of the interleaved lanes, so decoding can take
    a stream's classes from the streams decoded before it (see :func:`decode_streams`).
    """
    classes = list(classes) if classes is not None else [None] * len(streams)
    if len(classes) != len(streams) or any(c is not None and len(c) != len(s) for c, s in zip(classes, streams)):
        raise ValueError("classes must match the streams in number and length")
    lengths = np.array([len(s) for s in streams], dtype=np.int64)
    tokenized = [tokenize(s) for s in streams]
    classes = [c if c is not None and len(c) and _classes_pay(t, np.asarray(c)) else None
               for c, (t, _, _) in zip(classes, tokenized)]
    n_classes = [int(c.max()) + 1 if c is not None else 1 for c in classes]
    symbols = np.concatenate([t for t, _, _ in tokenized]) if streams else np.zeros(0, np.int64)
    rows = _rows(lengths, classes, n_classes)
    n_rows = int(sum(n_classes))
    alphabet = int(symbols.max()) + 1 if len(symbols) else 1
    counts = np.bincount(rows * alphabet + symbols, minlength=n_rows * alphabet).reshape(n_rows, alphabet)
    sizes = np.array([int(np.flatnonzero(c).max()) + 1 if c.any() else 0 for c in counts], dtype=np.int64)
    freq = np.stack([normalized_frequencies(c) for c in counts]) if n_rows else np.zeros((0, 1), np.int64)
    lanes = int(min(_MAX_LANES, max(1, len(symbols) // _SYMBOLS_PER_LANE)))
    states, words = np.zeros(0, np.uint32), np.zeros(0, np.uint16)
    if len(symbols):
        padded_freq, cum = _with_padding_row(freq)
        entry = rows * alphabet + symbols
        padding = (len(padded_freq) - 1) * alphabet
        ends = np.cumsum(lengths)
        entry = np.concatenate([_padded(entry[end - n:end], lanes, padding) for n, end in zip(lengths.tolist(), ends)])
        states, words = _rans_encode(entry, padded_freq, cum, lanes)
    width = np.concatenate([w for _, w, _ in tokenized]) if streams else np.zeros(0, np.int64)
    raw = np.concatenate([r for _, _, r in tokenized]) if streams else np.zeros(0, np.uint64)
    table_values = np.concatenate([freq[i, :size] for i, size in enumerate(sizes)]) if n_rows else np.zeros(0)
    return pack_arrays([np.array([_FORMAT], np.int64), lengths, np.array(n_classes, np.int32), sizes.astype(np.int32),
                        _varints(table_values), states, words, _pack_raw(width, raw)])


def decode_streams(coded: np.ndarray, classes: StreamClasses | None = None,
                   max_symbols: int | None = None, n_streams: int | None = None) -> list[np.ndarray]:
    """Inverse of :func:`encode_streams` (uint64 arrays), given the same ``classes`` (a list, or a
    function ``classes(index, decoded_before)``, asked only for streams coded with classes).

    Sizes are checked before anything is allocated: coded data that claim more than ``max_symbols``
    values, another number of streams than ``n_streams``, more than :data:`MAX_CLASSES` tables per
    stream or tables longer than the token alphabet are refused with :class:`CodecError`.
    """
    try:
        version, lengths, n_classes, sizes, table_values, states, words, packed = unpack_arrays(coded)
    except ValueError as err:
        raise CodecError(f"coded stream is damaged: {err}") from None
    if (lengths < 0).any() or (max_symbols is not None and int(lengths.sum()) > max_symbols):
        raise CodecError(f"coded stream claims {lengths.tolist()[:8]} values, more than the {max_symbols} expected")
    if (n_streams is not None and len(lengths) != n_streams) or (n_classes > MAX_CLASSES).any() \
            or (len(sizes) and (sizes.min() < 0 or sizes.max() > MAX_TOKEN + 1)):
        raise CodecError(f"coded stream declares {len(lengths)} streams ({n_streams} expected), up to "
                         f"{n_classes.max() if len(n_classes) else 0} tables per stream and tables of up to "
                         f"{sizes.max() if len(sizes) else 0} symbols: more than it can hold (corrupted)")
    if version.tolist() == [_FORMAT]:
        try:
            table_values = _from_varints(table_values)
        except ValueError as err:
            raise CodecError(f"coded stream is damaged: {err}") from None
    if version.tolist() not in ([1], [_FORMAT]) or len(n_classes) != len(lengths) \
            or len(sizes) != int(n_classes.sum()) or int(sizes.sum()) != len(table_values) or (n_classes < 1).any():
        raise CodecError("coded stream has an unknown layout (written by a newer hepae, or corrupted)")
    if classes is None:
        classes = [None] * len(lengths)
    if not callable(classes) and len(classes) != len(lengths):
        raise CodecError("coded stream: the classes given do not match the streams it holds")
    freq = np.zeros((len(sizes), int(sizes.max()) if len(sizes) else 1), dtype=np.int64)
    start = 0
    for i, size in enumerate(sizes.tolist()):
        freq[i, :size] = table_values[start:start + size]
        start += size
        if size and int(freq[i].sum()) != PROB_SCALE:
            raise CodecError("coded stream has a damaged frequency table")
    if int(lengths.sum()) and len(states) == 0:
        raise CodecError("coded stream has no rANS state")
    decoder = _RansDecoder(states, words, freq) if len(states) else None
    offsets = np.concatenate([[0], np.cumsum(n_classes)[:-1]]).astype(np.int64)
    out: list[np.ndarray] = []

    def rows_of(i: int) -> np.ndarray:
        n, k = int(lengths[i]), int(n_classes[i])
        c = None if k == 1 else (classes(i, out) if callable(classes) else classes[i])
        if (c is None and k > 1) or (c is not None and (len(c) != n or (n and (c.min() < 0 or c.max() >= k)))):
            raise CodecError("coded stream: the classes given do not match the ones it was coded with")
        rows = offsets[i] + (np.zeros(n, np.int64) if c is None else np.asarray(c, dtype=np.int64))
        if n and (freq.sum(axis=1)[rows] != PROB_SCALE).any():
            raise CodecError("coded stream: a symbol's class has no frequency table")
        return rows

    if version[0] == 1:  # streams one after the other across the lanes, raw bits grouped by width
        if callable(classes):
            raise CodecError("coded stream of format 1: its classes must be given as a list")
        rows = np.concatenate([rows_of(i) for i in range(len(lengths))]) if len(lengths) else np.zeros(0, np.int64)
        tokens = decoder.decode(rows) if decoder is not None else np.zeros(0, np.int64)
        values = detokenize(tokens, _unpack_raw_by_width(token_width(tokens), packed))
        out = np.split(values, np.cumsum(lengths)[:-1]) if len(lengths) else []
    else:  # each stream from a whole lane step on: its classes may depend on the streams before it
        bit = 0
        for i in range(len(lengths)):
            rows = rows_of(i)
            tokens = decoder.decode(rows) if decoder is not None else np.zeros(0, np.int64)
            width = token_width(tokens)
            out.append(detokenize(tokens, _unpack_raw(width, packed, bit)))
            bit += int(width.sum())
        if len(packed) != -(-bit // 8):
            raise CodecError("coded stream has the wrong number of raw bytes (corrupted)")
    if decoder is not None:
        decoder.finish()
    return list(out)


# -- several arrays in one byte array ---------------------------------------------------------------

_DTYPES = ["u1", "u2", "u4", "u8", "i1", "i2", "i4", "i8", "f4", "f8"]


def pack_arrays(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """1-D arrays (of the dtypes in ``_DTYPES``) -> one uint8 array: a header of (dtype, length) pairs,
    then each array's little-endian bytes."""
    header = [len(arrays)]
    for a in arrays:
        header += [_DTYPES.index(np.dtype(a.dtype).newbyteorder("=").str[1:]), len(a)]
    parts = [np.asarray(header, dtype="<i8").view(np.uint8)]
    parts += [np.ascontiguousarray(a, dtype=np.dtype(a.dtype).newbyteorder("<")).view(np.uint8) for a in arrays]
    return np.concatenate(parts)


def unpack_arrays(data: np.ndarray) -> list[np.ndarray]:
    data = np.ascontiguousarray(data, dtype=np.uint8)
    if len(data) < 8:
        raise ValueError("too short")
    count = int(data[:8].view("<i8")[0])
    if not 0 <= count <= 1024 or len(data) < 8 * (1 + 2 * count):
        raise ValueError("bad header")
    header = data[8:8 * (1 + 2 * count)].view("<i8").reshape(count, 2)
    position, out = 8 * (1 + 2 * count), []
    for code, length in header.tolist():
        if not 0 <= code < len(_DTYPES) or length < 0:
            raise ValueError("bad array description")
        dtype = np.dtype("<" + _DTYPES[code])
        end = position + length * dtype.itemsize
        if end > len(data):
            raise ValueError("truncated")
        out.append(data[position:end].view(dtype).astype(dtype.newbyteorder("=")))
        position = end
    if position != len(data):
        raise ValueError("trailing bytes")
    return out


def entropy_bits(values: np.ndarray) -> float:
    """Order-0 empirical entropy of integer values, in bits (all values together)."""
    _, counts = np.unique(np.asarray(values), return_counts=True)
    p = counts / counts.sum()
    return float(-(counts * np.log2(p)).sum()) if len(counts) else 0.0


__all__ = ["decode_streams", "encode_streams", "estimated_bits", "pack_arrays", "unpack_arrays", "tokenize",
           "detokenize", "entropy_bits", "normalized_frequencies"]
