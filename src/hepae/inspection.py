"""inspect: what is in a compressed file, a model file, or any ROOT file."""

from __future__ import annotations

import zipfile
from os import PathLike
from pathlib import Path
from typing import Any

from hepae.container import COUNT_BRANCH, METADATA_KEY, STREAM_TREE, read_metadata
from hepae.features import list_featuresets
from hepae.model import load_model
from hepae.sources import RNTUPLE_CLASS, check_input_file, open_root, root_source


def _ratio(a: int | None, b: int) -> float | None:
    return round(a / b, 4) if a is not None and b else None


def size_report(path: str | PathLike[str], metadata: dict[str, Any]) -> dict[str, Any]:
    """Byte counts of a compressed file: whole files, and the compressed collection alone."""
    path = Path(path)
    with open_root(path) as directory:
        streams = directory[STREAM_TREE]
        latent_bytes = sum(int(b.compressed_bytes) for b in streams.branches)
        latent_bytes += root_source(directory, path, metadata["tree"]).stored_bytes([COUNT_BRANCH])
    input_collection = metadata["collection"]["input_compressed_bytes"]
    decoder = metadata["model"]["decoder_bytes"] if "model" in metadata else 0
    n_objects = metadata["collection"]["n_objects"]
    input_bytes = metadata["source"]["size_bytes"]
    output_bytes = path.stat().st_size
    return {
        "input_bytes": input_bytes,
        "output_bytes": output_bytes,
        "file_ratio": round(input_bytes / output_bytes, 4) if output_bytes else None,
        "collection_input_bytes": input_collection,
        "collection_latent_bytes": latent_bytes,
        "decoder_bytes": decoder,
        "collection_ratio": _ratio(input_collection, latent_bytes + decoder),
        "collection_ratio_without_decoder": _ratio(input_collection, latent_bytes),
        "bytes_per_object_input": _ratio(input_collection, n_objects),
        "bytes_per_object_latent": round(latent_bytes / n_objects, 4) if n_objects else None,
    }


def _inspect_root(path: Path) -> dict[str, Any]:
    with open_root(path) as directory:
        if METADATA_KEY in directory.keys(cycle=False):
            metadata = read_metadata(directory, str(path))
            return {"kind": "hepae-container", "file": str(path), "metadata": metadata,
                    "sizes": size_report(path, metadata)}
        trees, names = {}, {}
        tables = {k.split(";")[0] for k, c in directory.classnames(recursive=False).items()
                  if c in ("TTree", RNTUPLE_CLASS)}
        for name in sorted(tables):
            layout = root_source(directory, path, name).layout
            trees[layout.name] = {
                "format": layout.format,
                "num_entries": layout.num_entries,
                "n_branches": len(layout.all_names()),
                "counters": sorted(layout.counters),
                "unsupported_branches": layout.unsupported,
            }
            names[layout.name] = set(layout.all_names())
        matching = [fs.name for fs in list_featuresets()
                    if fs.tree in names and all(b in names[fs.tree] for b in fs.branches)]
        return {"kind": "root", "file": str(path), "trees": trees, "matching_featuresets": matching}


def inspect(path: str | PathLike[str]) -> dict[str, Any]:
    """Describe ``path``: a compressed file (metadata, sizes), a model file (header) or a ROOT file.

    Returns a JSON-able dict with a ``"kind"`` key: ``"hepae-container"``, ``"hepae-model"`` or ``"root"``.
    """
    path = check_input_file(path)
    if zipfile.is_zipfile(path):
        model = load_model(path)
        return {"kind": "hepae-model", "file": str(path), "header": model.header(), "repr": repr(model)}
    return _inspect_root(path)
