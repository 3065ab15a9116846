"""Write the format-5 fixtures: one small compressed file per codec, and what it decodes to.

Run once by the version that introduced container format 5 (``python tests/data/format5/make_fixtures.py``);
the files are committed and ``tests/test_format_compat.py`` checks that every later hepae decodes
them to the same values. Do not regenerate them to make a test pass: a failure there means a change
of the format.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

import hepae

HERE = Path(__file__).parent
BOUNDS = ["pt=rel:1e-3", "eta=abs:1e-3", "phi=abs:1e-3", "m=rel:1e-3"]
CODECS = {
    "lossless": ({"id": "lossless"}, False),
    "truncate": ({"id": "truncate", "mantissa_bits": 8}, False),
    "ae-float": ({"id": "ae"}, True),
    "ae-latent-bits": ({"id": "ae", "latent_bits": 6}, True),
    "ae-bounded": ({"id": "ae", "latent_bits": 0, "error_bounds": BOUNDS}, True),
}
"""Fixture name -> (codec config, needs the model)."""


def expected_values(path: Path) -> dict[str, np.ndarray]:
    """The jet branches of a decompressed file, flat, and their per-event counts."""
    with uproot.open(path) as f:
        tree = f["CollectionTree"]
        jets = {k: tree[k].array() for k in tree.keys() if k.startswith("AntiKt4EMTopoJetsAux.")}
    first = next(iter(jets.values()))
    return {"counts": ak.to_numpy(ak.num(first)), **{k: ak.to_numpy(ak.flatten(v)) for k, v in jets.items()}}


def main() -> None:
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        sample = hepae.make_sample(work / "jets.root", n_events=150, seed=5)
        model = hepae.train(sample, latent=3, hidden=[8], epochs=2, seed=0, progress=False)
        expected = {}
        for name, (codec, needs_model) in CODECS.items():
            target = HERE / f"{name}.compressed.root"
            hepae.compress(sample, target, model if needs_model else None, codec=codec, featureset="atlas-jets-4d",
                           overwrite=True, progress=False, compression="zstd:19")
            hepae.decompress(target, work / f"{name}.reco.root", progress=False)
            expected[name] = expected_values(work / f"{name}.reco.root")
        np.savez_compressed(HERE / "expected.npz", **{f"{name}/{key}": values for name, arrays in expected.items()
                                                       for key, values in arrays.items()})
        (HERE / "codecs.json").write_text(json.dumps({n: c for n, (c, _) in CODECS.items()}, indent=1) + "\n")


if __name__ == "__main__":
    main()
