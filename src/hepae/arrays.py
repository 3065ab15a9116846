"""Read compressed files in place, as uproot reads ROOT files: no decompressed copy on disk.

* :func:`open`: the original table of a compressed file, as an object that behaves like an uproot
  tree (``keys``, ``num_entries``, ``arrays``, ``iterate``, ``tree["branch"].array()``); for a
  plain ROOT file, uproot's own tree.
* :func:`iterate`: like ``uproot.iterate``, over compressed and plain ROOT files alike.
* :func:`dask`: a lazy dask-awkward collection over compressed (and plain) files, one partition per
  compressed chunk, for coffea-style analyses on a Dask cluster (needs the ``dask`` extra).

What is read: a request for branches the compressed file carries exactly reads just those branches,
as uproot would (no hepae checksum is checked then; :meth:`CompressedTree.verify` checks
everything). A request that includes a branch of the compressed collection decodes only the chunks
that overlap the entry range; each such chunk is verified against its checksum first (which reads
all of the chunk's stored rows), exactly as ``hepae decompress`` does, and a damaged chunk raises the
same error, naming the file and the chunk. Values equal those of ``hepae decompress``'s output.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from hepae.container import ContainerReader, is_container
from hepae.errors import ContainerFormatError, TreeNotFoundError
from hepae.io.sources import RNTUPLE_CLASS, PathArg, check_input_file, open_root
from hepae.io.tensors import expand_inputs

NameFilter = str | Sequence[str] | Callable[[str], bool] | None


def _matcher(filter_name: NameFilter) -> Callable[[str], bool]:
    """uproot's ``filter_name``: a glob (or ``/regex/``), a list of them, or a function; None takes all."""
    if filter_name is None:
        return lambda name: True
    if callable(filter_name):
        return filter_name
    patterns = [filter_name] if isinstance(filter_name, str) else list(filter_name)
    tests = []
    for pattern in patterns:
        regex = re.fullmatch(r"/(.*)/([iLmsux]*)", pattern)
        if regex:  # uproot's "/regex/flags": matched from the start of the name
            flags = sum(getattr(re, {"i": "I", "L": "L", "m": "M", "s": "S", "u": "U", "x": "X"}[f]) for f in regex[2])
            tests.append(lambda name, r=re.compile(regex[1], flags): r.match(name) is not None)
        else:
            tests.append(lambda name, p=pattern: fnmatch.fnmatchcase(name, p))
    return lambda name: any(test(name) for test in tests)


class CompressedTree:
    """The original table of a hepae compressed file, read in place (a context manager).

    Parameters
    ----------
    path : path-like
        A compressed file (``hepae compress``'s output).
    device : str
        Where the embedded decoder runs, for files whose chunks need it (``"cpu"``, ``"cuda"``, ``"auto"``).
    """

    def __init__(self, path: PathArg, device: str = "cpu") -> None:
        self._reader = ContainerReader(path)
        self.path = self._reader.path
        self._device = device
        self._codec: Any = None
        self._last: tuple[int, dict[str, Any]] | None = None  # the last chunk decoded: steps within a chunk

    def __enter__(self) -> CompressedTree:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._reader.close()

    def __repr__(self) -> str:
        return f"<hepae CompressedTree '{self.name}' ({self.num_entries} entries) of {self.path}>"

    # -- like an uproot tree ------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The original table's name."""
        return self._reader.metadata["tree"]

    @property
    def num_entries(self) -> int:
        return int(self._reader.metadata["source"]["num_entries"])

    def keys(self, filter_name: NameFilter = None) -> list[str]:
        """The original table's branch names, in order, as uproot lists those of the decompressed file
        (for a TTree, each jagged branch's counter before the first branch it counts)."""
        match = _matcher(filter_name)
        return [n for n in self._layout[0] if match(n)]

    @functools.cached_property
    def _layout(self) -> tuple[list[str], dict[str, str]]:
        """The branch names, and each counter branch -> the first jagged branch it counts (TTree only)."""
        ttree = self._reader.table.storage == "ttree"
        keys: list[str] = []
        counted: dict[str, str] = {}
        for spec in self._reader.branches:
            if ttree and spec.counter is not None and spec.counter not in counted:
                counted[spec.counter] = spec.name
                keys.append(spec.counter)
            keys.append(spec.name)
        return keys, counted

    def __getitem__(self, name: str) -> CompressedBranch:
        if name not in self.keys():
            raise TreeNotFoundError(f"{self.path}: the table '{self.name}' has no branch '{name}'")
        return CompressedBranch(self, name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return self.num_entries

    def arrays(self, expressions: str | Sequence[str] | None = None, *, filter_name: NameFilter = None,
               entry_start: int | None = None, entry_stop: int | None = None, library: str = "ak",
               how: type | None = None) -> Any:
        """Branches over ``[entry_start, entry_stop)`` (negative values count from the end, as in uproot).

        Parameters
        ----------
        expressions : str or sequence of str, optional
            Branch names (no formulas); default: every branch ``filter_name`` takes.
        filter_name : glob, list of globs or callable, optional
        entry_start, entry_stop : int, optional
        library : {"ak", "np"}
            An awkward record array (``how=dict``: a dict of arrays), or a dict of numpy arrays
            (jagged branches as object arrays of arrays, as uproot gives them).
        """
        names = self._names(expressions, filter_name)
        start, stop = self._range(entry_start, entry_stop)
        arrays = self._read(names, start, stop)
        return _as_library(arrays, names, library, how, stop - start)

    def iterate(self, expressions: str | Sequence[str] | None = None, *, filter_name: NameFilter = None,
                step_size: int | None = None, entry_start: int | None = None, entry_stop: int | None = None,
                library: str = "ak", how: type | None = None) -> Iterator[Any]:
        """Consecutive entry ranges of ``step_size`` entries (default: the compressed file's own chunks)."""
        names = self._names(expressions, filter_name)
        start, stop = self._range(entry_start, entry_stop)
        if step_size is None:
            bounds = [b for b in self._reader.chunk_starts.tolist() if start < b < stop]
            edges = [start, *bounds, stop]
        else:
            if isinstance(step_size, bool) or not isinstance(step_size, int | np.integer) or step_size < 1:
                raise ValueError(f"step_size must be a positive number of entries for a compressed file, got "
                                 f"{step_size!r} (sizes like '100 MB' are for plain files; None: the file's chunks)")
            edges = [*range(start, stop, step_size), stop]
        for a, b in zip(edges[:-1], edges[1:]):
            if b > a:
                yield _as_library(self._read(names, a, b), names, library, how, b - a)

    def verify(self) -> None:
        """Check every checksum of the file (metadata, decoder, every chunk, carried objects)."""
        self._reader.verify()

    # -- reading ------------------------------------------------------------------------------------
    def _names(self, expressions: str | Sequence[str] | None, filter_name: NameFilter) -> list[str]:
        if expressions is None:
            return self.keys(filter_name)
        wanted = [expressions] if isinstance(expressions, str) else list(expressions)
        known = set(self.keys())
        unknown = [n for n in wanted if n not in known]
        if unknown:
            raise TreeNotFoundError(f"{self.path}: the table '{self.name}' has no branch(es) {unknown}; "
                                    f"it has {sorted(known)[:10]}...")
        match = _matcher(filter_name)
        return [n for n in wanted if match(n)]

    def _range(self, entry_start: int | None, entry_stop: int | None) -> tuple[int, int]:
        n = self.num_entries
        start = 0 if entry_start is None else (entry_start + n if entry_start < 0 else entry_start)
        stop = n if entry_stop is None else (entry_stop + n if entry_stop < 0 else entry_stop)
        start, stop = min(max(start, 0), n), min(max(stop, 0), n)
        return start, max(start, stop)

    def _read(self, names: list[str], start: int, stop: int) -> dict[str, ak.Array]:
        replaced = self._reader.decoded_branches
        counted = self._layout[1]
        decoded = {n for n in names if n in replaced or counted.get(n) in replaced}
        if not decoded:  # ordinary branches (and their counters): read as uproot reads them
            self._reader.stored_specs  # noqa: B018 - every branch the metadata lists is there
            if self._reader.table.num_entries != self.num_entries:
                raise ContainerFormatError(f"{self.path}: its table holds {self._reader.table.num_entries} entries, "
                                           f"the metadata says {self.num_entries} (file corrupted or edited)")
            try:
                return self._reader.table.read(names, start, stop) if names else {}
            except KeyError as err:
                raise ContainerFormatError(f"{self.path}: the branch {err} cannot be read (damaged file?)") from None
        starts = self._reader.chunk_starts
        first = int(np.searchsorted(starts, start, side="right")) - 1
        parts: dict[str, list[ak.Array]] = {n: [] for n in names}
        index = max(first, 0)
        while index < len(starts) - 1 and starts[index] < stop:
            data = self._decoded(index)
            lo, hi = max(start, int(starts[index])) - int(starts[index]), min(stop, int(starts[index + 1])) \
                - int(starts[index])
            for n in names:
                parts[n].append(data[n][lo:hi])
            index += 1
        if not parts[names[0]] and len(starts) > 1:  # an empty range: typed empty arrays, as uproot gives
            data = self._decoded(min(max(first, 0), len(starts) - 2))
            return {n: data[n][:0] for n in names}
        return {n: ak.concatenate(parts[n]) if len(parts[n]) > 1 else (parts[n][0] if parts[n] else ak.Array([]))
                for n in names}

    def _decoded(self, index: int) -> dict[str, Any]:
        """Chunk ``index``, verified and decoded: the original branches and their counters (the last one
        decoded is kept, so that steps smaller than a chunk decode it once)."""
        if self._last is not None and self._last[0] == index:
            return self._last[1]
        if self._codec is None and self._reader.has_collection:
            self._codec = self._reader.bound_codec(self._device)
        data, _ = self._reader.decode_chunk(self._reader.chunk(index), self._codec)
        out = {n: ak.Array(v) if not isinstance(v, ak.Array) else v for n, v in data.items()}
        for counter, branch in self._layout[1].items():
            out[counter] = ak.values_astype(ak.num(out[branch], axis=1), np.int32)
        self._last = (index, out)
        return out


class CompressedBranch:
    """One branch of a :class:`CompressedTree` (``tree["Jet_pt"].array()``)."""

    def __init__(self, tree: CompressedTree, name: str) -> None:
        self.tree, self.name = tree, name

    def array(self, *, entry_start: int | None = None, entry_stop: int | None = None, library: str = "ak") -> Any:
        """The branch's values over ``[entry_start, entry_stop)``: awkward, or numpy (``library="np"``)."""
        arrays = self.tree.arrays([self.name], entry_start=entry_start, entry_stop=entry_stop, library=library,
                                  how=dict)
        return arrays[self.name]

    def __repr__(self) -> str:
        return f"<hepae CompressedBranch '{self.name}' of {self.tree.path}>"


def _as_library(arrays: dict[str, ak.Array], names: list[str], library: str, how: type | None,
                n_entries: int = 0) -> Any:
    if how not in (None, dict, tuple, list):
        raise ValueError(f"how must be None, dict, tuple or list, got {how!r}")
    if library in ("ak", "awkward"):
        if how is None:
            return ak.zip({n: arrays[n] for n in names}, depth_limit=1) if names else \
                ak.Array(ak.contents.RecordArray([], [], length=n_entries))
        return how(arrays[n] for n in names) if how is not dict else {n: arrays[n] for n in names}
    if library in ("np", "numpy"):
        out = {n: _to_numpy(arrays[n]) for n in names}
        return out if how in (None, dict) else how(out[n] for n in names)
    raise ValueError(f"library must be 'ak' or 'np', got {library!r}")


def _to_numpy(array: ak.Array) -> np.ndarray:
    """As uproot's ``library="np"``: flat branches as arrays, jagged ones as object arrays of arrays."""
    if array.ndim == 1:
        return ak.to_numpy(array)
    counts = ak.to_numpy(ak.num(array, axis=1))
    flat = ak.to_numpy(ak.flatten(array, axis=1))
    out = np.empty(len(counts), dtype=object)
    out[:] = np.split(flat, np.cumsum(counts)[:-1]) if len(counts) else []
    return out


def _only_table(directory: Any, path: Path) -> str:
    tables = sorted({k.split(";")[0] for k, c in directory.classnames(recursive=False).items()
                     if c in ("TTree", RNTUPLE_CLASS)})
    if len(tables) != 1:
        raise TreeNotFoundError(f"{path} holds the tables {tables}; say which one (tree=...)")
    return tables[0]


def open(path: PathArg, tree: str | None = None, *, device: str = "cpu") -> Any:  # noqa: A001 - hepae.open, like uproot.open
    """A table to read: a :class:`CompressedTree` for a hepae compressed file, else the uproot TTree or
    RNTuple ``tree`` (the file's only table if not given) of a plain ROOT file.

    Close it when done (``with hepae.open(path) as t: ...`` for a compressed file).
    """
    path = check_input_file(path)
    with open_root(path) as directory:
        compressed = is_container(directory)
    if compressed:
        result = CompressedTree(path, device=device)
        if tree is not None and tree != result.name:
            name = result.name
            result.close()
            raise TreeNotFoundError(f"{path} is a compressed '{name}', not '{tree}'")
        return result
    import uproot

    handle = uproot.open(path)
    try:
        name = tree if tree is not None else _only_table(handle, path)
        if name not in handle.keys(cycle=False):
            raise TreeNotFoundError(f"{path} has no table '{name}'; it has {sorted(handle.keys(cycle=False))[:10]}")
        return handle[name]
    except BaseException:
        handle.close()
        raise


def iterate(files: PathArg | Sequence[PathArg], expressions: str | Sequence[str] | None = None, *,
            filter_name: NameFilter = None, step_size: int | None = None, tree: str | None = None,
            library: str = "ak", how: type | None = None, device: str = "cpu") -> Iterator[Any]:
    """Like ``uproot.iterate``, over compressed and plain ROOT files alike (paths or glob patterns).

    ``step_size`` is a number of entries (default: each compressed file's own chunks; 100 000 entries
    for plain files).
    """
    for path in expand_inputs(files):
        table = open(path, tree, device=device)
        if isinstance(table, CompressedTree):
            with table:
                yield from table.iterate(expressions, filter_name=filter_name, step_size=step_size,
                                         library=library, how=how)
        else:
            try:
                yield from table.iterate(expressions, filter_name=filter_name, step_size=step_size or 100_000,
                                         library=library, how=how)
            finally:
                table.file.close()


class _Partition:
    """Reads one partition of :func:`dask` (a callable dask-awkward maps over ``(file, start, stop)``)."""

    def __init__(self, names: list[str], tree: str | None, device: str) -> None:
        self.names, self.tree, self.device = names, tree, device

    def __call__(self, part: tuple[str, int, int]) -> ak.Array:
        path, start, stop = part
        table = open(path, self.tree, device=self.device)
        try:
            return table.arrays(self.names, entry_start=start, entry_stop=stop, library="ak")
        finally:
            table.close() if isinstance(table, CompressedTree) else table.file.close()


def dask(files: PathArg | Sequence[PathArg], expressions: str | Sequence[str] | None = None, *,
         filter_name: NameFilter = None, tree: str | None = None, step_size: int = 100_000,
         device: str = "cpu") -> Any:
    """A lazy ``dask_awkward.Array`` of the tables of ``files`` (compressed or plain ROOT, paths or globs).

    One partition per compressed chunk (per ``step_size`` entries of a plain file); each partition
    is read and decoded by a worker with :func:`open`. The branches are those of the first file
    (``expressions`` / ``filter_name``); every file must have them. Needs ``dask-awkward``
    (``pip install 'hepae[dask]'``).
    """
    try:
        import dask_awkward
    except ImportError:
        raise ImportError("hepae.dask needs dask-awkward: pip install 'hepae[dask]'") from None
    paths = expand_inputs(files)
    parts: list[tuple[str, int, int]] = []
    names: list[str] | None = None
    meta = None
    for path in paths:
        table = open(path, tree, device=device)
        try:
            if isinstance(table, CompressedTree):
                chosen = table._names(expressions, filter_name)
                edges = table._reader.chunk_starts.tolist()
            else:
                chosen = [expressions] if isinstance(expressions, str) else list(expressions or [])
                chosen = chosen or list(table.keys(filter_name=filter_name) if filter_name else table.keys())
                edges = [*range(0, table.num_entries, step_size), table.num_entries]
            if names is None:
                names = chosen
                sample = _Partition(names, tree, device)((str(path), 0, min(1, int(edges[-1]))))
                meta = ak.Array(sample.layout.to_typetracer(forget_length=True))
            parts += [(str(path), int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]
        finally:
            table.close() if isinstance(table, CompressedTree) else table.file.close()
    if not parts:
        raise ValueError(f"no entries to read in {[str(p) for p in paths]}")
    divisions = tuple(int(x) for x in np.concatenate([[0], np.cumsum([b - a for _, a, b in parts])]))
    return dask_awkward.from_map(_Partition(names or [], tree, device), parts, label="hepae-read", meta=meta,
                                 divisions=divisions)
