"""The one reader of compressed files: metadata, embedded decoder, verified chunks, carried objects.

Everything is verified before it is used (``docs/format.md``, "Integrity"). The embedded decoder is
loaded (and torch imported) only for a file that carries one: compression embeds it only if a chunk
needs the network.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot

from hepae.codecs import BoundCodec, Codec, get_codec
from hepae.container.format import (
    CHUNK_ENTRIES,
    COUNT_BRANCH,
    METADATA_KEY,
    STREAM_TREE,
    UNITS_BRANCH,
    auxiliary_storage,
    auxiliary_table,
    chunk_digest,
    collection_specs,
    metadata_stream_specs,
    packs_units,
    read_decoder_bytes,
    read_metadata,
    tree_specs,
    unit_stream_name,
    unit_streams,
    unpack_unit_streams,
)
from hepae.errors import CodecError, ContainerFormatError, FeatureSetError, UnknownLayoutError
from hepae.features import FeatureSet, load_featureset
from hepae.io.branches import BranchSpec
from hepae.io.carryover import CarriedObject, copy_objects, object_digests, write_class_samples
from hepae.io.darkmachines import short_decimals
from hepae.io.hashing import TreeHasher
from hepae.io.sources import (
    DAMAGED_FILE_ERRORS,
    RNTupleSource,
    Source,
    iterate_arrays,
    open_root,
    read_range,
    root_source,
)
from hepae.io.tensors import merge_selection, tensor_to_collection


@dataclass
class Chunk:
    """One verified chunk of a compressed file.

    Attributes
    ----------
    arrays : dict of str to awkward.Array
        Its rows of the compressed table (every stored branch).
    streams : dict of str to numpy.ndarray
        The codec's streams, flat.
    n_events : int
    index, start : int
        Its place: the chunk's number and its first entry.
    counts : numpy.ndarray
        The feature-set collection's encoded objects per event (``hepae_count``).
    """

    arrays: dict[str, ak.Array]
    streams: dict[str, np.ndarray]
    n_events: int
    index: int = 0
    start: int = 0

    @property
    def counts(self) -> np.ndarray:
        return ak.to_numpy(self.arrays[COUNT_BRANCH]).astype(np.int64)


class ContainerReader:
    """A compressed file opened for reading (a context manager).

    Parameters
    ----------
    path : path-like
        The compressed file. Its metadata is read and verified on opening:
        :class:`hepae.errors.ContainerFormatError` if it is not a hepae file, or damaged.
    written : dict, optional
        For hepae's own read-back after compression: the metadata it has just validated and written. Read back,
        the metadata is checked against its checksum and, if equal to this, not validated a second time
        (:meth:`check_as_written` then compares the two). Never pass metadata that was not validated.
    """

    def __init__(self, path: str | PathLike[str], *, written: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        self._stack = contextlib.ExitStack()
        try:
            self.directory = self._stack.enter_context(open_root(self.path))
            self.metadata = read_metadata(self.directory, str(self.path), written)
        except BaseException:
            self._stack.close()
            raise
        self._table: Source | None = None

    def __enter__(self) -> ContainerReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stack.close()

    # -- what the metadata says ----------------------------------------------------------------------
    @property
    def has_collection(self) -> bool:
        """Whether a feature-set collection is coded (format 5 and earlier: always)."""
        return "collection" in self.metadata

    @property
    def units(self) -> list[dict[str, Any]]:
        """The sections coded under a precision profile (metadata entries; empty before format 6)."""
        return self.metadata.get("units", [])

    @functools.cached_property
    def codec(self) -> Codec:
        self._need_collection()
        return get_codec(self.metadata["codec"])

    @functools.cached_property
    def featureset(self) -> FeatureSet:
        self._need_collection()
        return load_featureset(self.metadata["featureset"])

    def _need_collection(self) -> None:
        if not self.has_collection:
            raise ContainerFormatError(f"{self.path} codes no feature-set collection (it was compressed under a "
                                       "precision profile only); there is no feature set or codec to use")

    @functools.cached_property
    def unit_codecs(self) -> list[BoundCodec]:
        """Each unit's codec, bound to its branches."""
        out = []
        stored = {s.name for s in tree_specs(self.metadata)}
        for unit in self.units:
            try:
                out.append(get_codec(unit["codec"]).bind([b["name"] for b in unit["branches"]], unit["dtype"]))
            except (CodecError, FeatureSetError) as err:
                raise ContainerFormatError(f"{self.path}: unit '{unit['name']}' cannot be decoded: {err}") from None
            if unit["counter"] is not None and unit["count_branch"] not in stored:
                raise ContainerFormatError(f"{self.path}: unit '{unit['name']}' is counted by branch "
                                           f"'{unit['count_branch']}', which its table does not hold (corrupted?)")
        return out

    @functools.cached_property
    def lossy_branches(self) -> dict[str, str]:
        """Every branch whose values come back within a bound (or from a network): name -> how."""
        out = {}
        if self.has_collection:
            network = self.codec.network_columns(self.featureset.column_names)
            bounds = {b.column: str(b).split("=", 1)[1] for b in getattr(self.codec, "error_bounds", ())}
            for column in self.featureset.columns:
                branch = column.branch or column.name
                if branch in self.replaced or column.name in bounds:
                    out[branch] = bounds.get(column.name, "network (no bound)" if column.name in network
                                             else self.codec.codec_id)
        for unit in self.units:
            for bound in get_codec(unit["codec"]).error_bounds:
                out[bound.column] = f"{bound.kind}:{bound.value!r}"
        return out

    @functools.cached_property
    def dtype(self) -> np.dtype:
        """The dtype the codec worked in (format 3 files do not say: the feature set's, truncate float32)."""
        self._need_collection()
        recorded = self.metadata["collection"].get("dtype")
        if recorded:
            return np.dtype(recorded)
        return np.dtype("float32" if self.metadata["codec"]["id"] == "truncate" else self.featureset.dtype)

    @property
    def has_decoder(self) -> bool:
        return "model" in self.metadata

    @property
    def source_format(self) -> str:
        return self.metadata["source"]["format"]

    @functools.cached_property
    def branches(self) -> list[BranchSpec]:
        """The original table's branches, in order."""
        return [BranchSpec.from_dict(b) for b in self.metadata["branches"]]

    @functools.cached_property
    def replaced(self) -> dict[str, str]:
        """Name -> dtype of the branches the collection's codec rebuilds (none without a collection)."""
        if not self.has_collection:
            return {}
        lossless = set(self.metadata["collection"]["lossless_branches"])
        return {s.name: s.dtype for s in collection_specs(self.metadata) if s.name not in lossless}

    @functools.cached_property
    def decoded_branches(self) -> dict[str, str]:
        """Name -> dtype of every branch decoding rebuilds: the collection's and the units'."""
        out = dict(self.replaced)
        for unit in self.units:
            out.update({b["name"]: b["dtype"] for b in unit["branches"]})
        return out

    @functools.cached_property
    def carried_objects(self) -> list[CarriedObject]:
        return [CarriedObject.from_dict(o) for o in self.metadata.get("carried_objects", [])]

    @property
    def table(self) -> Source:
        """The compressed table (carried branches and ``hepae_count``)."""
        if self._table is None:
            self._table = root_source(self.directory, self.path, self.metadata["tree"])
        return self._table

    # -- the decoder and the codec -------------------------------------------------------------------
    def decoder(self, device: str = "cpu") -> Any:
        """The embedded decoder (a :class:`hepae.ml.model.HepaeModel`), checked against the metadata's
        checksum and the identity, architecture, normalization and feature set it records."""
        from hepae.ml.model import HepaeModel  # torch: only for files that carry a network

        blob = read_decoder_bytes(self.directory, self.metadata, str(self.path))
        model = HepaeModel.from_bytes(blob, source=f"decoder embedded in {self.path}")
        recorded = self.metadata["model"]
        mismatches = [what for what, ok in (
            ("decoder id", model.model_id == recorded["decoder_id"]),
            ("architecture", model.arch.to_dict() == recorded["architecture"]),
            ("normalization", model.normalization.get_config() == self.metadata["normalization"]),
            ("feature set", model.featureset.to_dict() == self.metadata["featureset"]),
        ) if not ok]
        if mismatches:
            raise ContainerFormatError(f"{self.path}: the embedded decoder is not the one the metadata records "
                                       f"({', '.join(mismatches)} differ; file corrupted or edited)")
        return model.to(device)

    def bound_codec(self, device: str = "cpu") -> BoundCodec | None:
        """The file's codec, bound to its collection and (if the file carries one) its decoder; None if the
        file codes no feature-set collection."""
        if not self.has_collection:
            return None
        model = self.decoder(device) if self.has_decoder else None
        try:
            return self.codec.bind(self.featureset.column_names, self.dtype, model)
        except CodecError as err:  # e.g. float32 latent values and no embedded decoder
            raise ContainerFormatError(f"{self.path}: its codec cannot decode it: {err}") from None

    # -- the data ------------------------------------------------------------------------------------
    def chunks(self) -> Iterator[Chunk]:
        """The chunks, each checked before it is given out.

        Format 4 and later: each chunk against its own checksum, so nothing damaged or edited is ever
        decoded. Format 3 (no per-chunk checksums): all chunks against one checksum, after the last
        one. Raises :class:`ContainerFormatError` naming the file and the chunk.
        """
        path, metadata, source = self.path, self.metadata, self.table
        digests = metadata["checksums"].get("chunks")
        hasher = TreeHasher(self.stored_specs)  # format 3: over all chunks
        stream_hasher = TreeHasher(metadata_stream_specs(metadata))
        n_events = n_chunks = 0
        for entry in iterate_arrays(self._stream_tree, self._entry_names, step_size=1):
            chunk_events = self._entry_events(entry, n_chunks)
            if chunk_events < 0 or n_events + chunk_events > source.num_entries:
                raise ContainerFormatError(f"{path}: chunk {n_chunks} claims {chunk_events} events after entry "
                                           f"{n_events} of {source.num_entries} (file corrupted or edited)")
            chunk = self._verified(entry, n_chunks, n_events, n_events + chunk_events)
            if digests is None:
                stream_hasher.update(entry)
                hasher.update(chunk.arrays)
            yield chunk
            n_events += chunk_events
            n_chunks += 1
        if digests is None and (hasher.hexdigest() != metadata["checksums"]["tree"]
                                or stream_hasher.hexdigest() != metadata["checksums"]["streams"]):
            raise ContainerFormatError(f"{path}: data checksum mismatch (file corrupted or edited)")
        if digests is not None and n_chunks != len(digests):
            raise ContainerFormatError(f"{path}: holds {n_chunks} chunks, its checksums {len(digests)} "
                                       "(file corrupted or edited)")
        if n_events != metadata["source"]["num_entries"]:
            raise ContainerFormatError(f"{path}: its chunks hold {n_events} events, the metadata says "
                                       f"{metadata['source']['num_entries']} (file corrupted or edited)")

    @functools.cached_property
    def _stream_tree(self) -> Any:
        """The stream table: a TTree, or (format 7, beside an RNTuple table) an RNTuple. Missing, of the other
        class or unreadable: :class:`ContainerFormatError`."""
        return auxiliary_table(self.directory, STREAM_TREE, "the codec streams", self.metadata, str(self.path))

    @functools.cached_property
    def _entry_names(self) -> list[str]:
        """The branches of a stream-tree entry: events in the chunk, then the codec's streams."""
        return [CHUNK_ENTRIES, *(s.name for s in metadata_stream_specs(self.metadata)[1:])]

    def _entry_events(self, entry: dict[str, ak.Array], index: int) -> int:
        try:
            return int(entry[CHUNK_ENTRIES][0])
        except (ValueError, TypeError, IndexError) as err:  # awkward's answers to lists of the wrong shape
            raise ContainerFormatError(f"{self.path}: chunk {index} is damaged ({type(err).__name__}: {err})") from None

    def _verified(self, entry: dict[str, ak.Array], index: int, start: int, stop: int) -> Chunk:
        """Chunk ``index`` from its stream-tree entry and the table's rows ``[start, stop)``, checked against
        its checksum (format 4 and later; format 3 files are checked as a whole)."""
        try:
            streams = {name: ak.to_numpy(entry[name][0]) for name in self._entry_names[1:]}
        except (ValueError, TypeError, IndexError) as err:  # awkward's answers to lists of the wrong shape
            raise ContainerFormatError(f"{self.path}: chunk {index} is damaged ({type(err).__name__}: {err})") from None
        stored = self.stored_specs
        arrays = self.table.read([s.name for s in stored], start, stop)
        digests = self.metadata["checksums"].get("chunks")
        if digests is not None and (index >= len(digests) or digests[index] != chunk_digest(
                stored, arrays, metadata_stream_specs(self.metadata), entry)):
            raise ContainerFormatError(f"{self.path}: data checksum mismatch in chunk {index} (entries {start} to "
                                       f"{stop}; file corrupted or edited)")
        if packs_units(self.metadata):  # format 7: every unit's streams in one branch
            names = [s["name"] for _, s in unit_streams(self.metadata)]
            try:
                streams.update(zip(names, unpack_unit_streams(streams.pop(UNITS_BRANCH), len(names)), strict=True))
            except ValueError as err:
                raise ContainerFormatError(f"{self.path}: chunk {index} is damaged ({err})") from None
        return Chunk(arrays, streams, stop - start, index, start)

    @functools.cached_property
    def stored_specs(self) -> list[BranchSpec]:
        """The compressed table's branches (carried ones and ``hepae_count``), checked to be all there."""
        stored = tree_specs(self.metadata)
        present = set(self.table.layout.all_names())
        missing = [s.name for s in stored if s.name not in present]
        if missing:
            raise ContainerFormatError(f"{self.path}: branches listed in the metadata are missing from the tree: "
                                       f"{missing[:10]}")
        return stored

    @functools.cached_property
    def chunk_starts(self) -> np.ndarray:
        """First entry of each chunk, and the number of entries at the end (``len = chunks + 1``)."""
        events = np.concatenate([ak.to_numpy(c[CHUNK_ENTRIES])
                                 for c in iterate_arrays(self._stream_tree, [CHUNK_ENTRIES])]
                                or [np.zeros(0, np.int64)]).astype(np.int64)
        starts = np.concatenate([[0], np.cumsum(events)])
        if (events < 0).any() or starts[-1] != self.metadata["source"]["num_entries"] \
                or len(events) != len(self.metadata["checksums"].get("chunks", events)):
            raise ContainerFormatError(f"{self.path}: its chunks hold {starts[-1]} events in {len(events)} chunks, "
                                       "not what the metadata says (file corrupted or edited)")
        return starts

    def chunk(self, index: int) -> Chunk:
        """Chunk ``index`` alone (random access), checked against its checksum before it is given out.

        A format 3 file has no per-chunk checksums: all of it is checked once, on the first call.
        """
        starts = self.chunk_starts
        if not 0 <= index < len(starts) - 1:
            raise IndexError(f"{self.path} has {len(starts) - 1} chunks, not {index + 1}")
        if "chunks" not in self.metadata["checksums"] and not getattr(self, "_all_verified", False):
            for _ in self.chunks():
                pass
            self._all_verified = True
        entry = read_range(self._stream_tree, self._entry_names, index, index + 1)
        return self._verified(entry, index, int(starts[index]), int(starts[index + 1]))

    def decode_chunk(self, chunk: Chunk, codec: BoundCodec, csv_decimals: bool = False
                     ) -> tuple[dict[str, Any], int]:
        """One verified chunk -> the original table's branches (carried as they are, the collection's
        rebuilt by ``codec``, :meth:`bound_codec`) and its number of objects.

        With ``csv_decimals``, values that are only float32-accurate get the shortest decimals that round
        to them (as DarkMachines CSV text writes them). Data that do not decode (damaged, or coded by
        another hepae) raise :class:`ContainerFormatError` naming the file and the chunk.
        """
        try:
            return self._decode_chunk(chunk, codec, csv_decimals)
        except UnknownLayoutError as err:  # not damage: another version's coding
            raise ContainerFormatError(f"{self.path}: cannot decode it: {err}") from None
        except (CodecError, ValueError) as err:  # coded bytes or sizes that do not agree
            raise ContainerFormatError(f"{self.path}: damaged data in chunk {chunk.index} (after entry "
                                       f"{chunk.start}): {err}") from None

    def _decode_chunk(self, chunk: Chunk, codec: BoundCodec | None, csv_decimals: bool
                      ) -> tuple[dict[str, Any], int]:
        rebuilt: dict[str, Any] = {}
        n_objects = 0
        if self.has_collection:
            rebuilt, n_objects = self._decode_collection(chunk, codec, csv_decimals)
        for i, (unit, unit_codec) in enumerate(zip(self.units, self.unit_codecs)):
            rebuilt.update(self._decode_unit(chunk, i, unit, unit_codec))
        return {s.name: rebuilt[s.name] if s.name in rebuilt else chunk.arrays[s.name] for s in self.branches}, \
            n_objects

    def unit_counts(self, chunk: Chunk, unit: dict[str, Any]) -> np.ndarray | None:
        """A unit's objects per event in a chunk (None for per-event values)."""
        if unit["counter"] is None:
            return None
        values = chunk.arrays[unit["count_branch"]]
        counts = values if unit["count_added"] else ak.num(values, axis=1)
        counts = ak.to_numpy(counts).astype(np.int64)
        if (counts < 0).any():
            raise ValueError(f"unit '{unit['name']}' has negative counts")
        return counts

    def _decode_unit(self, chunk: Chunk, index: int, unit: dict[str, Any], codec: BoundCodec) -> dict[str, Any]:
        streams = {s["name"]: chunk.streams[unit_stream_name(index, s["name"])] for s in unit["streams"]}
        counts = self.unit_counts(chunk, unit)
        decoded = codec.decode(streams, counts if counts is not None else np.ones(chunk.n_events, np.int64))
        out = {}
        for j, branch in enumerate(unit["branches"]):
            values = np.ascontiguousarray(decoded[:, j], dtype=np.dtype(branch["dtype"]))
            out[branch["name"]] = values if counts is None else ak.unflatten(values, counts)
        return out

    def _decode_collection(self, chunk: Chunk, codec: BoundCodec | None, csv_decimals: bool
                           ) -> tuple[dict[str, Any], int]:
        if codec is None:
            raise ValueError("the feature-set collection needs its codec (ContainerReader.bound_codec())")
        collection = self.metadata["collection"]
        counts = chunk.counts
        per_object = {s["name"] for s in collection["streams"] if s["per"] == "object"}
        n_streamed = {len(v) for name, v in chunk.streams.items() if name in per_object} or {int(counts.sum())}
        if (counts < 0).any() or n_streamed != {int(counts.sum())}:
            raise ValueError(f"the per-event counts add up to {counts.sum()} objects, the streams hold {n_streamed}")
        decoded = codec.decode(chunk.streams, counts)
        featureset = self.featureset
        if csv_decimals and len(decoded):
            from_network = codec.codec.network_columns(featureset.column_names)
            approximate = [j for j, c in enumerate(featureset.columns)
                           if decoded.dtype == np.float32 or c.name in from_network]
            if approximate:
                decoded = decoded.astype(np.float64)
                for j in approximate:
                    decoded[:, j] = short_decimals(decoded[:, j])
        replaced = self.replaced
        rebuilt = tensor_to_collection(decoded, counts, featureset, replaced)
        n_objects = int(counts.sum())
        if collection["selection"] is not None:  # the decoded objects back among the ones that were kept
            rebuilt, n_objects = merge_selection(rebuilt, chunk.arrays, collection["selection"], replaced)
        return {name: rebuilt[name] for name in replaced}, n_objects

    def carried_classes(self) -> Callable[[uproot.WritableDirectory], None] | None:
        """A function that writes one object of each class of the carried objects (None if none are carried),
        for an output to declare them before its table (:func:`hepae.io.writing.declare_classes`)."""
        return write_class_samples(self.directory, self.carried_objects, self.path) if self.carried_objects else None

    def copy_objects_to(self, file: uproot.WritableDirectory) -> None:
        """Copy the carried objects into ``file``, each checked against its checksum as it is copied."""
        carried = self.carried_objects
        if carried:
            self._check_objects(copy_objects(self.directory, file, carried, self.path))

    def verify(self) -> None:
        """Check every checksum (metadata, embedded decoder, every chunk, carried objects) without decoding."""
        if self.has_decoder:
            read_decoder_bytes(self.directory, self.metadata, str(self.path))
        for _ in self.chunks():
            pass
        self._check_objects(object_digests(self.directory, self.carried_objects, self.path))

    def _check_objects(self, digests: dict[str, str]) -> None:
        expected = self.metadata["checksums"].get("objects", {})
        wrong = sorted(k for k in set(expected) | set(digests) if expected.get(k) != digests.get(k))
        if wrong:
            raise ContainerFormatError(f"{self.path}: checksum mismatch of the carried object(s) {wrong[:5]} "
                                       "(file corrupted or edited)")

    def check_as_written(self, metadata: dict[str, Any], output: Path) -> None:
        """Check that a file just written reads back as meant: its metadata (checksum and all), and the
        events, chunks and objects it holds. :class:`ContainerFormatError` naming ``output`` if not.

        The values themselves are checked by compression's check decode; this catches a file that holds
        other counts than its metadata says, which no later command could decompress.
        """
        def fail(what: str) -> ContainerFormatError:
            return ContainerFormatError(f"{output}: the file written does not read back as written ({what}); "
                                        "nothing was written (this is a hepae bug: please report it)")

        if self.metadata != json.loads(json.dumps(metadata)):
            raise fail("metadata differ")
        try:
            self.unit_codecs  # every unit decodable, counted by a branch the table holds
        except ContainerFormatError as err:
            raise fail(str(err).removeprefix(f"{self.path}: ")) from None
        expected = metadata["source"]["num_entries"]
        if self.table.num_entries != expected:
            raise fail(f"{self.table.num_entries} events in '{metadata['tree']}', {expected} meant")
        streams = self._stream_tree
        if streams.num_entries != len(metadata["checksums"]["chunks"]):
            raise fail(f"{streams.num_entries} chunks, {len(metadata['checksums']['chunks'])} meant")
        events = sum(int(np.sum(c[CHUNK_ENTRIES])) for c in iterate_arrays(streams, [CHUNK_ENTRIES]))
        if events != expected:
            raise fail(f"chunks of {events} events, {expected} meant")
        if self.has_collection:
            objects = sum(int(np.sum(c[COUNT_BRANCH])) for c in self.table.iterate([COUNT_BRANCH]))
            if objects != metadata["collection"]["n_compressed_objects"]:
                raise fail(f"{objects} objects, {metadata['collection']['n_compressed_objects']} meant")

    # -- sizes ---------------------------------------------------------------------------------------
    def sizes(self) -> dict[str, Any]:
        """Byte counts: whole files; the compressed collection alone (its streams and counts); each unit
        (its streams and added counts) before and after (format 7: "after" holds the unit's share of the packed
        ``units`` branch, in proportion to its coded bytes; ``units_shared`` says so)."""
        metadata = self.metadata
        stream_bytes = self.stream_bytes()
        packed = stream_bytes.pop(UNITS_BRANCH, 0) + stream_bytes.pop(f"n_{UNITS_BRANCH}", 0)  # format 7
        shares = _shares(packed, [unit.get("coded_bytes", 0) for unit in self.units])
        units = []
        for i, unit in enumerate(self.units):
            names = [unit_stream_name(i, s["name"]) for s in unit["streams"]]
            size = sum(stream_bytes.pop(n, 0) + stream_bytes.pop(f"n_{n}", 0) for n in names) + shares[i]
            if unit["count_added"]:
                size += self.table.stored_bytes([unit["count_branch"]]) or 0
            before = unit["input_compressed_bytes"]
            units.append({"name": unit["name"], "branches": len(unit["branches"]), "n_objects": unit["n_objects"],
                          "input_bytes": before, "output_bytes": size, "ratio": _ratio(before, size)})
        input_bytes = metadata["source"]["size_bytes"]
        output_bytes = self.path.stat().st_size
        out: dict[str, Any] = {
            "input_bytes": input_bytes,
            "output_bytes": output_bytes,
            "file_ratio": round(input_bytes / output_bytes, 4) if output_bytes else None,
        }
        if self.has_collection:
            latent_bytes = sum(stream_bytes.values()) + (self.table.stored_bytes([COUNT_BRANCH]) or 0)
            input_collection = metadata["collection"]["input_compressed_bytes"]
            entropy_model = metadata["codec"].get("entropy_model")  # the bounded codec's, in the metadata
            entropy_model_bytes = len(json.dumps(entropy_model, separators=(",", ":"))) if entropy_model else 0
            decoder = (metadata["model"]["decoder_bytes"] if "model" in metadata else 0) + entropy_model_bytes
            n_objects = metadata["collection"]["n_objects"]
            out.update({
                "collection_input_bytes": input_collection,
                "collection_latent_bytes": latent_bytes,
                "decoder_bytes": decoder,
                "entropy_model_bytes": entropy_model_bytes,
                "collection_ratio": _ratio(input_collection, latent_bytes + decoder),
                "collection_ratio_without_decoder": _ratio(input_collection, latent_bytes),
                "bytes_per_object_input": _ratio(input_collection, n_objects),
                "bytes_per_object_latent": round(latent_bytes / n_objects, 4) if n_objects else None,
            })
        if units:
            out["units"] = units
            out["units_shared"] = packs_units(metadata)  # "after": shares of the one branch of all units' streams
        return out

    def stream_bytes(self) -> dict[str, int]:
        """On-disk bytes of each branch (TTree: its baskets, key headers included) or top-level field (RNTuple:
        its pages; the header, footer and page lists are not counted) of the stream table."""
        table = self._stream_tree
        try:
            if auxiliary_storage(self.metadata) == "ttree":
                return {b.name: int(b.compressed_bytes) for b in table.branches}
            fields = RNTupleSource(self.path, table)
            return {name: int(fields.stored_bytes([name])) for name in table.keys(recursive=False)}
        except DAMAGED_FILE_ERRORS as err:
            raise ContainerFormatError(f"{self.path}: the codec streams '{STREAM_TREE}' cannot be read (damaged "
                                       f"file?): {type(err).__name__}") from None


def _shares(total: int, weights: list[int]) -> list[int]:
    """``total`` bytes shared out in proportion to ``weights`` (equally if they are all 0), in whole bytes that add
    up to ``total`` (largest remainders first)."""
    if not weights:
        return []
    weights = weights if sum(weights) else [1] * len(weights)
    exact = [total * w / sum(weights) for w in weights]
    shares = [int(e) for e in exact]
    for i in sorted(range(len(weights)), key=lambda i: shares[i] - exact[i])[:total - sum(shares)]:
        shares[i] += 1
    return shares


def _ratio(a: int | None, b: int) -> float | None:
    return round(a / b, 4) if a is not None and b else None


def is_container(directory: Any) -> bool:
    """Whether an open ROOT directory is a hepae compressed file (it holds hepae's metadata)."""
    return METADATA_KEY in directory.keys(cycle=False)


__all__ = ["Chunk", "ContainerReader", "is_container"]
