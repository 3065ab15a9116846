"""Files written by earlier hepae versions keep decoding to what those versions decoded them to.

``tests/data/format3/`` holds files written by hepae 0.1.0 (container format 3: no metadata checksum,
one data checksum over all chunks): each ``*.compressed.root`` and the ``*.reco.root`` that hepae 0.1.0
decompressed it to. ``truncate-float64`` uses a feature set whose columns ask for float64: hepae
0.1.0 stored its truncated values as float32 bit patterns, which must still be read as such.
"""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import pytest
import uproot

import hepae
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
