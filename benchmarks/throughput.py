"""Objects/s, MB/s and peak memory of compress and decompress, file to file, against a plain copy.

    python benchmarks/throughput.py                      # generated sample, 200k events
    python benchmarks/throughput.py --input jets.root --features atlas-jets-4d

Every step runs in its own process (peak RSS: the process's own VmHWM; ru_maxrss would include the
size of this parent at fork time), in the same run, on the same machine:
a plain uproot read-and-rewrite copy of the same branches (the baseline), then compress and decompress
with the ``truncate`` codec, with the autoencoder (``ae``: float32 latents, the default, and 10-bit
latents, entropy coded), with the autoencoder under error bounds of 1e-3 on every column
(``ae bounded``, latent bits chosen per file) and with the ``bounded`` codec under the same bounds, with its
hand-built coder alone and with a learned entropy model (``hepae train-entropy`` on ``--entropy-train``, by
default another generated sample). MB/s counts the
collection's float32 values (16 bytes per 4D object). All the steps run in ``--repeat`` rounds (3), and
each step's fastest round counts: the noise of a shared machine slows runs, it never speeds them up.
Prints a table with ratios to the copy and writes JSON (every round's time too). Each step's clock
starts after its imports (torch, uproot, hepae's modules): start-up time is measured apart, with
``python -X importtime -c "import hepae"``. The first call of hepae's compiled loops in a process (numba
starting and loading them from its cache, ~0.6 s) is inside the step: every command pays it once.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import hepae

STEP = r"""
import json, sys, time
import hepae
import hepae.compression, hepae.decompression, hepae.io.sources, hepae.io.writing, uproot
import hepae.codecs.kernels
hepae.codecs.kernels.NUMBA_EXTENSIONS = False  # as the hepae command runs (numba's first call: ~0.6 s, not ~2 s)
step, source, target, features, model, entropy_model, network = sys.argv[1:8]
if network == "network":  # the steps of a network's file: torch imported before the clock starts
    import hepae.ml.model, torch
started = time.perf_counter()  # after the imports: start-up is measured apart (python -X importtime)
if step == "copy":
    import uproot
    from hepae.io.sources import open_source
    from hepae.io.writing import make_writer
    fs = hepae.load_featureset(features)
    with open_source(source, fs.tree) as table, uproot.recreate(target) as out:
        writer = make_writer(out, table.storage, table.name, table.layout.branches)
        for chunk in table.iterate(table.layout.names):
            writer.extend(chunk)
elif step.startswith("compress"):
    bounds = [f"{c.name}={'rel' if c.residual == 'relative' else 'abs'}:1e-3"
              for c in hepae.load_featureset(features).columns if not c.lossless]
    codec = {"compress-truncate": {"id": "truncate", "mantissa_bits": 10},
             "compress-float": {"id": "ae"},
             "compress-ae": {"id": "ae", "latent_bits": 10},
             "compress-bounded": {"id": "ae", "latent_bits": "auto", "error_bounds": bounds},
             "compress-hand-built": {"id": "bounded", "error_bounds": bounds},
             "compress-learned": {"id": "bounded", "error_bounds": bounds, "entropy_model": entropy_model}}[step]
    needs_model = step in ("compress-float", "compress-ae", "compress-bounded")
    hepae.compress(source, target, model if needs_model else None, codec=codec, featureset=features,
                   check=False, progress=False, device="cpu")
else:
    hepae.decompress(source, target, progress=False, device="cpu")
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"seconds": time.perf_counter() - started, "peak_kb": hwm}))
"""


def run_step(*args: str) -> tuple[float, float]:
    """One step in a fresh process: (seconds inside the step, peak RSS in MB)."""
    process = subprocess.Popen([sys.executable, "-c", STEP, *args], stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")})
    output = process.stdout.read()  # type: ignore[union-attr]
    status = process.wait()
    if status != 0:
        raise SystemExit(f"step {args[0]} failed")
    return json.loads(output)["seconds"], json.loads(output)["peak_kb"] / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", help="ROOT file (default: a generated sample)")
    parser.add_argument("--features", default="atlas-jets-4d")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--epochs", type=int, default=2, help="training epochs of the model (speed does not care)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="rounds of all the steps; each step's fastest round counts (the machine is shared)")
    parser.add_argument("--entropy-train", help="ROOT file the learned entropy model is trained on (default: a "
                                                    "generated sample of another seed)")
    parser.add_argument("--steps", help="only the steps whose names contain one of these (comma-separated: "
                                        "'bounded learned', 'ae float32', 'truncate', ...); the copy always runs, "
                                        "and a decompress step brings the compress step that makes its file")
    parser.add_argument("--json-out", default="throughput.json")
    args = parser.parse_args()
    featureset = hepae.load_featureset(args.features)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        source = Path(args.input) if args.input else hepae.make_sample(tmp / "in.root", featureset,
                                                                        n_events=args.events, seed=3)
        model, entropy_model = tmp / "m.hepae", tmp / "entropy.json"  # made below if a step needs them
        n_objects = hepae.compress(source, tmp / "probe.root", codec="lossless", featureset=featureset,
                                   check=False, progress=False)["n_objects"]
        megabytes = n_objects * featureset.n_features * 4 / 1e6
        steps = [("plain uproot copy", "copy", source, tmp / "copy.root"),
                 ("compress truncate", "compress-truncate", source, tmp / "t.root"),
                 ("decompress truncate", "decompress", tmp / "t.root", tmp / "t.reco.root"),
                 ("compress ae float32", "compress-float", source, tmp / "f.root"),
                 ("decompress ae float32", "decompress", tmp / "f.root", tmp / "f.reco.root"),
                 ("compress ae 10 bits", "compress-ae", source, tmp / "a.root"),
                 ("decompress ae 10 bits", "decompress", tmp / "a.root", tmp / "a.reco.root"),
                 ("compress ae bounded", "compress-bounded", source, tmp / "b.root"),
                 ("decompress ae bounded", "decompress", tmp / "b.root", tmp / "b.reco.root"),
                 ("compress bounded", "compress-hand-built", source, tmp / "h.root"),
                 ("decompress bounded", "decompress", tmp / "h.root", tmp / "h.reco.root"),
                 ("compress bounded learned", "compress-learned", source, tmp / "l.root"),
                 ("decompress bounded learned", "decompress", tmp / "l.root", tmp / "l.reco.root")]
        if args.steps:
            wanted = [w.strip() for w in args.steps.split(",")]
            chosen = [s for s in steps if any(w in s[0] for w in wanted)]
            if not chosen:
                raise SystemExit(f"--steps {args.steps}: no step's name contains any of these")
            made = {dst for _, _, _, dst in chosen}  # a chosen decompress step needs the file its compress makes
            inputs = {src for _, step, src, _ in chosen if step == "decompress"} - made
            steps = [s for s in steps if s[0] == "plain uproot copy" or s in chosen or s[3] in inputs]
        if any(" ae " in f" {name} " for name, *_ in steps):
            hepae.train(source, featureset, epochs=args.epochs, progress=False).save(model)
        if any("learned" in name for name, *_ in steps):
            from hepae.entropy_models import train_entropy_model

            entropy_train = Path(args.entropy_train) if args.entropy_train else \
                hepae.make_sample(tmp / "entropy-train.root", featureset, n_events=args.events, seed=4)
            train_entropy_model(entropy_train, featureset).save(entropy_model)
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name, *_ in steps}
        for _ in range(max(1, args.repeat)):  # rounds of every step: noise hits them all alike
            for name, step, src, dst in steps:
                dst.unlink(missing_ok=True)
                network = "network" if " ae " in f" {name} " else "none"  # the steps that need torch
                runs[name].append(run_step(step, str(src), str(dst), featureset.name, str(model), str(entropy_model),
                                           network))
        rows = []
        for name, *_ in steps:
            seconds, rss = min(t for t, _ in runs[name]), max(r for _, r in runs[name])
            rows.append({"step": name, "seconds": round(seconds, 3), "objects_per_second": round(n_objects / seconds),
                         "mb_per_second": round(megabytes / seconds, 2), "peak_rss_mb": round(rss, 1),
                         "all_seconds": [round(t, 3) for t, _ in runs[name]]})
    baseline = rows[0]["seconds"]
    for row in rows:
        row["speed_vs_copy"] = round(baseline / row["seconds"], 3)
    print(f"{n_objects} objects ({megabytes:.1f} MB of float32 values), {featureset.name}; "
          f"fastest of {max(1, args.repeat)} rounds")
    print(f"{'step':28s} {'seconds':>8s} {'objects/s':>11s} {'MB/s':>7s} {'vs copy':>8s} {'peak RSS MB':>12s}")
    for r in rows:
        print(f"{r['step']:28s} {r['seconds']:8.3f} {r['objects_per_second']:11d} {r['mb_per_second']:7.1f} "
              f"{r['speed_vs_copy']:8.3f} {r['peak_rss_mb']:12.1f}")
    Path(args.json_out).write_text(json.dumps({"n_objects": n_objects, "rows": rows}, indent=1))
    print(f"wrote {args.json_out}")


if __name__ == "__main__":
    main()
