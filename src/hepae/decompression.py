"""decompress: a compressed ROOT file in, a ROOT file with the original tree, branch names, jagged
structure and dtypes out (reconstructed values for the compressed collection, all else identical).
"""

from __future__ import annotations

import time
from os import PathLike
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot
from tqdm.auto import tqdm

from hepae.container import TreeHasher, collection_specs, read_decoder, read_metadata, tree_specs
from hepae.errors import ContainerFormatError, HepaeError
from hepae.layout import BranchSpec
from hepae.model import HepaeModel
from hepae.reading import DEFAULT_STEP_SIZE, get_tree, iterate_arrays, open_root, tensor_to_collection
from hepae.writing import DEFAULT_COMPRESSION, TreeWriter, atomic_output, parse_compression

PathArg = str | PathLike[str]


def _decode_chunk(
    arrays: dict[str, ak.Array], model: HepaeModel, passthrough: list[str], latent_names: list[str],
    replaced: dict[str, str],
) -> tuple[dict[str, object], np.ndarray]:
    """One chunk of the compressed tree -> the original branches (carried + reconstructed) and counts.

    Inconsistent (damaged) data raise ValueError; the caller reports it with the file and entry.
    """
    counts = ak.to_numpy(ak.num(arrays[latent_names[0]], axis=1))
    for name in latent_names[1:]:
        if not np.array_equal(ak.to_numpy(ak.num(arrays[name], axis=1)), counts):
            raise ValueError(f"latent branches '{latent_names[0]}' and '{name}' disagree on the counts")
    latent = np.stack([ak.to_numpy(ak.flatten(arrays[n])) for n in latent_names], axis=1)
    if (counts < 0).any() or counts.sum() != len(latent):
        raise ValueError("latent counts do not match the latent values")
    decoded = tensor_to_collection(model.decode(latent), counts, model.featureset, replaced)
    data: dict[str, object] = {n: arrays[n] for n in passthrough}
    data.update({name: decoded[name] for name in replaced})
    return data, counts


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
    """Rebuild the original tree from a compressed file, using only that file.

    Checksums of the embedded decoder and of all the data are verified; on a mismatch (or any
    other failure) no output file is left behind. The decoder runs on ``device`` (``"auto"``: CUDA if
    available). Returns a summary dict.
    """
    started = time.perf_counter()
    input, output = Path(input), Path(output)
    with open_root(input) as directory:
        metadata = read_metadata(directory, str(input))
        model = read_decoder(directory, metadata, str(input)).to(device)
        tree = get_tree(directory, metadata["tree"], input)
        specs = [BranchSpec.from_dict(b) for b in metadata["branches"]]
        lossless = set(metadata["collection"]["lossless_branches"])
        replaced = {s.name: s.dtype for s in collection_specs(metadata) if s.name not in lossless}
        latent_names = metadata["collection"]["latent_branches"]
        passthrough = [s.name for s in specs if s.name not in replaced]
        present = set(tree.keys(recursive=False))
        missing = [n for n in passthrough + latent_names if n not in present]
        if missing:
            raise ContainerFormatError(
                f"{input}: branches listed in the metadata are missing from the tree: {missing[:10]}"
            )
        hasher = TreeHasher(tree_specs(metadata))
        n_objects = n_events = n_chunks = 0
        with atomic_output(output, overwrite=overwrite, inputs=[input]) as tmp:
            with uproot.recreate(tmp, compression=parse_compression(compression)) as file:
                writer = TreeWriter(file, tree.name, specs, title=tree.title)
                bar = tqdm(total=tree.num_entries, disable=not progress, unit="event", desc=f"decompress {input.name}")
                with bar:
                    for arrays in iterate_arrays(tree, passthrough + latent_names, step_size):
                        try:
                            hasher.update(arrays)
                            data, counts = _decode_chunk(arrays, model, passthrough, latent_names, replaced)
                            writer.extend(data)
                        except HepaeError:
                            raise
                        except Exception as err:  # damaged data that uproot could still read
                            raise ContainerFormatError(
                                f"{input}: damaged data after entry {n_events} ({type(err).__name__}: {err})"
                            ) from None
                        n_objects += int(counts.sum())
                        n_events += len(counts)
                        n_chunks += 1
                        bar.update(len(counts))
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
        "n_events": n_events,
        "n_objects": n_objects,
        "chunks": n_chunks,
        "output_bytes": output.stat().st_size,
        "seconds": round(seconds, 3),
        "objects_per_second": round(n_objects / seconds, 1) if seconds > 0 else None,
    }
