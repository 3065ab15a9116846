"""Residuals between an original and a reconstructed file, streamed and summarized per column.

Residuals are relative, ``(reco - orig) / orig``, or absolute, ``reco - orig``, as each feature-set
column declares. Mean and standard deviation are exact (streamed sums); the 68 % and 99 % widths
(quantiles of ``|residual|``) come from a fine logarithmic boost-histogram of ``|residual|`` (bins
1.2 % wide, the upper edge is reported), so memory does not grow with the file size. Objects whose relative residual is
undefined (orig == 0) are counted separately.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import boost_histogram as bh
import numpy as np

from hepae.errors import ModelMismatchError
from hepae.features import FeatureSet, load_featureset
from hepae.io.sources import PathArg, Source, open_source
from hepae.io.tensors import check_collection, collection_to_tensor, select_objects, selection_mask

_AXIS = bh.axis.Regular(4000, 1e-12, 1e8, transform=bh.axis.transform.log)


class ResidualAccumulator:
    """Streaming per-column residual statistics."""

    def __init__(self, featureset: FeatureSet):
        self.featureset = featureset
        d = featureset.n_features
        self.n = np.zeros(d, np.int64)
        self.sum = np.zeros(d)  # of residual / max, so that neither sum can overflow (residuals up to 1e308)
        self.sum2 = np.zeros(d)  # of (residual / max)**2
        self.max = np.zeros(d)
        self.undefined = np.zeros(d, np.int64)
        self.hists = [bh.Histogram(_AXIS) for _ in range(d)]

    def residuals(self, original: np.ndarray, reco: np.ndarray) -> list[np.ndarray]:
        out = []
        orig64, reco64 = original.astype(np.float64), reco.astype(np.float64)
        for j, column in enumerate(self.featureset.columns):
            if column.residual == "relative":
                with np.errstate(divide="ignore", invalid="ignore"):
                    r = (reco64[:, j] - orig64[:, j]) / orig64[:, j]
            else:
                r = reco64[:, j] - orig64[:, j]
            out.append(r)
        return out

    def update(self, original: np.ndarray, reco: np.ndarray, residuals: list[np.ndarray] | None = None) -> None:
        """Add a chunk; ``residuals`` (from :meth:`residuals`) if the caller has them already."""
        for j, r in enumerate(residuals if residuals is not None else self.residuals(original, reco)):
            finite = np.isfinite(r)
            self.undefined[j] += int((~finite).sum())
            r = r[finite]
            self.n[j] += r.size
            if r.size:
                largest = float(np.abs(r).max())
                if largest > self.max[j]:  # a new scale: rescale the sums so far
                    ratio = self.max[j] / largest
                    self.sum[j] *= ratio
                    self.sum2[j] *= ratio * ratio
                    self.max[j] = largest
                if self.max[j] > 0:
                    scaled = r / self.max[j]
                    self.sum[j] += scaled.sum()
                    self.sum2[j] += (scaled * scaled).sum()
            self.hists[j].fill(np.abs(r))

    def _quantile(self, j: int, q: float) -> float:
        hist = self.hists[j]
        counts = hist.values(flow=True)
        total = counts.sum()
        if total == 0:
            return float("nan")
        cumulative = np.cumsum(counts)
        index = int(np.searchsorted(cumulative, q * total))
        edges = hist.axes[0].edges
        if index == 0:  # underflow: |r| below 1e-12
            return 0.0
        return float(edges[min(index, len(edges) - 1)])  # upper edge of the bin reaching q

    def summary(self) -> dict[str, dict[str, Any]]:
        out = {}
        for j, column in enumerate(self.featureset.columns):
            n, scale = int(self.n[j]), float(self.max[j])
            mean_scaled = self.sum[j] / n if n else float("nan")
            mean = mean_scaled * scale if n else float("nan")
            std = scale * float(np.sqrt(max(self.sum2[j] / n - mean_scaled * mean_scaled, 0.0))) if n else float("nan")
            out[column.name] = {
                "kind": column.residual,
                "n": n,
                "mean": float(mean),
                "std": std,
                "width68": self._quantile(j, 0.68),
                "width99": self._quantile(j, 0.99),
                "max_abs": float(self.max[j]),
                "undefined": int(self.undefined[j]),
            }
        return out


@contextlib.contextmanager
def open_pair(original: PathArg, reconstructed: PathArg, featureset: FeatureSet) -> Iterator[tuple[Source, Source]]:
    """Both files' tables, checked to hold the collection and the same number of events."""
    with open_source(original, featureset.tree) as a, open_source(reconstructed, featureset.tree) as b:
        check_collection(a.layout, featureset, original)
        check_collection(b.layout, featureset, reconstructed)
        if a.num_entries != b.num_entries:
            raise ModelMismatchError(f"{original} has {a.num_entries} events, {reconstructed} {b.num_entries}")
        yield a, b


def paired_chunks(
    a: Source, b: Source, featureset: FeatureSet, step_size: int | str
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Chunk by chunk, ``(original, reconstructed, counts)``: the objects the network encodes (the
    feature set's selection, taken from the original) and their per-event counts."""
    names = featureset.input_branches
    entry_start = 0
    for chunk_a, chunk_b in zip(a.iterate(names, step_size), b.iterate(names, step_size)):
        # float64: the files' values as stored (a float32 tensor would overflow on large float64 values)
        values_a, counts = collection_to_tensor(chunk_a, featureset, np.float64, source=a.path,
                                                entry_start=entry_start)
        values_b, counts_b = collection_to_tensor(chunk_b, featureset, np.float64, source=b.path,
                                                  entry_start=entry_start)
        entry_start += len(counts)
        if not np.array_equal(counts, counts_b):
            raise ModelMismatchError(f"{a.path} and {b.path} differ in the number of objects per event")
        mask = selection_mask(chunk_a, featureset)
        values_a, selected = select_objects(values_a, counts, mask)
        yield values_a, select_objects(values_b, counts, mask)[0], selected


def residual_summary(
    original: PathArg,
    reconstructed: PathArg,
    featureset: str | FeatureSet,
    *,
    step_size: int = 200_000,
) -> dict[str, dict[str, Any]]:
    """Per-column residual statistics of ``reconstructed`` against ``original`` (same events, same order).

    Raises :class:`ModelMismatchError` if the two files differ in events or objects per event.
    """
    featureset = load_featureset(featureset)
    accumulator = ResidualAccumulator(featureset)
    with open_pair(original, reconstructed, featureset) as (a, b):
        for values_a, values_b, _ in paired_chunks(a, b, featureset, step_size):
            accumulator.update(values_a, values_b)
    return accumulator.summary()
