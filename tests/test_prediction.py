"""Residual prediction: integer arithmetic that every machine repeats, and what it takes out of a column."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hepae.codecs import entropy
from hepae.codecs.residual_prediction import Predictor, curve, unzigzag, zigzag
from hepae.errors import CodecError


def test_curve_is_the_floor_of_the_exact_piecewise_linear_interpolation_and_flat_outside():
    knots = np.array([-50, -7, 0, 3, 400], dtype=np.int64)
    values = np.array([9, -4, 11, 11, -2**29], dtype=np.int64)
    position = np.arange(-80, 430, dtype=np.int64)
    got = curve(position, knots, values)
    for p, g in zip(position.tolist(), got.tolist()):
        if p <= knots[0]:
            expected = values[0]
        elif p >= knots[-1]:
            expected = values[-1]
        else:
            i = int(np.searchsorted(knots, p, side="right")) - 1
            exact = values[i] + Fraction(int(values[i + 1] - values[i]) * (p - int(knots[i])),
                                         int(knots[i + 1] - knots[i]))
            expected = exact.numerator // exact.denominator
        assert g == expected, p
    assert (curve(position, knots[:1], values[:1]) == values[0]).all()  # one knot: a constant


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 5), st.integers(20, 400), st.integers(0, 2**32 - 1), st.sampled_from([3, 2**12, 2**29]),
       st.floats(0, 0.2))
def test_tokens_undo_to_the_same_steps_for_any_integers(k, n, seed, scale, exception_rate):
    rng = np.random.default_rng(seed)
    steps = rng.integers(-scale, scale, (n, k), dtype=np.int64)
    steps[:, 1:] += (steps[:, :1] ** 2) // max(scale, 1)  # some dependence for the fit to find
    flags = [rng.uniform(size=n) < exception_rate for _ in range(k)]
    for j, flag in enumerate(flags):
        steps[flag, j] = 0  # exceptions carry no steps
    predictor = Predictor.fit(steps, flags)
    tokens = predictor.tokens(steps, flags)
    assert all((t == 0).tolist() == f.tolist() for t, f in zip(tokens, flags))
    np.testing.assert_array_equal(predictor.undo(tokens), steps)
    again = Predictor.from_arrays(predictor.to_arrays(), k)
    np.testing.assert_array_equal(again.undo(tokens), steps)


def test_a_nonlinear_dependence_is_taken_by_a_context_curve():
    """CentroidR against eta in the 27D jets: log(1/sin(theta)) saturating, what a line cannot follow."""
    rng = np.random.default_rng(1)
    n = 60_000
    eta = rng.normal(0, 1.6, n)
    centroid = np.log(np.minimum(np.cosh(eta), 4.0)) + rng.normal(0, 0.05, n)
    steps = np.rint(np.stack([eta / 2e-3, rng.normal(0, 1, n) / 2e-3, centroid / 2e-3], axis=1)).astype(np.int64)
    flags = [np.zeros(n, bool)] * 3
    linear, full = Predictor.fit(steps, flags, contexts=False), Predictor.fit(steps, flags)
    assert full.context.tolist() == [-1, -1, 0]  # the curve of column 2 reads column 0, column 1 has none
    bits = [entropy.estimated_bits(t) / n for t in (linear.tokens(steps, flags)[2], full.tokens(steps, flags)[2])]
    noise_bits = np.log2(0.05 * np.sqrt(2 * np.pi * np.e) / 2e-3)  # what no predictor removes
    assert bits[1] < noise_bits + 0.3 < bits[0] - 1, bits


def test_a_column_equal_to_another_in_half_the_objects_is_predicted_exactly_there():
    """OotFracClusters5 = OotFracClusters10 + (0 in half the jets, else an exponential): among twenty
    unrelated columns, least squares alone gives small spurious terms; the sparse refit gives 1 and 0s."""
    rng = np.random.default_rng(2)
    n = 40_000
    noise = rng.normal(0, 800, (n, 20))
    base = np.where(rng.uniform(size=n) < 0.7, 0, rng.exponential(15, n))
    extra = np.where(rng.uniform(size=n) < 0.5, 0, rng.exponential(15, n))
    steps = np.rint(np.column_stack([noise, base, base + extra - 7])).astype(np.int64)
    predictor = Predictor.fit(steps, [np.zeros(n, bool)] * 22)
    assert predictor.coefficients[21, 20] == 2**16 and not predictor.coefficients[21, :20].any()
    difference = unzigzag(predictor.tokens(steps, [np.zeros(n, bool)] * 22)[21] - np.uint64(1))
    assert len(np.unique(difference[extra == 0])) == 1  # one symbol where the columns are equal: ~free


def test_a_column_broad_in_one_region_of_another_gets_a_table_per_region():
    """HECFrac: ~0 outside the hadronic end-cap (1.5 < |eta| < 3.2), broad inside: class context eta."""
    rng = np.random.default_rng(6)
    n = 50_000
    eta = rng.normal(0, 1.6, n)
    inside = (np.abs(eta) > 1.5) & (np.abs(eta) < 3.2)
    hec = np.where(inside, rng.uniform(0.1, 0.6, n), np.abs(rng.normal(0, 0.001, n)))
    steps = np.rint(np.stack([eta, rng.normal(0, 1, n), hec], axis=1) / 2e-3).astype(np.int64)
    flags = [np.zeros(n, bool)] * 3
    predictor = Predictor.fit(steps, flags)
    assert predictor.class_context.tolist() == [-1, -1, 0]
    classes = predictor.classes(steps, 2)
    assert set(classes[inside]).isdisjoint(set(classes[np.abs(eta) < 1.0]))  # the barrel never shares the HEC's table
    tokens = predictor.tokens(steps, flags)[2]
    with_classes = sum(entropy.estimated_bits_per_class(tokens, classes))
    assert with_classes < 0.85 * entropy.estimated_bits(tokens)
    again = Predictor.from_arrays(predictor.to_arrays(), 3)
    np.testing.assert_array_equal(again.classes(steps, 2), classes)


def test_a_damaged_predictor_is_refused():
    good = Predictor.empty(3)
    good.context[2], good.knots[2], good.values[2] = 0, np.array([1, 5]), np.array([0, 3])
    good.class_context[2], good.class_edges[2], good.class_groups[2] = 1, np.array([4]), np.array([0, 1])
    arrays = good.to_arrays()
    assert Predictor.from_arrays(arrays, 3).class_groups[2].tolist() == [0, 1]
    layout = arrays[1].copy()
    for bad in (
        [arrays[0][:-1], *arrays[1:]],  # coefficients of the wrong size
        [arrays[0], np.r_[layout[:2], 2, layout[3:]], *arrays[2:]],  # a column's curve reading itself
        [*arrays[:2], np.array([5, 1, 0, 3]), *arrays[3:]],  # knots not increasing
        [*arrays[:2], np.array([1, 5, 0, 2**31 - 1]), *arrays[3:]],  # a value out of range
        [np.r_[arrays[0][:-1], 2**63 - 1], *arrays[1:]],  # a constant out of range
        [arrays[0], np.r_[layout[:8], -1, layout[9:]], *arrays[2:]],  # class groups without a class context
        [arrays[0], np.r_[layout[:8], 2, layout[9:]], *arrays[2:]],  # a class context reading itself
        arrays[:4],  # an array missing
    ):
        with pytest.raises(CodecError, match="residual predictor"):
            Predictor.from_arrays(bad, 3)


def test_a_column_of_tokens_shorter_than_the_chunk_is_refused_not_read_past_its_end():
    predictor, steps = Predictor.empty(2), np.zeros((1000, 2), np.int64, order="F")
    with pytest.raises(CodecError, match="holds 0 values, not 1000"):
        predictor.undo_column(steps, np.zeros(0, np.uint64), 1)


def test_zigzag_orders_small_magnitudes_first():
    assert zigzag(np.array([0, -1, 1, -2, 2])).tolist() == [0, 1, 2, 3, 4]


@settings(max_examples=60, deadline=None)
@given(edges=st.lists(st.integers(-2**40, 2**40), max_size=60, unique=True),  # both ways: <= 32 edges and more
       positions=st.lists(st.integers(-2**41, 2**41), min_size=1, max_size=60))
def test_the_class_bin_of_a_value_is_the_number_of_edges_at_or_below_it(edges, positions):
    from hepae.codecs import kernels

    edges, positions = np.sort(np.array(edges, np.int64)), np.array(positions, np.int64)
    expected = [sum(e <= p for e in edges.tolist()) for p in positions.tolist()]
    assert kernels.bins(positions, edges).tolist() == expected


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(2, 6), n=st.integers(1, 40))
def test_a_prediction_is_the_fixed_point_sum_rounded_to_nearest_plus_the_curve(seed, k, n):
    rng = np.random.default_rng(seed)
    predictor = Predictor.empty(k)
    predictor.coefficients[:] = rng.integers(-2**20, 2**20, (k, k + 1)) * rng.integers(0, 2, (k, k + 1))
    steps = rng.integers(-2**29, 2**29, (n, k))
    j, context = k - 1, int(rng.integers(0, k - 1))
    predictor.context[j] = context
    predictor.knots[j] = np.unique(rng.integers(-2**29, 2**29, 5))
    predictor.values[j] = rng.integers(-2**20, 2**20, len(predictor.knots[j]))
    got = predictor.predict(np.asfortranarray(steps), j)
    c = predictor.coefficients[j].tolist()
    for row, g in zip(steps.tolist(), got.tolist()):
        linear = (c[k] + 2**15 + sum(s * w for s, w in zip(row[:j], c[:j]))) // 2**16  # exact Python integers
        assert g == linear + int(curve(np.array([row[context]]), predictor.knots[j], predictor.values[j])[0])


@given(positions=st.lists(st.integers(-1000, 1000), min_size=1, max_size=300),
       seed=st.integers(0, 2**32 - 1))
@settings(max_examples=60, deadline=None)
def test_a_context_curve_is_valued_the_lower_median_remainder_of_each_bin(positions, seed):
    """The compiled per-bin medians give what sorting all rows by (bin, remainder) gives."""
    from hepae.codecs.residual_prediction import _CurveBins

    position = np.asarray(positions, np.int64)
    remainder = np.random.default_rng(seed).integers(-50, 50, len(position))
    curve_bins = _CurveBins.of(position)
    _, values = curve_bins.fit(remainder)
    edges = np.unique(np.quantile(position, np.linspace(0, 1, 49)[1:-1], method="nearest"))
    bins = np.searchsorted(edges, position, side="right")
    medians = [int(np.sort(remainder[bins == b])[(np.count_nonzero(bins == b) - 1) // 2]) for b in np.unique(bins)]
    assert values.tolist() == [m for m, kept in zip(medians, curve_bins.keep) if kept]


@given(columns=st.integers(1, 6), n=st.integers(1, 300), spread=st.integers(1, 2000), seed=st.integers(0, 2**32 - 1),
       huge=st.booleans())
@settings(max_examples=60, deadline=None)
def test_every_candidate_curve_screened_at_once_is_the_curve_fitted_alone(columns, n, spread, seed, huge):
    """The fit screens all earlier columns' curves in one compiled pass; each row is what fitting that column's
    curve alone and subtracting it gives (medians found by a walk in remainder order, not by sorting bins; medians
    beyond the curves' range clipped to it, as there)."""
    from hepae.codecs import kernels
    from hepae.codecs.residual_prediction import _MAX_CURVE, _CurveBins

    rng = np.random.default_rng(seed)
    x = rng.integers(-spread, spread, (n, columns)) * rng.integers(1, 3, columns)  # ties and repeats too
    remainder = rng.integers(-3 * spread, 3 * spread, n) * (2**21 if huge else 1)  # up to +-2**32: clipped
    candidates = [_CurveBins.of(x[:, c]) for c in range(columns)]
    screened = kernels.screened_curves(
        remainder, np.ascontiguousarray(x.T), np.stack([b.rows for b in candidates]),
        *(np.concatenate([getattr(b, a) for b in candidates]) for a in ("starts", "ends", "keep", "knots")),
        np.cumsum([0, *(len(b.starts) for b in candidates)]), np.cumsum([0, *(len(b.knots) for b in candidates)]),
        _MAX_CURVE)
    assert screened[0].tolist() == remainder.tolist()
    for c, bins in enumerate(candidates):
        knots, values = bins.fit(remainder)
        assert screened[c + 1].tolist() == (remainder - curve(x[:, c], knots, values)).tolist()


@given(n=st.integers(1, 200), n_bins=st.lists(st.integers(1, 17), min_size=1, max_size=5),
       seed=st.integers(0, 2**32 - 1))
@settings(max_examples=60, deadline=None)
def test_class_groups_are_the_bins_ranked_by_spread_and_cut_at_the_largest_gaps(n, n_bins, seed):
    """The compiled grouping of class-context bins gives what numpy's bincount, stable argsorts and cumsum give."""
    from hepae.codecs import kernels

    rng = np.random.default_rng(seed)
    weights = np.log2(rng.integers(0, 50, n) + 1.0)  # equal spreads and equal gaps are common
    row_bins = np.stack([rng.integers(0, b, n) for b in n_bins])
    groups = kernels.spread_groups(weights, row_bins, np.array(n_bins), 4)
    for c, size in enumerate(n_bins):
        spread = np.bincount(row_bins[c], weights, size) / np.maximum(np.bincount(row_bins[c], minlength=size), 1)
        order = np.argsort(spread, kind="stable")
        cuts = np.zeros(size, np.int64)
        cuts[1 + np.sort(np.argsort(-np.diff(spread[order]), kind="stable")[:3])] = 1
        expected = np.empty(size, np.int64)
        expected[order] = np.cumsum(cuts)
        assert groups[c, :size].tolist() == expected.tolist()


@given(n=st.integers(16, 400), k=st.integers(1, 8), scale=st.integers(1, 2**28), dependent=st.booleans(),
       offset=st.sampled_from([0, 10**6, -(10**8)]), seed=st.integers(0, 2**32 - 1))
@settings(max_examples=60, deadline=None)
def test_least_squares_from_one_product_of_the_rows_fits_as_well_as_a_fit_on_the_rows(n, k, scale, dependent, offset,
                                                                                     seed):
    """The fits of all the columns come from one product of the rows (each column's fit a small solve): their
    residuals are as small as least squares on the rows gives, for columns of any size (steps up to 2**28), far
    from zero against their spread (an offset of 1e8 steps), and where a column is a multiple of another."""
    from hepae.codecs.residual_prediction import _Gram

    rng = np.random.default_rng(seed)
    x = rng.integers(-scale, scale, (n, k + 1), endpoint=True) // rng.integers(1, 1000, k + 1)
    if dependent and k > 1:
        x[:, 1] = 3 * x[:, 0]  # no unique solution
    x += offset
    gram = _Gram.of(x)
    target = x[:, k].astype(np.float64)
    solution = gram.solve(list(range(k)), k)
    center = x.mean(axis=0)  # the reference fit, on centered columns (well conditioned whatever the offset)
    design = np.column_stack([x[:, :k] - center[:k], np.ones(n)])
    expected, *_ = np.linalg.lstsq(design, target - center[k], rcond=None)
    best = np.sum((target - center[k] - design @ expected) ** 2)
    predicted = x[:, :k].astype(np.float64) @ solution[:-1] + solution[-1]
    spread = np.sum((target - center[k]) ** 2)
    assert np.sum((target - predicted) ** 2) <= best * (1 + 1e-6) + 1e-9 * spread + 1e-6 * n
