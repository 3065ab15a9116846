"""Files written by earlier hepae versions keep decoding to what those versions decoded them to.

``tests/data/format5/`` holds one small file per codec written by the version that introduced
container format 5 (``make_fixtures.py``), and the values it decoded them to (``expected.npz``).

``tests/data/format3/`` holds files written by hepae 0.1.0 (container format 3: no metadata checksum,
one data checksum over all chunks): each ``*.compressed.root`` and the ``*.reco.root`` that hepae 0.1.0
decompressed it to. ``truncate-float64`` uses a feature set whose columns ask for float64: hepae
0.1.0 stored its truncated values as float32 bit patterns, which must still be read as such.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import pytest
import uproot

import hepae
import hepae.decompression
from hepae.codecs import entropy, registered_codecs
from hepae.container import ContainerReader
from hepae.container.format import unit_stream_name
from hepae.errors import ContainerFormatError

DATA = Path(__file__).parent / "data" / "format3"
FILES = sorted(p.name.removesuffix(".compressed.root") for p in DATA.glob("*.compressed.root"))


@pytest.mark.parametrize("name", FILES)
def test_format3_files_decode_as_hepae_0_1_0_decoded_them(name, tmp_path):
    with pytest.warns(UserWarning, match="container format 3.*no checksum"):
        hepae.decompress(DATA / f"{name}.compressed.root", tmp_path / "r.root", progress=False)
    with uproot.open(DATA / f"{name}.reco.root") as expected, uproot.open(tmp_path / "r.root") as got:
        tree_a, tree_b = expected["CollectionTree"], got["CollectionTree"]
        assert tree_a.keys() == tree_b.keys()
        for branch in tree_a.keys():
            assert ak.array_equal(tree_a[branch].array(), tree_b[branch].array(), equal_nan=True), branch


def test_a_damaged_format3_file_is_still_refused(tmp_path):
    data = bytearray((DATA / "lossless.compressed.root").read_bytes())
    with uproot.open(DATA / "lossless.compressed.root") as f:
        value = f["hepae_streams"]["value_pt"].array(library="np")[0][:1].tobytes()
    position = bytes(data).find(value[::-1])  # ROOT stores big-endian
    if position < 0:
        pytest.skip("the stream is stored compressed; no raw value to damage")
    data[position] ^= 0x01
    (tmp_path / "d.root").write_bytes(bytes(data))
    with pytest.warns(UserWarning), pytest.raises(ContainerFormatError, match="checksum mismatch"):
        hepae.decompress(tmp_path / "d.root", tmp_path / "r.root", progress=False)
    assert not (tmp_path / "r.root").exists()


FORMAT5 = Path(__file__).parent / "data" / "format5"
FORMAT5_FILES = sorted(p.name.removesuffix(".compressed.root") for p in FORMAT5.glob("*.compressed.root"))
NETWORK = {"ae-float", "ae-latent-bits"}
"""Fixtures whose values come out of the embedded network: float32 matrix products may differ in the last
bits between machines (the error bounds' margin is there for that); all others must be identical."""


FORMAT6 = Path(__file__).parent / "data" / "format6"
FORMAT6_FIXTURES = json.loads((FORMAT6 / "fixtures.json").read_text())


def test_every_codec_has_a_fixture():
    codecs = {c["id"] for c in json.loads((FORMAT5 / "codecs.json").read_text()).values()}
    codecs |= {f["codec"]["id"] for f in FORMAT6_FIXTURES.values() if "codec" in f}
    assert codecs == set(registered_codecs()), \
        "write a fixture for each codec (tests/data/format6/make_fixtures.py, in a new format directory)"


@pytest.mark.parametrize("name", sorted(FORMAT6_FIXTURES))
def test_format6_files_decode_to_the_values_stored_beside_them(name, tmp_path):
    """Known answers for container format 6: the ``bounded`` codec, and a whole file under a profile
    (every branch of the tree, the profile-coded ones and the exact ones)."""
    expected = np.load(FORMAT6 / "expected.npz", allow_pickle=False)
    hepae.decompress(FORMAT6 / f"{name}.compressed.root", tmp_path / "r.root", progress=False)
    keys = [k.removeprefix(f"{name}//") for k in expected.files if k.startswith(f"{name}//")]
    with uproot.open(tmp_path / "r.root") as got:
        tree = got["CollectionTree"]
        assert sorted(tree.keys()) == sorted(k for k in keys if not k.endswith("/counts"))
        for key in keys:
            branch = key.removesuffix("/counts")
            values = tree[branch].array()
            have = ak.to_numpy(ak.num(values)) if key.endswith("/counts") else \
                ak.to_numpy(ak.flatten(values) if values.ndim > 1 else values)
            want = expected[f"{name}//{key}"]
            assert have.dtype == want.dtype, key
            np.testing.assert_array_equal(have, want, err_msg=key)
    assert hepae.decompression.verify(FORMAT6 / f"{name}.compressed.root")["format_version"] == 6


LEARNED1 = Path(__file__).parent / "data" / "learned1"


def test_a_file_with_a_learned_entropy_model_decodes_to_the_values_stored_beside_it(tmp_path):
    """Known answer for the ``learned`` stream (layout 1) and the entropy model document (version 1): the
    fixture uses the model for some columns (``fixtures.json``); every later hepae must decode it the same."""
    expected = np.load(LEARNED1 / "expected.npz", allow_pickle=False)
    used = json.loads((LEARNED1 / "fixtures.json").read_text())["bounded-learned"]["learned_columns"]
    assert used
    hepae.decompress(LEARNED1 / "bounded-learned.compressed.root", tmp_path / "r.root", progress=False)
    with uproot.open(tmp_path / "r.root") as got:
        tree = got["CollectionTree"]
        assert sorted(tree.keys()) == sorted(k for k in expected.files if not k.endswith("/counts"))
        for key in expected.files:
            values = tree[key.removesuffix("/counts")].array()
            have = ak.to_numpy(ak.num(values)) if key.endswith("/counts") else \
                ak.to_numpy(ak.flatten(values) if values.ndim > 1 else values)
            assert have.dtype == expected[key].dtype, key
            np.testing.assert_array_equal(have, expected[key], err_msg=key)


@pytest.mark.parametrize("name", FORMAT5_FILES)
def test_format5_files_decode_to_the_values_stored_beside_them(name, tmp_path):
    """Known answers: every later hepae must decode these files (container format 5, written by the
    version that introduced it) to the values that version decoded them to."""
    expected = np.load(FORMAT5 / "expected.npz", allow_pickle=False)
    hepae.decompress(FORMAT5 / f"{name}.compressed.root", tmp_path / "r.root", progress=False)
    with uproot.open(tmp_path / "r.root") as got:
        tree = got["CollectionTree"]
        keys = [k.removeprefix(f"{name}/") for k in expected.files if k.startswith(f"{name}/")]
        assert len(keys) == 5  # the counts and the four jet variables
        for key in keys:
            want = expected[f"{name}/{key}"]
            have = ak.to_numpy(ak.num(tree[next(k for k in tree.keys() if k.endswith(".pt"))].array())) \
                if key == "counts" else ak.to_numpy(ak.flatten(tree[key].array()))
            assert have.dtype == want.dtype, key
            if name in NETWORK and key != "counts":
                np.testing.assert_allclose(have, want, rtol=1e-5, atol=1e-6, err_msg=key)
            else:
                np.testing.assert_array_equal(have, want, err_msg=key)
    assert hepae.decompression.verify(FORMAT5 / f"{name}.compressed.root")["format_version"] == 5


def _fixture_script():
    """``tests/data/format10/make_fixtures.py`` as a module: it says how the fixtures of formats 7 to 10 and the
    RNTuple ones of format 6 were made and read (format 7's procedure, with formats 8, 9 and 10's one more
    fixture each)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_fixtures", Path(__file__).parent / "data" / "format10" /
                                                  "make_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RNTUPLE_FIXTURES = [(version, name) for version in ("format6-rntuple", "format7", "format8", "format9", "format10")
                    for name in json.loads((Path(__file__).parent / "data" / version / "fixtures.json").read_text())]
"""Files whose table is an RNTuple, written by the last writer of format 6 (stream and decoder tables as
TTrees) and by the first of format 7 (as RNTuples), and the TTree files of format 7 and 8 under a profile or
rules (their units' streams packed; format 8: exact columns, layout-5 chunks; format 9: a unit with a learned
entropy model beside its exact column; format 10: layout-6 chunks, a column coded as order statistics):
``tests/data/format{7,8,9,10}/make_fixtures.py``."""


def _corrected(version: str, stored: Any) -> dict[str, np.ndarray]:
    """A fixture directory's expected values, with the corrections of ``tests/data/rounding-corrections.json``
    (values its writer's libm misrounded; each checked to be the value stored before it is replaced)."""
    expected = {key: stored[key].copy() for key in stored.files}
    corrections = json.loads((Path(__file__).parent / "data" / "rounding-corrections.json").read_text())
    for c in corrections["corrections"]:
        if c["fixtures"] == version:
            values = expected[c["key"]]
            assert values[c["index"]] == float.fromhex(c["stored"]), c
            values[c["index"]] = float.fromhex(c["decoded"])
    return expected


@pytest.mark.parametrize(("version", "name"), RNTUPLE_FIXTURES)
def test_files_of_formats_7_to_10_and_rntuple_files_of_format_6_decode_to_the_values_beside_them(version, name,
                                                                                                  tmp_path):
    script = _fixture_script()
    here = Path(__file__).parent / "data" / version
    expected = _corrected(version, np.load(here / "expected.npz", allow_pickle=False))
    hepae.decompress(here / f"{name}.compressed.root", tmp_path / "r.root", progress=False)
    got = script.expected_values(tmp_path / "r.root", script.TABLES[script.FIXTURES[name]["sample"]])
    keys = [k.removeprefix(f"{name}//") for k in expected if k.startswith(f"{name}//")]
    assert sorted(got) == sorted(keys)
    for key in keys:
        want = expected[f"{name}//{key}"]
        assert got[key].dtype == want.dtype, key
        if name == "ae-float" and "/counts" not in key and want.dtype.kind == "f":
            np.testing.assert_allclose(got[key], want, rtol=1e-5, atol=1e-6, err_msg=key)
        else:  # bit for bit (-0.0 is not +0.0)
            bits = f"u{want.dtype.itemsize}" if want.dtype.kind == "f" else want.dtype
            np.testing.assert_array_equal(got[key].view(bits), want.view(bits), err_msg=key)
    rntuple = script.FIXTURES[name]["sample"] not in ("nanoaod-jets-4d", "zeros", "objects", "sorted-objects")
    stored = "TTree" if version == "format6-rntuple" or not rntuple else "ROOT::RNTuple"
    with uproot.open(here / f"{name}.compressed.root") as f:
        assert f.classnames()["hepae_streams;1"] == stored and f["hepae_streams"].num_entries == 3  # chunks
        assert f.classnames().get("hepae_decoder;1", stored) == stored
        if version != "format6-rntuple" and rntuple:  # no class of hepae's own but the metadata string
            assert set(f.file.streamers) == {"TObjString"}
        if version != "format6-rntuple" and name.startswith(("profile", "rules")):  # units' streams in one branch
            assert [k for k in f["hepae_streams"].keys() if "unit" in k] in (["units"], ["n_units", "units"])
    metadata = hepae.decompression.verify(here / f"{name}.compressed.root")
    assert metadata["format_version"] == int(version.removeprefix("format").split("-")[0])
    if version in ("format8", "format9", "format10") and name in ("profile-nanoaod", "rules-exact"):  # exact floats
        assert any(unit["codec"].get("exact") for unit in metadata["units"])
    if name == "profile-entropy-model":  # the model codes obj_x in every chunk, beside the exact obj_w
        (index,) = [i for i, u in enumerate(metadata["units"]) if u["codec"].get("entropy_model")]
        unit = metadata["units"][index]
        assert unit["codec"]["exact"] == ["obj_w"] and [c["column"] for c in unit["codec"]["entropy_model"]["columns"]
                                                        ] == ["obj_x"]
        with ContainerReader(here / f"{name}.compressed.root") as reader:
            learned = [len(chunk.streams[unit_stream_name(index, "learned")]) for chunk in reader.chunks()]
        assert len(learned) == 3 and min(learned) > 0
        assert len(metadata["profile"]["entropy_model_sha256"]) == 64  # the model offered, for --resume
    if name == "profile-sorted-objects":  # obj_pt coded as order statistics in every chunk (layout 6, array 14)
        (index,) = [i for i, u in enumerate(metadata["units"]) if "obj_pt" in u["codec"].get("error_bounds", [""])[0]]
        with ContainerReader(here / f"{name}.compressed.root") as reader:
            chunks = [entropy.unpack_arrays(c.streams[unit_stream_name(index, "coded")]) for c in reader.chunks()]
        assert len(chunks) == 3 and all(c[0][0] == 6 and len(c[14]) for c in chunks)


@pytest.mark.parametrize(("table", "fixture", "what"), [("hepae_streams", "bounded", "the codec streams"),
                                                        ("hepae_decoder", "ae-float", "the embedded decoder")])
def test_a_stream_or_decoder_table_of_the_other_class_or_missing_is_refused(table, fixture, what, tmp_path):
    """Format 7 stores them as RNTuples beside an RNTuple table: a TTree there (the same data) is refused, and so
    is a file without them, each with its own message; nothing is written."""
    import shutil

    edited = tmp_path / "edited.root"
    shutil.copy(Path(__file__).parent / "data" / "format7" / f"{fixture}.compressed.root", edited)
    with uproot.open(edited) as f:
        data = f[table].arrays(library="ak", how=dict)
    with uproot.update(edited) as f:
        del f[table]
        f.mktree(table, {name: values.type.content for name, values in data.items()}).extend(data)
    with pytest.raises(ContainerFormatError, match=rf"'{table}' \({what}\) is a TTree, not the ROOT::RNTuple"):
        hepae.decompress(edited, tmp_path / "r.root", progress=False)
    with uproot.update(edited) as f:
        del f[table]
    with pytest.raises(ContainerFormatError, match=rf"'{table}' \({what}\) is missing"):
        hepae.decompress(edited, tmp_path / "r.root", progress=False)
    assert not (tmp_path / "r.root").exists()


def test_the_first_format9_writers_file_decodes_to_the_values_beside_it(tmp_path):
    """``profile-entropy-model`` as the first writer of format 9 wrote it (4e269b3), before files recorded the
    sha256 of the entropy model they were offered: it decodes to the same values as the fixture of today."""
    script = _fixture_script()
    here = Path(__file__).parent / "data" / "format9"
    expected = _corrected("format9", np.load(here / "expected.npz", allow_pickle=False))
    hepae.decompress(here / "profile-entropy-model-first-writer.compressed.root", tmp_path / "r.root", progress=False)
    got = script.expected_values(tmp_path / "r.root", script.TABLES[script.FIXTURES["profile-entropy-model"]["sample"]])
    keys = [k.removeprefix("profile-entropy-model//") for k in expected if k.startswith("profile-entropy-model//")]
    assert sorted(got) == sorted(keys)
    for key in keys:
        want = expected[f"profile-entropy-model//{key}"]
        bits = f"u{want.dtype.itemsize}" if want.dtype.kind == "f" else want.dtype
        np.testing.assert_array_equal(got[key].view(bits), want.view(bits), err_msg=key)
    metadata = hepae.decompression.verify(here / "profile-entropy-model-first-writer.compressed.root")
    assert metadata["format_version"] == 9 and "entropy_model_sha256" not in metadata["profile"]
