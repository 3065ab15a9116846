"""Write the fixtures of container format 7 (and the RNTuple ones of format 6), written by one hepae.

Format 7 stores the stream table (and an embedded decoder) of such a file as an RNTuple; format 6 stored
them as TTrees. Both kinds must keep decoding to the values their writer decoded them to
(``tests/test_format_compat.py``), so this script was run once by each writer:

* ``tests/data/format7/``: by the version that released format 7 (``python tests/data/format7/make_fixtures.py
  [DIRECTORY [NAME ...]]`` writes the fixtures named, all by default, and keeps the others; ``ae-bounded`` was
  added later by the same format's writer);
* ``tests/data/format6-rntuple/``: by the last writer of format 6 (commit 7acc89d), from a checkout of it:
  ``git worktree add /tmp/f6 7acc89d && PYTHONPATH=/tmp/f6/src python tests/data/format7/make_fixtures.py
  tests/data/format6-rntuple bounded ae-float profile-darkmachines``.

The files are committed. Do not regenerate them to make a test pass: a failure there means a change of
the format. Each fixture is a 100-event generated sample, compressed in chunks of 40 events (three chunks:
three entries of the stream table), and the arguments of ``hepae.compress``:

* ``bounded``: the ``bounded`` codec on the jets of a PHYSLITE-style RNTuple (a feature-set collection);
* ``ae-float``: the ``ae`` codec (float latents) on the same, which embeds the decoder network: its values
  come out of float32 matrix products, compared with a tolerance;
* ``ae-bounded`` (format 7 only): the ``ae`` codec with no latent value kept and a bound per column: its coded
  chunks (layout 4), decoded without the network;
* ``profile-darkmachines``: a DarkMachines CSV file, the whole file under the ``darkmachines`` profile;
* ``profile-nanoaod`` (format 7 only): a NanoAOD-style TTree under the ``nanoaod`` profile, whose units' streams
  format 7 packs into one branch of the stream TTree;
* ``rules-zeros`` (format 7 only): a flat TTree whose ``x`` is +0.0 in most entries (exceptions under its
  relative bound: chunk layout 4 marks them in one byte) and -0.0 in one (stored as it is).
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

FIXTURES = {
    "bounded": {"sample": "physlite-rntuple-jets-4d",
                "compress": {"codec": {"id": "bounded", "error_bounds": ["pt=bits:10", "eta=abs:1e-3",
                                                                         "phi=abs:1e-3", "m=rel:1e-3"]},
                             "featureset": "physlite-rntuple-jets-4d"}},
    "ae-bounded": {"sample": "physlite-rntuple-jets-4d", "train": True,
                   "compress": {"codec": {"id": "ae", "latent_bits": 0,
                                          "error_bounds": ["pt=rel:1e-3", "eta=abs:1e-3", "phi=abs:1e-3",
                                                           "m=rel:1e-3"]},
                                "featureset": "physlite-rntuple-jets-4d"}},
    "ae-float": {"sample": "physlite-rntuple-jets-4d", "train": True,
                 "compress": {"codec": {"id": "ae"}, "featureset": "physlite-rntuple-jets-4d"}},
    "profile-darkmachines": {"sample": "darkmachines-csv", "compress": {"profile": "darkmachines"}},
    "profile-nanoaod": {"sample": "nanoaod-jets-4d", "compress": {"profile": "nanoaod"}},
    "rules-zeros": {"sample": "zeros", "compress": {"rules": ["x=rel:1e-3", "y=abs:1e-2"]}},
}
TABLES = {"physlite-rntuple-jets-4d": "EventData", "darkmachines-csv": "events", "nanoaod-jets-4d": "Events",
          "zeros": "t"}


def flat_values(key: str, values: ak.Array) -> dict[str, np.ndarray]:
    """A field's values, flat, and the lengths of each level of its lists (``<key>/counts<level>``)."""
    out, level = {}, 0
    while values.ndim > 1:
        out[f"{key}/counts{level}"] = ak.to_numpy(ak.num(values, axis=1))
        values, level = ak.flatten(values, axis=1), level + 1
    out[key] = ak.to_numpy(values)
    return out


def expected_values(path: Path, table: str) -> dict[str, np.ndarray]:
    """Every top-level field of a decompressed table, flat (:func:`flat_values`)."""
    out = {}
    with uproot.open(path) as f:
        arrays = f[table].arrays(library="ak")
        for key in arrays.fields:
            out.update(flat_values(key, arrays[key]))
    return out


def sample(kind: str, path: Path) -> Path:
    if kind == "zeros":  # a flat TTree whose x is +0.0 in most entries (-0.0 in one): exceptions under a relative bound
        rng = np.random.default_rng(7)
        x = np.where(rng.uniform(size=100) < 0.7, 0.0, rng.normal(size=100)).astype(np.float32)
        x[3] = -0.0
        with uproot.recreate(path) as f:
            f.mktree("t", {"x": np.float32, "y": np.float32, "n": np.int32}).extend(
                {"x": x, "y": rng.normal(size=100).astype(np.float32), "n": np.arange(100, dtype=np.int32)})
        return path
    if kind == "darkmachines-csv":
        from hepae.samples import make_darkmachines_sample

        return make_darkmachines_sample(path.with_suffix(".csv"), n_events=100, seed=7)
    return hepae.make_sample(path, kind, n_events=100, seed=7)


def main(here: Path, names: list[str]) -> None:
    """Write the fixtures ``names`` into ``here``, keeping the others already there (their files, their values in
    ``expected.npz`` and their entries in ``fixtures.json``)."""
    unknown = sorted(set(names) - set(FIXTURES))
    if unknown:
        raise SystemExit(f"unknown fixtures {unknown}; known: {sorted(FIXTURES)}")
    stored: dict[str, np.ndarray] = {}
    if (here / "expected.npz").exists():
        with np.load(here / "expected.npz", allow_pickle=False) as old:
            stored = {key: old[key] for key in old.files if key.split("//")[0] not in names}
    listed = json.loads((here / "fixtures.json").read_text()) if (here / "fixtures.json").exists() else {}
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        for name in names:
            fixture = FIXTURES[name]
            source = sample(fixture["sample"], work / f"{name}.root")
            arguments = dict(fixture["compress"])
            if fixture.get("train"):
                arguments["model"] = hepae.train(sample(fixture["sample"], work / f"{name}-train.root"),
                                                 arguments["featureset"], latent=3, hidden=[8], epochs=2, seed=0,
                                                 progress=False)
            target = here / f"{name}.compressed.root"
            hepae.compress(source, target, overwrite=True, progress=False, compression="zstd:19", step_size=40,
                           **arguments)
            hepae.decompress(target, work / f"{name}.reco.root", progress=False)
            values = expected_values(work / f"{name}.reco.root", TABLES[fixture["sample"]])
            stored.update({f"{name}//{key}": array for key, array in values.items()})
            listed[name] = fixture
        np.savez_compressed(here / "expected.npz", **stored)
        (here / "fixtures.json").write_text(json.dumps(dict(sorted(listed.items())), indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent, sys.argv[2:] or list(FIXTURES))
