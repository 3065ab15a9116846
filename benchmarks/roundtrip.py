"""Round-trip benchmark: quality, sizes and speed of train -> compress -> decompress on one file.

    python benchmarks/roundtrip.py                                   # generated demo sample
    python benchmarks/roundtrip.py ../shared/data/qcd_dijet_13TeV_xaod.root --epochs 20

Speeds are reported as ratios against a plain uproot read-and-rewrite copy of the same tree, measured
in the same run (this machine is shared and noisy). Prints a table and writes JSON (--json-out).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import uproot

import hepae
from hepae.io.branches import describe_tree
from hepae.io.sources import get_tree, iterate_arrays, open_root
from hepae.io.writing import DEFAULT_COMPRESSION, TreeWriter, parse_compression


def plain_copy(source: Path, target: Path, tree_name: str) -> float:
    """Seconds to read every branch of the tree and write it back with uproot (the baseline)."""
    started = time.perf_counter()
    with open_root(source) as directory:
        tree = get_tree(directory, tree_name, source)
        layout = describe_tree(tree)
        with uproot.recreate(target, compression=parse_compression(DEFAULT_COMPRESSION)) as out:
            writer = TreeWriter(out, tree.name, layout.branches)
            for arrays in iterate_arrays(tree, layout.names):
                writer.extend(arrays)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input", nargs="?", help="ROOT file (default: a generated 20k-event demo sample)")
    parser.add_argument("--features", default="atlas-jets-4d")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--latent", type=int, default=3)
    parser.add_argument("--arch", default="AE_3D_200")
    parser.add_argument("--json-out", default="roundtrip.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        source = Path(args.input) if args.input else hepae.make_sample(tmp / "jets.root", args.features)
        featureset = hepae.load_featureset(args.features)
        model = hepae.train(source, featureset, latent=args.latent, arch=args.arch, epochs=args.epochs, progress=False)
        baseline = min(plain_copy(source, tmp / f"copy{i}.root", featureset.tree) for i in range(2))
        compressed = hepae.compress(source, tmp / "c.root", model, progress=False)
        reco = hepae.decompress(tmp / "c.root", tmp / "r.root", progress=False)
        residuals = hepae.residual_summary(source, tmp / "r.root", featureset)

    result = {
        "input": str(args.input or "generated demo sample"),
        "featureset": featureset.name,
        "model": {"layout": model.arch.layout, "epochs": args.epochs, "train_seconds": model.training["seconds"],
                  "best_val_loss": model.training["best_val_loss"]},
        "objects": compressed["n_objects"],
        "baseline_copy_seconds": baseline,
        "compress_seconds": compressed["seconds"],
        "decompress_seconds": reco["seconds"],
        "compress_time_vs_copy": compressed["seconds"] / baseline,
        "decompress_time_vs_copy": reco["seconds"] / baseline,
        "sizes": {k: v for k, v in compressed.items() if "bytes" in k or "ratio" in k},
        "residuals": residuals,
    }
    print(f"{result['input']}: {result['objects']} objects, model {model.arch.layout}, "
          f"trained {args.epochs} epochs in {model.training['seconds']:.1f} s")
    print(f"{'step':12s} {'seconds':>8s} {'x plain copy':>13s}")
    print(f"{'plain copy':12s} {baseline:8.3f} {1.0:13.2f}")
    print(f"{'compress':12s} {compressed['seconds']:8.3f} {result['compress_time_vs_copy']:13.2f}")
    print(f"{'decompress':12s} {reco['seconds']:8.3f} {result['decompress_time_vs_copy']:13.2f}")
    s = result["sizes"]
    print(f"collection bytes/object {s['bytes_per_object_input']} -> {s['bytes_per_object_latent']}; "
          f"ratio {s['collection_ratio']} with decoder, {s['collection_ratio_without_decoder']} without")
    print(f"{'variable':9s} {'kind':9s} {'mean':>10s} {'sigma':>9s} {'68%':>9s} {'99%':>9s}")
    for name, r in residuals.items():
        print(f"{name:9s} {r['kind']:9s} {r['mean']:+10.2e} {r['std']:9.2e} {r['width68']:9.2e} {r['width99']:9.2e}")
    Path(args.json_out).write_text(json.dumps(result, indent=2))
    print(f"written {args.json_out}")


if __name__ == "__main__":
    main()
