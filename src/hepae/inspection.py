"""inspect: what is in a compressed file, a model file, or any ROOT file."""

from __future__ import annotations

import zipfile
from os import PathLike
from pathlib import Path
from typing import Any

from hepae.container import ContainerReader, is_container
from hepae.features import list_featuresets
from hepae.io.sources import RNTUPLE_CLASS, check_input_file, open_root, root_source


def size_report(path: str | PathLike[str]) -> dict[str, Any]:
    """Byte counts of a compressed file: whole files, and the compressed collection alone."""
    with ContainerReader(path) as reader:
        return reader.sizes()


def _inspect_root(path: Path) -> dict[str, Any]:
    with open_root(path) as directory:
        container = is_container(directory)
    if container:
        with ContainerReader(path) as reader:
            return {"kind": "hepae-container", "file": str(path), "metadata": reader.metadata,
                    "sizes": reader.sizes()}
    with open_root(path) as directory:
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
        from hepae.ml.model import load_model  # torch: only for model files

        model = load_model(path)
        return {"kind": "hepae-model", "file": str(path), "header": model.header(), "repr": repr(model)}
    return _inspect_root(path)
