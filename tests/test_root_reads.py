"""ROOT itself reads what hepae writes: compressed files and reconstructions, TTrees and RNTuples.

Uses the ``root`` wheel (ROOT 6.40, CPython 3.11 Linux; in the test extra where it exists). PyROOT
runs in a subprocess, so that its interpreter and signal handlers stay out of the test process.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import awkward as ak
import numpy as np
import pytest
import uproot

import hepae
from hepae.container import ContainerReader

pytestmark = pytest.mark.skipif(importlib.util.find_spec("ROOT") is None,
                                reason="the 'root' wheel (PyROOT) is not installed here")

ROOT_SCRIPT = r"""
import json, sys
import ROOT
path, table, branches = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
frame = ROOT.RDataFrame(table, path)  # a TTree or an RNTuple: RDataFrame opens both
out = {"entries": int(frame.Count().GetValue()), "sums": {}}
for i, name in enumerate(branches):
    kind = str(frame.GetColumnType(name))
    column = f"hepae_column_{i}"
    frame = frame.Alias(column, name)  # RNTuple field names (a:b) are not C++ names
    vector = "RVec" in kind or "vector" in kind
    body = f"double s = 0; for (auto v : {column}) s += v; return s;" if vector else f"return double({column});"
    out["sums"][name] = float(frame.Define(f"hepae_sum_{i}", body).Sum(f"hepae_sum_{i}").GetValue())
handle = ROOT.TFile.Open(path)
text = handle.Get("hepae_metadata")
out["metadata"] = str(text.GetString()) if text else None
if handle.GetListOfKeys().FindObject("hepae_streams"):  # hepae's stream table: a TTree or an RNTuple, like the table
    streams = ROOT.RDataFrame("hepae_streams", path)
    out["streams"] = {"class": handle.GetKey("hepae_streams").GetClassName(), "chunks": int(streams.Count().GetValue()),
                      "events": int(streams.Sum("entries").GetValue())}
print(json.dumps(out))
"""
"""Opens a file with PyROOT: entries and per-branch sums through RDataFrame, hepae's metadata string, and the
chunks and events of hepae's stream table."""


def root_reads(path, table: str, branches: list[str]) -> dict:
    result = subprocess.run([sys.executable, "-c", ROOT_SCRIPT, str(path), table, json.dumps(branches)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def uproot_sums(path, table: str, branches: list[str]) -> tuple[int, dict[str, float]]:
    with uproot.open(path) as f:
        t = f[table]
        return int(t.num_entries), {b: float(np.sum(ak.to_numpy(ak.ravel(t[b].array())), dtype=np.float64))
                                    for b in branches}


@pytest.mark.parametrize(("featureset", "table", "branches"), [
    ("nanoaod-jets-4d", "Events", ["Jet_pt", "Jet_eta", "nJet", "run", "Electron_pt"]),
    ("physlite-rntuple-jets-4d", "EventData", ["AnalysisJetsAuxDyn:pt", "EventInfoAuxDyn:eventNumber"]),
])
def test_root_reads_compressed_files_and_reconstructions(featureset, table, branches, tmp_path):
    sample = hepae.make_sample(tmp_path / "in.root", featureset, n_events=300, seed=8)
    hepae.compress(sample, tmp_path / "c.root", progress=False)
    hepae.decompress(tmp_path / "c.root", tmp_path / "r.root", progress=False)
    # the reconstruction: every branch ROOT reads agrees with uproot's reading
    read = root_reads(tmp_path / "r.root", table, branches)
    entries, sums = uproot_sums(tmp_path / "r.root", table, branches)
    assert read["entries"] == entries == 300 and read["metadata"] is None
    for name in branches:
        assert read["sums"][name] == pytest.approx(sums[name], rel=1e-9), name
    # the compressed file: the kept branches and hepae's metadata string
    with ContainerReader(tmp_path / "c.root") as reader:
        kept = [s.name for s in reader.stored_specs if s.numeric and not s.jagged][:3]
        expected = reader.metadata
    read = root_reads(tmp_path / "c.root", table, kept)
    entries, sums = uproot_sums(tmp_path / "c.root", table, kept)
    assert read["entries"] == entries == 300
    assert read["sums"] == pytest.approx(sums, rel=1e-9)
    assert json.loads(read["metadata"]) == expected
    stored_as = "TTree" if expected["source"]["format"] == "ttree" else "ROOT::RNTuple"
    assert read["streams"] == {"class": stored_as, "chunks": len(expected["checksums"]["chunks"]), "events": 300}
