"""Reading: open trees with clear errors, iterate branches in chunks, and turn a feature set's jagged
branches into a ``(n_objects, D)`` tensor plus per-event counts (and back).
"""

from __future__ import annotations

import contextlib
import glob
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

from hepae.errors import (
    BranchNotFoundError,
    BranchTypeError,
    HepaeError,
    InputFileError,
    TreeNotFoundError,
    close_matches,
)
from hepae.features import FeatureSet, load_featureset
from hepae.layout import TreeLayout, describe_tree

DEFAULT_STEP_SIZE = "50 MB"
"""Default chunk size for streaming: an entry count (int) or a memory size string."""

PathArg = str | PathLike[str]


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


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


@contextlib.contextmanager
def open_root(path: PathArg) -> Iterator[uproot.ReadOnlyDirectory]:
    """``uproot.open`` with errors that say which file and what is wrong with it."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"input file {path} does not exist")
    if not path.is_file():
        raise InputFileError(f"input {path} is not a regular file")
    try:
        handle = uproot.open(path)
    except Exception as err:  # uproot raises many kinds on damaged files; all mean the same here
        raise InputFileError(f"{path} is not a readable ROOT file: {_first_line(err)}") from None
    with handle:
        yield handle


def get_tree(directory: uproot.ReadOnlyDirectory, tree_name: str, path: PathArg) -> uproot.TTree:
    """The TTree ``tree_name`` of an open file; :class:`TreeNotFoundError` lists the trees there."""
    try:
        classnames = directory.classnames(recursive=False)
    except Exception as err:
        raise InputFileError(f"cannot list the objects in {path} (damaged file?): {_first_line(err)}") from None
    trees = sorted({k.split(";")[0] for k, c in classnames.items() if c == "TTree"})
    others = {k.split(";")[0]: c for k, c in classnames.items()}
    if tree_name not in trees:
        if others.get(tree_name) == "ROOT::RNTuple":
            raise BranchTypeError(
                f"'{tree_name}' in {path} is an RNTuple; this version of hepae reads and writes TTrees only"
            )
        hint = f"; did you mean {close_matches(tree_name, trees)}" if close_matches(tree_name, trees) else ""
        raise TreeNotFoundError(
            f"no TTree '{tree_name}' in {path}; trees in the file: {trees or 'none'}{hint}"
        )
    try:
        return directory[tree_name]
    except Exception as err:  # corrupted TTree metadata
        raise InputFileError(f"cannot read TTree '{tree_name}' in {path} (damaged file?): {_first_line(err)}") from None


def check_collection(layout: TreeLayout, featureset: FeatureSet, path: PathArg) -> str:
    """Check that the feature set's branches exist, are jagged numbers and share one counter.

    Returns the counter name the collection is written with.
    """
    available = layout.all_names()
    counters = set()
    for column in featureset.columns:
        if column.branch not in available:
            hint = close_matches(column.branch, available)
            raise BranchNotFoundError(
                f"branch '{column.branch}' (column '{column.name}' of feature set '{featureset.name}') "
                f"is not in tree '{layout.name}' of {path}"
                + (f"; close matches: {hint}" if hint else "")
            )
        if column.branch in layout.unsupported:
            raise BranchTypeError(
                f"branch '{column.branch}' in {path} has an unsupported type: {layout.unsupported[column.branch]}"
            )
        if column.branch in layout.counters:
            raise BranchTypeError(f"branch '{column.branch}' in {path} is a counter, expected per-object values")
        spec = layout.spec(column.branch)
        kind = np.dtype(spec.dtype)
        if not spec.jagged or kind.subdtype is not None or kind.kind not in "fiub":
            what = "a jagged (per-object) array of numbers"
            found = f"jagged {spec.dtype}" if spec.jagged else f"one {spec.dtype} per event"
            raise BranchTypeError(f"branch '{column.branch}' in {path} holds {found}; expected {what}")
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


def iterate_arrays(
    tree: uproot.TTree, names: Sequence[str], step_size: int | str = DEFAULT_STEP_SIZE
) -> Iterator[dict[str, ak.Array]]:
    """Chunks of ``tree`` as ``{branch: array}``, in the order of ``names``; nothing else is read."""
    wanted = set(names)
    try:
        for chunk in tree.iterate(filter_name=lambda n: n in wanted, step_size=step_size, library="ak", how=dict):
            yield {n: chunk[n] for n in names}
    except HepaeError:
        raise
    except Exception as err:  # damaged baskets: decompression, deserialization, size errors
        raise InputFileError(
            f"cannot read tree '{tree.name}' of {tree.file.file_path} (damaged file?): {_first_line(err)}"
        ) from None


def collection_to_tensor(
    arrays: dict[str, ak.Array], featureset: FeatureSet
) -> tuple[np.ndarray, np.ndarray]:
    """``(values, counts)``: a C-contiguous ``(n_objects, D)`` array and per-event object counts."""
    branches = featureset.branches
    counts = ak.to_numpy(ak.num(arrays[branches[0]], axis=1)).astype(np.int64)
    for branch in branches[1:]:
        if not np.array_equal(ak.to_numpy(ak.num(arrays[branch], axis=1)), counts):
            raise BranchTypeError(
                f"branches '{branches[0]}' and '{branch}' have different numbers of objects per event; "
                f"they cannot be one collection"
            )
    values = np.empty((int(counts.sum()), len(branches)), dtype=featureset.dtype)
    for j, branch in enumerate(branches):
        values[:, j] = ak.to_numpy(ak.flatten(arrays[branch], axis=1))
    return values, counts


def tensor_to_collection(
    values: np.ndarray, counts: np.ndarray, featureset: FeatureSet, dtypes: dict[str, str] | None = None
) -> dict[str, ak.Array]:
    """Inverse of :func:`collection_to_tensor`: ``{branch: jagged array}`` with the given dtypes."""
    out = {}
    for j, column in enumerate(featureset.columns):
        dtype = np.dtype((dtypes or {}).get(column.branch, column.dtype))
        out[column.branch] = ak.unflatten(np.ascontiguousarray(values[:, j], dtype=dtype), counts)
    return out


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
    """Stream a feature set's tensor from one or several files, chunk by chunk."""
    featureset = load_featureset(featureset)
    paths = [paths] if isinstance(paths, (str, PathLike)) else list(paths)
    if not paths:
        raise InputFileError("no input files given")
    for file_index, path in enumerate(paths):
        with open_root(path) as directory:
            tree = get_tree(directory, featureset.tree, path)
            check_collection(describe_tree(tree), featureset, path)
            entry_start = 0
            for arrays in iterate_arrays(tree, featureset.branches, step_size):
                values, counts = collection_to_tensor(arrays, featureset)
                yield CollectionChunk(values, counts, file_index, entry_start)
                entry_start += len(counts)
