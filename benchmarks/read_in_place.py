"""Reading compressed files in place (``hepae.open``) against uproot reading the original files.

    python benchmarks/read_in_place.py                                  # generated sample, 100k events
    python benchmarks/read_in_place.py --input ../shared/data/gammajet_13TeV_xaod.root \
        --train ../shared/data/qcd_dijet_13TeV_xaod.root

Each read runs in its own process (fresh caches; peak RSS is the process's own VmHWM), in the same
run, fastest of ``--repeat`` rounds: the jet four-vector, one exact (carried) branch, and every
branch, as awkward arrays. The baseline is uproot reading the same branches of the original file,
with no array cache. Compressed with ``lossless``, ``truncate`` (10 mantissa bits) and the bounded
autoencoder (1e-3 on every column, trained on ``--train``: another sample). Prints a table and
writes JSON. Imports happen before each clock starts.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import hepae

STEP = r"""
import json, sys, time
import hepae, hepae.arrays, uproot, awkward
what, path, names = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
started = time.perf_counter()
if what == "uproot":
    with uproot.open(path, array_cache=None) as f:
        tree = f[sys.argv[4]]
        arrays = tree.arrays(names or None)
else:
    with hepae.open(path) as tree:
        arrays = tree.arrays(names or None)
seconds = time.perf_counter() - started
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"seconds": seconds, "peak_kb": hwm, "entries": len(arrays)}))
"""


def run(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", STEP, *args], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", help="ROOT file to read (default: a generated sample)")
    parser.add_argument("--train", help="ROOT file to train the autoencoder on (default: another generated sample)")
    parser.add_argument("--features", default="atlas-jets-4d")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json-out", default="read_in_place.json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hepae-read-"))
    featureset = hepae.load_featureset(args.features)
    source = Path(args.input) if args.input else hepae.make_sample(work / "input.root", featureset,
                                                                   n_events=args.events, seed=11)
    train = Path(args.train) if args.train else hepae.make_sample(work / "train.root", featureset,
                                                                  n_events=args.events // 2, seed=12)
    model = hepae.train(train, featureset, epochs=args.epochs, progress=False)
    bounds = [f"{c.name}={'rel' if c.residual == 'relative' else 'abs'}:1e-3" for c in featureset.columns
              if not c.lossless]
    codecs = {"lossless": {"id": "lossless"}, "truncate 10 bits": {"id": "truncate", "mantissa_bits": 10},
              "ae bounded 1e-3": {"id": "ae", "error_bounds": bounds}}
    files = {}
    for name, codec in codecs.items():
        files[name] = work / f"{name.replace(' ', '_')}.root"
        hepae.compress(source, files[name], model if codec["id"] == "ae" else None, codec=codec,
                       featureset=featureset, progress=False)
    with hepae.open(files["lossless"]) as table:
        exact = next(k for k in table.keys() if k not in featureset.branches and not k.startswith("n"))
    reads = {"jet four-vector": featureset.branches, "one exact branch": [exact], "every branch": []}
    rows = []
    for read, names in reads.items():
        best: dict[str, dict] = {}
        for _ in range(args.repeat):
            for label, (what, path) in {"uproot, original": ("uproot", source),
                                        **{f"hepae.open, {c}": ("hepae", f) for c, f in files.items()}}.items():
                result = run(what, str(path), json.dumps(names), featureset.tree)
                if label not in best or result["seconds"] < best[label]["seconds"]:
                    best[label] = result
        baseline = best["uproot, original"]["seconds"]
        for label, result in best.items():
            rows.append({"read": read, "reader": label, "seconds": round(result["seconds"], 4),
                         "speed_vs_uproot": round(baseline / result["seconds"], 3),
                         "peak_rss_mb": round(result["peak_kb"] / 1024, 1), "entries": result["entries"]})
    print(f"{source.name}: {rows[0]['entries']} entries; fastest of {args.repeat} rounds, each in a fresh process")
    print(f"{'read':<18}{'reader':<32}{'seconds':>9}{'vs uproot':>11}{'peak RSS MB':>13}")
    for r in rows:
        print(f"{r['read']:<18}{r['reader']:<32}{r['seconds']:>9.3f}{r['speed_vs_uproot']:>11.3f}"
              f"{r['peak_rss_mb']:>13.1f}")
    with open(args.json_out, "w") as handle:
        json.dump({"input": str(source), "train": str(train), "rows": rows}, handle, indent=1)
    print(f"wrote {args.json_out}")


if __name__ == "__main__":
    main()
