"""Feature sets: which jagged branches of which tree become the columns of the tensor.

A feature set is data, not code: a JSON document following ``schemas/featureset.schema.json``. The
built-in ones ship in ``hepae/schemas/featuresets/``; a user passes a name (``"atlas-jets-4d"``) or the
path of an own JSON file anywhere a feature set is expected.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from hepae.errors import FeatureSetError
from hepae.schema import validate
from hepae.transforms import ColumnTransform, Quantile, Standard, get_transform

NORMALIZATIONS = ("featureset", "standard", "quantile")
"""Choices of :func:`FeatureSet.make_normalization`: the per-column configs declared in the feature
set (the seed's custom constants for the built-ins), or one fitted transform for every column:
mean/std scaling, or a quantile map to uniform [-1, 1]."""


@dataclass(frozen=True)
class Column:
    """One tensor column: a per-object branch with its unit, dtype and normalization."""

    name: str
    branch: str
    unit: str
    dtype: str
    residual: str
    normalization: dict[str, Any]
    label: str = ""
    lossless: bool = False


@dataclass(frozen=True)
class FeatureSet:
    """A validated feature-set definition (see ``schemas/featureset.schema.json``)."""

    name: str
    tree: str
    columns: tuple[Column, ...]
    counter: str | None = None
    collection: str = ""
    layout: str = "custom"
    description: str = ""
    source: str = field(default="", compare=False)

    @classmethod
    def from_dict(cls, document: dict[str, Any], source: str = "<dict>") -> FeatureSet:
        validate(document, "featureset.schema.json", what=f"feature set {source}")
        columns = tuple(Column(**c) for c in document["columns"])
        for attr in ("name", "branch"):
            values = [getattr(c, attr) for c in columns]
            duplicates = sorted({v for v in values if values.count(v) > 1})
            if duplicates:
                raise FeatureSetError(f"feature set {source}: duplicate column {attr}(s) {duplicates}")
        for column in columns:  # fail now, not in the middle of training
            get_transform(column.normalization)
        return cls(
            name=document["name"],
            tree=document["tree"],
            columns=columns,
            counter=document.get("counter"),
            collection=document.get("collection", ""),
            layout=document.get("layout", "custom"),
            description=document.get("description", ""),
            source=source,
        )

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "name": self.name,
            "format_version": 1,
            "description": self.description,
            "layout": self.layout,
            "tree": self.tree,
            "collection": self.collection,
            "counter": self.counter,
            "columns": [],
        }
        for c in self.columns:
            column = {k: getattr(c, k) for k in ("name", "branch", "unit", "dtype", "residual")}
            if c.label:
                column["label"] = c.label
            if c.lossless:
                column["lossless"] = True
            column["normalization"] = dict(c.normalization)
            document["columns"].append(column)
        return document

    @property
    def branches(self) -> list[str]:
        return [c.branch for c in self.columns]

    @property
    def compressed_branches(self) -> list[str]:
        """Branches replaced by the latent code (all but the ``lossless`` columns)."""
        return [c.branch for c in self.columns if not c.lossless]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def n_features(self) -> int:
        return len(self.columns)

    @property
    def dtype(self) -> np.dtype:
        """Tensor dtype: float64 only if a column asks for it, else float32."""
        return np.dtype("float64" if any(c.dtype == "float64" for c in self.columns) else "float32")

    def make_normalization(self, kind: str = "featureset") -> ColumnTransform:
        """A fresh (unfitted) per-column normalization: ``"featureset"`` or ``"standard"``."""
        if kind == "featureset":
            transforms = [get_transform(c.normalization) for c in self.columns]
        elif kind == "standard":
            transforms = [Standard() for _ in self.columns]
        elif kind == "quantile":
            transforms = [Quantile() for _ in self.columns]
        else:
            raise FeatureSetError(f"unknown normalization {kind!r}; choose one of {NORMALIZATIONS}")
        return ColumnTransform(transforms, self.column_names)


def _builtin_dir():
    return resources.files("hepae").joinpath("schemas").joinpath("featuresets")


def list_featuresets() -> list[FeatureSet]:
    """All built-in feature sets, sorted by name."""
    names = sorted(p.name[: -len(".json")] for p in _builtin_dir().iterdir() if p.name.endswith(".json"))
    return [load_featureset(n) for n in names]


def load_featureset(spec: str | PathLike[str] | FeatureSet | dict[str, Any]) -> FeatureSet:
    """A feature set from a built-in name, a JSON file path, a dict, or an existing :class:`FeatureSet`."""
    if isinstance(spec, FeatureSet):
        return spec
    if isinstance(spec, dict):
        return FeatureSet.from_dict(spec)
    text_spec = str(spec)
    builtin = _builtin_dir().joinpath(f"{text_spec}.json")
    if not text_spec.endswith(".json") and builtin.is_file():
        return FeatureSet.from_dict(json.loads(builtin.read_text(encoding="utf-8")), source=f"'{text_spec}'")
    path = Path(text_spec)
    if path.is_file():
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise FeatureSetError(f"feature set file {path} is not valid JSON: {err}") from None
        return FeatureSet.from_dict(document, source=str(path))
    known = sorted(p.name[: -len(".json")] for p in _builtin_dir().iterdir() if p.name.endswith(".json"))
    raise FeatureSetError(
        f"unknown feature set {text_spec!r}: neither a built-in name ({', '.join(known)}) nor an existing JSON file"
    )
