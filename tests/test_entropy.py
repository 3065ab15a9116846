"""The entropy coder (tokens and tables of hepae, ANS of constriction): exact round trips for any integers,
sizes close to the entropy, damage detected."""

import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hepae.codecs import entropy
from hepae.errors import CodecError

uints = st.integers(0, 2**64 - 1)
small = st.integers(0, 40)
KNOWN_SHA256 = "c200524fc7bd2b29d57df046e172eaa64d2433fc0cff3f0a34152ffb81a211aa"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.one_of(small, small, uints), max_size=300), max_size=5))
def test_any_unsigned_integers_come_back_exactly(streams):
    arrays = [np.array(s, dtype=np.uint64) for s in streams]
    back = entropy.decode_streams(entropy.encode_streams(arrays))
    assert len(back) == len(arrays)
    for a, b in zip(arrays, back):
        np.testing.assert_array_equal(a, b)


@settings(max_examples=100, deadline=None)
@given(st.lists(uints, min_size=1, max_size=200))
def test_tokens_and_raw_bits_rebuild_the_value(values):
    u = np.array(values, dtype=np.uint64)
    token, width, raw = entropy.tokenize(u)
    np.testing.assert_array_equal(entropy.token_width(token), width)
    assert (raw < (np.uint64(1) << width.astype(np.uint64))).all()
    np.testing.assert_array_equal(entropy.detokenize(token, raw), u)


def test_many_lanes_round_trip_and_land_near_the_entropy():
    rng = np.random.default_rng(1)
    geometric = rng.geometric(0.4, 300_000).astype(np.uint64)  # peaked: Huffman (zstd) loses here
    wide = np.abs(rng.normal(0, 400, 200_000)).astype(np.uint64)
    constant = np.full(50_000, 7, np.uint64)
    coded = entropy.encode_streams([geometric, wide, constant])
    back = entropy.decode_streams(coded)
    for a, b in zip([geometric, wide, constant], back):
        np.testing.assert_array_equal(a, b)
    limit = (entropy.entropy_bits(geometric) + entropy.entropy_bits(wide)) / 8  # the constant costs nothing
    assert limit < len(coded) < 1.02 * limit + 4096


def test_damaged_bytes_are_reported():
    rng = np.random.default_rng(2)
    coded = entropy.encode_streams([rng.geometric(0.3, 50_000).astype(np.uint64)])
    for damage in (coded[:-7], np.concatenate([coded, coded[:3]])):
        with pytest.raises(CodecError):
            entropy.decode_streams(damage)
    flipped = coded.copy()
    flipped[len(flipped) // 2] ^= 0x10  # inside the ANS words
    with pytest.raises(CodecError, match="corrupted|truncated"):
        entropy.decode_streams(flipped)


def test_streams_of_the_unreleased_rans_layouts_are_refused_by_name():
    """Layouts 1 and 2 (hepae's own rANS) were only ever written by development versions."""
    arrays = entropy.unpack_arrays(entropy.encode_streams([np.arange(100, dtype=np.uint64)]))
    for version in (1, 2):
        old = entropy.pack_arrays([np.array([version], np.int64), *arrays[1:]])
        with pytest.raises(CodecError, match=f"layout \\[{version}\\], not 3"):
            entropy.decode_streams(old)


def test_a_known_stream_codes_to_known_bytes():
    """Known answer: the coded bytes of a fixed stream are pinned, so a change of the layout or of the
    library's quantization (which would make old files decode wrongly) fails here first."""
    stream = np.array([0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 0, 0, 0], np.uint64)
    coded = entropy.encode_streams([stream, stream[::-1] % 3], [None, np.arange(16) % 2])
    assert hashlib.sha256(coded.tobytes()).hexdigest() == KNOWN_SHA256
    np.testing.assert_array_equal(entropy.decode_streams(coded, [None, np.arange(16) % 2])[0], stream)


def test_arrays_are_packed_with_their_dtypes():
    arrays = [np.array([1, -2], np.int64), np.array([1.5], np.float32), np.zeros(0, np.uint8),
              np.array([3.25, np.nan], np.float64)]
    back = entropy.unpack_arrays(entropy.pack_arrays(arrays))
    for a, b in zip(arrays, back):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError):
        entropy.unpack_arrays(np.zeros(5, np.uint8))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(small, st.integers(0, 2)), max_size=400), st.integers(0, 3))
def test_streams_coded_per_class_come_back_with_the_same_classes(pairs, shift):
    values = np.array([v + shift * c for v, c in pairs], dtype=np.uint64)  # each class its own distribution
    classes = np.array([c for _, c in pairs], dtype=np.int64)
    coded = entropy.encode_streams([values, values], [classes, None])
    np.testing.assert_array_equal(entropy.decode_streams(coded, [classes, None])[0], values)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), small), min_size=1, max_size=3000), st.integers(1, 3))
def test_a_stream_may_take_its_classes_from_the_streams_decoded_before_it(pairs, n_later):
    """Each stream starts at a whole lane step: decoding can compute a stream's classes from earlier ones."""
    first = np.array([a for a, _ in pairs], dtype=np.uint64)
    later = [np.array([b * (1 + 40 * a) for a, b in pairs], dtype=np.uint64) for _ in range(n_later)]
    region = (first >= 2).astype(np.int64)  # the class of a later value: the first stream's value
    coded = entropy.encode_streams([first, *later], [None] + [region] * n_later)
    asked = []

    def classes(index, before):
        asked.append(index)
        assert len(before) == index  # every stream before this one, decoded
        return (before[0] >= 2).astype(np.int64)

    back = entropy.decode_streams(coded, classes)
    for a, b in zip([first, *later], back):
        np.testing.assert_array_equal(a, b)
    assert 0 not in asked  # asked only for streams coded with classes


def test_classes_are_used_where_they_pay_for_their_tables():
    rng = np.random.default_rng(4)
    classes = rng.integers(0, 3, 100_000)
    values = rng.geometric(0.5, 100_000).astype(np.uint64) + 20 * classes.astype(np.uint64)
    plain, split = entropy.encode_streams([values]), entropy.encode_streams([values], [classes])
    assert len(split) < 0.8 * len(plain)
    np.testing.assert_array_equal(entropy.decode_streams(split, [classes])[0], values)
    with pytest.raises(CodecError, match="classes"):
        entropy.decode_streams(split)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.just(0), st.just(1), st.integers(0, 10**9)), min_size=1, max_size=600))
def test_frequency_tables_sum_to_the_scale_and_keep_every_token(counts):
    counts = np.array(counts, dtype=np.int64)
    freq = entropy.normalized_frequencies(counts)
    if counts.sum() == 0:
        assert (freq == 0).all()
        return
    assert freq.sum() == entropy.PROB_SCALE
    assert (freq[counts > 0] >= 1).all() and (freq[counts == 0] == 0).all()


def test_a_lopsided_sign_costs_less_than_a_bit():
    """Zigzag-folded values whose sign is nearly always the same: the sign is in the token, not raw."""
    rng = np.random.default_rng(6)
    steps = rng.integers(20, 2000, 100_000)  # all positive
    folded = (steps << 1).astype(np.uint64)  # zigzag of a positive integer
    plain = entropy.estimated_bits(folded >> np.uint64(1))
    assert entropy.estimated_bits(folded) < plain + 0.01 * len(steps)  # the sign bit costs ~nothing


def test_a_stream_claiming_more_values_than_expected_is_refused_before_allocating():
    coded = entropy.encode_streams([np.zeros(1000, np.uint64)])
    assert len(entropy.decode_streams(coded, max_symbols=1000)[0]) == 1000
    with pytest.raises(CodecError, match="more than the 999 expected"):
        entropy.decode_streams(coded, max_symbols=999)


def test_declared_lengths_that_overflow_a_sum_are_refused_before_allocating():
    """Lengths summed in int64 could wrap around to a small number: they are summed exactly."""
    empty = [np.zeros(0, np.uint64)] * 3
    arrays = entropy.unpack_arrays(entropy.encode_streams([np.arange(50, dtype=np.uint64), *empty]))
    arrays[1] = np.array([2**30, 2**63 - 1, 2**63 - 2**30 + 51, 0], np.int64)
    with pytest.raises(CodecError, match="more than the 200 expected"):
        entropy.decode_streams(entropy.pack_arrays(arrays), max_symbols=200, n_streams=4)
    arrays = entropy.unpack_arrays(entropy.encode_streams([np.arange(50, dtype=np.uint64)]))
    arrays[3] = arrays[3].astype(np.float64)
    with pytest.raises(CodecError, match="unexpected types"):
        entropy.decode_streams(entropy.pack_arrays(arrays))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.integers(0, 2**40), min_size=0, max_size=60), min_size=1, max_size=5),
       st.integers(1, 5), st.integers(0, 2**32 - 1))
def test_streams_scored_together_cost_what_each_costs_alone(rows, n_classes, seed):
    """The predictor's fit scores all candidates in one call (``token_bits_of_rows``,
    ``token_bits_per_class_of_rows``): each row must cost what ``estimated_bits`` and
    ``estimated_bits_per_class`` say, tables exactly."""
    n = min(len(r) for r in rows)
    values = np.array([r[:n] for r in rows], dtype=np.uint64)
    token, width, _ = entropy.tokenize(values.ravel())
    token, width = token.reshape(values.shape), width.reshape(values.shape)
    together = entropy.token_bits_of_rows(token, width)
    alone = [entropy.estimated_bits(v) for v in values]
    np.testing.assert_allclose(together, alone, rtol=1e-12)
    classes = np.random.default_rng(seed).integers(0, n_classes, values.shape)
    bits, tables = entropy.token_bits_per_class_of_rows(token[0], width[0], classes)
    for i, c in enumerate(classes):
        want_bits, want_tables = entropy.estimated_bits_per_class(values[0], c)
        assert bits[i] == pytest.approx(want_bits, rel=1e-12, abs=1e-9) and tables[i] == want_tables
