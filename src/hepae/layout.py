"""What a TTree holds, in the terms hepae writes it back: scalars, jagged groups sharing a counter,
counter branches, and branches that cannot be written to a TTree by uproot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import uproot


@dataclass(frozen=True)
class BranchSpec:
    """A writable branch: its name, its (native byte order) dtype, and its counter if jagged.

    ``dtype`` may carry a fixed inner shape (``"(3,)f4"``-style) for fixed-size array branches.
    """

    name: str
    dtype: str
    counter: str | None = None

    @property
    def jagged(self) -> bool:
        return self.counter is not None

    @property
    def numpy_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "counter": self.counter}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BranchSpec:
        return cls(d["name"], d["dtype"], d.get("counter"))


@dataclass
class TreeLayout:
    """The branches of one TTree, in file order, classified for rewriting."""

    name: str
    num_entries: int
    branches: list[BranchSpec] = field(default_factory=list)
    counters: dict[str, str] = field(default_factory=dict)  # counter name -> original dtype
    unsupported: dict[str, str] = field(default_factory=dict)  # branch name -> reason

    @property
    def names(self) -> list[str]:
        return [b.name for b in self.branches]

    def spec(self, name: str) -> BranchSpec:
        for b in self.branches:
            if b.name == name:
                return b
        raise KeyError(name)

    def all_names(self) -> list[str]:
        return self.names + list(self.counters) + list(self.unsupported)


def _dtype_string(dtype: np.dtype) -> str:
    dtype = np.dtype(dtype)
    if dtype.subdtype is not None:
        base, shape = dtype.subdtype
        return f"{shape}{base.newbyteorder('=').name}"
    return dtype.newbyteorder("=").name


def _synthetic_counter(name: str) -> str:
    """Counter name for a jagged branch stored without one (``std::vector``): ``n<collection>``."""
    prefix = name.rsplit(".", 1)[0] if "." in name else name.split("_", 1)[0]
    return f"n{prefix}"


def describe_tree(tree: uproot.TTree) -> TreeLayout:
    """Classify every top-level branch of ``tree``."""
    layout = TreeLayout(name=tree.name, num_entries=int(tree.num_entries))
    counter_dtypes: dict[str, str] = {}
    for branch in tree.branches:
        count_branch = branch.count_branch
        if count_branch is not None:
            counter_dtypes[count_branch.name] = _dtype_string(count_branch.interpretation.to_dtype)
    for branch in tree.branches:
        name = branch.name
        if name in counter_dtypes:
            layout.counters[name] = counter_dtypes[name]
            continue
        if len(branch.branches) > 0:
            layout.unsupported[name] = "split object branch with sub-branches"
            continue
        interpretation = branch.interpretation
        if isinstance(interpretation, uproot.interpretation.numerical.AsDtype):
            layout.branches.append(BranchSpec(name, _dtype_string(interpretation.to_dtype)))
        elif isinstance(interpretation, uproot.interpretation.jagged.AsJagged) and isinstance(
            interpretation.content, uproot.interpretation.numerical.AsDtype
        ):
            count_branch = branch.count_branch
            counter = count_branch.name if count_branch is not None else _synthetic_counter(name)
            layout.branches.append(BranchSpec(name, _dtype_string(interpretation.content.to_dtype), counter))
        else:
            kind = type(interpretation).__name__
            layout.unsupported[name] = f"{branch.typename} ({kind}) cannot be written to a TTree by uproot"
    return layout
