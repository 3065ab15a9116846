"""A coffea-style analysis on compressed files, with no decompressed copy: a dask-awkward collection
over the compressed files fills a jet-pT histogram on a Dask cluster, and the same histogram filled
from the original files shows what the compression changed.

    python examples/analysis_on_compressed_files.py --files 3 --events 20000

The jets are compressed with the autoencoder under error bounds of 1e-3 (relative for pT and m);
every bin content must agree with the original to within the few jets whose pT sits within 1e-3
of a bin edge.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import awkward as ak
import dask_awkward as dak
import hist
import numpy as np
from distributed import Client, LocalCluster

import hepae

BOUNDS = ["pt=rel:1e-3", "eta=abs:1e-3", "phi=abs:1e-3", "m=rel:1e-3"]
PT = "AntiKt4EMTopoJetsAux.pt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default="hepae-analysis")
    parser.add_argument("--files", type=int, default=3)
    parser.add_argument("--events", type=int, default=20_000, help="events per file")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    originals = [hepae.make_sample(workdir / f"run{i}.root", n_events=args.events, seed=100 + i, overwrite=True)
                 for i in range(args.files)]
    model = hepae.train(originals[0], epochs=args.epochs, progress=False)
    compressed = []
    for path in originals:
        target = path.with_name(path.stem + ".compressed.root")
        hepae.compress(path, target, model, codec={"id": "ae", "error_bounds": BOUNDS}, overwrite=True,
                       progress=False)
        compressed.append(target)

    axis = hist.axis.Regular(40, 20e3, 420e3, name="pt", label="jet $p_T$ [MeV]")
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, dashboard_address=":0",
                      silence_logs=logging.ERROR) as cluster, Client(cluster):
        jets = hepae.dask(compressed, [PT])  # lazy: one partition per compressed chunk
        pt = dak.flatten(jets[PT])
        from_compressed = hist.Hist(axis).fill(pt=pt.compute().to_numpy())
    from_original = hist.Hist(axis)
    for chunk in hepae.iterate(originals, [PT]):
        from_original.fill(pt=ak.to_numpy(ak.flatten(chunk[PT])))

    a, b = from_original.values(), from_compressed.values()
    moved = int(np.abs(a - b).sum())
    print(f"{int(a.sum())} jets in {args.files} files; histogram from the compressed files differs in "
          f"{moved} bin entries ({moved / max(a.sum(), 1):.2e} of all)")
    print(f"{'bin [GeV]':>14}{'original':>10}{'compressed':>12}")
    for low, high, x, y in zip(axis.edges[:-1], axis.edges[1:], a, b):
        if x or y:
            print(f"{low / 1e3:>6.0f}-{high / 1e3:<7.0f}{int(x):>10}{int(y):>12}")
    if moved > 0.01 * a.sum():
        raise SystemExit("more than 1 % of the jets changed bin: the error bounds were not kept")


if __name__ == "__main__":
    main()
