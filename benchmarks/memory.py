"""Peak memory of compress and decompress at 1x and 10x the same content: streaming must keep it flat.

    python benchmarks/memory.py                                # 100k and 1M generated events, 2 MB chunks
    python benchmarks/memory.py --events 300000 --step-size "50 MB"
    python benchmarks/memory.py --error-bound 1e-3         # the ae codec with this bound on every column
    python benchmarks/memory.py --profile xaod             # the whole file under a precision profile

Each step runs in its own process and reports its peak resident set size (VmHWM from /proc: ru_maxrss
would include the parent's size at fork time on Linux).
The 1x sample must span several chunks (the table shows how many), otherwise the comparison is between
a whole file and a chunk. The 10x file is the 1x sample written 10 times, so that both have baskets of the
same size (uproot reads a basket whole: a file with larger baskets needs more memory at any length).
Prints a table with the 10x/1x ratios (target <= 1.1) and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import uproot

import hepae
from hepae.io.sources import open_source
from hepae.io.writing import DEFAULT_COMPRESSION, make_writer, parse_compression

STEP = """
import json, sys, hepae
step, step_size, source, target = sys.argv[1:5]
step_size = int(step_size) if step_size.isdigit() else step_size
if step == "compress":
    codec, profile = json.loads(sys.argv[6]), sys.argv[7]
    if profile != "-":  # the whole file under a precision profile: no model
        summary = hepae.compress(source, target, profile=profile, step_size=step_size, progress=False)
    else:
        summary = hepae.compress(source, target, sys.argv[5], codec=codec, step_size=step_size, progress=False,
                                 device="cpu")
else:
    summary = hepae.decompress(source, target, progress=False, device="cpu")  # follows compression's chunks
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"chunks": summary["chunks"], "peak_kb": hwm}))
"""


def run_step(*args: str) -> tuple[float, int]:
    """Run one step in a fresh Python process; its peak RSS in MB and the number of chunks it took."""
    process = subprocess.Popen([sys.executable, "-c", STEP, *args], stdout=subprocess.PIPE, text=True)
    output = process.stdout.read()  # type: ignore[union-attr]
    status = process.wait()
    if status != 0:
        raise SystemExit(f"step {args[0]} failed")
    return json.loads(output)["peak_kb"] / 1024, json.loads(output)["chunks"]


def repeated(source: Path, target: Path, factor: int) -> Path:
    """``source``'s table written ``factor`` times into ``target``: the same content and the same baskets (a
    fresh sample of 10x the events would have larger baskets, which uproot reads whole: the comparison would
    then measure the basket size, not the file size)."""
    with open_source(source, "CollectionTree") as table:
        specs = table.layout.branches
        content = table.read([s.name for s in specs], 0, table.layout.num_entries)  # the 1x sample, whole
        with uproot.recreate(target, compression=parse_compression(DEFAULT_COMPRESSION)) as file:
            writer = make_writer(file, table.storage, table.name, specs, title=table.title)
            for _ in range(factor):
                writer.extend(content)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="events of the 1x sample")
    parser.add_argument("--factor", type=int, default=10)
    parser.add_argument("--step-size", default="2 MB", help="chunk size passed to compress/decompress")
    parser.add_argument("--error-bound", type=float, help="compress with the ae codec under this bound on every "
                        "column (relative for pT and m); default: float32 latent values")
    parser.add_argument("--profile", help="compress the whole file under this precision profile instead (no model)")
    parser.add_argument("--json-out", default="memory.json")
    args = parser.parse_args()
    featureset = hepae.load_featureset("atlas-jets-4d")
    codec = {"id": "ae"} if args.error_bound is None else {"id": "ae", "error_bounds": [
        f"{c.name}={'rel' if c.residual == 'relative' else 'abs'}:{args.error_bound!r}" for c in featureset.columns]}

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        layout = "atlas-jets-27d" if args.profile else "atlas-jets-4d"  # a profile: every collection of the file
        small = hepae.make_sample(tmp / "x1.root", layout, n_events=args.events, seed=1)
        model = hepae.train(small, "atlas-jets-4d", epochs=1, progress=False).save(tmp / "m.hepae")
        for factor in (1, args.factor):
            source = small if factor == 1 else repeated(small, tmp / f"x{factor}.root", factor)
            compress_mb, compress_chunks = run_step("compress", args.step_size, str(source),
                                                    str(tmp / f"c{factor}.root"), str(model), json.dumps(codec),
                                                    args.profile or "-")
            decompress_mb, decompress_chunks = run_step("decompress", args.step_size, str(tmp / f"c{factor}.root"),
                                                        str(tmp / f"r{factor}.root"))
            rows.append({
                "factor": factor,
                "events": args.events * factor,
                "input_mb": source.stat().st_size / 1e6,
                "compress_peak_rss_mb": compress_mb,
                "compress_chunks": compress_chunks,
                "decompress_peak_rss_mb": decompress_mb,
                "decompress_chunks": decompress_chunks,
            })
    ratios = {step: rows[1][f"{step}_peak_rss_mb"] / rows[0][f"{step}_peak_rss_mb"]
              for step in ("compress", "decompress")}
    if args.profile:
        codec = {"profile": args.profile}
    print(f"step size {args.step_size!r}, codec {codec}")
    print(f"{'size':>5s} {'events':>9s} {'input MB':>9s} {'compress RSS MB':>16s} {'chunks':>7s} "
          f"{'decompress RSS MB':>18s} {'chunks':>7s}")
    for r in rows:
        print(f"{r['factor']:>4d}x {r['events']:>9d} {r['input_mb']:>9.1f} {r['compress_peak_rss_mb']:>16.0f} "
              f"{r['compress_chunks']:>7d} {r['decompress_peak_rss_mb']:>18.0f} {r['decompress_chunks']:>7d}")
    print(f"ratio {args.factor}x/1x: compress {ratios['compress']:.3f}, decompress {ratios['decompress']:.3f} "
          "(target <= 1.1)")
    Path(args.json_out).write_text(json.dumps({"step_size": args.step_size, "codec": codec, "rows": rows,
                                               "ratios": ratios}, indent=2))


if __name__ == "__main__":
    main()
