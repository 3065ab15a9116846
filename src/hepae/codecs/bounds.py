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

from hepae.codecs import kernels
from hepae.codecs.blocks import blockwise
from hepae.errors import CodecError

EXCEPTION = np.iinfo(np.int32).min
"""Residual value that marks an exception: the exact value is stored beside the residuals."""
DEFAULT_MARGIN = 0.1
CONSTANT_MARGIN = 0.01
"""Margin of chunks whose prediction is a stored constant (no network): see :func:`constant_margin`."""


# -- error bounds -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ErrorBound:
    """``|reco - orig| <= value`` (``abs``) or ``<= value * |orig|`` (``rel``) for one column."""

    column: str
    kind: str
    value: float

    @classmethod
    def parse(cls, text: str) -> ErrorBound:
        """``"pt=rel:1e-3"``, ``"eta=abs:0.001"`` or ``"pt=bits:10"`` (10 mantissa bits kept: ``rel:2**-11``)."""
        match = re.fullmatch(r"\s*([^=\s]+)\s*=\s*(.*)", text)
        if match is None:
            raise CodecError(f"error bound {text!r} is not of the form COLUMN=rel:VALUE, COLUMN=abs:VALUE or "
                             "COLUMN=bits:N")
        kind, value = parse_rule(match.group(2), what=f"error bound {text!r}")
        if kind == "exact":
            raise CodecError(f"error bound {text!r}: 'exact' is not a bound (leave the column unbounded, or mark it "
                             "lossless in the feature set)")
        return cls(match.group(1), kind, value)

    def __str__(self) -> str:
        if self.kind == "exact":
            return f"{self.column}=exact"
        return f"{self.column}={self.kind}:{self.value!r}"  # repr: the exact value, kept in the metadata

    @classmethod
    def exact(cls, column: str) -> ErrorBound:
        """A column kept bit for bit (the ``bounded`` codec's ``exact`` columns: their float bits coded as integer
        steps, :func:`quantize_residuals`); not a bound a user gives (:meth:`parse` refuses it)."""
        return cls(column, "exact", 0.0)


RULE_KINDS = ("rel", "abs", "bits", "exact")
"""The precision rules: ``rel:B`` (``|error| <= B |x|``), ``abs:B``, ``bits:N`` (the guarantee of keeping N
mantissa bits, relative ``2**-(N+1)``, the way CMS NanoAOD states precision) and ``exact``."""


def parse_rule(text: str, what: str = "precision rule") -> tuple[str, float | None]:
    """``"rel:1e-3"`` -> ``("rel", 0.001)``; ``"bits:10"`` -> ``("rel", 2**-11)``; ``"exact"`` -> ``("exact", None)``.

    Raises :class:`CodecError` naming ``what`` for an unknown kind, a value that is not a number, a bound
    <= 0, NaN or infinite (or >= 1 for a relative bound), or bits outside 1..52.
    """
    rule = text.strip()
    if rule == "exact":
        return "exact", None
    kind, _, number = (part.strip() for part in rule.partition(":"))
    if kind not in RULE_KINDS[:3] or not _:
        raise CodecError(f"{what}: unknown rule {text!r}; expected rel:B, abs:B, bits:N or exact")
    if kind == "bits":
        if not re.fullmatch(r"[0-9]+", number) or not 1 <= int(number) <= 52:
            raise CodecError(f"{what}: bits:N needs a whole number of mantissa bits from 1 to 52, got {number!r}")
        return "rel", 2.0 ** -(int(number) + 1)
    try:
        value = float(number)
    except ValueError:
        raise CodecError(f"{what}: {number!r} is not a number") from None
    if not (math.isfinite(value) and value > 0) or (kind == "rel" and value >= 1):
        raise CodecError(f"{what}: the bound must be a number > 0 (and < 1 for a relative bound), got {number!r}")
    return kind, value


def constant_margin(bounds: tuple[ErrorBound, ...] | list[ErrorBound], margin: float) -> float:
    """Margin for a stored constant prediction (no network runs when decoding). The arithmetic is the same on
    every machine (``exp``/``log`` correctly rounded, :mod:`hepae.codecs.kernels`); decoders before that used
    their machine's, a few float64 ulps apart, which can flip the final rounding to float32 by one ulp
    (2**-23 relative): a margin far above that suffices for them too."""
    smallest = min((b.value for b in bounds if b.kind == "rel"), default=1.0)
    return min(margin, max(CONSTANT_MARGIN, 8 * 2.0**-23 / smallest))


def on_grid(constant: np.ndarray, columns: list[int], bounds: tuple[ErrorBound, ...] | list[ErrorBound],
            margin: float) -> np.ndarray:
    """A constant prediction moved onto each bounded column's quantization grid (a multiple of the step, of
    ``log|x|`` for relative bounds): columns with the same bound then quantize equal values (OotFracClusters5
    = OotFracClusters10 in most jets) to equal steps, which the predictor codes as zero differences instead
    of a rounding jitter. ``columns[k]`` is the column of ``bounds[k]``. Returns float32."""
    out = np.asarray(constant, dtype=np.float64).copy()
    for j, b in zip(columns, bounds):
        if b.kind == "exact":  # no grid: the bits themselves are the steps
            continue
        step = quantization_step(b.kind, b.value, margin)
        if not np.isfinite(out[j]) or (b.kind == "rel" and out[j] == 0):
            continue
        if b.kind == "abs":
            moved = np.rint(out[j] / step) * step
        else:
            moved = np.sign(out[j]) * np.exp(np.rint(np.log(np.abs(out[j])) / step) * step)
        if np.isfinite(np.float32(moved)):  # not pushed past the largest float32
            out[j] = moved
    return out.astype(np.float32)


def quantization_step(kind: str, bound: float, margin: float) -> float:
    """The residual step of a bound: ``2 * bound * (1 - margin)``, of ``log|x|`` for a relative bound."""
    return 2.0 * (bound if kind == "abs" else kernels.exact_log1p(bound)) * (1.0 - margin)


_UNSIGNED = {np.dtype(np.float32): np.uint32, np.dtype(np.float64): np.uint64}


def magnitude_bits(values: np.ndarray) -> np.ndarray:
    """Float32/float64 values' bits without their sign bit, as int64: the order of ``|x|`` (NaN payloads beyond the
    infinities), neighbouring magnitudes neighbouring integers. An ``exact`` column's steps are these minus its
    center's, its signs stored as a relative bound's are (``docs/format.md``)."""
    x = np.asarray(values)
    width = 8 * x.dtype.itemsize
    return (x.view(_UNSIGNED[x.dtype]) & _UNSIGNED[x.dtype]((1 << (width - 1)) - 1)).astype(np.int64)


def from_magnitude_bits(magnitude: np.ndarray, negative: np.ndarray | bool | None, dtype: Any) -> np.ndarray:
    """The floats of ``dtype`` with these :func:`magnitude_bits` (callers keep them in range), negative where
    ``negative`` is set."""
    dtype = np.dtype(dtype)
    unsigned = _UNSIGNED[dtype]
    bits = np.asarray(magnitude, np.int64).astype(unsigned)
    if negative is not None:
        bits = bits | np.where(negative, unsigned(1 << (8 * dtype.itemsize - 1)), unsigned(0))
    return np.asarray(bits, unsigned).view(dtype)


def apply_residuals(predicted: np.ndarray | float, residual: np.ndarray, exact: np.ndarray, kind: str, bound: float,
                    margin: float = DEFAULT_MARGIN, dtype: Any = np.float32,
                    negative: np.ndarray | None = None) -> np.ndarray:
    """Reconstruct values from a prediction and its quantized residuals (exceptions taken from ``exact``).

    ``predicted`` is one value per residual, or one for all of them; with ``negative`` (a relative bound
    only), each value's sign is flipped where ``negative`` is set (the ``bounded`` codec: one magnitude,
    each value's own sign).
    """
    residual = np.asarray(residual)
    arguments = {"predicted": predicted, "residual": residual, "exact": exact, "kind": kind, "bound": bound,
                 "margin": margin, "dtype": dtype, "negative": negative}
    return blockwise(_apply_residuals, len(residual), arguments, (dtype,))[0]


def _apply_residuals(predicted: np.ndarray | float, residual: np.ndarray, exact: np.ndarray, kind: str, bound: float,
                     margin: float, dtype: Any, negative: np.ndarray | None) -> tuple[np.ndarray]:
    is_exception = residual == EXCEPTION
    if kind == "exact":  # the prediction's magnitude bits moved by the steps (a stored constant: the same everywhere)
        steps = np.where(is_exception, 0, residual).astype(np.int64)
        magnitude = magnitude_bits(np.asarray(predicted, dtype=dtype)) + steps
        if ((magnitude < 0) | (magnitude >> (8 * np.dtype(dtype).itemsize - 1) != 0)).any():  # not a writer's
            raise CodecError("coded chunk: steps of an exact column beyond the bits of its floats (corrupted)")
        out = from_magnitude_bits(magnitude, negative, dtype)
        out[is_exception] = np.asarray(exact, dtype=dtype)[is_exception]
        return (out,)
    step = quantization_step(kind, bound, margin)
    out = np.asarray(residual).astype(np.float64)
    out[is_exception] = 0.0
    out *= step
    h = np.asarray(predicted, dtype=np.float64)
    with np.errstate(all="ignore"):
        if kind == "abs":
            out += h
        else:  # exp and log from IEEE arithmetic alone: numpy's and the libms' differ between machines
            out += kernels.exact_log(np.abs(np.atleast_1d(h)).ravel()).reshape(np.shape(h))
            out = kernels.exact_exp(out)
            if negative is not None:
                sign = np.sign(h)
                out *= np.where(negative, -sign, sign) if np.ndim(negative) else (-sign if negative else sign)
            else:
                out *= np.sign(h)
    out = out.astype(dtype)
    out[is_exception] = np.asarray(exact, dtype=dtype)[is_exception]
    return (out,)


_RISKY_BELOW = 2.0**-20
"""A relative bound whose margin (``bound * margin``) is at least this has room for the other float32
neighbour of every reconstruction in float32's normal range (one float32 step is at most ``2**-23 |x|``
there): the midpoint check of :func:`quantize_residuals` cannot reject such a value, and is made only for
the others (subnormal values, whose steps are coarser than that, and values next to the largest float32,
whose other neighbour is infinite)."""


def quantize_residuals(values: np.ndarray, predicted: np.ndarray | float, kind: str, bound: float,
                       margin: float = DEFAULT_MARGIN, negative: np.ndarray | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """``(residual, exact)``: int32 residual steps, and the exact value where a residual cannot keep the bound.

    ``predicted`` and ``negative`` as in :func:`apply_residuals`, which then gives every value within
    ``bound`` (exceptions exactly).

    Under a relative bound, a float32 value whose float64 reconstruction lies within ``2**-40`` (relative)
    of the midpoint between two float32 values is accepted only if both keep the bound: a decoder of an earlier
    hepae, whose ``exp``/``log`` were its machine's (differing in the last float64 bits), may round to either
    (hepae's own are correctly rounded, the same everywhere; this can matter only for bounds
    within a few float32 ulps, ``bits:18`` and tighter; looser bounds leave room for either neighbour,
    see ``_RISKY_BELOW``). An absolute bound's arithmetic (``h + q s``) is exact IEEE float64, the same on
    every machine.
    """
    x = np.asarray(values)
    arguments = {"x": x, "predicted": predicted, "kind": kind, "bound": bound, "margin": margin, "negative": negative}
    return blockwise(_quantize_residuals, len(x), arguments, (np.int32, x.dtype))  # type: ignore[return-value]


def _quantize_residuals(x: np.ndarray, predicted: np.ndarray | float, kind: str, bound: float, margin: float,
                        negative: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    if kind == "exact":  # steps of the magnitude bits from the prediction's, within +-2**30, checked bit for bit
        h = np.asarray(predicted, dtype=x.dtype)
        difference = magnitude_bits(x) - magnitude_bits(h)
        ok = np.abs(difference) < 2**30
        q = np.where(ok, difference, 0).astype(np.int32)
        back = from_magnitude_bits(magnitude_bits(h) + q, negative, x.dtype)
        ok &= back.view(_UNSIGNED[x.dtype]) == x.view(_UNSIGNED[x.dtype])  # a sign without ``negative``: exception
        q[~ok] = EXCEPTION
        return q, np.where(ok, np.zeros((), x.dtype), x).astype(x.dtype)
    step = quantization_step(kind, bound, margin)
    with np.errstate(all="ignore"):  # a signalling NaN raises "invalid" when widened; it is an exception anyway
        x64, h64 = x.astype(np.float64), np.asarray(predicted, dtype=np.float64)
        if kind == "abs":
            t = x64 - h64
        else:
            t = np.log(np.abs(x64))
            t -= np.log(np.abs(h64))
            sign = np.sign(h64)
            if negative is not None:
                sign = np.where(negative, -sign, sign)
            t[(np.sign(x64) != sign) | (x64 == 0)] = np.nan
        t /= step
        ok = np.abs(t) < 2.0**30  # False for NaN and infinities
        t[~ok] = 0.0
        q = np.rint(t).astype(np.int32)
        exact64 = _apply_residuals(h64, q, x, kind, bound, margin, np.float64, negative)[0]
        reco = exact64.astype(x.dtype)
        limit = np.abs(x64) if kind == "rel" else np.full(len(x64), 1.0)
        limit *= bound * (1.0 - margin / 2)
        ok &= np.abs(reco.astype(np.float64) - x64) <= limit
        if kind == "rel" and x.dtype != np.float64:  # an earlier hepae's exp/log (a few float64 ulps apart) may
            check = slice(None)  # round to the other float32 neighbour, but only next to the midpoint between them
            if bound * margin >= _RISKY_BELOW:  # only outside float32's normal range
                info = np.finfo(x.dtype)
                check = np.flatnonzero((np.abs(x64) < 4 * float(info.tiny)) | (np.abs(x64) > float(info.max) / 4))
            r, e = reco[check], exact64[check]
            other = np.nextafter(r, np.where(r < e, np.inf, -np.inf).astype(x.dtype))
            middle = (r.astype(np.float64) + other.astype(np.float64)) / 2
            risky = np.abs(e - middle) <= 2.0**-40 * np.abs(e)
            ok[check] &= ~risky | (np.abs(other.astype(np.float64) - x64[check]) <= limit[check])
    q[~ok] = EXCEPTION
    exact = np.where(ok, np.zeros((), x.dtype), x).astype(x.dtype)
    return q, exact


def within_bound(values: np.ndarray, reco: np.ndarray, kind: str, bound: float) -> np.ndarray:
    """Per value: reconstructed within the bound, or identical (NaN matches NaN); under ``exact``, the same bits."""
    if kind == "exact":
        x, r = np.asarray(values), np.asarray(reco)
        return (x.dtype == r.dtype) & (x.view(_UNSIGNED[x.dtype]) == r.view(_UNSIGNED[x.dtype]))
    with np.errstate(invalid="ignore"):  # widening a signalling NaN
        x, r = np.asarray(values, dtype=np.float64), np.asarray(reco, dtype=np.float64)
        same = (x == r) | (np.isnan(x) & np.isnan(r))
        limit = bound * (1.0 if kind == "abs" else np.abs(x))
        return same | (np.abs(r - x) <= limit)


def error_over_bound(values: np.ndarray, reco: np.ndarray, kind: str, bound: float) -> np.ndarray:
    """Per value, ``reco - orig`` in units of its bound (0 where identical, NaN matching NaN; infinite
    where a NaN or an infinity is not kept): what reports show. :func:`within_bound` is the check."""
    if kind == "exact":
        return np.where(within_bound(values, reco, kind, bound), 0.0, np.inf)
    with np.errstate(all="ignore"):  # widening a signalling NaN
        x, r = np.asarray(values, dtype=np.float64), np.asarray(reco, dtype=np.float64)
        same = (x == r) | (np.isnan(x) & np.isnan(r))
        ratio = np.where(same, 0.0, (r - x) / (bound * (1.0 if kind == "abs" else np.abs(x))))
    return np.where(np.isnan(ratio), np.inf, ratio)
