"""Write the fixtures of container format 10, by the version that released it:
``python tests/data/format10/make_fixtures.py [DIRECTORY [NAME ...]]`` (all of them by default, into this directory).

Format 9's fixtures (``tests/data/format9/make_fixtures.py``: format 7's procedure, samples and ``hepae.compress``
arguments) written as format 10, and one more. Format 10's coded chunks have layout 6: a column sorted within its
events may be coded as order statistics (``docs/format.md``, §6.3):

* ``profile-sorted-objects``: a NanoAOD-style TTree (``nobj``; ``obj_pt`` sorted by decreasing value within each
  event of 20 to 30 objects, ``obj_eta``) under a profile of its own; ``obj_pt`` is coded as order statistics in
  every chunk.

The files are committed. Do not regenerate them to make a test pass: a failure there means a change of the format.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

_spec = importlib.util.spec_from_file_location("format9_fixtures", Path(__file__).parents[1] / "format9" /
                                               "make_fixtures.py")
format9 = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(format9)
format7 = format9.format7
_format9_sample = format9.sample

SORTED_PROFILE = {"name": "sorted-objects", "format_version": 1, "unmatched": "exact",
                  "rules": [{"pattern": "obj_pt", "rule": "rel:1e-3"}, {"pattern": "obj_eta", "rule": "abs:1e-2"}]}
FIXTURES = {**format9.FIXTURES,
            "profile-sorted-objects": {"sample": "sorted-objects", "compress": {"profile": SORTED_PROFILE}}}
TABLES = {**format9.TABLES, "sorted-objects": "events"}
expected_values = format9.expected_values


def sorted_objects_sample(path: Path, seed: int) -> Path:
    """100 events of 20 to 30 objects, ``obj_pt`` (20 GeV * U**(-1/3)) sorted by decreasing value in each."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(20, 31, 100)
    pt = 20.0 * rng.uniform(size=counts.sum()) ** (-1 / 3)
    pt = pt[np.lexsort((-pt, np.repeat(np.arange(100), counts)))]
    columns = {"obj_pt": pt, "obj_eta": rng.normal(0, 1.6, counts.sum())}
    with uproot.recreate(path) as f:
        tree = f.mktree("events", dict.fromkeys(columns, "var * float32"), counter_name=lambda _: "nobj")
        tree.extend({k: ak.unflatten(v.astype(np.float32), counts) for k, v in columns.items()})
    return path


def sample(kind: str, path: Path) -> Path:
    """Format 9's samples, and ``sorted-objects`` (seed 7, as theirs)."""
    return sorted_objects_sample(path, seed=7) if kind == "sorted-objects" else _format9_sample(kind, path)


def main(here: Path, names: list[str]) -> None:
    """Format 9's procedure (its learned model trained first) over format 10's fixtures."""
    format9.FIXTURES, format9.TABLES, format9.sample = FIXTURES, TABLES, sample  # the procedure's look-ups
    format9.main(here, names)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent, sys.argv[2:] or list(FIXTURES))
