"""decompress: a compressed ROOT file in; out, the original table with its branch names, jagged
structure and dtypes (reconstructed values for the compressed collection, all else identical), as a
TTree or RNTuple like the input, or as DarkMachines CSV lines if the input was a CSV file.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from os import PathLike
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot
from tqdm.auto import tqdm

from hepae.carryover import CarriedObject, copy_objects, object_digests
from hepae.codecs import Codec, get_codec
from hepae.container import (
    CHUNK_ENTRIES,
    COUNT_BRANCH,
    STREAM_TREE,
    TreeHasher,
    chunk_digest,
    collection_specs,
    metadata_stream_specs,
    read_decoder,
    read_metadata,
    tree_specs,
)
from hepae.darkmachines import CSVTableWriter, short_decimals
from hepae.errors import CodecError, ContainerFormatError, OutputFileError, TreeNotFoundError
from hepae.features import FeatureSet, load_featureset
from hepae.layout import BranchSpec
from hepae.model import HepaeModel
from hepae.reading import tensor_to_collection
from hepae.sources import CSV_SUFFIXES, Source, get_tree, iterate_arrays, open_root, root_source
from hepae.writing import DEFAULT_COMPRESSION, atomic_output, make_writer, parse_compression

PathArg = str | PathLike[str]


def _stream_entry(entry: dict[str, ak.Array], names: list[str]) -> tuple[dict[str, np.ndarray], int]:
    """The codec's streams of one chunk, flat, and the chunk's number of events."""
    return {name: ak.to_numpy(entry[name][0]) for name in names}, int(entry[CHUNK_ENTRIES][0])


def _decode_chunk(
    arrays: dict[str, ak.Array], streams: dict[str, np.ndarray], codec: Codec, model: HepaeModel | None,
    metadata: dict[str, Any], featureset: FeatureSet, specs: list[BranchSpec], replaced: dict[str, str],
    text_output: bool,
) -> tuple[dict[str, object], int]:
    """One chunk of the compressed table and its streams -> the original branches (carried +
    reconstructed), n objects.

    Inconsistent (damaged) data raise ValueError; the caller reports it with the file and entry.
    """
    collection = metadata["collection"]
    counts = ak.to_numpy(arrays[COUNT_BRANCH]).astype(np.int64)
    per_object = {s["name"] for s in collection["streams"] if s["per"] == "object"}
    n_streamed = {len(v) for name, v in streams.items() if name in per_object} or {int(counts.sum())}
    if (counts < 0).any() or n_streamed != {int(counts.sum())}:
        raise ValueError(f"the per-event counts add up to {counts.sum()} objects, the streams hold {n_streamed}")
    decoded = codec.decode(streams, model, counts)
    if text_output and len(decoded):  # CSV text: values only float32-accurate get short float32 decimals
        bounded = {b.column for b in getattr(codec, "error_bounds", [])}
        approximate = [j for j, c in enumerate(featureset.columns)
                       if decoded.dtype == np.float32 or (codec.codec_id == "ae" and c.name not in bounded)]
        if approximate:
            decoded = decoded.astype(np.float64)
            for j in approximate:
                decoded[:, j] = short_decimals(decoded[:, j])
    rebuilt = tensor_to_collection(decoded, counts, featureset, replaced)
    n_objects = int(counts.sum())
    selection = collection["selection"]
    if selection is not None:  # put the decoded objects back among the ones that were kept
        types = arrays[selection["branch"]]
        all_counts = ak.to_numpy(ak.num(types, axis=1))
        mask = np.isin(ak.to_numpy(ak.flatten(types, axis=1)), np.asarray(selection["values"]))
        if mask.sum() != n_objects:
            raise ValueError(f"{mask.sum()} objects are selected by '{selection['branch']}' but {n_objects} decoded")
        for name, dtype in replaced.items():
            merged = np.empty(len(mask), dtype=dtype)
            merged[mask] = ak.to_numpy(ak.flatten(rebuilt[name], axis=1))
            kept = ak.to_numpy(ak.flatten(arrays[name], axis=1))
            if len(kept) != len(mask) - n_objects:
                raise ValueError(f"branch '{name}' keeps {len(kept)} unselected objects, not {len(mask) - n_objects}")
            merged[~mask] = kept
            rebuilt[name] = ak.unflatten(merged, all_counts)
        n_objects = len(mask)
    return {s.name: rebuilt[s.name] if s.name in replaced else arrays[s.name] for s in specs}, n_objects


def verified_chunks(
    directory: uproot.ReadOnlyDirectory, metadata: dict[str, Any], source: Source, path: Path
) -> Iterator[tuple[dict[str, ak.Array], dict[str, np.ndarray], int]]:
    """The compressed file's chunks, each checked before it is given out: ``(table rows, streams, events)``.

    Format 4: each chunk against its own checksum, so nothing damaged or edited is ever decoded.
    Format 3 (no per-chunk checksums): all chunks against one checksum, after the last one.
    Raises :class:`ContainerFormatError` naming the file and the chunk.
    """
    stored = tree_specs(metadata)
    present = set(source.layout.all_names())
    missing = [s.name for s in stored if s.name not in present]
    if missing:
        raise ContainerFormatError(f"{path}: branches listed in the metadata are missing from the tree: {missing[:10]}")
    streams_specs = metadata_stream_specs(metadata)
    digests = metadata["checksums"].get("chunks")
    hasher, stream_hasher = TreeHasher(stored), TreeHasher(streams_specs)  # format 3: over all chunks
    stream_names = [s["name"] for s in metadata["collection"]["streams"]]
    try:
        stream_tree = get_tree(directory, STREAM_TREE, path)
    except TreeNotFoundError:
        raise ContainerFormatError(f"{path}: the codec streams (TTree '{STREAM_TREE}') are missing") from None
    n_events = n_chunks = 0
    for entry in iterate_arrays(stream_tree, [CHUNK_ENTRIES, *stream_names], step_size=1):
        try:
            streams, chunk_events = _stream_entry(entry, stream_names)
        except (ValueError, TypeError, IndexError) as err:
            raise ContainerFormatError(f"{path}: chunk {n_chunks} is damaged ({type(err).__name__}: {err})") from None
        if chunk_events < 0 or n_events + chunk_events > source.num_entries:
            raise ContainerFormatError(f"{path}: chunk {n_chunks} claims {chunk_events} events after entry {n_events} "
                                       f"of {source.num_entries} (file corrupted or edited)")
        arrays = source.read([s.name for s in stored], n_events, n_events + chunk_events)
        if digests is None:
            stream_hasher.update(entry)
            hasher.update(arrays)
        elif n_chunks >= len(digests) or chunk_digest(stored, arrays, streams_specs, entry) != digests[n_chunks]:
            raise ContainerFormatError(f"{path}: data checksum mismatch in chunk {n_chunks} (entries {n_events} to "
                                       f"{n_events + chunk_events}; file corrupted or edited)")
        yield arrays, streams, chunk_events
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


def verify(input: PathArg) -> dict[str, Any]:
    """Check every checksum of a compressed file (metadata, embedded decoder, every chunk) without
    decoding it; returns the metadata. :class:`ContainerFormatError` if anything is damaged."""
    input = Path(input)
    with open_root(input) as directory:
        metadata = read_metadata(directory, str(input))
        if "model" in metadata:
            read_decoder(directory, metadata, str(input))
        source = root_source(directory, input, metadata["tree"])
        for _ in verified_chunks(directory, metadata, source, input):
            pass
        _check_objects(input, metadata, object_digests(directory, _carried_objects(metadata), input))
    return metadata


@contextlib.contextmanager
def _output_writer(tmp: Path, text_output: bool, source: Source, specs: list[BranchSpec],
                   compression: str) -> Iterator[tuple[Any, uproot.WritableDirectory | None]]:
    """The table's writer, and the ROOT file (``None`` for CSV output) for the carried objects."""
    if text_output:
        with open(tmp, "w", encoding="utf-8", newline="\n") as handle:
            yield CSVTableWriter(handle), None
        return
    with uproot.recreate(tmp, compression=parse_compression(compression)) as file:
        yield make_writer(file, source.storage, source.name, specs, title=source.title), file


def _carried_objects(metadata: dict[str, Any]) -> list[CarriedObject]:
    return [CarriedObject.from_dict(o) for o in metadata.get("carried_objects", [])]


def _check_objects(path: Path, metadata: dict[str, Any], digests: dict[str, str]) -> None:
    expected = metadata["checksums"].get("objects", {})
    wrong = sorted(k for k in set(expected) | set(digests) if expected.get(k) != digests.get(k))
    if wrong:
        raise ContainerFormatError(f"{path}: checksum mismatch of the carried object(s) {wrong[:5]} "
                                   "(file corrupted or edited)")


def decompress(
    input: PathArg,
    output: PathArg,
    *,
    compression: str = DEFAULT_COMPRESSION,
    overwrite: bool = False,
    device: str = "auto",
    progress: bool = True,
) -> dict[str, Any]:
    """Rebuild the original table from a compressed file, using only that file.

    The output is ROOT (a TTree or an RNTuple, as the input was), or, for a file compressed from
    DarkMachines CSV and an ``output`` ending in ``.csv``, CSV lines in the original format.
    It works through the compressed file's chunks (as compression wrote them), so its memory use is
    that of compression's ``step_size``. Checksums of the embedded decoder and of all the data are
    verified; on a mismatch (or any other failure) no output file is left behind. The decoder runs on
    ``device`` (``"auto"``: CUDA if available). Returns a summary dict.
    """
    started = time.perf_counter()
    input, output = Path(input), Path(output)
    text_output = output.suffix.lower() in CSV_SUFFIXES
    with open_root(input) as directory:
        metadata = read_metadata(directory, str(input))
        if text_output and metadata["source"]["format"] != "darkmachines-csv":
            raise OutputFileError(
                f"{output}: CSV output is for files compressed from DarkMachines CSV; {input} was compressed from a "
                f"{metadata['source']['format']} (write a .root file)"
            )
        codec = get_codec(metadata["codec"])
        featureset = load_featureset(metadata["featureset"])
        # format 3 files do not say: their codecs worked in the feature set's dtype, truncate always in float32
        dtype = np.dtype(metadata["collection"].get("dtype") or
                         ("float32" if codec.codec_id == "truncate" else featureset.dtype))
        model = read_decoder(directory, metadata, str(input)).to(device) if "model" in metadata else None
        try:
            codec.prepare(featureset.column_names, dtype, model)
        except CodecError as err:  # e.g. float32 latent values and no embedded decoder
            raise ContainerFormatError(f"{input}: its codec cannot decode it: {err}") from None
        source = root_source(directory, input, metadata["tree"])
        specs = [BranchSpec.from_dict(b) for b in metadata["branches"]]
        lossless = set(metadata["collection"]["lossless_branches"])
        replaced = {s.name: s.dtype for s in collection_specs(metadata) if s.name not in lossless}
        n_objects = n_events = n_chunks = 0
        with atomic_output(output, overwrite=overwrite, inputs=[input]) as tmp:
            with _output_writer(tmp, text_output, source, specs, compression) as (writer, file):
                bar = tqdm(total=source.num_entries, disable=not progress, unit="event",
                           desc=f"decompress {input.name}")
                with bar:
                    for arrays, streams, chunk_events in verified_chunks(directory, metadata, source, input):
                        try:
                            data, chunk_objects = _decode_chunk(arrays, streams, codec, model, metadata, featureset,
                                                                specs, replaced, text_output)
                        except CodecError as err:  # coded bytes that do not decode
                            raise ContainerFormatError(f"{input}: damaged data after entry {n_events}: {err}") from None
                        except ValueError as err:  # sizes that do not agree (a format 3 file is checked at the end)
                            raise ContainerFormatError(f"{input}: damaged data after entry {n_events}: {err}") from None
                        writer.extend(data)  # outside the try: a full output disk is not damaged input
                        n_objects += chunk_objects
                        n_events += chunk_events
                        n_chunks += 1
                        bar.update(chunk_events)
                if n_events != metadata["source"]["num_entries"] or n_objects != metadata["collection"]["n_objects"]:
                    raise ContainerFormatError(
                        f"{input}: holds {n_events} events / {n_objects} objects, metadata says "
                        f"{metadata['source']['num_entries']} / {metadata['collection']['n_objects']}"
                    )
                carried = _carried_objects(metadata)
                if carried and file is not None:  # the input file's other objects, checked as they are copied
                    _check_objects(input, metadata, copy_objects(directory, file, carried, input))
    seconds = time.perf_counter() - started
    return {
        "input": str(input),
        "output": str(output),
        "format": "darkmachines-csv" if text_output else source.storage,
        "n_events": n_events,
        "n_objects": n_objects,
        "chunks": n_chunks,
        "output_bytes": output.stat().st_size,
        "seconds": round(seconds, 3),
        "objects_per_second": round(n_objects / seconds, 1) if seconds > 0 else None,
    }
