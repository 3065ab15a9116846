"""What a TTree or an RNTuple holds, in the terms hepae writes it back: scalars, jagged groups sharing a
counter, counter branches, and branches that cannot be written back by uproot.

RNTuples have no counter branches: a jagged field gets a synthetic counter name (``n<collection>``) so
that the fields of one collection group together; any other field type (records, strings, doubly
jagged lists, ...) is carried with its awkward form.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import awkward as ak
import numpy as np
import uproot

AWKWARD_DTYPE = "awkward"
"""dtype of a :class:`BranchSpec` whose values are not numbers or lists of numbers (RNTuple only)."""


@dataclass(frozen=True)
class BranchSpec:
    """A writable branch: its name, its (native byte order) dtype, and its counter if jagged.

    ``dtype`` may carry a fixed inner shape (``"(3,)f4"``-style) for fixed-size array branches, or be
    ``"awkward"`` for an RNTuple field of any other type; ``form`` is then its awkward form (JSON).
    """

    name: str
    dtype: str
    counter: str | None = None
    form: str | None = None

    @property
    def numeric(self) -> bool:
        return self.dtype != AWKWARD_DTYPE

    @property
    def jagged(self) -> bool:
        return self.counter is not None

    @property
    def numpy_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)

    def to_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "dtype": self.dtype, "counter": self.counter}
        if self.form is not None:
            out["form"] = self.form
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BranchSpec:
        return cls(d["name"], d["dtype"], d.get("counter"), d.get("form"))

    def awkward_form(self) -> ak.forms.Form:
        """The awkward form of one entry-level array of this branch."""
        if self.form is not None:
            return ak.forms.from_json(self.form)
        dtype = self.numpy_dtype
        base, shape = (dtype.subdtype if dtype.subdtype is not None else (dtype, ()))
        form: ak.forms.Form = ak.forms.NumpyForm(ak.types.numpytype.dtype_to_primitive(base), inner_shape=shape)
        return ak.forms.ListOffsetForm("i64", form) if self.jagged else form


@dataclass
class TreeLayout:
    """The branches of one TTree, in file order, classified for rewriting."""

    name: str
    num_entries: int
    format: str = "ttree"  # or "rntuple"
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
    """Counter name for a jagged branch stored without one (``std::vector``, RNTuple): ``n<collection>``."""
    for separator in (":", "."):
        if separator in name:
            return f"n{name.rsplit(separator, 1)[0]}"
    return f"n{name.split('_', 1)[0]}"


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
        ) and interpretation.content.to_dtype.subdtype is not None:
            layout.unsupported[name] = (f"{branch.typename} (a variable number of fixed-size arrays per entry) "
                                        "cannot be written back by uproot: it writes baskets it cannot read")
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


def describe_ntuple(ntuple: Any) -> TreeLayout:
    """Classify every top-level field of an uproot RNTuple.

    Numbers and lists of numbers become ordinary specs (jagged ones with a synthetic counter); every
    other field keeps its awkward form, so that an RNTuple of the same type can be written.
    """
    layout = TreeLayout(name=ntuple.name, num_entries=int(ntuple.num_entries), format="rntuple")
    record = ntuple.to_akform()[0]
    for name, form in zip(record.fields, record.contents):
        if isinstance(form, ak.forms.NumpyForm) and not form.parameters and not form.inner_shape:
            spec = BranchSpec(name, _dtype_string(ak.types.numpytype.primitive_to_dtype(form.primitive)))
        elif (isinstance(form, ak.forms.ListOffsetForm) and not form.parameters
              and isinstance(form.content, ak.forms.NumpyForm) and not form.content.parameters
              and not form.content.inner_shape):
            dtype = _dtype_string(ak.types.numpytype.primitive_to_dtype(form.content.primitive))
            spec = BranchSpec(name, dtype, _synthetic_counter(name))
        else:
            spec = BranchSpec(name, AWKWARD_DTYPE, None, _compact_form(form))
        layout.branches.append(spec)
    return layout


def _compact_form(form: ak.forms.Form) -> str:
    """Short JSON of a form, without uproot's column keys (they describe the input file, not the type)."""
    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k != "form_key"}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node
    return json.dumps(strip(form.to_dict(verbose=False)), separators=(",", ":"))


def counts_and_values(array: ak.Array) -> tuple[np.ndarray, np.ndarray]:
    """A jagged array of numbers (one level of lists per event) as its per-event counts (int64) and its values,
    flat: what ``ak.num(array, axis=1)`` and ``ak.flatten(array, axis=1)`` give, without their overhead where the
    array is the offsets and contiguous numbers that uproot reads (a view of its values then, not a copy)."""
    layout = array.layout
    if isinstance(layout, ak.contents.ListOffsetArray) and isinstance(layout.content, ak.contents.NumpyArray) \
            and layout.content.data.ndim == 1 and not layout.parameters and not layout.content.parameters:
        offsets = np.asarray(layout.offsets.data, dtype=np.int64)
        return np.diff(offsets), np.asarray(layout.content.data)[offsets[0]:offsets[-1]]
    return ak.to_numpy(ak.num(array, axis=1)).astype(np.int64), ak.to_numpy(ak.flatten(array, axis=1))
