"""Codecs: how a collection's ``(n_objects, D)`` values become streams, and back.

One interface in the spirit of numcodecs: a codec is configured by JSON data (:meth:`Codec.get_config`,
:func:`get_codec`), which the compressed file keeps in its metadata; :meth:`Codec.encode` turns one
chunk's values into named 1-D streams, :meth:`Codec.decode` turns them back. A stream holds one entry
per object, or (:meth:`Codec.chunk_streams`) is a byte string of its own length per chunk; the output's
ROOT compression (zstd by default, ``--compression``) compresses them all again.

* ``lossless``: the float values themselves, the reference for compression ratios.
* ``truncate``: mantissa truncation to ``mantissa_bits`` with round-to-nearest (ROOT ``Float16_t``-like),
  stored as the remaining bits (integers, one byte plane per stream), so zstd sees the zeros.
* ``ae``: the autoencoder's latent values, as float32 or quantized to integers (``latent_bits``: steps of
  ``std / 2**latent_bits`` per latent dimension, the std measured on the training data, or ``"auto"``);
  with ``error_bounds``, the residual of every value after decoding is quantized to its bound and
  stored, so that every value comes back within its bound. Values that cannot (NaN, Inf, a sign
  change, a residual too large) are stored exactly as exceptions. Each bounded column's residual steps
  are predicted from the columns decoded before it (:mod:`hepae.prediction`), and the quantized
  integers are coded by :mod:`hepae.entropy` (rANS, a frequency table per stream or per class), close
  to their entropy.

The error-bound guarantee and other machines: the quantization step is ``2 * bound * (1 - margin)``
and compression accepts a value only if its reconstruction is within ``bound * (1 - margin / 2)``, so
a decoder (another CPU, GPU or torch version) whose outputs differ from the compressing one by less
than ``margin / 2`` of the bound still reconstructs every value within it. ``margin`` is 0.1 by
default; float32 networks agree far closer than that in normalized units. A chunk that keeps no
latent value runs no network when decoding (its constant prediction is stored), and uses a margin of
0.01 (more for relative bounds below 1e-4), enough for ``exp``/``log`` differences between machines.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from hepae import entropy
from hepae.errors import CodecError, FeatureSetError
from hepae.prediction import Predictor, evenly_spaced, unzigzag, zigzag

EXCEPTION = np.iinfo(np.int32).min
"""Residual value that marks an exception: the exact value is in the ``exact_<column>`` stream."""
DEFAULT_MARGIN = 0.1
CONSTANT_MARGIN = 0.01
"""Margin of chunks whose prediction is a stored constant (no network): see ``AE._constant_margin``."""


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
    """Values rounded to ``bits`` mantissa bits (round to nearest, ties away from zero), in their own
    precision (float32, or float64).

    Inf stays Inf, NaN becomes the canonical quiet NaN; a value that rounds past the largest float
    becomes Inf, as in hardware.
    """
    dtype = np.dtype(np.float64 if np.asarray(values).dtype == np.float64 else np.float32)
    return _from_kept_bits(_kept_bits(values, bits, dtype), bits, dtype)


_FLOAT_LAYOUT = {  # dtype -> (unsigned view, mantissa bits, exponent mask, canonical quiet NaN)
    np.dtype(np.float32): (np.uint32, 23, 0x7F800000, 0x7FC00000),
    np.dtype(np.float64): (np.uint64, 52, 0x7FF0000000000000, 0x7FF8000000000000),
}


def _kept_bits(values: np.ndarray, bits: int, dtype: Any = np.float32) -> np.ndarray:
    """Sign, exponent and the ``bits`` rounded leading mantissa bits of each value, as uint64."""
    view, mantissa, exponent, quiet_nan = _FLOAT_LAYOUT[np.dtype(dtype)]
    u = np.asarray(values, dtype=dtype).view(view).astype(np.uint64)
    width = 8 * np.dtype(dtype).itemsize
    sign_bit = np.uint64(1 << (width - 1))
    drop = mantissa - bits
    nan = (u & np.uint64(exponent) == np.uint64(exponent)) & (u & np.uint64((1 << mantissa) - 1) != 0)
    u = np.where(nan, np.uint64(quiet_nan), u)
    if drop > 0:
        sign = u & sign_bit
        magnitude = u & (sign_bit - np.uint64(1))
        special = magnitude >= np.uint64(exponent)  # Inf and (canonical) NaN stay as they are
        rounded = np.where(special, magnitude,
                           np.minimum(magnitude + np.uint64(1 << (drop - 1)), np.uint64(exponent)))  # overflow: Inf
        u = (sign >> np.uint64(drop)) | (rounded >> np.uint64(drop))
    return u


def _from_kept_bits(kept: np.ndarray, bits: int, dtype: Any = np.float32) -> np.ndarray:
    view, mantissa, _, _ = _FLOAT_LAYOUT[np.dtype(dtype)]
    width = 8 * np.dtype(dtype).itemsize
    u = np.asarray(kept, dtype=np.uint64) << np.uint64(mantissa - bits)
    sign_bit = np.uint64(1 << (width - 1))
    return ((u & sign_bit) | (u & (sign_bit - np.uint64(1)))).astype(view).view(dtype)


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

    def chunk_streams(self) -> set[str]:
        """Streams whose length is their own (coded bytes), not one entry per object."""
        return set()

    def decoder_used(self) -> bool:
        """After encoding: whether decoding needs the model's decoder (embedded in the file if so)."""
        return self.needs_model

    def encode(self, values: np.ndarray, model: Any = None, counts: np.ndarray | None = None
               ) -> dict[str, np.ndarray]:
        """One chunk's values -> streams. ``counts`` (objects per event) lets a codec model the events."""
        raise NotImplementedError

    def decode(self, streams: dict[str, np.ndarray], model: Any = None, counts: np.ndarray | None = None
               ) -> np.ndarray:
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

    def encode(self, values, model=None, counts=None):
        return {f"value_{c}": np.ascontiguousarray(values[:, j], dtype=self.dtype) for j, c in enumerate(self.columns)}

    def decode(self, streams, model=None, counts=None):
        return np.stack([streams[f"value_{c}"] for c in self.columns], axis=1).astype(self.dtype)


class Truncate(Codec):
    """Mantissa rounding to ``mantissa_bits`` (1..23), stored as the kept bits: sign, exponent and
    mantissa bits of float32 values, or of float64 ones (a float64 collection keeps its precision:
    its values are rounded in float64, never narrowed to float32 first)."""

    codec_id = "truncate"

    def __init__(self, mantissa_bits: int = 10):
        if not 1 <= int(mantissa_bits) <= 23:
            raise CodecError(f"truncate: mantissa_bits must be in 1..23, got {mantissa_bits}")
        self.mantissa_bits = int(mantissa_bits)

    def get_config(self) -> dict[str, Any]:
        return {"id": self.codec_id, "mantissa_bits": self.mantissa_bits}

    @property
    def _n_bytes(self) -> int:
        mantissa = _FLOAT_LAYOUT[self._float][1]
        return -(-(8 * self._float.itemsize - mantissa + self.mantissa_bits) // 8)  # sign, exponent, kept mantissa

    def stream_dtypes(self) -> dict[str, str]:
        return {name: "uint8" for c in self.columns for name in _plane_names(f"bits_{c}", self._n_bytes)}

    def encode(self, values, model=None, counts=None):
        streams = {}
        for j, c in enumerate(self.columns):
            kept = _kept_bits(values[:, j], self.mantissa_bits, self._float)
            streams.update(zip(_plane_names(f"bits_{c}", self._n_bytes), to_planes(kept, self._n_bytes)))
        return streams

    def decode(self, streams, model=None, counts=None):
        columns = []
        for c in self.columns:
            kept = from_planes([streams[n] for n in _plane_names(f"bits_{c}", self._n_bytes)])
            columns.append(_from_kept_bits(kept, self.mantissa_bits, self._float))
        return np.stack(columns, axis=1) if columns else np.zeros((0, 0), self._float)

    @property
    def _float(self) -> np.dtype:
        return np.dtype(np.float64 if self.dtype == np.float64 else np.float32)


class AE(Codec):
    """The autoencoder: latent values (float32, or quantized and entropy coded), optional error bounds.

    With ``latent_bits`` (an int for every latent dimension, or ``"auto"``), each chunk is one coded
    byte stream (:mod:`hepae.entropy`): per latent dimension, integers in steps of
    ``std * 2**-bits`` (the std measured on the validation split at training time; 0 bits drops
    the dimension); per bounded column, the residual steps, predicted from those of the columns
    before it (:class:`hepae.prediction.Predictor`, fitted on the chunk: m follows pT, DetectorEta
    follows eta, CentroidR is a curve of eta), so only what is new is coded. ``"auto"`` chooses each
    dimension's bits for the fewest estimated bytes on a sample of the first chunk: a dimension that
    costs more than it saves in residuals is dropped.
    """

    codec_id = "ae"
    needs_model = True
    _BIT_CHOICES = tuple(range(0, 11))
    _AUTO_SAMPLE = 8192
    _AUTO_MINIMUM = 1024

    def __init__(self, latent_bits: int | str | None = None, error_bounds: Iterable[str | ErrorBound] = (),
                 margin: float = DEFAULT_MARGIN):
        self.error_bounds = [b if isinstance(b, ErrorBound) else ErrorBound.parse(b) for b in error_bounds]
        if latent_bits is None and self.error_bounds:
            latent_bits = "auto"
        if latent_bits == "auto" and not self.error_bounds:
            raise CodecError("ae: latent_bits='auto' trades latent bits against residual bits, so it needs error "
                             "bounds; give a number of bits without them")
        if latent_bits not in (None, "auto") and not (isinstance(latent_bits, int | np.integer)
                                                      and 0 <= int(latent_bits) <= 24):
            raise CodecError(f"ae: latent_bits must be 'auto' or in 0..24, got {latent_bits!r}")
        if latent_bits == 0 and not self.error_bounds:
            raise CodecError("ae: latent_bits=0 without error bounds would give every object the same values")
        if not 0 < margin < 1:
            raise CodecError(f"ae: margin must be in (0, 1), got {margin}")
        self.latent_bits = latent_bits if latent_bits in (None, "auto") else int(latent_bits)
        names = [b.column for b in self.error_bounds]
        if len(set(names)) != len(names):
            raise CodecError(f"ae: more than one error bound for a column: {names}")
        self.margin = float(margin)

    def get_config(self) -> dict[str, Any]:
        return {"id": self.codec_id, "latent_bits": self.latent_bits,
                "error_bounds": [str(b) for b in self.error_bounds], "margin": self.margin}

    def prepare(self, columns, dtype, model=None):
        """Check the bounds against the columns and the model; without a model (a file whose chunks need
        no network) the quantized codec can only decode."""
        super().prepare(columns, dtype)
        unknown = [b.column for b in self.error_bounds if b.column not in self.columns]
        if unknown:
            raise FeatureSetError(f"error bound(s) for {unknown}: no such column; columns are {self.columns}")
        self._bounded = [self.columns.index(b.column) for b in self.error_bounds]
        self._chosen_bits: np.ndarray | None = None  # "auto": chosen on the first chunk, kept for the file
        self._network_used = not self.quantized  # a chunk without latent values stores its constant prediction
        if model is None:
            if not self.quantized:
                raise CodecError("the ae codec needs a trained model")
            return
        self.latent_size = model.latent_size
        exact = {c.name for c in model.featureset.columns if c.lossless}
        unbounded = [c for c in self.columns if c not in exact and c not in {b.column for b in self.error_bounds}]
        if self.latent_bits == "auto" and unbounded:
            raise CodecError(f"ae: latent_bits='auto' may drop the latent values, which only bounded columns survive; "
                             f"give error bounds for {unbounded} too, or a number of latent bits")
        if self.quantized and "encoder" in model.parts:
            std = model.training.get("latent_std")
            if std is None or len(std) != model.latent_size:
                raise CodecError("this model has no latent statistics (trained by an older hepae); retrain it to "
                                 "quantize its latent values, or leave latent_bits unset")
            self._latent_std = np.maximum(np.asarray(std, dtype=np.float64), 1e-12)

    @property
    def quantized(self) -> bool:
        return self.latent_bits is not None

    def stream_dtypes(self) -> dict[str, str]:
        if self.quantized:
            return {"coded": "uint8"}
        return {f"latent_{i}": "float32" for i in range(self.latent_size)}

    def chunk_streams(self) -> set[str]:
        return {"coded"} if self.quantized else set()

    def decoder_used(self) -> bool:
        return self._network_used

    def latent_values(self, streams: dict[str, np.ndarray], counts: np.ndarray | None = None) -> np.ndarray:
        """The float32 latent values ``(n, latent)`` that the streams hold (dequantized; a dropped dimension
        holds its chunk's median)."""
        if "coded" in streams:
            return _CodedChunk.read(streams["coded"], getattr(self, "dtype", np.float32), counts,
                                    len(self.error_bounds), getattr(self, "latent_size", None)).latent
        names = sorted((n for n in streams if n.startswith("latent_")), key=lambda n: int(n.split("_")[1]))
        return np.stack([streams[n] for n in names], axis=1).astype(np.float32)

    def _safe_inputs(self, values: np.ndarray, model: Any) -> np.ndarray:
        """Values outside a bounded column's normalization domain (NaN, log of <= 0, ...) replaced by an
        in-domain value: the network can encode the object, and the bound stores the value exactly."""
        out = values
        for j in self._bounded:
            transform = model.normalization.transforms[j]
            bad = transform.domain_violations(values[:, j])
            if bad.any():
                out = out.copy() if out is values else out
                out[bad, j] = transform.inverse_transform(np.zeros(1))[0]
        return out

    def encode(self, values, model=None, counts=None):
        safe = self._safe_inputs(values, model)
        if not self.quantized:
            latent = model.encode(safe)
            return {f"latent_{i}": latent[:, i] for i in range(self.latent_size)}
        sample = evenly_spaced(len(values), self._AUTO_SAMPLE)
        if self.latent_bits == "auto":
            bits = self._chosen_bits
            if bits is None:
                bits = self._choose_bits(values[sample], model.encode(safe[sample]), model)
                if len(sample) >= self._AUTO_MINIMUM:  # a small chunk chooses for itself only
                    self._chosen_bits = bits
        else:
            bits = np.full(self.latent_size, self.latent_bits, dtype=np.int64)
        dropped = bool((bits == 0).all())  # then only the latent center matters: a sample gives it
        latent = model.encode(safe[sample] if dropped else safe)
        chunk = self._code(values, latent, bits, model, _rank_classes(counts, len(values)))
        self._network_used |= chunk.constant is None
        return {"coded": chunk.to_bytes()}

    def decode(self, streams, model=None, counts=None):
        chunk = _CodedChunk.read(streams["coded"], self.dtype, counts, len(self._bounded),
                                 model.latent_size if model is not None else None) if self.quantized else None
        if chunk is not None and chunk.constant is not None:  # no latent value: the network's output is constant
            out = np.repeat(chunk.constant[None, :], len(chunk.q_latent), axis=0)
        elif model is None:
            raise CodecError("this chunk needs the autoencoder's decoder, and the file has none embedded")
        else:
            out = model.decode(chunk.latent if chunk else self.latent_values(streams))
        out = np.asarray(out, dtype=self.dtype)  # float64 inputs: bounds and exceptions in float64
        if chunk is not None and self._bounded:
            steps = chunk.steps
            exact = np.split(chunk.exact, np.cumsum([(t == 0).sum() for t in chunk.residual_tokens])[:-1])
            for k, (j, b) in enumerate(zip(self._bounded, self.error_bounds)):
                is_exception = chunk.residual_tokens[k] == 0
                residual = np.where(is_exception, EXCEPTION, steps[:, k]).astype(np.int32)
                exact_column = np.zeros(len(out), dtype=self.dtype)
                exact_column[is_exception] = exact[k]
                out[:, j] = apply_residuals(out[:, j], residual, exact_column, b.kind, b.value, chunk.margin,
                                            out.dtype)
        return out

    # -- coding one chunk ---------------------------------------------------------------------------
    def _quantize_latent(self, latent: np.ndarray, bits: np.ndarray, n: int
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(integer steps, per-dimension center, step) of ``n`` objects; with every dimension dropped,
        ``latent`` may be a sample (only its median is used)."""
        center = np.median(latent, axis=0).astype(np.float32).astype(np.float64) if len(latent) else \
            np.zeros(latent.shape[1])
        step = self._latent_std * np.exp2(-bits.astype(np.float64))
        if (bits == 0).all():
            q = np.zeros((n, len(bits)), dtype=np.int64)
        else:
            limit = 2.0**40
            q = np.clip(np.rint((latent.astype(np.float64) - center) / step), -limit, limit).astype(np.int64)
            q[:, bits == 0] = 0
        return q, center, step

    def _residual_steps(self, values, predicted, margin: float) -> tuple[np.ndarray, list[np.ndarray]]:
        """``(n, bounded)`` int64 residual steps (exceptions 0) and, per bounded column, exception flags."""
        steps = np.zeros((len(values), len(self._bounded)), dtype=np.int64)
        flags = []
        for k, (j, b) in enumerate(zip(self._bounded, self.error_bounds)):
            residual, _ = quantize_residuals(values[:, j], predicted[:, j], b.kind, b.value, margin)
            flag = residual == EXCEPTION
            steps[:, k] = np.where(flag, 0, residual)
            flags.append(flag)
        return steps, flags

    def _code(self, values, latent, bits, model, ranks: np.ndarray | None = None, contexts: bool = True
              ) -> _CodedChunk:
        q_latent, center, step = self._quantize_latent(latent, bits, len(values))
        tokens: list[np.ndarray] = []
        predictor = Predictor.empty(len(self._bounded))
        steps = np.zeros((len(values), 0), dtype=np.int64)
        exact: list[np.ndarray] = []
        constant = None
        if (bits == 0).all():  # every object gets the same prediction: keep it, decoding needs no network
            constant = model.decode(_dequantize(q_latent[:1], center, step))[0] if len(values) else \
                np.zeros(len(self.columns), np.float32)
        margin = self.margin if constant is None else self._constant_margin()
        if constant is not None:
            constant = self._on_grid(constant, margin)
        if self._bounded:
            predicted = np.repeat(constant[None, :], len(values), axis=0) if constant is not None else \
                model.decode(_dequantize(q_latent, center, step))
            steps, flags = self._residual_steps(values, predicted, margin)
            predictor = Predictor.fit(steps, flags, contexts, ranks)
            tokens = predictor.tokens(steps, flags)
            exact = [values[flag, j] for flag, j in zip(flags, self._bounded)]
        return _CodedChunk(bits, center, q_latent, self._latent_std, predictor, tokens,
                           np.concatenate(exact).astype(self.dtype) if exact else np.zeros(0, self.dtype), ranks,
                           None if constant is None else constant.astype(np.float32), margin, steps)

    def _on_grid(self, constant: np.ndarray, margin: float) -> np.ndarray:
        """The constant prediction moved onto each bounded column's quantization grid (a multiple of the
        step, of ``log|x|`` for relative bounds): columns with the same bound then quantize equal values
        (OotFracClusters5 = OotFracClusters10 in most jets) to equal steps, which the predictor codes as
        zero differences instead of a rounding jitter."""
        out = np.asarray(constant, dtype=np.float64).copy()
        for j, b in zip(self._bounded, self.error_bounds):
            step = _step(b.kind, b.value, margin)
            if not np.isfinite(out[j]) or (b.kind == "rel" and out[j] == 0):
                continue
            if b.kind == "abs":
                moved = np.rint(out[j] / step) * step
            else:
                moved = np.sign(out[j]) * np.exp(np.rint(np.log(np.abs(out[j])) / step) * step)
            if np.isfinite(np.float32(moved)):  # not pushed past the largest float32
                out[j] = moved
        return out.astype(np.float32)

    def _constant_margin(self) -> float:
        """Margin for a stored constant prediction. No network runs when decoding, and the arithmetic is
        the same on every machine but for ``exp``/``log`` (a few float64 ulps), which can flip the final
        rounding to float32 by one ulp (2**-23 relative): a margin far above that suffices."""
        smallest = min((b.value for b in self.error_bounds if b.kind == "rel"), default=1.0)
        return min(self.margin, max(CONSTANT_MARGIN, 8 * 2.0**-23 / smallest))

    def _choose_bits(self, sample_values, sample_latent, model) -> np.ndarray:
        """Per latent dimension, the bits that give the fewest estimated bits per object on a sample:
        first one setting for all dimensions (from 0 bits up, until the cost has risen twice in a row),
        then each dimension on its own (0, and up to 2 bits either side)."""

        def cost(bits: np.ndarray) -> float:
            chunk = self._code(sample_values, sample_latent, bits, model, contexts=False)  # a sample: no classes
            return chunk.estimated_bits()

        uniform: dict[int, float] = {}
        for b in self._BIT_CHOICES:  # up to two rises in a row: past the minimum
            uniform[b] = cost(np.full(self.latent_size, b))
            if b >= 2 and uniform[b] > uniform[b - 1] > uniform[b - 2]:
                break
        best = np.full(self.latent_size, min(uniform, key=uniform.get), dtype=np.int64)
        best_cost = uniform[int(best[0])]
        for i in range(self.latent_size):
            for b in sorted({0, *range(max(0, best[i] - 2), min(max(self._BIT_CHOICES), best[i] + 2) + 1)} - {best[i]}):
                trial = best.copy()
                trial[i] = b
                c = cost(trial)
                if c < best_cost:
                    best, best_cost = trial, c
        return best


_RANK_CLASSES = 3
_MAX_LATENT = 1024  # latent dimensions (or bounded columns) a chunk may declare when nothing says how many


def _rank_classes(counts: np.ndarray | None, n: int) -> np.ndarray | None:
    """Per object, its place in its event (0: leading, 1: second, 2: any other); objects are sorted
    (by pT, mostly), so the leading ones' values follow other distributions than the rest's."""
    if counts is None:
        return None
    counts = np.asarray(counts, dtype=np.int64)
    if counts.sum() != n:
        raise CodecError(f"the per-event counts add up to {counts.sum()} objects, not {n}")
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return np.minimum(np.arange(n) - starts, _RANK_CLASSES - 1)


def _dequantize(q: np.ndarray, center: np.ndarray, step: np.ndarray) -> np.ndarray:
    return (center + q.astype(np.float64) * step).astype(np.float32)


@dataclass
class _CodedChunk:
    """One chunk of the quantized ``ae`` codec: what :func:`hepae.entropy.pack_arrays` stores."""

    bits: np.ndarray  # per latent dimension (0: dropped)
    center: np.ndarray  # per latent dimension, float32 values
    q_latent: np.ndarray  # (n, latent) integer steps
    latent_std: np.ndarray  # per latent dimension: the step is std * 2**-bits
    predictor: Predictor  # of each bounded column's residual steps from the columns before it
    residual_tokens: list[np.ndarray]  # per bounded column
    exact: np.ndarray  # exceptions' values, column after column
    ranks: np.ndarray | None = None  # per object, its rank class in its event: a table per class
    constant: np.ndarray | None = None  # with no latent dimension kept: the prediction for every object
    margin: float = DEFAULT_MARGIN  # of the error bounds in this chunk
    steps: np.ndarray | None = None  # (n, bounded) residual steps, as the tokens give them back

    _VERSION: ClassVar[int] = 2  # 2: the residual predictor has curves and class contexts

    def _streams(self) -> list[np.ndarray]:
        kept = np.flatnonzero(self.bits > 0)
        return [zigzag(self.q_latent[:, i]) for i in kept] + list(self.residual_tokens)

    def estimated_bits(self) -> float:
        return sum(entropy.estimated_bits(s, tables=False) for s in self._streams())

    def _classes(self) -> list[np.ndarray | None]:
        """Per stream, the entropy coder's classes: a bounded column's class context, else the ranks."""
        n_kept = int((self.bits > 0).sum())
        own = [self.predictor.classes(self.steps, j) for j in range(len(self.residual_tokens))]
        return [self.ranks] * n_kept + [self.ranks if c is None else c for c in own]

    def to_bytes(self) -> np.ndarray:
        streams = self._streams()
        header = np.array([self._VERSION, len(self.q_latent), len(self.bits), len(self.residual_tokens),
                           int(self.ranks is not None)], np.int64)
        coded = entropy.encode_streams(streams, self._classes())
        constant = np.zeros(0, np.float32) if self.constant is None else self.constant
        return entropy.pack_arrays([header, self.bits.astype(np.int64), self.center.astype(np.float32),
                                    self.latent_std.astype(np.float64), *self.predictor.to_arrays(),
                                    self.exact, constant, np.array([self.margin], np.float64), coded])

    @property
    def latent(self) -> np.ndarray:
        return _dequantize(self.q_latent, self.center.astype(np.float64),
                           self.latent_std * np.exp2(-self.bits.astype(np.float64)))

    @classmethod
    def read(cls, data: np.ndarray, dtype: Any, counts: np.ndarray | None = None, n_bounded_expected: int | None = None,
             n_latent_expected: int | None = None) -> _CodedChunk:
        """A chunk from its bytes; ``counts`` (objects per event) if it was coded with them.

        Every size the chunk declares is checked against the codec's columns, its model and ``counts``
        before anything of that size is allocated, so a crafted chunk cannot exhaust memory.
        """
        try:
            arrays = entropy.unpack_arrays(data)
            version, n, n_latent, n_bounded, by_rank = arrays[0].tolist()
        except ValueError as err:
            raise CodecError(f"coded ae chunk is damaged: {err}") from None
        n_predictor = {1: 1, 2: 5}.get(version)  # version 1: linear coefficients only
        if n_predictor is None or len(arrays) != 8 + n_predictor:
            raise CodecError("coded ae chunk has an unknown layout (written by a newer hepae, or corrupted)")
        if n < 0 or n_latent < 0 or n_bounded < 0:
            raise CodecError("coded ae chunk has negative sizes (corrupted)")
        if (n_bounded_expected is not None and n_bounded != n_bounded_expected) or n_latent > _MAX_LATENT \
                or n_bounded > _MAX_LATENT \
                or (n_latent_expected is not None and n_latent != n_latent_expected):
            raise CodecError(f"coded ae chunk declares {n_bounded} bounded column(s) and {n_latent} latent "
                             f"dimension(s); the codec has {n_bounded_expected} and {n_latent_expected} (corrupted)")
        if counts is not None and n != int(np.sum(counts)):
            raise CodecError(f"coded ae chunk holds {n} objects, the per-event counts say {int(np.sum(counts))}")
        bits, center, std = arrays[1:4]
        exact, constant, margin, coded = arrays[4 + n_predictor:]
        if len(bits) != n_latent or len(center) != n_latent or len(std) != n_latent or ((bits < 0) | (bits > 24)).any():
            raise CodecError("coded ae chunk has an unknown layout (written by a newer hepae, or corrupted)")
        predictor_arrays = arrays[4:4 + n_predictor]
        if version == 1:
            empty = Predictor.empty(n_bounded).to_arrays()
            predictor_arrays = [predictor_arrays[0], *empty[1:]]
        predictor = Predictor.from_arrays(predictor_arrays, n_bounded)
        if counts is not None and n != int(np.sum(counts)):
            raise CodecError(f"coded ae chunk holds {n} objects, the per-event counts say {int(np.sum(counts))}")
        kept = np.flatnonzero(bits > 0)
        ranks = None
        if by_rank:
            if counts is None:
                raise CodecError("this chunk was coded per rank in the event: decoding needs the per-event counts")
            ranks = _rank_classes(counts, n)
        steps = np.zeros((n, n_bounded), dtype=np.int64)
        undone = [0]

        def classes(i: int, before: list[np.ndarray]) -> np.ndarray | None:
            """Stream ``i``'s classes, from the residual steps of the columns decoded before it."""
            j = i - len(kept)
            if j < 0 or predictor.class_context[j] < 0:
                return ranks
            while undone[0] < j:
                predictor.undo_column(steps, before[len(kept) + undone[0]], undone[0])
                undone[0] += 1
            return predictor.classes(steps, j)

        streams = entropy.decode_streams(coded, classes if version > 1 else [ranks] * (len(kept) + n_bounded),
                                         max_symbols=n * (len(kept) + n_bounded), n_streams=len(kept) + n_bounded)
        if len(streams) != len(kept) + n_bounded or any(len(s) != n for s in streams):
            raise CodecError("coded ae chunk holds streams of the wrong number or length")
        q_latent = np.zeros((n, n_latent), dtype=np.int64)
        for i, s in zip(kept, streams):
            q_latent[:, i] = unzigzag(s)
        tokens = list(streams[len(kept):])
        for j in range(undone[0], n_bounded):  # the columns no class asked for yet
            predictor.undo_column(steps, tokens[j], j)
        if len(exact) != sum(int((t == 0).sum()) for t in tokens):
            raise CodecError("coded ae chunk: the number of exact values does not match its exceptions")
        if len(constant) and (bits > 0).any():
            raise CodecError("coded ae chunk has both latent values and a constant prediction")
        if len(margin) != 1 or not 0 < margin[0] < 1:
            raise CodecError("coded ae chunk has no valid error-bound margin")
        return cls(bits, center, q_latent, std, predictor, tokens,
                   exact.astype(dtype), ranks, constant if len(constant) else None, float(margin[0]), steps)


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
