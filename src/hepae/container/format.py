"""The compressed file: an ordinary ROOT file that uproot and ROOT read.

It holds the input table (same name; a TTree for a TTree, an RNTuple for an RNTuple or a CSV file)
with every uncompressed branch carried over and, instead of the compressed collection's branches, one
``int32`` branch ``hepae_count``: the number of encoded objects of each event (if the feature set
selects objects, the unselected ones' values stay in the original branches, counted by
``nhepae_rest``). The codec's streams (:mod:`hepae.codecs.base`) are in the table ``hepae_streams``,
stored like the input table (format 7: a TTree beside a TTree, an RNTuple beside an RNTuple, so that a
file needs ROOT's class descriptions of one kind of table only), one entry per compressed chunk:
``entries`` (events in the chunk) and one ``uint8``/``float32``/``float64`` list per stream holding the
chunk's objects (in a TTree counted by ``n_objects``), or its coded bytes (in a TTree counted by
``n_<stream>``; an RNTuple's lists carry their lengths), so that the ROOT compression sees each stream whole
(per-event jagged branches would cost a few bytes per event each). Then a TObjString ``hepae_metadata``
with JSON metadata that follows ``schemas/container.schema.json``, and a TObjString
``hepae_metadata_sha256`` with the sha256 of that JSON text; and, for the ``ae`` codec, a one-entry table
``hepae_decoder`` (stored like the stream table) whose ``uint8`` list holds the decoder as a pickle-free
model file (see :mod:`hepae.ml.model`). Nothing else is needed to decompress.

Integrity (format 4 and later): everything decoding depends on is verified before it is used. The metadata
text against its own sha256 (so the checksums inside it can be trusted); each chunk (its rows of
the table and its entry of the stream table) against its sha256 in ``checksums.chunks`` before it is
decoded; the embedded decoder against ``checksums.decoder`` and against the identity, architecture
and normalization the metadata records. Format 3 files (hepae 0.1.0: no metadata checksum, one
digest over all chunks, checked at the end) are still read, with a warning. Format 5 differs from 4
only inside the ``ae`` codec's coded chunks (constriction's ANS coder): a format-4 file (development
versions only) is read unless it holds such chunks. Format 6 added precision-profile units, format 7
stores the stream and decoder tables of an RNTuple file as RNTuples, format 8 codes the floats a profile
keeps exact in their unit, and format 9 (this one) lets a unit carry a learned entropy model beside them.
``docs/format.md`` has the bytes.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import awkward as ak
import numpy as np
import uproot

from hepae.errors import ContainerFormatError
from hepae.io.branches import BranchSpec
from hepae.io.hashing import TreeHasher
from hepae.io.sources import DAMAGED_FILE_ERRORS, RNTUPLE_CLASS, read_range
from hepae.io.writing import make_writer
from hepae.schema import parse_json, validate, validate_versioned

if TYPE_CHECKING:
    from hepae.codecs import BoundCodec

CONTAINER_FORMAT_VERSION = 10
METADATA_KEY = "hepae_metadata"
METADATA_CHECKSUM_KEY = "hepae_metadata_sha256"
DECODER_TREE = "hepae_decoder"
DECODER_BRANCH = "model_npz"
STREAM_TREE = "hepae_streams"
CHUNK_ENTRIES = "entries"
STREAM_COUNTER = "n_objects"
COUNT_BRANCH = "hepae_count"
REST_COUNTER = "nhepae_rest"
UNIT_COUNT_PREFIX = "hepae_count_"
"""Prefix of the int32 branch that counts a unit's objects when no kept branch of its counter does."""
UNITS_BRANCH = "units"
"""Format 7: the branch of the stream table that holds every unit's coded bytes of a chunk (one branch for all
units: each branch of a TTree costs its description and a basket key per chunk, ~0.5 kB a file as uproot writes
them, and NanoAOD has dozens of collections)."""
ENTRIES_BRANCH = "hepae_entries"
"""A uint8 branch of zeros, the only branch of a table whose every branch is coded: a TTree needs one to
hold its entries (a flat ntuple of floats, all lossy under a profile)."""
RESERVED_OBJECTS = frozenset({METADATA_KEY, METADATA_CHECKSUM_KEY, STREAM_TREE, DECODER_TREE})
"""Top-level names hepae writes: an input that holds one is refused (already compressed?)."""


def stream_specs(stream_dtypes: dict[str, str], chunk_streams: set[str] = frozenset()) -> list[BranchSpec]:
    """Branches of the stream table: events per chunk, then one list per stream (in a TTree, per-object streams
    share the counter ``n_objects`` and each coded stream has its own; an RNTuple writes no counters)."""
    return [BranchSpec(CHUNK_ENTRIES, "int64"),
            *(BranchSpec(n, d, f"n_{n}" if n in chunk_streams else STREAM_COUNTER) for n, d in stream_dtypes.items())]


def stream_entries(codec: BoundCodec) -> list[dict[str, str]]:
    """A bound codec's streams as the metadata lists them: ``[{name, dtype, per}]``, ``per`` ``"object"`` or
    ``"chunk"``."""
    chunk_streams = codec.chunk_streams()
    return [{"name": n, "dtype": d, "per": "chunk" if n in chunk_streams else "object"}
            for n, d in codec.stream_dtypes().items()]


def stream_chunk(n_events: int, streams: dict[str, np.ndarray]) -> dict[str, object]:
    """One entry of the stream table."""
    entry: dict[str, object] = {CHUNK_ENTRIES: np.array([n_events], dtype=np.int64)}
    for name, values in streams.items():
        entry[name] = ak.unflatten(np.ascontiguousarray(values), [len(values)])
    return entry


def auxiliary_storage(metadata: dict[str, Any]) -> str:
    """How a compressed file's stream and decoder tables are stored (``"ttree"`` or ``"rntuple"``).

    From format 7 on, like its table: an RNTuple file then needs none of ROOT's TTree classes, whose
    descriptions uproot writes uncompressed (~20 kB a file). Format 6 and earlier wrote TTrees beside every table.
    """
    if metadata["format_version"] >= 7 and metadata["source"]["format"] != "ttree":
        return "rntuple"
    return "ttree"


STORAGE_CLASSES = {"ttree": "TTree", "rntuple": RNTUPLE_CLASS}


def auxiliary_table(directory: uproot.ReadOnlyDirectory, name: str, what: str, metadata: dict[str, Any],
                    path: str) -> Any:
    """hepae's stream or decoder table ``name`` (``what`` it holds), checked to be there, of the class its format
    stores it as (:func:`auxiliary_storage`) and readable (an RNTuple's header and footer), else
    :class:`ContainerFormatError`."""
    expected = STORAGE_CLASSES[auxiliary_storage(metadata)]
    try:
        classnames = {key.split(";")[0]: c for key, c in directory.classnames(recursive=False).items()}
    except DAMAGED_FILE_ERRORS as err:
        raise ContainerFormatError(f"{path}: cannot list its objects (damaged file?): {type(err).__name__}") from None
    if name not in classnames:
        raise ContainerFormatError(f"{path}: hepae's table '{name}' ({what}) is missing")
    if classnames[name] != expected:
        raise ContainerFormatError(f"{path}: hepae's table '{name}' ({what}) is a {classnames[name]}, not the "
                                   f"{expected} that container format {metadata['format_version']} stores it as "
                                   "(file corrupted or edited)")
    try:
        table = directory[name]
        if expected == RNTUPLE_CLASS:  # uproot reads an RNTuple's header and footer on first use
            _ = table.header, table.footer, table.field_records, table.column_records, int(table.num_entries)
        return table
    except DAMAGED_FILE_ERRORS as err:
        raise ContainerFormatError(f"{path}: hepae's table '{name}' ({what}) cannot be read (damaged file?): "
                                   f"{type(err).__name__}") from None


DECODER_SIZE = f"{DECODER_BRANCH}_size"


def write_decoder(file: uproot.WritableDirectory, blob: bytes, storage: str = "ttree") -> tuple[int, str]:
    """Embed a decoder model file (its bytes) as a one-entry table stored as ``storage``; returns its size in
    bytes and sha256. A TTree's ``model_npz_size`` is the list's counter; an RNTuple's, a field of its own."""
    specs = [BranchSpec(DECODER_BRANCH, "uint8", DECODER_SIZE)]
    entry: dict[str, object] = {DECODER_BRANCH: ak.unflatten(np.frombuffer(blob, dtype=np.uint8), [len(blob)])}
    if storage == "rntuple":
        specs.insert(0, BranchSpec(DECODER_SIZE, "int32"))
        entry[DECODER_SIZE] = np.array([len(blob)], np.int32)
    make_writer(file, storage, DECODER_TREE, specs,
                title="hepae: embedded decoder (numpy .npz, pickle-free)").extend(entry)
    return len(blob), hashlib.sha256(blob).hexdigest()


def write_metadata(file: uproot.WritableDirectory, metadata: dict[str, Any]) -> None:
    """Store the metadata (validated) and the sha256 of its JSON text, which protects it."""
    validate(metadata, "container.schema.json", what="container metadata (hepae bug)")
    text = json.dumps(metadata, sort_keys=True)
    file[METADATA_KEY] = text
    file[METADATA_CHECKSUM_KEY] = hashlib.sha256(text.encode("utf-8")).hexdigest()


def _read_string(file: uproot.ReadOnlyDirectory, key: str, path: str) -> str:
    try:
        return str(file[key])
    except DAMAGED_FILE_ERRORS as err:  # an unreadable TObjString: uproot raises many kinds on damaged bytes
        raise ContainerFormatError(f"{path}: '{key}' cannot be read (damaged file?): {type(err).__name__}") from None


def read_metadata(file: uproot.ReadOnlyDirectory, path: str, written: dict[str, Any] | None = None) -> dict[str, Any]:
    """Metadata of a compressed file, verified against its checksum and its schema (``written``: the metadata
    just written, which :func:`write_metadata` validated; metadata equal to it is not validated twice).

    Raises :class:`ContainerFormatError` if it is absent, damaged, edited or invalid.
    """
    try:
        keys = file.keys(cycle=False)
    except DAMAGED_FILE_ERRORS as err:
        raise ContainerFormatError(f"{path}: cannot list its objects (damaged file?): {err}") from None
    if METADATA_KEY not in keys:
        raise ContainerFormatError(
            f"{path} is not a hepae compressed file (no '{METADATA_KEY}' object); "
            "was it written by 'hepae compress'?"
        )
    text = _read_string(file, METADATA_KEY, path)
    protected = METADATA_CHECKSUM_KEY in keys
    if protected:
        expected = _read_string(file, METADATA_CHECKSUM_KEY, path)
        try:
            actual = hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()
        except UnicodeError:  # not the ASCII text hepae writes
            actual = None
        if actual != expected:
            raise ContainerFormatError(f"{path}: metadata checksum mismatch (file corrupted or edited)")
    metadata = parse_json(text, what=f"metadata of {path}", error=ContainerFormatError)
    if written is None or metadata != json.loads(json.dumps(written)):
        validate_versioned(metadata, "container.schema.json", what=f"metadata of {path}",
                           max_version=CONTAINER_FORMAT_VERSION, error=ContainerFormatError)
    version = metadata["format_version"]
    if not protected:
        if version >= 4:
            raise ContainerFormatError(f"{path}: its metadata checksum ('{METADATA_CHECKSUM_KEY}') is missing "
                                       "(file corrupted or edited)")
        warnings.warn(f"{path} was written by hepae {metadata['hepae_version']} (container format {version}), "
                      "whose metadata has no checksum: damage to it cannot be detected", stacklevel=2)
    if (version >= 4) != ("chunks" in metadata["checksums"]):
        raise ContainerFormatError(f"{path}: its checksums do not match container format {version} (corrupted?)")
    return metadata


def read_decoder_bytes(file: uproot.ReadOnlyDirectory, metadata: dict[str, Any], path: str) -> bytes:
    """The embedded decoder's model file, checked against the size and checksum the metadata records."""
    tree_name, branch = metadata["model"]["decoder_tree"], metadata["model"]["decoder_branch"]
    if (tree_name, branch) != (DECODER_TREE, DECODER_BRANCH):
        raise ContainerFormatError(f"{path}: the metadata names the decoder '{tree_name}/{branch}', not "
                                   f"'{DECODER_TREE}/{DECODER_BRANCH}' (corrupted?)")
    expected_bytes = metadata["model"]["decoder_bytes"]
    table = auxiliary_table(file, tree_name, "the embedded decoder", metadata, path)
    try:
        if table.num_entries != 1:
            raise ContainerFormatError(f"{path}: the embedded decoder has {table.num_entries} entries, not 1 (file "
                                       "corrupted or edited)")
        data = read_range(table, [DECODER_SIZE, branch], 0, 1)
        sizes = ak.to_numpy(data[DECODER_SIZE])
        if sizes.tolist() != [expected_bytes]:
            raise ContainerFormatError(f"{path}: the embedded decoder holds {sizes.tolist()[:3]} bytes, the metadata "
                                       f"says {expected_bytes} (file corrupted or edited)")
        blob = ak.to_numpy(ak.flatten(data[branch])).tobytes()
    except ContainerFormatError:
        raise
    except DAMAGED_FILE_ERRORS as err:
        raise ContainerFormatError(f"{path}: cannot read the embedded decoder '{tree_name}/{branch}': {err}") from None
    if hashlib.sha256(blob).hexdigest() != metadata["checksums"]["decoder"]:
        raise ContainerFormatError(f"{path}: embedded decoder checksum mismatch (file corrupted or edited)")
    return blob


def chunk_digest(tree_specs_: list[BranchSpec], table_chunk: dict[str, object], stream_specs_: list[BranchSpec],
                 stream_entry: dict[str, object]) -> str:
    """sha256 of one chunk: its rows of the compressed table and its entry of the stream table.

    Compression stores one per chunk in ``checksums.chunks``; decompression checks each before
    decoding the chunk, so no damaged or edited chunk is ever decoded.
    """
    table, streams = TreeHasher(tree_specs_), TreeHasher(stream_specs_)
    table.update(table_chunk)
    streams.update(stream_entry)
    return hashlib.sha256(f"{table.hexdigest()}:{streams.hexdigest()}".encode()).hexdigest()


def collection_specs(metadata: dict[str, Any]) -> list[BranchSpec]:
    return [BranchSpec.from_dict(b) for b in metadata["collection"]["branches"]]


def compressed_tree_branches(
    branches: list[BranchSpec], replaced: set[str], latent: list[BranchSpec], rest_counter: str | None = None
) -> list[BranchSpec]:
    """The input's branches in order, the compressed ones replaced by the latent ones at their place.

    With ``rest_counter`` (a selection), the compressed branches stay, counted by it, after the latents.
    """
    out: list[BranchSpec] = []
    placed = False
    for spec in branches:
        if spec.name in replaced and not placed:
            out.extend(latent)
            placed = True
        if spec.name not in replaced:
            out.append(spec)
        elif rest_counter is not None:
            out.append(BranchSpec(spec.name, spec.dtype, rest_counter))
    return out


def unit_stream_name(index: int, stream: str) -> str:
    """A unit's stream in the stream table: ``unit<i>_<stream>``."""
    return f"unit{index}_{stream}"


def unit_streams(metadata: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """``(unit index, stream entry with its name in the stream table)`` of every unit's streams."""
    return [(i, {**s, "name": unit_stream_name(i, s["name"])})
            for i, unit in enumerate(metadata.get("units", [])) for s in unit["streams"]]


def table_specs(branches: list[BranchSpec], replaced: set[str] | None, selecting: bool,
                units: list[dict[str, Any]]) -> list[BranchSpec]:
    """The branches of a compressed table: the input's ``branches`` in order, the collection's ``replaced``
    ones (``None``: no collection) by ``hepae_count``, each unit's left out, and the count a unit needs
    where none of its counter's branches is kept (``count_added``); :data:`ENTRIES_BRANCH` if that leaves
    none."""
    if replaced is not None:
        branches = compressed_tree_branches(branches, replaced, [BranchSpec(COUNT_BRANCH, "int32")],
                                            REST_COUNTER if selecting else None)
    for unit in units:
        count = [BranchSpec(unit["count_branch"], "int32")] if unit["count_added"] else []
        branches = compressed_tree_branches(branches, {b["name"] for b in unit["branches"]}, count)
    return branches or [BranchSpec(ENTRIES_BRANCH, "uint8")]


def tree_specs(metadata: dict[str, Any]) -> list[BranchSpec]:
    """The branches of a compressed file's table, rebuilt from its metadata (:func:`table_specs`)."""
    collection = metadata.get("collection")
    replaced = None
    if collection is not None:
        replaced = {b["name"] for b in collection["branches"]} - set(collection["lossless_branches"])
    return table_specs([BranchSpec.from_dict(b) for b in metadata["branches"]], replaced,
                       collection is not None and collection["selection"] is not None, metadata.get("units", []))


def packs_units(metadata: dict[str, Any]) -> bool:
    """Whether a file's unit streams are packed into the one branch :data:`UNITS_BRANCH` (format 7 on) rather than
    stored one branch each (format 6)."""
    return metadata["format_version"] >= 7 and bool(unit_streams(metadata))


def metadata_stream_specs(metadata: dict[str, Any]) -> list[BranchSpec]:
    """The branches of the stream table: the collection's streams, then the units' (format 7: packed into
    :data:`UNITS_BRANCH`; format 6: one branch each)."""
    streams = [*(metadata["collection"]["streams"] if "collection" in metadata else [])]
    if packs_units(metadata):
        streams.append({"name": UNITS_BRANCH, "dtype": "uint8", "per": "chunk"})
    else:
        streams += [s for _, s in unit_streams(metadata)]
    return stream_specs({s["name"]: s["dtype"] for s in streams}, {s["name"] for s in streams if s["per"] == "chunk"})


def pack_unit_streams(streams: list[np.ndarray]) -> np.ndarray:
    """One chunk's unit streams (uint8, in the order of :func:`unit_streams`) as the bytes of
    :data:`UNITS_BRANCH`: their lengths (uint32, little-endian), then their bytes one after another."""
    if any(np.asarray(s).dtype != np.uint8 for s in streams):
        raise TypeError("unit streams are uint8 coded bytes (hepae bug)")
    lengths = np.array([len(s) for s in streams], dtype="<u4")
    return np.concatenate([lengths.view(np.uint8), *streams])


def unpack_unit_streams(packed: np.ndarray, count: int) -> list[np.ndarray]:
    """The ``count`` unit streams of :func:`pack_unit_streams`'s bytes; ``ValueError`` if they do not add up."""
    packed = np.asarray(packed, np.uint8)
    if len(packed) < 4 * count:
        raise ValueError(f"{len(packed)} bytes cannot hold the lengths of {count} unit streams")
    lengths = packed[:4 * count].view("<u4").astype(np.int64)
    if 4 * count + int(lengths.sum()) != len(packed):
        raise ValueError(f"the unit streams' lengths add up to {int(lengths.sum())} bytes, not "
                         f"{len(packed) - 4 * count}")
    ends = 4 * count + np.cumsum(lengths)
    return [packed[end - length:end] for end, length in zip(ends, lengths, strict=True)]


@dataclass
class Unit:
    """One section of a file coded under a precision profile: the float branches of one collection (sharing
    a counter) and dtype, or the per-event floats (``counter`` None), and the bound codec they are coded with.

    ``count_branch``: the branch of the compressed table whose per-event counts the unit follows, a kept
    jagged branch of the same counter or, with ``count_added``, an int32 branch hepae adds
    (``hepae_count_<unit name>``).
    """

    name: str
    counter: str | None
    dtype: str
    branches: list[BranchSpec]
    codec: BoundCodec
    count_branch: str | None
    count_added: bool

    def to_dict(self) -> dict[str, Any]:
        """Its metadata entry (without the counts :class:`ContainerWriter` adds when finishing)."""
        return {"name": self.name, "counter": self.counter, "dtype": self.dtype,
                "branches": [b.to_dict() for b in self.branches], "codec": self.codec.codec.get_config(),
                "count_branch": self.count_branch, "count_added": self.count_added,
                "streams": stream_entries(self.codec)}
