"""Writing: one TTree writer for every output (samples, compressed containers, reconstructions), and
atomic output files (temporary file in the target directory, renamed on success, removed on failure).
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import socket
import struct
import tempfile
from collections.abc import Callable, Iterator, Sequence
from os import PathLike
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

from hepae.errors import BranchTypeError, HepaeError, OutputFileError, UnsupportedBranchError
from hepae.io.branches import BranchSpec, counts_and_values
from hepae.io.parallel_compression import CompressionAhead, parallel_compression

DEFAULT_COMPRESSION = "zstd:5"
WRITE_REFUSALS: tuple[type[BaseException], ...] = (TypeError, ValueError, KeyError, NotImplementedError,
                                                   AttributeError, OverflowError)
"""What uproot's writers raise for a type or value they cannot write; hepae asks them, branch by branch,
what they refuse (:func:`probe_refusals`)."""


def parse_compression(spec: str | None, *, threads: bool = False) -> uproot.compression.Compression | None:
    """``"zstd:5"``, ``"zlib:1"``, ``"lzma:9"``, ``"lz4:4"`` or ``"none"`` as an uproot compression.

    ``threads``: the same algorithm and level, but the baskets of a :class:`TreeWriter` chunk are
    compressed on worker threads (:mod:`hepae.io.parallel_compression`; same bytes). hepae's outputs use
    it; the plain uproot object (the default) is for a baseline that writes as uproot does.
    """
    if spec is None or spec.lower() == "none":
        return None
    algorithm, _, level = spec.partition(":")
    classes = {"zstd": uproot.ZSTD, "zlib": uproot.ZLIB, "lzma": uproot.LZMA, "lz4": uproot.LZ4}
    if algorithm.lower() not in classes or (level and not level.isdigit()):
        raise ValueError(f"unknown compression {spec!r}; use one of {sorted(classes)} with ':<level>', or 'none'")
    compression = classes[algorithm.lower()](int(level) if level else 5)
    return parallel_compression(compression) if threads else compression


def check_output_path(
    path: str | PathLike[str], *, overwrite: bool = False, inputs: Sequence[str | PathLike[str]] = ()
) -> Path:
    """Raise :class:`OutputFileError` unless ``path`` can be written; creates nothing.

    Refuses an existing ``path`` unless ``overwrite``, a ``path`` that is one of the ``inputs``, a
    directory that does not exist (or is a file), and symbolic link loops.
    """
    path = Path(path)
    for where, what in ((path.parent, "output directory"), (path, "output")):
        try:
            os.stat(where)
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise OutputFileError(f"{what} {where} is a symbolic link loop; choose another output path") from None
    for source in inputs:
        source = Path(source)
        if path.resolve() == source.resolve() or (source.exists() and path.exists() and path.samefile(source)):
            raise OutputFileError(f"output {path} is the input file; choose another output path")
    if path.exists() and not overwrite:
        raise OutputFileError(f"output {path} already exists; pass overwrite=True (CLI: --overwrite) to replace it")
    if path.exists() and not path.is_file():
        raise OutputFileError(f"output {path} exists and is not a regular file")
    if path.parent.exists() and not path.parent.is_dir():
        raise OutputFileError(f"output directory {path.parent} is not a directory")
    if not path.parent.is_dir():
        raise OutputFileError(f"output directory {path.parent} does not exist")
    return path


TMP_SUFFIX = ".hepae-tmp"
"""Suffix of the temporary files of :func:`atomic_output`: ``.<name>.<host>.<pid>.<random>.hepae-tmp``."""

_WRITE_FAILURES = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large (the file system's or the process's file-size limit)",
}
"""Errors that only a write gives: wherever they are raised (or wrapped), the output is what failed."""


def _host() -> str:
    """This machine's name as it appears in temporary file names (no dots, at most 64 characters)."""
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:64] or "localhost"


def _tmp_prefix(path: Path) -> str:
    """``.<name>.``, the start of ``path``'s temporary file names (a long name cut, to stay within 255 bytes)."""
    return f".{path.name[:120]}."


def _pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (one of another user counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0
    return True


def _lock(fd: int, *, blocking: bool = True) -> bool:
    """Take an exclusive ``flock`` on ``fd``; False if another process holds one, or if a non-blocking probe
    finds a file system without locks (True without ``fcntl``, where the PID check alone decides)."""
    try:
        import fcntl
    except ImportError:  # Windows: the PID check alone decides
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    except OSError:  # a file system without locks: a probe cannot tell whether the writer lives, so it keeps the file
        return blocking
    return True


def remove_stale_temporaries(path: str | PathLike[str]) -> list[Path]:
    """Remove the temporary files of :func:`atomic_output` for ``path`` whose writer is dead; return them.

    A temporary file counts as stale when its name carries this host's name and the PID of a process
    that no longer exists (a run killed with SIGKILL, or by the out-of-memory killer), and no process
    holds its lock. Files of other hosts (a shared file system) and of live processes are left alone.
    """
    path = Path(path)
    prefix, host, removed = _tmp_prefix(path), _host(), []
    try:
        candidates = [p for p in path.parent.iterdir() if p.name.startswith(prefix) and p.name.endswith(TMP_SUFFIX)]
    except OSError:
        return removed
    for candidate in candidates:
        parts = candidate.name[len(prefix):-len(TMP_SUFFIX)].rsplit(".", 2)
        if len(parts) != 3 or parts[0] != host or not parts[1].isdigit() or _pid_alive(int(parts[1])):
            continue
        try:
            fd = os.open(candidate, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        except OSError:
            continue
        try:
            if _lock(fd, blocking=False):
                candidate.unlink()
                removed.append(candidate)
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


def _write_failure(err: BaseException) -> str | None:
    """What went wrong if ``err`` (or an error it wraps) is a failed write: full disk, quota, size limit, EIO.

    ENOSPC, EDQUOT and EFBIG are recognized even when a reader or writer wrapped them (``__cause__`` or
    ``__context__``): reading never raises them. EIO only when it arrives unwrapped, as a plain
    ``OSError``: wrapped in an input error it was the input that could not be read.
    """
    if isinstance(err, OSError) and not isinstance(err, HepaeError) and err.errno == errno.EIO:
        return "input/output error (a failing disk or network file system?)"
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _WRITE_FAILURES:
            return _WRITE_FAILURES[current.errno]
        current = current.__cause__ or current.__context__
    return None


@contextlib.contextmanager
def output_errors(path: str | PathLike[str]) -> Iterator[None]:
    """Report a failed write in the block (disk full, quota, file-size limit, EIO) as :class:`OutputFileError`.

    The message names ``path``, however deep the error was raised or wrapped: a full output disk is never
    reported as a damaged input. Other errors pass unchanged.
    """
    try:
        yield
    except Exception as err:
        reason = _write_failure(err)
        if reason is None:
            raise
        raise OutputFileError(f"cannot write output {path}: {reason}; no partial output was left") from err


@contextlib.contextmanager
def atomic_output(
    path: str | PathLike[str], *, overwrite: bool = False, inputs: Sequence[str | PathLike[str]] = ()
) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` only if the block succeeds.

    The checks of :func:`check_output_path` come first. On any exception (including
    KeyboardInterrupt) the temporary file is removed and nothing is left at ``path``; a write that fails
    for lack of space, quota or file-size limit, or with EIO, raises :class:`OutputFileError` naming
    ``path``. The temporary file is ``.<name>.<host>.<pid>.<random>.hepae-tmp``; those of earlier runs
    on this host whose process is dead (killed with SIGKILL) are removed first
    (:func:`remove_stale_temporaries`).
    """
    path = check_output_path(path, overwrite=overwrite, inputs=inputs)
    directory = path.parent
    remove_stale_temporaries(path)
    with output_errors(path):
        try:
            fd, tmp_name = tempfile.mkstemp(prefix=f"{_tmp_prefix(path)}{_host()}.{os.getpid()}.", suffix=TMP_SUFFIX,
                                            dir=directory)
        except OSError as err:
            if err.errno in _WRITE_FAILURES:
                raise
            raise OutputFileError(f"cannot write to output directory {directory}: {err.strerror}") from None
    tmp = Path(tmp_name)
    try:
        with output_errors(path):
            try:
                _lock(fd, blocking=False)  # held while writing: tells remove_stale_temporaries this one lives
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the output ordinary permissions
                yield tmp
                os.replace(tmp, path)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
    finally:
        os.close(fd)


def _ak_type(dtype: np.dtype) -> ak.types.Type:
    dtype = np.dtype(dtype)
    if dtype.subdtype is not None:
        base, shape = dtype.subdtype
        inner: ak.types.Type = ak.types.NumpyType(ak.types.numpytype.dtype_to_primitive(base))
        for size in reversed(shape):
            inner = ak.types.RegularType(inner, size)
        return inner
    return ak.types.NumpyType(ak.types.numpytype.dtype_to_primitive(dtype))


def _chunk_length(data: dict[str, object], branches: Sequence[BranchSpec], what: str) -> int:
    """Entries in one chunk (0 if empty or no branches); all branches must agree."""
    lengths = {len(data[s.name]) for s in branches}  # type: ignore[arg-type]
    if len(lengths) > 1:
        raise BranchTypeError(f"{what}: branches of one chunk have different lengths {sorted(lengths)}")
    return lengths.pop() if lengths else 0


def _root_string_length(text: str) -> int:
    """Bytes of a string in a ROOT key: its UTF-8 bytes after a 1-byte length (5 bytes from 255 on)."""
    size = len(text.encode(errors="surrogateescape"))
    return size + (1 if size < 255 else 5)


def _basket_key_length(tree: str, branch: str) -> int:
    """``fKeylen`` of a TBasket key as uproot writes it: the key header (34 bytes, 64-bit seeks), the class
    name ``TBasket``, the branch's and the tree's names, the basket header (18 bytes) and one flag byte."""
    return 34 + _root_string_length("TBasket") + _root_string_length(branch) + _root_string_length(tree) + 18 + 1


class TreeWriter:
    """Write one TTree with given branches, in chunks, keeping the branches' order.

    Jagged branches that name the same counter share one counter branch, which uproot generates (as
    int32) from the per-event counts and places before the first of them; their counts must agree.
    Pass each chunk as ``{name: array}``.
    """

    def __init__(self, file: uproot.WritableDirectory, name: str, branches: Sequence[BranchSpec], title: str = ""):
        self.name = name
        self.branches = list(branches)
        self._counter_of = {s.name: s.counter for s in self.branches if s.jagged}
        types: dict[str, object] = {}
        for spec in self.branches:
            types[spec.name] = ak.types.ListType(_ak_type(spec.numpy_dtype)) if spec.jagged else spec.numpy_dtype
        self._tree = file.mktree(name, types, title=title, counter_name=self._counter_of.__getitem__)
        compression = self._tree.compression  # one object for every branch, or a dict if they differ
        self._ahead = compression if isinstance(compression, CompressionAhead) else None
        self.num_entries = 0

    def extend(self, data: dict[str, object]) -> None:
        """Append one chunk (all branches, same number of entries); empty chunks are skipped."""
        length = _chunk_length(data, self.branches, f"tree '{self.name}'")
        if length == 0:
            return
        chunk: dict[str, object] = {}
        counts: dict[str, tuple[str, np.ndarray]] = {}
        contents: dict[str, np.ndarray] = {}
        for spec in self.branches:
            values = data[spec.name]
            if spec.jagged:
                values = values if isinstance(values, ak.Array) else ak.Array(values)
                num, contents[spec.name] = counts_and_values(values)
                if contents[spec.name].dtype != spec.numpy_dtype.base:
                    values = ak.values_astype(values, spec.numpy_dtype.base)
                    contents[spec.name] = counts_and_values(values)[1]
                first = counts.setdefault(spec.counter, (spec.name, num))  # type: ignore[arg-type]
                if first[0] != spec.name and not np.array_equal(first[1], num):
                    raise BranchTypeError(
                        f"tree '{self.name}': jagged branches '{first[0]}' and '{spec.name}' share the counter "
                        f"'{spec.counter}' but have different numbers of entries per event"
                    )
            else:
                values = ak.to_numpy(values) if isinstance(values, ak.Array) else values
                values = np.asarray(values, dtype=spec.numpy_dtype.base)
            chunk[spec.name] = values
        if self._ahead is None:
            self._tree.extend(chunk)
        else:
            try:
                self._ahead.compress_ahead(self._baskets(chunk, counts, contents))
                self._tree.extend(chunk)
            finally:
                self._ahead.finish()
        self.num_entries += length

    def _baskets(self, chunk: dict[str, object], counts: dict[str, tuple[str, np.ndarray]],
                 contents: dict[str, np.ndarray]) -> Iterator[bytes]:
        """The bytes of the baskets uproot writes for ``chunk``, in its order, before they are compressed.

        That order is the tree's: each counter uproot generates just before the first branch that names it.
        A flat branch's basket is its values, big-endian; a jagged one's is its values, then the number of
        entry offsets + 1 (4 bytes) and the offsets (int32, in bytes from the start of the basket's key,
        ending with the end of its values). Bytes foreseen wrong only cost time (uproot's own are compressed).
        """
        tree_name = self.name.rsplit("/", 1)[-1]
        written_counters: set[str] = set()
        for spec in self.branches:
            values = chunk[spec.name]
            if not spec.jagged:
                yield np.asarray(values).astype(spec.numpy_dtype.base.newbyteorder(">"), copy=False).tobytes()
                continue
            num = counts[spec.counter][1]  # type: ignore[index]
            if spec.counter not in written_counters:
                written_counters.add(spec.counter)  # type: ignore[arg-type]
                yield num.astype(">i4").tobytes()
            if spec.numpy_dtype.subdtype is not None:
                continue  # jagged arrays of fixed-size arrays: left to uproot
            content = contents[spec.name].astype(spec.numpy_dtype.newbyteorder(">"))
            offsets = np.zeros(len(num) + 1, dtype=np.int64)
            np.cumsum(num, out=offsets[1:])
            offsets = (offsets * content.dtype.itemsize + _basket_key_length(tree_name, spec.name)).astype(">i4")
            yield b"".join((content, struct.pack(">I", len(offsets)), offsets))  # one copy of the values


class NTupleWriter:
    """Write one RNTuple with given fields, in chunks, keeping the fields' order.

    Numeric specs are cast to their dtype; fields of any other type are written as they come (their
    form, from the input, defines the RNTuple's type). Pass each chunk as ``{name: array}``.
    """

    def __init__(self, file: uproot.WritableDirectory, name: str, branches: Sequence[BranchSpec], title: str = ""):
        self.name = name
        self.branches = list(branches)
        form = ak.forms.RecordForm([s.awkward_form() for s in self.branches], [s.name for s in self.branches])
        try:
            self._ntuple = file.mkrntuple(name, form, description=title)
        except WRITE_REFUSALS:
            raise UnsupportedBranchError(
                f"RNTuple '{name}': uproot cannot write {_unwritable_fields(self.branches)}") from None
        self.num_entries = 0

    def extend(self, data: dict[str, object]) -> None:
        """Append one chunk (all fields, same number of entries); empty chunks are skipped."""
        length = _chunk_length(data, self.branches, f"RNTuple '{self.name}'")
        if length == 0:
            return
        chunk: dict[str, object] = {}
        for spec in self.branches:
            values = data[spec.name]
            if spec.numeric:
                values = ak.values_astype(ak.Array(values), spec.numpy_dtype.base)
            chunk[spec.name] = values
        try:
            self._ntuple.extend(ak.zip(chunk, depth_limit=1))
        except WRITE_REFUSALS:
            reasons = _unwritable_fields(self.branches, chunk)
            raise UnsupportedBranchError(f"RNTuple '{self.name}': uproot cannot write {reasons}") from None
        self.num_entries += length


def rntuple_refusals(branches: Sequence[BranchSpec], chunk: dict[str, object] | None = None) -> dict[str, str]:
    """The fields uproot refuses to declare (or, given a chunk, to write) in an RNTuple: name -> reason.

    All fields are tried at once first; only if that fails, one by one (in memory, nothing is written).
    """
    import io

    def attempt(specs: Sequence[BranchSpec]) -> None:
        with uproot.recreate(io.BytesIO()) as probe:
            form = ak.forms.RecordForm([s.awkward_form() for s in specs], [s.name for s in specs])
            ntuple = probe.mkrntuple("probe", form)
            if chunk is not None:
                ntuple.extend(ak.zip({s.name: chunk[s.name] for s in specs}, depth_limit=1))

    return {name: f"uproot cannot write it to an RNTuple ({type(err).__name__}: {err})"
            for name, err in (probe_refusals(branches, attempt) or {}).items()}


def probe_refusals(branches: Sequence[BranchSpec], attempt: Callable[[Sequence[BranchSpec]], None]
                   ) -> dict[str, Exception] | None:
    """The branches for which ``attempt`` (writing them in memory) fails, with the error it gave.

    All branches are tried at once first (``None`` if that works); only if that fails, one by one
    (``{}`` if each works alone: only together do they fail).
    """
    try:
        attempt(branches)
        return None
    except WRITE_REFUSALS:
        pass
    refused = {}
    for spec in branches:
        try:
            attempt([spec])
        except WRITE_REFUSALS as err:
            refused[spec.name] = err
    return refused


def _unwritable_fields(branches: Sequence[BranchSpec], chunk: dict[str, object] | None = None) -> str:
    refused = rntuple_refusals(branches, chunk)
    return ", ".join(f"'{name}': {reason}" for name, reason in refused.items()) or "these fields together"


def make_writer(
    file: uproot.WritableDirectory, format: str, name: str, branches: Sequence[BranchSpec], title: str = ""
) -> TreeWriter | NTupleWriter:
    """A :class:`TreeWriter` (``format="ttree"``) or :class:`NTupleWriter` (``"rntuple"``)."""
    if format == "rntuple":
        return NTupleWriter(file, name, branches, title=title)
    if format == "ttree":
        return TreeWriter(file, name, branches, title=title)
    raise ValueError(f"unknown output format {format!r}")


class _KeptBytes(io.BytesIO):
    """A file in memory whose bytes stay readable after uproot closes it."""

    def close(self) -> None:
        pass


def declare_classes(file: uproot.WritableDirectory, write: Callable[[uproot.WritableDirectory], None]) -> None:
    """Declare in ``file``'s streamer list the classes that ``write`` writes into a file (run on one in memory).

    uproot writes a file's streamer list where there is room when its first class arrives and moves the list
    to the end of the file when it outgrows that place. Classes that arrive after the tables (a compressed
    file's metadata string, carried histograms) would leave the old list behind as dead bytes (~20 kB with
    the trees' classes). Declared before the tables, the list moves while the file is still short, and the
    place it leaves is taken by the baskets written after it.
    """
    buffer = _KeptBytes()
    with uproot.recreate(buffer) as probe:
        write(probe)
    with uproot.open(io.BytesIO(buffer.getvalue())) as written:
        streamers = [s for versions in written.file.streamers.values() for s in versions.values()]
    file.file.update_streamers(streamers)
