"""The DarkMachines / PhenoML CSV event format, read into awkward arrays and written back.

One event per line, fields separated by ``;``, each object as five ``,``-separated fields, a trailing
``;`` allowed::

    event_ID;process_ID;event_weight;MET;METphi;obj,E,pt,eta,phi;obj,E,pt,eta,phi;...;

Object codes: ``j`` (jet), ``b`` (b-jet), ``e-``, ``e+``, ``m-``, ``m+`` (muons), ``g`` (photon).
Energies and momenta in MeV. :func:`iterate_events` yields chunks of lines as an awkward record array
(one record per event: ``event_id``, ``process_id``, ``event_weight``, ``MET``, ``METphi`` and a jagged
list ``objects`` of ``{obj, E, pt, eta, phi}`` with ``obj`` the int8 index of the object code in
:data:`OBJECT_CODES`).
A line is what lies between two ``\n`` bytes, less one trailing ``\r`` (so ``\n`` and ``\r\n`` endings
both work, and :func:`count_events` and :func:`iterate_events` count the same lines); a ``\r`` anywhere
else (old Mac line endings) is a :class:`~hepae.errors.MalformedCSVError`. A UTF-8 byte order mark at
the start of the file is skipped.
Parsing splits whole chunks at the C level (no Python loop per object). Numbers are float64 and
:func:`write_events` writes each in the shortest form that reads back as the same value (float32
values, such as reconstructed ones, in the shortest float32 form), so a parse -> write -> parse round
trip is exact.

For compression the events are seen as one flat table, ``events`` (:func:`table_specs`): the event
fields, and per object ``obj_type`` (the code index), ``obj_E``, ``obj_pt``, ``obj_eta``, ``obj_phi``,
all counted by ``nobj``; :func:`events_to_table` and :func:`table_to_events` convert.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from os import PathLike
from pathlib import Path
from typing import TextIO

import awkward as ak
import numpy as np

from hepae.errors import InputFileError, MalformedCSVError
from hepae.io.branches import AWKWARD_DTYPE, BranchSpec
from hepae.io.sources import check_input_file
from hepae.io.writing import atomic_output

OBJECT_CODES = ("j", "b", "e-", "e+", "m-", "m+", "g")
EVENT_FIELDS = ("event_id", "process_id", "event_weight", "MET", "METphi")
OBJECT_FIELDS = ("E", "pt", "eta", "phi")
DEFAULT_CHUNK_LINES = 100_000
_CODE_INDEX = {code: i for i, code in enumerate(OBJECT_CODES)}
TABLE_NAME = "events"
OBJECT_COUNTER = "nobj"
_OBJECT_BRANCHES = {"obj": "obj_type", **{f: f"obj_{f}" for f in OBJECT_FIELDS}}
BOM = b"\xef\xbb\xbf"
"""The UTF-8 byte order mark some editors (Excel) write at the start of a file; skipped when reading."""
_SNIFF_BYTES = 1 << 20
_STRING_FORM = '{"class":"ListOffsetArray","offsets":"i64","content":{"class":"NumpyArray","primitive":"uint8",' \
               '"parameters":{"__array__":"char"}},"parameters":{"__array__":"string"}}'


def _fail(path: Path, line: int, message: str) -> MalformedCSVError:
    return MalformedCSVError(f"{path}, line {line}: {message}")


def _floats(texts: np.ndarray, path: Path, lines: np.ndarray, what: str) -> np.ndarray:
    """str array -> float64, or an error naming the first line with a bad number."""
    try:
        return texts.astype(np.float64)
    except ValueError:
        for text, line in zip(texts.tolist(), lines.tolist()):
            try:
                float(text)
            except ValueError:
                raise _fail(path, line, f"{what} {text!r} is not a number") from None
        raise


def _integers(texts: np.ndarray, path: Path, lines: np.ndarray, what: str) -> np.ndarray:
    """str array -> int64, or an error naming the first line with a bad (or too large) integer."""
    try:
        return texts.astype(np.int64)
    except (ValueError, OverflowError):
        for text, line in zip(texts.tolist(), lines.tolist()):
            try:
                if not -(2**63) <= int(text) < 2**63:
                    raise ValueError
            except ValueError:
                raise _fail(path, line, f"{what} {text!r} is not a 64-bit integer") from None
        raise _fail(path, int(lines[0]), f"{what} values cannot be read as integers") from None


def _empty_events() -> ak.Array:
    objects = ak.zip({"obj": np.empty(0, np.int8), **{f: np.empty(0) for f in OBJECT_FIELDS}})
    return ak.zip({"event_id": np.empty(0, np.int64), "process_id": ak.Array([""])[:0],
                   **{f: np.empty(0) for f in EVENT_FIELDS[2:]},
                   "objects": ak.unflatten(objects, np.empty(0, np.int64))}, depth_limit=1)


def parse_lines(lines: list[str], path: Path, first_line: int = 1) -> ak.Array:
    """Parse event lines (without newlines) into one awkward record array."""
    n = len(lines)
    if n == 0:
        return _empty_events()
    line_numbers = np.arange(first_line, first_line + n)
    stripped = [s[:-1] if s.endswith(";") else s for s in lines]
    n_fields = np.fromiter((s.count(";") + 1 for s in stripped), np.int64, n)
    short = np.flatnonzero(n_fields < 5)
    if len(short):
        i = short[0]
        raise _fail(path, int(line_numbers[i]), f"expected at least 5 ';'-separated event fields "
                    f"(event_ID;process_ID;event_weight;MET;METphi), found {n_fields[i]}: {lines[i][:80]!r}")
    fields = np.array(";".join(stripped).split(";"), dtype=object)
    starts = np.concatenate([[0], np.cumsum(n_fields)[:-1]])
    event = [fields[starts + k] for k in range(5)]

    line_of_field = np.repeat(np.arange(n), n_fields)
    is_object = np.arange(len(fields)) - starts[line_of_field] >= 5
    objects = fields[is_object].astype(str)
    object_lines = line_numbers[line_of_field[is_object]]
    n_objects = n_fields - 5
    commas = np.char.count(objects, ",")
    bad = np.flatnonzero(commas != 4)
    if len(bad):
        i = bad[0]
        raise _fail(path, int(object_lines[i]), f"object {str(objects[i])!r} must have 5 ','-separated fields "
                    "(obj,E,pt,eta,phi)")
    parts = np.array(",".join(objects.tolist()).split(",") if len(objects) else [], dtype=str).reshape(-1, 5)
    codes, inverse = np.unique(parts[:, 0], return_inverse=True)
    unknown = [c for c in codes.tolist() if c not in _CODE_INDEX]
    if unknown:
        i = int(np.flatnonzero(parts[:, 0] == unknown[0])[0])
        raise _fail(path, int(object_lines[i]), f"unknown object code {unknown[0]!r}; expected one of "
                    f"{', '.join(OBJECT_CODES)}")
    types = np.array([_CODE_INDEX[c] for c in codes.tolist()], dtype=np.int8)[inverse.ravel()]
    values = {name: _floats(parts[:, k + 1], path, object_lines, name) for k, name in enumerate(OBJECT_FIELDS)}
    event_id = _integers(event[0].astype(str), path, line_numbers, "event_ID")
    records = {
        "event_id": event_id,
        "process_id": ak.Array(event[1].astype(str).tolist()),
        **{name: _floats(event[k].astype(str), path, line_numbers, name) for k, name in
           enumerate(EVENT_FIELDS[2:], start=2)},
        "objects": ak.unflatten(ak.zip({"obj": types, **values}), n_objects),
    }
    return ak.zip(records, depth_limit=1)


def _stray_return(path: Path, block: bytes, first_line: int) -> MalformedCSVError | None:
    """The error for the first ``\r`` in ``block`` (lines already without their endings), if any."""
    position = block.find(b"\r")
    if position < 0:
        return None
    line = first_line + block.count(b"\n", 0, position)
    return _fail(path, line, "a carriage return ('\\r') inside the line (old Mac line endings?); lines must end "
                             "with '\\n' or '\\r\\n'")


def _text_lines(raw: list[bytes], path: Path, first_line: int) -> list[str]:
    """Lines as read in binary (each up to and with its ``\n``) -> text without line endings.

    One ``\n`` and then one ``\r`` are stripped from the end of each line, as :func:`count_events`
    counts them; any other ``\r`` is an error, and so are bytes that are not UTF-8.
    """
    stripped = [line[:-1] if line.endswith(b"\n") else line for line in raw]
    block = b"\n".join(line[:-1] if line.endswith(b"\r") else line for line in stripped)
    stray = _stray_return(path, block, first_line)
    if stray is not None:
        raise stray
    try:
        return block.decode("utf-8").split("\n")
    except UnicodeDecodeError as err:
        line = first_line + block.count(b"\n", 0, err.start)
        raise InputFileError(f"{path} is not a text file (line {line} is not UTF-8: {err.reason})") from None


def iterate_events(path: str | PathLike[str], *, chunk_lines: int = DEFAULT_CHUNK_LINES) -> Iterator[ak.Array]:
    """Stream a DarkMachines CSV file in chunks of ``chunk_lines`` events.

    Lines end with ``\n`` or ``\r\n`` (see the module docstring); a UTF-8 byte order mark is skipped.
    Raises :class:`~hepae.errors.MalformedCSVError` naming the file and line of the first problem.
    """
    path = check_input_file(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(_SNIFF_BYTES)  # a file with '\r' line endings is one huge line: refuse it early
            head = head[:-1] if head.endswith(b"\r") else head  # its '\n' may be in the next block
            stray = _stray_return(path, head.replace(b"\r\n", b"\n"), 1)
            if stray is not None:
                raise stray
            handle.seek(0)
            first = 1
            while True:
                raw = list(itertools.islice(handle, chunk_lines))
                if first == 1 and raw and raw[0].startswith(BOM):
                    raw[0] = raw[0][len(BOM):]
                    if raw == [b""]:  # nothing but the mark: an empty file
                        return
                if not raw:
                    return
                yield parse_lines(_text_lines(raw, path, first), path, first)
                first += len(raw)
    except OSError as err:
        if isinstance(err, InputFileError):
            raise
        raise InputFileError(f"cannot read {path}: {err.strerror or err}") from None


def read_events(path: str | PathLike[str]) -> ak.Array:
    """The whole file as one array (for small files; use :func:`iterate_events` to stream)."""
    chunks = list(iterate_events(path))
    return ak.concatenate(chunks) if chunks else _empty_events()


def _shortest(values: np.ndarray) -> list[str]:
    """Shortest text that reads back as the same value ('1' rather than '1.0'); float32 as float32."""
    out = [str(v) for v in values] if values.dtype == np.float32 else [repr(v) for v in values.tolist()]
    return [s[:-2] if s.endswith(".0") else s for s in out]


def _float_array(values: ak.Array) -> np.ndarray:
    array = ak.to_numpy(values)
    return array if array.dtype == np.float32 else array.astype(np.float64)


def format_lines(events: ak.Array) -> list[str]:
    """Event lines (without newlines, with the trailing ';') for an array as read by :func:`iterate_events`."""
    objects = ak.flatten(events["objects"], axis=1)
    codes = np.array(OBJECT_CODES, dtype=object)[ak.to_numpy(objects["obj"]).astype(np.int64)]
    columns = [codes] + [np.array(_shortest(_float_array(objects[f])), dtype=object) for f in OBJECT_FIELDS]
    object_text = columns[0] + "," + columns[1] + "," + columns[2] + "," + columns[3] + "," + columns[4] + ";"
    head = (np.array([str(i) for i in ak.to_numpy(events["event_id"]).tolist()], dtype=object) + ";"
            + np.array(ak.to_list(events["process_id"]), dtype=object) + ";")
    for field in EVENT_FIELDS[2:]:
        head = head + np.array(_shortest(_float_array(events[field])), dtype=object) + ";"
    bounds = np.concatenate([[0], np.cumsum(ak.to_numpy(ak.num(events["objects"], axis=1)))])
    object_text = object_text.tolist()
    return [h + "".join(object_text[a:b]) for h, a, b in zip(head.tolist(), bounds[:-1], bounds[1:])]


class CSVTableWriter:
    """Append chunks, as ``{branch: array}`` of :func:`table_specs`, to an open text file as CSV lines."""

    def __init__(self, handle: TextIO):
        self._handle = handle
        self.num_entries = 0

    def extend(self, table: dict[str, ak.Array]) -> None:
        self.write_events(table_to_events(table))

    def write_events(self, events: ak.Array) -> None:
        lines = format_lines(events)
        if lines:
            self._handle.write("\n".join(lines) + "\n")
        self.num_entries += len(lines)


def write_events(path: str | PathLike[str], chunks: ak.Array | Iterable[ak.Array], *, overwrite: bool = False) -> Path:
    """Write events (one array or an iterable of chunks) as a DarkMachines CSV file, atomically."""
    path = Path(path)
    chunks = [chunks] if isinstance(chunks, ak.Array) else chunks
    with atomic_output(path, overwrite=overwrite) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="\n") as handle:
            writer = CSVTableWriter(handle)
            for chunk in chunks:
                writer.write_events(chunk)
    return path


def short_decimals(values: np.ndarray) -> np.ndarray:
    """float64 values of the shortest decimals of float32 numbers: 45231.2 rather than 45231.19921875.

    Reconstructed values are float32-accurate; this keeps them as accurate and their CSV text short.
    """
    return np.array([str(v) for v in np.asarray(values, dtype=np.float32)], dtype=np.float64) if len(values) \
        else np.asarray(values, dtype=np.float64)


def count_events(path: str | PathLike[str]) -> int:
    """Number of event lines in a CSV file (one fast pass over the bytes).

    The lines :func:`iterate_events` yields: one per ``\n``, plus a last line without one; a byte order
    mark alone is no line.
    """
    n, last, size = 0, b"\n", 0
    with open(check_input_file(path), "rb") as handle:
        while block := handle.read(1 << 24):
            if size == 0 and block.startswith(BOM):
                block = block[len(BOM):]
            size += len(block)
            n += block.count(b"\n")
            last = block[-1:] or last
    return n + (size > 0 and last != b"\n")


def table_specs() -> list[BranchSpec]:
    """The flat table a CSV file is compressed as (see the module docstring)."""
    return [
        BranchSpec("event_id", "int64"),
        BranchSpec("process_id", AWKWARD_DTYPE, None, _STRING_FORM),
        *(BranchSpec(f, "float64") for f in EVENT_FIELDS[2:]),
        BranchSpec(_OBJECT_BRANCHES["obj"], "int8", OBJECT_COUNTER),
        *(BranchSpec(_OBJECT_BRANCHES[f], "float64", OBJECT_COUNTER) for f in OBJECT_FIELDS),
    ]


def events_to_table(events: ak.Array) -> dict[str, ak.Array]:
    """Events as read by :func:`iterate_events` -> ``{branch: array}`` of :func:`table_specs`."""
    table = {f: events[f] for f in EVENT_FIELDS}
    table.update({branch: events["objects"][f] for f, branch in _OBJECT_BRANCHES.items()})
    return table


def table_to_events(table: dict[str, ak.Array]) -> ak.Array:
    """Inverse of :func:`events_to_table` (object values keep their dtype: float32 stays float32)."""
    objects = ak.zip({f: table[branch] for f, branch in _OBJECT_BRANCHES.items()})
    return ak.zip({**{f: table[f] for f in EVENT_FIELDS}, "objects": objects}, depth_limit=1)
