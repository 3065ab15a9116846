"""Write the fixture of the bounded codec with a learned entropy model (stream ``learned``, layout 1).

Run once by the version that introduced the learned entropy model (``python tests/data/learned1/make_fixtures.py``);
the files are committed and ``tests/test_format_compat.py`` checks that every later hepae decodes them to the
same values. Do not regenerate them to make a test pass: a failure there means a change of the format.

The jets are back to back in phi and close in pT (the second jet of an event against the first), so the
model is chosen for some columns; this script checks that it is.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

import hepae
from hepae.codecs import Bounded, entropy
from hepae.codecs.bounds import ErrorBound
from hepae.entropy_models import fit_entropy_model
from hepae.io.branches import describe_tree
from hepae.io.writing import TreeWriter

HERE = Path(__file__).parent
BOUNDS = ["pt=rel:0.001", "eta=abs:0.001", "phi=abs:0.001", "m=rel:0.001"]
COLUMNS = ["pt", "eta", "phi", "m"]


def dijets(n_events: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Jets (pt, eta, phi, m in GeV) in events of 1-4 whose second jet is back to back with the first in phi
    (+ pi + normal(0, 0.1)) and close to it in pT (0.7-1 times), and the jets per event."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 5, n_events)
    n = int(counts.sum())
    first = np.repeat(np.cumsum(counts) - counts, counts)
    second = np.arange(n) - first == 1
    pt = 20.0 * rng.uniform(0.0, 1.0, n) ** (-1 / 3)
    pt[second] = pt[first[second]] * rng.uniform(0.7, 1.0, int(second.sum()))
    phi = rng.uniform(-np.pi, np.pi, n)
    phi[second] = np.angle(np.exp(1j * (phi[first[second]] + np.pi + rng.normal(0, 0.1, int(second.sum())))))
    eta = rng.normal(0.0, 1.5, n)
    m = pt * rng.lognormal(np.log(0.1), 0.2, n)
    return np.column_stack([pt, eta, phi, m]).astype(np.float32), counts


def write_sample(path: Path, n_events: int, seed: int) -> Path:
    """A 4D jet file in the xAOD layout (``hepae.make_sample``'s, other branches included) with these jets."""
    template = hepae.make_sample(path.with_suffix(".template.root"), "atlas-jets-4d", n_events=n_events, seed=seed)
    x, counts = dijets(n_events, seed)
    with uproot.open(template) as f:
        tree = f["CollectionTree"]
        layout, arrays = describe_tree(tree), tree.arrays(library="ak", how=dict)
    arrays["nAntiKt4EMTopoJetsAux"] = counts.astype(np.int32)
    for j, name in enumerate(COLUMNS):
        scale = np.float32(1000.0 if name in ("pt", "m") else 1.0)
        arrays[f"AntiKt4EMTopoJetsAux.{name}"] = ak.unflatten(x[:, j] * scale, counts)
    with uproot.recreate(path) as out:
        TreeWriter(out, "CollectionTree", layout.branches).extend(arrays)
    return path


def main() -> None:
    sys.path.insert(0, str(HERE.parents[1] / "data" / "format6"))
    from make_fixtures import expected_values  # noqa: E402  (the format-6 fixtures' reader of decoded branches)

    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        x, counts = dijets(3000, seed=1)
        model = fit_entropy_model(x, counts, [ErrorBound.parse(b) for b in BOUNDS], iterations=150)
        model.save(HERE / "model.json", overwrite=True)
        sample = write_sample(work / "in.root", 1500, seed=2)
        target = HERE / "bounded-learned.compressed.root"
        codec = Bounded(BOUNDS, entropy_model=model)
        hepae.compress(sample, target, codec=codec, featureset="atlas-jets-4d", overwrite=True, progress=False,
                       compression="zstd:19")
        with uproot.open(target) as f:
            learned = f["hepae_streams"]["learned"].array(library="np")[0]
        learned = np.asarray(learned, np.uint8)
        used = [COLUMNS[j] for j in entropy.unpack_arrays(learned)[1]] if len(learned) else []
        assert used, "the learned model was chosen for no column: the fixture would not test it"
        hepae.decompress(target, work / "reco.root", progress=False)
        np.savez_compressed(HERE / "expected.npz", **expected_values(work / "reco.root"))
        (HERE / "fixtures.json").write_text(json.dumps({"bounded-learned": {"codec": codec.get_config()["id"],
                                                                            "learned_columns": used}}, indent=1)
                                            + "\n")
        print(f"learned columns: {used}")


if __name__ == "__main__":
    main()
