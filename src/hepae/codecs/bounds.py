"""Error bounds: ``|reco - orig| <= value`` (``abs``) or ``<= value * |orig|`` (``rel``) per column, and
the quantization of residuals that keeps them.

The guarantee on other machines: the quantization step is ``2 * bound * (1 - margin)`` and a value
is accepted only if its reconstruction is within ``bound * (1 - margin / 2)``, so a decoder (another
CPU, GPU or torch version) whose outputs differ from the compressing one by less than ``margin / 2``
of the bound still reconstructs every value within it. Values that cannot be kept (NaN, Inf, a sign
change, a residual too large) are exceptions, stored exactly.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from hepae.errors import CodecError

EXCEPTION = np.iinfo(np.int32).min
"""Residual value that marks an exception: the exact value is stored beside the residuals."""
DEFAULT_MARGIN = 0.1


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
        try:
            value = float(match.group(3))
        except ValueError:
            raise CodecError(f"error bound {text!r}: {match.group(3)!r} is not a number") from None
        if not (math.isfinite(value) and value > 0) or (match.group(2) == "rel" and value >= 1):
            raise CodecError(f"error bound {text!r}: the value must be > 0 (and < 1 for a relative bound)")
        return cls(match.group(1), match.group(2), value)

    def __str__(self) -> str:
        return f"{self.column}={self.kind}:{self.value!r}"  # repr: the exact value, kept in the metadata


def quantization_step(kind: str, bound: float, margin: float) -> float:
    """The residual step of a bound: ``2 * bound * (1 - margin)``, of ``log|x|`` for a relative bound."""
    return 2.0 * (bound if kind == "abs" else math.log1p(bound)) * (1.0 - margin)


def apply_residuals(predicted: np.ndarray, residual: np.ndarray, exact: np.ndarray, kind: str, bound: float,
                    margin: float = DEFAULT_MARGIN, dtype: Any = np.float32) -> np.ndarray:
    """Reconstruct values from a prediction and its quantized residuals (exceptions taken from ``exact``)."""
    step = quantization_step(kind, bound, margin)
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
    step = quantization_step(kind, bound, margin)
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
