"""Carry-over: the other objects of a ROOT file, besides the table hepae compresses.

A ROOT file often holds more than one table: PHYSLITE files have metadata TTrees and RNTuples, analysis
files histograms and strings, in directories. :func:`plan_carryover` lists every object of a file but
the excluded ones (the compressed table) and sorts them into what hepae can write back, and what it
cannot (with the reason); unless told to leave those out, it refuses, naming them, so that nothing is
ever dropped silently. :func:`copy_objects` writes the carried objects into another file at the same
paths and returns a digest of each object's content; :func:`object_digests` computes the same digests
from a file as it is, to verify a copy.

What is carried:

* TTrees whose every branch uproot can write back (numbers, fixed-size arrays, jagged arrays of
  numbers), streamed chunk by chunk with :class:`~hepae.writing.TreeWriter`, memory flat in the tree's
  size, with the same branch order, dtypes, counter names, title and number of entries (zero too).
  uproot writes every counter as ``int32`` and no ``std::vector``: a jagged branch without a counter
  branch (``std::vector<float>``) is written as a ROOT array counted by a new branch ``n<branch>``.
* RNTuples whose every field uproot can write (the check :class:`~hepae.sources.RNTupleSource` uses),
  streamed with :class:`~hepae.writing.NTupleWriter`, with their description.
* Histograms (``TH1*``, ``TH2*``, ``TH3*``, ``TProfile``, ``TProfile2D``, ``TProfile3D``) that uproot
  writes back identically (tried in memory first), and ``TObjString`` strings, as uproot writes them.
* Directories (empty ones too), created before their content.

Only the highest cycle of each key is carried, as ROOT's ``Get`` reads it. Older cycles of TTrees and
RNTuples are the backups ROOT's AutoSave leaves while a table is filled: they are skipped without a
word. Older cycles of any other object are distinct versions, and are listed as not carried
(``"name;1"``). Anything else (TGraph, TF1, canvases, classes without a streamer, ...) is not carried.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import warnings
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np
import uproot

from hepae.errors import HepaeError, InputFileError, OutputFileError, UnsupportedBranchError
from hepae.io.branches import BranchSpec, TreeLayout, describe_ntuple, describe_tree
from hepae.io.hashing import TreeHasher
from hepae.io.sources import DAMAGED_FILE_ERRORS, DEFAULT_STEP_SIZE, RNTUPLE_CLASS, PathArg, _first_line, iterate_arrays
from hepae.io.writing import NTupleWriter, TreeWriter, probe_refusals, rntuple_refusals

KINDS = ("ttree", "rntuple", "histogram", "string", "directory")
"""What :class:`CarriedObject.kind` can be."""

HISTOGRAM_CLASSES = re.compile(r"TH[123][CSILFD]|TProfile(2D|3D)?")
"""Classes of the histograms hepae carries, if uproot writes them back identically."""

DIRECTORY_CLASSES = ("TDirectory", "TDirectoryFile")
STRING_CLASS = "TObjString"
LISTED_REFUSALS = 10
"""How many refused objects an error or warning names (the rest are counted)."""
LISTED_BRANCHES = 3
"""How many offending branches the reason for refusing a table names."""


@dataclass(frozen=True)
class CarriedObject:
    """One object of a ROOT file that hepae carries over.

    ``path`` is ``"name"`` or ``"dir/sub/name"`` without a cycle (the highest cycle of its key is
    meant), ``classname`` what uproot reports (``"TTree"``, ``"ROOT::RNTuple"``, ``"TH1D"``,
    ``"TObjString"``, ``"TDirectory"``), ``kind`` one of :data:`KINDS`.
    """

    path: str
    classname: str
    kind: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "classname": self.classname, "kind": self.kind}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CarriedObject:
        if d["kind"] not in KINDS:
            raise ValueError(f"unknown kind {d['kind']!r} of carried object {d['path']!r}; expected one of {KINDS}")
        return cls(d["path"], d["classname"], d["kind"])

    @property
    def name(self) -> str:
        """The last component of the path."""
        return self.path.rsplit("/", 1)[-1]

    @property
    def parent(self) -> str:
        """The directory holding it (``""`` at the top of the file)."""
        return self.path.rpartition("/")[0]


def _kind(classname: str) -> str | None:
    if classname == "TTree":
        return "ttree"
    if classname == RNTUPLE_CLASS:
        return "rntuple"
    if HISTOGRAM_CLASSES.fullmatch(classname):
        return "histogram"
    if classname == STRING_CLASS:
        return "string"
    if classname in DIRECTORY_CLASSES:
        return "directory"
    return None


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _error_reason(err: BaseException) -> str:
    return _one_line(_first_line(err))


def _read(directory: uproot.ReadOnlyDirectory, key: str, obj_path: str, path: PathArg) -> Any:
    """``directory[key]``, or :class:`InputFileError` naming the object (``obj_path``) and the file."""
    try:
        return directory[key]
    except KeyError:
        raise InputFileError(f"no object '{obj_path}' in {path}") from None
    except DAMAGED_FILE_ERRORS as err:  # damaged key, streamer or object: uproot raises many kinds
        raise InputFileError(f"cannot read '{obj_path}' in {path} (damaged file?): {_error_reason(err)}") from None


def _keys(directory: uproot.ReadOnlyDirectory, prefix: str, path: PathArg) -> Iterator[tuple[str, str, list[int]]]:
    """The keys of one directory in file order: (name, classname of the highest cycle, all cycles, highest first)."""
    try:
        classnames = directory.classnames(recursive=False, cycle=True)
    except DAMAGED_FILE_ERRORS as err:
        where = f"directory '{prefix}' of {path}" if prefix else str(path)
        raise InputFileError(f"cannot list the objects in {where} (damaged file?): {_error_reason(err)}") from None
    cycles: dict[str, dict[int, str]] = {}
    for key, classname in classnames.items():
        name, _, cycle = key.rpartition(";")
        cycles.setdefault(name, {})[int(cycle)] = classname
    for name, by_cycle in cycles.items():
        order = sorted(by_cycle, reverse=True)
        yield name, by_cycle[order[0]], order


def _listing(reasons: dict[str, str], limit: int) -> str:
    items = [f"'{name}' ({reason})" for name, reason in list(reasons.items())[:limit]]
    more = len(reasons) - limit
    return "; ".join(items) + (f"; and {more} more" if more > 0 else "")


# ---------------------------------------------------------------------------------------------- tables

def _carry_specs(layout: TreeLayout) -> list[BranchSpec]:
    """The branches a TTree is written back with: a jagged branch stored without a counter branch
    (``std::vector``) gets its own counter ``n<branch>`` (unused name), since uproot writes a counter
    for every jagged branch, and sharing one would need equal lengths, unknown before reading."""
    taken = set(layout.all_names())
    specs = []
    for spec in layout.branches:
        if spec.jagged and spec.counter not in layout.counters:
            counter = f"n{spec.name}"
            while counter in taken:
                counter += "_"
            taken.add(counter)
            spec = BranchSpec(spec.name, spec.dtype, counter, spec.form)
        specs.append(spec)
    return specs


def _zeros(spec: BranchSpec) -> object:
    """One entry of a numeric branch, all zeros (one zero per list for a jagged branch)."""
    dtype = spec.numpy_dtype
    base, shape = dtype.subdtype if dtype.subdtype is not None else (dtype, ())
    values = np.zeros((1, *shape), dtype=base)
    return ak.unflatten(values, [1]) if spec.jagged else values


def _tree_refusals(specs: Sequence[BranchSpec]) -> dict[str, str]:
    """The branches uproot refuses to declare or fill in a TTree (tried in memory): name -> reason."""

    def attempt(subset: Sequence[BranchSpec]) -> None:
        with uproot.recreate(io.BytesIO()) as probe:
            TreeWriter(probe, "probe", subset).extend({s.name: _zeros(s) for s in subset})

    errors = probe_refusals(specs, attempt)
    if errors is None:
        return {}
    refused = {s.name: f"dtype {s.dtype}: uproot cannot write it to a TTree ({_error_reason(errors[s.name])})"
               for s in specs if s.name in errors}
    return refused or {"(all)": "uproot cannot write these branches together to a TTree"}


def _table_layout(table: Any, kind: str, where: str) -> tuple[list[BranchSpec], dict[str, str]]:
    """The specs a table is written back with, and the branches/fields that cannot be: name -> reason."""
    try:
        if kind == "ttree":
            layout = describe_tree(table)
            return _carry_specs(layout), dict(layout.unsupported)
        layout = describe_ntuple(table)
    except DAMAGED_FILE_ERRORS as err:  # damaged streamers, leaves, field records
        raise InputFileError(f"cannot read the branches of {where} (damaged file?): {_error_reason(err)}") from None
    return layout.branches, {}


def _table_reason(table: Any, kind: str, where: str) -> str | None:
    """Why a TTree or RNTuple cannot be carried, or None if it can."""
    specs, unsupported = _table_layout(table, kind, where)
    if not unsupported:
        if kind == "ttree":
            if not specs and int(table.num_entries) > 0:
                return f"a TTree of {int(table.num_entries)} entries without branches cannot be written by uproot"
            unsupported = _tree_refusals(specs)
        else:
            unsupported = rntuple_refusals(specs)
    if not unsupported:
        return None
    what = "branch(es)" if kind == "ttree" else "field(s)"
    reasons = {name: _one_line(reason) for name, reason in unsupported.items()}
    return f"{len(reasons)} {what} uproot cannot write back: {_listing(reasons, LISTED_BRANCHES)}"


def _table_title(table: Any, kind: str) -> str:
    return (table.title if kind == "ttree" else getattr(table, "description", "")) or ""


def _copy_table(table: Any, obj: CarriedObject, parent: uproot.WritableDirectory | None, where: str,
                step_size: int | str) -> str:
    """Stream a table into ``parent`` (if given) and hash it; returns its digest."""
    specs, unsupported = _table_layout(table, obj.kind, where)
    if unsupported:
        raise UnsupportedBranchError(f"{where} cannot be carried over: {_listing(unsupported, LISTED_BRANCHES)}")
    title = _table_title(table, obj.kind)
    writer = None
    if parent is not None:
        writer_class = TreeWriter if obj.kind == "ttree" else NTupleWriter
        writer = writer_class(parent, obj.name, specs, title=title)
    hasher = TreeHasher(specs)
    for chunk in iterate_arrays(table, [s.name for s in specs], step_size):
        if writer is not None:
            writer.extend(chunk)
        hasher.update(chunk)
    header = {"class": obj.classname, "title": title, "entries": int(table.num_entries),
              "branches": [s.to_dict() for s in specs]}
    return _digest(header, hasher.hexdigest().encode())


# ------------------------------------------------------------------------------------ other objects

def _digest(header: dict[str, Any], *parts: bytes) -> str:
    total = hashlib.sha256(json.dumps(header, sort_keys=True).encode())
    for part in parts:
        total.update(hashlib.sha256(part).digest())
    return total.hexdigest()


def _array_bytes(array: Any) -> bytes:
    """An array's dtype, shape and values (little-endian) as bytes."""
    array = np.asarray(array)
    dtype = array.dtype.newbyteorder("<")
    header = f"{dtype.str}{array.shape}".encode()
    return header + np.ascontiguousarray(array, dtype=dtype).tobytes()


_BOOKKEEPING = {"@fUniqueID", "@fBits", "fUniqueID", "fBits", "fName"}
"""Members that say how an object sat in memory or under which key, not what it holds: left out of the
digests (the name is the object's path, which the digests are keyed by)."""


def _member_parts(value: Any, name: str = "") -> Iterator[bytes]:
    """Every member of an uproot object (recursively: axes, lists, arrays), as bytes in a fixed order."""
    members = getattr(value, "all_members", None)
    if isinstance(members, dict):
        yield f"<{name}:{getattr(value, 'classname', '')}>".encode()
        for key in sorted(members):
            if key not in _BOOKKEEPING:
                yield from _member_parts(members[key], key)
        return
    if isinstance(value, np.ndarray):
        yield f"{name}=".encode() + _array_bytes(value)
    elif isinstance(value, str | bytes):
        yield f"{name}=".encode() + (value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value)
    elif isinstance(value, bool | int | float | np.number | type(None)):
        yield f"{name}={value!r}".encode()
    elif isinstance(value, Sequence) or hasattr(value, "__iter__"):
        items = list(value)
        yield f"{name}[{len(items)}]".encode()
        for item in items:
            yield from _member_parts(item, name)
    else:
        yield f"{name}={value!r}".encode()


def _histogram_digest(histogram: Any) -> str:
    """Class, title and every member (statistics sums, axes with titles and labels, contents, errors),
    but the in-memory bookkeeping bits: damage to any of them is caught."""
    header = {"class": histogram.classname, "title": histogram.member("fTitle") or ""}
    return _digest(header, *_member_parts(histogram))


def _string_digest(text: str) -> str:
    return _digest({"class": STRING_CLASS}, text.encode("utf-8", "surrogateescape"))


def _directory_digest() -> str:
    return _digest({"class": "TDirectory"})


class _KeptBytesIO(io.BytesIO):
    """An in-memory file that keeps its bytes when uproot closes it."""

    def close(self) -> None:
        pass


def _histogram_reason(histogram: Any) -> str | None:
    """Why uproot cannot write a histogram back identically (written and read in memory), or None."""
    buffer = _KeptBytesIO()
    try:
        with uproot.recreate(buffer) as probe:
            probe["probe"] = histogram
        with uproot.open(io.BytesIO(buffer.getvalue())) as written:
            same = _histogram_digest(written["probe"]) == _histogram_digest(histogram)
    except DAMAGED_FILE_ERRORS as err:
        return f"uproot cannot write it ({_error_reason(err)})"
    return None if same else "uproot does not write it back identically"


# ---------------------------------------------------------------------------------------------- API

def plan_carryover(
    directory: uproot.ReadOnlyDirectory, path: PathArg, exclude: Collection[str], *, drop_unsupported: bool
) -> tuple[list[CarriedObject], dict[str, str]]:
    """Sort every object of a ROOT file, but ``exclude``, into what hepae carries over and what it cannot.

    Parameters
    ----------
    directory
        The open file (:func:`hepae.sources.open_root`).
    path
        Its path, for messages.
    exclude
        Names (at the top of the file, or paths ``"dir/name"``) not to consider, e.g. the compressed table.
    drop_unsupported
        Leave out (with a warning) the objects that cannot be carried, instead of raising.

    Returns
    -------
    carried, refused
        The objects to carry, in file order, each directory before its content; and the objects left
        out: ``{path: reason}`` (an older cycle of an object that is not a table as ``"path;cycle"``).
        Only the highest cycle of each key is carried; older cycles of TTrees and RNTuples (ROOT's
        AutoSave backups) are skipped without being listed.

    Raises
    ------
    UnsupportedBranchError
        If some objects cannot be carried and not ``drop_unsupported``; the message names them (the
        first :data:`LISTED_REFUSALS`, with reasons) and the file.
    InputFileError
        If an object cannot be read (damaged file); the message names it and the file.
    """
    exclude = set(exclude)
    carried: list[CarriedObject] = []
    refused: dict[str, str] = {}

    def visit(current: uproot.ReadOnlyDirectory, prefix: str) -> None:
        for name, classname, cycles in _keys(current, prefix, path):
            obj_path = f"{prefix}{name}"
            if obj_path in exclude:
                continue
            kind = _kind(classname)
            if kind not in ("ttree", "rntuple"):  # older cycles of tables are AutoSave backups
                older = f"older cycle of '{obj_path}'; only the highest, {cycles[0]}, is carried"
                refused.update({f"{obj_path};{cycle}": older for cycle in cycles[1:]})
            key = f"{name};{cycles[0]}"
            if kind is None:
                refused[obj_path] = (f"{classname}: hepae carries TTrees, RNTuples, histograms (TH1/TH2/TH3/TProfile), "
                                     "TObjStrings and directories only")
                continue
            obj = _read(current, key, obj_path, path)
            reason = None
            if kind in ("ttree", "rntuple"):
                reason = _table_reason(obj, kind, f"{classname} '{obj_path}' of {path}")
            elif kind == "histogram":
                reason = _histogram_reason(obj)
            if reason is not None:
                refused[obj_path] = reason
                continue
            carried.append(CarriedObject(obj_path, classname, kind))
            if kind == "directory":
                visit(obj, f"{obj_path}/")

    visit(directory, "")
    if refused:
        listing = _listing(refused, LISTED_REFUSALS)
        if not drop_unsupported:
            raise UnsupportedBranchError(
                f"{len(refused)} object(s) of {path} cannot be carried over: {listing}; pass drop_unsupported=True "
                "(CLI: --drop-unsupported) to leave them out; they are then listed in the output's metadata"
            )
        warnings.warn(f"leaving out {len(refused)} object(s) of {path} that cannot be carried over: {listing}",
                      stacklevel=2)
    return carried, refused


def _writable_parent(target: uproot.WritableDirectory, obj: CarriedObject) -> uproot.WritableDirectory:
    """The directory of ``target`` that will hold ``obj``; refuses an object already there."""
    try:
        parent = target[obj.parent] if obj.parent else target
    except KeyError:
        raise ValueError(f"cannot carry '{obj.path}': its directory '{obj.parent}' is not carried before it") from None
    if obj.name in parent.keys(recursive=False, cycle=False):
        if obj.kind == "directory":
            return parent
        raise OutputFileError(f"the output already holds an object '{obj.path}'; cannot carry '{obj.path}' over")
    return parent


def _process(directory: uproot.ReadOnlyDirectory, target: uproot.WritableDirectory | None,
             objects: Sequence[CarriedObject], path: PathArg, step_size: int | str) -> dict[str, str]:
    digests = {}
    for obj in objects:
        parent = _writable_parent(target, obj) if target is not None else None
        if obj.kind == "directory":
            if parent is not None and obj.name not in parent.keys(recursive=False, cycle=False):
                parent.mkdir(obj.name)
            digests[obj.path] = _directory_digest()
            continue
        item = _read(directory, obj.path, obj.path, path)
        if item.classname != obj.classname:
            raise InputFileError(f"'{obj.path}' in {path} is a {item.classname}, not a {obj.classname}")
        where = f"{obj.classname} '{obj.path}' of {path}"
        if obj.kind not in ("ttree", "rntuple", "histogram", "string"):
            raise ValueError(f"unknown kind {obj.kind!r} of carried object '{obj.path}'")
        try:
            if obj.kind in ("ttree", "rntuple"):
                digests[obj.path] = _copy_table(item, obj, parent, where, step_size)
                continue
            if obj.kind == "histogram":
                digests[obj.path] = _histogram_digest(item)
            else:
                item = str(item)
                digests[obj.path] = _string_digest(item)
        except HepaeError:
            raise
        except DAMAGED_FILE_ERRORS as err:  # damaged histogram arrays (a shape that does not fit its axes, ...)
            raise InputFileError(f"cannot read {where} (damaged file?): {_error_reason(err)}") from None
        if parent is not None:
            parent[obj.name] = item
    return digests


def copy_objects(
    source: uproot.ReadOnlyDirectory,
    target: uproot.WritableDirectory,
    objects: Sequence[CarriedObject],
    source_path: PathArg,
    *,
    step_size: int | str = DEFAULT_STEP_SIZE,
) -> dict[str, str]:
    """Write each object of ``source`` into ``target`` at the same path.

    TTrees and RNTuples are streamed chunk by chunk (memory flat in their size), histograms and
    TObjStrings written as uproot writes them, directories created (an existing one is reused).

    Parameters
    ----------
    source
        The open input file.
    target
        The output file (or a directory of it), as ``uproot.recreate`` gives it.
    objects
        What to carry (the first result of :func:`plan_carryover`), directories before their content.
    source_path
        The input's path, for messages.
    step_size
        Chunk size for tables: an entry count or a memory size string.

    Returns
    -------
    dict
        ``{path: sha256 hex}`` of each object's content: for tables the class, title, number of entries,
        branch specs and a :class:`~hepae.io.hashing.TreeHasher` digest of every branch; for histograms
        the class, title and every member but the in-memory bookkeeping ones (statistics sums, axes,
        contents, errors); for strings the text. :func:`object_digests` of the output gives the same.

    Raises
    ------
    OutputFileError
        If ``target`` already holds an object (not a directory) at one of the paths.
    InputFileError
        If an object cannot be read.
    """
    return _process(source, target, objects, source_path, step_size)


def write_class_samples(directory: uproot.ReadOnlyDirectory, objects: Sequence[CarriedObject], path: PathArg
                        ) -> Callable[[uproot.WritableDirectory], None]:
    """A function that writes one object of each class that :func:`copy_objects` writes for ``objects`` (the
    first histogram of each class as read from ``directory``, a string, a TTree, an RNTuple), for
    :func:`hepae.io.writing.declare_classes` to declare in an output before its tables. An object that
    cannot be read or written is left out here; copying it names it."""
    samples: dict[str, Any] = {}
    kinds = {obj.kind for obj in objects}
    for obj in objects:
        if obj.kind == "histogram" and obj.classname not in samples:
            try:
                samples[obj.classname] = _read(directory, obj.path, obj.path, path)
            except HepaeError:
                continue
        elif obj.kind == "string":
            samples.setdefault("TObjString", "string")

    def write(probe: uproot.WritableDirectory) -> None:
        for i, item in enumerate(samples.values()):
            try:
                probe[f"sample{i}"] = item
            except DAMAGED_FILE_ERRORS:
                continue
        if "ttree" in kinds:  # an RNTuple table's reconstruction has no TTree of its own
            probe.mktree("sample_tree", {"x": np.float32})
        if "rntuple" in kinds:
            probe.mkrntuple("sample_rntuple", {"x": np.float32})

    return write


def object_digests(
    directory: uproot.ReadOnlyDirectory,
    objects: Sequence[CarriedObject],
    path: PathArg,
    *,
    step_size: int | str = DEFAULT_STEP_SIZE,
) -> dict[str, str]:
    """The digests :func:`copy_objects` returns, computed from a file as it is (nothing is written).

    Compare them with the digests recorded when the objects were copied to verify a copy. Raises
    :class:`InputFileError` if an object is missing, of another class, or unreadable.
    """
    return _process(directory, None, objects, path, step_size)
