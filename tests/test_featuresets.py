"""Feature sets are JSON data validated against schemas/featureset.schema.json."""

import json

import jsonschema
import pytest

import hepae
from hepae.errors import FeatureSetError, SchemaValidationError
from hepae.features import load_featureset
from hepae.schema import load_schema


def test_builtin_featuresets_are_listed_with_their_trees_and_branches():
    by_name = {fs.name: fs for fs in hepae.list_featuresets()}
    assert set(by_name) >= {"atlas-jets-4d", "physlite-jets-4d", "nanoaod-jets-4d"}
    assert by_name["atlas-jets-4d"].tree == "CollectionTree"
    assert by_name["atlas-jets-4d"].branches == [f"AntiKt4EMTopoJetsAux.{v}" for v in ("pt", "eta", "phi", "m")]
    assert by_name["physlite-jets-4d"].branches == [f"AnalysisJetsAuxDyn.{v}" for v in ("pt", "eta", "phi", "m")]
    assert by_name["nanoaod-jets-4d"].tree == "Events"
    assert by_name["nanoaod-jets-4d"].counter == "nJet"
    assert by_name["nanoaod-jets-4d"].branches == ["Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass"]
    assert [c.unit for c in by_name["atlas-jets-4d"].columns] == ["MeV", "", "rad", "MeV"]
    assert [c.unit for c in by_name["nanoaod-jets-4d"].columns] == ["GeV", "", "rad", "GeV"]


def test_schemas_are_valid_json_schemas_and_shipped_at_top_level_too():
    from conftest import REPO

    for name in ("featureset.schema.json", "container.schema.json", "model.schema.json"):
        jsonschema.Draft202012Validator.check_schema(load_schema(name))  # raises if the schema is not valid
        assert (REPO / "schemas" / name).is_file()


def test_user_json_file_works_instead_of_a_name(tmp_path):
    document = load_featureset("nanoaod-jets-4d").to_dict()
    document["name"] = "my-jets"
    document["columns"] = document["columns"][:3]
    path = tmp_path / "my.json"
    path.write_text(json.dumps(document))
    fs = load_featureset(path)
    assert fs.name == "my-jets" and fs.n_features == 3
    assert load_featureset(fs.to_dict()) == fs  # dict round trip


def test_invalid_featureset_names_the_failing_json_path(tmp_path):
    document = load_featureset("atlas-jets-4d").to_dict()
    document["columns"][1]["normalization"] = {"id": "log10", "scale": 0}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document))
    with pytest.raises(SchemaValidationError, match="columns/1/normalization"):
        load_featureset(path)


def test_duplicate_columns_unknown_names_and_broken_json_are_refused(tmp_path):
    document = load_featureset("atlas-jets-4d").to_dict()
    document["columns"][1] = dict(document["columns"][0])
    with pytest.raises(FeatureSetError, match="duplicate"):
        load_featureset(document)
    with pytest.raises(FeatureSetError, match="unknown feature set 'no-such-set'.*atlas-jets-4d"):
        load_featureset("no-such-set")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(FeatureSetError, match="not valid JSON"):
        load_featureset(broken)


def test_normalization_choice():
    fs = load_featureset("atlas-jets-4d")
    assert [t.transform_id for t in fs.make_normalization().transforms] == ["log10", "affine", "affine", "log10"]
    assert [t.transform_id for t in fs.make_normalization("standard").transforms] == ["standard"] * 4
    with pytest.raises(FeatureSetError):
        fs.make_normalization("minmax")
