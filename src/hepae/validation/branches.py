"""Every lossy branch of a whole file, value by value: how large its errors are, against its rule.

The collection report (:mod:`hepae.validation.report`) looks at one feature set's objects as physics;
this part looks at every float branch a compressed file codes lossily (or the ones a user names), in
any table: the number of values, how many came back identical, the largest absolute error and, where
the rule is known, the largest error in units of the bound (at most 1: the guarantee) with a histogram
of ``(reco - orig) / bound``. Both files are streamed in step, chunk by chunk.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import hist
import numpy as np

from hepae.codecs.bounds import error_over_bound, parse_rule
from hepae.errors import BranchNotFoundError, InputFileError
from hepae.io.branches import TreeLayout
from hepae.io.sources import DEFAULT_STEP_SIZE, open_source

_ENTRIES = 100_000
"""Entries per step when the step size is a memory size: the two files must be cut at the same entries
(a memory size cuts each file where its own bytes fall)."""
RATIO_EDGES = np.linspace(-1.2, 1.2, 49)
"""Bins of ``(reco - orig) / bound``: values beyond ±1 would break the guarantee."""


@dataclass
class BranchErrors:
    """The errors of one branch, accumulated chunk by chunk."""

    name: str
    rule: str | None  # "rel:0.001", "abs:0.0001"; None where unknown (only the errors are measured)
    n: int = 0
    identical: int = 0
    nan_mismatches: int = 0
    max_abs: float = 0.0
    max_ratio: float = 0.0
    sum: float = 0.0
    sum_squares: float = 0.0
    ratios: hist.Hist = field(default_factory=lambda: hist.Hist(hist.axis.Variable(RATIO_EDGES, name="ratio")))

    def fill(self, original: np.ndarray, reconstructed: np.ndarray) -> None:
        x, r = original.astype(np.float64), reconstructed.astype(np.float64)
        same = (x == r) | (np.isnan(x) & np.isnan(r))
        self.n += len(x)
        self.identical += int(same.sum())
        self.nan_mismatches += int((np.isnan(x) != np.isnan(r)).sum())
        with np.errstate(all="ignore"):
            error = np.where(same, 0.0, r - x)
            finite = np.isfinite(error)
            if finite.any():
                self.max_abs = max(self.max_abs, float(np.max(np.abs(error[finite]))))
                self.sum += float(error[finite].sum())
                self.sum_squares += float((error[finite] ** 2).sum())
            if not finite.all():
                self.max_abs = float("inf")
        if self.rule is not None:
            ratio = error_over_bound(x, r, *parse_rule(self.rule))
            self.max_ratio = max(self.max_ratio, float(np.max(np.abs(ratio), initial=0.0)))
            self.ratios.fill(np.clip(ratio, -1.19, 1.19))

    @property
    def within_bound(self) -> bool | None:
        return None if self.rule is None else self.max_ratio <= 1.0 and self.nan_mismatches == 0

    def to_dict(self) -> dict[str, Any]:
        measured = max(self.n - self.identical, 0)
        mean = self.sum / self.n if self.n else 0.0
        return {
            "rule": self.rule,
            "n": self.n,
            "identical": self.identical,
            "max_abs_error": self.max_abs,
            "max_error_over_bound": self.max_ratio if self.rule is not None else None,
            "mean_error": mean,
            "rms_error": float(np.sqrt(self.sum_squares / self.n)) if self.n else 0.0,
            "changed": measured,
            "within_bound": self.within_bound,
        }


def float_branches(layout: TreeLayout) -> list[str]:
    """The branches of a table whose values are floats (one per event, or per object)."""
    return [s.name for s in layout.branches if s.numeric and np.dtype(s.dtype).kind == "f"
            and np.dtype(s.dtype).subdtype is None]


def select_branches(layout: TreeLayout, known: dict[str, str], patterns: Sequence[str] | None,
                    path: Path) -> dict[str, str | None]:
    """The branches to compare: those matching ``patterns`` (globs; a pattern that matches no float branch is an
    error), else those ``known`` lossy (name -> rule), else every float branch; each with its rule if known."""
    floats = float_branches(layout)
    if patterns:
        chosen: list[str] = []
        for pattern in patterns:
            matches = [b for b in floats if fnmatch.fnmatchcase(b, pattern)]
            if not matches:
                raise BranchNotFoundError(f"--branches '{pattern}' matches no float branch of '{layout.name}' in "
                                          f"{path}")
            chosen += [m for m in matches if m not in chosen]
        return {b: known.get(b) for b in chosen}
    if known:
        return {b: rule for b, rule in known.items() if b in floats}
    return {b: None for b in floats}


def compare_branches(original: Path, reconstructed: Path, table: str, branches: dict[str, str | None],
                     step_size: int | str = DEFAULT_STEP_SIZE) -> dict[str, BranchErrors]:
    """Stream both files' ``table`` in step and accumulate the errors of ``branches`` (name -> rule)."""
    out = {name: BranchErrors(name, rule) for name, rule in branches.items()}
    if not out:
        return out
    names = list(out)
    step = step_size if isinstance(step_size, int) else _ENTRIES  # both files cut at the same entries
    with open_source(original, table) as a, open_source(reconstructed, table) as b:
        if a.num_entries != b.num_entries:
            raise InputFileError(f"{reconstructed} has {b.num_entries} entries in '{table}', {original} has "
                                 f"{a.num_entries}: not a reconstruction of it")
        for chunk_a, chunk_b in zip(a.iterate(names, step), b.iterate(names, step), strict=True):
            for name in names:
                x, y = chunk_a[name], chunk_b[name]
                if x.ndim > 1 and not np.array_equal(ak.to_numpy(ak.num(x, axis=1)), ak.to_numpy(ak.num(y, axis=1))):
                    raise InputFileError(f"branch '{name}' holds other numbers of values per event in {reconstructed} "
                                         f"than in {original}: not a reconstruction of it")
                out[name].fill(ak.to_numpy(ak.ravel(x)), ak.to_numpy(ak.ravel(y)))
    return out
