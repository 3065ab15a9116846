"""Codecs that keep the floats themselves: ``lossless`` (the values as they are) and ``truncate``
(mantissa rounding, ROOT ``Float16_t``-like), stored as byte planes so that zstd sees the zeros."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from hepae.codecs.base import BoundCodec, Codec
from hepae.errors import CodecError

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

class Lossless(Codec):
    """The values as they are (float32, or float64 for a float64 collection)."""

    codec_id = "lossless"
    summary = "the float values as they are (the reference for compression ratios)"
    exact = True

    def get_config(self) -> dict[str, Any]:
        return {"id": self.codec_id}

    def bind(self, columns: Sequence[str], dtype: Any, model: Any = None) -> BoundCodec:
        return _BoundLossless(self, columns, dtype)


class _BoundLossless(BoundCodec):
    def stream_dtypes(self) -> dict[str, str]:
        return {f"value_{c}": self.dtype.name for c in self.columns}

    def encode(self, values, counts=None):
        return {f"value_{c}": np.ascontiguousarray(values[:, j], dtype=self.dtype) for j, c in enumerate(self.columns)}

    def decode(self, streams, counts=None):
        if not self.columns:
            return np.zeros((0, 0), self.dtype)
        return np.stack([streams[f"value_{c}"] for c in self.columns], axis=1).astype(self.dtype)


class Truncate(Codec):
    """Mantissa rounding to ``mantissa_bits`` (1..23), stored as the kept bits: sign, exponent and
    mantissa bits of float32 values, or of float64 ones (a float64 collection keeps its precision:
    its values are rounded in float64, never narrowed to float32 first).

    Parameters
    ----------
    mantissa_bits : int
        Mantissa bits kept (float32 has 23): the relative error is at most ``2**-(mantissa_bits + 1)``.
    """

    codec_id = "truncate"
    summary = "mantissa rounding to --mantissa-bits (like ROOT's Float16_t), no model needed"

    def __init__(self, mantissa_bits: int = 10):
        if isinstance(mantissa_bits, bool) or not isinstance(mantissa_bits, int | np.integer) \
                or not 1 <= int(mantissa_bits) <= 23:
            raise CodecError(f"truncate: mantissa_bits must be an integer in 1..23, got {mantissa_bits!r}")
        self._set(mantissa_bits=int(mantissa_bits))

    def get_config(self) -> dict[str, Any]:
        return {"id": self.codec_id, "mantissa_bits": self.mantissa_bits}

    def bind(self, columns: Sequence[str], dtype: Any, model: Any = None) -> BoundCodec:
        return _BoundTruncate(self, columns, dtype)


class _BoundTruncate(BoundCodec):
    def __init__(self, codec: Truncate, columns: Sequence[str], dtype: Any) -> None:
        super().__init__(codec, columns, dtype)
        self.float = np.dtype(np.float64 if self.dtype == np.float64 else np.float32)
        mantissa = _FLOAT_LAYOUT[self.float][1]
        self.bits = codec.mantissa_bits
        self.n_bytes = -(-(8 * self.float.itemsize - mantissa + self.bits) // 8)  # sign, exponent, kept mantissa

    def stream_dtypes(self) -> dict[str, str]:
        return {name: "uint8" for c in self.columns for name in _plane_names(f"bits_{c}", self.n_bytes)}

    def encode(self, values, counts=None):
        streams = {}
        for j, c in enumerate(self.columns):
            kept = _kept_bits(values[:, j], self.bits, self.float)
            streams.update(zip(_plane_names(f"bits_{c}", self.n_bytes), to_planes(kept, self.n_bytes)))
        return streams

    def decode(self, streams, counts=None):
        columns = []
        for c in self.columns:
            kept = from_planes([streams[n] for n in _plane_names(f"bits_{c}", self.n_bytes)])
            columns.append(_from_kept_bits(kept, self.bits, self.float))
        return np.stack(columns, axis=1) if columns else np.zeros((0, 0), self.float)
