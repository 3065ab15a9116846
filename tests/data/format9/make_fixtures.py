"""Write the fixtures of container format 9, by the version that released it:
``python tests/data/format9/make_fixtures.py [DIRECTORY [NAME ...]]`` (all of them by default, into this directory).

Format 8's fixtures (``tests/data/format8/make_fixtures.py``: format 7's procedure, samples and ``hepae.compress``
arguments) written as format 9, and one more. Format 9 lets a unit's ``bounded`` codec carry a learned entropy
model beside its ``exact`` columns (a whole file's units, ``hepae train-entropy --profile``):

* ``profile-entropy-model``: a NanoAOD-style TTree (``nobj``; ``obj_x`` close to its event's common value, which
  the model's leading-object input sees and the hand-built coder does not; ``obj_y``; ``obj_w`` kept exact in the
  unit; a per-event ``met``) under a profile of its own, with a model trained under that profile on another seed
  of the same generator (150 iterations); ``obj_x`` is coded by the model.

The files are committed. Do not regenerate them to make a test pass: a failure there means a change of the format.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

from hepae.entropy_models import train_entropy_model

_spec = importlib.util.spec_from_file_location("format8_fixtures", Path(__file__).parents[1] / "format8" /
                                               "make_fixtures.py")
format8 = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(format8)
format7 = format8.format7
_format7_sample = format7.sample

OBJECTS_PROFILE = {"name": "objects", "format_version": 1, "unmatched": "exact",
                   "rules": [{"pattern": "obj_x", "rule": "rel:1e-3"}, {"pattern": "obj_y", "rule": "abs:1e-2"},
                             {"pattern": "met", "rule": "rel:1e-3"}]}
FIXTURES = {**format8.FIXTURES,
            "profile-entropy-model": {"sample": "objects", "compress": {"profile": OBJECTS_PROFILE}}}
TABLES = {**format8.TABLES, "objects": "events"}
expected_values = format8.expected_values


def objects_sample(path: Path, seed: int) -> Path:
    """100 events of 25 to 35 objects whose ``obj_x`` is their event's common value within 0.2 %."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(25, 36, 100)
    x = np.repeat(rng.lognormal(4, 1, 100), counts) * (1 + rng.normal(0, 2e-3, counts.sum()))
    columns = {"obj_x": x, "obj_y": rng.normal(0, 1, counts.sum()), "obj_w": rng.random(counts.sum())}
    with uproot.recreate(path) as f:
        tree = f.mktree("events", {**dict.fromkeys(columns, "var * float32"), "met": "float32"},
                        counter_name=lambda _: "nobj")
        tree.extend({**{k: ak.unflatten(v.astype(np.float32), counts) for k, v in columns.items()},
                     "met": rng.lognormal(3, 1, 100).astype(np.float32)})
    return path


def sample(kind: str, path: Path) -> Path:
    """Format 7's samples, and ``objects`` (seed 7, as theirs)."""
    return objects_sample(path, seed=7) if kind == "objects" else _format7_sample(kind, path)


def main(here: Path, names: list[str]) -> None:
    """Format 7's procedure over format 9's fixtures: the learned model, trained first (on seed 8), is one more
    argument of ``hepae.compress`` (so ``fixtures.json`` holds it)."""
    if "profile-entropy-model" in names:
        with tempfile.TemporaryDirectory() as work:
            model = train_entropy_model(objects_sample(Path(work) / "train.root", seed=8), profile=OBJECTS_PROFILE,
                                        iterations=150, progress=False)
        FIXTURES["profile-entropy-model"]["compress"]["entropy_model"] = model.to_dict()
    format7.FIXTURES, format7.TABLES, format7.sample = FIXTURES, TABLES, sample  # the procedure's look-ups
    format7.main(here, names)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent, sys.argv[2:] or list(FIXTURES))
