"""Train, compress and decompress an xAOD-layout ROOT file from Python.

    python examples/compress_xaod.py                       # on a generated demo sample
    python examples/compress_xaod.py --input my_jets.root  # on your own file (CollectionTree, AntiKt4EMTopoJets)

Writes the model, the compressed file and the reconstruction into --workdir and prints the sizes and
the per-variable residuals.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import hepae


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", help="xAOD-layout ROOT file (default: generate one)")
    parser.add_argument("--workdir", default="hepae-example")
    parser.add_argument("--events", type=int, default=20_000, help="events of the generated sample")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--latent", type=int, default=3)
    args = parser.parse_args()

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    source = Path(args.input) if args.input else hepae.make_sample(
        workdir / "jets.root", "atlas-jets-4d", n_events=args.events, overwrite=True)

    # 1. train: the feature set names the tree and the jagged branches; normalization is fitted on
    #    the training split only, and the best epoch on validation is kept
    model = hepae.train(source, "atlas-jets-4d", latent=args.latent, epochs=args.epochs)
    model.save(workdir / "jets4d.hepae", overwrite=True)
    print(model, f"best validation MSE {model.training['best_val_loss']:.3e}")

    # 2. compress: every other branch is carried over; the decoder is embedded in the output
    summary = hepae.compress(source, workdir / "jets.compressed.root", hepae.load_model(workdir / "jets4d.hepae"),
                             overwrite=True)
    print(f"collection: {summary['bytes_per_object_input']} -> {summary['bytes_per_object_latent']} bytes/jet "
          f"(ratio {summary['collection_ratio']} with the decoder)")

    # 3. decompress: needs nothing but the compressed file
    hepae.decompress(workdir / "jets.compressed.root", workdir / "jets.reco.root", overwrite=True)

    # 4. how good is it?
    for name, r in hepae.residual_summary(source, workdir / "jets.reco.root", "atlas-jets-4d").items():
        print(f"{name:4s} {r['kind']:8s} mean {r['mean']:+.2e}  sigma {r['std']:.2e}  68% {r['width68']:.2e}")


if __name__ == "__main__":
    main()
