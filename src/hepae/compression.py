"""compress: a ROOT file (TTree or RNTuple) or a DarkMachines CSV file in, a compressed ROOT file out
(see :mod:`hepae.container` for its layout)."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import time
import warnings
from os import PathLike
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot
from tqdm.auto import tqdm

from hepae._version import __version__
from hepae.carryover import copy_objects, plan_carryover
from hepae.codecs import Codec, CodecError, get_codec
from hepae.container import (
    CHUNK_ENTRIES,
    CONTAINER_FORMAT_VERSION,
    COUNT_BRANCH,
    DECODER_BRANCH,
    DECODER_TREE,
    METADATA_CHECKSUM_KEY,
    METADATA_KEY,
    REST_COUNTER,
    STREAM_TREE,
    chunk_digest,
    compressed_tree_branches,
    read_metadata,
    stream_chunk,
    stream_specs,
    write_decoder,
    write_metadata,
)
from hepae.errors import (
    BranchTypeError,
    ContainerFormatError,
    FeatureSetError,
    InputFileError,
    ModelMismatchError,
    UnsupportedBranchError,
)
from hepae.features import FeatureSet, load_featureset
from hepae.inspection import size_report
from hepae.layout import BranchSpec, TreeLayout
from hepae.metrics import ResidualAccumulator
from hepae.model import HepaeModel, load_model
from hepae.physics import count_unphysical
from hepae.reading import (
    DEFAULT_STEP_SIZE,
    check_collection,
    collection_to_tensor,
    select_objects,
    selection_mask,
    tensor_dtype,
)
from hepae.sources import get_tree, iterate_arrays, open_root, open_source, root_source
from hepae.writing import DEFAULT_COMPRESSION, TreeWriter, atomic_output, make_writer, parse_compression

PathArg = str | PathLike[str]


def unsupported_policy(layout: TreeLayout, path: PathArg, drop_unsupported: bool) -> dict[str, str]:
    """Branches that cannot be carried over: an error listing them, or (if allowed) a loud warning."""
    if not layout.unsupported:
        return {}
    listing = "; ".join(f"'{k}': {v}" for k, v in layout.unsupported.items())
    if not drop_unsupported:
        raise UnsupportedBranchError(
            f"{len(layout.unsupported)} branch(es) of tree '{layout.name}' in {path} cannot be written back by "
            f"uproot: {listing}. Pass drop_unsupported=True (CLI: --drop-unsupported) to leave them out; "
            "they are then listed in the output's metadata"
        )
    warnings.warn(f"leaving out {len(layout.unsupported)} branch(es) that cannot be written: {listing}", stacklevel=3)
    return dict(layout.unsupported)


def _plan_other_objects(directory: Any, input: Path, table: str, drop_unsupported: bool
                        ) -> tuple[list[Any], dict[str, str]]:
    """The input file's objects besides the table (:mod:`hepae.carryover`): carried, or refused by name."""
    try:
        names = set(directory.keys(cycle=False, recursive=False))
    except Exception as err:  # damaged directory records
        raise InputFileError(f"cannot list the objects in {input} (damaged file?): {type(err).__name__}") from None
    own = sorted(names & {METADATA_KEY, METADATA_CHECKSUM_KEY, STREAM_TREE, DECODER_TREE})
    if own:
        raise BranchTypeError(f"{input} already holds {own}, which hepae writes; is it already compressed?")
    return plan_carryover(directory, input, {table}, drop_unsupported=drop_unsupported)


def verify_written(path: Path, metadata: dict[str, Any], output: Path) -> None:
    """Check that the file just written reads back as what was meant: its metadata (checksum and all),
    and the events, chunks and objects it holds. :class:`ContainerFormatError` if not.

    The values themselves are checked by the check decode; this catches a file that holds other
    counts than its metadata says, which no later command could decompress.
    """
    def fail(what: str) -> ContainerFormatError:
        return ContainerFormatError(f"{output}: the file written does not read back as written ({what}); "
                                    "nothing was written (this is a hepae bug: please report it)")

    with open_root(path) as directory:
        if read_metadata(directory, str(output)) != json.loads(json.dumps(metadata)):
            raise fail("metadata differ")
        table = root_source(directory, path, metadata["tree"])
        expected = metadata["source"]["num_entries"]
        if table.num_entries != expected:
            raise fail(f"{table.num_entries} events in '{metadata['tree']}', {expected} meant")
        streams = get_tree(directory, STREAM_TREE, path)
        if streams.num_entries != len(metadata["checksums"]["chunks"]):
            raise fail(f"{streams.num_entries} chunks, {len(metadata['checksums']['chunks'])} meant")
        events = sum(int(np.sum(c[CHUNK_ENTRIES])) for c in iterate_arrays(streams, [CHUNK_ENTRIES]))
        objects = sum(int(np.sum(c[COUNT_BRANCH])) for c in table.iterate([COUNT_BRANCH]))
        if events != expected or objects != metadata["collection"]["n_compressed_objects"]:
            raise fail(f"chunks of {events} events holding {objects} objects, "
                       f"{expected} / {metadata['collection']['n_compressed_objects']} meant")


def compress(
    input: PathArg,
    output: PathArg,
    model: HepaeModel | PathArg | None = None,
    *,
    codec: str | dict[str, Any] | Codec = "ae",
    featureset: str | FeatureSet | None = None,
    step_size: int | str = DEFAULT_STEP_SIZE,
    compression: str = DEFAULT_COMPRESSION,
    overwrite: bool = False,
    drop_unsupported: bool = False,
    device: str = "auto",
    check: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Compress the feature-set collection of ``input`` into the ROOT file ``output`` with ``codec``.

    ``input`` is a ROOT file with the feature set's TTree or RNTuple, or a DarkMachines CSV file (kept
    as an RNTuple). Every other branch of the table is carried over with identical values; the
    collection's branches are replaced by the codec's streams (:mod:`hepae.codecs`) and a per-event
    object count (if the feature set selects objects, only the selected ones are encoded and the others
    kept exactly). The ``ae`` codec (default) needs ``model`` and embeds its decoder; ``truncate`` and
    ``lossless`` need only ``featureset``. Reading and writing stream in chunks of ``step_size``; the
    encoder runs on ``device`` (``"auto"``: CUDA if available).

    With ``check`` (default), the streams are also decoded as decompression will, and the summary
    gets per-variable ``residuals`` and the number of ``unphysical_objects`` (E below |p|, negative
    mass or pT), at the cost of one more pass through the decoder.

    Returns a summary dict (sizes, ratios, counts, residuals, timing).
    """
    started = time.perf_counter()
    codec = get_codec(codec)
    model_path = None if model is None or isinstance(model, HepaeModel) else Path(model)
    if model is not None:
        model = (model if isinstance(model, HepaeModel) else load_model(model)).to(device)
    elif codec.needs_model:
        raise CodecError(f"the {codec.codec_id} codec needs a trained model (CLI: -m MODEL)")
    if featureset is None:
        if model is None:
            raise FeatureSetError("without a model, pass the feature set to compress (CLI: --features)")
        featureset = model.featureset
    featureset = load_featureset(featureset)
    if model is not None and model.featureset.to_dict() != featureset.to_dict():
        raise ModelMismatchError(
            f"the model was trained on feature set '{model.featureset.name}', not on '{featureset.name}'")
    codec_model = model if codec.needs_model else None
    input, output = Path(input), Path(output)
    with contextlib.ExitStack() as stack:
        source = stack.enter_context(open_source(input, featureset.tree))
        # the file's other objects, read from one handle (a CSV file has none)
        directory = None if source.format == "darkmachines-csv" else stack.enter_context(open_root(input))
        layout = source.layout
        counter = check_collection(layout, featureset, input)
        dtype = tensor_dtype(layout, featureset)  # float64 inputs stay float64: no value is narrowed
        wide = [b for b in featureset.compressed_branches if np.dtype(layout.spec(b).dtype).kind in "iu"
                and np.dtype(layout.spec(b).dtype).itemsize == 8]
        if wide and codec.codec_id == "lossless":
            raise CodecError(f"the lossless codec stores floats, which cannot hold every 64-bit integer of {wide} in "
                             f"{input}; mark these columns 'lossless' in the feature set to carry them as they are")
        codec.prepare(featureset.column_names, dtype, codec_model)
        dropped = unsupported_policy(layout, input, drop_unsupported)
        carried, dropped_objects = ([], {}) if directory is None else \
            _plan_other_objects(directory, input, source.name, drop_unsupported)
        stream_dtypes = codec.stream_dtypes()
        if COUNT_BRANCH in layout.all_names():
            raise BranchTypeError(f"{input} already has a branch named '{COUNT_BRANCH}'; is it already compressed?")
        replaced = featureset.compressed_branches  # lossless columns stay as they are
        selecting = featureset.select is not None
        out_specs = compressed_tree_branches(layout.branches, set(replaced), [BranchSpec(COUNT_BRANCH, "int32")],
                                             REST_COUNTER if selecting else None)
        chunk_streams = codec.chunk_streams()
        streams_specs = stream_specs(stream_dtypes, chunk_streams)
        digests: list[str] = []
        n_objects = n_encoded = n_events = unphysical = 0
        accumulator = ResidualAccumulator(featureset) if check else None
        lossless = [j for j, column in enumerate(featureset.columns) if column.lossless]
        inputs = [input] + ([model_path] if model_path is not None else [])
        with atomic_output(output, overwrite=overwrite, inputs=inputs) as tmp:
            with uproot.recreate(tmp, compression=parse_compression(compression)) as file:
                writer = make_writer(file, source.storage, source.name, out_specs, title=source.title)
                stream_writer = TreeWriter(file, STREAM_TREE, stream_specs(stream_dtypes, chunk_streams),
                                           title=f"hepae: {codec.codec_id} codec streams, one entry per chunk")
                bar = tqdm(total=layout.num_entries, disable=not progress, unit="event", desc=f"compress {input.name}")
                with bar:
                    for arrays in source.iterate(layout.names, step_size):
                        values, counts = collection_to_tensor(arrays, featureset, dtype, source=input,
                                                              entry_start=n_events)
                        mask = selection_mask(arrays, featureset)
                        encoded, encoded_counts = select_objects(values, counts, mask)
                        streams = codec.encode(encoded, codec_model, encoded_counts)
                        if accumulator is not None:
                            reco = codec.decode(streams, codec_model, encoded_counts)
                            reco[:, lossless] = encoded[:, lossless]  # carried exactly
                            accumulator.update(encoded, reco)
                            unphysical += count_unphysical(featureset, reco)
                        n_objects += len(values)
                        n_encoded += len(encoded)
                        data = {name: arrays[name] for name in layout.names if name not in replaced}
                        if mask is not None:  # the objects not selected keep their values
                            rest = ~mask
                            for name in replaced:
                                flat = ak.to_numpy(ak.flatten(arrays[name], axis=1))
                                data[name] = ak.unflatten(flat[rest], counts - encoded_counts)
                        data[COUNT_BRANCH] = encoded_counts.astype(np.int32)
                        writer.extend(data)
                        entry = stream_chunk(len(counts), streams)
                        stream_writer.extend(entry)
                        digests.append(chunk_digest(out_specs, data, streams_specs, entry))
                        n_events += len(counts)
                        bar.update(len(counts))
                if n_events != layout.num_entries:
                    raise InputFileError(f"{input}: {layout.num_entries} events were counted but {n_events} read "
                                         "(was the file changed while it was being compressed?)")
                metadata = {
                    "format": "hepae-container",
                    "format_version": CONTAINER_FORMAT_VERSION,
                    "hepae_version": __version__,
                    "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                    "codec": codec.get_config(),
                    "tree": source.name,
                    "featureset": featureset.to_dict(),
                    "source": {
                        "file": input.name, "format": source.format, "size_bytes": os.path.getsize(input),
                        "num_entries": layout.num_entries,
                    },
                    "collection": {
                        "dtype": dtype.name,
                        "counter": counter,
                        "counter_in_input": counter in layout.counters,
                        "n_objects": n_objects,
                        "n_compressed_objects": n_encoded,
                        "branches": [layout.spec(b).to_dict() for b in featureset.branches],
                        "streams": [{"name": n, "dtype": d, "per": "chunk" if n in chunk_streams else "object"}
                                    for n, d in stream_dtypes.items()],
                        "lossless_branches": [c.branch for c in featureset.columns if c.lossless],
                        "selection": featureset.select,
                        "input_compressed_bytes": source.stored_bytes(replaced),
                    },
                    "branches": [s.to_dict() for s in layout.branches],
                    "counters": layout.counters,
                    "dropped_branches": dropped,
                    "checksums": {"algorithm": "sha256", "chunks": digests},
                }
                if codec_model is not None and codec.decoder_used():  # not embedded if no chunk needs it
                    decoder_bytes, decoder_sha = write_decoder(file, model)
                    metadata["normalization"] = model.normalization.get_config()
                    metadata["model"] = {
                        "model_id": model.model_id,
                        "decoder_id": model.header(("decoder",))["model_id"],
                        "architecture": model.arch.to_dict(),
                        "decoder_tree": DECODER_TREE,
                        "decoder_branch": DECODER_BRANCH,
                        "decoder_bytes": decoder_bytes,
                        "training": {k: v for k, v in model.training.items() if k != "history"},
                    }
                    metadata["checksums"]["decoder"] = decoder_sha
                if carried or dropped_objects:  # the other objects, as they are
                    metadata["checksums"]["objects"] = copy_objects(directory, file, carried, input,
                                                                    step_size=step_size)
                    metadata["carried_objects"] = [o.to_dict() for o in carried]
                    metadata["dropped_objects"] = dropped_objects
                write_metadata(file, metadata)
            verify_written(tmp, metadata, output)
    sizes = size_report(output, metadata)
    seconds = time.perf_counter() - started
    return {
        "input": str(input),
        "output": str(output),
        "codec": codec.get_config(),
        "n_events": layout.num_entries,
        "n_objects": n_objects,
        "n_compressed_objects": n_encoded,
        "chunks": len(digests),
        "dropped_branches": dropped,
        "carried_objects": [o.path for o in carried],
        "dropped_objects": dropped_objects,
        "residuals": accumulator.summary() if accumulator is not None else None,
        "unphysical_objects": unphysical if check else None,
        "seconds": round(seconds, 3),
        "objects_per_second": round(n_objects / seconds, 1) if seconds > 0 else None,
        **sizes,
    }
