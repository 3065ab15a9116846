"""Compress DarkMachines / PhenoML CSV events: jets through the autoencoder, everything else exact.

    python examples/compress_darkmachines.py                                   # generated samples
    python examples/compress_darkmachines.py --train chan2a.csv --input chan3.csv

Trains on one file and compresses another (as the original study trained on chan2a and tested on
chan3), with the ``darkmachines-jets-4d`` feature set: jets and b-jets as (E, pt, eta, phi) with the
PhenoML normalization; leptons, photons, object types, event IDs, weights and MET are carried over
exactly. Decompresses back to the same CSV format and prints a line before and after, the residuals
and the sizes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import hepae


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", help="CSV file to train on (default: a generated sample)")
    parser.add_argument("--input", help="CSV file to compress (default: another generated sample)")
    parser.add_argument("--features", default="darkmachines-jets-4d", help="or darkmachines-4d: every object type")
    parser.add_argument("--workdir", default="hepae-darkmachines")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    train_file = Path(args.train) if args.train else hepae.make_darkmachines_sample(
        workdir / "train.csv", n_events=args.events, seed=1, overwrite=True)
    source = Path(args.input) if args.input else hepae.make_darkmachines_sample(
        workdir / "events.csv", n_events=args.events, seed=2, overwrite=True)

    model = hepae.train(train_file, args.features, epochs=args.epochs, batch_size=512, max_lr=1e-2)
    compressed, back = workdir / "events.compressed.root", workdir / "events.reco.csv"
    summary = hepae.compress(source, compressed, model, overwrite=True)
    hepae.decompress(compressed, back, overwrite=True)

    print(f"{summary['n_objects']} objects, {summary['n_compressed_objects']} through the network "
          f"({args.features}), the others exact; {summary['input_bytes']} bytes of CSV -> {summary['output_bytes']} "
          f"bytes compressed (file ratio {summary['file_ratio']}, decoder {summary['decoder_bytes']} bytes included)")
    print("before:", source.read_text().splitlines()[0][:160])
    print("after: ", back.read_text().splitlines()[0][:160])
    residuals = hepae.residual_summary(source, back, args.features)
    for name, r in residuals.items():
        print(f"{name:4s} {r['kind']:8s} sigma {r['std']:.2e}  68% {r['width68']:.2e}  99% {r['width99']:.2e}")


if __name__ == "__main__":
    main()
