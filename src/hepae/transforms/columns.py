""":class:`ColumnTransform`: one transform per column of an ``(n_objects, D)`` array, with inverse."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from hepae.errors import ModelMismatchError, TransformDomainError
from hepae.transforms.base import Transform, get_transform


class ColumnTransform:
    """Apply ``transforms[j]`` to column ``j``; invertible, streaming-fittable, JSON-serializable.

    ``names`` (the feature-set column names) only serve error messages.
    """

    def __init__(self, transforms: Sequence[Transform], names: Sequence[str] | None = None):
        self.transforms = list(transforms)
        self.names = list(names) if names is not None else [f"column {j}" for j in range(len(self.transforms))]

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ColumnTransform:
        return cls([get_transform(c) for c in config["columns"]], config.get("names"))

    def get_config(self) -> dict[str, Any]:
        return {"names": self.names, "columns": [t.get_config() for t in self.transforms]}

    @property
    def n_columns(self) -> int:
        return len(self.transforms)

    def _check(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.n_columns:
            raise ModelMismatchError(f"expected an array of shape (n, {self.n_columns}), got {x.shape}")
        return x

    def check_domain(self, x: np.ndarray, where: str = "input") -> None:
        """Raise :class:`TransformDomainError` naming the column, count and an example bad value."""
        x = self._check(x)
        for j, (name, t) in enumerate(zip(self.names, self.transforms)):
            bad = t.domain_violations(x[:, j])
            if bad.any():
                example = float(x[:, j][bad][0])
                raise TransformDomainError(
                    f"{where}: {int(bad.sum())} value(s) of '{name}' lie outside the domain of its "
                    f"'{t.transform_id}' normalization (expects {t.describe_domain()}; e.g. {example!r}). "
                    "Choose another normalization for this column in the feature set."
                )

    def partial_fit(self, x: np.ndarray) -> ColumnTransform:
        x = self._check(x)
        for j, t in enumerate(self.transforms):
            t.partial_fit(x[:, j])
        return self

    def is_fitted(self) -> bool:
        return all(t.is_fitted() for t in self.transforms)

    def transform(self, x: np.ndarray) -> np.ndarray:
        x = self._check(x)
        out = np.empty_like(x)
        for j, t in enumerate(self.transforms):
            out[:, j] = t.transform(x[:, j])
        return out

    def inverse_transform(self, y: np.ndarray) -> np.ndarray:
        y = self._check(y)
        out = np.empty_like(y)
        for j, t in enumerate(self.transforms):
            out[:, j] = t.inverse_transform(y[:, j])
        return out

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ColumnTransform) and self.get_config() == other.get_config()

    def __repr__(self) -> str:
        return f"ColumnTransform({dict(zip(self.names, self.transforms))!r})"
