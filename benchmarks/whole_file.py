"""Whole files under a precision profile: bytes against what experiments do today, and speed against a copy.

    python benchmarks/whole_file.py                        # the samples in ../shared/data (skipped if absent)
    python benchmarks/whole_file.py --input f.root --profile nanoaod --name mine

For each file, in the same run on the same machine:

* the input as written;
* a lossless rewrite, as uproot writes ROOT files, with ZSTD (level 5) and LZMA (level 9);
* NanoAOD-style mantissa truncation of every lossy branch at its rule's precision (:mod:`hepae.baselines`),
  then ZSTD or LZMA: the baseline to beat;
* hepae under the profile (``hepae compress --profile``), with ZSTD and with LZMA for what it keeps exactly.

Each in two counts: the **whole file** on disk (what a user's disk holds; all of these files but the input
are written by uproot, so they pay the same per-file costs: ROOT's streamer list, tree headers; the rewrites
carry the file's other objects as hepae does), and the
**table**, the main TTree or RNTuple's stored bytes (a file's other objects are not counted, so that every
row compares the same data; for hepae: the kept branches, the codec streams and the metadata, as stored).

``hepae / truncation`` is hepae's better file over the better truncated one (aim: <= 0.75), whole files and
tables; every value of both is checked against its rule. Throughput: compress and decompress time against
the lossless ZSTD rewrite (a plain uproot read-and-write of the same table and the file's other objects,
aim >= 0.5x its speed), each the fastest of ``--repeat`` rounds or more (a small file's rounds go on for
``--min-seconds``, 5 s, at most 20); each round runs the copy, compress and decompress in turn, so that a slow
minute of a shared machine slows all three. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import hepae
from hepae.baselines import rewrite
from hepae.codecs import ErrorBound
from hepae.codecs.bounds import parse_rule
from hepae.container import ContainerReader
from hepae.container.format import METADATA_CHECKSUM_KEY, METADATA_KEY
from hepae.io.sources import open_source
from hepae.validation.branches import compare_branches

SHARED = Path(os.environ.get("HEPAE_SHARED", Path(__file__).resolve().parents[2] / "shared")) / "data"
FILES = [  # name, path, profile, --drop-unsupported, what it tells
    ("qcd xAOD", SHARED / "qcd_dijet_13TeV_xaod.root", "xaod", False, "the sample the bounded coder was developed on"),
    ("γ+jet xAOD", SHARED / "gammajet_13TeV_xaod.root", "xaod", False, "unseen: other process and seed"),
    ("γ+jet NanoAOD", SHARED / "gammajet_13TeV_nanoaod.root", "nanoaod", False, "unseen; every collection"),
    ("ttbar DarkMachines CSV", SHARED / "ttbar_13TeV_darkmachines.csv", "darkmachines", False, "unseen"),
    ("real CMS NanoAOD (200 ev.)", SHARED / "real" / "nanoAOD_2015_CMS_Open_Data_ttbar.root", "nanoaod", False,
     "correctness only: tiny"),
    ("real PHYSLITE RNTuple", SHARED / "real" / "uproot-physlite-rntuple_v1-0-0-0.root", "physlite", True,
     "correctness only: tiny"),
]


def interleaved(repeat: int, steps: dict[str, Callable[[], object]], at_least: float = 5.0, most: int = 20
                ) -> tuple[dict[str, float], int]:
    """The fastest run of each step, the steps run in turn within each round: ``repeat`` rounds, more (up to
    ``most``) until the rounds have taken ``at_least`` seconds, so that a small file's fastest run is not one
    of two or three taken in a slow minute."""
    times: dict[str, list[float]] = {name: [] for name in steps}
    started_all = time.perf_counter()
    rounds = 0
    while rounds < repeat or (rounds < most and time.perf_counter() - started_all < at_least):
        rounds += 1
        for name, step in steps.items():
            started = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - started)
    return {name: min(values) for name, values in times.items()}, rounds


def table_bytes(path: Path, table: str) -> int | None:
    """On-disk bytes of a file's table (a CSV file: the whole file); None where they cannot be told (ROOT kept
    the baskets of the real NanoAOD file's small tree inside the tree's own record)."""
    if path.suffix == ".csv":
        return path.stat().st_size
    with open_source(path, table) as source:
        size = source.stored_bytes(source.layout.names)
        return None if size is None else int(size)


def hepae_table_bytes(path: Path) -> tuple[int, str]:
    """A compressed file's table as stored: its kept branches, the codec streams and the metadata (its key's
    bytes on disk, compressed as the file is, and its checksum's)."""
    with ContainerReader(path) as reader:
        kept = [s.name for s in reader.stored_specs]
        streams = sum(reader.stream_bytes().values())
        metadata = sum(reader.directory.key(k).data_compressed_bytes for k in (METADATA_KEY, METADATA_CHECKSUM_KEY))
        return int(reader.table.stored_bytes(kept) or 0) + streams + metadata, reader.metadata["tree"]


def measure(name: str, source: Path, profile: str | None, drop: bool, note: str, work: Path, repeat: int,
            min_seconds: float = 5.0) -> dict:
    compressed = work / "hepae.root"
    summary = hepae.compress(source, compressed, profile=profile, overwrite=True, drop_unsupported=drop, check=False,
                             progress=False)
    with ContainerReader(compressed) as reader:
        applied = reader.metadata["profile"]["applied"]
        table = reader.metadata["tree"]
        profile = reader.metadata["profile"]["name"]
    # the three timed steps in turn, round after round, so that a slow minute of a shared machine slows each alike
    timed = {"copy": lambda: rewrite(source, work / "copy.root", table=table, overwrite=True, carry=True),
             "compress": lambda: hepae.compress(source, compressed, profile=profile, overwrite=True,
                                                drop_unsupported=drop, check=False, progress=False),
             "decompress": lambda: hepae.decompress(compressed, work / "reco.root", overwrite=True, progress=False)}
    seconds, rounds = interleaved(repeat, timed, at_least=min_seconds)
    copy_s, compress_s, decompress_s = seconds["copy"], seconds["compress"], seconds["decompress"]
    hepae.compress(source, work / "hepae-lzma.root", profile=profile, overwrite=True, drop_unsupported=drop,
                   check=False, compression="lzma:9", progress=False)
    bounds = {k: ErrorBound(k, *parse_rule(v)) for k, v in applied.items()}
    sizes = {"input": table_bytes(source, table)}
    files = {"input": source.stat().st_size}
    for compression in ("zstd:5", "lzma:9"):
        tag = compression.split(":")[0]
        for label, truncate in (("lossless", None), ("truncated", bounds)):
            path = work / f"{label}-{tag}.root"
            rewrite(source, path, table=table, truncate=truncate, compression=compression, overwrite=True,
                    carry=True)
            sizes[f"{label} {tag}"], files[f"{label} {tag}"] = table_bytes(path, table), path.stat().st_size
    for tag, path in (("zstd", compressed), ("lzma", work / "hepae-lzma.root")):
        sizes[f"hepae {tag}"], files[f"hepae {tag}"] = hepae_table_bytes(path)[0], path.stat().st_size
    checks = {}
    for label, path in (("hepae", work / "reco.root"), ("truncated", work / "truncated-zstd.root")):
        errors = compare_branches(source, path, table, applied)
        checks[label] = max((e.max_ratio for e in errors.values()), default=0.0)
    def ratio(counted: dict[str, int]) -> float:
        """hepae's better file over the better truncated one."""
        return round(min(counted["hepae zstd"], counted["hepae lzma"]) /
                     min(counted["truncated zstd"], counted["truncated lzma"]), 6)  # printed to 3: rounded once

    return {
        "name": name, "file": source.name, "profile": profile, "note": note, "table": table,
        "lossy_branches": len(applied), "events": summary["n_events"], "bytes": sizes, "file_bytes": files,
        "hepae_over_truncation": ratio(files), "table_hepae_over_truncation": ratio(sizes),
        "max_error_over_bound": checks,
        "seconds": {"copy": copy_s, "compress": compress_s, "decompress": decompress_s}, "rounds": rounds,
        "speed_vs_copy": {"compress": round(copy_s / compress_s, 3), "decompress": round(copy_s / decompress_s, 3)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", type=Path, help="one file instead of the shared samples")
    parser.add_argument("--profile", help="its profile (default: the one that fits it)")
    parser.add_argument("--name", default="input")
    parser.add_argument("--repeat", type=int, default=3,
                        help="rounds of the timed steps (copy, compress, decompress in turn); the fastest counts")
    parser.add_argument("--min-seconds", type=float, default=5.0,
                        help="more rounds (up to 20) until a file's rounds have taken this long")
    parser.add_argument("--generated-events", type=int, default=300_000,
                        help="also a generated xAOD-layout file with 27 jet variables of this many events (seed 11, "
                             "several chunks: the throughput of a file longer than one chunk); 0: none")
    parser.add_argument("--json-out", default="whole_file.json")
    args = parser.parse_args()
    if args.input is not None:
        files = [(args.name, args.input, args.profile, False, "")]
    else:
        files = [f for f in FILES if f[1].is_file()]
        if not files:
            raise SystemExit(f"no sample files in {SHARED}; pass --input")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.generated_events and args.input is None:
            generated = hepae.make_sample(Path(tmp) / "generated.root", "atlas-jets-27d",
                                          n_events=args.generated_events, seed=11)
            files.append((f"generated xAOD 27D ({args.generated_events // 1000}k ev.)", generated, "xaod", False,
                          "unseen seed; several chunks"))
        for name, path, profile, drop, note in files:
            print(f"{name}: {path.name} under '{profile or 'the profile that fits it'}' ...", file=sys.stderr)
            rows.append(measure(name, path, profile, drop, note, Path(tmp), args.repeat, args.min_seconds))
    kib = lambda n: f"{n / 1024:9.1f}" if n is not None else "      n/a"  # noqa: E731
    columns = ("input", "lossless zstd", "lossless lzma", "truncated zstd", "truncated lzma", "hepae zstd",
               "hepae lzma")
    header = ["file", "profile", "lossy", "input", "lossless zstd", "lossless lzma", "trunc. zstd", "trunc. lzma",
              "hepae zstd", "hepae lzma", "hepae/trunc.", "max err/bound", "compress", "decompress"]
    for title, key, ratio_key in (("whole files", "file_bytes", "hepae_over_truncation"),
                                  ("tables (the main TTree/RNTuple; hepae: with its streams and metadata)", "bytes",
                                   "table_hepae_over_truncation")):
        print(f"{title}, KiB; speeds relative to a plain uproot copy (1.0)")
        print(" | ".join(header))
        for r in rows:
            print(" | ".join([r["name"], r["profile"], str(r["lossy_branches"]), *(kib(r[key][k]) for k in columns),
                              f"{r[ratio_key]:.3f}", f"{max(r['max_error_over_bound'].values()):.3f}",
                              f"{r['speed_vs_copy']['compress']:.2f}x", f"{r['speed_vs_copy']['decompress']:.2f}x"]))
        print()
    Path(args.json_out).write_text(json.dumps({"rows": rows}, indent=1, default=str))


if __name__ == "__main__":
    main()
