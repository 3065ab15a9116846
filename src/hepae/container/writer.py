"""The one writer of compressed files (layout: ``docs/format.md``, :mod:`hepae.container.format`)."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
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
    RESERVED_OBJECTS,
    REST_COUNTER,
    STREAM_TREE,
    chunk_digest,
    compressed_tree_branches,
    stream_chunk,
    stream_specs,
    write_decoder,
    write_metadata,
)
from hepae.errors import BranchTypeError
from hepae.io.branches import BranchSpec
from hepae.io.carryover import CarriedObject, copy_objects
from hepae.io.writing import TreeWriter, make_writer


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
    codec : BoundCodec
        The codec the streams come from.
    storage, table, title : str
        The input table's storage (``"TTree"`` or ``"RNTuple"``), name and title: the output keeps them.
    branches : list of BranchSpec
        The input table's branches, in order.
    replaced : sequence of str
        The compressed collection's branches: replaced by the per-event object count ``hepae_count``
        (or, with ``selecting``, kept for the objects not selected, counted by ``nhepae_rest``).
    """

    def __init__(self, file: uproot.WritableDirectory, codec: BoundCodec, *, storage: str, table: str, title: str,
                 branches: list[BranchSpec], replaced: Sequence[str], selecting: bool) -> None:
        self.file, self.codec = file, codec
        self.table_specs = compressed_tree_branches(branches, set(replaced), [BranchSpec(COUNT_BRANCH, "int32")],
                                                    REST_COUNTER if selecting else None)
        self._stream_dtypes = codec.stream_dtypes()
        self._chunk_streams = codec.chunk_streams()
        self.stream_specs = stream_specs(self._stream_dtypes, self._chunk_streams)
        self._table = make_writer(file, storage, table, self.table_specs, title=title)
        self._streams = TreeWriter(file, STREAM_TREE, self.stream_specs,
                                   title=f"hepae: {codec.codec.codec_id} codec streams, one entry per chunk")
        self.digests: list[str] = []
        self._model: dict[str, Any] | None = None
        self._objects: dict[str, Any] = {}

    def write_chunk(self, table_data: dict[str, Any], counts: np.ndarray, streams: dict[str, np.ndarray]) -> None:
        """One chunk: the table's rows (every kept branch; ``counts``, the encoded objects per event, becomes
        ``hepae_count``) and the codec's streams of its objects."""
        data = {**table_data, COUNT_BRANCH: np.asarray(counts, dtype=np.int32)}
        entry = stream_chunk(len(counts), streams)
        self._table.extend(data)
        self._streams.extend(entry)
        self.digests.append(chunk_digest(self.table_specs, data, self.stream_specs, entry))

    def embed_decoder(self, model: Any) -> None:
        """Embed ``model``'s decoder (a :class:`hepae.ml.model.HepaeModel`) as a pickle-free model file."""
        size, sha = write_decoder(self.file, model.to_bytes(("decoder",)))
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

    def finish(self, *, table: str, featureset: dict[str, Any], source: dict[str, Any], collection: dict[str, Any],
               branches: list[BranchSpec], counters: dict[str, Any], dropped_branches: dict[str, str]
               ) -> dict[str, Any]:
        """Write the metadata (validated, with its checksum) and return it."""
        metadata: dict[str, Any] = {
            "format": "hepae-container",
            "format_version": CONTAINER_FORMAT_VERSION,
            "hepae_version": __version__,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "codec": self.codec.codec.get_config(),
            "tree": table,
            "featureset": featureset,
            "source": source,
            "collection": {
                **collection,
                "dtype": self.codec.dtype.name,
                "streams": [{"name": n, "dtype": d, "per": "chunk" if n in self._chunk_streams else "object"}
                            for n, d in self._stream_dtypes.items()],
            },
            "branches": [s.to_dict() for s in branches],
            "counters": counters,
            "dropped_branches": dropped_branches,
            "checksums": {"algorithm": "sha256", "chunks": self.digests},
        }
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
