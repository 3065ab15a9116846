"""Write the fixtures of container format 8, by the version that released it:
``python tests/data/format8/make_fixtures.py [DIRECTORY [NAME ...]]`` (all of them by default, into this directory).

Format 7's script (``tests/data/format7/make_fixtures.py``, left as that format's writer ran it) makes the same
files with the same procedure, samples and ``hepae.compress`` arguments; format 8 adds one fixture. Written this
way, format 8's files hold coded chunks of layout 5 (which exceptions are +0.0, marked one by one: ``rules-zeros``
beside its stored -0.0) and units with ``exact`` columns, floats kept bit for bit in their collection's unit
(``profile-nanoaod``'s ``Electron_pt``, and):

* ``rules-exact``: format 7's flat ``zeros`` TTree with a rule for ``x`` alone: ``y``, a float the rules keep
  exact, is coded in the unit of the per-event floats (the ``bounded`` codec's ``exact`` column).

The files are committed. Do not regenerate them to make a test pass: a failure there means a change of the format.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location("format7_fixtures", Path(__file__).parents[1] / "format7" /
                                               "make_fixtures.py")
format7 = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(format7)

FIXTURES = {**format7.FIXTURES, "rules-exact": {"sample": "zeros", "compress": {"rules": ["x=rel:1e-3"]}}}
TABLES = format7.TABLES
expected_values = format7.expected_values


def main(here: Path, names: list[str]) -> None:
    """Format 7's procedure over format 8's fixtures."""
    format7.FIXTURES = FIXTURES  # the procedure looks its fixtures up by name
    format7.main(here, names)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent, sys.argv[2:] or list(FIXTURES))
