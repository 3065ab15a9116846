"""Reading: jagged branches <-> (n_objects, D) tensor + counts, chunked, with clear errors."""

import awkward as ak
import numpy as np
import pytest
import uproot
from hypothesis import given, settings
from hypothesis import strategies as st

import hepae
from hepae.errors import BranchNotFoundError, BranchTypeError, InputFileError, TreeNotFoundError
from hepae.features import load_featureset
from hepae.io.branches import BranchSpec
from hepae.io.tensors import collection_to_tensor, iterate_collection, tensor_to_collection
from hepae.io.writing import TreeWriter

FS = load_featureset("atlas-jets-4d")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=0, max_size=40))
def test_tensor_and_collection_are_inverse_for_any_counts(counts):
    counts = np.array(counts, dtype=np.int64)
    values = np.random.default_rng(len(counts)).normal(size=(int(counts.sum()), 4)).astype(np.float32)
    arrays = tensor_to_collection(values, counts, FS)
    assert list(arrays) == FS.branches
    back, back_counts = collection_to_tensor(arrays, FS)
    np.testing.assert_array_equal(back_counts, counts)
    np.testing.assert_array_equal(back, values)
    assert back.dtype == np.float32 and back.shape == (counts.sum(), 4)


def test_chunks_cover_the_file_and_respect_step_size(samples):
    path = samples["atlas-jets-4d"]
    whole = list(iterate_collection(path, FS, step_size=10**9))
    chunks = list(iterate_collection(path, FS, step_size=400))
    assert len(whole) == 1 and len(chunks) == 4  # 1500 events in chunks of 400
    assert [c.entry_start for c in chunks] == [0, 400, 800, 1200]
    np.testing.assert_array_equal(np.concatenate([c.values for c in chunks]), whole[0].values)
    with uproot.open(path) as f:
        pt = f["CollectionTree"]["AntiKt4EMTopoJetsAux.pt"].array()
    np.testing.assert_array_equal(whole[0].values[:, 0], ak.to_numpy(ak.flatten(pt)))
    assert (whole[0].counts == 0).any(), "the sample has events without jets"


def _write(path, specs, data, tree="CollectionTree"):
    with uproot.recreate(path) as f:
        TreeWriter(f, tree, specs).extend(data)


def test_zero_event_file_and_empty_events(tmp_path):
    specs = [BranchSpec(b, "float32", "nJets") for b in FS.branches]
    empty = tmp_path / "empty.root"
    with uproot.recreate(empty) as f:
        TreeWriter(f, "CollectionTree", specs)
    assert list(iterate_collection(empty, FS)) == []
    no_jets = tmp_path / "nojets.root"
    _write(no_jets, specs, {b: ak.Array([[], [], []], ) for b in FS.branches} | {})
    (chunk,) = iterate_collection(no_jets, FS)
    assert chunk.values.shape == (0, 4) and list(chunk.counts) == [0, 0, 0]


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(InputFileError, match="does not exist"):
        list(iterate_collection(tmp_path / "nope.root", FS))
    text = tmp_path / "text.root"
    text.write_text("this is not ROOT")
    with pytest.raises(InputFileError, match="not a readable ROOT file"):
        list(iterate_collection(text, FS))


def test_missing_tree_lists_the_trees_that_exist(samples):
    with pytest.raises(TreeNotFoundError, match=r"no TTree or RNTuple 'Events'.*: CollectionTree \(TTree\)"):
        list(iterate_collection(samples["atlas-jets-4d"], "nanoaod-jets-4d"))


def test_missing_branch_lists_close_matches(samples):
    # PHYSLITE names asked of an xAOD-layout file with a different tree content
    fs = load_featureset("physlite-jets-4d")
    with pytest.raises(BranchNotFoundError, match=r"AnalysisJetsAuxDyn.pt.*close matches.*AntiKt4EMTopoJetsAux.pt"):
        list(iterate_collection(samples["atlas-jets-4d"], fs))


def test_branch_that_is_not_jagged_is_refused(tmp_path):
    path = tmp_path / "flat.root"
    specs = [BranchSpec(b, "float32") for b in FS.branches]
    _write(path, specs, {b: np.ones(3, np.float32) for b in FS.branches})
    with pytest.raises(BranchTypeError, match="one float32 per event; expected a jagged"):
        list(iterate_collection(path, FS))


def test_branches_with_different_counters_are_not_one_collection(tmp_path):
    path = tmp_path / "mixed.root"
    specs = [BranchSpec(b, "float32", "nA" if i < 2 else "nB") for i, b in enumerate(FS.branches)]
    data = {b: ak.Array([[1.0], [2.0, 3.0]] if i < 2 else [[1.0, 2.0], []]) for i, b in enumerate(FS.branches)}
    _write(path, specs, data)
    with pytest.raises(BranchTypeError, match="different counters"):
        list(iterate_collection(path, FS))


def test_several_input_files_are_streamed_in_order(samples, sample_dir):
    second = hepae.make_sample(sample_dir / "second.root", "atlas-jets-4d", n_events=100, seed=99, overwrite=True)
    chunks = list(iterate_collection([samples["atlas-jets-4d"], second], FS))
    assert [c.file_index for c in chunks] == [0, 1]
    assert len(chunks[1].counts) == 100
