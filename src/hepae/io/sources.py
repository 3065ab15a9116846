"""Sources: the one way hepae reads its inputs, whatever they are stored as.

A :class:`Source` is a table of events: a ROOT TTree, a ROOT RNTuple, or a DarkMachines/PhenoML CSV
file. Each gives a :class:`~hepae.layout.TreeLayout` (what branches/fields it holds) and chunks of
``{name: array}``; :func:`open_source` picks the right one from the file and the table's name.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import lzma
import os
import re
import stat
import struct
import zlib
from collections.abc import Iterator, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import awkward as ak
import cramjam
import uproot

from hepae.errors import BranchTypeError, HepaeError, InputFileError, TreeNotFoundError, close_matches
from hepae.io.branches import TreeLayout, describe_ntuple, describe_tree
from hepae.io.writing import rntuple_refusals

DAMAGED_FILE_ERRORS: tuple[type[BaseException], ...] = (
    OSError, EOFError, ValueError, KeyError, IndexError, TypeError, AttributeError, OverflowError,
    NotImplementedError, AssertionError, struct.error, zlib.error, lzma.LZMAError,
    RecursionError, uproot.deserialization.DeserializationError, cramjam.DecompressionError,
    StopIteration,
)
"""What uproot raises on damaged or crafted bytes: decompression errors (cramjam is the library uproot
uses for zstd, lz4 and friends), deserialization errors (endless recursion too), sizes that do not fit, a
page that an RNTuple's damaged page list does not find (``StopIteration``; inside uproot's generators it
becomes a ``RuntimeError``, which :func:`iterate_arrays` takes for damage only when it comes from one).
Only calls into uproot are wrapped with it, so a bug in hepae itself surfaces as a bug."""

DEFAULT_STEP_SIZE = "50 MB"
"""Default chunk size for streaming: an entry count (int) or a memory size string."""

PathArg = str | PathLike[str]
CSV_SUFFIXES = (".csv",)
RNTUPLE_CLASS = "ROOT::RNTuple"


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


_FILE_KINDS = {stat.S_IFDIR: "a directory", stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket",
               stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device"}


def check_input_file(path: PathArg, what: str = "input file") -> Path:
    """``path`` as a :class:`~pathlib.Path` if it is a regular file that can be stat'ed; else :class:`InputFileError`.

    The message says what the path is instead: missing, a dangling symbolic link, a symbolic link loop,
    a directory, a FIFO, a socket or a device (nothing is opened, so a FIFO cannot block the reader).

    Parameters
    ----------
    path
        The file to check.
    what
        How the message names it (``"input file"``, ``"model file"``, ...).
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise InputFileError(f"{what} {path} is a symbolic link loop; expected a file") from None
        if err.errno in (errno.ENOENT, errno.ENOTDIR):
            if path.is_symlink():
                raise InputFileError(f"{what} {path} is a dangling symbolic link (to {os.readlink(path)}); "
                                     "expected a file") from None
            raise InputFileError(f"{what} {path} does not exist") from None
        raise InputFileError(f"{what} {path} cannot be read: {err.strerror}") from None
    if not stat.S_ISREG(mode):
        kind = _FILE_KINDS.get(stat.S_IFMT(mode), "not a file")
        raise InputFileError(f"{what} {path} is not a regular file ({kind}); expected a file")
    return path


_SIZE_UNITS = {"B": 1, "kB": 10**3, "MB": 10**6, "GB": 10**9, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}


def memory_size(text: str) -> int | None:
    """Bytes of a size like ``"100 MB"`` or ``"1.5 GiB"`` (units B, kB, MB, GB, KiB, MiB, GiB, as uproot
    takes them for ``step_size``); ``None`` if ``text`` is not one."""
    size = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(B|kB|MB|GB|KiB|MiB|GiB)\s*", text)
    return int(float(size[1]) * _SIZE_UNITS[size[2]]) if size else None


@contextlib.contextmanager
def open_root(path: PathArg) -> Iterator[uproot.ReadOnlyDirectory]:
    """``uproot.open`` with errors that say which file and what is wrong with it. No array cache: data
    are read once, chunk by chunk, and uproot's default cache (100 MB) would grow with the file. The plain
    local-file reader rather than uproot's default (fsspec), whose buffers made a compress run's memory grow
    with the length of its input (``benchmarks/memory.py``: 1.13x at 10x the file, 1.09x with this one)."""
    path = check_input_file(path)
    try:
        handle = uproot.open(path, array_cache=None, handler=uproot.source.file.MultithreadedFileSource)
    except DAMAGED_FILE_ERRORS as err:  # uproot raises many kinds on damaged files; all mean the same here
        raise InputFileError(f"{path} is not a readable ROOT file: {_first_line(err)}") from None
    with handle:
        yield handle


def _tables(directory: uproot.ReadOnlyDirectory, path: PathArg) -> dict[str, str]:
    """TTrees and RNTuples at the top of a file: name -> classname."""
    try:
        classnames = directory.classnames(recursive=False)
    except DAMAGED_FILE_ERRORS as err:
        raise InputFileError(f"cannot list the objects in {path} (damaged file?): {_first_line(err)}") from None
    return {k.split(";")[0]: c for k, c in classnames.items() if c in ("TTree", RNTUPLE_CLASS)}


def _get_table(directory: uproot.ReadOnlyDirectory, name: str, path: PathArg, classes: Sequence[str]) -> Any:
    tables = _tables(directory, path)
    if tables.get(name) not in classes:
        wanted = " or ".join("RNTuple" if c == RNTUPLE_CLASS else c for c in classes)
        listing = ", ".join(f"{n} ({'RNTuple' if c == RNTUPLE_CLASS else c})" for n, c in sorted(tables.items()))
        hint = close_matches(name, list(tables))
        raise TreeNotFoundError(
            f"no {wanted} '{name}' in {path}; trees and RNTuples in the file: {listing or 'none'}"
            + (f"; did you mean {hint}" if hint else "")
        )
    try:
        return directory[name]
    except DAMAGED_FILE_ERRORS as err:  # corrupted metadata
        raise InputFileError(f"cannot read '{name}' in {path} (damaged file?): {_first_line(err)}") from None


def main_table(directory: uproot.ReadOnlyDirectory, path: PathArg) -> str:
    """The table a whole-file run compresses when none is named: the TTree or RNTuple at the top of the file
    with the most branches (then the most entries): ``Events`` of NanoAOD, ``CollectionTree`` of xAOD,
    ``EventData`` of PHYSLITE (:func:`default_table` for a path, CSV files included)."""
    names = sorted(_tables(directory, path))
    if not names:
        raise TreeNotFoundError(f"{path} holds no TTree or RNTuple")
    if len(names) == 1:  # nothing to compare: the table is not read (a thousand branches take a while)
        return names[0]

    def size(name: str) -> tuple[int, int]:
        table = _get_table(directory, name, path, ("TTree", RNTUPLE_CLASS))
        try:
            return len(table.keys(recursive=False)), int(table.num_entries)
        except DAMAGED_FILE_ERRORS as err:  # an RNTuple's header or footer
            raise InputFileError(f"cannot read '{name}' in {path} (damaged file?): {_first_line(err)}") from None

    return max(names, key=size)


def default_table(path: PathArg) -> str:
    """The table of a file that no one named: ``events`` for a DarkMachines CSV file, else :func:`main_table`."""
    if Path(path).suffix.lower() in CSV_SUFFIXES:
        from hepae.io.darkmachines import TABLE_NAME

        return TABLE_NAME
    with open_root(path) as directory:
        return main_table(directory, path)


def get_tree(directory: uproot.ReadOnlyDirectory, tree_name: str, path: PathArg) -> uproot.TTree:
    """The TTree ``tree_name`` of an open file; :class:`TreeNotFoundError` lists what is there."""
    return _get_table(directory, tree_name, path, ("TTree",))


def iterate_arrays(
    table: Any, names: Sequence[str], step_size: int | str = DEFAULT_STEP_SIZE
) -> Iterator[dict[str, ak.Array]]:
    """Chunks of a TTree or RNTuple as ``{name: array}``, in the order of ``names``; nothing else is read."""
    wanted = set(names)
    try:
        for chunk in table.iterate(filter_name=lambda n: n in wanted, step_size=step_size, library="ak", how=dict):
            yield {n: chunk[n] for n in names}
    except HepaeError:
        raise
    except DAMAGED_FILE_ERRORS as err:  # damaged baskets/pages: decompression, deserialization, size errors
        raise _damaged(table, err) from None
    except RuntimeError as err:  # a StopIteration of a damaged RNTuple page list, out of uproot's generator
        if isinstance(err.__cause__, StopIteration):
            raise _damaged(table, err) from None
        raise


def _damaged(table: Any, err: BaseException) -> InputFileError:
    try:  # an RNTuple's name comes from its header, which may be what is damaged
        name = table.name
    except DAMAGED_FILE_ERRORS:
        name = "?"
    return InputFileError(f"cannot read '{name}' of {table.file.file_path} (damaged file?): {_first_line(err)}")


def read_range(table: Any, names: Sequence[str], entry_start: int, entry_stop: int) -> dict[str, ak.Array]:
    """Entries ``[entry_start, entry_stop)`` of a TTree or RNTuple as ``{name: array}``."""
    wanted = set(names)
    try:
        arrays = table.arrays(filter_name=lambda n: n in wanted, entry_start=entry_start, entry_stop=entry_stop,
                              library="ak", how=dict)
        return {n: arrays[n] for n in names}
    except DAMAGED_FILE_ERRORS as err:  # a branch missing (KeyError) is damage too
        raise _damaged(table, err) from None


class Source:
    """A table of events: its layout, and its data in chunks."""

    format: str = ""
    """What the input is: ``"ttree"``, ``"rntuple"`` or ``"darkmachines-csv"``."""
    storage: str = ""
    """What hepae writes it back as: ``"ttree"`` or ``"rntuple"``."""

    def __init__(self, path: Path, layout: TreeLayout, title: str = ""):
        self.path, self.layout, self.title = path, layout, title

    @property
    def name(self) -> str:
        return self.layout.name

    @property
    def num_entries(self) -> int:
        return self.layout.num_entries

    def iterate(self, names: Sequence[str], step_size: int | str = DEFAULT_STEP_SIZE) -> Iterator[dict[str, ak.Array]]:
        raise NotImplementedError

    def stored_bytes(self, names: Sequence[str]) -> int | None:
        """On-disk (compressed) bytes of these branches, if the format tells."""
        return None

    def read(self, names: Sequence[str], entry_start: int, entry_stop: int) -> dict[str, ak.Array]:
        """Entries ``[entry_start, entry_stop)`` (ROOT sources)."""
        return read_range(self._table, names, entry_start, entry_stop)


class TTreeSource(Source):
    format = storage = "ttree"

    def __init__(self, path: Path, tree: uproot.TTree):
        super().__init__(path, describe_tree(tree), tree.title)
        self._tree = self._table = tree

    def iterate(self, names, step_size=DEFAULT_STEP_SIZE):
        return iterate_arrays(self._tree, names, step_size)

    def stored_bytes(self, names):
        """Sum of the branches' basket sizes on disk; None if a branch keeps baskets inside the TTree's own record
        (ROOT does for a tree it never flushed, as in small files): those bytes are not the branch's alone."""
        branches = [self._tree[n] for n in names]
        if any(b.embedded_baskets for b in branches):
            return None
        return sum(int(b.compressed_bytes) for b in branches)


def _field_children(records: Any) -> dict[int, list[int]]:
    """Per field id of an RNTuple's field records, the ids of its subfields in record order (a top-level field
    is its own parent and nobody's child)."""
    children: dict[int, list[int]] = {}
    for i, record in enumerate(records):
        if record.parent_field_id != i:
            children.setdefault(record.parent_field_id, []).append(i)
    return children


def index_subfields(ntuple: Any) -> None:
    """Fill uproot's per-field cache of subfields of ``ntuple`` (an uproot RNTuple) in one pass over its field
    records.

    uproot (5.7) finds each field's subfields by scanning every field record, the first time that field's
    ``fields`` are asked for; building the forms (to describe or read the RNTuple) asks for all of them, so a
    PHYSLITE RNTuple of 3,500 field records takes ~13 s to describe and again to read. Filled here as uproot
    would fill them (the same fields, in the same order; anonymous fields replaced by their subfields), it
    takes ~0.2 s. An uproot whose fields do not look like that is left to itself.
    """
    try:
        records, fields = ntuple.field_records, ntuple.all_fields
        if not all(hasattr(f, "_fields") and hasattr(f, "_fid") for f in fields):
            return
        children = _field_children(records)

        def subfields(field: Any) -> list[Any]:
            if field._fields is None:
                found = []
                for i in children.get(field._fid, ()):
                    child = fields[i]
                    found.extend(subfields(child) if child.is_anonymous else [child])
                field._fields = found
            return field._fields

        for field in fields:
            subfields(field)
    except (AttributeError, TypeError, KeyError, IndexError, RecursionError):
        return  # a different uproot: it finds the subfields itself, only slower


class RNTupleSource(Source):
    format = storage = "rntuple"

    def __init__(self, path: Path, ntuple: Any):
        self.path, self.title = path, getattr(ntuple, "description", "") or ""
        self._ntuple = self._table = ntuple
        index_subfields(ntuple)
        self._num_entries = int(ntuple.num_entries)  # read from the footer now, where damage is reported as such

    @property
    def name(self) -> str:
        return self._ntuple.name

    @property
    def num_entries(self) -> int:
        return self._num_entries

    @functools.cached_property
    def layout(self) -> TreeLayout:  # type: ignore[override]
        """Described on first use: uproot builds the form of every field, slow for a thousand fields."""
        try:
            layout = describe_ntuple(self._ntuple)
        except DAMAGED_FILE_ERRORS as err:
            raise BranchTypeError(
                f"cannot read the fields of RNTuple '{self._ntuple.name}' in {self.path}: {_first_line(err)}"
            ) from None
        refused = rntuple_refusals(layout.branches)  # fields uproot cannot write back
        layout.branches = [b for b in layout.branches if b.name not in refused]
        layout.unsupported.update(refused)
        return layout

    def iterate(self, names, step_size=DEFAULT_STEP_SIZE):
        return iterate_arrays(self._ntuple, names, step_size)

    def stored_bytes(self, names):
        """Sum of the page sizes of every column of these fields (and their subfields), over all clusters.

        Read from the field and column records alone: building awkward forms is slow in uproot.
        """
        records = self._ntuple.field_records
        children = _field_children(records)
        top = {record.field_name: i for i, record in enumerate(records) if record.parent_field_id == i}
        fields, todo = set(), [top[n] for n in names]
        while todo:
            field_id = todo.pop()
            fields.add(field_id)
            todo.extend(children.get(field_id, []))
        columns = [i for i, column in enumerate(self._ntuple.column_records) if column.field_id in fields]
        return sum(page.locator.num_bytes for cluster in self._ntuple.page_link_list
                   for column in columns for page in cluster[column].pages)


class DarkMachinesSource(Source):
    """A DarkMachines/PhenoML CSV file, seen as the table of :func:`hepae.darkmachines.table_specs`."""

    format, storage = "darkmachines-csv", "rntuple"

    def __init__(self, path: Path):
        from hepae.io.darkmachines import TABLE_NAME, count_events, table_specs

        layout = TreeLayout(name=TABLE_NAME, num_entries=count_events(path), format="rntuple",
                            branches=table_specs())
        super().__init__(path, layout, "DarkMachines/PhenoML events")

    def iterate(self, names, step_size=DEFAULT_STEP_SIZE):
        from hepae.io.darkmachines import events_to_table, iterate_events

        if isinstance(step_size, int):
            lines = step_size
        else:  # a memory size: as many lines as that many bytes of text hold, on average
            size = self.path.stat().st_size
            lines = int((memory_size(step_size) or 0) * max(self.num_entries, 1) / max(size, 1))
        for events in iterate_events(self.path, chunk_lines=max(lines, 1)):
            table = events_to_table(events)
            yield {n: table[n] for n in names}


@contextlib.contextmanager
def open_source(path: PathArg, name: str) -> Iterator[Source]:
    """The table ``name`` of ``path``: a TTree or RNTuple in a ROOT file, or a DarkMachines CSV file."""
    path = Path(path)
    if path.suffix.lower() in CSV_SUFFIXES:
        from hepae.io.darkmachines import TABLE_NAME

        if name != TABLE_NAME:
            raise TreeNotFoundError(
                f"{path} is a DarkMachines CSV file, read as one table '{TABLE_NAME}'; the feature set asks "
                f"for '{name}' (use a darkmachines-* feature set)"
            )
        check_input_file(path)
        yield DarkMachinesSource(path)
        return
    with open_root(path) as directory:
        yield root_source(directory, path, name)


def root_source(directory: uproot.ReadOnlyDirectory, path: PathArg, name: str) -> Source:
    """The TTree or RNTuple ``name`` of a ROOT file already open."""
    table = _get_table(directory, name, path, ("TTree", RNTUPLE_CLASS))
    is_rntuple = _tables(directory, path)[name] == RNTUPLE_CLASS
    try:
        return RNTupleSource(Path(path), table) if is_rntuple else TTreeSource(Path(path), table)
    except HepaeError:
        raise
    except DAMAGED_FILE_ERRORS as err:  # a damaged branch or field description (streamers, leaves)
        raise _damaged(table, err) from None
