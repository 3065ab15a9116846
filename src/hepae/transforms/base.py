"""The :class:`Transform` contract and its registry.

Like a scikit-learn transformer, a transform takes its constants as ``__init__`` keywords, learns
statistics only in :meth:`Transform.fit` (stored in attributes ending in ``_``), and has an exact
:meth:`Transform.inverse_transform`. Like a numcodecs codec, it is described completely by a
JSON-able config, ``{"id": ..., **parameters, **fitted}``, which :func:`get_transform` turns back into
a ready-to-use transform without refitting.

Transforms act on one column (a 1-D array); :class:`hepae.transforms.ColumnTransform` applies one per
column of an ``(n_objects, D)`` array. Arithmetic is done in float64 and the result is returned in the
input's dtype, so float32 data stay float32 and the inverse is exact to that dtype's round-off.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from hepae.errors import FeatureSetError, NotFittedError

transform_registry: dict[str, type[Transform]] = {}


def register_transform(cls: type[Transform]) -> type[Transform]:
    """Class decorator: make ``cls`` constructible from configs with ``id == cls.transform_id``."""
    transform_registry[cls.transform_id] = cls
    return cls


def get_transform(config: dict[str, Any]) -> Transform:
    """Build a transform from its config (parameters and, if present, fitted values)."""
    config = dict(config)
    transform_id = config.pop("id", None)
    if transform_id not in transform_registry:
        raise FeatureSetError(
            f"unknown normalization id {transform_id!r}; known: {sorted(transform_registry)}"
        )
    return transform_registry[transform_id].from_config(config)


class Transform(ABC):
    """An invertible, JSON-serializable transform of one column."""

    transform_id: ClassVar[str]

    # -- parameters and fitted state ------------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        if cls.__init__ is object.__init__:
            return []
        parameters = inspect.signature(cls.__init__).parameters.values()
        return [p.name for p in parameters if p.name != "self" and p.kind is p.POSITIONAL_OR_KEYWORD]

    def _finish_fit(self) -> None:
        """Hook: turn statistics gathered by ``partial_fit`` into fitted ``*_`` values (if lazy)."""

    def _fitted_names(self) -> list[str]:
        self._finish_fit()
        return sorted(k for k in vars(self) if k.endswith("_") and not k.startswith("_"))

    def get_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._param_names()}

    def get_config(self) -> dict[str, Any]:
        """``{"id": ..., parameters..., fitted values...}``, plain JSON types only."""
        config: dict[str, Any] = {"id": self.transform_id}
        for key, value in {**self.get_params(), **{k: getattr(self, k) for k in self._fitted_names()}}.items():
            config[key] = value.item() if isinstance(value, np.generic) else value
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Transform:
        params = {k: v for k, v in config.items() if k in cls._param_names()}
        unknown = set(config) - set(params) - {k for k in config if k.endswith("_")}
        if unknown:
            raise FeatureSetError(f"normalization {cls.transform_id!r} got unknown keys {sorted(unknown)}")
        transform = cls(**params)
        for key, value in config.items():
            if key.endswith("_"):
                setattr(transform, key, value)
        return transform

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.get_config() == other.get_config()  # type: ignore[union-attr]

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    # -- the scikit-learn methods -----------------------------------------------------------------
    @property
    def requires_fit(self) -> bool:
        """Whether :meth:`fit` must see data before the transform can be applied."""
        return False

    def is_fitted(self) -> bool:
        return not self.requires_fit or bool(self._fitted_names())

    def check_is_fitted(self) -> None:
        if not self.is_fitted():
            raise NotFittedError(f"{type(self).__name__} must be fitted on training data before use")

    def partial_fit(self, x: np.ndarray) -> Transform:
        """Update fitted statistics with one more chunk of training data (no-op if stateless)."""
        return self

    def fit(self, x: np.ndarray) -> Transform:
        for key in self._fitted_names():
            delattr(self, key)
        return self.partial_fit(x)

    def fit_transform(self, x: np.ndarray) -> np.ndarray:
        return self.fit(x).transform(x)

    def transform(self, x: np.ndarray) -> np.ndarray:
        self.check_is_fitted()
        x = np.asarray(x)
        return self._forward(x.astype(np.float64, copy=False)).astype(x.dtype, copy=False)

    def inverse_transform(self, y: np.ndarray) -> np.ndarray:
        self.check_is_fitted()
        y = np.asarray(y)
        return self._inverse(y.astype(np.float64, copy=False)).astype(y.dtype, copy=False)

    def domain_violations(self, x: np.ndarray) -> np.ndarray:
        """Boolean mask of values the forward transform cannot represent (default: non-finite)."""
        return ~np.isfinite(x)

    def describe_domain(self) -> str:
        """Human description of the valid input domain, for error messages."""
        return "finite values"

    @abstractmethod
    def _forward(self, x: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def _inverse(self, y: np.ndarray) -> np.ndarray: ...
