"""Reading: turn a feature set's jagged branches into a ``(n_objects, D)`` tensor plus per-event
counts (and back), check that a table holds the collection, and stream the tensor from files.

Opening files and iterating their tables is :mod:`hepae.io.sources`' job.
"""

from __future__ import annotations

import glob
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import awkward as ak
import numpy as np
import vector

from hepae.errors import BranchNotFoundError, BranchTypeError, InputFileError, close_matches
from hepae.features import CARTESIAN_BRANCHES, FeatureSet, load_featureset
from hepae.io.branches import TreeLayout, counts_and_values
from hepae.io.sources import DEFAULT_STEP_SIZE, PathArg, get_tree, iterate_arrays, open_root, open_source

__all__ = [
    "DEFAULT_STEP_SIZE", "CollectionChunk", "check_collection", "collection_to_tensor", "expand_inputs",
    "get_tree", "iterate_arrays", "iterate_collection", "open_root", "select_objects", "selection_mask",
    "tensor_to_collection",
]


def expand_inputs(inputs: PathArg | Sequence[PathArg]) -> list[Path]:
    """Paths and glob patterns (``'data/*.root'``) -> sorted, de-duplicated list of files."""
    patterns = [inputs] if isinstance(inputs, (str, PathLike)) else list(inputs)
    files: list[Path] = []
    for pattern in patterns:
        text = str(pattern)
        matches = sorted(glob.glob(text)) if glob.has_magic(text) else [text]
        if not matches:
            raise InputFileError(f"no file matches {text!r}")
        files.extend(Path(m) for m in matches)
    return list(dict.fromkeys(files))


def check_collection(layout: TreeLayout, featureset: FeatureSet, path: PathArg) -> str:
    """Check that the feature set's branches exist, are jagged numbers and share one counter.

    Returns the counter name the collection is written with.
    """
    available = layout.all_names()
    column_of = {c.branch: f"column '{c.name}'" for c in featureset.columns if c.branch}
    if featureset.representation is not None:
        column_of = {featureset.representation[k]: f"cartesian '{k}'" for k in CARTESIAN_BRANCHES}
    if featureset.select is not None:
        column_of[featureset.select["branch"]] = "selection"
    counters = set()
    for branch, role in column_of.items():
        if branch not in available:
            hint = close_matches(branch, available)
            raise BranchNotFoundError(
                f"branch '{branch}' ({role} of feature set '{featureset.name}') "
                f"is not in tree '{layout.name}' of {path}"
                + (f"; close matches: {hint}" if hint else "")
            )
        if branch in layout.unsupported:
            raise BranchTypeError(f"branch '{branch}' in {path} has an unsupported type: {layout.unsupported[branch]}")
        if branch in layout.counters:
            raise BranchTypeError(f"branch '{branch}' in {path} is a counter, expected per-object values")
        spec = layout.spec(branch)
        kind = np.dtype(spec.dtype) if spec.numeric else None
        if not spec.jagged or kind is None or kind.subdtype is not None or kind.kind not in "fiub":
            what = "a jagged (per-object) array of numbers"
            found = f"jagged {spec.dtype}" if spec.jagged else f"one {spec.dtype} per event"
            if not spec.numeric:
                found = f"values of type {ak.forms.from_json(spec.form).type}"
            raise BranchTypeError(f"branch '{branch}' in {path} holds {found}; expected {what}")
        if role == "selection" and kind.kind not in "iub":
            raise BranchTypeError(f"selection branch '{branch}' in {path} holds {spec.dtype}; expected integers")
        counters.add(spec.counter)
    if len(counters) != 1:
        raise BranchTypeError(
            f"the branches of feature set '{featureset.name}' in {path} use different counters {sorted(counters)}; "
            "a feature set must describe one collection"
        )
    counter = counters.pop()
    if featureset.counter is not None and featureset.counter != counter:
        if featureset.counter not in available:
            raise BranchNotFoundError(
                f"counter branch '{featureset.counter}' of feature set '{featureset.name}' is not in "
                f"tree '{layout.name}' of {path}"
            )
        raise BranchTypeError(
            f"feature set '{featureset.name}' expects counter '{featureset.counter}', but the branches in {path} "
            f"are counted by '{counter}'"
        )
    return counter


def _counts(
    arrays: dict[str, ak.Array], branches: Sequence[str], source: PathArg | None = None, entry_start: int = 0
) -> np.ndarray:
    """Per-event object counts, the same for every branch of one collection.

    Parameters
    ----------
    arrays
        One chunk, ``{branch: jagged array}``.
    branches
        The collection's branches (an RNTuple stores each field's counts, which may disagree).
    source, entry_start
        The file the chunk comes from and the index of its first event, for the message.

    Raises
    ------
    BranchTypeError
        Two branches differ in their number of objects; the message names the file and the first event.
    """
    counts = counts_and_values(arrays[branches[0]])[0]
    for branch in branches[1:]:
        other = counts_and_values(arrays[branch])[0]
        if np.array_equal(other, counts):
            continue
        n = min(len(other), len(counts))
        differ = np.flatnonzero(other[:n] != counts[:n])
        event = int(differ[0]) if len(differ) else n
        found = f" ({counts[event]} and {other[event]})" if event < n else ""
        where = f" in {source}" if source is not None else ""
        of = "" if source is not None else " of a chunk"
        raise BranchTypeError(
            f"branches '{branches[0]}' and '{branch}'{where} have different numbers of objects in event "
            f"{entry_start + event}{of}{found}; they cannot be one collection (expected equal counts per event)"
        )
    return counts


def collection_to_tensor(
    arrays: dict[str, ak.Array], featureset: FeatureSet, dtype: np.dtype | str | None = None, *,
    source: PathArg | None = None, entry_start: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """``(values, counts)``: a C-contiguous ``(n_objects, D)`` array and per-event object counts.

    All objects of the collection, selected or not (see :func:`select_objects`). ``dtype`` defaults to
    the feature set's; :func:`tensor_dtype` gives the one that keeps a file's values unchanged.
    ``source`` (the file) and ``entry_start`` (the chunk's first event) name where the branches'
    object counts disagree, if they do (:class:`BranchTypeError`).
    """
    branches = featureset.branches
    counts = _counts(arrays, [b for b in featureset.input_branches if b in arrays], source, entry_start)
    stored = {b: counts_and_values(arrays[b])[1] for b in branches}
    if featureset.representation is not None:
        r = featureset.representation
        momenta = vector.array({k: stored[r[k]].astype(np.float64) for k in CARTESIAN_BRANCHES})
        stored = {"pt": momenta.pt, "eta": momenta.eta, "phi": momenta.phi, "m": momenta.mass}
    values = np.empty((int(counts.sum()), len(featureset.columns)), dtype=dtype or featureset.dtype)
    for j, column in enumerate(featureset.columns):
        values[:, j] = stored[column.branch or column.name]
    return values, counts


def tensor_dtype(layout: TreeLayout, featureset: FeatureSet) -> np.dtype:
    """The dtype that holds every value of the collection's branches in ``layout`` unchanged: float64 if
    the feature set asks for it or a compressed branch is float64 (or an integer of 32 bits or more,
    which float32 cannot hold exactly), else float32."""
    for branch in featureset.compressed_branches:
        dtype = np.dtype(layout.spec(branch).dtype)
        if (dtype.kind == "f" and dtype.itemsize > 4) or (dtype.kind in "iu" and dtype.itemsize >= 4):
            return np.dtype("float64")
    return featureset.dtype


def tensor_to_collection(
    values: np.ndarray, counts: np.ndarray, featureset: FeatureSet, dtypes: dict[str, str] | None = None
) -> dict[str, ak.Array]:
    """Inverse of :func:`collection_to_tensor`: ``{branch: jagged array}`` with the given dtypes."""
    flat = {column.branch or column.name: values[:, j] for j, column in enumerate(featureset.columns)}
    if featureset.representation is not None:
        r = featureset.representation
        momenta = vector.array({k: flat[k].astype(np.float64) for k in ("pt", "eta", "phi")}
                               | {"mass": flat["m"].astype(np.float64)})
        flat = {r["px"]: momenta.px, r["py"]: momenta.py, r["pz"]: momenta.pz, r["E"]: momenta.E}
    dtype_of = {c.branch: c.dtype for c in featureset.columns} | (dtypes or {})
    return {b: ak.unflatten(np.ascontiguousarray(flat[b], dtype=np.dtype(dtype_of.get(b, featureset.dtype))), counts)
            for b in featureset.branches}


def selection_mask(arrays: dict[str, ak.Array], featureset: FeatureSet) -> np.ndarray | None:
    """Per object (flat), whether the feature set's ``select`` takes it; ``None`` without a selection."""
    if featureset.select is None:
        return None
    types = ak.to_numpy(ak.flatten(arrays[featureset.select["branch"]], axis=1))
    return np.isin(types, np.asarray(featureset.select["values"]))


def select_objects(
    values: np.ndarray, counts: np.ndarray, mask: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """The selected rows of ``values`` and their per-event counts (everything if ``mask`` is None)."""
    if mask is None:
        return values, counts
    event = np.repeat(np.arange(len(counts)), counts)
    return values[mask], np.bincount(event[mask], minlength=len(counts)).astype(np.int64)


def unselected_values(arrays: dict[str, ak.Array], names: Sequence[str], mask: np.ndarray,
                      rest_counts: np.ndarray) -> dict[str, ak.Array]:
    """The objects ``mask`` does not select, per branch of ``names`` (``rest_counts`` of them per event):
    what a compressed file keeps exactly beside the selected, encoded ones."""
    rest = ~mask
    return {name: ak.unflatten(ak.to_numpy(ak.flatten(arrays[name], axis=1))[rest], rest_counts) for name in names}


def merge_selection(decoded: dict[str, ak.Array], kept: dict[str, ak.Array], selection: dict,
                    dtypes: dict[str, str]) -> tuple[dict[str, ak.Array], int]:
    """Inverse of :func:`select_objects` + :func:`unselected_values`: the decoded (selected) objects put
    back among the kept ones, in their original places. ``kept`` holds the selection's branch and the
    unselected values of each branch in ``dtypes``. Returns the branches and the number of objects;
    ValueError if the numbers do not match (damaged data)."""
    types = kept[selection["branch"]]
    all_counts = ak.to_numpy(ak.num(types, axis=1))
    mask = np.isin(ak.to_numpy(ak.flatten(types, axis=1)), np.asarray(selection["values"]))
    n_selected = int(mask.sum())
    merged_branches = dict(decoded)
    for name, dtype in dtypes.items():
        selected = ak.to_numpy(ak.flatten(decoded[name], axis=1))
        if len(selected) != n_selected:
            raise ValueError(f"{n_selected} objects are selected by '{selection['branch']}' but {len(selected)} "
                             "decoded")
        rest = ak.to_numpy(ak.flatten(kept[name], axis=1))
        if len(rest) != len(mask) - n_selected:
            raise ValueError(f"branch '{name}' keeps {len(rest)} unselected objects, not {len(mask) - n_selected}")
        merged = np.empty(len(mask), dtype=dtype)
        merged[mask] = selected
        merged[~mask] = rest
        merged_branches[name] = ak.unflatten(merged, all_counts)
    return merged_branches, len(mask)


@dataclass
class CollectionChunk:
    """One chunk of a collection: the tensor, its per-event counts, and where it came from."""

    values: np.ndarray
    counts: np.ndarray
    file_index: int
    entry_start: int


def iterate_collection(
    paths: PathArg | Sequence[PathArg], featureset: str | FeatureSet, step_size: int | str = DEFAULT_STEP_SIZE
) -> Iterator[CollectionChunk]:
    """Stream a feature set's tensor (selected objects only) from one or several files, chunk by chunk."""
    featureset = load_featureset(featureset)
    paths = [paths] if isinstance(paths, (str, PathLike)) else list(paths)
    if not paths:
        raise InputFileError("no input files given")
    for file_index, path in enumerate(paths):
        with open_source(path, featureset.tree) as source:
            check_collection(source.layout, featureset, path)
            entry_start = 0
            for arrays in source.iterate(featureset.input_branches, step_size):
                values, counts = collection_to_tensor(arrays, featureset, source=path, entry_start=entry_start)
                values, counts = select_objects(values, counts, selection_mask(arrays, featureset))
                yield CollectionChunk(values, counts, file_index, entry_start)
                entry_start += len(counts)
