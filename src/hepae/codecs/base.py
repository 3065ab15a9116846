"""The codec contract and its registry.

In the spirit of numcodecs, a :class:`Codec` *is* its configuration: a small immutable object that
:meth:`Codec.get_config` turns into JSON (kept in the compressed file's metadata) and
:func:`get_codec` turns back. It never changes. What a codec needs from the data or a model
(the collection's columns and dtype, the model's latent statistics, the latent bits the ``ae``
codec chooses on the first chunk, whether any chunk needed the network) lives in the
:class:`BoundCodec` that :meth:`Codec.bind` returns, one per file being encoded or decoded.

A bound codec turns one chunk's ``(n_objects, D)`` values into named 1-D streams
(:meth:`BoundCodec.encode`) and back (:meth:`BoundCodec.decode`). A stream holds one entry per
object, or (:meth:`BoundCodec.chunk_streams`) is a byte string of its own length per chunk.

Codecs are registered explicitly (:func:`register_codec`); the built-in ones are registered by
:mod:`hepae.codecs`. What the rest of hepae asks of a codec is in its capability attributes
(``needs_model``, ``supports_error_bounds``, ``exact``), never in its id.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from hepae.errors import CodecError


class Codec:
    """Base class of codec configurations (immutable; equal when their configs are equal).

    Attributes
    ----------
    codec_id : str
        The id in configs and on the command line.
    summary : str
        One line for ``--help`` and the docs.
    needs_model : bool
        Encoding needs a trained model (decoding may need its decoder, embedded in the file).
    supports_error_bounds : bool
        Takes ``error_bounds`` (``COLUMN=rel:VALUE`` / ``COLUMN=abs:VALUE``) and keeps every value within them.
    exact : bool
        Decodes every value identically (floats only: 64-bit integers do not fit).
    has_latent_values : bool
        Its streams hold latent values (:meth:`latent_values`), which validation shows.
    """

    codec_id: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    needs_model: ClassVar[bool] = False
    supports_error_bounds: ClassVar[bool] = False
    exact: ClassVar[bool] = False
    has_latent_values: ClassVar[bool] = False

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable (a codec is its configuration): make a new one "
                             f"with the settings you want, e.g. get_codec({{**codec.get_config(), {name!r}: ...}})")

    def _set(self, **values: Any) -> None:
        """Set attributes in ``__init__`` (the only place a codec's state is written)."""
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def get_config(self) -> dict[str, Any]:
        """The JSON-able configuration, ``{"id": codec_id, **settings}``."""
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Codec:
        """The codec of ``config`` (the inverse of :meth:`get_config`)."""
        return cls(**{k: v for k, v in config.items() if k != "id"})

    def bind(self, columns: Sequence[str], dtype: Any, model: Any = None) -> BoundCodec:
        """This codec made ready for one collection: its ``columns``, its ``dtype`` (float32 or float64)
        and, for a codec that ``needs_model``, the model (or, for decoding, the embedded decoder;
        ``None`` if the file carries none). Checks the settings against them before any data."""
        raise NotImplementedError

    def network_columns(self, columns: Sequence[str]) -> set[str]:
        """Columns whose decoded values come from a float32 network without an error bound."""
        return set()

    def latent_values(self, streams: dict[str, np.ndarray], counts: np.ndarray | None = None) -> np.ndarray:
        """The float32 latent values ``(n_objects, latent)`` one chunk's streams hold (``has_latent_values``)."""
        raise NotImplementedError(f"the {self.codec_id} codec stores no latent values")

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "id")
        return f"{type(self).__name__}({settings})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Codec) and self.get_config() == other.get_config()

    def __hash__(self) -> int:
        return hash(json.dumps(self.get_config(), sort_keys=True))


class BoundCodec:
    """A codec bound to one collection (and model): encodes and decodes its chunks.

    Parameters
    ----------
    codec : Codec
        The configuration (read-only here).
    columns : sequence of str
    dtype : numpy dtype
        float32, or float64 for collections that must keep 64-bit values.
    """

    def __init__(self, codec: Codec, columns: Sequence[str], dtype: Any) -> None:
        self.codec = codec
        self.columns = list(columns)
        self.dtype = np.dtype(dtype)

    def stream_dtypes(self) -> dict[str, str]:
        """Name -> dtype of each stream, in storage order."""
        raise NotImplementedError

    def chunk_streams(self) -> set[str]:
        """Streams whose length is their own (coded bytes), not one entry per object."""
        return set()

    @property
    def decoder_used(self) -> bool:
        """After encoding: whether decoding needs the model's decoder (embedded in the file if so)."""
        return self.codec.needs_model

    def encode(self, values: np.ndarray, counts: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """One chunk's ``(n_objects, D)`` values -> streams; ``counts`` (objects per event) lets a codec
        model the events."""
        raise NotImplementedError

    def decode(self, streams: dict[str, np.ndarray], counts: np.ndarray | None = None) -> np.ndarray:
        """Streams of one chunk -> its ``(n_objects, D)`` values, in :attr:`dtype`."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{self.codec!r} bound to {len(self.columns)} {self.dtype.name} columns"


_REGISTRY: dict[str, type[Codec]] = {}


def register_codec(cls: type[Codec], *, replace: bool = False) -> type[Codec]:
    """Make ``cls`` available by its ``codec_id`` (in configs, :func:`get_codec` and the CLI).

    An id that is taken by another class is refused unless ``replace`` is true, so that a subclass
    never replaces a built-in codec by accident. Usable as a class decorator.
    """
    if not cls.codec_id or not isinstance(cls.codec_id, str):
        raise CodecError(f"{cls.__name__} has no codec_id")
    taken = _REGISTRY.get(cls.codec_id)
    if taken is not None and taken is not cls and not replace:
        raise CodecError(f"codec id {cls.codec_id!r} is taken by {taken.__module__}.{taken.__qualname__}; "
                         "choose another id, or pass replace=True")
    _REGISTRY[cls.codec_id] = cls
    return cls


def registered_codecs() -> dict[str, type[Codec]]:
    """Id -> class of every registered codec, sorted by id."""
    return dict(sorted(_REGISTRY.items()))


def get_codec(spec: str | dict[str, Any] | Codec) -> Codec:
    """A codec from an instance (returned as it is: codecs are immutable), a config dict
    (``{"id": "truncate", "mantissa_bits": 10}``) or an id (default settings)."""
    if isinstance(spec, Codec):
        return spec
    config = {"id": spec} if isinstance(spec, str) else dict(spec)
    kind = _REGISTRY.get(config.get("id", ""))
    if kind is None:
        raise CodecError(f"unknown codec {config.get('id')!r}; choose one of {', '.join(sorted(_REGISTRY))}")
    try:
        return kind.from_config(config)
    except TypeError as err:
        raise CodecError(f"bad settings for codec {config['id']!r}: {err}") from None
