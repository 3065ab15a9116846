"""Codecs: how a collection's ``(n_objects, D)`` values become streams, and back.

A codec is its JSON configuration (:mod:`hepae.codecs.base`); :meth:`Codec.bind` makes it ready for
one collection and model. The built-in codecs, registered here:

* ``lossless`` and ``truncate`` (:mod:`hepae.codecs.floats`): the floats, whole or mantissa-rounded;
* ``ae`` (:mod:`hepae.codecs.ae`): the autoencoder's latent values, with optional error bounds
  (:mod:`hepae.codecs.bounds`), each bounded column's residual predicted from the columns before it
  (:mod:`hepae.codecs.residual_prediction`) and entropy coded (:mod:`hepae.codecs.entropy`);
* ``bounded`` (:mod:`hepae.codecs.bounded`): the same coding of bounded columns, with no network.

Importing this package does not import torch.
"""

from hepae.codecs.ae import AE, BoundAE
from hepae.codecs.base import BoundCodec, Codec, get_codec, register_codec, registered_codecs
from hepae.codecs.bounded import BoundBounded, Bounded
from hepae.codecs.bounds import ErrorBound, apply_residuals, quantize_residuals, within_bound
from hepae.codecs.floats import Lossless, Truncate, truncate_mantissa

for _codec in (Lossless, Truncate, AE, Bounded):
    register_codec(_codec)

__all__ = [
    "AE",
    "BoundAE",
    "BoundBounded",
    "Bounded",
    "BoundCodec",
    "Codec",
    "ErrorBound",
    "Lossless",
    "Truncate",
    "apply_residuals",
    "get_codec",
    "quantize_residuals",
    "register_codec",
    "registered_codecs",
    "truncate_mantissa",
    "within_bound",
]
