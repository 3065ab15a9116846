"""The one writer of compressed files (layout: ``docs/format.md``, :mod:`hepae.container.format`)."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import uproot

from hepae._version import __version__
from hepae.codecs import BoundCodec
from hepae.container.format import (
    CONTAINER_FORMAT_VERSION,
    COUNT_BRANCH,
    DECODER_BRANCH,
    DECODER_TREE,
    ENTRIES_BRANCH,
    RESERVED_OBJECTS,
    STREAM_TREE,
    UNITS_BRANCH,
    Unit,
    chunk_digest,
    metadata_stream_specs,
    pack_unit_streams,
    packs_units,
    stream_chunk,
    stream_entries,
    table_specs,
    write_decoder,
    write_metadata,
)
from hepae.errors import BranchTypeError
from hepae.io.branches import BranchSpec
from hepae.io.carryover import CarriedObject, copy_objects
from hepae.io.writing import declare_classes, make_writer


def check_input_names(input: Path, branches: Iterable[str], objects: Iterable[str]) -> None:
    """:class:`BranchTypeError` if an input already has a branch or top-level object with a name hepae writes."""
    if COUNT_BRANCH in set(branches):
        raise BranchTypeError(f"{input} already has a branch named '{COUNT_BRANCH}'; is it already compressed?")
    own = sorted(set(objects) & RESERVED_OBJECTS)
    if own:
        raise BranchTypeError(f"{input} already holds {own}, which hepae writes; is it already compressed?")


class ContainerWriter:
    """Writes one compressed file, chunk by chunk; :meth:`finish` writes its metadata.

    Parameters
    ----------
    file : uproot.WritableDirectory
        The new (temporary) output file, opened by the caller.
    codec : BoundCodec or None
        The codec the feature-set collection's streams come from (None: no such collection).
    units : sequence of Unit
        The sections coded under a precision profile (:class:`hepae.container.format.Unit`).
    storage, table, title : str
        The input table's storage (``"ttree"`` or ``"rntuple"``), name and title: the output keeps them, and
        stores its stream table (and an embedded decoder) the same way.
    branches : list of BranchSpec
        The input table's branches, in order.
    replaced : sequence of str
        The compressed collection's branches: replaced by the per-event object count ``hepae_count``
        (or, with ``selecting``, kept for the objects not selected, counted by ``nhepae_rest``).
    """

    def __init__(self, file: uproot.WritableDirectory, codec: BoundCodec | None, *, units: Sequence[Unit] = (),
                 storage: str, table: str, title: str, branches: list[BranchSpec], replaced: Sequence[str] = (),
                 selecting: bool = False, carried_classes: Callable[[uproot.WritableDirectory], None] | None = None
                 ) -> None:
        self.file, self.codec, self.units, self.storage = file, codec, list(units), storage

        def later_classes(probe: uproot.WritableDirectory) -> None:
            """The classes written after the tables: the metadata string, the carried objects'."""
            probe["metadata"] = "metadata"
            if carried_classes is not None:
                carried_classes(probe)

        declare_classes(file, later_classes)
        self._unit_entries = [u.to_dict() for u in self.units]
        self.table_specs = table_specs(branches, set(replaced) if codec is not None else None, selecting,
                                       self._unit_entries)
        # every branch of the table is coded: the table holds ENTRIES_BRANCH (an input's own branch of that name
        # is a branch like any other)
        self._entries_only = [s.name for s in self.table_specs] == [ENTRIES_BRANCH] and \
            ENTRIES_BRANCH not in {b.name for b in branches}
        self._collection_streams = stream_entries(codec) if codec is not None else []
        layout = {"format_version": CONTAINER_FORMAT_VERSION, "units": self._unit_entries}
        self._packs_units = packs_units(layout)
        self.unit_coded_bytes = [0] * len(self.units)
        if codec is not None:
            layout["collection"] = {"streams": self._collection_streams}
        self.stream_specs = metadata_stream_specs(layout)
        self._table = make_writer(file, storage, table, self.table_specs, title=title)
        what = ", ".join([*([codec.codec.codec_id] if codec is not None else []), *(u.name for u in self.units)])
        self._streams = make_writer(file, storage, STREAM_TREE, self.stream_specs,
                                    title=f"hepae: codec streams ({what}), one entry per chunk")
        self.digests: list[str] = []
        self.unit_objects = [0] * len(self.units)
        self._model: dict[str, Any] | None = None
        self._objects: dict[str, Any] = {}

    def write_chunk(self, table_data: dict[str, Any], counts: np.ndarray | None,
                    streams: dict[str, np.ndarray] | None, n_events: int,
                    unit_streams: Sequence[dict[str, np.ndarray]] = (),
                    unit_counts: Sequence[np.ndarray | None] = ()) -> None:
        """One chunk of ``n_events`` events: the table's rows (every kept branch; ``counts``, the collection's
        encoded objects per event, becomes ``hepae_count``), the collection's streams, and per unit its
        streams and its objects per event (None for per-event values; stored where ``count_added``)."""
        data = dict(table_data)
        if self.codec is not None:
            data[COUNT_BRANCH] = np.asarray(counts, dtype=np.int32)
        if self._entries_only:
            data[ENTRIES_BRANCH] = np.zeros(n_events, np.uint8)
        entry_streams = dict(streams or {})
        packed = []
        for i, (unit, coded, unit_count) in enumerate(zip(self.units, unit_streams, unit_counts, strict=True)):
            if unit.count_added:
                data[unit.count_branch] = np.asarray(unit_count, dtype=np.int32)
            self.unit_objects[i] += int(np.sum(unit_count)) if unit_count is not None else n_events
            ordered = [coded[s["name"]] for s in self._unit_entries[i]["streams"]]  # as the metadata lists them
            self.unit_coded_bytes[i] += sum(len(values) for values in ordered)
            packed += ordered
        if self._packs_units:  # format 7: every unit's streams in one branch (none without units)
            entry_streams[UNITS_BRANCH] = pack_unit_streams(packed)
        entry = stream_chunk(n_events, entry_streams)
        self._table.extend(data)
        self._streams.extend(entry)
        self.digests.append(chunk_digest(self.table_specs, data, self.stream_specs, entry))

    def embed_decoder(self, model: Any) -> None:
        """Embed ``model``'s decoder (a :class:`hepae.ml.model.HepaeModel`) as a pickle-free model file."""
        size, sha = write_decoder(self.file, model.to_bytes(("decoder",)), self.storage)
        self._model = {
            "normalization": model.normalization.get_config(),
            "model": {
                "model_id": model.model_id,
                "decoder_id": model.header(("decoder",))["model_id"],
                "architecture": model.arch.to_dict(),
                "decoder_tree": DECODER_TREE,
                "decoder_branch": DECODER_BRANCH,
                "decoder_bytes": size,
                "training": {k: v for k, v in model.training.items() if k != "history"},
            },
            "decoder_sha256": sha,
        }

    def carry(self, directory: Any, carried: list[CarriedObject], dropped: dict[str, str], input: Path,
              step_size: int | str) -> None:
        """Copy the input file's other objects (:mod:`hepae.io.carryover`) and record what was left out."""
        if carried or dropped:
            self._objects = {"digests": copy_objects(directory, self.file, carried, input, step_size=step_size),
                             "carried": [o.to_dict() for o in carried], "dropped": dropped}

    def finish(self, *, table: str, featureset: dict[str, Any] | None, source: dict[str, Any],
               collection: dict[str, Any] | None, branches: list[BranchSpec], counters: dict[str, Any],
               dropped_branches: dict[str, str], unit_input_bytes: Sequence[int | None] = (),
               profile: dict[str, Any] | None = None) -> dict[str, Any]:
        """Write the metadata (validated, with its checksum) and return it."""
        metadata: dict[str, Any] = {
            "format": "hepae-container",
            "format_version": CONTAINER_FORMAT_VERSION,
            "hepae_version": __version__,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "tree": table,
            "source": source,
            "branches": [s.to_dict() for s in branches],
            "counters": counters,
            "dropped_branches": dropped_branches,
            "checksums": {"algorithm": "sha256", "chunks": self.digests},
        }
        if self.codec is not None:
            metadata["codec"] = self.codec.codec.get_config()
            metadata["featureset"] = featureset
            metadata["collection"] = {**(collection or {}), "dtype": self.codec.dtype.name,
                                      "streams": self._collection_streams}
        if self.units or self.codec is None:
            metadata["units"] = [{**entry, "n_objects": n, "input_compressed_bytes": size, "coded_bytes": coded}
                                 for entry, n, size, coded in zip(self._unit_entries, self.unit_objects,
                                                                  unit_input_bytes, self.unit_coded_bytes, strict=True)]
        if profile is not None:
            metadata["profile"] = profile
        if self._model is not None:
            metadata["normalization"] = self._model["normalization"]
            metadata["model"] = self._model["model"]
            metadata["checksums"]["decoder"] = self._model["decoder_sha256"]
        if self._objects:
            metadata["checksums"]["objects"] = self._objects["digests"]
            metadata["carried_objects"] = self._objects["carried"]
            metadata["dropped_objects"] = self._objects["dropped"]
        write_metadata(self.file, metadata)
        return metadata
