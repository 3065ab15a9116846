"""Whole files under a precision profile: every collection and every float branch within its rule, every
other branch identical, in every layout (xAOD- and NanoAOD-style TTrees, RNTuples, DarkMachines CSV)."""

from __future__ import annotations

import json

import awkward as ak
import numpy as np
import pytest
import uproot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hepae
from conftest import shared_file
from hepae.cli import main
from hepae.codecs import ErrorBound, get_codec, within_bound
from hepae.container import ContainerReader
from hepae.errors import CodecError, ContainerFormatError, ProfileError
from hepae.io.sources import open_source
from hepae.profiles import builtin_profiles, load_profile
from hepae.schema import schema_text, validate
from roundtrip_checks import rewrite_container


def read_table(path, name: str) -> dict[str, ak.Array]:
    """Every branch of a table (TTree, RNTuple or DarkMachines CSV), in one piece."""
    with open_source(path, name) as source:
        chunks = list(source.iterate(source.layout.names, 10**9))
    return {k: ak.concatenate([c[k] for c in chunks]) if len(chunks) > 1 else chunks[0][k] for k in chunks[0]}


def assert_within_rules(original, reconstructed, table: str, applied: dict[str, str]) -> None:
    """Same branches, in order, with the same types and counts; every lossy branch value by value within its
    rule (NaN stays NaN, infinities stay infinite); every other branch identical."""
    a, b = read_table(original, table), read_table(reconstructed, table)
    assert list(a) == list(b)
    for name in a:
        x, y = a[name], b[name]
        assert str(ak.type(x)) == str(ak.type(y)), name
        if x.ndim > 1:
            assert ak.all(ak.num(x, axis=1) == ak.num(y, axis=1)), name
        if name not in applied:
            assert ak.array_equal(x, y, equal_nan=True, dtype_exact=True), f"{name} is not identical"
            flat_x, flat_y = ak.to_numpy(ak.ravel(x)), ak.to_numpy(ak.ravel(y))
            if flat_x.dtype.kind == "f":  # the same bits: -0.0 is not +0.0, NaN payloads kept
                bits = f"u{flat_x.dtype.itemsize}"
                assert np.array_equal(flat_x.view(bits), flat_y.view(bits)), f"{name} is not bit for bit identical"
            continue
        kind, value = applied[name].split(":")
        flat_x, flat_y = ak.to_numpy(ak.ravel(x)), ak.to_numpy(ak.ravel(y))
        ok = within_bound(flat_x, flat_y, kind, float(value))
        assert ok.all(), f"{name}: {np.count_nonzero(~ok)} values outside {applied[name]}"
        assert np.array_equal(np.isnan(flat_x), np.isnan(flat_y)), name
        assert np.array_equal(flat_x[np.isinf(flat_x)], flat_y[np.isinf(flat_x)]), name


def metadata(path) -> dict:
    with ContainerReader(path) as reader:
        return reader.metadata


@pytest.mark.parametrize(("featureset", "table"), [
    ("atlas-jets-27d", "CollectionTree"),  # xAOD-style TTree: 27 jet variables, electrons, event floats
    ("nanoaod-jets-4d", "Events"),  # NanoAOD-style TTree
    ("physlite-rntuple-jets-4d", "EventData"),  # RNTuple: fields grouped by collection, no counter branches
])
def test_a_whole_file_round_trips_within_its_profile(featureset, table, tmp_path):
    sample = hepae.make_sample(tmp_path / "in.root", featureset, n_events=600, seed=3)
    before = sample.read_bytes()
    summary = hepae.compress(sample, tmp_path / "c.root", progress=False)  # no model, no profile: the file's own
    hepae.decompress(tmp_path / "c.root", tmp_path / "r.root", progress=False)
    applied = metadata(tmp_path / "c.root")["profile"]["applied"]
    assert summary["profile"] in builtin_profiles() and len(applied) >= 4
    assert len(summary["units"]) >= 2  # jets and electrons, each a unit
    assert max(summary["max_error_over_bound"].values()) <= 1
    assert_within_rules(sample, tmp_path / "r.root", table, applied)
    assert sample.read_bytes() == before  # the input is never modified


def test_a_darkmachines_csv_file_round_trips_within_its_profile(tmp_path):
    sample = hepae.make_darkmachines_sample(tmp_path / "in.csv", n_events=400, seed=4)
    summary = hepae.compress(sample, tmp_path / "c.root", progress=False)
    assert summary["profile"] == "darkmachines"
    applied = metadata(tmp_path / "c.root")["profile"]["applied"]
    assert set(applied) == {"MET", "METphi", "obj_E", "obj_pt", "obj_eta", "obj_phi"}
    hepae.decompress(tmp_path / "c.root", tmp_path / "r.root", progress=False)
    assert_within_rules(sample, tmp_path / "r.root", "events", applied)
    hepae.decompress(tmp_path / "c.root", tmp_path / "r.csv", progress=False)  # back to CSV text too
    assert_within_rules(sample, tmp_path / "r.csv", "events", applied)


def test_an_rntuple_file_holds_rntuples_only(tmp_path):
    """Beside an RNTuple table (a CSV file's, here), the codec streams are an RNTuple too (format 7): the file
    needs none of ROOT's TTree classes, whose descriptions uproot stores uncompressed (~20 kB a file before)."""
    sample = hepae.make_darkmachines_sample(tmp_path / "in.csv", n_events=400, seed=4)
    hepae.compress(sample, tmp_path / "c.root", progress=False)
    with uproot.open(tmp_path / "c.root") as f:
        assert set(f.classnames().values()) == {"ROOT::RNTuple", "TObjString"}
        assert set(f.file.streamers) == {"TObjString"}
        assert f.file.fNbytesInfo < 2000


@pytest.mark.parametrize("storage", ["ttree", "rntuple"])
def test_a_table_whose_every_branch_is_lossy_round_trips(storage, tmp_path):
    """A flat ntuple of floats under '*=rel:1e-3' leaves its table no branch; the compressed table keeps its
    entries in a branch of zeros that the restored file does not have (uproot cannot write a TTree without one:
    this raised a ValueError before)."""
    rng = np.random.default_rng(1)
    values = {"x": rng.normal(size=500).astype(np.float32), "y": rng.exponential(size=500).astype(np.float32)}
    with uproot.recreate(tmp_path / "in.root") as f:
        if storage == "ttree":
            f.mktree("t", {k: v.dtype for k, v in values.items()}).extend(values)
        else:
            f.mkrntuple("t", {k: v.dtype for k, v in values.items()}).extend(ak.Array(values))
    hepae.compress(tmp_path / "in.root", tmp_path / "c.root", rules=["*=rel:1e-3"], progress=False)
    assert metadata(tmp_path / "c.root")["profile"]["applied"] == {"x": "rel:0.001", "y": "rel:0.001"}
    hepae.decompress(tmp_path / "c.root", tmp_path / "r.root", progress=False)
    assert_within_rules(tmp_path / "in.root", tmp_path / "r.root", "t", {"x": "rel:1e-3", "y": "rel:1e-3"})
    in_place = hepae.open(tmp_path / "c.root").arrays()
    assert in_place.fields == ["x", "y"] and len(in_place) == 500


def test_an_input_branch_named_like_the_entries_branch_is_kept(tmp_path):
    """An input's own 'hepae_entries' is a branch like any other, never taken for the table's placeholder."""
    values = {"hepae_entries": np.arange(300, dtype=np.int32), "x": np.linspace(1, 2, 300, dtype=np.float32)}
    with uproot.recreate(tmp_path / "in.root") as f:
        f.mktree("t", {k: v.dtype for k, v in values.items()}).extend(values)
    hepae.compress(tmp_path / "in.root", tmp_path / "c.root", rules=["x=rel:1e-3"], progress=False)
    hepae.decompress(tmp_path / "c.root", tmp_path / "r.root", progress=False)
    assert_within_rules(tmp_path / "in.root", tmp_path / "r.root", "t", {"x": "rel:1e-3"})
    assert np.array_equal(hepae.open(tmp_path / "c.root").arrays()["hepae_entries"], values["hepae_entries"])


def test_a_compressed_file_holds_no_dead_bytes(tmp_path, samples):
    """Every byte of a compressed TTree file is the header, the streamer list, the keys and their objects, or
    the baskets: no copy of the streamer list left behind when the metadata's class joined it (~20 kB in every
    file before)."""
    import os

    def unaccounted(path) -> int:
        with uproot.open(path) as f:
            used = f.file.fBEGIN + f.file.fNbytesInfo + f.file.fNbytesFree + f.fNbytesKeys + f.fNbytesName
            for name in f.keys(cycle=False):
                used += f.key(name).fNbytes
                if isinstance(f[name], uproot.TTree):
                    used += sum(int(sum(b.member("fBasketBytes")[:b.num_baskets])) for b in f[name].branches)
        return os.path.getsize(path) - used

    hepae.compress(samples["nanoaod-jets-4d"], tmp_path / "c.root", profile="nanoaod", progress=False)
    assert 0 <= unaccounted(tmp_path / "c.root") < 2048


def test_floats_kept_exact_are_coded_with_their_collection_bit_for_bit(tmp_path):
    """A float32 branch the profile keeps exact (CMS NanoAOD stores a photon's pT and MET at full precision) joins
    the unit of its collection, or of the per-event floats, and comes back bit for bit: ROOT's compression of it
    cost ~3.7 bytes per photon pT here, and ~2.6 bits per jet for a 0/1 flag, as the entry offsets of every jagged
    branch are stored with it. Float64 ones, and those of a collection with no lossy branch, stay in the table."""
    rng = np.random.default_rng(11)
    counts, photons = rng.integers(0, 5, 3000), rng.integers(0, 2, 3000)
    n, m = int(counts.sum()), int(photons.sum())
    jets = {"Jet_pt": rng.exponential(40, n), "Jet_btag": (rng.uniform(size=n) < 0.05) * 1.0}
    data = {
        "Jet": ak.zip({k[4:]: ak.unflatten(v.astype(np.float32), counts) for k, v in jets.items()}
                      | {"weight": ak.unflatten(rng.normal(size=n), counts)}),  # float64: stays in the table
        "Photon": ak.zip({"pt": ak.unflatten(rng.exponential(50, m).astype(np.float32), photons),
                          "eta": ak.unflatten(rng.normal(size=m).astype(np.float32), photons)}),
        "Tau": ak.zip({"pt": ak.unflatten(rng.exponential(30, n).astype(np.float32), counts)}),  # all exact
        "MET_pt": np.where(rng.uniform(size=3000) < 0.75, 0, rng.exponential(30, 3000)).astype(np.float32),
        "MET_phi": rng.uniform(-3, 3, 3000).astype(np.float32)}
    with uproot.recreate(tmp_path / "in.root") as f:  # NanoAOD's naming: Jet_pt, counted by nJet
        f.mktree("Events", {k: ak.type(v) for k, v in data.items()}, field_name=lambda outer, inner: f"{outer}_{inner}",
                 counter_name=lambda collection: f"n{collection}").extend(data)
    rules = ["Jet_pt=bits:10", "Photon_eta=bits:12", "MET_phi=bits:12"]
    empty = {"name": "t", "format_version": 1, "rules": []}
    hepae.compress(tmp_path / "in.root", tmp_path / "c.root", profile=empty, rules=rules, progress=False,
                   compression="lzma:9")
    units = {u["name"]: u for u in metadata(tmp_path / "c.root")["units"]}
    assert {name: u["codec"].get("exact") for name, u in units.items()} == \
        {"nJet": ["Jet_btag"], "nPhoton": ["Photon_pt"], "event": ["MET_pt"]}
    with uproot.open(tmp_path / "c.root") as f:
        kept = set(f["Events"].keys())
    assert {"Jet_weight", "Tau_pt"} <= kept and not kept & {"Jet_btag", "Photon_pt", "MET_pt"}
    hepae.decompress(tmp_path / "c.root", tmp_path / "r.root", progress=False)
    applied = {"Jet_pt": f"rel:{2.0**-11!r}", "Photon_eta": f"rel:{2.0**-13!r}", "MET_phi": f"rel:{2.0**-13!r}"}
    assert_within_rules(tmp_path / "in.root", tmp_path / "r.root", "Events", applied)  # the others bit for bit
    hepae.compress(tmp_path / "in.root", tmp_path / "all-kept.root", profile=empty, progress=False,
                   rules=[*rules, "Jet_btag=exact", "Photon_pt=exact", "MET_pt=exact"], compression="lzma:9")
    # the same rules; stored in the table instead, as before format 8, the file is larger
    assert (tmp_path / "c.root").stat().st_size < (tmp_path / "all-kept.root").stat().st_size


def test_a_collection_of_two_float_types_is_counted_by_a_branch_its_table_keeps(tmp_path):
    """A float32 branch kept exact joins the float32 unit of its collection; the float64 unit of the same collection
    must then count its objects with another branch (here the integer one), not with the one that left the table.
    A file whose unit names a missing count branch is refused when opened."""
    rng = np.random.default_rng(2)
    counts = rng.integers(0, 4, 500)
    n = int(counts.sum())
    data = {"Jet": ak.zip({"pt": ak.unflatten(rng.exponential(40, n).astype(np.float32), counts),
                           "btag": ak.unflatten((rng.uniform(size=n) < 0.1).astype(np.float32), counts),
                           "m": ak.unflatten(rng.exponential(5, n), counts),  # float64
                           "id": ak.unflatten(np.arange(n, dtype=np.int32), counts)})}
    with uproot.recreate(tmp_path / "in.root") as f:
        f.mktree("Events", {k: ak.type(v) for k, v in data.items()}, field_name=lambda outer, inner: f"{outer}_{inner}",
                 counter_name=lambda collection: f"n{collection}").extend(data)
    empty = {"name": "t", "format_version": 1, "rules": []}
    hepae.compress(tmp_path / "in.root", tmp_path / "c.root", profile=empty, progress=False,
                   rules=["Jet_pt=rel:1e-3", "Jet_m=rel:1e-3"])
    units = {u["name"]: u for u in metadata(tmp_path / "c.root")["units"]}
    assert units["nJet"]["codec"]["exact"] == ["Jet_btag"] and units["nJet_float64"]["count_branch"] == "Jet_id"
    hepae.decompress(tmp_path / "c.root", tmp_path / "r.root", progress=False)
    assert_within_rules(tmp_path / "in.root", tmp_path / "r.root", "Events",
                        {"Jet_pt": "rel:0.001", "Jet_m": "rel:0.001"})

    def count_with_the_joined_branch(m):
        m["units"][1]["count_branch"] = "Jet_btag"

    edited = rewrite_container(tmp_path / "c.root", tmp_path / "e.root", edit_metadata=count_with_the_joined_branch)
    with pytest.raises(ContainerFormatError, match="is counted by branch 'Jet_btag', which its table does not hold"):
        hepae.decompress(edited, tmp_path / "r2.root", progress=False)


def test_an_energy_is_coded_after_the_pt_and_eta_that_predict_it(tmp_path):
    """E = pT cosh(eta) up to the mass term: coded after them it costs a fraction of what it costs first, as the
    DarkMachines CSV stores it; the restored file keeps the file's order (checked in the round trip above)."""
    from hepae.codecs import Bounded
    from hepae.io.branches import BranchSpec
    from hepae.profiles import coding_order

    sample = hepae.make_darkmachines_sample(tmp_path / "in.csv", n_events=3000, seed=8)
    hepae.compress(sample, tmp_path / "c.root", progress=False)
    objects = next(u for u in metadata(tmp_path / "c.root")["units"] if u["counter"] is not None)
    assert [b["name"] for b in objects["branches"]] == ["obj_pt", "obj_eta", "obj_E", "obj_phi"]

    table = read_table(sample, "events")
    counts = ak.to_numpy(ak.num(table["obj_E"])).astype(np.int64)
    rules = {"obj_E": "rel:1e-3", "obj_pt": "rel:1e-3", "obj_eta": "abs:1e-4", "obj_phi": "abs:1e-4"}

    def coded_bytes(order: list[str]) -> int:
        values = np.column_stack([ak.to_numpy(ak.ravel(table[n])) for n in order])
        codec = Bounded([f"{n}={rules[n]}" for n in order]).bind(order, np.float64)
        return sum(len(s) for s in codec.encode(values, counts).values())

    as_stored = ["obj_E", "obj_pt", "obj_eta", "obj_phi"]
    assert coded_bytes(["obj_pt", "obj_eta", "obj_E", "obj_phi"]) < 0.95 * coded_bytes(as_stored)
    def order(names: list[str], counter: str | None = "nJet") -> list[str]:
        return [s.name for s in coding_order([BranchSpec(n, "float32", counter) for n in names])]

    assert order(["Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass"]) == ["Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass"]
    assert order(["J.e", "J.pt", "J.m", "J.eta", "J.phi"]) == ["J.pt", "J.m", "J.eta", "J.e", "J.phi"]
    assert order(["JAux.e", "JAux.pt", "JAuxDyn.eta"]) == ["JAux.pt", "JAuxDyn.eta", "JAux.e"]  # one collection
    assert order(["Jet_E", "Jet_pt"]) == ["Jet_E", "Jet_pt"]  # no eta: nothing to gain
    assert order(["Jet_pt", "Jet_eta", "Jet_E", "Jet_NegativeE"]) == ["Jet_pt", "Jet_eta", "Jet_E", "Jet_NegativeE"]
    # per-event values of several objects: an energy follows the pT and eta of its own name prefix only
    assert order(["A_E", "B_pt", "B_eta"], None) == ["A_E", "B_pt", "B_eta"]
    assert order(["A_E", "A_pt", "B_eta", "A_eta"], None) == ["A_pt", "B_eta", "A_eta", "A_E"]


def test_the_network_collection_and_the_profile_combine(tmp_path, models):
    """``-m model`` codes its collection; the profile covers every other float branch of the file."""
    sample = hepae.make_sample(tmp_path / "in.root", "atlas-jets-27d", n_events=500, seed=5)  # 27 jet variables
    summary = hepae.compress(sample, tmp_path / "c.root", models["atlas-jets-4d"], profile="xaod",
                             rules=["ElectronsAux.pt=rel:1e-2"], progress=False)
    meta = metadata(tmp_path / "c.root")
    assert meta["featureset"]["name"] == "atlas-jets-4d" and meta["units"]
    applied = meta["profile"]["applied"]
    assert applied["ElectronsAux.pt"] == "rel:0.01"  # a command-line rule overrides the profile's
    network = [c["branch"] for c in meta["featureset"]["columns"]]
    assert not set(applied) & set(network)  # the network's branches are not in units
    jets = next(u for u in meta["units"] if u["counter"] == "nAntiKt4EMTopoJetsAux")
    assert len(jets["branches"]) == 23 and jets["count_added"]  # no kept branch counts the other 23 jet floats
    hepae.decompress(tmp_path / "c.root", tmp_path / "r.root", progress=False)
    a, b = read_table(sample, "CollectionTree"), read_table(tmp_path / "r.root", "CollectionTree")
    for name in network:  # the autoencoder: structure kept, values approximate
        assert ak.all(ak.num(a[name]) == ak.num(b[name]))
    assert_within_rules(sample, tmp_path / "r.root", "CollectionTree",
                        {**applied, **{n: "abs:1e30" for n in network}})
    assert summary["residuals"] is not None and summary["max_error_over_bound"]


def test_the_bounded_codec_codes_a_feature_set_without_a_model(tmp_path):
    sample = hepae.make_sample(tmp_path / "in.root", "nanoaod-jets-4d", n_events=400, seed=6)
    bounds = ["pt=bits:10", "eta=abs:1e-3", "phi=abs:1e-3", "m=rel:1e-3"]
    hepae.compress(sample, tmp_path / "c.root", codec={"id": "bounded", "error_bounds": bounds},
                   featureset="nanoaod-jets-4d", progress=False)
    hepae.decompress(tmp_path / "c.root", tmp_path / "r.root", progress=False)
    applied = {"Jet_pt": f"rel:{2**-11}", "Jet_eta": "abs:1e-3", "Jet_phi": "abs:1e-3", "Jet_mass": "rel:1e-3"}
    assert_within_rules(sample, tmp_path / "r.root", "Events", applied)


# -- any values --------------------------------------------------------------------------------------

SPECIAL = st.sampled_from([0.0, -0.0, np.nan, np.inf, -np.inf, 1e-42, -1e-42, 3.4e38, -3.4e38, 1e-30, 1.0, -1.0])
FLOATS = st.one_of(SPECIAL, st.floats(width=32, allow_nan=True, allow_infinity=True))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(counts=st.lists(st.integers(0, 4), min_size=1, max_size=30), data=st.data(),
       rel=st.sampled_from([1e-1, 1e-3, 2**-24]), absolute=st.sampled_from([1e-3, 1.0, 1e-30]))
def test_any_values_come_back_within_their_rules(tmp_path_factory, counts, data, rel, absolute):
    """NaN, infinities, zeros of both signs, subnormals, the largest floats, sign changes: every value of
    every lossy branch within its rule, and every value of the floats the rules keep exact (``Obj_c``, ``SumEt``:
    coded with their unit, bit for bit, NaN payloads too), through a real file."""
    tmp_path = tmp_path_factory.mktemp("any")
    n = sum(counts)
    values = {f"Obj_{v}": data.draw(st.lists(FLOATS, min_size=n, max_size=n)) for v in ("a", "b", "c")}
    event = data.draw(st.lists(FLOATS, min_size=len(counts), max_size=len(counts)))
    exact_event = np.asarray(data.draw(st.lists(FLOATS, min_size=len(counts), max_size=len(counts))), np.float32)
    signalling_nan = np.uint32(0x7FA00001).view(np.float32)  # a payload of its own, widened with an "invalid" flag
    if len(exact_event):
        exact_event[0] = signalling_nan
    if n:
        values["Obj_a"][0] = values["Obj_c"][0] = signalling_nan
    data = {"event": np.arange(len(counts), dtype=np.int64), "MET": np.asarray(event, np.float32), "SumEt": exact_event,
            "Obj": ak.zip({**{k[4:]: ak.unflatten(np.asarray(v, np.float32), counts) for k, v in values.items()},
                           "id": ak.unflatten(np.arange(n, dtype=np.int32), counts)})}
    with uproot.recreate(tmp_path / "in.root") as f:  # NanoAOD's naming: Obj_a, counted by the stored nObj
        f.mktree("Events", {k: ak.type(v) for k, v in data.items()}, field_name=lambda outer, inner: f"{outer}_{inner}",
                 counter_name=lambda collection: f"n{collection}").extend(data)
    rules = [f"Obj_a=rel:{rel!r}", f"Obj_b=abs:{absolute!r}", f"MET=abs:{absolute!r}"]
    hepae.compress(tmp_path / "in.root", tmp_path / "c.root", profile={"name": "t", "format_version": 1, "rules": []},
                   rules=rules, progress=False)
    hepae.decompress(tmp_path / "c.root", tmp_path / "r.root", progress=False)
    applied = {"Obj_a": f"rel:{rel!r}", "Obj_b": f"abs:{absolute!r}", "MET": f"abs:{absolute!r}"}
    assert_within_rules(tmp_path / "in.root", tmp_path / "r.root", "Events", applied)
    exact = {name for unit in metadata(tmp_path / "c.root")["units"] for name in unit["codec"].get("exact", [])}
    assert exact == {"Obj_c", "SumEt"}


# -- real files ---------------------------------------------------------------------------------------

def test_the_real_cms_nanoaod_file_round_trips_under_nanoaod(tmp_path):
    source = shared_file("data/real/nanoAOD_2015_CMS_Open_Data_ttbar.root")
    hepae.compress(source, tmp_path / "c.root", profile="nanoaod", progress=False)
    hepae.decompress(tmp_path / "c.root", tmp_path / "r.root", progress=False)
    applied = metadata(tmp_path / "c.root")["profile"]["applied"]
    assert len(applied) > 200
    # ROOT kept most of this small file's baskets inside the TTree's record, where no branch's bytes can be told
    # apart: unknown (shown as '-'), never 0 bytes and a ratio of 0 as before
    assert {u["input_compressed_bytes"] for u in metadata(tmp_path / "c.root")["units"]} == {None}
    with uproot.open(source) as a, uproot.open(tmp_path / "r.root") as b:
        assert a["Events"].keys() == b["Events"].keys() and len(a["Events"].keys()) == 947
    counters = {f"n{name.split('_')[0]}" for name in applied}  # uproot writes counters as int32 (README)
    a, b = read_table(source, "Events"), read_table(tmp_path / "r.root", "Events")
    assert list(a) == list(b)
    for name in a:
        if name in applied:
            kind, value = applied[name].split(":")
            assert within_bound(ak.to_numpy(ak.ravel(a[name])), ak.to_numpy(ak.ravel(b[name])), kind,
                                float(value)).all(), name
        else:
            assert ak.array_equal(a[name], b[name], equal_nan=True, dtype_exact=name not in counters), name


def test_the_real_physlite_rntuple_round_trips_under_physlite(tmp_path):
    source = shared_file("data/real/uproot-physlite-rntuple_v1-0-0-0.root")
    with pytest.warns(UserWarning, match="leaving out"):
        hepae.compress(source, tmp_path / "c.root", profile="physlite", drop_unsupported=True, progress=False)
    hepae.decompress(tmp_path / "c.root", tmp_path / "r.root", progress=False)
    applied = metadata(tmp_path / "c.root")["profile"]["applied"]
    assert len(applied) > 100
    assert_within_rules(source, tmp_path / "r.root", "EventData", applied)


# -- profiles ------------------------------------------------------------------------------------------

def test_every_builtin_profile_loads_and_says_where_its_numbers_come_from():
    assert set(builtin_profiles()) >= {"nanoaod", "physlite", "xaod", "darkmachines"}
    for name in builtin_profiles():
        profile = load_profile(name)
        assert profile.rules and profile.description and profile.source
    assert "PhysicsTools/NanoAOD" in load_profile("nanoaod").source
    assert load_profile("nanoaod").rules[0].rule.startswith(("bits:", "exact"))


def test_every_builtin_profile_follows_the_profile_schema():
    # loading a built-in skips the schema check (it costs every run tens of milliseconds); this test is it
    for name in builtin_profiles():
        document = json.loads(schema_text(f"profiles/{name}.json"))
        validate(document, "profile.schema.json", what=f"built-in profile {name}")


def test_a_compressed_file_records_the_rules_that_decided_a_branch(tmp_path, samples):
    hepae.compress(samples["nanoaod-jets-4d"], tmp_path / "c.root", profile="nanoaod",
                   rules=["Electron_pt=rel:1e-2", "Electron_*=bits:8"], progress=False)
    recorded = metadata(tmp_path / "c.root")["profile"]
    names = [b["name"] for b in metadata(tmp_path / "c.root")["branches"]]
    profile = load_profile("nanoaod").with_rules(["Electron_pt=rel:1e-2", "Electron_*=bits:8"])
    first_matches = [next((r for r in profile.rules if r.matches(n)), None) for n in names]
    assert recorded["rules"] == [{"pattern": r.pattern, "rule": r.rule, "origin": r.origin}
                                 for r in profile.rules if r in first_matches]  # in the profile's order
    assert recorded["rules"][:2] == [{"pattern": "Electron_pt", "rule": "rel:1e-2", "origin": "command line"},
                                     {"pattern": "Electron_*", "rule": "bits:8", "origin": "command line"}]
    assert 3 <= len(recorded["rules"]) < 20 < len(profile.rules)
    assert recorded["applied"]["Electron_pt"] == "rel:0.01" and recorded["applied"]["Electron_eta"] == "rel:0.001953125"


@pytest.mark.parametrize(("rule", "message"), [
    ("Jet_pt=rel:0", "must be a number > 0"),
    ("Jet_pt=abs:nan", "must be a number > 0"),
    ("Jet_pt=abs:-1e-3", "must be a number > 0"),
    ("Jet_pt=bits:0", "whole number of mantissa bits"),
    ("Jet_pt=round:3", "unknown rule"),
    ("Jet_pt", "not of the form PATTERN=RULE"),
    ("run=bits:10", "not floats"),  # an integer branch
    ("Jet_ptt=rel:1e-3", "matches no branch"),
])
def test_bad_rules_are_refused_in_one_line_and_nothing_is_written(rule, message, tmp_path, samples):
    with pytest.raises(ProfileError, match=message) as err:
        hepae.compress(samples["nanoaod-jets-4d"], tmp_path / "c.root", profile="nanoaod", rules=[rule],
                       progress=False)
    assert "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_bad_profiles_are_refused_naming_the_rule(tmp_path, samples):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "bad", "format_version": 1, "rules": [{"pattern": "Jet_*", "rule": "rel:2"}]}))
    with pytest.raises(ProfileError, match=r"Jet_\*=rel:2.*< 1 for a relative bound"):
        hepae.compress(samples["nanoaod-jets-4d"], tmp_path / "c.root", profile=bad, progress=False)
    bad.write_text(json.dumps({"name": "bad", "format_version": 1, "rules": [{"pattern": "Tau_*", "rule": "bits:8"}]}))
    with pytest.warns(UserWarning, match="makes no float branch .* lossy"):  # allowed: the file is rewritten
        hepae.compress(samples["nanoaod-jets-4d"], tmp_path / "c.root", profile=bad, progress=False)
    with pytest.raises(ProfileError, match=r"'Tau_\*=bits:8' matches no branch"):
        hepae.compress(samples["nanoaod-jets-4d"], tmp_path / "d.root", profile=bad, strict=True, progress=False)
    assert not (tmp_path / "d.root").exists()
    with pytest.raises(ProfileError, match="unknown precision profile 'nanoAOD'"):
        load_profile("nanoAOD")
    bad.write_text(json.dumps({"name": "bad", "format_version": 1, "rules": [{"pattern": "Jet_*"}]}))
    with pytest.raises(ProfileError, match=r"bad.json does not follow profile.schema.json: at 'rules/0'"):
        load_profile(bad)  # a user's file is checked against the schema (the built-ins, by the test above)


def test_bits_rules_are_the_nanoaod_guarantee():
    assert ErrorBound.parse("pt=bits:10") == ErrorBound("pt", "rel", 2.0**-11)
    with pytest.raises(CodecError, match="'exact' is not a bound"):
        get_codec({"id": "bounded", "error_bounds": ["pt=exact"]})


# -- the command line -----------------------------------------------------------------------------------

def test_the_command_line_compresses_a_whole_file_and_shows_each_unit(tmp_path, samples, capsys):
    source = samples["nanoaod-jets-4d"]
    main(["compress", str(source), "-o", str(tmp_path / "c.root"), "--profile", "nanoaod",
          "--error-bound", "Electron_pt=rel:1e-2", "-q"])
    out = capsys.readouterr().out
    assert "under profile 'nanoaod'" in out and "nJet" in out and "max |error| / bound" in out
    main(["inspect", str(tmp_path / "c.root")])
    out = capsys.readouterr().out
    assert "profile     nanoaod" in out and "command-line rules: Electron_pt=rel:1e-2" in out
    assert "unit        nElectron: 3 float32 branch(es)" in out
    with ContainerReader(tmp_path / "c.root") as reader:  # the units' streams are one branch, shared out among them
        sizes, stream_bytes = reader.sizes(), reader.stream_bytes()
        coded = [u["coded_bytes"] for u in reader.units]
        added = [reader.table.stored_bytes([u["count_branch"]]) if u["count_added"] else 0 for u in reader.units]
    assert set(stream_bytes) == {"entries", "n_units", "units"}
    packed = stream_bytes["units"] + stream_bytes["n_units"]
    shares = [u["output_bytes"] - a for u, a in zip(sizes["units"], added, strict=True)]
    assert sum(shares) == packed  # in proportion to each unit's coded bytes, to the byte
    assert all(abs(share - packed * c / sum(coded)) < 1 for share, c in zip(shares, coded, strict=True))
    main(["decompress", str(tmp_path / "c.root"), "-o", str(tmp_path / "r.root"), "-q"])
    applied = metadata(tmp_path / "c.root")["profile"]["applied"]
    assert applied["Electron_pt"] == "rel:0.01"
    assert_within_rules(source, tmp_path / "r.root", "Events", applied)
    main(["profiles"])
    assert "nanoaod" in capsys.readouterr().out


def test_a_codec_without_a_feature_set_is_refused(tmp_path, samples, capsys):
    source = samples["nanoaod-jets-4d"]
    assert main(["compress", str(source), "-o", str(tmp_path / "c.root"), "--codec", "truncate"]) == 1
    assert "--codec truncate codes a feature-set collection" in capsys.readouterr().err


# -- reading in place, validation, many files, benchmarks -----------------------------------------------

def test_a_whole_file_reads_in_place_as_decompressed(tmp_path, samples):
    source = samples["nanoaod-jets-4d"]
    hepae.compress(source, tmp_path / "c.root", profile="nanoaod", step_size=1000, progress=False)
    hepae.decompress(tmp_path / "c.root", tmp_path / "r.root", progress=False)
    names = ["Jet_pt", "nJet", "Electron_eta", "run"]
    with hepae.open(tmp_path / "c.root") as tree, uproot.open(tmp_path / "r.root") as f:
        got = tree.arrays(names, entry_start=700, entry_stop=1300)  # across the chunk boundary
        want = f["Events"].arrays(names, entry_start=700, entry_stop=1300)
        for name in names:
            assert ak.array_equal(got[name], want[name]), name


def test_validate_compares_every_lossy_branch_against_its_rule(tmp_path, samples):
    source = samples["nanoaod-jets-4d"]
    hepae.compress(source, tmp_path / "c.root", profile="nanoaod", rules=["Electron_pt=rel:1e-2"], progress=False)
    hepae.decompress(tmp_path / "c.root", tmp_path / "r.root", progress=False)
    report = hepae.validate(source, tmp_path / "r.root", tmp_path / "report", compressed=tmp_path / "c.root",
                            formats=("png",), progress=False)
    applied = metadata(tmp_path / "c.root")["profile"]["applied"]
    branches = report.metrics["branches"]
    assert set(branches) == set(applied) and report.passed
    assert branches["Electron_pt"]["rule"] == "rel:0.01"
    assert all(0 < b["max_error_over_bound"] <= 1 and b["within_bound"] for b in branches.values())
    assert {"branches_max_error.png", "branch_Jet_pt.png"} <= set(report.files)
    assert "Every lossy branch" in (tmp_path / "report" / "index.html").read_text()
    # a copy that breaks a bound fails, and names the branch
    with uproot.open(tmp_path / "r.root") as f:
        events = f["Events"].arrays(library="ak", how=dict)
    events["Jet_pt"] = events["Jet_pt"] * np.float32(1.01)
    with uproot.recreate(tmp_path / "bad.root") as f:
        f["Events"] = {k: v for k, v in events.items() if k != "nJet" and k != "nElectron"}
    report = hepae.validate(source, tmp_path / "bad.root", tmp_path / "bad-report", compressed=tmp_path / "c.root",
                            branches=["Jet_*"], formats=(), progress=False)
    assert not report.passed and report.metrics["branches"]["Jet_pt"]["within_bound"] is False
    assert set(report.metrics["branches"]) == {"Jet_pt", "Jet_eta", "Jet_phi", "Jet_mass"}


def test_compress_many_takes_a_profile(tmp_path, samples):
    pytest.importorskip("distributed")
    summary = hepae.compress_many([samples["nanoaod-jets-4d"], samples["atlas-jets-4d"]], None, tmp_path / "out",
                                  profile="nanoaod", rules=["Electron_pt=rel:1e-2"], workers=1, progress=False)
    assert summary["ok"] == 1 and summary["failed"] == 1  # the xAOD-layout file has no Electron_pt
    assert "matches no branch" in next(f["error"] for f in summary["files"] if f["status"] == "failed")
    done = next(f for f in summary["files"] if f["status"] == "ok")
    assert metadata(done["output"])["profile"]["applied"]["Electron_pt"] == "rel:0.01"
    with pytest.raises(ProfileError, match="unknown precision profile"):
        hepae.compress_many([samples["nanoaod-jets-4d"]], None, tmp_path / "out2", profile="nope", workers=1)


def test_whole_file_benchmark_runs(tmp_path, samples):
    import subprocess
    import sys

    from conftest import REPO

    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "whole_file.py"), "--input",
                             str(samples["nanoaod-jets-4d"]), "--repeat", "2", "--min-seconds", "0"],
                            capture_output=True, text=True,
                            cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    row = json.loads((tmp_path / "whole_file.json").read_text())["rows"][0]
    assert row["profile"] == "nanoaod" and row["lossy_branches"] == 6  # Jet_*, Electron_* but pT at full precision
    assert max(row["max_error_over_bound"].values()) <= 1  # hepae and truncation both keep the rules
    for counted in ("bytes", "file_bytes"):  # the table and the whole file
        assert {"lossless zstd", "lossless lzma", "truncated zstd", "truncated lzma", "hepae zstd"} <= set(row[counted])
    assert 0 < row["hepae_over_truncation"] < 1.5 and 0 < row["table_hepae_over_truncation"] < 1.5
    # the copy, compress and decompress timed in turn, round after round; each ratio from the fastest of each
    assert set(row["seconds"]) == {"copy", "compress", "decompress"} and row["rounds"] == 2
    assert row["speed_vs_copy"]["compress"] == round(row["seconds"]["copy"] / row["seconds"]["compress"], 3)
    assert "hepae/trunc." in result.stdout


def test_branches_are_compared_entry_by_entry_across_chunks(tmp_path):
    """A memory step size cuts two files at different entries; the comparison must still pair them."""
    from hepae.validation.branches import compare_branches

    sample = hepae.make_sample(tmp_path / "in.root", "atlas-jets-27d", n_events=3000, seed=12)
    hepae.compress(sample, tmp_path / "c.root", step_size=1000, progress=False)
    hepae.decompress(tmp_path / "c.root", tmp_path / "r.root", progress=False)
    applied = metadata(tmp_path / "c.root")["profile"]["applied"]
    errors = compare_branches(sample, tmp_path / "r.root", "CollectionTree", applied, step_size="200 kB")
    assert all(e.max_ratio <= 1 and e.n > 0 for e in errors.values())


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=8), st.integers(0, 7))
def test_unit_streams_packed_in_one_branch_come_back_and_wrong_lengths_are_refused(streams, cut):
    from hepae.container.format import pack_unit_streams, unpack_unit_streams

    arrays = [np.frombuffer(b, np.uint8) for b in streams]
    packed = pack_unit_streams(arrays)
    assert [bytes(a) for a in unpack_unit_streams(packed, len(arrays))] == streams
    if len(packed):
        with pytest.raises(ValueError):
            unpack_unit_streams(packed[:len(packed) - 1 - cut % len(packed)], len(arrays))
    with pytest.raises(ValueError):
        unpack_unit_streams(np.concatenate([packed, np.zeros(1 + cut, np.uint8)]), len(arrays))


@pytest.mark.parametrize("bad_chunk", [0, 2])
def test_a_decoded_value_outside_its_rule_stops_compress_and_nothing_is_written(bad_chunk, tmp_path, samples,
                                                                                 monkeypatch):
    """Compress decodes every chunk it wrote (in the background, one chunk behind) and checks each value against
    its rule: a value outside it, in the first chunk or the last, is an error and leaves no output."""
    from hepae.codecs.bounded import BoundBounded

    decode, calls = BoundBounded.decode, []

    def decode_one_value_wrong(self, streams, counts=None):
        values = decode(self, streams, counts)
        calls.append(counts)
        if len(calls) == 1 + bad_chunk * 2:  # the first unit (jets) of the chosen chunk: 2 units a chunk
            values[0, 0] = values[0, 0] * 1.5 + 1.0  # a fault injected after decoding: far outside any rule
        return values

    monkeypatch.setattr(BoundBounded, "decode", decode_one_value_wrong)
    with pytest.raises(CodecError, match="are not all within") as err:
        hepae.compress(samples["nanoaod-jets-4d"], tmp_path / "c.root", profile="nanoaod", step_size=500,
                       progress=False)
    assert "a hepae bug" in str(err.value) and "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []
    assert len(calls) >= 1 + bad_chunk * 2
