"""Codecs: error bounds that hold for every value, mantissa truncation, configs as JSON, files that shrink."""

import json

import numpy as np
import pytest
import uproot
from hypothesis import given, settings
from hypothesis import strategies as st

import hepae
from hepae.cli import main
from hepae.codecs import (
    AE,
    ErrorBound,
    Lossless,
    Truncate,
    apply_residuals,
    entropy,
    get_codec,
    quantize_residuals,
    truncate_mantissa,
    within_bound,
)
from hepae.codecs.ae import _CodedChunk
from hepae.codecs.bounds import EXCEPTION
from hepae.errors import CodecError, FeatureSetError, UnknownLayoutError

FS = "atlas-jets-4d"


def bind(codec, model):
    """The codec bound to the model's feature set and to the model."""
    return codec.bind(model.featureset.column_names, model.featureset.dtype, model)

special = st.sampled_from([0.0, -0.0, 1e-38, -1e-38, 1e-45, np.nan, np.inf, -np.inf, 3.4e38, -3.4e38])
values = st.one_of(st.floats(width=32, allow_nan=False, allow_infinity=False), special)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(values, values), min_size=1, max_size=60), st.sampled_from(["abs", "rel"]),
       st.floats(1e-6, 0.5))
def test_every_value_is_within_its_bound_or_exact(pairs, kind, bound):
    x = np.array([p[0] for p in pairs], dtype=np.float32)
    predicted = np.array([p[1] for p in pairs], dtype=np.float32)  # anything: a good or a useless prediction
    residual, exact = quantize_residuals(x, predicted, kind, bound)
    reco = apply_residuals(predicted, residual, exact, kind, bound)
    assert reco.dtype == np.float32
    assert within_bound(x, reco, kind, bound).all()
    exceptions = residual == EXCEPTION
    np.testing.assert_array_equal(reco[exceptions], x[exceptions])  # NaN, Inf, sign changes: exact
    assert not exceptions[np.isfinite(x) & (x == predicted) & ((x != 0) | (kind == "abs"))].any()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-1e4, 1e4, width=32), min_size=1, max_size=50), st.sampled_from(["abs", "rel"]),
       st.floats(1e-4, 0.1), st.floats(-0.45, 0.45))
def test_the_bound_survives_a_decoder_that_differs_by_less_than_half_the_margin(x, kind, bound, shift):
    """Another machine's decoder may give slightly different predictions: the margin absorbs that."""
    x = np.array(x, dtype=np.float32)
    predicted = x * np.float32(1.01) + np.float32(0.3)
    residual, exact = quantize_residuals(x, predicted, kind, bound, margin=0.1)
    # the other decoder's prediction is off by up to 0.45 * margin/2 * bound (relative: in log space)
    delta = shift * 0.05 * bound
    other = predicted + delta if kind == "abs" else predicted * np.exp(delta)
    reco = apply_residuals(other.astype(np.float32), residual, exact, kind, bound, margin=0.1)
    assert within_bound(x, reco, kind, bound * 1.0001).all()  # float32 rounding of the shifted prediction


def test_error_bound_text_is_parsed_and_checked():
    assert ErrorBound.parse("pt=rel:1e-3") == ErrorBound("pt", "rel", 1e-3)
    assert str(ErrorBound.parse(" eta = abs : 0.001 ")) == "eta=abs:0.001"
    odd = ErrorBound.parse("pt=rel:1.23456789e-3")
    assert ErrorBound.parse(str(odd)) == odd  # the metadata keeps the exact bound
    for bad in ("pt=1e-3", "pt=rel:0", "pt=rel:1.5", "pt=abs:nan", "=abs:1"):
        with pytest.raises(CodecError, match="error bound"):
            ErrorBound.parse(bad)


def _reference_truncation(x: np.ndarray, bits: int) -> np.ndarray:
    """Round the significand to ``bits`` bits after the leading one, with frexp/ldexp."""
    m, e = np.frexp(x.astype(np.float64))  # x = m * 2**e, 0.5 <= |m| < 1
    scaled = np.abs(m) * 2.0 ** (bits + 1)
    rounded = np.sign(m) * np.floor(scaled + 0.5)
    return np.ldexp(rounded, e - bits - 1).astype(np.float32)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False, min_value=-2.0**120, max_value=2.0**120)
                .filter(lambda v: v == 0 or abs(v) > 2.0**-120), min_size=1, max_size=50), st.integers(1, 23))
def test_truncation_matches_a_frexp_reference(x, bits):
    x = np.array(x, dtype=np.float32)
    np.testing.assert_array_equal(truncate_mantissa(x, bits), _reference_truncation(x, bits))


def test_truncation_keeps_inf_and_nan_and_bounds_the_relative_error():
    x = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 1.0, 3.14159, -2.5e-3], dtype=np.float32)
    y = truncate_mantissa(x, 10)
    assert np.isposinf(y[0]) and np.isneginf(y[1]) and np.isnan(y[2]) and y[3] == 0 and np.signbit(y[4])
    assert np.all(np.abs(y[5:] / x[5:] - 1) <= 2.0**-11)


@pytest.mark.parametrize("codec", [Lossless(), Truncate(7), AE(), AE(latent_bits=9), AE(error_bounds=["m=rel:1e-2"]),
                                   AE(latent_bits=6, error_bounds=["pt=rel:1e-3", "eta=abs:2e-3"], margin=0.2)])
def test_codec_configs_round_trip_through_json(codec):
    again = get_codec(json.loads(json.dumps(codec.get_config())))
    assert again == codec and type(again) is type(codec)
    assert repr(again) == repr(codec)


def test_bad_codec_settings_are_refused():
    with pytest.raises(CodecError, match="unknown codec 'zip'"):
        get_codec("zip")
    with pytest.raises(CodecError, match="mantissa_bits must be an integer in 1..23"):
        get_codec({"id": "truncate", "mantissa_bits": 30})
    with pytest.raises(CodecError, match="bad settings for codec 'lossless'"):
        get_codec({"id": "lossless", "bits": 3})
    with pytest.raises(CodecError, match="'1e' is not a number"):
        AE(error_bounds=["pt=rel:1e"])
    with pytest.raises(CodecError, match="more than one error bound"):
        AE(error_bounds=["pt=rel:1e-3", "pt=abs:1"])
    with pytest.raises(CodecError, match="needs error bounds"):
        AE(latent_bits="auto")
    with pytest.raises(CodecError, match="latent_bits must be 'auto' or in 0..24"):
        AE(latent_bits=30)
    with pytest.raises(CodecError, match="every object the same values"):
        AE(latent_bits=0)
    assert AE(error_bounds=["pt=rel:1e-3"]).latent_bits == "auto"  # bounds without bits: chosen per file


def test_ae_codec_keeps_bounds_with_nan_inf_and_out_of_domain_values(models):
    model = models[FS]
    codec = bind(AE(latent_bits=8, error_bounds=["pt=rel:1e-3", "eta=abs:1e-3", "phi=abs:1e-3", "m=rel:1e-2"]), model)
    rng = np.random.default_rng(0)
    n = 2000
    x = np.stack([20e3 * rng.uniform(0, 1, n) ** -0.3, rng.normal(0, 1.5, n), rng.uniform(-3.1, 3.1, n),
                  5e3 * rng.uniform(0.5, 2, n)], axis=1).astype(np.float32)
    x[:5, 0] = [np.nan, np.inf, -50e3, 0.0, 1e-30]  # the log normalization cannot take the first four pT values
    x[5, 1] = np.nan
    x[6, 3] = -1.0
    streams = codec.encode(x)
    assert list(streams) == ["coded"] and streams["coded"].dtype == np.uint8  # one coded byte string per chunk
    reco = codec.decode(streams)
    for j, bound in enumerate(codec.error_bounds):
        assert within_bound(x[:, j], reco[:, j], bound.kind, bound.value).all(), bound
    np.testing.assert_array_equal(reco[:4, 0], x[:4, 0])  # stored exactly
    assert np.isnan(reco[5, 1]) and reco[6, 3] == -1.0


def test_ae_codec_without_bounds_refuses_values_outside_the_domain(models):
    model = models[FS]
    codec = bind(AE(), model)
    x = np.array([[-1.0, 0.0, 0.0, 1.0]], dtype=np.float32)
    with pytest.raises(hepae.errors.TransformDomainError, match="'pt'"):
        codec.encode(x)
    with pytest.raises(FeatureSetError, match="no such column"):
        bind(AE(error_bounds=["mass=rel:1e-3"]), model)


def test_bounded_files_are_smaller_than_lossless_and_keep_every_value(samples, models, tmp_path):
    sample = samples[FS]
    lossless = hepae.compress(sample, tmp_path / "l.root", codec="lossless", featureset=FS, progress=False)
    bounds = ["pt=rel:1e-2", "eta=abs:1e-2", "phi=abs:1e-2", "m=rel:1e-2"]
    bounded = hepae.compress(sample, tmp_path / "b.root", models[FS], codec=AE(latent_bits=6, error_bounds=bounds),
                             progress=False)
    assert bounded["collection_latent_bytes"] < lossless["collection_latent_bytes"]
    hepae.decompress(tmp_path / "b.root", tmp_path / "r.root", progress=False)
    hepae.decompress(tmp_path / "l.root", tmp_path / "lr.root", progress=False)
    exact = hepae.residual_summary(sample, tmp_path / "lr.root", FS)
    assert all(r["max_abs"] == 0 for r in exact.values())
    residuals = hepae.residual_summary(sample, tmp_path / "r.root", FS)
    assert all(r["max_abs"] <= 1e-2 for r in residuals.values()), residuals
    assert bounded["residuals"]["pt"]["max_abs"] == residuals["pt"]["max_abs"]  # the check saw the same values


def test_cli_codecs(samples, model_files, tmp_path, capsys):
    sample = str(samples[FS])
    assert main(["compress", sample, "-o", str(tmp_path / "t.root"), "--codec", "truncate", "--mantissa-bits", "8",
                 "--features", FS, "-q", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["codec"] == {"id": "truncate", "mantissa_bits": 8}
    assert summary["residuals"]["pt"]["max_abs"] <= 2.0**-9
    assert main(["compress", sample, "-o", str(tmp_path / "a.root"), "--codec", "ae", "--features", FS, "-q"]) == 1
    assert "needs a trained model" in capsys.readouterr().err
    assert main(["compress", sample, "-o", str(tmp_path / "a.root"), "-m", str(model_files[FS]), "--error-bound",
                 "pt=relative:1", "-q"]) == 1
    assert "unknown rule 'relative:1'" in capsys.readouterr().err
    assert main(["compress", sample, "-o", str(tmp_path / "a.root"), "-m", str(model_files[FS]), "--latent-bits", "8",
                 "--error-bound", "pt=rel:1e-3", "-q"]) == 0
    assert main(["inspect", str(tmp_path / "a.root")]) == 0
    assert "codec       ae (error_bounds=['pt=rel:0.001'], latent_bits=8, margin=0.1)" in capsys.readouterr().out
    with pytest.raises(SystemExit) as refused:
        main(["compress", sample, "-o", str(tmp_path / "a.root"), "-m", str(model_files[FS]), "--latent-bits", "some"])
    assert refused.value.code == 2
    assert "expected a number of bits or 'auto'" in capsys.readouterr().err
    assert not (tmp_path / "x.root").exists()


def test_auto_latent_bits_spend_bits_only_where_they_pay(samples, models, tmp_path):
    """'auto' chooses per latent dimension; its file is no bigger than fixed choices' (same data)."""
    sample, model = samples[FS], models[FS]
    bounds = ["pt=rel:1e-3", "eta=abs:1e-3", "phi=abs:1e-3", "m=rel:1e-3"]
    sizes = {bits: hepae.compress(sample, tmp_path / f"{bits}.root", model, codec=AE(latent_bits=bits,
                                                                                      error_bounds=bounds),
                                  progress=False)["collection_latent_bytes"] for bits in ("auto", 0, 6)}
    assert sizes["auto"] <= 1.01 * min(sizes[0], sizes[6]), sizes
    hepae.decompress(tmp_path / "auto.root", tmp_path / "r.root", progress=False)
    residuals = hepae.residual_summary(sample, tmp_path / "r.root", FS)
    assert all(r["max_abs"] <= 1e-3 for r in residuals.values()), residuals


def test_residual_prediction_codes_what_the_previous_columns_do_not_tell(models):
    """m/pT is nearly constant in the generated sample: predicted from pT's residual, m costs far less."""
    model = models[FS]
    rng = np.random.default_rng(3)
    n = 20_000
    pt = 20e3 * rng.uniform(0, 1, n) ** -0.3
    x = np.stack([pt, rng.normal(0, 1.5, n), rng.uniform(-3, 3, n), 0.1 * pt * rng.lognormal(0, 0.03, n)],
                 axis=1).astype(np.float32)
    codec = bind(AE(latent_bits=0, error_bounds=["pt=rel:1e-3", "eta=abs:1e-3", "phi=abs:1e-3", "m=rel:1e-3"]), model)
    chunk = _CodedChunk.read(codec.encode(x)["coded"], np.float32)
    bits = [entropy.estimated_bits(t, tables=False) / n for t in chunk.residual_tokens]
    assert chunk.predictor.coefficients[3, 0] > 0.9 * 2**16  # m's residual follows pT's
    # log(m) - log(pT) has a 3 % spread (~6 bits at steps of 0.18 %); log(pT) spans an order of magnitude (~9)
    assert bits[3] < bits[0] - 2, bits
    reco = codec.decode({"coded": codec.encode(x)["coded"]})
    assert all(within_bound(x[:, j], reco[:, j], b.kind, b.value).all() for j, b in enumerate(codec.error_bounds))


def test_a_column_equal_to_an_earlier_one_with_the_same_bound_costs_nothing(models):
    """The stored constant prediction sits on each column's quantization grid: equal values give equal
    steps (OotFracClusters5 = OotFracClusters10 in most jets), not a rounding jitter between two grids."""
    model = models[FS]
    rng = np.random.default_rng(4)
    pt = (20e3 * rng.uniform(0, 1, 5000) ** -0.3).astype(np.float32)
    x = np.stack([pt, rng.normal(0, 1.5, 5000), rng.uniform(-3, 3, 5000), pt], axis=1).astype(np.float32)
    codec = bind(AE(latent_bits=0, error_bounds=["pt=rel:1e-3", "eta=abs:1e-3", "phi=abs:1e-3", "m=rel:1e-3"]), model)
    coded = codec.encode(x)["coded"]
    assert len(np.unique(_CodedChunk.read(coded, np.float32).residual_tokens[3])) == 1  # m: "same as pT" throughout
    reco = codec.decode({"coded": coded})
    np.testing.assert_allclose(reco[:, 3], reco[:, 0], rtol=1e-6)  # the same step from another constant: ~1 ulp


def test_tables_chosen_by_an_earlier_decoded_column_come_back(models):
    """The entropy coder's classes for m taken from eta's bins: decoding rebuilds them column by column."""
    model = models[FS]
    rng = np.random.default_rng(7)
    n = 30_000
    pt = 20e3 * rng.uniform(0, 1, n) ** -0.3
    eta = rng.normal(0, 1.6, n)
    m = 0.1 * pt * np.where(np.abs(eta) > 1.5, rng.lognormal(0, 0.5, n), rng.lognormal(0, 0.002, n))
    x = np.stack([pt, eta, rng.uniform(-3, 3, n), m], axis=1).astype(np.float32)
    codec = bind(AE(latent_bits=0, error_bounds=["pt=rel:1e-3", "eta=abs:1e-3", "phi=abs:1e-3", "m=rel:1e-3"]), model)
    coded = codec.encode(x)["coded"]
    assert _CodedChunk.read(coded, np.float32).predictor.class_context[3] == 1  # m's tables by eta
    reco = codec.decode({"coded": coded})
    assert all(within_bound(x[:, j], reco[:, j], b.kind, b.value).all() for j, b in enumerate(codec.error_bounds))


def test_without_latent_values_the_file_carries_no_network(samples, models, tmp_path, capsys):
    """0 latent bits: every object gets the same prediction, kept in the chunk; no decoder is embedded."""
    sample, model = samples[FS], models[FS]
    bounds = ["pt=rel:1e-3", "eta=abs:1e-3", "phi=abs:1e-3", "m=rel:1e-3"]
    summary = hepae.compress(sample, tmp_path / "c.root", model, codec=AE(latent_bits=0, error_bounds=bounds),
                             progress=False)
    assert summary["decoder_bytes"] == 0
    with uproot.open(tmp_path / "c.root") as f:
        assert "hepae_decoder" not in f
    assert main(["inspect", str(tmp_path / "c.root")]) == 0
    assert "none embedded: no chunk keeps a latent value" in capsys.readouterr().out
    codec = bind(AE(latent_bits=0, error_bounds=bounds), model)
    x = np.array([[30e3, 0.5, 1.0, 4e3], [50e3, -1.0, -2.0, 6e3]], dtype=np.float32)
    assert _CodedChunk.read(codec.encode(x)["coded"], np.float32).margin == 0.01  # no network: exact arithmetic
    tiny = bind(AE(latent_bits=0, error_bounds=["pt=rel:1e-6", "eta=abs:1e-6"]), model)
    assert tiny._constant_margin() == 0.1  # float32 rounding needs the whole default margin there
    hepae.decompress(tmp_path / "c.root", tmp_path / "r.root", progress=False)
    residuals = hepae.residual_summary(sample, tmp_path / "r.root", FS)
    assert all(r["max_abs"] <= 1e-3 for r in residuals.values()), residuals
    with pytest.raises(CodecError, match="give error bounds for \\['phi', 'm'\\]"):
        bind(AE(error_bounds=bounds[:2]), model)


def _bounded(columns):
    return get_codec({"id": "bounded", "error_bounds": [f"{c}=rel:1e-3" for c in columns]}).bind(columns, np.float32)


def test_exact_zeros_under_a_relative_bound_cost_a_fraction_of_a_bit_not_four_bytes():
    """Zero is an exception under a relative bound (no relative error is small enough), its exact value stored. Chunk
    layout 5 marks which exceptions are +0.0: in one byte when all of them are, else with an entropy-coded bit each.
    A quantity that is mostly 0 (MET phi without MET) does not leave ROOT's compression to squeeze 4 bytes per zero,
    not even beside other exceptions (a -0.0 here, the far values of an exact column); those are stored as they are."""
    rng = np.random.default_rng(3)
    x = np.where(rng.uniform(size=(4000, 2)) < 0.7, 0, rng.normal(size=(4000, 2))).astype(np.float32)
    codec = _bounded(["a", "b"])
    coded = codec.encode(x)["coded"]
    arrays = entropy.unpack_arrays(coded)
    assert arrays[0][0] == 6 and len(arrays[9]) == 0 and arrays[13].dtype == np.uint8 and arrays[13].tolist() == [0]

    def assert_decoded(values):
        decoded = codec.decode(codec.encode(values))
        zero = values == 0
        np.testing.assert_array_equal(decoded[zero].view(np.uint32), values[zero].view(np.uint32))  # -0.0 too
        assert (np.abs(decoded[~zero] - values[~zero]) <= 1e-3 * np.abs(values[~zero])).all()

    assert_decoded(x)
    with_negative_zero = x.copy()
    with_negative_zero[0, 0] = -0.0
    mixed = codec.encode(with_negative_zero)["coded"]
    arrays = entropy.unpack_arrays(mixed)
    assert arrays[9].dtype == np.float32 and arrays[9].view(np.uint32).tolist() == [0x80000000]
    assert len(mixed) < len(coded) + 200 < len(coded) + 4 * int((x == 0).sum()) // 20  # not 4 bytes per zero
    assert_decoded(with_negative_zero)


@pytest.mark.parametrize(("index", "stored", "message"), [
    (9, np.array([1], np.uint8), "wrong type"),  # values that are not floats
    (9, np.zeros(3, np.float32), "does not match its exceptions"),  # every exception is +0.0: no value is stored
    (13, np.array([0, 0], np.uint8), "zero mark of its exact values is damaged"),
    (13, np.zeros(1, np.float32), "wrong type"),
])
def test_exact_values_that_do_not_match_the_exceptions_are_refused(index, stored, message):
    x = np.where(np.arange(300)[:, None] % 3 == 0, 0, np.linspace(1, 2, 300)[:, None] * [1, 2]).astype(np.float32)
    codec = _bounded(["a", "b"])
    arrays = entropy.unpack_arrays(codec.encode(x)["coded"])
    arrays[index] = stored
    with pytest.raises(CodecError, match=message):
        codec.decode({"coded": entropy.pack_arrays(arrays), "signs": codec.encode(x)["signs"]})


BITS = st.one_of(st.integers(0, 2**32 - 1), st.sampled_from([0, 0x80000000, 0x3F800000, 0xBF800000, 0x7FA00001,
                                                             0xFFC00000, 0x7F800000, 0x00000001, 0x7F7FFFFF]))


@settings(max_examples=60, deadline=None)
@given(bits=st.lists(st.tuples(BITS, BITS), min_size=0, max_size=300), dtype=st.sampled_from([np.float32, np.float64]),
       zeros=st.floats(0, 1))
def test_exact_columns_come_back_bit_for_bit_whatever_their_values(bits, dtype, zeros):
    """The bounded codec's exact columns (the floats a profile keeps exact, coded with their collection): any bits at
    all, signalling NaNs with payloads, -0.0, subnormals, infinities, beside a bounded column, decode to the same
    bits, in float32 and float64. Values far from the center are exceptions, stored as they are."""
    raw = np.array(bits, np.uint64).reshape(-1, 2)
    if dtype == np.float64:  # the same bit patterns, widened: exponents and payloads of all kinds
        raw = (raw << np.uint64(32)) | raw
    x = raw.astype(np.uint32 if dtype == np.float32 else np.uint64).view(dtype)
    x[np.random.default_rng(0).uniform(size=x.shape) < zeros] = 0.0  # zero-inflated, as MET is
    codec = get_codec({"id": "bounded", "error_bounds": ["a=abs:1e-3"], "exact": ["b"]}).bind(["a", "b"], dtype)
    decoded = codec.decode(codec.encode(x))
    unsigned = np.uint32 if dtype == np.float32 else np.uint64
    assert decoded[:, 1].view(unsigned).tolist() == x[:, 1].view(unsigned).tolist()


def test_steps_of_an_exact_column_beyond_the_bits_of_a_float_are_refused():
    """A writer's steps always land on a float's bits; a damaged (or crafted) chunk's may not, and is refused rather
    than wrapped around into some other value."""
    from hepae.codecs.bounds import apply_residuals

    tiny = np.float32(1e-45)  # magnitude bits 1
    for step in (-5, 2**31 - 1):
        with pytest.raises(CodecError, match="beyond the bits of its floats"):
            apply_residuals(tiny, np.array([step], np.int64), np.zeros(1, np.float32), "exact", 0.0)
    assert apply_residuals(tiny, np.array([-1], np.int64), np.zeros(1, np.float32), "exact", 0.0).tolist() == [0.0]


def test_exact_columns_cost_what_their_values_hold_not_four_bytes_each():
    """A 0/1 flag, a quantity that is 0 in most objects, a sign: each kept exact for a fraction of the 4 bytes a
    float32 has (the center and the sign stream take the redundancy); a full-precision float costs its entropy."""
    rng = np.random.default_rng(5)
    n = 20_000
    pt = rng.exponential(40, n).astype(np.float32)
    columns = {"flag": (rng.uniform(size=n) < 0.05).astype(np.float32),
               "met": np.where(rng.uniform(size=n) < 0.75, 0, pt).astype(np.float32),
               "charge": rng.choice([-1.0, 1.0], n).astype(np.float32),
               "pt_exact": pt}
    bytes_per_value = {}
    for name, values in columns.items():
        codec = get_codec({"id": "bounded", "error_bounds": ["eta=abs:1e-3"], "exact": [name]}).bind(["eta", name],
                                                                                                    np.float32)
        x = np.column_stack([rng.normal(size=n), values]).astype(np.float32)
        alone = get_codec({"id": "bounded", "error_bounds": ["eta=abs:1e-3"]}).bind(["eta"], np.float32)
        streams, without = codec.encode(x), alone.encode(x[:, :1])
        bytes_per_value[name] = (sum(map(len, streams.values())) - sum(map(len, without.values()))) / n
        assert codec.decode(streams)[:, 1].view(np.uint32).tolist() == values.view(np.uint32).tolist()
    assert bytes_per_value["flag"] < 0.07 and bytes_per_value["charge"] < 0.15  # about their entropy (0.036, 0.125)
    assert bytes_per_value["met"] < 1.0  # the zeros a fraction of a bit, the other quarter ~3.3 bytes each
    assert bytes_per_value["pt_exact"] < 3.4  # 23 random mantissa bits and an exponent that varies little


def test_a_chunk_of_an_unknown_layout_is_refused_by_name():
    x = np.linspace(1, 2, 600, dtype=np.float32).reshape(-1, 2)
    codec = _bounded(["a", "b"])
    streams = codec.encode(x)
    arrays = entropy.unpack_arrays(streams["coded"])
    arrays[0][0] = 2
    with pytest.raises(UnknownLayoutError, match=r"layout 2, not one of \[3, 4, 5, 6\]"):
        codec.decode({**streams, "coded": entropy.pack_arrays(arrays)})


@pytest.mark.parametrize(("exact", "layout"), [(np.array([2.5], np.float64), 5), (np.array([2], np.int32), 5),
                                               (np.array([2.5], np.float64), 4), (np.array([2], np.int32), 4),
                                               (np.array([0], np.uint8), 3)])
def test_exact_values_of_another_type_are_refused_not_cast(exact, layout):
    """A float32 codec's chunk with one exception: float64 or integer exact values (layouts 4 and 5), or the all-zero
    mark in a layout-3 chunk, would silently change bits if cast."""
    x = np.linspace(1, 2, 600, dtype=np.float32).reshape(-1, 2)
    x[5, 0] = -1.0  # a sign change under a relative bound: an exception whose value is stored
    codec = _bounded(["a", "b"])
    streams = codec.encode(x)
    arrays = entropy.unpack_arrays(streams["coded"])
    arrays.pop()  # no columns sorted within events before layout 6
    if layout < 5:
        arrays.pop()  # no zero mark before layout 5
    arrays[0][0], arrays[9] = layout, exact
    with pytest.raises(CodecError, match="exact values"):
        codec.decode({**streams, "coded": entropy.pack_arrays(arrays)})
