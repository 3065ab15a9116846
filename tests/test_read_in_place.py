"""Compressed files read in place (``hepae.open``, ``hepae.iterate``, ``hepae.dask``) give exactly what
``hepae decompress`` writes: for every layout and codec, any entry range, any step size."""

from __future__ import annotations

import logging

import awkward as ak
import numpy as np
import pytest
import uproot
from hypothesis import given, settings
from hypothesis import strategies as st

import hepae
from hepae.errors import ContainerFormatError

BOUNDS = ["pt=rel:1e-3", "eta=abs:1e-3", "phi=abs:1e-3", "m=rel:1e-3"]
CODECS = {"lossless": {"id": "lossless"}, "truncate": {"id": "truncate", "mantissa_bits": 9},
          "ae-bounded": {"id": "ae", "error_bounds": BOUNDS}, "ae-10-bits": {"id": "ae", "latent_bits": 10}}
STEP = 400
"""Events per compressed chunk: the 1500-event samples span four chunks, so ranges cut through them."""


def _pair(source, featureset, model, codec, directory):
    """(compressed file, its decompressed copy, the table name)."""
    compressed, reco = directory / "c.root", directory / "r.root"
    hepae.compress(source, compressed, model if CODECS[codec]["id"] == "ae" else None, codec=CODECS[codec],
                   featureset=featureset, step_size=STEP, progress=False)
    hepae.decompress(compressed, reco, progress=False)
    return compressed, reco, hepae.load_featureset(featureset).tree


@pytest.fixture(scope="module")
def xaod_files(samples, models, tmp_path_factory):
    """Per codec: the xAOD-layout sample compressed with it, and decompressed."""
    return {codec: _pair(samples["atlas-jets-4d"], "atlas-jets-4d", models["atlas-jets-4d"], codec,
                         tmp_path_factory.mktemp(codec)) for codec in CODECS}


def assert_same(got: ak.Array, want: ak.Array) -> None:
    assert got.fields == want.fields
    for field in want.fields:
        assert got[field].type == want[field].type, field
        assert ak.array_equal(got[field], want[field], equal_nan=True), field


@pytest.mark.parametrize("codec", list(CODECS))
def test_every_branch_reads_as_the_decompressed_file_holds_it(xaod_files, codec):
    compressed, reco, tree = xaod_files[codec]
    with hepae.open(compressed) as table, uproot.open(reco) as f:
        want = f[tree]
        assert table.keys() == want.keys() and table.num_entries == want.num_entries
        assert_same(table.arrays(), want.arrays())
        jet_pt = "AntiKt4EMTopoJetsAux.pt"
        assert ak.array_equal(table[jet_pt].array(entry_start=10, entry_stop=20),
                              want[jet_pt].array(entry_start=10, entry_stop=20))
        got_np, want_np = table.arrays([jet_pt, "EventInfoAux.eventNumber"], library="np"), \
            want.arrays([jet_pt, "EventInfoAux.eventNumber"], library="np")
        np.testing.assert_array_equal(got_np["EventInfoAux.eventNumber"], want_np["EventInfoAux.eventNumber"])
        assert all(np.array_equal(a, b) for a, b in zip(got_np[jet_pt], want_np[jet_pt]))


@settings(max_examples=25, deadline=None)
@given(st.integers(-1600, 1600), st.integers(-1600, 1600), st.integers(1, 1600))
def test_any_entry_range_and_step_size_cutting_through_chunks(xaod_files, start, stop, step):
    compressed, reco, tree = xaod_files["ae-bounded"]
    names = ["nAntiKt4EMTopoJetsAux", "AntiKt4EMTopoJetsAux.m", "EventInfoAux.eventNumber"]
    with hepae.open(compressed) as table, uproot.open(reco) as f:
        want = f[tree].arrays(names, entry_start=start, entry_stop=stop)
        assert_same(table.arrays(names, entry_start=start, entry_stop=stop), want)
        pieces = list(table.iterate(names, step_size=step, entry_start=start, entry_stop=stop))
        assert all(len(p) <= step for p in pieces)
        if pieces:
            assert_same(ak.concatenate(pieces), want)


@pytest.mark.parametrize("featureset", ["physlite-rntuple-jets-4d", "nanoaod-jets-4d"])
def test_other_layouts_read_in_place(featureset, tmp_path):
    source = hepae.make_sample(tmp_path / "s.root", featureset, n_events=900, seed=3)
    compressed, reco, tree = _pair(source, featureset, None, "truncate", tmp_path)
    with hepae.open(compressed) as table, uproot.open(reco) as f:
        assert table.keys() == f[tree].keys()
        assert_same(table.arrays(entry_start=100, entry_stop=850), f[tree].arrays(entry_start=100, entry_stop=850))


def test_a_table_from_darkmachines_csv_reads_in_place(tmp_path):
    csv = hepae.make_darkmachines_sample(tmp_path / "events.csv", n_events=700, seed=2)
    compressed, reco, tree = _pair(csv, "darkmachines-jets-4d", None, "lossless", tmp_path)
    with hepae.open(compressed) as table, uproot.open(reco) as f:
        assert_same(table.arrays(), f[tree].arrays())


def test_exact_branches_are_read_without_decoding(xaod_files, monkeypatch):
    """An exact branch is an ordinary branch of the compressed file: no chunk is decoded for it."""
    compressed, reco, tree = xaod_files["ae-bounded"]
    with hepae.open(compressed) as table:
        monkeypatch.setattr(type(table), "_decoded", lambda *a: pytest.fail("decoded a chunk for an exact branch"))
        got = table.arrays(["EventInfoAux.eventNumber", "nElectronsAux", "ElectronsAux.pt"], entry_stop=777)
    with uproot.open(reco) as f:
        assert_same(got, f[tree].arrays(["EventInfoAux.eventNumber", "nElectronsAux", "ElectronsAux.pt"],
                                        entry_stop=777))


def test_iterate_reads_compressed_and_plain_files_alike(xaod_files, samples):
    compressed, reco, tree = xaod_files["lossless"]
    names = ["AntiKt4EMTopoJetsAux.pt", "EventInfoAux.eventNumber"]
    chunks = list(hepae.iterate([compressed, samples["atlas-jets-4d"]], names, step_size=700))
    assert [len(c) for c in chunks] == [700, 700, 100] * 2
    original = uproot.open(samples["atlas-jets-4d"])[tree].arrays(names)
    assert_same(ak.concatenate(chunks[:3]), original)  # lossless: the original values
    assert_same(ak.concatenate(chunks[3:]), original)


def test_a_damaged_chunk_is_refused_naming_the_file_and_the_chunk(samples, tmp_path):
    compressed = tmp_path / "plain.root"  # no ROOT compression: the stored values can be found and damaged
    hepae.compress(samples["atlas-jets-4d"], compressed, codec="lossless", featureset="atlas-jets-4d",
                   step_size=STEP, compression="none", progress=False)
    data = bytearray(compressed.read_bytes())
    with uproot.open(compressed) as f:
        value = f["hepae_streams"]["value_pt"].array(library="np")[2][:1].tobytes()  # chunk 2
    position = bytes(data).find(value[::-1])  # ROOT stores big-endian
    assert position > 0
    data[position] ^= 0x01
    damaged = tmp_path / "d.root"
    damaged.write_bytes(bytes(data))
    with hepae.open(damaged) as table:
        table.arrays(entry_stop=STEP)  # chunk 0 is fine
        with pytest.raises(ContainerFormatError, match=r"d\.root: data checksum mismatch in chunk 2"):
            table.arrays(entry_start=2 * STEP, entry_stop=2 * STEP + 5)


def test_open_gives_uproot_s_tree_for_a_plain_file(samples):
    table = hepae.open(samples["atlas-jets-4d"])
    try:
        assert isinstance(table, uproot.TTree) and table.num_entries == 1500
    finally:
        table.file.close()


distributed = pytest.importorskip("distributed")
dask_awkward = pytest.importorskip("dask_awkward")


@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_dask_collections_over_compressed_files_compute_on_a_cluster(xaod_files, tmp_path):
    compressed, reco, tree = xaod_files["ae-bounded"]
    names = ["AntiKt4EMTopoJetsAux.pt", "AntiKt4EMTopoJetsAux.eta"]
    copy = tmp_path / "copy.root"
    copy.write_bytes(compressed.read_bytes())
    lazy = hepae.dask([compressed, copy], names)
    assert lazy.npartitions == 2 * 4  # one per compressed chunk
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  silence_logs=logging.ERROR) as cluster, distributed.Client(cluster) as client:
        got = lazy.compute()
        per_event = dask_awkward.num(lazy["AntiKt4EMTopoJetsAux.pt"], axis=1)
        n_jets = int(client.compute(dask_awkward.sum(per_event)).result())
    want = uproot.open(reco)[tree].arrays(names)
    assert_same(got, ak.concatenate([want, want]))
    assert n_jets == 2 * int(ak.sum(ak.num(want["AntiKt4EMTopoJetsAux.pt"])))


def test_uproot_style_options(xaod_files):
    """Regex filters, ``how=tuple``, a range-sized record with no branch, and a clear error for a size step."""
    compressed, reco, tree = xaod_files["truncate"]
    with hepae.open(compressed) as table, uproot.open(reco) as f:
        regex = "/.*Jets?Aux\\.p/"
        assert table.keys(filter_name=regex) == f[tree].keys(filter_name=regex) != []
        pt, eta = table.arrays(["AntiKt4EMTopoJetsAux.pt", "AntiKt4EMTopoJetsAux.eta"], how=tuple, entry_stop=9)
        assert ak.array_equal(eta, f[tree]["AntiKt4EMTopoJetsAux.eta"].array(entry_stop=9)) and len(pt) == 9
        assert len(table.arrays(filter_name="nothing*", entry_start=5, entry_stop=12)) == 7
        with pytest.raises(ValueError, match="number of entries for a compressed file"):
            next(table.iterate(step_size="100 MB"))
