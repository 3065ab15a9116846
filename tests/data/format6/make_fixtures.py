"""Write the format-6 fixtures: the ``bounded`` codec on a feature set, and a whole file under a profile.

Run once by the version that introduced container format 6 (``python tests/data/format6/make_fixtures.py``);
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
FIXTURES = {
    "bounded": {"codec": {"id": "bounded", "error_bounds": ["pt=bits:10", "eta=abs:1e-3", "phi=abs:1e-3",
                                                            "m=rel:1e-3"]},
                "featureset": "atlas-jets-4d"},
    "profile-xaod": {"profile": "xaod", "rules": ["ElectronsAux.pt=rel:1e-2"]},
}
SAMPLES = {"bounded": "atlas-jets-4d", "profile-xaod": "atlas-jets-27d"}
"""Fixture name -> the feature set whose layout its sample has."""
"""Fixture name -> the arguments of hepae.compress."""


def expected_values(path: Path) -> dict[str, np.ndarray]:
    """Every branch of a decompressed file, flat (jagged ones with their counts under ``<name>/counts``)."""
    out = {}
    with uproot.open(path) as f:
        tree = f["CollectionTree"]
        for key in tree.keys():
            values = tree[key].array()
            if values.ndim > 1:
                out[f"{key}/counts"] = ak.to_numpy(ak.num(values))
                values = ak.flatten(values)
            out[key] = ak.to_numpy(values)
    return out


def main() -> None:
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        expected = {}
        for name, arguments in FIXTURES.items():
            sample = hepae.make_sample(work / f"{name}.root", n_events=100, seed=6, featureset=SAMPLES[name])
            target = HERE / f"{name}.compressed.root"
            hepae.compress(sample, target, overwrite=True, progress=False, compression="zstd:19", **arguments)
            hepae.decompress(target, work / f"{name}.reco.root", progress=False)
            expected[name] = expected_values(work / f"{name}.reco.root")
        np.savez_compressed(HERE / "expected.npz", **{f"{name}//{key}": values for name, arrays in expected.items()
                                                       for key, values in arrays.items()})
        (HERE / "fixtures.json").write_text(json.dumps(FIXTURES, indent=1) + "\n")


if __name__ == "__main__":
    main()
