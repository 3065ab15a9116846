"""The catalogue of bad inputs: each row is run here, and docs/errors.md is rendered from these rows.

Run ``python tests/test_errors.py`` to rewrite docs/errors.md after changing the catalogue; a test
fails if the file differs from the catalogue. In an example message, ``<...>`` stands for any text.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hepae
import hepae.io.tensors
from catalogue import Case
from catalogue_cli import CLI_CASES
from catalogue_models import MODEL_CASES
from hepae import errors
from hepae.io.branches import BranchSpec
from hepae.io.darkmachines import read_events
from hepae.io.writing import TreeWriter
from roundtrip_checks import rewrite_container

DOC = Path(__file__).resolve().parents[1] / "docs" / "errors.md"
FS = "atlas-jets-4d"
JETS = hepae.load_featureset(FS).branches


def _jets_file(path: Path, jets: list[list[float]], values=None) -> Path:
    counts = np.array([len(j) for j in jets], dtype=np.int64)
    specs = [BranchSpec("EventInfoAux.eventNumber", "uint64")] + [BranchSpec(b, "float32", "nJets") for b in JETS]
    flat = np.array([v for event in jets for v in event], dtype=np.float32)
    data = {"EventInfoAux.eventNumber": np.arange(len(jets), dtype=np.uint64)}
    for j, branch in enumerate(JETS):
        column = values[j](flat) if values else flat * [5e4, 0.01, 0.01, 5e3][j] + [2e4, 0, 0, 0][j]
        data[branch] = ak.unflatten(column.astype(np.float32), counts)
    with uproot.recreate(path) as f:
        TreeWriter(f, "CollectionTree", specs).extend(data)
    return path


def _newer_model(ctx: dict) -> None:
    import io
    import zipfile

    raw = Path(ctx["model"]).read_bytes()
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        members = {n: z.read(n) for n in z.namelist()}
    header = json.loads(np.load(io.BytesIO(members["hepae_header.npy"])).tobytes())
    header["format_version"] = 7
    buffer = io.BytesIO()
    np.save(buffer, np.frombuffer(json.dumps(header).encode(), dtype=np.uint8))
    members["hepae_header.npy"] = buffer.getvalue()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    path = ctx["tmp"] / "newer.hepae"
    path.write_bytes(out.getvalue())
    hepae.load_model(path)


def _bad_featureset(ctx: dict) -> None:
    document = hepae.load_featureset(FS).to_dict()
    document["columns"][0]["dtype"] = "float16"
    path = ctx["tmp"] / "bad-featureset.json"
    path.write_text(json.dumps(document))
    hepae.load_featureset(path)


def _compress(ctx: dict, source: Path, **kw) -> dict:
    return hepae.compress(source, ctx["tmp"] / "out.root", kw.pop("model", ctx["model"]), progress=False, **kw)


CATALOGUE = [
    Case("input file missing", errors.InputFileError, "input file <path> does not exist",
         lambda c: _compress(c, c["tmp"] / "missing.root")),
    Case("input is not a ROOT file", errors.InputFileError, "<path> is not a readable ROOT file: <reason>",
         lambda c: (c["tmp"] / "text.root").write_text("hello") and _compress(c, c["tmp"] / "text.root")),
    Case("input ROOT file truncated", errors.InputFileError,
         "cannot read 'CollectionTree' of <path> (damaged file?): <reason>",
         lambda c: (c["tmp"] / "cut.root").write_bytes(c["sample"].read_bytes()[:20000])
         and _compress(c, c["tmp"] / "cut.root")),
    Case("tree missing", errors.TreeNotFoundError,
         "no TTree or RNTuple 'Events' in <path>; trees and RNTuples in the file: CollectionTree (TTree)",
         lambda c: list(hepae.io.tensors.iterate_collection(c["sample"], "nanoaod-jets-4d"))),
    Case("branch missing", errors.BranchNotFoundError,
         "branch 'AnalysisJetsAuxDyn.pt' (column 'pt' of feature set 'physlite-jets-4d') is not in tree "
         "'CollectionTree' of <path>; close matches: ['AntiKt4EMTopoJetsAux.pt', <other names>]",
         lambda c: list(hepae.io.tensors.iterate_collection(c["sample"], "physlite-jets-4d"))),
    Case("branch not jagged (one value per event)", errors.BranchTypeError,
         "branch 'AntiKt4EMTopoJetsAux.pt' in <path> holds one float32 per event; "
         "expected a jagged (per-object) array of numbers",
         lambda c: _flat_branch(c)),
    Case("feature-set JSON invalid", errors.SchemaValidationError,
         "feature set <path> does not follow featureset.schema.json: at 'columns/0/dtype': 'float16' is not one of "
         "<allowed>", _bad_featureset),
    Case("NaN/Inf in a compressed variable", errors.TransformDomainError,
         "feature set 'atlas-jets-4d': 1 value(s) of 'eta' lie outside the domain of its 'affine' normalization "
         "(expects finite values; e.g. nan). Choose another normalization for this column in the feature set.",
         lambda c: _compress(c, _jets_file(c["tmp"] / "nan.root", [[1.0, 2.0]], values=[
             lambda v: v * 5e4, lambda v: np.array([0.1, np.nan]), lambda v: v * 0.1, lambda v: v * 5e3]))),
    Case("value outside a normalization's domain (log of a negative pT)", errors.TransformDomainError,
         "1 value(s) of 'pt' lie outside the domain of its 'log10' normalization (expects finite x with "
         "0.001*x + 0 > 0, i.e. x > 0; e.g. <value>). Choose another normalization for this column in the feature set.",
         lambda c: _compress(c, _jets_file(c["tmp"] / "neg.root", [[-1.0]]))),
    Case("file with zero events", None, "compressed and decompressed: an empty tree with all branches",
         lambda c: _round_trip(c, _jets_file(c["tmp"] / "empty.root", []), entries=0)),
    Case("events with zero objects", None, "compressed and decompressed: counts of 0 restored",
         lambda c: _round_trip(c, _jets_file(c["tmp"] / "nojets.root", [[], [], []]), entries=3)),
    Case("an event with thousands of objects", None, "compressed and decompressed like any other",
         lambda c: _thousands(c)),
    Case("compressed data edited or corrupted", errors.ContainerFormatError,
         "<path>: data checksum mismatch in chunk 0 (entries 0 to 1500; file corrupted or edited)",
         lambda c: _edited_data(c)),
    Case("compressed file's metadata damaged (a bit flip that still parses)",
         errors.ContainerFormatError, "<path>: metadata checksum mismatch (file corrupted or edited)",
         lambda c: hepae.decompress(rewrite_container(
             c["container"], c["tmp"] / "flipped.root", metadata_checksum=False,
             edit_metadata=lambda m: m["featureset"]["columns"][0].update(unit="GeV")),
             c["tmp"] / "o.root", progress=False)),
    Case("compressed file without its metadata checksum", errors.ContainerFormatError,
         "<path>: its metadata checksum ('hepae_metadata_sha256') is missing (file corrupted or edited)",
         lambda c: _without_metadata_checksum(c)),
    Case("other objects in the input that cannot be written back (a TGraph)", errors.UnsupportedBranchError,
         "1 object(s) of <path> cannot be carried over: <which and why>; pass drop_unsupported=True "
         "(CLI: --drop-unsupported) to leave them out; they are then listed in the output's metadata",
         lambda c: _compress(c, _with_graph(c))),
    Case("other objects in the input (trees, histograms, strings, directories)", None,
         "carried over to the compressed file and the reconstruction, checked by checksum",
         lambda c: _carried_round_trip(c)),
    Case("float64 branches compressed (lossless, truncate, error bounds)", None,
         "kept float64 through the codecs: lossless identical, bounds met in float64",
         lambda c: _float64_round_trip(c)),
    Case("64-bit integer branches under the lossless codec (floats cannot hold them all)", errors.CodecError,
         "the lossless codec stores floats, which cannot hold every 64-bit integer of <branches> in <path>; mark "
         "these columns 'lossless' in the feature set to carry them as they are",
         lambda c: _int64_lossless(c)),
    Case("compress output path equal to the model file (with overwrite)", errors.OutputFileError,
         "output <path> is the input file; choose another output path",
         lambda c: hepae.compress(c["sample"], c["model"], c["model"], overwrite=True, progress=False)),
    Case("report directory that holds the inputs (validate --overwrite)", errors.OutputFileError,
         "report directory <dir> holds the input <path>; choose another report directory",
         lambda c: _report_over_inputs(c)),
    Case("report directory with files hepae did not write (validate --overwrite)", errors.OutputFileError,
         "report directory <dir> was not written by 'hepae validate' (no .hepae-report.json); --overwrite replaces "
         "only a hepae report: choose another directory or empty it yourself",
         lambda c: (c["tmp"] / "mine").mkdir() or (c["tmp"] / "mine" / "notes.txt").write_text("x")
         and hepae.validate(c["sample"], c["sample"], c["tmp"] / "mine", overwrite=True, formats=(), progress=False)),
    Case("compressed file's metadata tampered with (object count edited)", errors.ContainerFormatError,
         "<path>: holds <n> events / <m> objects, metadata says <n2> / <m2>",
         lambda c: hepae.decompress(rewrite_container(
             c["container"], c["tmp"] / "tampered.root",
             edit_metadata=lambda m: m["collection"].update(n_objects=m["collection"]["n_objects"] + 1)),
             c["tmp"] / "o.root", progress=False)),
    Case("compressed file's decoder checksum edited", errors.ContainerFormatError,
         "<path>: embedded decoder checksum mismatch (file corrupted or edited)",
         lambda c: hepae.decompress(rewrite_container(
             c["container"], c["tmp"] / "tampered.root",
             edit_metadata=lambda m: m["checksums"].update(decoder="0" * 64)),
             c["tmp"] / "o.root", progress=False)),
    Case("an RNTuple file's stream table replaced by a TTree (format 7 stores it as an RNTuple)",
         errors.ContainerFormatError,
         "<path>: hepae's table 'hepae_streams' (the codec streams) is a TTree, not the ROOT::RNTuple that "
         "container format 7 stores it as (file corrupted or edited)",
         lambda c: hepae.decompress(_stream_table_edited(c, as_ttree=True), c["tmp"] / "o.root", progress=False)),
    Case("a compressed file without its stream table", errors.ContainerFormatError,
         "<path>: hepae's table 'hepae_streams' (the codec streams) is missing",
         lambda c: hepae.decompress(_stream_table_edited(c, as_ttree=False), c["tmp"] / "o.root", progress=False)),
    Case("the ae codec without a model", errors.CodecError, "the ae codec needs a trained model (CLI: -m MODEL)",
         lambda c: hepae.compress(c["sample"], c["tmp"] / "o.root", None, featureset="atlas-jets-4d",
                                  progress=False)),
    Case("a malformed error bound", errors.CodecError,
         "error bound 'pt<1e-3' is not of the form COLUMN=rel:VALUE, COLUMN=abs:VALUE or COLUMN=bits:N",
         lambda c: _compress(c, c["sample"], codec={"id": "ae", "error_bounds": ["pt<1e-3"]})),
    Case("an unknown precision rule", errors.ProfileError,
         "rule 'AntiKt4EMTopoJetsAux.pt=round:3': unknown rule 'round:3'; expected rel:B, abs:B, bits:N or exact",
         lambda c: hepae.compress(c["sample"], c["tmp"] / "o.root", profile="xaod",
                                  rules=["AntiKt4EMTopoJetsAux.pt=round:3"], progress=False)),
    Case("a precision rule with a bound that is not > 0", errors.ProfileError,
         "rule 'ElectronsAux.pt=rel:nan': the bound must be a number > 0 (and < 1 for a relative bound), got 'nan'",
         lambda c: hepae.compress(c["sample"], c["tmp"] / "o.root", rules=["ElectronsAux.pt=rel:nan"],
                                  progress=False)),
    Case("a precision rule on an integer branch", errors.ProfileError,
         "command-line rule 'EventInfoAux.eventNumber=bits:8' applies only to branches that are not floats "
         "(EventInfoAux.eventNumber (uint64)) in <path>; integers, booleans, strings and arrays are always stored "
         "exactly",
         lambda c: hepae.compress(c["sample"], c["tmp"] / "o.root", rules=["EventInfoAux.eventNumber=bits:8"],
                                  progress=False)),
    Case("a profile rule that matches no branch, with --strict", errors.ProfileError,
         "rule of profile 'xaod' '*[.:]mcEventWeights=exact' matches no branch of 'CollectionTree' in <path>; "
         "without --strict such rules are allowed",
         lambda c: hepae.compress(c["sample"], c["tmp"] / "o.root", profile="xaod", strict=True, progress=False)),
    Case("an unknown precision profile", errors.ProfileError,
         "unknown precision profile 'cms': neither a built-in one (darkmachines, nanoaod, physlite, xaod) nor an "
         "existing JSON file",
         lambda c: hepae.compress(c["sample"], c["tmp"] / "o.root", profile="cms", progress=False)),
    Case("an error bound for a column the feature set does not have", errors.FeatureSetError,
         "error bound(s) for ['mass']: no such column; columns are ['pt', 'eta', 'phi', 'm']",
         lambda c: _compress(c, c["sample"], codec={"id": "ae", "error_bounds": ["mass=rel:1e-3"]})),
    Case("CSV output asked of a file compressed from ROOT", errors.OutputFileError,
         "<path>: CSV output is for files compressed from DarkMachines CSV; <path> was compressed from a ttree "
         "(write a .root file)",
         lambda c: hepae.decompress(c["container"], c["tmp"] / "o.csv", progress=False)),
    Case("a plain ROOT file given to decompress", errors.ContainerFormatError,
         "<path> is not a hepae compressed file (no 'hepae_metadata' object); was it written by 'hepae compress'?",
         lambda c: hepae.decompress(c["sample"], c["tmp"] / "o.root", progress=False)),
    Case("model trained on another feature set", errors.TreeNotFoundError,
         "no TTree or RNTuple 'Events' in <path>; trees and RNTuples in the file: CollectionTree (TTree)",
         lambda c: _compress(c, c["sample"], model=c["nano_model"])),
    Case("model file corrupted", errors.ModelFormatError, "<path> is not a readable hepae model file: <reason>",
         lambda c: (c["tmp"] / "bad.hepae").write_bytes(Path(c["model"]).read_bytes()[:3000])
         and hepae.load_model(c["tmp"] / "bad.hepae")),
    Case("model file from a newer format version", errors.ModelFormatError,
         "model header of <path> has format version 7 (written by hepae <v>); this hepae reads up to version 1: "
         "upgrade hepae", _newer_model),
    Case("model file holding a pickle (torch.save)", errors.ModelFormatError,
         "<path> is not a hepae model file (no 'hepae_header' entry)", lambda c: _pickled_model(c)),
    Case("output path exists", errors.OutputFileError,
         "output <path> already exists; pass overwrite=True (CLI: --overwrite) to replace it",
         lambda c: (c["tmp"] / "out.root").write_text("x") and _compress(c, c["sample"])),
    Case("output path equal to the input", errors.OutputFileError,
         "output <path> is the input file; choose another output path",
         lambda c: hepae.compress(c["sample"], c["sample"], c["model"], overwrite=True, progress=False)),
    Case("output directory missing", errors.OutputFileError, "output directory <dir> does not exist",
         lambda c: hepae.compress(c["sample"], c["tmp"] / "no" / "o.root", c["model"], progress=False)),
    Case("output directory not writable", errors.OutputFileError,
         "cannot write to output directory /proc: <reason>",
         lambda c: hepae.compress(c["sample"], "/proc/hepae-out.root", c["model"], progress=False)),
    Case("malformed CSV line", errors.MalformedCSVError,
         "<path>, line 2: object 'j,1,2,3' must have 5 ','-separated fields (obj,E,pt,eta,phi)",
         lambda c: (c["tmp"] / "bad.csv").write_text("1;tt;1;2;3;j,1,2,3,4;\n2;tt;1;2;3;j,1,2,3;\n")
         and read_events(c["tmp"] / "bad.csv")),
    *MODEL_CASES,
    *CLI_CASES,
]
CLI_ROWS = [
    ("interrupted (SIGINT or SIGTERM) while writing", "exit status 130",
     "hepae compress: interrupted; no partial output was left"),
    ("any hepae error at the command line", "exit status 1", "hepae <command>: error: <message> (--debug: traceback)"),
    ("bad command-line usage", "exit status 2", "usage: hepae <command> ... (argparse)"),
    ("--step-size under 1000 entries or '1 MB', --workers under 1", "exit status 2",
     "hepae compress: error: argument --step-size: 1 entries per chunk is too small <...>; give at least 1000 <...>"),
    ("stdout closed early (hepae inspect f | head -2)", "exit status 141", "(nothing on stderr)"),
    ("disk full (or quota, file-size limit) while writing", "exit status 1",
     "hepae <command>: error: cannot write output <path>: no space left on device; no partial output was left"),
]


def _round_trip(ctx: dict, source: Path, entries: int) -> None:
    hepae.compress(source, ctx["tmp"] / "c.root", ctx["model"], progress=False)
    hepae.decompress(ctx["tmp"] / "c.root", ctx["tmp"] / "r.root", progress=False)
    with uproot.open(ctx["tmp"] / "r.root") as f:
        tree = f["CollectionTree"]
        assert tree.num_entries == entries and set(JETS) <= set(tree.keys())
        assert tree["nJets"].array().tolist() == [0] * entries


def _flat_branch(ctx: dict) -> None:
    path = ctx["tmp"] / "flat.root"
    with uproot.recreate(path) as f:
        TreeWriter(f, "CollectionTree", [BranchSpec(b, "float32") for b in JETS]).extend(
            {b: np.ones(3, np.float32) for b in JETS})
    list(hepae.io.tensors.iterate_collection(path, FS))


def _thousands(ctx: dict) -> None:
    source = _jets_file(ctx["tmp"] / "busy.root", [[0.5] * 5000, [0.2, 0.3]])
    hepae.compress(source, ctx["tmp"] / "busy.c.root", ctx["model"], progress=False)
    back = hepae.decompress(ctx["tmp"] / "busy.c.root", ctx["tmp"] / "busy.r.root", progress=False)
    with uproot.open(ctx["tmp"] / "busy.r.root") as f:
        assert f["CollectionTree"]["nJets"].array().tolist() == [5000, 2]
    assert back["n_objects"] == 5002


def _edited_data(ctx: dict) -> None:
    def edit(arrays):
        arrays["ElectronsAux.pt"] = arrays["ElectronsAux.pt"] * 1.001  # a carried-over branch, not a latent

    edited = rewrite_container(ctx["container"], ctx["tmp"] / "edited.root", edit_arrays=edit)
    hepae.decompress(edited, ctx["tmp"] / "o.root", progress=False)


def _without_metadata_checksum(ctx: dict) -> None:
    import shutil

    path = ctx["tmp"] / "unsigned.root"
    shutil.copy(ctx["container"], path)
    with uproot.update(path) as f:
        del f["hepae_metadata_sha256"]
    hepae.decompress(path, ctx["tmp"] / "o.root", progress=False)


def _with_graph(ctx: dict) -> Path:
    """The sample with a TGraph beside its tree (uproot cannot write one)."""
    import shutil

    path = ctx["tmp"] / "with-graph.root"
    shutil.copy(ctx["sample"], path)
    graph = uproot.as_TGraph({"x": np.arange(3.0), "y": np.arange(3.0) ** 2})
    with uproot.update(path) as f:
        f["calibration"] = graph
    return path


def _carried_round_trip(ctx: dict) -> None:
    import shutil

    import hist

    source = ctx["tmp"] / "many-objects.root"
    shutil.copy(ctx["sample"], source)
    histogram = hist.Hist.new.Reg(10, 0, 1, name="x").Double().fill(np.linspace(0, 1, 50))
    with uproot.update(source) as f:
        f["cutflow"] = histogram
        f["info/generator"] = "pythia8 8.317"
        f.mktree("runs", {"run": np.uint32, "lumi": np.float64}).extend(
            {"run": np.array([1, 2], np.uint32), "lumi": np.array([0.5, 0.25])})
    summary = _compress(ctx, source)
    assert summary["carried_objects"] == ["cutflow", "info", "info/generator", "runs"]
    hepae.decompress(ctx["tmp"] / "out.root", ctx["tmp"] / "r.root", progress=False)
    with uproot.open(ctx["tmp"] / "r.root") as f:
        assert f["cutflow"].values().tolist() == histogram.values().tolist()
        assert str(f["info/generator"]) == "pythia8 8.317"
        assert f["runs"]["lumi"].array().tolist() == [0.5, 0.25]


def _float64_round_trip(ctx: dict) -> None:
    rng = np.random.default_rng(3)
    counts = rng.integers(0, 4, 300)
    n = int(counts.sum())
    columns = [rng.lognormal(10, 1, n) * (1 + 1e-12), rng.normal(0, 2, n) + 1e-13, rng.uniform(-3, 3, n),
               rng.lognormal(8, 1, n)]
    path = ctx["tmp"] / "doubles.root"
    with uproot.recreate(path) as f:
        TreeWriter(f, "CollectionTree", [BranchSpec(b, "float64", "nJets") for b in JETS]).extend(
            {b: ak.unflatten(c, counts) for b, c in zip(JETS, columns)})
    for codec in ("lossless", {"id": "truncate", "mantissa_bits": 10},
                  {"id": "ae", "error_bounds": ["pt=rel:1e-6", "eta=abs:1e-9", "phi=abs:1e-9", "m=rel:1e-6"]}):
        out = ctx["tmp"] / "d.root"
        hepae.compress(path, out, ctx["model"] if isinstance(codec, dict) and codec["id"] == "ae" else None,
                       codec=codec, featureset=FS, overwrite=True, progress=False)
        hepae.decompress(out, ctx["tmp"] / "r.root", overwrite=True, progress=False)
        with uproot.open(ctx["tmp"] / "r.root") as f:
            back = [ak.to_numpy(ak.flatten(f["CollectionTree"][b].array())) for b in JETS]
        assert all(b.dtype == np.float64 for b in back)
        if codec == "lossless":
            assert all(np.array_equal(a, b) for a, b in zip(columns, back))
        elif codec["id"] == "truncate":
            assert all((np.abs(b - a) <= 2.0**-11 * np.abs(a)).all() for a, b in zip(columns, back))
        else:
            assert (np.abs(back[0] - columns[0]) <= 1e-6 * columns[0]).all()
            assert (np.abs(back[1] - columns[1]) <= 1e-9).all() and (np.abs(back[2] - columns[2]) <= 1e-9).all()


def _int64_lossless(ctx: dict) -> None:
    path = ctx["tmp"] / "ints.root"
    with uproot.recreate(path) as f:
        TreeWriter(f, "CollectionTree", [BranchSpec(b, "int64", "nJets") for b in JETS]).extend(
            {b: ak.unflatten(np.array([2**60 + 1, 3], np.int64), [2]) for b in JETS})
    hepae.compress(path, ctx["tmp"] / "o.root", codec="lossless", featureset=FS, progress=False)


def _stream_table_edited(ctx: dict, as_ttree: bool) -> Path:
    """A format-7 file with an RNTuple table (a committed fixture) whose stream table is rewritten as a TTree of the
    same data, or left out."""
    import shutil

    edited = ctx["tmp"] / "streams-edited.root"
    shutil.copy(Path(__file__).parent / "data" / "format7" / "bounded.compressed.root", edited)
    with uproot.open(edited) as f:
        data = f["hepae_streams"].arrays(library="ak", how=dict)
    with uproot.update(edited) as f:
        del f["hepae_streams"]
        if as_ttree:
            f.mktree("hepae_streams", {name: values.type.content for name, values in data.items()}).extend(data)
    return edited


def _report_over_inputs(ctx: dict) -> None:
    import shutil

    folder = ctx["tmp"] / "work"
    folder.mkdir()
    shutil.copy(ctx["sample"], folder / "jets.root")
    (folder / "notes.txt").write_text("keep me")
    try:
        hepae.validate(folder / "jets.root", folder / "jets.root", folder, overwrite=True, formats=(), progress=False)
    finally:
        assert (folder / "notes.txt").read_text() == "keep me" and (folder / "jets.root").is_file()


def _pickled_model(ctx: dict) -> None:
    import torch

    torch.save({"weights": torch.zeros(3)}, ctx["tmp"] / "pickled.hepae")
    hepae.load_model(ctx["tmp"] / "pickled.hepae")


@pytest.fixture(scope="module")
def context(samples, model_files, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("catalogue")
    container = tmp / "good.compressed.root"
    hepae.compress(samples[FS], container, model_files[FS], progress=False)
    return {"sample": samples[FS], "model": model_files[FS], "nano_model": model_files["nanoaod-jets-4d"],
            "container": container}


@pytest.mark.parametrize("case", CATALOGUE, ids=[c.name for c in CATALOGUE])
def test_catalogue(case, context, tmp_path):
    ctx = {**context, "tmp": tmp_path}
    before = set(tmp_path.iterdir())
    if case.error is None:
        case.trigger(ctx)
        return
    with pytest.raises(case.error, match=case.pattern) as info:
        case.trigger(ctx)
    assert isinstance(info.value, errors.HepaeError)
    leftovers = [p for p in set(tmp_path.iterdir()) - before if p.name.endswith(".hepae-tmp")]
    assert leftovers == []  # no partial output


def render() -> str:
    lines = [
        "# Errors: every bad input and what hepae says",
        "",
        "Generated from `tests/test_errors.py`, which runs every row (`python tests/test_errors.py` rewrites",
        "this file). All errors derive from `hepae.errors.HepaeError`; in a message, `<...>` stands for the",
        "file, branch, value or reason concerned. No row leaves a partial output file behind.",
        "",
        "| input | error class | message |",
        "|---|---|---|",
    ]
    for case in CATALOGUE:
        cls = f"`{case.error.__name__}`" if case.error else "handled (no error)"
        message = f"`{case.example}`" if case.error else case.example
        lines.append(f"| {case.name} | {cls} | {message} |")
    for name, outcome, message in CLI_ROWS:
        lines.append(f"| {name} | {outcome} | `{message}` |")
    return "\n".join(lines) + "\n"


def test_docs_table_matches_the_catalogue():
    assert DOC.read_text() == render(), "docs/errors.md is stale: run `python tests/test_errors.py`"


@pytest.fixture(scope="module")
def big_sample(tmp_path_factory):
    return hepae.make_sample(tmp_path_factory.mktemp("big") / "big.root", n_events=300_000, seed=2)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_interrupt_mid_write_leaves_no_output(big_sample, model_files, tmp_path, signum):
    out = tmp_path / "out.root"
    command = [sys.executable, "-m", "hepae", "compress", str(big_sample), "-m", str(model_files[FS]),
               "-o", str(out), "--step-size", "2000", "-q"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not list(tmp_path.glob(".out.root.*.hepae-tmp")) and time.time() < deadline and process.poll() is None:
        time.sleep(0.02)
    assert process.poll() is None, "compress finished before it could be interrupted"
    time.sleep(0.3)  # let it write a few chunks
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted; no partial output was left" in stderr
    assert list(tmp_path.iterdir()) == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_compressed_files_only_raise_hepae_errors(context, tmp_path, data):
    good = context["container"].read_bytes()
    if data.draw(st.booleans(), label="truncate"):
        damaged = good[: data.draw(st.integers(0, len(good) - 1), label="length")]
    else:
        damaged = bytearray(good)
        for _ in range(data.draw(st.integers(1, 8), label="flips")):
            position = data.draw(st.integers(0, len(good) - 1), label="position")
            damaged[position] ^= data.draw(st.integers(1, 255), label="xor")
        damaged = bytes(damaged)
    path = tmp_path / "damaged.root"
    path.write_bytes(damaged)
    try:
        hepae.decompress(path, tmp_path / "out.root", overwrite=True, progress=False)
    except errors.HepaeError:
        return
    # decompressed anyway (the damage hit bytes nobody reads): then the data must be exactly right
    clean = tmp_path / "clean.root"
    if not clean.exists():
        hepae.decompress(context["container"], clean, progress=False)
    with uproot.open(tmp_path / "out.root") as a, uproot.open(clean) as b:
        for name in b["CollectionTree"].keys():
            assert ak.array_equal(a["CollectionTree"][name].array(), b["CollectionTree"][name].array())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_csv_files_only_raise_hepae_errors(tmp_path, data):
    good = ("1;tt;1;2;3;j,1,2,3,4;b,5,6,7,8;\n2;tt;0.5;100;-3.1;\n3;w;2;5.5e+04;0;e-,1,2,3,4;g,1,2,-2e-05,0.5;\n"
            ).encode()
    damaged = bytearray(good)
    for _ in range(data.draw(st.integers(1, 6), label="flips")):
        damaged[data.draw(st.integers(0, len(good) - 1))] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans(), label="truncate"):
        damaged = damaged[: data.draw(st.integers(0, len(damaged)))]
    path = tmp_path / "fuzz.csv"
    path.write_bytes(bytes(damaged))
    try:
        read_events(path)
    except errors.HepaeError:
        pass


if __name__ == "__main__":
    DOC.write_text(render())
    print(f"wrote {DOC}")
