"""Entropy coding of integer streams: hybrid-uint tokens, per-stream (or per-class) frequency tables,
and the ANS coder of the ``constriction`` library.

zstd sees bytes and models them with an order-0 Huffman code, which loses several percent on the
peaked distributions of quantized latents and residuals (up to 1 bit per symbol when one value
dominates). This module models each stream's values with its own frequency table and codes them
within a fraction of a percent of their empirical (order-0) entropy. What hepae adds to the library:

* every non-negative integer ``u`` becomes a *token* and raw bits (a "hybrid uint", as in JPEG XL):
  ``u < 16`` is its own token; a larger ``u`` with ``n + 1`` significant bits keeps its top three
  bits and its lowest bit (a zigzag-folded sign) in the token and stores the ``n - 3`` bits in
  between raw (they are close to uniform), so the alphabet stays small for any integer;
* one frequency table per stream, or per class of a stream (the object's place in its event, or the
  bin of a value decoded earlier) where that pays for the extra tables; tables are integers summing
  to ``2**15``, stored as varints, so encoder and decoder build their models from the same integers;
* a stream's classes may come from the streams decoded before it.

The tokens are coded by ``constriction.stream.stack.AnsCoder`` (range-ANS with 32-bit words) with
``constriction.stream.model.Categorical(freq / 2**15, perfect=False)``: every probability is a
multiple of ``2**-15``, exact in float64, and the library quantizes it with integer arithmetic, so
decoding gives the same symbols on every machine (the committed fixtures in ``tests/data/`` check
that a new constriction still does). The byte layout is in ``docs/format.md``.
:func:`pack_arrays`/:func:`unpack_arrays` hold a codec's other per-chunk data next to the coded bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import constriction
import numpy as np

from hepae.codecs import kernels
from hepae.errors import CodecError, UnknownLayoutError

PROB_BITS = kernels.PROB_BITS
PROB_SCALE = 1 << PROB_BITS
_DIRECT_BITS = kernels.DIRECT_BITS
_DIRECT = 1 << _DIRECT_BITS  # values below this are their own token
_KEPT = kernels.KEPT  # bits below the leading one that a larger value keeps in its token
_SUBBUCKETS = 1 << _KEPT
_FORMAT = 3  # 3: constriction's ANS coder (1 and 2, hepae's own rANS, were never released)
MAX_TOKEN = _DIRECT + ((63 - _DIRECT_BITS) * _SUBBUCKETS + _SUBBUCKETS - 1) * 2 + 1  # the token of 2**64 - 1
MAX_CLASSES = 16  # frequency tables per stream a decoder accepts (hepae's codecs use at most 4)


# -- hybrid uint tokens -----------------------------------------------------------------------------

def tokenize(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Non-negative integers -> ``(token, raw_width, raw_bits)`` (``values == detokenize(...)``).

    A value ``u >= 16`` with ``n + 1`` significant bits keeps in its token ``n``, the ``_KEPT`` bits
    below the leading one and its lowest bit (the sign of a zigzag-folded integer, often far from
    50/50); the ``n - _KEPT - 1`` bits in between are raw.
    """
    return kernels.tokenize(np.ascontiguousarray(values, dtype=np.uint64))


def token_width(token: np.ndarray) -> np.ndarray:
    """Raw bits that follow each token."""
    t = np.asarray(token, dtype=np.int64)
    return np.where(t < _DIRECT, 0, (t - _DIRECT) // (2 * _SUBBUCKETS) + _DIRECT_BITS - _KEPT - 1)


def detokenize(token: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """The values of :func:`tokenize`'s tokens and raw bits."""
    token = np.ascontiguousarray(token, dtype=np.int64)
    if len(raw) != len(token) or (len(token) and (token.min() < 0 or token.max() > MAX_TOKEN)):
        raise ValueError(f"detokenize: {len(token)} tokens in [0, {MAX_TOKEN}] and as many raw values are needed")
    words = kernels.pack_raw(token_width(token), np.ascontiguousarray(raw, dtype=np.uint64), 0)
    return kernels.detokenize(token, words, 0)[0]


# -- raw bits ---------------------------------------------------------------------------------------

def joined_raw(parts: list[tuple[int, np.ndarray]], total: int) -> np.ndarray:
    """One little-endian bit string of ``total`` bits from parts ``(first bit, words)`` of
    :func:`hepae.codecs.kernels.pack_raw` (each packed from its first bit's place in its word on)."""
    out = np.zeros(total // 64 + 2, np.uint64)
    for first, words in parts:
        out[first >> 6:(first >> 6) + len(words)] |= words
    return out.astype("<u8").view(np.uint8)[:-(-total // 8)].copy()


def raw_words(packed: np.ndarray) -> np.ndarray:
    """The packed raw bits as uint64 words (two spare zero words at the end, for values that spill)."""
    buffer = np.zeros(len(packed) // 8 + 2, "<u8")
    buffer.view(np.uint8)[:len(packed)] = packed
    return buffer.astype(np.uint64)


# -- frequency tables -------------------------------------------------------------------------------

def varints(values: np.ndarray) -> np.ndarray:
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


def from_varints(data: np.ndarray) -> np.ndarray:
    """Inverse of :func:`varints`; ``ValueError`` for a truncated entry or one longer than 3 bytes."""
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
    False), within a fraction of a percent; the coder's final state adds 8 bytes per call."""
    return token_bits(*tokenize(values)[:2], tables=tables)


def token_bits(token: np.ndarray, width: np.ndarray, tables: bool = True) -> float:
    """:func:`estimated_bits` of values already tokenized (:func:`tokenize`'s token and raw widths)."""
    if len(token) == 0:
        return 0.0
    counts = np.bincount(token)  # a stored table has an entry for every token up to the largest
    return _bits_of_counts(counts, tables=tables) + float(width.sum())


def estimated_bits_per_class(values: np.ndarray, classes: np.ndarray) -> tuple[float, float]:
    """``(bits, table bits)`` of one stream coded with a frequency table per class."""
    return token_bits_per_class(*tokenize(values)[:2], classes)


def token_bits_per_class(token: np.ndarray, width: np.ndarray, classes: np.ndarray) -> tuple[float, float]:
    """:func:`estimated_bits_per_class` of values already tokenized."""
    if len(token) == 0:
        return 0.0, 0.0
    bits, tables = token_bits_per_class_of_rows(token, width, np.asarray(classes)[None, :])
    return float(bits[0]), float(tables[0])


# -- streams <-> bytes ------------------------------------------------------------------------------

def _class_counts(tokens: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """``(n_classes, alphabet)`` counts of each token in each class."""
    classes = np.asarray(classes, dtype=np.int64)
    alphabet = int(tokens.max()) + 1
    return np.bincount(classes * alphabet + tokens, minlength=(int(classes.max()) + 1) * alphabet).reshape(-1, alphabet)


def token_bits_of_rows(token: np.ndarray, width: np.ndarray) -> np.ndarray:
    """:func:`token_bits` (tables included) of each row of ``(m, n)`` tokens and raw widths: m streams at once."""
    m = len(token)
    if token.size == 0:
        return np.zeros(m)
    return kernels.token_bits_of_rows(np.ascontiguousarray(token), int(token.max()) + 1, float(PROB_SCALE)) + \
        width.sum(axis=1)


def token_bits_per_class_of_rows(token: np.ndarray, width: np.ndarray, classes: np.ndarray
                                 ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`token_bits_per_class` of one stream's tokens under each row of ``(m, n)`` classes: ``(bits,
    table bits)``, each of length m."""
    m = len(classes)
    if len(token) == 0 or m == 0:
        return np.zeros(m), np.zeros(m)
    if np.ndim(classes) != 2 or np.shape(classes)[1] != len(token) or np.min(classes) < 0:
        raise ValueError(f"classes must be (m, {len(token)}) non-negative integers, one row per way of classing")
    bits, tables = kernels.class_token_bits(np.ascontiguousarray(token), np.ascontiguousarray(classes, np.int64),
                                            int(classes.max()) + 1, int(token.max()) + 1, float(PROB_SCALE))
    return bits + float(width.sum()), tables


def _bits_of_counts(counts: np.ndarray, tables: bool = True) -> float:
    """Bits of order-0 coding of tokens with these counts (per token), plus their stored table with ``tables``."""
    table = _table_bits(counts) if tables else 0.0
    counts = counts[counts > 0]
    return float(-(counts * np.log2(counts / counts.sum())).sum()) + table if len(counts) else 0.0


def _model(frequencies: np.ndarray) -> constriction.stream.model.Categorical:
    """The coder's model of one table: integer frequencies summing to ``PROB_SCALE``, exact in float64."""
    return constriction.stream.model.Categorical(np.asarray(frequencies, np.float64) / PROB_SCALE, perfect=False)


def _class_members(classes: np.ndarray | None, n: int, n_classes: int) -> list[np.ndarray | None]:
    """Per class, the positions of its symbols in the stream, in stream order (``None``: the whole
    stream is one class). One pass per class: faster than a sort for the few classes hepae uses."""
    if classes is None:
        return [None]
    return [np.flatnonzero(classes == r) for r in range(n_classes)]


StreamClasses = Sequence[np.ndarray | None] | Callable[[int, list[np.ndarray]], np.ndarray | None]
"""Per stream, the class of each value (or None): given as a list, or, for decoding, as a function of
the stream's index and the streams decoded before it (a class may depend on values decoded earlier)."""


def encode_streams(streams: Sequence[np.ndarray], classes: Sequence[np.ndarray | None] | None = None) -> np.ndarray:
    """Non-negative integer streams -> one uint8 array (layout: ``docs/format.md``, "coded streams").

    Parameters
    ----------
    streams : sequence of 1-D arrays of non-negative integers (< 2**64)
        Each is coded with its own frequency table(s).
    classes : sequence of (1-D int array or None), optional
        Per stream, a small non-negative class per value: the stream then gets one table per class
        where that makes it smaller, tables included. Decoding needs the same classes (which may be
        computed from streams decoded earlier, see :func:`decode_streams`).

    Returns
    -------
    numpy.ndarray of uint8
    """
    classes = list(classes) if classes is not None else [None] * len(streams)
    if len(classes) != len(streams) or any(c is not None and len(c) != len(s) for c, s in zip(classes, streams)):
        raise ValueError("classes must match the streams in number and length")
    lengths = np.array([len(s) for s in streams], dtype=np.int64)
    tokens: list[np.ndarray] = []
    raw_parts: list[tuple[int, np.ndarray]] = []  # each stream's raw bits, packed as soon as it is tokenized
    bit = 0
    for s in streams:
        token, width, raw = tokenize(s)
        raw_parts.append((bit, kernels.pack_raw(width, raw, bit & 63)))
        bit += int(width.sum())
        tokens.append(token)
    tables: list[np.ndarray] = []  # per (stream, class): frequencies up to the last used token
    members: list[list[np.ndarray | None]] = []
    n_classes: list[int] = []
    for token, c in zip(tokens, classes):
        counts = np.bincount(token, minlength=1)[None, :]
        if c is not None and len(c):  # a table per class, where that pays for the extra tables
            per_class = _class_counts(token, c)
            c = np.asarray(c, dtype=np.int64) if sum(map(_bits_of_counts, per_class)) < _bits_of_counts(counts[0]) \
                else None
            counts = per_class if c is not None else counts
        else:
            c = None
        for row in counts:
            used = np.flatnonzero(row)
            tables.append(normalized_frequencies(row[:used[-1] + 1]) if len(used) else np.zeros(0, np.int64))
        n_classes.append(len(counts))
        members.append(_class_members(c, len(token), len(counts)))
    coder = constriction.stream.stack.AnsCoder()
    row = len(tables)
    for token, stream_members in zip(reversed(tokens), reversed(members)):  # a stack: last first
        for where in reversed(stream_members):
            row -= 1
            symbols = token if where is None else token[where]
            if len(symbols) and len(tables[row]) > 1:  # a one-token table: the token is certain, costs nothing
                coder.encode_reverse(symbols, _model(tables[row]))
    words = coder.get_compressed().astype(np.uint32)
    sizes = np.array([len(t) for t in tables], dtype=np.int32)
    table_values = np.concatenate(tables) if tables else np.zeros(0, np.int64)
    return pack_arrays([np.array([_FORMAT], np.int64), lengths, np.array(n_classes, np.int32), sizes,
                        varints(table_values), words, joined_raw(raw_parts, bit)])


def decode_streams(coded: np.ndarray, classes: StreamClasses | None = None,
                   max_symbols: int | None = None, n_streams: int | None = None) -> list[np.ndarray]:
    """Inverse of :func:`encode_streams`.

    Parameters
    ----------
    coded : numpy.ndarray of uint8
    classes : list, or callable ``classes(index, decoded_before)``, optional
        The classes the streams were coded with; a callable is asked only for streams coded with
        classes, and gets the streams decoded before it.
    max_symbols, n_streams : int, optional
        What the caller expects: coded data that claim more values, another number of streams, more
        than :data:`MAX_CLASSES` tables per stream or tables longer than the token alphabet are
        refused with :class:`CodecError` before anything of that size is allocated.

    Returns
    -------
    list of numpy.ndarray of uint64
    """
    try:
        version, lengths, n_classes, sizes, table_values, words, packed = unpack_arrays(coded)
    except ValueError as err:
        raise CodecError(f"coded stream is damaged: {err}") from None
    if version.tolist() != [_FORMAT]:
        raise UnknownLayoutError(f"coded stream has layout {version.tolist()[:1]}, not {_FORMAT} (written by a "
                                 "development version of hepae before its ANS coder was constriction's, by a newer "
                                 "hepae, or corrupted)")
    expected = (np.int64, np.int64, np.int32, np.int32, np.uint8, np.uint32, np.uint8)
    if any(a.dtype != d for a, d in zip((version, lengths, n_classes, sizes, table_values, words, packed), expected)):
        raise CodecError("coded stream has arrays of unexpected types (written by a newer hepae, or corrupted)")
    if (lengths < 0).any() or (max_symbols is not None and sum(lengths.tolist()) > max_symbols):
        raise CodecError(f"coded stream claims {lengths.tolist()[:8]} values, more than the {max_symbols} expected")
    if (n_streams is not None and len(lengths) != n_streams) or (n_classes > MAX_CLASSES).any() \
            or (len(sizes) and (sizes.min() < 0 or sizes.max() > MAX_TOKEN + 1)):
        raise CodecError(f"coded stream declares {len(lengths)} streams ({n_streams} expected), up to "
                         f"{n_classes.max() if len(n_classes) else 0} tables per stream and tables of up to "
                         f"{sizes.max() if len(sizes) else 0} symbols: more than it can hold (corrupted)")
    try:
        table_values = from_varints(table_values)
    except ValueError as err:
        raise CodecError(f"coded stream is damaged: {err}") from None
    if len(n_classes) != len(lengths) or len(sizes) != int(n_classes.sum()) or int(sizes.sum()) != len(table_values) \
            or (n_classes < 1).any() or words.dtype != np.uint32:
        raise CodecError("coded stream has an unknown layout (written by a newer hepae, or corrupted)")
    if classes is None:
        classes = [None] * len(lengths)
    if not callable(classes) and len(classes) != len(lengths):
        raise CodecError("coded stream: the classes given do not match the streams it holds")
    tables = np.split(table_values, np.cumsum(sizes)[:-1]) if len(sizes) else []
    if any(len(t) and int(t.sum()) != PROB_SCALE for t in tables):
        raise CodecError("coded stream has a damaged frequency table")
    try:
        coder = constriction.stream.stack.AnsCoder(words)
    except ValueError as err:  # constriction's check of the coded words
        raise CodecError(f"coded stream is damaged: {err}") from None
    offsets = np.concatenate([[0], np.cumsum(n_classes)[:-1]]).astype(np.int64)
    out: list[np.ndarray] = []
    words_of_raw = raw_words(packed)
    bit = 0  # where the next stream's raw bits start
    for i in range(len(lengths)):
        n, k = int(lengths[i]), int(n_classes[i])
        c = None if k == 1 else (classes(i, out) if callable(classes) else classes[i])
        if (c is None and k > 1) or (c is not None and (len(c) != n or (n and (c.min() < 0 or c.max() >= k)))):
            raise CodecError("coded stream: the classes given do not match the ones it was coded with")
        token = np.zeros(n, np.int64)
        for offset, where in enumerate(_class_members(None if c is None else np.asarray(c, np.int64), n, k)):
            count = n if where is None else len(where)
            table = tables[offsets[i] + offset]
            if count == 0:
                continue
            if len(table) == 0:
                raise CodecError("coded stream: a symbol's class has no frequency table")
            symbols = coder.decode(_model(table), count) if len(table) > 1 else 0
            if where is None:
                token[:] = symbols
            else:
                token[where] = symbols
        if bit + kernels.raw_bits(token) > 8 * len(packed):
            raise CodecError("coded stream has too few raw bytes (truncated or corrupted)")
        values, bit = kernels.detokenize(token, words_of_raw, bit)
        out.append(values)  # a later stream's classes may need it
    if not coder.is_empty():
        raise CodecError("coded stream does not decode to its end (corrupted)")
    if len(packed) != -(-bit // 8):
        raise CodecError("coded stream has the wrong number of raw bytes (corrupted)")
    return out


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
           "detokenize", "entropy_bits", "normalized_frequencies", "varints", "from_varints", "joined_raw", "raw_words",
           "token_width"]
