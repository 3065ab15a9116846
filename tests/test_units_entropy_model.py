"""A learned entropy model for a whole file's units: ``hepae train-entropy --profile P`` trains one per collection
(and for the per-event floats) at the profile's bounds; ``hepae compress --profile P --entropy-model M`` codes
each unit with the part of it that serves the unit's lossy branches, where that part pays for its own bytes."""

from __future__ import annotations

import json
import subprocess
import sys

import awkward as ak
import numpy as np
import pytest
import uproot

import hepae
from hepae.cluster import _same_settings
from hepae.codecs.bounds import within_bound
from hepae.decompression import verify
from hepae.entropy_models import train_entropy_model
from hepae.errors import CodecError, TrainingError

PROFILE = {"name": "objects", "format_version": 1, "unmatched": "exact",
           "rules": [{"pattern": "obj_x", "rule": "rel:1e-3"}, {"pattern": "obj_y", "rule": "abs:1e-2"},
                     {"pattern": "met", "rule": "rel:1e-3"}]}


def write_events(path, n_events, seed):
    """Objects whose ``x`` is nearly their event's common value (what the hand-built coder, which predicts a column
    from the columns before it in the same object, cannot see, and the model's leading-object input can), an
    independent ``y``, an exact float ``w`` beside them, and a per-event ``met``."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 6, n_events)
    common = np.repeat(rng.lognormal(4, 1, n_events), counts)
    x = common * (1 + rng.normal(0, 2e-3, counts.sum()))
    columns = {"obj_x": x, "obj_y": rng.normal(0, 1, counts.sum()), "obj_w": rng.random(counts.sum())}
    with uproot.recreate(path) as f:  # NanoAOD-style: one counter, nobj
        tree = f.mktree("events", {**dict.fromkeys(columns, "var * float32"), "met": "float32"},
                        counter_name=lambda _: "nobj")
        tree.extend({**{k: ak.unflatten(v.astype(np.float32), counts) for k, v in columns.items()},
                     "met": rng.lognormal(3, 1, n_events).astype(np.float32)})
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    here = tmp_path_factory.mktemp("units")
    train = write_events(here / "train.root", 3000, seed=1)
    return train_entropy_model(train, None, profile=PROFILE, iterations=150, progress=False), here


def _units(path):
    return verify(path)["units"]


def test_the_units_model_codes_a_new_file_in_fewer_bytes_every_value_within_its_rule(trained):
    model, here = trained
    assert "obj_x" in model.columns and set(model.trained_on["units"]) == {"nobj", "event"}
    assert all(f[0] in ("leading", "previous", "object") for f in model.columns["obj_x"].features)
    source = write_events(here / "test.root", 3000, seed=2)  # another seed than the training file
    hand = hepae.compress(source, here / "hand.root", profile=PROFILE, overwrite=True, progress=False)
    learned = hepae.compress(source, here / "learned.root", profile=PROFILE, entropy_model=model, overwrite=True,
                             progress=False)
    assert learned["max_error_over_bound"] and max(learned["max_error_over_bound"].values()) <= 1.0
    assert learned["output_bytes"] < 0.95 * hand["output_bytes"]
    carried = {u["name"]: u["codec"].get("entropy_model") for u in _units(here / "learned.root")}
    assert "obj_x" in {c["column"] for c in carried["nobj"]["columns"]} <= {"obj_x", "obj_y"}
    assert next(u for u in _units(here / "learned.root") if u["name"] == "nobj")["codec"]["exact"] == ["obj_w"]
    hepae.decompress(here / "learned.root", here / "reco.root", overwrite=True, progress=False)
    with uproot.open(source) as a, uproot.open(here / "reco.root") as b:
        original, reco = a["events"].arrays(), b["events"].arrays()
    for name, rule in (("obj_x", ("rel", 1e-3)), ("obj_y", ("abs", 1e-2)), ("met", ("rel", 1e-3))):
        assert within_bound(ak.to_numpy(ak.flatten(original[name], axis=None)),
                            ak.to_numpy(ak.flatten(reco[name], axis=None)), *rule).all(), name
    assert ak.to_numpy(ak.flatten(original["obj_w"])).tobytes() == ak.to_numpy(ak.flatten(reco["obj_w"])).tobytes()


def test_a_unit_does_not_carry_a_model_that_does_not_pay_for_its_bytes(trained):
    model, here = trained
    source = write_events(here / "small.root", 40, seed=3)  # too few objects to save the model's bytes
    hepae.compress(source, here / "small-hand.root", profile=PROFILE, overwrite=True, progress=False)
    hepae.compress(source, here / "small-learned.root", profile=PROFILE, entropy_model=model, overwrite=True,
                   progress=False)
    assert not any(u["codec"].get("entropy_model") for u in _units(here / "small-learned.root"))
    with uproot.open(here / "small-hand.root") as a, uproot.open(here / "small-learned.root") as b:
        streams = [np.concatenate(list(f["hepae_streams"]["units"].array(library="np"))) for f in (a, b)]
        assert streams[0].tobytes() == streams[1].tobytes()  # the same streams


def test_a_model_of_other_columns_is_refused_before_anything_is_written(trained):
    model, here = trained
    source = write_events(here / "other.root", 100, seed=4)
    feature_set_model = json.loads(json.dumps(model.to_dict()).replace('"obj_x"', '"pt"').replace('"obj_y"', '"eta"')
                                   .replace('"met"', '"phi"'))
    feature_set_model.pop("sha256")
    from hepae.codecs.learned import _digest

    feature_set_model["sha256"] = _digest({"columns": feature_set_model["columns"],
                                           "trained_on": feature_set_model["trained_on"]})
    with pytest.raises(CodecError, match="serves none of the lossy branches"):
        hepae.compress(source, here / "other.out.root", profile=PROFILE, entropy_model=feature_set_model,
                       progress=False)
    assert not (here / "other.out.root").exists()


def test_a_resumed_many_file_run_keeps_only_files_made_with_the_same_units_model(trained):
    """A file records the model its units were offered, kept by a unit or not: --resume compares that."""
    model, here = trained
    source = write_events(here / "resume.root", 40, seed=8)  # the model does not pay here: no unit keeps it
    hepae.compress(source, here / "resume-learned.root", profile=PROFILE, entropy_model=model, overwrite=True,
                   progress=False)
    hepae.compress(source, here / "resume-hand.root", profile=PROFILE, overwrite=True, progress=False)
    made_with, made_without = verify(here / "resume-learned.root"), verify(here / "resume-hand.root")
    assert not any(u["codec"].get("entropy_model") for u in made_with["units"])
    options = {"codec": None, "profile": None, "rules": []}
    with_model = {**options, "entropy_model": model.to_dict()}
    other = json.loads(json.dumps(model.to_dict()))
    other["sha256"] = "0" * 64
    for metadata, asked, same in [(made_with, with_model, True), (made_without, options, True),
                                  (made_with, options, False), (made_without, with_model, False),
                                  (made_with, {**options, "entropy_model": other}, False)]:
        assert _same_settings(metadata, asked) is same


def test_train_entropy_and_compress_take_a_profile_on_the_command_line(tmp_path):
    train = write_events(tmp_path / "train.root", 3000, seed=5)
    source = write_events(tmp_path / "test.root", 3000, seed=6)
    (tmp_path / "objects.json").write_text(json.dumps(PROFILE))
    cli = [sys.executable, "-m", "hepae"]
    run = subprocess.run([*cli, "train-entropy", str(train), "-o", str(tmp_path / "m.json"), "--profile",
                          str(tmp_path / "objects.json"), "--iterations", "150"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "under profile 'objects'" in run.stdout and "--entropy-model" in run.stdout
    run = subprocess.run([*cli, "compress", str(source), "-o", str(tmp_path / "c.root"), "--profile",
                          str(tmp_path / "objects.json"), "--entropy-model", str(tmp_path / "m.json"), "--json"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert any(u["codec"].get("entropy_model") for u in _units(tmp_path / "c.root"))
    inspected = subprocess.run([*cli, "inspect", str(tmp_path / "c.root")], capture_output=True, text=True).stdout
    assert "unit        nobj:" in inspected and "entropy model <learned: 1 column(s) obj_x" in inspected


def test_training_refuses_files_of_other_layouts_and_units_too_small_to_train(tmp_path):
    train = write_events(tmp_path / "a.root", 300, seed=7)
    other = tmp_path / "b.root"
    with uproot.recreate(other) as f:  # the same table, without the objects
        f["events"] = {"met": np.ones(50, np.float32)}
    with pytest.raises(TrainingError, match="b.root: its units under profile 'objects' are not those of"):
        train_entropy_model([train, other], profile=PROFILE, iterations=5, progress=False)
    with pytest.raises(TrainingError, match="no unit of .*a.root under profile 'objects' could be trained"):
        train_entropy_model(write_events(tmp_path / "a.root", 20, seed=7), profile=PROFILE, iterations=5,
                            progress=False)
