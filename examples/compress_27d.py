"""Compress the 27 ATLAS jet variables of the original study (27D) with the seed's grid network.

    python examples/compress_27d.py                        # generated 27D sample
    python examples/compress_27d.py --input my_xaod.root   # CollectionTree with AntiKt4EMTopoJetsAux(Dyn) branches

Uses the 27-200-200-200-N-200-200-200-27 network (AE_bn_LeakyReLU) with the seed's custom 27D
normalization; N90Constituents is carried over exactly. Prints the residual width of every variable.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import hepae


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input")
    parser.add_argument("--workdir", default="hepae-27d")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--latent", type=int, default=18, help="the seed's grid used 8..20")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--normalization", default="featureset", choices=("featureset", "standard", "quantile"))
    args = parser.parse_args()

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    source = Path(args.input) if args.input else hepae.make_sample(
        workdir / "jets27.root", "atlas-jets-27d", n_events=args.events, overwrite=True)
    model = hepae.train(source, "atlas-jets-27d", latent=args.latent, arch="AE_bn_LeakyReLU", hidden=[200, 200, 200],
                        normalization=args.normalization, epochs=args.epochs, batch_size=512, max_lr=1e-2)
    print(model)
    summary = hepae.compress(source, workdir / "jets27.compressed.root", model, overwrite=True)
    hepae.decompress(workdir / "jets27.compressed.root", workdir / "jets27.reco.root", overwrite=True)
    print(f"27 variables: {summary['bytes_per_object_input']} -> {summary['bytes_per_object_latent']} bytes/jet "
          f"(latent {args.latent}, float32), ratio {summary['collection_ratio']} with the decoder")
    residuals = hepae.residual_summary(source, workdir / "jets27.reco.root", "atlas-jets-27d")
    for name, r in residuals.items():
        print(f"{name:28s} {r['kind']:8s} sigma {r['std']:.2e}  68% {r['width68']:.2e}  max {r['max_abs']:.2e}")


if __name__ == "__main__":
    main()
