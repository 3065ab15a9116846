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

from hepae.container import TreeHasher, collection_specs, read_decoder, read_metadata, tree_specs
from hepae.darkmachines import CSVTableWriter, short_decimals
from hepae.errors import ContainerFormatError, HepaeError, OutputFileError
from hepae.layout import BranchSpec
from hepae.model import HepaeModel
from hepae.reading import DEFAULT_STEP_SIZE, tensor_to_collection
from hepae.sources import CSV_SUFFIXES, Source, open_root, root_source
from hepae.writing import DEFAULT_COMPRESSION, atomic_output, make_writer, parse_compression

PathArg = str | PathLike[str]


def _latent_matrix(arrays: dict[str, ak.Array], latent_names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    counts = ak.to_numpy(ak.num(arrays[latent_names[0]], axis=1))
    for name in latent_names[1:]:
        if not np.array_equal(ak.to_numpy(ak.num(arrays[name], axis=1)), counts):
            raise ValueError(f"latent branches '{latent_names[0]}' and '{name}' disagree on the counts")
    latent = np.stack([ak.to_numpy(ak.flatten(arrays[n])) for n in latent_names], axis=1)
    if (counts < 0).any() or counts.sum() != len(latent):
        raise ValueError("latent counts do not match the latent values")
    return latent, counts


def _decode_chunk(
    arrays: dict[str, ak.Array], model: HepaeModel, metadata: dict[str, Any], specs: list[BranchSpec],
    replaced: dict[str, str], text_output: bool,
) -> tuple[dict[str, object], int]:
    """One chunk of the compressed table -> the original branches (carried + reconstructed), n objects.

    Inconsistent (damaged) data raise ValueError; the caller reports it with the file and entry.
    """
    collection = metadata["collection"]
    latent, counts = _latent_matrix(arrays, collection["latent_branches"])
    decoded = model.decode(latent)
    if text_output:
        decoded = np.stack([short_decimals(decoded[:, j]) for j in range(decoded.shape[1])], axis=1) \
            if len(decoded) else decoded
    rebuilt = tensor_to_collection(decoded, counts, model.featureset, replaced)
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
    step_size: int | str = DEFAULT_STEP_SIZE,
    compression: str = DEFAULT_COMPRESSION,
    overwrite: bool = False,
    device: str = "auto",
    progress: bool = True,
) -> dict[str, Any]:
    """Rebuild the original table from a compressed file, using only that file.

    The output is ROOT (a TTree or an RNTuple, as the input was), or, for a file compressed from
    DarkMachines CSV and an ``output`` ending in ``.csv``, CSV lines in the original format.
    Checksums of the embedded decoder and of all the data are verified; on a mismatch (or any
    other failure) no output file is left behind. The decoder runs on ``device`` (``"auto"``: CUDA if
    available). Returns a summary dict.
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
        model = read_decoder(directory, metadata, str(input)).to(device)
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
        hasher = TreeHasher(stored)
        n_objects = n_events = n_chunks = 0
        with atomic_output(output, overwrite=overwrite, inputs=[input]) as tmp:
            with _output_writer(tmp, text_output, source, specs, compression) as writer:
                bar = tqdm(total=source.num_entries, disable=not progress, unit="event",
                           desc=f"decompress {input.name}")
                with bar:
                    for arrays in source.iterate([s.name for s in stored], step_size):
                        try:
                            hasher.update(arrays)
                            data, chunk_objects = _decode_chunk(arrays, model, metadata, specs, replaced, text_output)
                            writer.extend(data)
                        except HepaeError:
                            raise
                        except Exception as err:  # damaged data that uproot could still read
                            raise ContainerFormatError(
                                f"{input}: damaged data after entry {n_events} ({type(err).__name__}: {err})"
                            ) from None
                        n_objects += chunk_objects
                        n_events += len(arrays[stored[0].name])
                        n_chunks += 1
                        bar.update(len(arrays[stored[0].name]))
                if hasher.hexdigest() != metadata["checksums"]["tree"]:
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
