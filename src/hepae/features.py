"""Feature sets: which jagged branches of which tree become the columns of the tensor.

A feature set is data, not code: a JSON document following ``schemas/featureset.schema.json``. The
built-in ones ship in ``hepae/schemas/featuresets/``; a user passes a name (``"atlas-jets-4d"``) or the
path of an own JSON file anywhere a feature set is expected.

Two optional parts change how the columns map to stored branches: ``select`` compresses only the
objects whose integer type branch has given values (e.g. only jets among DarkMachines objects) and
carries the others exactly; ``representation: cartesian`` reads ``px, py, pz, E`` branches and gives
the network ``pt, eta, phi, m`` computed with :mod:`vector` (written back as ``px, py, pz, E``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from os import PathLike
from typing import Any

import numpy as np

from hepae.errors import FeatureSetError
from hepae.schema import builtin_names, read_named_document, validate
from hepae.transforms import ColumnTransform, Quantile, Standard, get_transform

MAX_FEATURESET_BYTES = 16 * 2**20
"""Largest feature-set JSON file read (the built-in ones are a few kB)."""

NORMALIZATIONS = ("featureset", "standard", "quantile")
"""Choices of :func:`FeatureSet.make_normalization`: the per-column configs declared in the feature
set (the seed's custom constants for the built-ins), or one fitted transform for every column:
mean/std scaling, or a quantile map to uniform [-1, 1]."""


@dataclass(frozen=True)
class Column:
    """One tensor column: a per-object branch with its unit, dtype and normalization."""

    name: str
    unit: str
    dtype: str
    residual: str
    normalization: dict[str, Any]
    branch: str = ""  # empty when the feature set has a representation
    label: str = ""
    lossless: bool = False


CARTESIAN_COLUMNS = ("pt", "eta", "phi", "m")
CARTESIAN_BRANCHES = ("px", "py", "pz", "E")


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
    select: dict[str, Any] | None = None
    representation: dict[str, str] | None = None
    source: str = field(default="", compare=False)

    @classmethod
    def from_dict(cls, document: dict[str, Any], source: str = "<dict>") -> FeatureSet:
        validate(document, "featureset.schema.json", what=f"feature set {source}")
        columns = tuple(Column(**c) for c in document["columns"])
        for attr in ("name", "branch"):
            values = [getattr(c, attr) for c in columns if getattr(c, attr)]
            duplicates = sorted({v for v in values if values.count(v) > 1})
            if duplicates:
                raise FeatureSetError(f"feature set {source}: duplicate column {attr}(s) {duplicates}")
        for column in columns:  # fail now, not in the middle of training
            get_transform(column.normalization)
        representation, select = document.get("representation"), document.get("select")
        if representation is not None:
            names = tuple(c.name for c in columns)
            if sorted(names) != sorted(CARTESIAN_COLUMNS) or any(c.branch or c.lossless for c in columns):
                raise FeatureSetError(
                    f"feature set {source}: with a cartesian representation the columns must be "
                    f"{', '.join(CARTESIAN_COLUMNS)} (any order), without 'branch' or 'lossless'; found {list(names)}"
                )
        else:
            missing = [c.name for c in columns if not c.branch]
            if missing:
                raise FeatureSetError(f"feature set {source}: column(s) {missing} have no 'branch'")
        if select is not None and select["branch"] in [c.branch for c in columns if not c.lossless]:
            raise FeatureSetError(
                f"feature set {source}: the selection branch '{select['branch']}' must be carried exactly, "
                "not be one of the compressed columns"
            )
        return cls(
            name=document["name"],
            tree=document["tree"],
            columns=columns,
            counter=document.get("counter"),
            collection=document.get("collection", ""),
            layout=document.get("layout", "custom"),
            description=document.get("description", ""),
            select=select,
            representation=representation,
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
        if self.select is not None:
            document["select"] = dict(self.select)
        if self.representation is not None:
            document["representation"] = dict(self.representation)
        for c in self.columns:
            column = {k: getattr(c, k) for k in ("name", "branch", "unit", "dtype", "residual")}
            if not c.branch:
                del column["branch"]
            if c.label:
                column["label"] = c.label
            if c.lossless:
                column["lossless"] = True
            column["normalization"] = dict(c.normalization)
            document["columns"].append(column)
        return document

    @property
    def branches(self) -> list[str]:
        """The collection's stored branches that the columns come from (``px, py, pz, E`` if cartesian)."""
        if self.representation is not None:
            return [self.representation[k] for k in CARTESIAN_BRANCHES]
        return [c.branch for c in self.columns]

    @property
    def input_branches(self) -> list[str]:
        """Every branch read to build the tensor: :attr:`branches` and the selection branch."""
        return self.branches + ([self.select["branch"]] if self.select is not None else [])

    @property
    def compressed_branches(self) -> list[str]:
        """Branches replaced by the latent code (all but the ``lossless`` columns)."""
        if self.representation is not None:
            return self.branches
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


def list_featuresets() -> list[FeatureSet]:
    """All built-in feature sets, sorted by name."""
    return [load_featureset(n) for n in builtin_names("featuresets")]


def load_featureset(spec: str | PathLike[str] | FeatureSet | dict[str, Any]) -> FeatureSet:
    """A feature set from a built-in name, a JSON file path, a dict, or an existing :class:`FeatureSet`."""
    if isinstance(spec, FeatureSet):
        return spec
    if isinstance(spec, dict):
        return FeatureSet.from_dict(spec)
    document, source = read_named_document(str(spec), "featuresets", noun="feature set", error=FeatureSetError,
                                           max_bytes=MAX_FEATURESET_BYTES)
    return FeatureSet.from_dict(document, source=source)
