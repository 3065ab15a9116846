"""compress: a ROOT file (TTree or RNTuple) or a DarkMachines CSV file in, a compressed ROOT file out.

A short driver: read a chunk (:mod:`hepae.io`) -> encode it (:mod:`hepae.codecs`) -> write it
(:class:`hepae.container.ContainerWriter`). The file's layout is in ``docs/format.md``.
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import uproot

from hepae.codecs import Codec, get_codec
from hepae.container import ContainerReader, ContainerWriter
from hepae.container.writer import check_input_names
from hepae.errors import (
    CodecError,
    FeatureSetError,
    InputFileError,
    ModelMismatchError,
    UnsupportedBranchError,
)
from hepae.features import FeatureSet, load_featureset
from hepae.io.branches import TreeLayout
from hepae.io.carryover import plan_carryover
from hepae.io.sources import (
    DAMAGED_FILE_ERRORS,
    DEFAULT_STEP_SIZE,
    PathArg,
    open_root,
    open_source,
)
from hepae.io.tensors import (
    check_collection,
    collection_to_tensor,
    select_objects,
    selection_mask,
    tensor_dtype,
    unselected_values,
)
from hepae.io.writing import DEFAULT_COMPRESSION, atomic_output, parse_compression
from hepae.progress import progress_bar
from hepae.quality.physics import count_unphysical
from hepae.quality.residuals import ResidualAccumulator

if TYPE_CHECKING:
    from hepae.ml.model import HepaeModel


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
    """The input file's objects besides the table (:mod:`hepae.io.carryover`): carried, or refused by name."""
    try:
        names = set(directory.keys(cycle=False, recursive=False))
    except DAMAGED_FILE_ERRORS as err:  # damaged directory records
        raise InputFileError(f"cannot list the objects in {input} (damaged file?): {type(err).__name__}") from None
    check_input_names(input, [], names)
    return plan_carryover(directory, input, {table}, drop_unsupported=drop_unsupported)


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
    progress: bool | None = None,
) -> dict[str, Any]:
    """Compress the feature-set collection of ``input`` into the ROOT file ``output`` with ``codec``.

    ``input`` is a ROOT file with the feature set's TTree or RNTuple, or a DarkMachines CSV file (kept
    as an RNTuple). Every other branch of the table is carried over with identical values; the
    collection's branches are replaced by the codec's streams (:mod:`hepae.codecs.base`) and a per-event
    object count (if the feature set selects objects, only the selected ones are encoded and the others
    kept exactly). The ``ae`` codec (default) needs ``model`` and embeds its decoder; ``truncate`` and
    ``lossless`` need only ``featureset``. Reading and writing stream in chunks of ``step_size``; the
    encoder runs on ``device`` (``"auto"``: CUDA if available).

    With ``check`` (default), the streams are also decoded as decompression will, and the summary
    gets per-variable ``residuals`` and the number of ``unphysical_objects`` (E below |p|, negative
    mass or pT), at the cost of one more pass through the decoder.

    ``progress``: a progress bar (default: only on a terminal).

    Returns a summary dict (sizes, ratios, counts, residuals, timing).
    """
    started = time.perf_counter()
    codec = get_codec(codec)
    model_path = None if model is None or _is_model(model) else Path(model)
    if model is not None:
        if not _is_model(model):
            from hepae.ml.model import load_model  # torch: only with a model

            model = load_model(model)
        model = model.to(device)
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
        if wide and codec.exact:
            raise CodecError(f"the {codec.codec_id} codec stores floats, which cannot hold every 64-bit integer of "
                             f"{wide} in {input}; mark these columns 'lossless' in the feature set to carry them as "
                             "they are")
        bound = codec.bind(featureset.column_names, dtype, model if codec.needs_model else None)
        dropped = unsupported_policy(layout, input, drop_unsupported)
        carried, dropped_objects = ([], {}) if directory is None else \
            _plan_other_objects(directory, input, source.name, drop_unsupported)
        check_input_names(input, layout.all_names(), [])
        replaced = featureset.compressed_branches  # lossless columns stay as they are
        n_objects = n_encoded = n_events = unphysical = 0
        accumulator = ResidualAccumulator(featureset) if check else None
        lossless = [j for j, column in enumerate(featureset.columns) if column.lossless]
        inputs = [input] + ([model_path] if model_path is not None else [])
        with atomic_output(output, overwrite=overwrite, inputs=inputs) as tmp:
            with uproot.recreate(tmp, compression=parse_compression(compression)) as file:
                writer = ContainerWriter(file, bound, storage=source.storage, table=source.name, title=source.title,
                                         branches=layout.branches, replaced=replaced,
                                         selecting=featureset.select is not None)
                with progress_bar(progress, total=layout.num_entries, unit="event",
                                  desc=f"compress {input.name}") as bar:
                    for arrays in source.iterate(layout.names, step_size):
                        values, counts = collection_to_tensor(arrays, featureset, dtype, source=input,
                                                              entry_start=n_events)
                        mask = selection_mask(arrays, featureset)
                        encoded, encoded_counts = select_objects(values, counts, mask)
                        streams = bound.encode(encoded, encoded_counts)
                        if accumulator is not None:
                            reco = bound.decode(streams, encoded_counts)
                            reco[:, lossless] = encoded[:, lossless]  # carried exactly
                            accumulator.update(encoded, reco)
                            unphysical += count_unphysical(featureset, reco)
                        data = {name: arrays[name] for name in layout.names if name not in replaced}
                        if mask is not None:  # the objects not selected keep their values
                            data.update(unselected_values(arrays, replaced, mask, counts - encoded_counts))
                        writer.write_chunk(data, encoded_counts, streams)
                        n_objects += len(values)
                        n_encoded += len(encoded)
                        n_events += len(counts)
                        bar.update(len(counts))
                if n_events != layout.num_entries:
                    raise InputFileError(f"{input}: {layout.num_entries} events were counted but {n_events} read "
                                         "(was the file changed while it was being compressed?)")
                if model is not None and codec.needs_model and bound.decoder_used:  # not if no chunk needs it
                    writer.embed_decoder(model)
                if directory is not None:  # the other objects, as they are
                    writer.carry(directory, carried, dropped_objects, input, step_size)
                metadata = writer.finish(
                    table=source.name,
                    featureset=featureset.to_dict(),
                    source={"file": input.name, "format": source.format, "size_bytes": os.path.getsize(input),
                            "num_entries": layout.num_entries},
                    collection={
                        "counter": counter,
                        "counter_in_input": counter in layout.counters,
                        "n_objects": n_objects,
                        "n_compressed_objects": n_encoded,
                        "branches": [layout.spec(b).to_dict() for b in featureset.branches],
                        "lossless_branches": [c.branch for c in featureset.columns if c.lossless],
                        "selection": featureset.select,
                        "input_compressed_bytes": source.stored_bytes(replaced),
                    },
                    branches=layout.branches,
                    counters=layout.counters,
                    dropped_branches=dropped,
                )
            with ContainerReader(tmp) as written:  # reads back as meant, before anyone can see it
                written.check_as_written(metadata, output)
                sizes = written.sizes()
    seconds = time.perf_counter() - started
    return {
        "input": str(input),
        "output": str(output),
        "codec": codec.get_config(),
        "n_events": layout.num_entries,
        "n_objects": n_objects,
        "n_compressed_objects": n_encoded,
        "chunks": len(writer.digests),
        "dropped_branches": dropped,
        "carried_objects": [o.path for o in carried],
        "dropped_objects": dropped_objects,
        "residuals": accumulator.summary() if accumulator is not None else None,
        "unphysical_objects": unphysical if check else None,
        "seconds": round(seconds, 3),
        "objects_per_second": round(n_objects / seconds, 1) if seconds > 0 else None,
        **sizes,
    }


def _is_model(model: Any) -> bool:
    """A loaded model (anything with a decoder to embed), rather than the path of a model file."""
    return not isinstance(model, str | PathLike)
