"""ATLAS 27D jets: the seed's variables and normalization, exact integers, the 27-200-200-200-N grid."""

import numpy as np
import pytest
import uproot

import hepae
from hepae.errors import TransformDomainError
from hepae.io.tensors import iterate_collection
from roundtrip_checks import assert_passthrough_identical

FS = hepae.load_featureset("atlas-jets-27d")


@pytest.fixture(scope="module")
def sample27(tmp_path_factory):
    return hepae.make_sample(tmp_path_factory.mktemp("27d") / "jets27.root", "atlas-jets-27d", n_events=1000, seed=5)


def test_the_27_variables_in_the_seed_order():
    assert FS.column_names == [
        "pt", "eta", "phi", "m", "ActiveArea", "ActiveArea4vec_eta", "ActiveArea4vec_m", "ActiveArea4vec_phi",
        "ActiveArea4vec_pt", "AverageLArQF", "NegativeE", "HECQuality", "LArQuality", "Width", "WidthPhi",
        "CentroidR", "DetectorEta", "LeadingClusterCenterLambda", "LeadingClusterPt", "LeadingClusterSecondLambda",
        "LeadingClusterSecondR", "N90Constituents", "EMFrac", "HECFrac", "Timing", "OotFracClusters10",
        "OotFracClusters5"]
    assert FS.branches[4] == "AntiKt4EMTopoJetsAuxDyn.ActiveArea" and FS.branches[3] == "AntiKt4EMTopoJetsAux.m"
    assert [c.name for c in FS.columns if c.lossless] == ["N90Constituents"]


def test_seed_27d_constants():
    norm = FS.make_normalization()
    x = np.zeros((1, 27))
    x[0, :4] = [100e3, 2.5, 1.5, 9e3]
    x[0, 6], x[0, 10], x[0, 15], x[0, 18], x[0, 25] = 0.18, -9000.0, 1000.0, 10e3, 1.0
    y = norm.transform(x)[0]
    assert y[0] == pytest.approx((2 - 1.3) / 1.2) and y[1] == pytest.approx(0.5) and y[2] == pytest.approx(0.5)
    assert y[6] == pytest.approx(1 - 0.15)  # ActiveArea4vec_m / 0.18 - 0.15
    assert y[10] == pytest.approx(1 / 1.6)  # log10(1 - NegativeE/GeV) / 1.6
    assert y[15] == pytest.approx(0.0)  # (log10(CentroidR) - 3) / 0.8
    assert y[18] == pytest.approx(1 / 1.2)  # log10(LeadingClusterPt/GeV) / 1.2
    assert y[25] == pytest.approx(np.log10(2) / 0.3)  # log10(OotFracClusters10 + 1) / 0.3
    np.testing.assert_allclose(norm.inverse_transform(norm.transform(x)), x, rtol=1e-12, atol=1e-9)


def test_values_outside_the_27d_log_domains_are_refused_not_nan():
    norm = FS.make_normalization()
    x = np.ones((2, 27))
    x[:, 0] = 5e4
    x[:, 15] = 2000.0
    x[1, 10] = 1500.0  # NegativeE > 1 GeV: 1 - NegativeE/GeV < 0
    with pytest.raises(TransformDomainError, match="'NegativeE'.*x < 1000"):
        norm.check_domain(x)
    x[1, 10], x[1, 15] = -5.0, 0.0  # CentroidR <= 0
    with pytest.raises(TransformDomainError, match="'CentroidR'.*x > 0"):
        norm.check_domain(x)


def test_generated_27d_sample_has_the_documented_correlations(sample27):
    (chunk,) = iterate_collection(sample27, FS)
    v = {name: chunk.values[:, j] for j, name in enumerate(FS.column_names)}
    assert np.corrcoef(v["eta"], v["DetectorEta"])[0, 1] > 0.999
    assert np.corrcoef(v["eta"], v["ActiveArea4vec_eta"])[0, 1] > 0.99
    assert np.all(v["LeadingClusterPt"] < v["pt"])
    n90 = v["N90Constituents"]
    assert np.all(n90 == np.round(n90)) and n90.min() >= 1
    assert n90[v["pt"] > 1e5].mean() > n90[v["pt"] < 3e4].mean()  # grows with pT
    assert np.all((v["EMFrac"] >= 0) & (v["EMFrac"] <= 1) & (v["HECFrac"] >= 0) & (v["HECFrac"] <= 1))
    assert np.all(v["OotFracClusters5"] >= v["OotFracClusters10"]) and np.all(v["NegativeE"] <= 0)


@pytest.mark.parametrize("latent", [8, 20])
def test_27d_round_trip_with_the_seed_grid_network(sample27, tmp_path, latent):
    model = hepae.train(sample27, FS, latent=latent, arch="AE_bn_LeakyReLU", hidden=[200, 200, 200], epochs=6,
                        batch_size=256, max_lr=1e-2, progress=False)  # the seed's 27D grid used lr 1e-2..3e-2
    assert model.arch.layout == f"27-200-200-200-{latent}-200-200-200-27"
    compressed, reco = tmp_path / "c.root", tmp_path / "r.root"
    summary = hepae.compress(sample27, compressed, model, progress=False)
    hepae.decompress(compressed, reco, progress=False)
    with uproot.open(compressed) as f:
        keys = f["CollectionTree"].keys()
        assert "AntiKt4EMTopoJetsAuxDyn.N90Constituents" in keys  # carried exactly
        assert not set(FS.compressed_branches) & set(keys)
        assert len([k for k in f["hepae_streams"].keys() if k.startswith("latent_")]) == latent
    assert summary["n_objects"] > 0
    # every branch that was not compressed (N90Constituents included) is bit-identical
    compared = assert_passthrough_identical(sample27, reco, "CollectionTree", set(FS.compressed_branches))
    assert "AntiKt4EMTopoJetsAuxDyn.N90Constituents" in compared
    residuals = hepae.residual_summary(sample27, reco, FS)
    assert residuals["N90Constituents"]["max_abs"] == 0
    assert all(np.isfinite(r["std"]) for r in residuals.values())
    # 6 epochs on 2.7k jets is far from converged; it must still beat "predict the mean" clearly
    (chunk,) = iterate_collection(sample27, FS)
    assert residuals["eta"]["std"] < 0.5 * chunk.values[:, 1].std()
    assert residuals["pt"]["width68"] < 0.5
