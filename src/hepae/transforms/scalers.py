"""Per-column normalizations: identity, affine, log10 (the seed's custom constants) and standard."""

from __future__ import annotations

import numpy as np

from hepae.transforms.base import Transform, register_transform


@register_transform
class Identity(Transform):
    """y = x."""

    transform_id = "identity"

    def _forward(self, x: np.ndarray) -> np.ndarray:
        return x

    def _inverse(self, y: np.ndarray) -> np.ndarray:
        return y


@register_transform
class Affine(Transform):
    """y = (x - shift) / scale; e.g. the seed's eta/5 and phi/3."""

    transform_id = "affine"

    def __init__(self, shift: float = 0.0, scale: float = 1.0):
        self.shift = float(shift)
        self.scale = float(scale)

    def _forward(self, x: np.ndarray) -> np.ndarray:
        return (x - self.shift) / self.scale

    def _inverse(self, y: np.ndarray) -> np.ndarray:
        return y * self.scale + self.shift


@register_transform
class Log10(Transform):
    """y = (log10(multiply * x + add) - offset) / scale.

    ``multiply`` converts units (0.001 for MeV -> GeV) and may be negative (the seed's
    ``log10(1 - NegativeE)``), ``add`` keeps zero finite (the seed's log10(m + 1)). Domain:
    ``multiply * x + add > 0`` and finite; values outside it raise
    :class:`hepae.errors.TransformDomainError` instead of becoming NaN.
    """

    transform_id = "log10"

    def __init__(self, multiply: float = 1.0, add: float = 0.0, offset: float = 0.0, scale: float = 1.0):
        self.multiply = float(multiply)
        self.add = float(add)
        self.offset = float(offset)
        self.scale = float(scale)

    # With add > 0, log10(m*x + a) = log10(a) + log1p(m*x/a)/ln10 and its inverse uses expm1: both stay
    # exact for m*x << a, where the direct formula would cancel (the seed's log10(m + 1) for light jets).
    def _forward(self, x: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.add > 0:
                log = np.log10(self.add) + np.log1p(self.multiply * x / self.add) / np.log(10.0)
            else:
                log = np.log10(self.multiply * x + self.add)
            return (log - self.offset) / self.scale

    def _inverse(self, y: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            log = y * self.scale + self.offset
            if self.add > 0:
                return self.add * np.expm1((log - np.log10(self.add)) * np.log(10.0)) / self.multiply
            return (np.power(10.0, log) - self.add) / self.multiply

    def domain_violations(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            return ~(np.isfinite(x) & (self.multiply * x + self.add > 0))

    def describe_domain(self) -> str:
        threshold = 0.0 - self.add / self.multiply + 0.0  # + 0.0 turns -0.0 into 0.0
        side = ">" if self.multiply > 0 else "<"
        return f"finite x with {self.multiply:g}*x + {self.add:g} > 0, i.e. x {side} {threshold:g}"


@register_transform
class Standard(Transform):
    """y = (x - mean_) / scale_, with mean and standard deviation fitted on training data only.

    :meth:`partial_fit` merges chunk statistics exactly (Chan et al.), so fitting streams.
    """

    transform_id = "standard"

    @property
    def requires_fit(self) -> bool:
        return True

    def partial_fit(self, x: np.ndarray) -> Standard:
        x = np.asarray(x, dtype=np.float64).ravel()
        x = x[np.isfinite(x)]
        n_b = x.size
        if n_b == 0:
            return self
        mean_b = float(x.mean())
        m2_b = float(((x - mean_b) ** 2).sum())
        n_a = int(getattr(self, "n_samples_seen_", 0))
        mean_a = float(getattr(self, "mean_", 0.0))
        m2_a = float(getattr(self, "_m2", 0.0))
        n = n_a + n_b
        delta = mean_b - mean_a
        self._m2 = m2_a + m2_b + delta * delta * n_a * n_b / n
        self.mean_ = mean_a + delta * n_b / n
        self.n_samples_seen_ = n
        std = (self._m2 / n) ** 0.5
        self.scale_ = std if std > 0 else 1.0
        return self

    def fit(self, x: np.ndarray) -> Standard:
        self._m2 = 0.0
        return super().fit(x)  # type: ignore[return-value]

    def _forward(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean_) / self.scale_

    def _inverse(self, y: np.ndarray) -> np.ndarray:
        return y * self.scale_ + self.mean_


@register_transform
class Quantile(Transform):
    """Map a column to a uniform distribution on [-1, 1] (the seed's "FunctionScaler").

    ``fit`` keeps a reservoir sample of at most ``subsample`` training values (seeded, streaming) and
    takes ``n_quantiles`` of its quantiles as knots. The map is piecewise linear through the knots
    (repeated knots, e.g. a point mass at 0, are merged) and extends linearly beyond the first and
    last knot, so it is a bijection of the real line: the inverse is exact to round-off, and values
    outside the training range are not clipped (they map slightly outside [-1, 1]).
    """

    transform_id = "quantile"

    def __init__(self, n_quantiles: int = 1000, subsample: int = 100_000, seed: int = 0):
        self.n_quantiles = int(n_quantiles)
        self.subsample = int(subsample)
        self.seed = int(seed)

    @property
    def requires_fit(self) -> bool:
        return True

    def fit(self, x: np.ndarray) -> Quantile:
        for key in ("quantiles_", "_reservoir", "_seen", "_rng"):
            self.__dict__.pop(key, None)
        return self.partial_fit(x)

    def partial_fit(self, x: np.ndarray) -> Quantile:
        """Reservoir-sample finite values (algorithm R, vectorized per chunk); knots are made on use."""
        x = np.asarray(x, dtype=np.float64).ravel()
        x = x[np.isfinite(x)]
        if not hasattr(self, "_reservoir"):
            self._reservoir = np.empty(0)
            self._seen = 0
            self._rng = np.random.default_rng(self.seed)
        self.__dict__.pop("quantiles_", None)
        room = self.subsample - len(self._reservoir)
        head, tail = x[:max(room, 0)], x[max(room, 0):]
        self._reservoir = np.concatenate([self._reservoir, head])
        self._seen += len(head)
        if len(tail):
            positions = self._seen + np.arange(1, len(tail) + 1)
            slots = (self._rng.random(len(tail)) * positions).astype(np.int64)
            keep = slots < self.subsample
            self._reservoir[slots[keep]] = tail[keep]  # later values overwrite earlier ones, as in algorithm R
            self._seen += len(tail)
        return self

    def _finish_fit(self) -> None:
        if hasattr(self, "quantiles_") or len(getattr(self, "_reservoir", ())) == 0:
            return
        levels = np.linspace(0.0, 1.0, min(self.n_quantiles, len(self._reservoir)))
        self.quantiles_ = np.quantile(self._reservoir, levels).tolist()

    def _knots(self) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(self.quantiles_, dtype=np.float64)
        y = np.linspace(-1.0, 1.0, len(x))
        x, first = np.unique(x, return_index=True)  # merge repeated knots (point masses)
        y = y[first]
        # and knots closer than 1e-12 of the scale: their slope would overflow (far below float32 anyway)
        keep = np.concatenate([[True], np.diff(x) > 1e-12 * max(1.0, float(np.abs(x).max()))])
        x, y = x[keep], y[keep]
        if len(x) == 1:  # a constant column: a shift
            return np.array([x[0], x[0] + 1.0]), np.array([0.0, 1.0])
        return x, y

    @staticmethod
    def _interpolate(v: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
        out = np.interp(v, xp, fp)
        low, high = v < xp[0], v > xp[-1]
        out[low] = fp[0] + (v[low] - xp[0]) * (fp[1] - fp[0]) / (xp[1] - xp[0])
        out[high] = fp[-1] + (v[high] - xp[-1]) * (fp[-1] - fp[-2]) / (xp[-1] - xp[-2])
        return out

    def _forward(self, x: np.ndarray) -> np.ndarray:
        xp, yp = self._knots()
        return self._interpolate(x, xp, yp)

    def _inverse(self, y: np.ndarray) -> np.ndarray:
        xp, yp = self._knots()
        return self._interpolate(y, yp, xp)
