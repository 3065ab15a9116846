"""One TTree writer for every output; atomic outputs that never leave partial files."""

import awkward as ak
import numpy as np
import pytest
import uproot

from hepae.errors import BranchTypeError, OutputFileError
from hepae.layout import BranchSpec, describe_tree
from hepae.writing import TreeWriter, atomic_output


def test_groups_share_their_counter_and_order_is_kept(tmp_path):
    specs = [
        BranchSpec("event", "uint64"),
        BranchSpec("Jet_pt", "float32", "nJet"),
        BranchSpec("flag", "bool"),
        BranchSpec("Jet_id", "int32", "nJet"),
        BranchSpec("Mu_pt", "float64", "nMu"),
        BranchSpec("fixed", "(3,)float32"),
    ]
    data = {
        "event": np.array([1, 2, 3], np.uint64),
        "Jet_pt": ak.Array([[1.0, 2.0], [], [3.0]]),
        "flag": np.array([True, False, True]),
        "Jet_id": ak.Array([[1, 2], [], [3]]),
        "Mu_pt": ak.Array([[], [5.0], []]),
        "fixed": np.arange(9, dtype=np.float32).reshape(3, 3),
    }
    path = tmp_path / "t.root"
    with uproot.recreate(path) as f:
        writer = TreeWriter(f, "Events", specs)
        writer.extend(data)
        writer.extend(data)
    with uproot.open(path) as f:
        tree = f["Events"]
        # order kept; a generated counter stands before the first branch it counts
        assert tree.keys() == ["event", "nJet", "Jet_pt", "flag", "Jet_id", "nMu", "Mu_pt", "fixed"]
        layout = describe_tree(tree)
        assert layout.branches == specs
        assert layout.counters == {"nJet": "int32", "nMu": "int32"}
        assert tree["nJet"].array().tolist() == [2, 0, 1, 2, 0, 1]
        assert tree["Jet_id"].array().tolist() == [[1, 2], [], [3]] * 2


def test_members_of_a_group_must_have_equal_counts(tmp_path):
    specs = [BranchSpec("a", "float32", "n"), BranchSpec("b", "float32", "n")]
    with uproot.recreate(tmp_path / "t.root") as f:
        writer = TreeWriter(f, "T", specs)
        with pytest.raises(BranchTypeError, match="'a' and 'b' share the counter 'n'"):
            writer.extend({"a": ak.Array([[1.0]]), "b": ak.Array([[1.0, 2.0]])})


def test_atomic_output_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.root"
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(KeyboardInterrupt):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"partial")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    with atomic_output(target) as tmp:
        tmp.write_bytes(b"done")
    assert target.read_bytes() == b"done" and [p.name for p in tmp_path.iterdir()] == ["out.root"]


def test_atomic_output_refusals(tmp_path):
    existing = tmp_path / "exists.root"
    existing.write_bytes(b"x")
    with pytest.raises(OutputFileError, match="already exists"):
        with atomic_output(existing):
            pass
    with pytest.raises(OutputFileError, match="is the input"):
        with atomic_output(existing, overwrite=True, inputs=[existing]):
            pass
    with pytest.raises(OutputFileError, match="does not exist"):
        with atomic_output(tmp_path / "no-dir" / "out.root"):
            pass
    assert existing.read_bytes() == b"x"
