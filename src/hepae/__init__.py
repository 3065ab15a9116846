"""hepae: compress high-energy-physics ROOT ntuples with deep autoencoders under error bounds.

The public API is this module's names (``hepae.compress``, ``hepae.decompress``, ...). They are
loaded on first use, so ``import hepae`` is fast and imports neither torch, dask nor matplotlib;
each is imported by the code that needs it.

Packages along the data path (lower layers never import higher ones; ``pyproject.toml`` has the
import-linter contract that the tests check):

* :mod:`hepae.io`: reading inputs (TTree, RNTuple, DarkMachines CSV) in chunks, jagged branches <->
  tensors, writers and atomic outputs, other objects carried over;
* :mod:`hepae.features`, :mod:`hepae.transforms`: feature sets and their normalizations, as JSON;
* :mod:`hepae.codecs`: codecs as immutable configs (lossless, truncate, ae), error bounds, residual
  prediction and the entropy coder (constriction); no torch;
* :mod:`hepae.ml`: networks, the pickle-free model file, training, devices (torch);
* :mod:`hepae.container`: the compressed file's one writer and one reader (``docs/format.md``);
* :mod:`hepae.compression`, :mod:`hepae.decompression`, :mod:`hepae.inspection`: the drivers;
  :mod:`hepae.arrays`: compressed files read in place (``hepae.open``, ``hepae.iterate``, ``hepae.dask``);
* :mod:`hepae.quality`, :mod:`hepae.validation`: residuals and physics checks; the report and its plots;
* :mod:`hepae.cluster`: many files on a Dask cluster; :mod:`hepae.cli`: the command line.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from hepae._version import __version__
from hepae.errors import HepaeError

_API = {
    "compress": "hepae.compression",
    "decompress": "hepae.decompression",
    "inspect": "hepae.inspection",
    "open": "hepae.arrays",
    "iterate": "hepae.arrays",
    "dask": "hepae.arrays",
    "FeatureSet": "hepae.features",
    "list_featuresets": "hepae.features",
    "load_featureset": "hepae.features",
    "compress_many": "hepae.cluster",
    "decompress_many": "hepae.cluster",
    "residual_summary": "hepae.quality.residuals",
    "HepaeModel": "hepae.ml.model",
    "load_model": "hepae.ml.model",
    "train": "hepae.ml.training",
    "make_darkmachines_sample": "hepae.samples",
    "make_sample": "hepae.samples",
    "validate": "hepae.validation.report",
    "ValidationReport": "hepae.validation.report",
}

if TYPE_CHECKING:
    from hepae.arrays import dask, iterate, open
    from hepae.cluster import compress_many, decompress_many
    from hepae.compression import compress
    from hepae.decompression import decompress
    from hepae.features import FeatureSet, list_featuresets, load_featureset
    from hepae.inspection import inspect
    from hepae.ml.model import HepaeModel, load_model
    from hepae.ml.training import train
    from hepae.quality.residuals import residual_summary
    from hepae.samples import make_darkmachines_sample, make_sample
    from hepae.validation.report import ValidationReport, validate


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        if name in {"errors", "codecs", "container", "io", "ml", "quality", "validation", "transforms"}:
            return importlib.import_module(f"hepae.{name}")
        raise AttributeError(f"module 'hepae' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])


__all__ = [
    "FeatureSet",
    "HepaeError",
    "HepaeModel",
    "ValidationReport",
    "__version__",
    "compress",
    "compress_many",
    "dask",
    "decompress",
    "decompress_many",
    "inspect",
    "iterate",
    "list_featuresets",
    "load_featureset",
    "load_model",
    "make_darkmachines_sample",
    "make_sample",
    "open",
    "residual_summary",
    "train",
    "validate",
]
