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

from hepae.codecs import Codec, get_codec
from hepae.container import (
    CHUNK_ENTRIES,
    COUNT_BRANCH,
    STREAM_TREE,
    TreeHasher,
    collection_specs,
    metadata_stream_specs,
    read_decoder,
    read_metadata,
    tree_specs,
)
from hepae.darkmachines import CSVTableWriter, short_decimals
from hepae.errors import CodecError, ContainerFormatError, HepaeError, OutputFileError, TreeNotFoundError
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
    if text_output:
        decoded = np.stack([short_decimals(decoded[:, j]) for j in range(decoded.shape[1])], axis=1) \
            if len(decoded) else decoded
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


@contextlib.contextmanager
def _output_writer(tmp: Path, text_output: bool, source: Source, specs: list[BranchSpec],
                   compression: str) -> Iterator[Any]:
    if text_output:
        with open(tmp, "w", encoding="utf-8", newline="\n") as handle:
            yield CSVTableWriter(handle)
        return
    with uproot.recreate(tmp, compression=parse_compression(compression)) as file:
        yield make_writer(file, source.storage, source.name, specs, title=source.title)


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
        model = read_decoder(directory, metadata, str(input)).to(device) if "model" in metadata else None
        try:
            codec.prepare(featureset.column_names, featureset.dtype, model)
        except CodecError as err:  # e.g. float32 latent values and no embedded decoder
            raise ContainerFormatError(f"{input}: its codec cannot decode it: {err}") from None
        source = root_source(directory, input, metadata["tree"])
        specs = [BranchSpec.from_dict(b) for b in metadata["branches"]]
        lossless = set(metadata["collection"]["lossless_branches"])
        replaced = {s.name: s.dtype for s in collection_specs(metadata) if s.name not in lossless}
        stored = tree_specs(metadata)
        present = set(source.layout.all_names())
        missing = [s.name for s in stored if s.name not in present]
        if missing:
            raise ContainerFormatError(
                f"{input}: branches listed in the metadata are missing from the tree: {missing[:10]}"
            )
        hasher, stream_hasher = TreeHasher(stored), TreeHasher(metadata_stream_specs(metadata))
        stream_names = [s["name"] for s in metadata["collection"]["streams"]]
        try:
            stream_tree = get_tree(directory, STREAM_TREE, input)
        except TreeNotFoundError:
            raise ContainerFormatError(f"{input}: the codec streams (TTree '{STREAM_TREE}') are missing") from None
        n_objects = n_events = n_chunks = 0
        with atomic_output(output, overwrite=overwrite, inputs=[input]) as tmp:
            with _output_writer(tmp, text_output, source, specs, compression) as writer:
                bar = tqdm(total=source.num_entries, disable=not progress, unit="event",
                           desc=f"decompress {input.name}")
                with bar:
                    for entry in iterate_arrays(stream_tree, [CHUNK_ENTRIES, *stream_names], step_size=1):
                        try:
                            stream_hasher.update(entry)
                            streams, chunk_events = _stream_entry(entry, stream_names)
                            if chunk_events < 0 or n_events + chunk_events > source.num_entries:
                                raise ValueError(f"a chunk of {chunk_events} events after entry {n_events}")
                            arrays = source.read([s.name for s in stored], n_events, n_events + chunk_events)
                            hasher.update(arrays)
                            data, chunk_objects = _decode_chunk(arrays, streams, codec, model, metadata, featureset,
                                                                specs, replaced, text_output)
                            writer.extend(data)
                        except CodecError as err:  # coded bytes that do not decode
                            raise ContainerFormatError(f"{input}: damaged data after entry {n_events}: {err}") from None
                        except HepaeError:
                            raise
                        except Exception as err:  # damaged data that uproot could still read
                            raise ContainerFormatError(
                                f"{input}: damaged data after entry {n_events} ({type(err).__name__}: {err})"
                            ) from None
                        n_objects += chunk_objects
                        n_events += chunk_events
                        n_chunks += 1
                        bar.update(chunk_events)
                if (hasher.hexdigest() != metadata["checksums"]["tree"]
                        or stream_hasher.hexdigest() != metadata["checksums"]["streams"]):
                    raise ContainerFormatError(f"{input}: data checksum mismatch (file corrupted or edited)")
                if n_events != metadata["source"]["num_entries"] or n_objects != metadata["collection"]["n_objects"]:
                    raise ContainerFormatError(
                        f"{input}: holds {n_events} events / {n_objects} objects, metadata says "
                        f"{metadata['source']['num_entries']} / {metadata['collection']['n_objects']}"
                    )
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
