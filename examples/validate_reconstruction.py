"""Compress, decompress and validate: the plots and numbers an analyst looks at before using a file.

    python examples/validate_reconstruction.py                         # generated xAOD-layout sample
    python examples/validate_reconstruction.py --input jets.root --style CMS

Trains on a separate sample (never on the file being judged), compresses and decompresses the input,
then writes a validation report (hist + mplhep plots as PNG and PDF, metrics.json, histograms.root,
index.html) and prints the paired fidelity numbers first, then the distribution tests.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import hepae
from hepae.validation.plotting import STYLES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", help="ROOT file in the feature set's layout (default: generate one)")
    parser.add_argument("--features", default="atlas-jets-4d")
    parser.add_argument("--workdir", default="hepae-validation")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--style", default="ATLAS", choices=STYLES)
    args = parser.parse_args()

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    training = hepae.make_sample(workdir / "train.root", args.features, n_events=args.events, seed=1, overwrite=True)
    source = Path(args.input) if args.input else hepae.make_sample(
        workdir / "jets.root", args.features, n_events=args.events, seed=2, overwrite=True)
    model = hepae.train(training, args.features, epochs=args.epochs)
    compressed, reco = workdir / "jets.compressed.root", workdir / "jets.reco.root"
    hepae.compress(source, compressed, model, overwrite=True)
    hepae.decompress(compressed, reco, overwrite=True)
    report = hepae.validate(source, reco, workdir / "report", compressed=compressed, style=args.style, overwrite=True)

    print(f"{'variable':10s} {'sigma':>9s} {'68% |r|':>9s} {'99% |r|':>9s} {'migration':>9s} {'chi2/ndf':>9s} "
          f"{'KS':>7s} tests")
    for name, v in report.metrics["variables"].items():
        verdict = "pass" if all(v["tests_passed"].values()) else "FAIL"
        print(f"{name:10s} {v['std']:9.2e} {v['width68']:9.2e} {v['width99']:9.2e} {v['migration_fraction']:9.3f} "
              f"{v['chi2_ndf']:9.2f} {v['ks']:7.4f} {verdict}")
    print(f"report: {report.outdir / 'index.html'} ({len(report.files)} files)")


if __name__ == "__main__":
    main()
