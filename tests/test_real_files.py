"""Files written by CMSSW/Athena/ROOT and the generated pythia8 sample in ../shared (skipped if absent)."""

import awkward as ak
import numpy as np
import pytest
import uproot

import hepae
from conftest import shared_file
from roundtrip_checks import assert_passthrough_identical

NANOAOD = "data/real/nanoAOD_2015_CMS_Open_Data_ttbar.root"
QCD = "data/qcd_dijet_13TeV_xaod.root"


def test_real_cms_nanoaod_round_trips_with_all_other_branches_identical(tmp_path):
    source = shared_file(NANOAOD)
    model = hepae.train(source, "nanoaod-jets-4d", hidden=[32, 16], epochs=2, batch_size=128, progress=False)
    compressed, reco = tmp_path / "nano.compressed.root", tmp_path / "nano.reco.root"
    summary = hepae.compress(source, compressed, model, step_size=64, progress=False)
    assert summary["dropped_branches"] == {}
    hepae.decompress(compressed, reco, progress=False)
    jet_kinematics = {"Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass"}
    compared = assert_passthrough_identical(source, reco, "Events", jet_kinematics)
    assert len(compared) == 943  # every branch but the four compressed ones, nJet and all other counters included
    with uproot.open(source) as fa, uproot.open(reco) as fb:
        a, b = fa["Events"], fb["Events"]
        assert a.keys() == b.keys()  # same branch order too
        assert b["Jet_pt"].count_branch.name == "nJet"
        np.testing.assert_array_equal(a["nJet"].array(), b["nJet"].array())
        for branch in jet_kinematics:
            assert b[branch].interpretation == a[branch].interpretation
            np.testing.assert_array_equal(ak.num(a[branch].array()), ak.num(b[branch].array()))


@pytest.mark.slow
def test_pythia_qcd_sample_compresses_and_reconstructs(tmp_path):
    source = shared_file(QCD)
    model = hepae.train(source, "atlas-jets-4d", epochs=6, progress=False)
    compressed, reco = tmp_path / "qcd.compressed.root", tmp_path / "qcd.reco.root"
    hepae.compress(source, compressed, model, progress=False)
    hepae.decompress(compressed, reco, progress=False)
    jets = set(hepae.load_featureset("atlas-jets-4d").branches)
    compared = assert_passthrough_identical(source, reco, "CollectionTree", jets)
    # 45 branches but the 4 compressed: event info, 23 AuxDyn jet variables, leptons, photons, counters
    assert len(compared) == 41
    residuals = hepae.residual_summary(source, reco, "atlas-jets-4d")
    # real jets have a broad m/pT: a 4 -> 3 code is lossy, but eta and phi stay well below 0.1
    assert residuals["eta"]["width68"] < 0.1 and residuals["phi"]["width68"] < 0.1
    assert residuals["pt"]["width68"] < 0.1
