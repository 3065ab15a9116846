"""Codecs: how a collection's ``(n_objects, D)`` values become per-object streams, and back.

One interface in the spirit of numcodecs: a codec is configured by JSON data (:meth:`Codec.get_config`,
:func:`get_codec`), which the compressed file keeps in its metadata; :meth:`Codec.encode` turns values
into named 1-D streams with one entry per object, :meth:`Codec.decode` turns the streams back. The
compressed file stores each stream as a jagged branch on the collection's counter, so the output's
ROOT compression (zstd by default, ``--compression``) is the entropy coder.

* ``lossless``: the float values themselves, the reference for compression ratios.
* ``truncate``: mantissa truncation to ``mantissa_bits`` with round-to-nearest (ROOT ``Float16_t``-like),
  stored as the remaining bits (integers), so zstd sees the zeros.
* ``ae``: the autoencoder's latent values, as float32 or quantized to integers (``latent_bits``: steps of
  ``std / 2**latent_bits`` per latent dimension, the std measured on the training data); with
  ``error_bounds``, the residual of every value after decoding is quantized to its bound and stored
  (mostly zeros), so that every value comes back within its bound. Values that cannot (NaN, Inf, a
  sign change, a residual too large) are stored exactly as exceptions.

The error-bound guarantee and other machines: the quantization step is ``2 * bound * (1 - margin)``
and compression accepts a value only if its reconstruction is within ``bound * (1 - margin / 2)``, so
a decoder (another CPU, GPU or torch version) whose outputs differ from the compressing one by less
than ``margin / 2`` of the bound still reconstructs every value within it. ``margin`` is 0.1 by
default; float32 networks agree far closer than that in normalized units.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from hepae.errors import CodecError, FeatureSetError

EXCEPTION = np.iinfo(np.int32).min
"""Residual value that marks an exception: the exact value is in the ``exact_<column>`` stream."""
DEFAULT_MARGIN = 0.1
DEFAULT_RESIDUAL_BYTES = 1
"""Bytes per stored residual: 1 keeps residuals of up to 127 steps (others become exceptions, stored
exactly in the ``exact_<column>`` stream; the top value of the folded residual marks them), 2 up to
32767 steps, for bounds much tighter than the network's precision."""


# -- error bounds -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ErrorBound:
    """``|reco - orig| <= value`` (``abs``) or ``<= value * |orig|`` (``rel``) for one column."""

    column: str
    kind: str
    value: float

    @classmethod
    def parse(cls, text: str) -> ErrorBound:
        """``"pt=rel:1e-3"`` or ``"eta=abs:0.001"``."""
        match = re.fullmatch(r"\s*([A-Za-z0-9_]+)\s*=\s*(rel|abs)\s*:\s*([0-9.eE+-]+)\s*", text)
        if match is None:
            raise CodecError(f"error bound {text!r} is not of the form COLUMN=rel:VALUE or COLUMN=abs:VALUE")
        value = float(match.group(3))
        if not (math.isfinite(value) and value > 0) or (match.group(2) == "rel" and value >= 1):
            raise CodecError(f"error bound {text!r}: the value must be > 0 (and < 1 for a relative bound)")
        return cls(match.group(1), match.group(2), value)

    def __str__(self) -> str:
        return f"{self.column}={self.kind}:{self.value!r}"  # repr: the exact value, kept in the metadata


def _step(kind: str, bound: float, margin: float) -> float:
    return 2.0 * (bound if kind == "abs" else math.log1p(bound)) * (1.0 - margin)


def apply_residuals(predicted: np.ndarray, residual: np.ndarray, exact: np.ndarray, kind: str, bound: float,
                    margin: float = DEFAULT_MARGIN, dtype: Any = np.float32) -> np.ndarray:
    """Reconstruct values from a prediction and its quantized residuals (exceptions taken from ``exact``)."""
    step = _step(kind, bound, margin)
    is_exception = residual == EXCEPTION
    q = np.where(is_exception, 0, residual).astype(np.float64)
    h = np.asarray(predicted, dtype=np.float64)
    with np.errstate(all="ignore"):
        out = h + q * step if kind == "abs" else np.sign(h) * np.exp(np.log(np.abs(h)) + q * step)
    out = out.astype(dtype)
    out[is_exception] = np.asarray(exact, dtype=dtype)[is_exception]
    return out


def quantize_residuals(values: np.ndarray, predicted: np.ndarray, kind: str, bound: float,
                       margin: float = DEFAULT_MARGIN) -> tuple[np.ndarray, np.ndarray]:
    """``(residual, exact)``: int32 residual steps, and the exact value where a residual cannot keep the bound.

    :func:`apply_residuals` then gives every value within ``bound`` (exceptions exactly).
    """
    x = np.asarray(values)
    x64, h64 = x.astype(np.float64), np.asarray(predicted, dtype=np.float64)
    step = _step(kind, bound, margin)
    with np.errstate(all="ignore"):
        if kind == "abs":
            t = (x64 - h64) / step
        else:
            t = (np.log(np.abs(x64)) - np.log(np.abs(h64))) / step
            t[(np.sign(x64) != np.sign(h64)) | (x64 == 0)] = np.nan
        ok = np.isfinite(t) & (np.abs(t) < 2.0**30)
        q = np.where(ok, np.rint(t), 0).astype(np.int32)
        reco = apply_residuals(h64, q, x, kind, bound, margin, x.dtype).astype(np.float64)
        limit = bound * (1.0 - margin / 2) * (1.0 if kind == "abs" else np.abs(x64))
        ok &= np.abs(reco - x64) <= limit
    q[~ok] = EXCEPTION
    exact = np.where(ok, np.zeros((), x.dtype), x).astype(x.dtype)
    return q, exact


def within_bound(values: np.ndarray, reco: np.ndarray, kind: str, bound: float) -> np.ndarray:
    """Per value: reconstructed within the bound, or identical (NaN matches NaN)."""
    x, r = np.asarray(values, dtype=np.float64), np.asarray(reco, dtype=np.float64)
    same = (x == r) | (np.isnan(x) & np.isnan(r))
    with np.errstate(invalid="ignore"):
        limit = bound * (1.0 if kind == "abs" else np.abs(x))
        return same | (np.abs(r - x) <= limit)


# -- byte planes ------------------------------------------------------------------------------------
# Integer streams are stored as one uint8 branch per byte (a byte shuffle), small values of either
# sign first folded to small unsigned ones (zigzag): zstd then sees long runs of zero bytes.

def zigzag(values: np.ndarray) -> np.ndarray:
    v = np.asarray(values, dtype=np.int64)
    return ((v << 1) ^ (v >> 63)).astype(np.uint64)


def unzigzag(values: np.ndarray) -> np.ndarray:
    u = np.asarray(values, dtype=np.uint64)
    return ((u >> np.uint64(1)).astype(np.int64) ^ -(u & np.uint64(1)).astype(np.int64))


def to_planes(values: np.ndarray, n_bytes: int) -> list[np.ndarray]:
    """Unsigned integers -> ``n_bytes`` uint8 arrays, least significant first."""
    u = np.asarray(values, dtype=np.uint64)
    return [((u >> np.uint64(8 * k)) & np.uint64(0xFF)).astype(np.uint8) for k in range(n_bytes)]


def from_planes(planes: Sequence[np.ndarray]) -> np.ndarray:
    out = np.zeros(len(planes[0]), dtype=np.uint64)
    for k, plane in enumerate(planes):
        out |= np.asarray(plane, dtype=np.uint64) << np.uint64(8 * k)
    return out


def _plane_names(stem: str, n_bytes: int) -> list[str]:
    return [f"{stem}_b{k}" for k in range(n_bytes)]


# -- mantissa truncation ----------------------------------------------------------------------------

def truncate_mantissa(values: np.ndarray, bits: int) -> np.ndarray:
    """float32 values rounded to ``bits`` mantissa bits (round to nearest, ties away from zero).

    Inf stays Inf, NaN becomes the canonical quiet NaN; a value that rounds past the largest float
    becomes Inf, as in hardware.
    """
    return _from_kept_bits(_kept_bits(values, bits), bits)


def _kept_bits(values: np.ndarray, bits: int) -> np.ndarray:
    u = np.asarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
    drop = 23 - bits
    nan = (u & 0x7F800000 == 0x7F800000) & (u & 0x007FFFFF != 0)
    u = np.where(nan, np.uint64(0x7FC00000), u)
    if drop > 0:
        sign = u & 0x80000000
        magnitude = u & 0x7FFFFFFF
        special = magnitude >= 0x7F800000  # Inf and (canonical) NaN stay as they are
        rounded = np.where(special, magnitude, np.minimum(magnitude + (1 << (drop - 1)), 0x7F800000))  # overflow: Inf
        rounded = rounded >> drop
        u = (sign >> drop) | rounded
    return u.astype(np.uint32).view(np.int32)


def _from_kept_bits(kept: np.ndarray, bits: int) -> np.ndarray:
    drop = 23 - bits
    u = np.asarray(kept, dtype=np.int32).view(np.uint32).astype(np.uint64)
    sign = (u << drop) & 0x80000000
    magnitude = (u << drop) & 0x7FFFFFFF
    return (sign | magnitude).astype(np.uint32).view(np.float32)


# -- codecs -----------------------------------------------------------------------------------------

_REGISTRY: dict[str, type[Codec]] = {}


class Codec:
    """Base class: ``encode(values, model) -> {stream: array}``, ``decode(streams, model) -> values``."""

    codec_id: ClassVar[str] = ""
    needs_model: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.codec_id] = cls

    def get_config(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Codec:
        return cls(**{k: v for k, v in config.items() if k != "id"})

    def prepare(self, columns: Sequence[str], dtype: np.dtype, model: Any = None) -> None:
        """Check the codec against the collection (and model) before any data; fix data-independent state."""
        self.columns, self.dtype = list(columns), np.dtype(dtype)

    def stream_dtypes(self) -> dict[str, str]:
        """Name -> dtype of each stream, in storage order (after :meth:`prepare`)."""
        raise NotImplementedError

    def encode(self, values: np.ndarray, model: Any = None) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def decode(self, streams: dict[str, np.ndarray], model: Any = None) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "id")
        return f"{type(self).__name__}({settings})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Codec) and self.get_config() == other.get_config()


class Lossless(Codec):
    """The values as they are (float32 unless the feature set asks for float64)."""

    codec_id = "lossless"

    def get_config(self) -> dict[str, Any]:
        return {"id": self.codec_id}

    def stream_dtypes(self) -> dict[str, str]:
        return {f"value_{c}": self.dtype.name for c in self.columns}

    def encode(self, values, model=None):
        return {f"value_{c}": np.ascontiguousarray(values[:, j], dtype=self.dtype) for j, c in enumerate(self.columns)}

    def decode(self, streams, model=None):
        return np.stack([streams[f"value_{c}"] for c in self.columns], axis=1).astype(self.dtype)


class Truncate(Codec):
    """Mantissa truncation to ``mantissa_bits`` (1..23) of float32, stored as the kept bits."""

    codec_id = "truncate"

    def __init__(self, mantissa_bits: int = 10):
        if not 1 <= int(mantissa_bits) <= 23:
            raise CodecError(f"truncate: mantissa_bits must be in 1..23, got {mantissa_bits}")
        self.mantissa_bits = int(mantissa_bits)

    def get_config(self) -> dict[str, Any]:
        return {"id": self.codec_id, "mantissa_bits": self.mantissa_bits}

    @property
    def _n_bytes(self) -> int:
        return -(-(9 + self.mantissa_bits) // 8)  # sign, exponent, kept mantissa

    def stream_dtypes(self) -> dict[str, str]:
        return {name: "uint8" for c in self.columns for name in _plane_names(f"bits_{c}", self._n_bytes)}

    def encode(self, values, model=None):
        streams = {}
        for j, c in enumerate(self.columns):
            kept = _kept_bits(values[:, j], self.mantissa_bits).view(np.uint32)
            streams.update(zip(_plane_names(f"bits_{c}", self._n_bytes), to_planes(kept, self._n_bytes)))
        return streams

    def decode(self, streams, model=None):
        columns = []
        for c in self.columns:
            kept = from_planes([streams[n] for n in _plane_names(f"bits_{c}", self._n_bytes)]).astype(np.uint32)
            columns.append(_from_kept_bits(kept.view(np.int32), self.mantissa_bits))
        return np.stack(columns, axis=1)


class AE(Codec):
    """The autoencoder: latent values (float32, or integers with ``latent_bits``), optional error bounds."""

    codec_id = "ae"
    needs_model = True

    def __init__(self, latent_bits: int | None = None, error_bounds: Iterable[str | ErrorBound] = (),
                 margin: float = DEFAULT_MARGIN, residual_bytes: int = DEFAULT_RESIDUAL_BYTES,
                 latent_step: Sequence[float] | None = None):
        if latent_bits is not None and not 1 <= int(latent_bits) <= 24:
            raise CodecError(f"ae: latent_bits must be in 1..24, got {latent_bits}")
        if not 0 < margin < 1:
            raise CodecError(f"ae: margin must be in (0, 1), got {margin}")
        self.latent_bits = None if latent_bits is None else int(latent_bits)
        self.error_bounds = [b if isinstance(b, ErrorBound) else ErrorBound.parse(b) for b in error_bounds]
        names = [b.column for b in self.error_bounds]
        if len(set(names)) != len(names):
            raise CodecError(f"ae: more than one error bound for a column: {names}")
        if residual_bytes not in (1, 2, 3):
            raise CodecError(f"ae: residual_bytes must be 1, 2 or 3, got {residual_bytes}")
        self.margin = float(margin)
        self.residual_bytes = int(residual_bytes)
        self.latent_step = None if latent_step is None else [float(s) for s in latent_step]
        self._step_given = latent_step is not None  # else derived from each model's latent statistics

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"id": self.codec_id, "latent_bits": self.latent_bits,
                                  "error_bounds": [str(b) for b in self.error_bounds], "margin": self.margin,
                                  "residual_bytes": self.residual_bytes}
        if self.latent_step is not None:
            config["latent_step"] = self.latent_step
        return config

    def prepare(self, columns, dtype, model=None):
        super().prepare(columns, dtype)
        if model is None:
            raise CodecError("the ae codec needs a trained model")
        self.latent_size = model.latent_size
        unknown = [b.column for b in self.error_bounds if b.column not in self.columns]
        if unknown:
            raise FeatureSetError(f"error bound(s) for {unknown}: no such column; columns are {self.columns}")
        if self.latent_bits is not None and not self._step_given:
            std = model.training.get("latent_std")
            if std is None or len(std) != model.latent_size:
                raise CodecError("this model has no latent statistics (trained by an older hepae); retrain it to "
                                 "quantize its latent values, or leave latent_bits unset")
            self.latent_step = [max(float(s), 1e-12) * 2.0**-self.latent_bits for s in std]

    @property
    def _escape(self) -> np.uint64:
        return np.uint64(2 ** (8 * self.residual_bytes) - 1)

    @property
    def _latent_bytes(self) -> int:
        return -(-(self.latent_bits + 5) // 8)  # |latent| up to ~16 std, zigzag-folded

    def stream_dtypes(self) -> dict[str, str]:
        if self.latent_step is None:
            out = {f"latent_{i}": "float32" for i in range(self.latent_size)}
        else:
            out = {n: "uint8" for i in range(self.latent_size) for n in _plane_names(f"latent_{i}", self._latent_bytes)}
        for b in self.error_bounds:
            out.update({n: "uint8" for n in _plane_names(f"residual_{b.column}", self.residual_bytes)})
            out[f"exact_{b.column}"] = self.dtype.name
        return out

    def latent_values(self, streams: dict[str, np.ndarray]) -> np.ndarray:
        """The float32 latent values ``(n, latent)`` that the streams hold (dequantized)."""
        if not hasattr(self, "latent_size"):
            self.latent_size = len({n.split("_")[1] for n in streams if n.startswith("latent_")})
        return self._latent(streams)

    def _latent(self, streams: dict[str, np.ndarray]) -> np.ndarray:
        if self.latent_step is None:
            return np.stack([streams[f"latent_{i}"] for i in range(self.latent_size)], axis=1).astype(np.float32)
        q = np.stack([unzigzag(from_planes([streams[n] for n in _plane_names(f"latent_{i}", self._latent_bytes)]))
                      for i in range(self.latent_size)], axis=1)
        return (q.astype(np.float64) * np.asarray(self.latent_step)).astype(np.float32)

    def _safe_inputs(self, values: np.ndarray, model: Any) -> np.ndarray:
        """Values outside a bounded column's normalization domain (NaN, log of <= 0, ...) replaced by an
        in-domain value: the network can encode the object, and the bound stores the value exactly."""
        out = values
        for b in self.error_bounds:
            j = self.columns.index(b.column)
            transform = model.normalization.transforms[j]
            bad = transform.domain_violations(values[:, j])
            if bad.any():
                out = out.copy() if out is values else out
                out[bad, j] = transform.inverse_transform(np.zeros(1))[0]
        return out

    def encode(self, values, model=None):
        latent = model.encode(self._safe_inputs(values, model))
        streams: dict[str, np.ndarray] = {}
        if self.latent_step is None:
            streams.update({f"latent_{i}": latent[:, i] for i in range(self.latent_size)})
        else:
            limit = 2.0 ** (8 * self._latent_bytes - 1) - 1
            q = np.clip(np.rint(latent.astype(np.float64) / np.asarray(self.latent_step)), -limit, limit)
            for i in range(self.latent_size):
                planes = to_planes(zigzag(q[:, i].astype(np.int64)), self._latent_bytes)
                streams.update(zip(_plane_names(f"latent_{i}", self._latent_bytes), planes))
        if self.error_bounds:
            predicted = model.decode(self._latent(streams))
            for b in self.error_bounds:
                j = self.columns.index(b.column)
                residual, exact = quantize_residuals(values[:, j], predicted[:, j], b.kind, b.value, self.margin)
                folded, escape = zigzag(residual), self._escape
                stored = np.where((residual == EXCEPTION) | (folded >= escape), escape, folded)
                exact = np.where(stored == escape, values[:, j], exact).astype(exact.dtype)
                streams.update(zip(_plane_names(f"residual_{b.column}", self.residual_bytes),
                                   to_planes(stored, self.residual_bytes)))
                streams[f"exact_{b.column}"] = exact
        return streams

    def decode(self, streams, model=None):
        out = model.decode(self._latent(streams))
        for b in self.error_bounds:
            j = self.columns.index(b.column)
            stored = from_planes([streams[n] for n in _plane_names(f"residual_{b.column}", self.residual_bytes)])
            residual = np.where(stored == self._escape, EXCEPTION, unzigzag(stored)).astype(np.int32)
            out[:, j] = apply_residuals(out[:, j], residual, streams[f"exact_{b.column}"], b.kind, b.value,
                                        self.margin, out.dtype)
        return out


def get_codec(spec: str | dict[str, Any] | Codec) -> Codec:
    """A codec from an instance, a config dict (``{"id": "truncate", "mantissa_bits": 10}``) or an id."""
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
