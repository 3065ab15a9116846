"""Catalogue rows (see ``tests/catalogue.py``): command-line runs and input/output paths, and the machine
they run on (full disks, missing devices, special files)."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
from collections.abc import Iterator
from pathlib import Path

import awkward as ak
import uproot

import hepae
import hepae.io.tensors
from catalogue import Case
from hepae import errors
from hepae.cluster import ClusterError
from hepae.io.darkmachines import count_events, read_events
from hepae.ml.devices import DeviceError

EVENTS = ["1;tt;1;2;3;j,1,2,3,4;", "2;tt;0.5;100;-3.1;", "3;w;2;5;0;e-,1,2,3,4;"]


@contextlib.contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """A real 'file too large' (EFBIG) for writes past ``limit`` bytes, as on a full disk (no root needed).

    Python ignores SIGXFSZ, so a write past RLIMIT_FSIZE fails with EFBIG instead of killing the process.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


@contextlib.contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Turn a hang (e.g. a blocking read of a FIFO) into a TimeoutError rather than a stuck test run."""
    def expire(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _full_disk_compress(ctx: dict) -> None:
    with file_size_limit(20_000):
        hepae.compress(ctx["sample"], ctx["tmp"] / "o.root", ctx["model"], progress=False)


def _full_disk_decompress(ctx: dict) -> None:
    with file_size_limit(20_000):
        hepae.decompress(ctx["container"], ctx["tmp"] / "o.root", progress=False)


def _full_disk_model(ctx: dict) -> None:
    model = hepae.load_model(ctx["model"])
    with file_size_limit(1_000):
        model.save(ctx["tmp"] / "m.hepae")


def _fifo_input(ctx: dict) -> None:
    fifo = ctx["tmp"] / "fifo.root"
    os.mkfifo(fifo)
    with deadline(60):
        hepae.compress(fifo, ctx["tmp"] / "o.root", ctx["model"], progress=False)


def _symlink_loop(ctx: dict) -> None:
    loop = ctx["tmp"] / "loop.root"
    loop.symlink_to(loop.name)
    list(hepae.io.tensors.iterate_collection(loop, "atlas-jets-4d"))


def _dangling_link(ctx: dict) -> None:
    link = ctx["tmp"] / "link.root"
    link.symlink_to("moved-away.root")
    hepae.compress(link, ctx["tmp"] / "o.root", ctx["model"], progress=False)


def _csv(ctx: dict, name: str, data: bytes) -> Path:
    path = ctx["tmp"] / name
    path.write_bytes(data)
    return path


def _bom_and_crlf(ctx: dict) -> None:
    path = _csv(ctx, "excel.csv", b"\xef\xbb\xbf" + "\r\n".join(EVENTS).encode() + b"\r\n")
    events = read_events(path)
    assert events["event_id"].tolist() == [1, 2, 3] and count_events(path) == 3


def _mismatched_rntuple(ctx: dict) -> None:
    featureset = hepae.load_featureset("physlite-rntuple-jets-4d")
    jets = [[1e4, 2e4], [3e4], [], [4e4, 5e4, 6e4]]
    data = {b: ak.Array(jets * 3) for b in featureset.branches}
    data[featureset.branches[2]] = ak.Array(jets * 2 + [[1e4, 2e4], [3e4], [], [4e4, 5e4]])  # event 11: 2, not 3
    path = ctx["tmp"] / "mismatch.root"
    with uproot.recreate(path) as f:
        f.mkrntuple(featureset.tree, ak.zip(data, depth_limit=1))
    list(hepae.io.tensors.iterate_collection(path, featureset, step_size=5))


def _many_into_a_file(ctx: dict) -> None:
    (ctx["tmp"] / "outdir").write_text("a file")
    hepae.compress_many(ctx["sample"], ctx["model"], ctx["tmp"] / "outdir", workers=1, progress=False)


CLI_CASES: list[Case] = [
    Case("output disk full (or quota, or file-size limit) while compressing", errors.OutputFileError,
         "cannot write output <path>: <no space left on device; disk quota exceeded; or file too large (the file "
         "system's or the process's file-size limit)>; no partial output was left", _full_disk_compress),
    Case("output disk full while decompressing (not reported as damaged input)", errors.OutputFileError,
         "cannot write output <path>: <reason>; no partial output was left", _full_disk_decompress),
    Case("output disk full while saving a model (train)", errors.OutputFileError,
         "cannot write output <path>: <reason>; no partial output was left", _full_disk_model),
    Case("a torch device that does not exist here", DeviceError,
         "device 'cuda:99' does not exist on this machine (<it has no / n CUDA devices>); devices on this machine: "
         "cpu<, cuda:0, ...> (or auto)",
         lambda c: hepae.compress(c["sample"], c["tmp"] / "o.root", c["model"], device="cuda:99", progress=False)),
    Case("a torch device name torch does not know", DeviceError,
         "unknown torch device 'tpu'; devices on this machine: cpu<, cuda:0, ...> (or auto)",
         lambda c: hepae.load_model(c["model"]).to("tpu")),
    Case("input is a FIFO (never read: it would block)", errors.InputFileError,
         "input file <path> is not a regular file (a FIFO); expected a file", _fifo_input),
    Case("input is a symbolic link loop", errors.InputFileError,
         "input file <path> is a symbolic link loop; expected a file", _symlink_loop),
    Case("input is a dangling symbolic link", errors.InputFileError,
         "input file <path> is a dangling symbolic link (to moved-away.root); expected a file", _dangling_link),
    Case("input is a directory", errors.InputFileError,
         "input file <path> is not a regular file (a directory); expected a file",
         lambda c: hepae.compress(c["tmp"], c["tmp"] / "o.root", c["model"], progress=False)),
    Case("output is a symbolic link loop", errors.OutputFileError,
         "output <path> is a symbolic link loop; choose another output path",
         lambda c: (c["tmp"] / "o.root").symlink_to("o.root") or hepae.compress(
             c["sample"], c["tmp"] / "o.root", c["model"], progress=False)),
    Case("output directory is a file", errors.OutputFileError, "output directory <path> is not a directory",
         lambda c: (c["tmp"] / "file").write_text("x") and hepae.compress(
             c["sample"], c["tmp"] / "file" / "o.root", c["model"], progress=False)),
    Case("DarkMachines CSV with a UTF-8 byte order mark and \\r\\n line endings", None,
         "read like any other: the mark is skipped, and counting and parsing both see one line per '\\n'",
         _bom_and_crlf),
    Case("DarkMachines CSV with old Mac line endings (a lone \\r)", errors.MalformedCSVError,
         "<path>, line 1: a carriage return ('\\r') inside the line (old Mac line endings?); lines must end with "
         "'\\n' or '\\r\\n'",
         lambda c: read_events(_csv(c, "mac.csv", "\r".join(EVENTS).encode() + b"\r"))),
    Case("RNTuple fields of one collection with different object counts", errors.BranchTypeError,
         "branches 'AnalysisJetsAuxDyn:pt' and 'AnalysisJetsAuxDyn:phi' in <path> have different numbers of objects "
         "in event 11 (3 and 2); they cannot be one collection (expected equal counts per event)",
         _mismatched_rntuple),
    Case("compress-many -o an existing file (it takes a directory)", errors.OutputFileError,
         "output directory <path> exists and is not a directory; -o takes a directory for the output files",
         _many_into_a_file),
    Case("compress-many with fewer than one worker (--workers 0)", ClusterError,
         "workers=0: a local Dask cluster needs at least one worker process (CLI: --workers N with N >= 1)",
         lambda c: hepae.compress_many(c["sample"], c["model"], c["tmp"] / "out", workers=0, progress=False)),
    Case("validate -o an existing file (it takes a directory)", errors.OutputFileError,
         "report directory <path> exists and is not a directory; choose a directory path",
         lambda c: (c["tmp"] / "report").write_text("a file") and hepae.validate(
             c["sample"], c["sample"], c["tmp"] / "report", featureset="atlas-jets-4d", progress=False)),
]
