"""hepae: compress high-energy-physics ROOT ntuples with deep autoencoders.

Submodules, one concept each:

* :mod:`hepae.features`: feature sets (which jagged branches become tensor columns), declared as JSON.
* :mod:`hepae.transforms`: invertible, JSON-serializable normalizations.
* :mod:`hepae.sources`: the one reader of every input (TTree, RNTuple, DarkMachines CSV), in chunks.
* :mod:`hepae.reading` / :mod:`hepae.writing`: jagged branches <-> tensor; TTree/RNTuple writers, atomic outputs.
* :mod:`hepae.networks` / :mod:`hepae.model`: autoencoder architectures; the pickle-free model file.
* :mod:`hepae.training`: AdamW + one-cycle training, streaming from ROOT files.
* :mod:`hepae.container`, :mod:`hepae.compression`, :mod:`hepae.decompression`: the compressed ROOT file.
* :mod:`hepae.many`: many files on a Dask cluster, one task per file.
* :mod:`hepae.inspection`, :mod:`hepae.metrics`, :mod:`hepae.physics`: what a file holds; residuals and
  physics checks of a reconstruction.
* :mod:`hepae.darkmachines`: the DarkMachines/PhenoML CSV event format (read and write, streamed).
* :mod:`hepae.validation`, :mod:`hepae.plotting`: the validation report (hist + mplhep plots, metrics).
* :mod:`hepae.samples`, :mod:`hepae.demo`: synthetic samples and the end-to-end demo.
* :mod:`hepae.errors`: the exception hierarchy (base class :class:`hepae.errors.HepaeError`).
"""

from hepae._version import __version__
from hepae.compression import compress
from hepae.decompression import decompress
from hepae.errors import HepaeError
from hepae.features import FeatureSet, list_featuresets, load_featureset
from hepae.inspection import inspect
from hepae.many import compress_many, decompress_many
from hepae.metrics import residual_summary
from hepae.model import HepaeModel, load_model
from hepae.samples import make_darkmachines_sample, make_sample
from hepae.training import train
from hepae.validation import ValidationReport, validate

__all__ = [
    "FeatureSet",
    "HepaeError",
    "HepaeModel",
    "__version__",
    "compress",
    "compress_many",
    "decompress",
    "decompress_many",
    "inspect",
    "list_featuresets",
    "load_featureset",
    "load_model",
    "make_darkmachines_sample",
    "make_sample",
    "residual_summary",
    "train",
    "validate",
    "ValidationReport",
]
