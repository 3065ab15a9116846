"""Columns sorted within their events (jets by pT) are coded as order statistics: the order the file fixes costs no
bits, every step comes back exactly, and a damaged part is refused."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import hepae
from hepae.codecs import entropy, order_statistics
from hepae.codecs.bounded import BoundBounded, Bounded
from hepae.codecs.bounds import ErrorBound
from hepae.container import ContainerReader
from hepae.errors import CodecError, UnknownLayoutError
from roundtrip_checks import decoded_digests, stream_digest

COLUMNS = ["pt", "eta", "phi", "m"]


def _jets(n_events: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Jets as ``make-sample`` draws them: Poisson(2.6) an event, pT 20 GeV * U**(-1/3) sorted within the event."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(2.6, n_events)
    n = int(counts.sum())
    pt = 20.0 * rng.uniform(size=n) ** (-1 / 3)
    order = np.lexsort((-pt, np.repeat(np.arange(n_events), counts)))
    x = np.column_stack([pt[order], rng.normal(0, 1.6, n), rng.uniform(-np.pi, np.pi, n), 0.1 * pt[order]])
    return x.astype(np.float32), counts


def _bounds(bound: float) -> list[ErrorBound]:
    return [ErrorBound(c, "rel" if c in ("pt", "m") else "abs", bound) for c in COLUMNS]


def _sorted_part(coded: np.ndarray) -> np.ndarray:
    return entropy.unpack_arrays(coded)[14]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(-2**40, 2**40), max_size=12), min_size=1, max_size=40), st.integers(1, 3))
def test_any_columns_sorted_within_events_come_back_exactly(events, k):
    """Ties, single-object and empty events, constant columns and steps far apart: every step comes back."""
    counts = np.array([len(e) for e in events], np.int64)
    first = np.array([v for e in events for v in sorted(e, reverse=True)], np.int64)
    assume(len(first) > 0)  # the codec codes no sorted column in a chunk without objects
    steps = np.column_stack([first] + [first // (3 * c) for c in range(1, k)])  # still sorted within events
    data = order_statistics.encode(steps, list(range(k)), counts)
    back = order_statistics.decode(data, counts, len(steps), k)
    assert sorted(back) == list(range(k))
    for j in range(k):
        assert back[j].dtype == np.int64 and (back[j] == steps[:, j]).all()


def test_the_order_the_file_fixes_costs_no_bits():
    """n values drawn independently and sorted hold log2(n!) bits less than the n values in any order: coded as
    order statistics, the pT steps of the jets (2.6 an event) cost 0.85 to 0.96 bits a jet less than their
    order-0 entropy, the most they can (E[log2 n!] / E[n] = 0.96 in the limit of fine steps)."""
    x, counts = _jets(20_000, seed=1)
    steps = np.rint(np.log(x[:, :1].astype(np.float64)) / 2e-4).astype(np.int64)
    n = len(steps)
    ordered = 8 * len(order_statistics.encode(steps, [0], counts)) / n
    order0 = entropy.estimated_bits(steps[:, 0] - steps.min()) / n
    rng = np.random.default_rng(0)
    n_events = rng.poisson(2.6, 200_000)
    limit = sum(math.lgamma(c + 1) for c in n_events) / math.log(2) / n_events.sum()
    assert 0.94 < limit < 0.98
    assert 0.85 < order0 - ordered < limit


@pytest.mark.parametrize("bound", [1e-2, 1e-4])
def test_the_bounded_codec_codes_a_sorted_column_as_order_statistics_where_that_is_smaller(bound, monkeypatch):
    x, counts = _jets(5000, seed=2)
    codec = Bounded(_bounds(bound)).bind(COLUMNS, np.float32)
    streams = codec.encode(x, counts)
    part = _sorted_part(streams["coded"])
    assert len(part) and entropy.unpack_arrays(part)[1].tolist() == [0]  # pt; m = 0.1 pt, predicted from pt, costs ~0
    decoded = codec.decode(streams, counts)
    error = np.abs(decoded.astype(np.float64) - x) / np.where([b.kind == "rel" for b in _bounds(bound)], np.abs(x), 1)
    assert (error <= bound).all()
    monkeypatch.setattr(BoundBounded, "ordered_choice", lambda *args: [])
    without = Bounded(_bounds(bound)).bind(COLUMNS, np.float32).encode(x, counts)
    assert len(_sorted_part(without["coded"])) == 0
    saved = 8 * (len(without["coded"]) - len(streams["coded"])) / len(x)
    assert saved > 0.5  # bits a jet


@pytest.mark.parametrize("n_events", [3, 30, 300, 3000])
def test_a_chunk_is_never_bigger_for_the_model(n_events, monkeypatch):
    """The model's part of a chunk costs a header; on a few objects it does not pay, and the chunk is as before."""
    x, counts = _jets(n_events, seed=n_events)
    sizes = {}
    for bound in (1e-2, 1e-4):
        sizes[bound] = len(Bounded(_bounds(bound)).bind(COLUMNS, np.float32).encode(x, counts)["coded"])
    monkeypatch.setattr(BoundBounded, "ordered_choice", lambda *args: [])
    for bound in (1e-2, 1e-4):
        assert sizes[bound] <= len(Bounded(_bounds(bound)).bind(COLUMNS, np.float32).encode(x, counts)["coded"])


def test_a_column_not_sorted_within_its_events_is_coded_as_before():
    x, counts = _jets(2000, seed=3)
    x[1:] = x[:-1].copy()  # every event's jets shifted by one row: pT no longer decreases within each event
    codec = Bounded(_bounds(1e-3)).bind(COLUMNS, np.float32)
    streams = codec.encode(x, counts)
    assert len(_sorted_part(streams["coded"])) == 0
    assert not order_statistics.sorted_within_events(x[:, 0], counts)
    assert len(_sorted_part(codec.encode(x, None)["coded"])) == 0  # without events nothing is sorted within them


special = st.sampled_from([0.0, -0.0, 1e-45, 1e-38, 3e38, 1.0, 20.0])
values = st.one_of(st.floats(0.0, float(np.float32(1e38)), width=32), special)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(values, st.floats(-5, 5, width=32)), min_size=1, max_size=80),
       st.lists(st.integers(0, 6), min_size=1, max_size=30), st.sampled_from([1e-1, 1e-3, 1e-5]))
def test_bounds_hold_with_every_sorted_column_coded_as_order_statistics(rows, sizes, bound):
    """Whatever the values (zeros, subnormals, the largest floats), where the order-statistic model codes every
    sorted column regardless of size, every value is within its bound."""
    counts = np.array(sizes, np.int64)
    counts = counts[np.cumsum(counts) <= len(rows)]
    n = int(counts.sum())
    x = np.array(rows[:n], np.float32).reshape(n, 2)
    event = np.repeat(np.arange(len(counts)), counts)
    x = x[np.lexsort((-x[:, 0], event))]
    bounds = [ErrorBound("a", "rel", bound), ErrorBound("b", "abs", bound)]
    original = order_statistics.estimated_bits, order_statistics._PART_BITS
    try:  # chosen wherever it may be
        order_statistics.estimated_bits, order_statistics._PART_BITS = (lambda *args: -1.0), -np.inf
        codec = Bounded(bounds).bind(["a", "b"], np.float32)
        streams = codec.encode(x, counts)
    finally:
        order_statistics.estimated_bits, order_statistics._PART_BITS = original
    decoded = Bounded(bounds).bind(["a", "b"], np.float32).decode(streams, counts)
    a, r = x.astype(np.float64), decoded.astype(np.float64)
    assert (np.abs(r - a) <= bound * np.column_stack([np.abs(a[:, 0]), np.ones(n)])).all()


def test_a_file_decodes_to_the_same_values_with_one_or_two_threads_and_without_torch(tmp_path):
    """make-sample's jets are sorted by pT: their pT is coded as order statistics in every chunk. Compressed twice:
    the same streams; decoded in fresh processes with 1 and 2 threads and with torch's import failing: the same
    values."""
    source = hepae.make_sample(tmp_path / "in.root", "atlas-jets-4d", n_events=6000, seed=3)
    bounds = [f"{b.column}={b.kind}:{b.value:g}" for b in _bounds(1e-3)]
    for name in ("a", "b"):
        hepae.compress(source, tmp_path / f"{name}.root", codec=Bounded(bounds), featureset="atlas-jets-4d",
                       progress=False, step_size=2000)
    assert stream_digest(tmp_path / "a.root") == stream_digest(tmp_path / "b.root")
    with ContainerReader(tmp_path / "a.root") as reader:
        parts = [_sorted_part(chunk.streams["coded"]) for chunk in reader.chunks()]
    assert len(parts) == 3 and all(len(p) for p in parts)
    assert len(decoded_digests(tmp_path / "a.root", tmp_path)) == 1


def _damaged(part: np.ndarray, index: int, edit) -> np.ndarray:
    arrays = entropy.unpack_arrays(part)
    arrays[index] = edit(arrays[index].copy())
    return entropy.pack_arrays(arrays)


def _add_one(a: np.ndarray) -> np.ndarray:
    a[0] += 1
    return a


@pytest.mark.parametrize(("index", "edit", "message"), [
    (0, lambda a: np.array([1, a[1]], np.int64), "layout 1, not 2 .written by a development version of format 10"),
    (1, lambda a: np.array([5], np.int64), "unknown layout"),
    (1, lambda a: a[:0], "unknown layout"),
    (3, lambda a: np.array([0], np.int32), "unknown layout"),
    (4, _add_one, "table"),
    (5, lambda a: a[:-1], "sorted columns (do not decode to their end|are damaged|have too few raw bytes)"),
    (5, lambda a: a ^ np.uint32(0x5A5A5A5A), "sorted columns"),
    (6, lambda a: a[:-1], "raw bytes"),
])
def test_a_damaged_sorted_part_is_refused(index, edit, message):
    x, counts = _jets(500, seed=5)
    steps = np.rint(np.log(x[:, :1].astype(np.float64)) / 1e-3).astype(np.int64)
    part = order_statistics.encode(steps, [0], counts)
    assert (order_statistics.decode(part, counts, len(steps), 1)[0] == steps[:, 0]).all()
    with pytest.raises((CodecError, UnknownLayoutError), match=message):
        order_statistics.decode(_damaged(part, index, edit), counts, len(steps), 1)
    with pytest.raises(CodecError, match="per-event counts"):
        order_statistics.decode(part, None, len(steps), 1)
    with pytest.raises(CodecError, match="objects"):
        order_statistics.decode(part, counts[:-3], len(steps), 1)
