"""Carry-over: every object of a ROOT file besides the compressed table is copied, or refused by name.

A file is built with uproot holding a main TTree (the one hepae would compress) and everything else a
ROOT file commonly holds; the plan sorts them, the copy writes them into another file, and the
digests show that each copied object is the same as the original.
"""

from __future__ import annotations

import json

import awkward as ak
import hist
import numpy as np
import pytest
import uproot
from uproot.writing.identify import to_TAxis, to_TH2x

import hepae
from conftest import shared_file
from hepae.errors import InputFileError, OutputFileError, UnsupportedBranchError
from hepae.io.branches import BranchSpec, TreeLayout
from hepae.io.carryover import CarriedObject, _carry_specs, copy_objects, object_digests, plan_carryover
from hepae.io.sources import open_root

PHYSLITE = "data/real/uproot-physlite-rntuple_v1-0-0-0.root"

CARRIED = [
    ("other", "TTree", "ttree"),
    ("empty", "TTree", "ttree"),
    ("cycled", "TTree", "ttree"),
    ("ntuple", "ROOT::RNTuple", "rntuple"),
    ("ntuple0", "ROOT::RNTuple", "rntuple"),
    ("h1", "TH1D", "histogram"),
    ("h2f", "TH2F", "histogram"),
    ("h3", "TH3D", "histogram"),
    ("prof", "TProfile", "histogram"),
    ("note", "TObjString", "string"),
    ("plots", "TDirectory", "directory"),
    ("plots/eta", "TH1D", "histogram"),
    ("plots/sub", "TDirectory", "directory"),
    ("plots/sub/label", "TObjString", "string"),
    ("empty_dir", "TDirectory", "directory"),
]
"""What the mixed file carries, in file order, each directory before its content."""

REFUSED = ["h1;1", "graph", "strings"]
"""What it cannot carry: an older cycle of a histogram, a TGraph, a TTree with a char* branch."""


def th2f(rng: np.random.Generator) -> object:
    """A TH2F (uproot writes numpy and hist histograms as TH2D): 5 x 4 bins of float32."""
    data = np.zeros((6, 7), np.float32)  # (y, x) with flow bins; ROOT's x runs fastest
    data[1:-1, 1:-1] = rng.random((4, 5))
    return to_TH2x("h2f", "a TH2F", data.ravel(), 20.0, 20.0, 20.0, 1.0, 1.0, 1.0, 1.0, 1.0,
                   (data.astype(np.float64) ** 2).ravel(), to_TAxis("xaxis", "x", 5, 0.0, 5.0),
                   to_TAxis("yaxis", "y", 4, 0.0, 2.0))


def write_mixed_file(path, n_events: int = 2000):
    """A main TTree and every kind of other object, carriable or not."""
    rng = np.random.default_rng(3)
    with uproot.recreate(path, compression=uproot.ZLIB(1)) as f:
        f.mktree("main", {"x": np.float32}).extend({"x": rng.random(n_events, np.float32)})
        counts = rng.integers(0, 5, n_events)
        jet_pt = ak.unflatten(rng.random(counts.sum(), np.float32), counts)
        jet_id = ak.unflatten(rng.integers(0, 100, counts.sum()).astype(np.int16), counts)
        other = f.mktree("other", {"event": np.uint64, "Jet_pt": jet_pt.type.content, "flag": np.bool_,
                                   "Jet_id": jet_id.type.content, "fixed": np.dtype("(3,)f4"), "weight": np.float64},
                         title="jets and flat branches", counter_name=lambda branch: "nJet")
        other.extend({"event": np.arange(n_events, dtype=np.uint64), "Jet_pt": jet_pt,
                      "flag": rng.random(n_events) > 0.5, "Jet_id": jet_id,
                      "fixed": rng.random((n_events, 3), np.float32), "weight": rng.random(n_events)})
        f.mktree("empty", {"a": np.int32, "Mu_pt": "var * float64"}, title="no entries")
        f.mktree("cycled", {"x": np.int64}).extend({"x": np.arange(3)})
        arrays = ak.Array({"x": np.arange(3.0), "v": [[1.0], [], [2.0, 3.0]], "name": ["a", "bb", ""],
                           "rec": [{"a": 1, "b": [1.5]}, {"a": 2, "b": []}, {"a": 3, "b": [2.5, 3.5]}]})
        f.mkrntuple("ntuple", arrays.layout.form, description="an RNTuple").extend(arrays)
        f.mkrntuple("ntuple0", arrays.layout.form, description="no entries")
        f["h1"] = np.histogram(rng.random(10), bins=3)  # overwritten below: an older cycle
        h1 = hist.Hist(hist.axis.Regular(10, 0, 1, name="x", label="x [GeV]"), storage=hist.storage.Weight(),
                       name="weighted jets")
        h1.fill(rng.random(100), weight=rng.random(100))
        f["h2f"] = th2f(rng)
        f["h3"] = np.histogramdd(rng.random((100, 3)), bins=(2, 3, 4))
        prof = hist.Hist(hist.axis.Variable([0.0, 0.1, 0.5, 1.0]), storage=hist.storage.Mean())
        prof.fill(rng.random(50), sample=rng.random(50))
        f["prof"] = prof
        f["note"] = "produced by the carry-over test"
        f.mkdir("plots")
        f["plots/eta"] = np.histogram(rng.normal(size=100), bins=20, range=(-3, 3))
        f.mkdir("plots/sub")
        f["plots/sub/label"] = "nested"
        f.mkdir("empty_dir")
        f["graph"] = uproot.as_TGraph({"x": np.array([1.0, 2.0]), "y": np.array([3.0, 4.0])})
        f.mktree("strings", {"s": "string", "i": np.int32}).extend({"s": ak.Array(["a", "bb"]),
                                                                    "i": np.array([1, 2], np.int32)})
        f["h1"] = h1
        f.mktree("cycled", {"x": np.int64}).extend({"x": np.arange(5)})  # ROOT's AutoSave leaves such cycles
    return path


@pytest.fixture
def mixed(tmp_path):
    return write_mixed_file(tmp_path / "mixed.root")


def plan(path, exclude=("main",)):
    with open_root(path) as f, pytest.warns(UserWarning, match="leaving out"):
        return plan_carryover(f, path, exclude, drop_unsupported=True)


def copy(source, target, objects, **kwargs):
    with open_root(source) as f, uproot.recreate(target) as out:
        return copy_objects(f, out, objects, source, **kwargs)


def digests(path, objects):
    with open_root(path) as f:
        return object_digests(f, objects, path)


def test_plan_carries_what_uproot_writes_and_names_the_rest(mixed):
    carried, refused = plan(mixed)
    assert [(o.path, o.classname, o.kind) for o in carried] == CARRIED
    assert sorted(refused) == sorted(REFUSED)
    assert "older cycle" in refused["h1;1"] and "highest, 2" in refused["h1;1"]
    assert refused["graph"].startswith("TGraph: hepae carries TTrees, RNTuples, histograms")
    assert "'s' (char* (AsStrings)" in refused["strings"]


def test_plan_refuses_unless_told_to_drop(mixed):
    with open_root(mixed) as f, pytest.raises(UnsupportedBranchError) as raised:
        plan_carryover(f, mixed, {"main"}, drop_unsupported=False)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"3 object(s) of {mixed} cannot be carried over: ")
    assert all(f"'{path}' (" in message for path in REFUSED)
    assert message.endswith("pass drop_unsupported=True (CLI: --drop-unsupported) to leave them out; "
                            "they are then listed in the output's metadata")


def test_plan_warns_in_one_line_and_excludes_by_name(mixed):
    with open_root(mixed) as f, pytest.warns(UserWarning) as caught:
        carried, refused = plan_carryover(f, mixed, {"main", "graph", "strings", "plots"}, drop_unsupported=True)
    (warning,) = caught
    assert str(warning.message).startswith(f"leaving out 1 object(s) of {mixed} that cannot be carried over: 'h1;1'")
    assert "\n" not in str(warning.message)
    assert "main" not in [o.path for o in carried] and not any(o.path.startswith("plots") for o in carried)


def test_nothing_to_refuse_means_no_warning(tmp_path):
    path = tmp_path / "clean.root"
    with uproot.recreate(path) as f:
        f.mktree("main", {"x": np.int32}).extend({"x": np.arange(3, dtype=np.int32)})
        f["note"] = "hello"
    with open_root(path) as f:
        assert plan_carryover(f, path, {"main"}, drop_unsupported=False) == (
            [CarriedObject("note", "TObjString", "string")], {})
        assert plan_carryover(f, path, {"main", "note"}, drop_unsupported=False) == ([], {})


def assert_same_tree(a, b):
    assert b.keys() == a.keys()  # branch order, counters included
    assert [br.typename for br in b.branches] == [br.typename for br in a.branches]
    assert (b.title, b.num_entries) == (a.title, a.num_entries)
    assert str(b.arrays().type) == str(a.arrays().type)
    assert ak.array_equal(b.arrays(), a.arrays(), dtype_exact=True)


def assert_same_histogram(a, b):
    assert (b.classname, b.member("fTitle"), b.member("fEntries")) == (a.classname, a.member("fTitle"),
                                                                      a.member("fEntries"))
    assert b.values(flow=True).dtype == a.values(flow=True).dtype
    np.testing.assert_array_equal(b.values(flow=True), a.values(flow=True))
    np.testing.assert_array_equal(b.variances(flow=True), a.variances(flow=True))
    for axis_a, axis_b in zip(a.axes, b.axes, strict=True):
        np.testing.assert_array_equal(axis_b.edges(flow=True), axis_a.edges(flow=True))


def test_copy_writes_every_object_identically(mixed, tmp_path):
    carried, _ = plan(mixed)
    target = tmp_path / "copy.root"
    written = copy(mixed, target, carried, step_size=300)  # several chunks for 'other'
    assert list(written) == [o.path for o in carried]
    with uproot.open(mixed) as a, uproot.open(target) as b:
        assert sorted(b.keys(cycle=False)) == sorted(o.path for o in carried)
        assert b.classnames(cycle=False) == {o.path: o.classname for o in carried}
        for name in ("other", "empty", "cycled"):
            assert_same_tree(a[name], b[name])
        assert b["other"].keys() == ["event", "nJet", "Jet_pt", "flag", "Jet_id", "fixed", "weight"]
        assert b["empty"].num_entries == 0 and b["empty"].keys() == ["a", "nMu_pt", "Mu_pt"]
        assert b["cycled"]["x"].array().tolist() == [0, 1, 2, 3, 4]  # the highest cycle
        for name in ("ntuple", "ntuple0"):
            assert (b[name].description, b[name].num_entries) == (a[name].description, a[name].num_entries)
            assert b[name].arrays().type == a[name].arrays().type
            assert ak.array_equal(b[name].arrays(), a[name].arrays(), dtype_exact=True)
        assert b["ntuple0"].num_entries == 0
        for name in ("h1", "h2f", "h3", "prof", "plots/eta"):
            assert_same_histogram(a[name], b[name])
        assert str(b["note"]) == "produced by the carry-over test" and str(b["plots/sub/label"]) == "nested"
        assert b["empty_dir"].keys() == []
    # the digests of the copy, read back at another chunking, are those of what was written
    assert digests(target, carried) == written == digests(mixed, carried)


def test_a_compressed_file_keeps_one_streamer_list_when_objects_are_carried(mixed, tmp_path):
    """The classes of the carried histograms, strings and RNTuples are declared before the tables: carried
    after them, they would move the file's streamer list and leave the old copy behind (65 kB of this file's
    184 kB before). The same in the reconstruction, which copies them after its table."""
    with pytest.warns(UserWarning, match="leaving out"):
        hepae.compress(mixed, tmp_path / "c.root", tree="other", rules=["Jet_pt=rel:1e-3"], drop_unsupported=True,
                       progress=False)
    hepae.decompress(tmp_path / "c.root", tmp_path / "r.root", progress=False)  # the reconstruction likewise
    for path in (tmp_path / "c.root", tmp_path / "r.root"):
        written = path.read_bytes()
        assert written.count(b"\x05TList\x0cStreamerInfo") == 1  # a key's class and name: one list, no dead copy
        with uproot.open(path) as f:
            assert {"TH1D", "TH2F", "TH3D", "TProfile", "TObjString", "TTree"} <= set(f.file.streamers)
            assert f["h3"].values().shape == (2, 3, 4) and str(f["note"]) == "produced by the carry-over test"


def test_an_rntuple_reconstruction_with_a_carried_ttree_keeps_one_streamer_list(tmp_path):
    """A TTree carried beside an RNTuple table comes back, and the reconstruction (which has no TTree of its own)
    holds one streamer list."""
    with uproot.recreate(tmp_path / "in.root") as f:
        f.mkrntuple("t", {"x": np.float32, "k": np.int32}).extend(
            ak.Array({"x": np.linspace(1, 2, 200, dtype=np.float32), "k": np.arange(200, dtype=np.int32)}))
        f.mktree("side", {"a": np.float64}).extend({"a": np.arange(5.0)})
    hepae.compress(tmp_path / "in.root", tmp_path / "c.root", tree="t", rules=["x=rel:1e-3"], progress=False)
    hepae.decompress(tmp_path / "c.root", tmp_path / "r.root", progress=False)
    assert (tmp_path / "r.root").read_bytes().count(b"\x05TList\x0cStreamerInfo") == 1
    with uproot.open(tmp_path / "r.root") as f:
        assert f["side"]["a"].array(library="np").tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_the_baseline_rewrite_carries_what_compress_carries(mixed, tmp_path):
    """``hepae.baselines.rewrite(carry=True)``: whole files compare with the same other objects in both."""
    from hepae.baselines import rewrite

    rewrite(mixed, tmp_path / "copy.root", table="other", carry=True)
    carried, _ = plan(mixed, exclude=("other",))
    assert digests(tmp_path / "copy.root", carried) == digests(mixed, carried)
    assert (tmp_path / "copy.root").read_bytes().count(b"\x05TList\x0cStreamerInfo") == 1


def test_digests_change_with_the_content(tmp_path):
    files = []
    for i, value in enumerate((1.0, 2.0)):
        path = tmp_path / f"{i}.root"
        with uproot.recreate(path) as f:
            f.mktree("t", {"x": np.float64}).extend({"x": np.array([0.0, value])})
            f["h"] = (np.array([1.0, value]), np.array([0.0, 1.0, 2.0]))
            f["s"] = f"text {value}"
        files.append(path)
    objects = [CarriedObject("t", "TTree", "ttree"), CarriedObject("h", "TH1D", "histogram"),
               CarriedObject("s", "TObjString", "string")]
    first, second = (digests(path, objects) for path in files)
    assert all(first[o.path] != second[o.path] for o in objects)


def test_a_histogram_digest_covers_its_statistics_not_only_its_bins(tmp_path):
    """Damage to fTsumwx (what ROOT's GetMean uses) with the bin contents intact is caught."""
    import struct

    path = tmp_path / "h.root"
    with uproot.recreate(path, compression=None) as f:
        f["h"] = (np.array([1.0, 2.0]), np.array([0.0, 1.0, 2.0]))
    with uproot.open(path) as f:
        tsumwx = f["h"].member("fTsumwx")
    objects = [CarriedObject("h", "TH1D", "histogram")]
    before = digests(path, objects)
    data = path.read_bytes()
    stored = struct.pack(">d", tsumwx)
    assert data.count(stored) == 1
    path.write_bytes(data.replace(stored, struct.pack(">d", 2 * tsumwx)))
    with uproot.open(path) as f:
        assert f["h"].values().tolist() == [1.0, 2.0] and f["h"].member("fTsumwx") == 2 * tsumwx
    assert digests(path, objects) != before


def test_older_cycles_of_tables_are_autosave_backups(tmp_path):
    path = tmp_path / "cycles.root"
    with uproot.recreate(path) as f:
        for n in (2, 4, 6):
            f.mktree("backup", {"x": np.int32}).extend({"x": np.arange(n, dtype=np.int32)})
    with uproot.open(path) as f:
        assert f.keys() == ["backup;1", "backup;2", "backup;3"]
    with open_root(path) as f:
        carried, refused = plan_carryover(f, path, (), drop_unsupported=False)
    assert (carried, refused) == ([CarriedObject("backup", "TTree", "ttree")], {})
    copy(path, tmp_path / "copy.root", carried)
    with uproot.open(tmp_path / "copy.root") as f:
        assert f.keys() == ["backup;1"] and f["backup"].num_entries == 6


def test_vector_branches_get_their_own_counter():
    """uproot writes no std::vector: each such branch is written as an array counted by n<branch>."""
    layout = TreeLayout("t", 0, branches=[BranchSpec("jet_pt", "float32", "njet"),
                                          BranchSpec("jet_eta", "float32", "njet"),
                                          BranchSpec("mu_pt", "float32", "nMu"),
                                          BranchSpec("njet_eta", "int32")],
                        counters={"nMu": "uint32"})
    assert [s.counter for s in _carry_specs(layout)] == ["njet_pt", "njet_eta_", "nMu", None]


def test_copy_refuses_to_overwrite_an_object(mixed, tmp_path):
    target = tmp_path / "copy.root"
    with open_root(mixed) as f, uproot.recreate(target) as out:
        out["note"] = "already there"
        with pytest.raises(OutputFileError, match="already holds an object 'note'"):
            copy_objects(f, out, [CarriedObject("note", "TObjString", "string")], mixed)


def test_digests_of_a_missing_or_other_object(mixed):
    with open_root(mixed) as f:
        with pytest.raises(InputFileError, match=f"no object 'plots/phi' in {mixed}"):
            object_digests(f, [CarriedObject("plots/phi", "TH1D", "histogram")], mixed)
        with pytest.raises(InputFileError, match="'note' in .* is a TObjString, not a TH1D"):
            object_digests(f, [CarriedObject("note", "TH1D", "histogram")], mixed)


def test_carried_objects_round_trip_through_json():
    obj = CarriedObject("plots/eta", "TH1D", "histogram")
    assert CarriedObject.from_dict(json.loads(json.dumps(obj.to_dict()))) == obj
    assert (obj.name, obj.parent) == ("eta", "plots")
    with pytest.raises(ValueError, match="unknown kind 'graph'"):
        CarriedObject.from_dict({"path": "g", "classname": "TGraph", "kind": "graph"})


def damage(path, offset: int, size: int = 32) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(b"\xa5" * size)


def test_a_damaged_histogram_is_named(tmp_path):
    path = tmp_path / "damaged.root"
    with uproot.recreate(path, compression=uproot.ZLIB(1)) as f:
        f.mktree("main", {"x": np.int32})
        f["h"] = (np.zeros(1000), np.arange(1001.0))
    with uproot.open(path) as f:
        start = f.key("h").data_cursor.index
    damage(path, start + 12)  # inside the compressed data, after its 9-byte header
    with open_root(path) as f, pytest.raises(InputFileError) as raised:
        plan_carryover(f, path, {"main"}, drop_unsupported=False)
    assert str(raised.value).startswith(f"cannot read 'h' in {path} (damaged file?): ")
    assert "\n" not in str(raised.value)


def test_a_damaged_tree_is_named(tmp_path):
    path = tmp_path / "damaged.root"
    with uproot.recreate(path, compression=uproot.ZLIB(1)) as f:
        f.mktree("side", {"x": np.float64}).extend({"x": np.random.default_rng(0).random(10_000)})
    with uproot.open(path) as f:
        seek = int(f["side"]["x"].member("fBasketSeek")[0])
    damage(path, seek + 1000)
    with open_root(path) as f:
        carried, _ = plan_carryover(f, path, (), drop_unsupported=False)  # reads no data
        with uproot.recreate(tmp_path / "copy.root") as out, pytest.raises(
                InputFileError, match=f"cannot read 'side' of {path} \\(damaged file\\?\\)"):
            copy_objects(f, out, carried, path)


def test_physlite_metadata_is_carried_or_named(tmp_path):
    """A real ATLAS PHYSLITE file: RNTuples DataHeader, DataHeaderForm and EventTag are carried; the
    metadata TTrees hold char* strings and POOL objects that uproot cannot write."""
    source = shared_file(PHYSLITE)
    with open_root(source) as f, pytest.raises(UnsupportedBranchError, match="6 object\\(s\\) of .* cannot be"):
        plan_carryover(f, source, {"EventData"}, drop_unsupported=False)
    carried, refused = plan(source, exclude={"EventData"})
    assert [(o.path, o.kind) for o in carried] == [("DataHeader", "rntuple"), ("DataHeaderForm", "rntuple"),
                                                   ("EventTag", "rntuple")]
    assert sorted(refused) == sorted(["##Params", "##Shapes", "##Links", "MetaData", "MetaDataHdr",
                                      "MetaDataHdrForm"])
    for name in ("##Params", "##Shapes", "##Links"):
        assert "'db_string' (char* (AsStrings)" in refused[name]
    assert "split object branch with sub-branches" in refused["MetaData"]
    assert "DataHeader_p6 (AsObjects)" in refused["MetaDataHdr"]
    assert "DataHeaderForm_p6 (AsObjects)" in refused["MetaDataHdrForm"]

    target = tmp_path / "physlite-metadata.root"
    written = copy(source, target, carried, step_size=30)
    assert digests(target, carried) == written
    with uproot.open(source) as a, uproot.open(target) as b:
        for obj in carried:
            assert b[obj.path].arrays().type == a[obj.path].arrays().type
            assert ak.array_equal(b[obj.path].arrays(), a[obj.path].arrays(), dtype_exact=True)
