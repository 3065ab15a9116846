"""Normalizations: exact inverses, fitting on training data only, JSON configs, clear domain errors."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hepae.errors import NotFittedError, TransformDomainError
from hepae.features import load_featureset
from hepae.transforms import Affine, ColumnTransform, Identity, Log10, Quantile, Standard, get_transform

SEED_4D = load_featureset("atlas-jets-4d").make_normalization()


def test_seed_custom_4d_constants_in_gev():
    # pt' = (log10(pt/GeV) - 1.3)/1.2, eta' = eta/5, phi' = phi/3, m' = log10(m/GeV + 1)/1.8
    x = np.array([[100e3, 2.5, -1.5, 9e3]])
    expected = [(2.0 - 1.3) / 1.2, 0.5, -0.5, 1.0 / 1.8]
    np.testing.assert_allclose(SEED_4D.transform(x)[0], expected, rtol=1e-12)


finite_positive = st.floats(min_value=1e-3, max_value=1e7, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(arrays(np.float64, st.integers(1, 50), elements=finite_positive))
def test_log10_inverses_of_the_seed_pt_and_m_transforms_are_exact_in_float64(x):
    # m' = log10(m/GeV + 1)/1.8 stays exact for light jets too (log1p/expm1 form, no cancellation)
    for t in (Log10(multiply=1e-3, add=1.0, offset=0.0, scale=1.8), Log10(multiply=1e-3, offset=1.3, scale=1.2)):
        np.testing.assert_allclose(t.inverse_transform(t.transform(x)), x, rtol=1e-13)


@settings(max_examples=200, deadline=None)
@given(arrays(np.float32, st.integers(1, 50), elements=st.floats(1.0, 1e7, width=32)))
def test_log10_inverse_is_exact_to_float32_round_off(x):
    t = Log10(multiply=1e-3, offset=1.3, scale=1.2)
    y = t.transform(x)
    assert y.dtype == np.float32
    back = t.inverse_transform(y)
    assert back.dtype == np.float32
    # one float32 rounding of y (|y| <~ 4) amplified by ln(10)*scale: a few ulp of x
    np.testing.assert_allclose(back, x, rtol=8 * np.finfo(np.float32).eps)


@settings(max_examples=200, deadline=None)
@given(arrays(np.float32, st.integers(1, 50), elements=st.floats(-10, 10, width=32)))
def test_affine_and_identity_inverses_are_exact_to_float32_round_off(x):
    for t in (Affine(shift=0.5, scale=3.0), Identity()):
        np.testing.assert_allclose(t.inverse_transform(t.transform(x)), x, rtol=2e-7, atol=2e-7)


def test_standard_is_fitted_on_training_data_only_and_streams():
    rng = np.random.default_rng(0)
    train, test = rng.normal(5.0, 2.0, 10_000), rng.normal(-3.0, 0.5, 1000)
    t = Standard().fit(train)
    assert t.mean_ == pytest.approx(train.mean()) and t.scale_ == pytest.approx(train.std())
    t.transform(test)  # applying to test data does not refit
    assert t.mean_ == pytest.approx(train.mean())
    streamed = Standard()
    for chunk in np.array_split(train, 7):
        streamed.partial_fit(chunk)
    assert streamed.mean_ == pytest.approx(t.mean_, rel=1e-12) and streamed.scale_ == pytest.approx(t.scale_, rel=1e-12)
    np.testing.assert_allclose(t.inverse_transform(t.transform(test)), test, rtol=1e-12)
    np.testing.assert_array_equal(Standard().fit_transform(train), t.transform(train))  # fit(x).transform(x)


def test_standard_must_be_fitted_before_use():
    with pytest.raises(NotFittedError):
        Standard().transform(np.ones(3))


@pytest.mark.parametrize(
    "transform", [Identity(), Affine(1.0, 5.0), Log10(1e-3, 1.0, 0.0, 1.8), Standard().fit(np.arange(10.0))]
)
def test_config_round_trips_through_json(transform):
    config = json.loads(json.dumps(transform.get_config()))
    rebuilt = get_transform(config)
    assert rebuilt == transform
    x = np.linspace(0.5, 9.5, 7)
    np.testing.assert_array_equal(rebuilt.transform(x), transform.transform(x))


def test_column_transform_round_trip_and_config():
    rng = np.random.default_rng(1)
    x = np.column_stack([rng.uniform(2e4, 2e6, 1000), rng.uniform(-4.5, 4.5, 1000),
                         rng.uniform(-np.pi, np.pi, 1000), rng.uniform(0, 2e5, 1000)]).astype(np.float32)
    y = SEED_4D.transform(x)
    assert y.dtype == np.float32 and np.abs(y).max() < 3
    np.testing.assert_allclose(SEED_4D.inverse_transform(y), x, rtol=1e-6, atol=1e-6)
    rebuilt = ColumnTransform.from_config(json.loads(json.dumps(SEED_4D.get_config())))
    assert rebuilt == SEED_4D


def test_values_outside_a_log_domain_raise_a_clear_error_instead_of_nan():
    x = np.array([[3e4, 0.1, 0.2, 5e3], [-1.0, 0.1, 0.2, 5e3]], np.float32)
    with pytest.raises(TransformDomainError, match=r"1 value\(s\) of 'pt'.*log10.*x > 0"):
        SEED_4D.check_domain(x)
    with pytest.raises(TransformDomainError, match="'eta'"):
        SEED_4D.check_domain(np.array([[3e4, np.nan, 0.2, 5e3]]))
    SEED_4D.check_domain(np.array([[3e4, 0.1, 0.2, 0.0]]))  # massless jets are fine: log10(m + 1)


@settings(max_examples=100, deadline=None)
@given(arrays(np.float64, st.integers(2, 300), elements=st.floats(-1e6, 1e6, allow_nan=False)))
def test_quantile_map_is_a_bijection_with_an_exact_inverse(x):
    q = Quantile(n_quantiles=50).fit(x)
    y = q.transform(x)
    assert np.all(np.diff(y[np.argsort(x, kind="stable")]) >= -1e-12)  # monotone (up to round-off)
    scale = max(1.0, np.abs(x).max())
    np.testing.assert_allclose(q.inverse_transform(y), x, rtol=1e-9, atol=1e-9 * scale)
    outside = np.array([x.min() - 1.0, x.max() + 1.0])  # beyond the training range: extrapolated, not clipped
    np.testing.assert_allclose(q.inverse_transform(q.transform(outside)), outside, rtol=1e-9, atol=1e-9 * scale)


def test_quantile_maps_training_data_to_uniform_minus_one_one_and_streams():
    rng = np.random.default_rng(3)
    x = np.concatenate([np.zeros(7000), rng.exponential(0.03, 3000)])  # a point mass, like OotFracClusters10
    q = Quantile(n_quantiles=200, subsample=50_000).fit(x)
    y = q.transform(x)
    assert y.min() == -1.0 and y.max() == 1.0
    assert np.mean(y[x > 0] > 0.5) > 0.5  # the continuous tail is spread over the upper range
    streamed = Quantile(n_quantiles=200, subsample=50_000)
    for chunk in np.array_split(x, 5):
        streamed.partial_fit(chunk)
    assert streamed == q  # all values fit in the reservoir: the same knots, chunked or not
    with pytest.raises(NotFittedError):
        Quantile().transform(x)
    rebuilt = get_transform(json.loads(json.dumps(q.get_config())))
    np.testing.assert_array_equal(rebuilt.transform(x), y)


def test_quantile_reservoir_keeps_memory_bounded_and_is_seeded():
    rng = np.random.default_rng(4)
    a, b = Quantile(subsample=1000, seed=1), Quantile(subsample=1000, seed=1)
    for _ in range(20):
        chunk = rng.normal(size=5000)
        a.partial_fit(chunk)
        b.partial_fit(chunk)
    assert len(a._reservoir) == 1000 and a == b
    assert abs(np.median(a.quantiles_)) < 0.15


def test_negative_multiply_log_for_the_seed_negative_energy_transform():
    t = Log10(multiply=-1e-3, add=1.0, scale=1.6)  # NegativeE' = log10(1 - NegativeE/GeV)/1.6, NegativeE <= 0
    x = np.array([0.0, -181.8, -8648.0])
    np.testing.assert_allclose(t.inverse_transform(t.transform(x)), x, rtol=1e-13, atol=1e-12)
    assert "x < 1000" in t.describe_domain()
    assert t.domain_violations(np.array([2000.0, 999.0])).tolist() == [True, False]
