"""Physics checks with vector, and the reconstruction check that compress reports."""

import numpy as np

import hepae
from hepae.features import load_featureset
from hepae.io.tensors import iterate_collection
from hepae.quality.physics import count_unphysical


def _featureset(names):
    document = hepae.load_featureset("nanoaod-jets-4d").to_dict()
    template = document["columns"][1]
    document["columns"] = [{**template, "name": n, "branch": f"Obj_{n}"} for n in names]
    return hepae.load_featureset(document)


def test_energy_below_momentum_is_unphysical():
    fs = _featureset(["E", "pt", "eta", "phi"])
    pt, eta = 50.0, 1.0
    p = pt * np.cosh(eta)  # |p|
    values = np.array([[p * 1.01, pt, eta, 0.3],    # E > |p|: fine
                       [p * 0.99, pt, eta, 0.3],    # E < |p|: negative mass squared
                       [p * 1.5, -pt, eta, 0.3]])  # negative pT
    assert count_unphysical(fs, values) == 2


def test_negative_mass_is_unphysical_and_other_sets_count_none():
    fs = hepae.load_featureset("atlas-jets-4d")
    values = np.array([[5e4, 0.1, 0.2, 1e3], [5e4, 0.1, 0.2, -1.0], [5e4, 0.1, 0.2, 0.0]])
    assert count_unphysical(fs, values) == 1
    assert count_unphysical(_featureset(["a", "b"]), np.ones((3, 2))) == 0


def test_compress_reports_the_residuals_decompression_will_give(samples, model_files, tmp_path):
    sample, model = samples["atlas-jets-4d"], model_files["atlas-jets-4d"]
    summary = hepae.compress(sample, tmp_path / "c.root", model, step_size=600, progress=False)
    hepae.decompress(tmp_path / "c.root", tmp_path / "r.root", progress=False)
    measured = hepae.residual_summary(sample, tmp_path / "r.root", "atlas-jets-4d")
    for name, r in summary["residuals"].items():
        assert r["n"] == measured[name]["n"]
        assert np.isclose(r["std"], measured[name]["std"], rtol=1e-9), name
        assert r["max_abs"] == measured[name]["max_abs"]
    reco = np.concatenate([c.values for c in iterate_collection(tmp_path / "r.root", "atlas-jets-4d")])
    assert summary["unphysical_objects"] == count_unphysical(load_featureset("atlas-jets-4d"), reco)
    unchecked = hepae.compress(sample, tmp_path / "c2.root", model, check=False, progress=False)
    assert unchecked["residuals"] is None and unchecked["unphysical_objects"] is None
