"""Integrity of compressed files: damage anywhere (metadata included) gives a hepae error, never other
values; crafted sizes are refused before memory is spent on them; what compress writes reads back."""

from __future__ import annotations

import hashlib
import json
import tracemalloc

import awkward as ak
import numpy as np
import pytest
import uproot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hepae
from hepae import errors
from hepae.codecs import entropy
from hepae.container.format import CONTAINER_FORMAT_VERSION, METADATA_CHECKSUM_KEY, METADATA_KEY
from roundtrip_checks import rewrite_container

FS = "atlas-jets-4d"
BOUNDS = ["pt=rel:1e-3", "eta=abs:1e-3", "phi=abs:1e-3", "m=rel:1e-3"]


@pytest.fixture(scope="module")
def containers(samples, model_files, tmp_path_factory):
    """A bounded (coded) container, stored without ROOT compression so that random damage reaches the
    meaning of every byte (metadata text, coded streams, carried values), and its reconstruction."""
    tmp = tmp_path_factory.mktemp("integrity")
    plain = tmp / "plain.root"
    hepae.compress(samples[FS], plain, model_files[FS], codec={"id": "ae", "error_bounds": BOUNDS},
                   compression="none", step_size=600, progress=False)
    hepae.decompress(plain, tmp / "clean.root", progress=False)
    # the same beside an RNTuple table, whose stream and decoder tables are RNTuples (format 7)
    rntuple = hepae.make_sample(tmp / "rntuple-in.root", "physlite-rntuple-jets-4d", n_events=800, seed=3)
    model = hepae.train(rntuple, "physlite-rntuple-jets-4d", latent=3, hidden=[8], epochs=2, seed=0, progress=False)
    hepae.compress(rntuple, tmp / "rntuple.root", model, codec={"id": "ae"}, compression="none", step_size=300,
                   progress=False)
    hepae.decompress(tmp / "rntuple.root", tmp / "rntuple-clean.root", progress=False)
    return {"plain": plain, "clean": tmp / "clean.root", "rntuple": tmp / "rntuple.root",
            "rntuple-clean": tmp / "rntuple-clean.root"}


def _same_reconstruction(path, clean, table: str = "CollectionTree") -> None:
    with uproot.open(path) as a, uproot.open(clean) as b:
        assert set(a.keys(cycle=False)) == set(b.keys(cycle=False))
        for name in b[table].keys(recursive=False):
            assert ak.array_equal(a[table][name].array(), b[table][name].array(), equal_nan=True), name


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
@pytest.mark.parametrize(("kind", "table"), [("plain", "CollectionTree"), ("rntuple", "EventData")])
def test_random_damage_anywhere_gives_an_error_or_the_exact_reconstruction(containers, kind, table, tmp_path, data):
    """Any few flipped bits of an uncompressed file: a TTree file, and an RNTuple file whose codec streams and
    embedded decoder are RNTuples too (their headers and footers have no checksum of hepae's: uproot's errors on
    them must come out as hepae's)."""
    good = containers[kind].read_bytes()
    damaged = bytearray(good)
    for _ in range(data.draw(st.integers(1, 4), label="flips")):
        position = data.draw(st.integers(0, len(good) - 1), label="position")
        damaged[position] ^= 1 << data.draw(st.integers(0, 7), label="bit")
    path = tmp_path / "damaged.root"
    path.write_bytes(bytes(damaged))
    (tmp_path / "out.root").unlink(missing_ok=True)
    try:
        hepae.decompress(path, tmp_path / "out.root", overwrite=True, progress=False)
    except errors.HepaeError:
        assert not (tmp_path / "out.root").exists()
        return
    _same_reconstruction(tmp_path / "out.root", containers["clean" if kind == "plain" else "rntuple-clean"], table)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_bit_flip_in_the_metadata_text_is_refused(containers, tmp_path, data):
    """Flips inside the metadata JSON (which ROOT may store compressed, out of a byte fuzzer's reach)."""
    with uproot.open(containers["plain"]) as f:
        text = bytearray(str(f[METADATA_KEY]).encode())
    position = data.draw(st.integers(0, len(text) - 1), label="position")
    text[position] ^= 1 << data.draw(st.integers(0, 6), label="bit")  # stays ASCII, mostly still valid JSON
    try:
        flipped = json.loads(text.decode())
    except ValueError:
        return  # no longer JSON: refused anyway (tested by the catalogue)
    edited = rewrite_container(containers["plain"], tmp_path / "edited.root", metadata_checksum=False,
                               edit_metadata=lambda m: (m.clear(), m.update(flipped)))
    with uproot.open(containers["plain"]) as f:
        unchanged = json.loads(str(f[METADATA_KEY])) == flipped
    if unchanged:
        return  # the flip changed only the layout of the text (e.g. a space), not what it says
    with pytest.raises(errors.ContainerFormatError, match="metadata checksum mismatch"):
        hepae.decompress(edited, tmp_path / "out.root", overwrite=True, progress=False)


def _peak_bytes(function) -> int:
    tracemalloc.start()
    try:
        function()
    except errors.HepaeError:
        pass
    else:
        raise AssertionError("the crafted input was accepted")
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_a_coded_stream_declaring_thousands_of_tables_is_refused_before_allocating():
    n_tables = 20_000  # each a one-entry table: 3 bytes each, 0.5 GB of lookup rows if trusted
    crafted = entropy.pack_arrays([
        np.array([2], np.int64), np.array([5000], np.int64), np.array([n_tables], np.int32),
        np.ones(n_tables, np.int32), np.frombuffer(b"\x80\x80\x02" * n_tables, np.uint8),
        np.full(4, 1 << 16, np.uint32), np.zeros(0, np.uint16), np.zeros(0, np.uint8)])
    peak = _peak_bytes(lambda: entropy.decode_streams(crafted, max_symbols=5000, n_streams=1))
    assert peak < 8 * len(crafted), (peak, len(crafted))  # a few copies of the input, not what it declares


def test_a_coded_chunk_declaring_huge_sizes_is_refused_before_allocating(containers):
    from hepae.codecs.ae import _CodedChunk

    with uproot.open(containers["plain"]) as f:
        coded = f["hepae_streams"]["coded"].array(library="np", entry_stop=1)[0]
    arrays = entropy.unpack_arrays(coded)
    header = arrays[0].copy()
    header[3] = 100_000  # bounded columns: 0.8 GB of residual steps for 1000 objects if trusted
    crafted = entropy.pack_arrays([header, *arrays[1:]])
    counts = np.full(int(arrays[0][1]), 1)
    peak = _peak_bytes(lambda: _CodedChunk.read(crafted, np.float32, counts, n_bounded_expected=4,
                                                n_latent_expected=3))
    assert peak < 8 * len(coded) + (1 << 20)


def test_compress_reads_back_what_it_wrote(samples, model_files, tmp_path, monkeypatch):
    """A file whose counts disagree with its metadata is never reported as a success."""
    import hepae.container.writer as writer

    real = writer.stream_chunk

    def one_event_short(n_events, streams):  # as if the input had been counted one way and read another
        return real(n_events - 1, streams)

    monkeypatch.setattr(writer, "stream_chunk", one_event_short)
    with pytest.raises(errors.ContainerFormatError, match="does not read back as written"):
        hepae.compress(samples[FS], tmp_path / "c.root", model_files[FS], progress=False)
    assert list(tmp_path.iterdir()) == []


def test_metadata_read_back_unlike_what_was_meant_is_checked_against_the_schema(samples, tmp_path, monkeypatch):
    """Read back, metadata equal to what compress validated and wrote is not validated twice; other metadata is."""
    import hepae.container.writer as writer

    real = writer.write_metadata

    def edited(file, metadata):
        real(file, metadata)
        text = json.dumps({**metadata, "format_version": "7"}, sort_keys=True)  # not what was validated
        file[METADATA_KEY] = text
        file[METADATA_CHECKSUM_KEY] = hashlib.sha256(text.encode()).hexdigest()

    monkeypatch.setattr(writer, "write_metadata", edited)
    with pytest.raises(errors.ContainerFormatError, match=r"does not follow container.schema.json: at 'format_v"):
        hepae.compress(samples[FS], tmp_path / "c.root", profile="xaod", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_verify_checks_every_checksum_without_decoding(containers, tmp_path):
    from hepae.decompression import verify

    assert verify(containers["plain"])["format_version"] == CONTAINER_FORMAT_VERSION

    def edit(arrays):
        arrays["EventInfoAux.eventNumber"] = arrays["EventInfoAux.eventNumber"] + 1

    with pytest.raises(errors.ContainerFormatError, match="data checksum mismatch in chunk 0"):
        verify(rewrite_container(containers["plain"], tmp_path / "e.root", edit_arrays=edit))


@pytest.mark.parametrize("part", ["Header", "Footer"])
def test_a_damaged_rntuple_stream_table_gives_hepae_errors_in_every_command(part, tmp_path):
    """One flipped byte in the header or footer of a format-7 file's stream RNTuple (which uproot checks against
    its own checksum, and raises on in many ways): every command says the file is damaged, in its own words."""
    from pathlib import Path

    fixture = Path(__file__).parent / "data" / "format7" / "bounded.compressed.root"
    with uproot.open(fixture) as f:
        anchor = f["hepae_streams"]
        start, size = anchor.member(f"fSeek{part}"), anchor.member(f"fNBytes{part}")
    data = bytearray(fixture.read_bytes())
    data[start + size // 2] ^= 0x10
    damaged = tmp_path / "damaged.root"
    damaged.write_bytes(bytes(data))
    commands = {
        "decompress": lambda: hepae.decompress(damaged, tmp_path / "r.root", progress=False),
        "inspect": lambda: hepae.inspect(damaged),
        "open": lambda: hepae.open(damaged).arrays(),
        "compress": lambda: hepae.compress(damaged, tmp_path / "c.root", profile="physlite", progress=False),
    }
    for name, command in commands.items():
        with pytest.raises(errors.HepaeError, match=r"damaged file\?"):
            command()
    assert not (tmp_path / "r.root").exists() and not (tmp_path / "c.root").exists()
