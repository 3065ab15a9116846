"""Every input format through the one pipeline: RNTuple in -> RNTuple out, DarkMachines CSV in -> CSV (or
RNTuple) out with object selection, and Cartesian (px, py, pz, E) collections."""

import awkward as ak
import numpy as np
import pytest
import uproot

import hepae
import hepae.io.darkmachines
import hepae.io.tensors
from conftest import shared_file
from hepae.errors import BranchTypeError, FeatureSetError, OutputFileError, TreeNotFoundError
from hepae.io.darkmachines import OBJECT_CODES, read_events
from hepae.io.sources import index_subfields, open_source
from hepae.io.tensors import collection_to_tensor, tensor_to_collection

SMALL = dict(latent=3, hidden=[64, 32], epochs=8, batch_size=128, max_lr=1e-2, seed=1, progress=False)


def _assert_fields_identical(a: ak.Array, b: ak.Array, skip: set[str]) -> list[str]:
    compared = []
    for name in a.fields:
        if name not in skip:
            assert ak.array_equal(a[name], b[name], equal_nan=True, check_parameters=False), name
            compared.append(name)
    return compared


# --- RNTuple ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rntuple_sample(tmp_path_factory):
    return hepae.make_sample(tmp_path_factory.mktemp("rnt") / "physlite.root", "physlite-rntuple-jets-4d",
                             n_events=1200, seed=3)


@pytest.fixture(scope="module")
def rntuple_model(rntuple_sample):
    return hepae.train(rntuple_sample, "physlite-rntuple-jets-4d", **SMALL)


def test_rntuple_in_rntuple_out_with_every_other_field_identical(rntuple_sample, rntuple_model, tmp_path):
    compressed, reco = tmp_path / "c.root", tmp_path / "r.root"
    summary = hepae.compress(rntuple_sample, compressed, rntuple_model, step_size=500, progress=False)
    assert summary["chunks"] == 3 and summary["collection_latent_bytes"] > 0
    with uproot.open(compressed) as f:
        assert f.classnames()["EventData;1"] == "ROOT::RNTuple"
        assert "hepae_count" in f["EventData"].keys() and "AnalysisJetsAuxDyn:pt" not in f["EventData"].keys()
    assert hepae.decompress(compressed, reco, progress=False)["format"] == "rntuple"
    with uproot.open(rntuple_sample) as fa, uproot.open(reco) as fb:
        assert fb.classnames()["EventData;1"] == "ROOT::RNTuple"
        a, b = fa["EventData"].arrays(), fb["EventData"].arrays()
    assert a.fields == b.fields  # same fields, same order
    jets = set(hepae.load_featureset("physlite-rntuple-jets-4d").branches)
    compared = _assert_fields_identical(a, b, jets)
    assert "AnalysisJetsAuxDyn:EnergyPerSampling" in compared  # doubly jagged, carried exactly
    for name in jets:
        assert ak.array_equal(ak.num(a[name]), ak.num(b[name])) and b[name].type == a[name].type
    assert hepae.residual_summary(rntuple_sample, reco, "physlite-rntuple-jets-4d")["pt"]["width68"] < 0.2


def test_subfields_indexed_in_one_pass_are_uproots_own(rntuple_sample):
    """hepae fills uproot's cache of each field's subfields itself (uproot's own lookup scans every field
    record per field: ~13 s for a PHYSLITE RNTuple); what it fills must be what uproot would find."""
    with uproot.open(rntuple_sample) as f, uproot.open(rntuple_sample) as g:
        indexed, own = f["EventData"], g["EventData"]
        index_subfields(indexed)
        assert all(field._fields is not None for field in indexed.all_fields)  # filled here, not by uproot
        assert any(field.is_anonymous for field in indexed.all_fields)  # lists' anonymous items were skipped
        assert [[c.name for c in x.fields] for x in indexed.all_fields] == \
            [[c.name for c in x.fields] for x in own.all_fields]
        assert indexed.to_akform() == own.to_akform()
        assert ak.array_equal(indexed.arrays(), own.arrays())


def test_rntuple_field_names_are_checked_like_branches(rntuple_sample):
    with open_source(rntuple_sample, "EventData") as source:
        assert source.format == "rntuple"
        assert source.layout.spec("AnalysisJetsAuxDyn:pt").counter == "nAnalysisJetsAuxDyn"
    with pytest.raises(TreeNotFoundError, match=r"no TTree or RNTuple 'CollectionTree'.*EventData \(RNTuple\)"):
        list(hepae.io.tensors.iterate_collection(rntuple_sample, "physlite-jets-4d"))


@pytest.mark.slow
def test_real_physlite_rntuple_round_trips(rntuple_model, tmp_path):
    source = shared_file("data/real/uproot-physlite-rntuple_v1-0-0-0.root")
    compressed, reco = tmp_path / "c.root", tmp_path / "r.root"
    with pytest.raises(hepae.errors.UnsupportedBranchError, match="6 object.* cannot be carried over: '##Params'"):
        hepae.compress(source, compressed, rntuple_model, check=False, progress=False)  # never silently
    with pytest.warns(UserWarning, match="leaving out 6 object"):
        summary = hepae.compress(source, compressed, rntuple_model, check=False, progress=False,
                                 drop_unsupported=True)
    # the metadata trees uproot cannot write (char* and split-object branches) are named; the RNTuples carried
    assert sorted(summary["dropped_objects"]) == ["##Links", "##Params", "##Shapes", "MetaData", "MetaDataHdr",
                                                  "MetaDataHdrForm"]
    assert summary["carried_objects"] == ["DataHeader", "DataHeaderForm", "EventTag"]
    hepae.decompress(compressed, reco, progress=False)
    with uproot.open(source) as fa, uproot.open(reco) as fb:
        index_subfields(fb["EventData"])  # uproot alone takes ~13 s to find the subfields of 3,500 fields; the
        a, b = fa["EventData"].arrays(), fb["EventData"].arrays()  # input is read by uproot alone, independently
        for name in summary["carried_objects"]:
            assert ak.array_equal(fa[name].arrays(), fb[name].arrays()), name
    assert a.fields == b.fields
    jets = set(hepae.load_featureset("physlite-rntuple-jets-4d").branches)
    # 850 fields of every kind: records, ElementLinks, strings, doubly-jagged lists, all identical
    assert len(_assert_fields_identical(a, b, jets)) == len(a.fields) - 4 == 850


# --- DarkMachines CSV ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def csv_sample(tmp_path_factory):
    return hepae.make_darkmachines_sample(tmp_path_factory.mktemp("dm") / "events.csv", n_events=1500, seed=5)


@pytest.fixture(scope="module")
def jets_model(csv_sample):
    return hepae.train(csv_sample, "darkmachines-jets-4d", **SMALL)


def test_csv_to_csv_keeps_events_types_and_unselected_objects_exactly(csv_sample, jets_model, tmp_path):
    compressed, back = tmp_path / "c.root", tmp_path / "back.csv"
    summary = hepae.compress(csv_sample, compressed, jets_model, step_size=400, progress=False)
    original = read_events(csv_sample)
    objects = original["objects"]
    is_jet = ak.to_numpy(ak.flatten(objects["obj"])) <= OBJECT_CODES.index("b")
    assert summary["n_objects"] == len(is_jet) and summary["n_compressed_objects"] == is_jet.sum() < len(is_jet)
    assert summary["collection_input_bytes"] is None and summary["collection_ratio"] is None  # text input
    assert hepae.decompress(compressed, back, progress=False)["format"] == "darkmachines-csv"
    again = read_events(back)
    for field in ("event_id", "process_id", "event_weight", "MET", "METphi"):
        assert ak.array_equal(original[field], again[field]), field
    assert ak.array_equal(objects["obj"], again["objects"]["obj"])  # every line: same count, same types
    for field in ("E", "pt", "eta", "phi"):
        a, b = ak.to_numpy(ak.flatten(objects[field])), ak.to_numpy(ak.flatten(again["objects"][field]))
        np.testing.assert_array_equal(a[~is_jet], b[~is_jet])  # leptons and photons: exact
        assert not np.array_equal(a[is_jet], b[is_jet])  # jets: reconstructed
    residuals = hepae.residual_summary(csv_sample, back, "darkmachines-jets-4d")
    assert residuals["pt"]["n"] == is_jet.sum()  # residuals of the reconstructed objects only
    assert residuals["pt"]["width68"] < 0.3
    numbers = back.read_text().splitlines()[0].replace(",", ";").split(";")[2:]
    digits = [n.split("e")[0].lstrip("-").replace(".", "").strip("0") for n in numbers if n[:1] not in "jbemg"]
    assert max(len(d) for d in digits) <= 9  # float32 values in their shortest form: 45231.2, not 45231.19921875


def test_csv_container_decompresses_to_rntuple_with_the_table(csv_sample, jets_model, tmp_path):
    compressed, reco = tmp_path / "c.root", tmp_path / "r.root"
    hepae.compress(csv_sample, compressed, jets_model, check=False, progress=False)
    hepae.decompress(compressed, reco, progress=False)
    with uproot.open(reco) as f:
        table = f["events"].arrays()
    assert table.fields == ["event_id", "process_id", "event_weight", "MET", "METphi",
                            "obj_type", "obj_E", "obj_pt", "obj_eta", "obj_phi"]
    assert table["process_id"][0] == "demo_ttbar" and str(table["obj_E"].type) == "1500 * var * float64"


def test_every_object_type_compressed_with_darkmachines_4d(csv_sample, tmp_path):
    model = hepae.train(csv_sample, "darkmachines-4d", **{**SMALL, "epochs": 2})
    summary = hepae.compress(csv_sample, tmp_path / "c.root", model, progress=False)
    assert summary["n_compressed_objects"] == summary["n_objects"]
    hepae.decompress(tmp_path / "c.root", tmp_path / "back.csv", progress=False)
    types = [read_events(path)["objects"]["obj"] for path in (csv_sample, tmp_path / "back.csv")]
    assert ak.array_equal(*types)


def test_csv_output_needs_a_csv_source(samples, model_files, tmp_path):
    hepae.compress(samples["atlas-jets-4d"], tmp_path / "c.root", model_files["atlas-jets-4d"], progress=False)
    with pytest.raises(OutputFileError, match="CSV output is for files compressed from DarkMachines CSV"):
        hepae.decompress(tmp_path / "c.root", tmp_path / "out.csv", progress=False)
    assert not (tmp_path / "out.csv").exists()


def test_selection_must_name_a_carried_integer_branch(csv_sample):
    document = hepae.load_featureset("darkmachines-jets-4d").to_dict()
    with pytest.raises(FeatureSetError, match="must be carried exactly"):
        hepae.load_featureset({**document, "select": {"branch": "obj_pt", "values": [0]}})
    selecting_floats = hepae.load_featureset({**document, "select": {"branch": "MET", "values": [0]}})
    with pytest.raises(BranchTypeError, match="branch 'MET' in .* holds one float64 per event"):
        list(hepae.io.tensors.iterate_collection(csv_sample, selecting_floats))


# --- Cartesian collections -------------------------------------------------------------------------

def test_cartesian_columns_are_pt_eta_phi_m_computed_with_vector(tmp_path):
    sample = hepae.make_sample(tmp_path / "cart.root", "cms-hzz-jets-cartesian", n_events=300, seed=2)
    fs = hepae.load_featureset("cms-hzz-jets-cartesian")
    with uproot.open(sample) as f:
        stored = f["events"].arrays(fs.branches, how=dict)
    values, counts = collection_to_tensor(stored, fs)
    px, py, pz, e = (ak.to_numpy(ak.flatten(stored[b])).astype(np.float64) for b in fs.branches)
    np.testing.assert_allclose(values[:, 0], np.hypot(px, py), rtol=1e-6)  # pt
    np.testing.assert_allclose(values[:, 1], np.arcsinh(pz / np.hypot(px, py)), rtol=1e-5, atol=1e-6)  # eta
    np.testing.assert_allclose(values[:, 3], np.sqrt(np.maximum(e**2 - px**2 - py**2 - pz**2, 0)), rtol=2e-3)
    back = tensor_to_collection(values, counts, fs)
    assert list(back) == fs.branches
    for branch in fs.branches:  # stored -> (pt, eta, phi, m) -> stored, within float32 rounding
        np.testing.assert_allclose(ak.to_numpy(ak.flatten(back[branch])), ak.to_numpy(ak.flatten(stored[branch])),
                                   rtol=2e-5, atol=1e-3)


def test_cartesian_feature_set_needs_the_four_momentum_columns():
    document = hepae.load_featureset("cms-hzz-jets-cartesian").to_dict()
    with pytest.raises(FeatureSetError, match="columns must be pt, eta, phi, m"):
        hepae.load_featureset({**document, "columns": document["columns"][:3]})


def test_real_hzz_cartesian_jets_round_trip_in_their_stored_representation(tmp_path):
    source = shared_file("data/real/uproot-HZZ.root")
    model = hepae.train(source, "cms-hzz-jets-cartesian", **SMALL)
    compressed, reco = tmp_path / "c.root", tmp_path / "r.root"
    summary = hepae.compress(source, compressed, model, progress=False)
    assert set(summary["residuals"]) == {"pt", "eta", "phi", "m"}
    hepae.decompress(compressed, reco, progress=False)
    with uproot.open(source) as fa, uproot.open(reco) as fb:
        a, b = fa["events"], fb["events"]
        assert a.keys() == b.keys() and b["Jet_Px"].count_branch.name == "NJet"
        jets = {"Jet_Px", "Jet_Py", "Jet_Pz", "Jet_E"}
        arrays_a, arrays_b = a.arrays(), b.arrays()
    assert len(_assert_fields_identical(arrays_a, arrays_b, jets)) == len(arrays_a.fields) - 4
    for name in jets:
        assert str(arrays_b[name].type) == str(arrays_a[name].type)


def test_fields_an_rntuple_cannot_hold_are_named():
    from hepae.io.branches import AWKWARD_DTYPE, BranchSpec
    from hepae.io.writing import rntuple_refusals

    fine = [BranchSpec("x", "float32"), BranchSpec("jets", "float32", "njets"),
            BranchSpec("nested", AWKWARD_DTYPE, None, ak.Array([[[1.0]]]).layout.form.to_json())]
    assert rntuple_refusals(fine) == {}
    half = BranchSpec("half", AWKWARD_DTYPE, None, ak.Array(np.ones(2, np.float16)).layout.form.to_json())
    complex_ = BranchSpec("z", AWKWARD_DTYPE, None, ak.Array(np.ones(2, np.complex128)).layout.form.to_json())
    refused = rntuple_refusals([*fine, half, complex_])
    assert sorted(refused) == ["half", "z"] and "float16" in refused["half"]
