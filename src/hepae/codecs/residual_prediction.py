"""Residual prediction: each bounded column's residual steps predicted from the columns decoded before it.

The ``ae`` codec quantizes every bounded column to integer steps; what it codes is each column's steps
minus a prediction from the columns before it, so only what is new in a column costs bits. Two parts,
both in integer arithmetic, so that every machine decodes the same:

* a **linear predictor** over the previous columns' steps (fixed-point coefficients, ``2**-16``), fitted
  by least squares per chunk: m follows pT, DetectorEta follows eta. Beside the full fit, the columns
  that matter are refitted alone, with coefficients in sixteenths and the most frequent remainder as
  the constant, and the smaller code is kept: where a column equals another in many objects, the
  prediction is then exact there (OotFracClusters5 = OotFracClusters10 in half the jets);
* a **context curve**: a piecewise-linear function of one previous column's steps, through knots at
  that column's median in quantile bins, valued the median of what the linear predictor left there.
  It takes the dependences a line cannot: CentroidR against eta (``1/sin(theta)``, saturating), a phi
  that wraps around at +-pi, a fraction that is non-zero only inside one detector region.

Each part is kept for a column only where it makes the column's coded size (its tables included) smaller.

The entropy coder's tables can be conditioned on decoded values too: a column may take its **classes**
(a frequency table each) from the quantile bin of an earlier column, bins grouped by how spread the
remainders in them are. HECFrac is ~0 outside the hadronic end-cap and broad inside: two tables, one
per region of eta, code it in fewer bits than one table for both.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hepae.codecs import entropy, kernels
from hepae.errors import CodecError

FRACTION = 16
"""Fixed-point bits of the linear coefficients."""
_MAX_COEFFICIENT = 2**20  # |c| <= 16 in real units; |steps| < 2**30: no overflow in int64
_MAX_CURVE = 2**30  # curve values and knot positions stay within the int64-safe range of the steps
_MAX_CONSTANT = 2**40  # the fits' constants (fixed point) stay within this
_FIT_ROWS = 50_000  # rows of a chunk that the fits look at
_SCREEN_ROWS = 1024  # rows on which each candidate context column is tried
_BINS = 48  # quantile bins of the context column (at most: equal quantiles merge)
_QUANTILES = np.linspace(0, 1, _BINS + 1)[1:-1]
_KNOT_BITS = 128  # what a knot is charged: twice its storage (two int32), so a curve must clearly pay
_CLASS_BINS = 16  # quantile bins of a class context column
_CLASSES = 4  # classes (frequency tables) the bins are grouped into
_ROW_SETS_KEPT = 4  # sets of rows (by the exceptions of the column fitted) whose fitting data are kept for reuse


def zigzag(values: np.ndarray) -> np.ndarray:
    """Signed integers -> unsigned, small magnitudes first (0, -1, 1, -2, ...)."""
    v = np.asarray(values, dtype=np.int64)
    return ((v << 1) ^ (v >> 63)).astype(np.uint64)


def unzigzag(values: np.ndarray) -> np.ndarray:
    u = np.asarray(values, dtype=np.uint64)
    return ((u >> np.uint64(1)).astype(np.int64) ^ -(u & np.uint64(1)).astype(np.int64))


def evenly_spaced(n: int, size: int) -> np.ndarray:
    """Up to ``size`` row indices spread evenly over ``n`` rows."""
    return np.linspace(0, n - 1, min(n, size)).astype(np.int64) if n else np.zeros(0, np.int64)


def curve(position: np.ndarray, knots: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The piecewise-linear function through ``(knots, values)`` at integer ``position`` (int64, floor
    division: exact and the same everywhere); constant beyond the first and last knot."""
    return kernels.curve(np.asarray(position, dtype=np.int64), knots, values)


@dataclass
class _CurveBins:
    """What fitting a context curve needs of its position column alone: computed once per column and used
    for every column whose remainder is tried against it."""

    rows: np.ndarray  # the rows, bin after bin (by position within a bin)
    starts: np.ndarray  # per bin, where its rows start in ``rows``
    ends: np.ndarray  # and end
    knots: np.ndarray  # strictly increasing: the bins' median positions, where they increase
    keep: np.ndarray  # the bins those knots belong to

    @classmethod
    def of(cls, position: np.ndarray) -> _CurveBins:
        order = np.argsort(position, kind="stable")  # by bin, then position: a bin is a range of positions
        ordered = position[order]
        edges = np.unique(ordered[np.around(_QUANTILES * (len(ordered) - 1)).astype(np.int64)])  # "nearest"
        sorted_bins = np.searchsorted(edges, ordered, side="right")
        starts = np.flatnonzero(np.r_[True, sorted_bins[1:] != sorted_bins[:-1]])
        ends = np.r_[starts[1:], len(order)]
        knots = ordered[(starts + ends - 1) // 2]  # the lower median position of each bin
        keep = np.r_[True, knots[1:] > knots[:-1]]  # strictly increasing positions
        return cls(order.astype(np.int64), starts.astype(np.int64), ends.astype(np.int64),
                   knots[keep].astype(np.int64), keep)

    def fit(self, remainder: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Knots and values: the (lower) median remainder in each bin."""
        values = kernels.lower_medians(np.asarray(remainder, np.int64), self.rows, self.starts, self.ends)
        return self.knots, np.clip(values[self.keep], -_MAX_CURVE, _MAX_CURVE).astype(np.int64)


@dataclass
class _Gram:
    """Least squares of any column of ``x`` on any set of the others plus a constant, from one product of the
    rows: the fits of all the columns of a chunk cost one pass over the rows, not one each. Each column is taken
    relative to its (rounded) mean and scaled to unit length first, so that a column far from zero against its
    spread (an offset of 1e8 steps, a spread of 20) is fitted as well as one around zero."""

    scaled: np.ndarray  # (k + 1, k + 1): [x - reference, 1]^T [x - reference, 1] over the scales' outer product
    scales: np.ndarray  # (k + 1,) the columns' lengths (1 where a column is all zero); the constant last
    reference: np.ndarray  # (k,) int64: each column's rounded mean, subtracted before the product

    @classmethod
    def of(cls, x: np.ndarray) -> _Gram:
        reference = np.rint(x.mean(axis=0)).astype(np.int64) if len(x) else np.zeros(x.shape[1], np.int64)
        product = kernels.gram(np.ascontiguousarray(x, np.int64), reference)
        scales = np.sqrt(np.diag(product))
        scales[scales == 0] = 1.0
        return cls(product / np.outer(scales, scales), scales, reference)

    def solve(self, columns: list[int], target: int) -> np.ndarray:
        """The least-squares coefficients of ``columns`` and the constant (last) that predict ``target``. Where the
        columns are (nearly) dependent, the smallest solution in the centered, scaled columns (numpy's
        :func:`~numpy.linalg.lstsq` of the small product; its cutoff, relative to the design's singular values,
        is about ``1e-7`` rather than ``1e-12``): the same predictions, other coefficients."""
        used = [*columns, len(self.scales) - 1]
        solution, *_ = np.linalg.lstsq(self.scaled[np.ix_(used, used)], self.scaled[used, target], rcond=None)
        solution = solution * self.scales[target] / self.scales[used]
        solution[-1] += self.reference[target] - float(np.dot(solution[:-1], self.reference[columns]))
        return solution


def _fit_curve(position: np.ndarray, remainder: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Knots at the median position of each quantile bin, valued the median remainder in the bin."""
    return _CurveBins.of(position).fit(remainder)


def _bits(difference: np.ndarray) -> float:
    return entropy.estimated_bits(zigzag(difference))


def _bits_of_rows(differences: np.ndarray) -> np.ndarray:
    """:func:`_bits` of each row of ``(m, n)`` differences."""
    token, width, _ = entropy.tokenize(zigzag(differences).ravel())
    return entropy.token_bits_of_rows(token.reshape(differences.shape), width.reshape(differences.shape))


@dataclass
class Predictor:
    """Per bounded column: linear coefficients over the columns before it, an optional context curve and
    an optional class context (the entropy coder's table chosen by an earlier column's bin)."""

    coefficients: np.ndarray  # (k, k + 1) int64, fixed point; the last column is the constant
    context: np.ndarray  # (k,) int64: the column whose steps the curve reads, -1 for none
    knots: list[np.ndarray] = field(default_factory=list)  # per column, increasing int64 positions
    values: list[np.ndarray] = field(default_factory=list)  # per column, int64 curve values at the knots
    class_context: np.ndarray | None = None  # (k,): the column whose bin gives the class, -1 for none
    class_edges: list[np.ndarray] = field(default_factory=list)  # per column, increasing bin edges
    class_groups: list[np.ndarray] = field(default_factory=list)  # per column, the class of each bin
    learned: Any = None  # one chunk's hepae.codecs.learned.LearnedChunk: the columns a learned model codes
    ordered: frozenset[int] = frozenset()  # one chunk's columns whose steps come from hepae.codecs.order_statistics

    def __post_init__(self) -> None:
        k = len(self.coefficients)
        if self.class_context is None:
            self.class_context = np.full(k, -1, np.int64)
            self.class_edges = [np.zeros(0, np.int64)] * k
            self.class_groups = [np.zeros(0, np.int64)] * k

    @classmethod
    def empty(cls, k: int) -> Predictor:
        return cls(np.zeros((k, k + 1), np.int64), np.full(k, -1, np.int64),
                   [np.zeros(0, np.int64)] * k, [np.zeros(0, np.int64)] * k)

    def classes(self, steps: np.ndarray, j: int) -> np.ndarray | None:
        """Column ``j``'s entropy-coder class of each object, from ``steps[:, :j]``; None: no class context."""
        if j in self.ordered:  # its residual stream holds no information
            return None
        if self.learned is not None and self.learned.uses(j):
            return self.learned.classes(steps, j)
        c = int(self.class_context[j])
        if c < 0:
            return None
        return self.class_groups[j][kernels.bins(steps[:, c], self.class_edges[j])]

    def column_arguments(self, j: int) -> tuple:
        """Column ``j``'s prediction as the kernels take it: the used columns and their weights, the constant
        (with the rounding half), the context column, its knots and values, the fixed-point bits."""
        k = len(self.coefficients)
        used = np.flatnonzero(self.coefficients[j, :j])  # the sparse fits leave most coefficients 0
        context = int(self.context[j])
        knots, values = (self.knots[j], self.values[j]) if context >= 0 else (np.zeros(1, np.int64),) * 2
        return (used.astype(np.int64), self.coefficients[j, used].astype(np.int64),
                np.int64(self.coefficients[j, k]) + np.int64(1 << (FRACTION - 1)), context,
                np.asarray(knots, np.int64), np.asarray(values, np.int64), FRACTION)

    def predict(self, steps: np.ndarray, j: int) -> np.ndarray:
        """Column ``j``'s prediction from ``steps[:, :j]`` (the later columns are not read)."""
        return kernels.predict(steps, *self.column_arguments(j))

    def tokens(self, steps: np.ndarray, flags: list[np.ndarray]) -> list[np.ndarray]:
        """Per column: 0 for an exception, else ``1 + zigzag(steps - prediction)`` (the hand-built prediction: the
        learned columns' tokens come from :func:`hepae.codecs.learned.confirm`)."""
        if any(len(flag) != len(steps) for flag in flags):
            raise CodecError("residual prediction: the exception flags do not match the steps")
        return [kernels.residual_tokens(steps, j, np.asarray(flag, np.bool_), *self.column_arguments(j))
                for j, flag in enumerate(flags)]

    def undo(self, tokens: list[np.ndarray]) -> np.ndarray:
        """The ``(n, k)`` steps back from :meth:`tokens` (exceptions: 0), column after column."""
        n = len(tokens[0]) if tokens else 0
        steps = np.zeros((n, len(tokens)), dtype=np.int64, order="F")  # contiguous columns
        for j, t in enumerate(tokens):
            self.undo_column(steps, t, j)
        return steps

    def undo_column(self, steps: np.ndarray, tokens: np.ndarray, j: int) -> None:
        """Fill ``steps[:, j]`` from column ``j``'s tokens (``steps[:, :j]`` already filled)."""
        if len(tokens) != len(steps):  # the kernel reads a token per row
            raise CodecError(f"coded chunk: column {j} holds {len(tokens)} values, not {len(steps)} (corrupted)")
        if j in self.ordered:  # its steps were decoded before the residual streams
            return
        if self.learned is not None and self.learned.uses(j):
            self.learned.undo(steps, np.asarray(tokens, np.uint64), j, self.column_arguments(j))
        else:
            kernels.undo_column(steps, np.asarray(tokens, np.uint64), j, *self.column_arguments(j))

    # -- fitting ------------------------------------------------------------------------------------
    @classmethod
    def fit(cls, steps: np.ndarray, flags: list[np.ndarray], contexts: bool = True,
            classes: np.ndarray | None = None, rows: int = _FIT_ROWS) -> Predictor:
        """Fitted on (a sample of) one chunk's steps; ``contexts=False`` fits the linear part only, by
        least squares alone (quicker, for comparing settings). ``classes``: the entropy coder's classes
        of the objects otherwise (their rank in the event), which a class context has to beat. ``rows``:
        how many of the chunk's rows the fit looks at (at most).

        Column ``j`` is fitted on the rows where it is not an exception; an exception of an earlier
        column counts as step 0 there, as the predictor sees it when coding. (Leaving out every row
        with an exception anywhere would leave almost nothing to fit on when one column is mostly
        exceptions, as a quantity that is zero in 98 % of the jets is under a relative bound.)"""
        n, k = steps.shape
        predictor = cls.empty(k)
        if n < 16:
            return predictor
        sample = np.arange(0, n, max(1, n // rows))
        fallback_all = classes[sample] if classes is not None else None
        # per set of rows fitted on (the columns without exceptions share one): those rows, their least-squares
        # products and each column's quantile bins, computed when first needed; the sets used last are kept (a few:
        # memory stays bounded when every column has exceptions of its own)
        row_sets: OrderedDict[bytes, tuple[np.ndarray, _Gram, dict[tuple[str, int], object]]] = OrderedDict()
        for j in range(1, k):
            usable = ~flags[j][sample]
            if usable.sum() < 16:
                continue
            rows = sample[usable]
            key = np.packbits(usable).tobytes()
            if key not in row_sets:
                if len(row_sets) == _ROW_SETS_KEPT:
                    row_sets.popitem(last=False)
                x = steps[rows]
                row_sets[key] = (x, _Gram.of(x), {})
            row_sets.move_to_end(key)
            x, gram, bins = row_sets[key]
            knot_bits = _KNOT_BITS * len(rows) / n  # a knot's storage, in proportion to the rows fitted on
            fallback = fallback_all[usable] if fallback_all is not None else None
            predictor._fit_linear(x, j, gram, sparse=contexts)
            if contexts:
                predictor._fit_context(x, j, knot_bits, bins)
                predictor._fit_classes(x, j, len(rows) / n, fallback, bins)
        return predictor

    def _fit_linear(self, x: np.ndarray, j: int, gram: _Gram, sparse: bool = True) -> None:
        k = len(self.coefficients)
        fit = gram.solve(list(range(j)), j)
        fixed = np.clip(np.rint(fit * 2.0**FRACTION), -_MAX_COEFFICIENT, _MAX_COEFFICIENT).astype(np.int64)
        fixed[-1] = int(np.clip(np.rint(fit[-1] * 2.0**FRACTION), -_MAX_CONSTANT, _MAX_CONSTANT))
        trials = [fixed]
        if sparse:
            # also: the columns that matter (|c| >= 1/8) refitted alone, snapped to sixteenths and a whole
            # constant. A column that equals another in many objects (OotFracClusters5 = OotFracClusters10
            # + 0 in half the jets) is then predicted exactly there, not off by the noise of 25 small terms.
            strong = np.flatnonzero(np.abs(fit[:-1]) >= 0.125)
            refit = gram.solve(list(strong), j)
            snapped = np.zeros(j + 1, np.int64)
            snapped[strong] = np.rint(refit[:-1] * 16).astype(np.int64) << (FRACTION - 4)
            snapped[-1] = int(np.clip(np.rint(refit[-1]), -2.0**24, 2.0**24)) << FRACTION
            snapped[:-1] = np.clip(snapped[:-1], -_MAX_COEFFICIENT, _MAX_COEFFICIENT)
            offset = x[:, j] - ((x[:, :j] @ snapped[:-1] + (1 << (FRACTION - 1))) >> FRACTION)
            values, counts = np.unique(offset, return_counts=True)
            mode = snapped.copy()  # the constant of the most frequent remainder: zero where the columns are equal
            mode[-1] = int(np.clip(values[np.argmax(counts)], -2**24, 2**24)) << FRACTION
            trials += [snapped, mode]
        candidates = [self.coefficients[j].copy()]  # the current ones (zero), then each trial's
        for trial in trials:
            candidates.append(candidates[0].copy())
            candidates[-1][:j], candidates[-1][k] = trial[:-1], trial[-1]
        left = np.empty((len(candidates), len(x)), np.int64)
        for i, coefficients in enumerate(candidates):
            self.coefficients[j] = coefficients
            left[i] = x[:, j] - self.predict(x, j)
        self.coefficients[j] = candidates[int(np.argmin(_bits_of_rows(left)))]  # the first of the cheapest

    def _fit_context(self, x: np.ndarray, j: int, knot_bits: float, bins: dict[tuple[str, int], object]) -> None:
        """A context curve for column ``j`` where it pays (``bins``: the columns' quantile bins, reused)."""
        remainder = x[:, j] - self.predict(x, j)
        screen = evenly_spaced(len(x), _SCREEN_ROWS)
        for c in range(j):  # the candidates, on fewer rows
            if ("curve screen", c) not in bins:
                bins["curve screen", c] = _CurveBins.of(x[screen, c])
        candidates: list[_CurveBins] = [bins["curve screen", c] for c in range(j)]  # type: ignore[misc]
        left = kernels.screened_curves(  # without a curve, then with each candidate's
            np.ascontiguousarray(remainder[screen]), np.ascontiguousarray(x[screen, :j].T),
            np.stack([b.rows for b in candidates]), *(np.concatenate([getattr(b, a) for b in candidates])
                                                      for a in ("starts", "ends", "keep", "knots")),
            np.cumsum([0, *(len(b.starts) for b in candidates)]), np.cumsum([0, *(len(b.knots) for b in candidates)]),
            _MAX_CURVE)
        n_knots = np.array([0, *(len(b.knots) for b in candidates)], np.float64)
        costs = _bits_of_rows(left) + knot_bits * n_knots * len(screen) / len(x)
        best = int(np.argmin(costs[1:]))  # the first of the cheapest, if it beats no curve
        if not costs[best + 1] < costs[0]:
            return
        if ("curve", best) not in bins:
            bins["curve", best] = _CurveBins.of(x[:, best])
        knots, values = bins["curve", best].fit(remainder)  # type: ignore[attr-defined]
        if _bits(remainder - curve(x[:, best], knots, values)) + knot_bits * len(knots) < _bits(remainder):
            self.context[j], self.knots[j], self.values[j] = best, knots, values

    def _fit_classes(self, x: np.ndarray, j: int, share: float, fallback: np.ndarray | None,
                     bins: dict[tuple[str, int], object]) -> None:
        """A class context for column ``j`` where its tables pay (``share``: of the chunk's rows in ``x``;
        ``bins``: the columns' quantile bins, reused)."""
        values = zigzag(x[:, j] - self.predict(x, j))

        def class_bins(rows: np.ndarray, c: int, which: str) -> tuple[np.ndarray, np.ndarray]:
            """Bin edges on column ``c`` (of ``rows``, called ``which``) and each row's bin."""
            if (which, c) not in bins:
                edges = np.unique(np.quantile(x[rows, c], np.linspace(0, 1, _CLASS_BINS + 1)[1:-1],
                                              method="nearest"))
                bins[which, c] = edges, np.searchsorted(edges, x[rows, c], side="right")
            return bins[which, c]  # type: ignore[return-value]

        def groupings(rows: np.ndarray, candidates: list[int], which: str) -> tuple[np.ndarray, np.ndarray]:
            """Per candidate column: each bin's class (bins ranked by the spread of the remainders in them, cut
            at the largest gaps: :func:`hepae.codecs.kernels.spread_groups`) and each row's bin."""
            row_bins = np.stack([class_bins(rows, c, which)[1] for c in candidates])
            n_bins = np.array([len(class_bins(rows, c, which)[0]) + 1 for c in candidates], np.int64)
            return kernels.spread_groups(np.log2(values[rows] + 1.0), row_bins, n_bins, _CLASSES), row_bins

        def best_of(rows: np.ndarray, candidates: list[int], which: str) -> int:
            """The first of the candidates whose classes cost least, if they beat the classes without a class
            context (one class, or the ``fallback``) strictly; else -1. All are scored in one call, so that a
            candidate that classes the rows as the others do ties with them exactly."""
            if not candidates:
                return -1
            tokens = entropy.tokenize(values[rows])[:2]  # the same values under every candidate's classes
            bases = [np.zeros(len(rows), np.int64), *([fallback[rows]] if fallback is not None else [])]
            groups, row_bins = groupings(rows, candidates, which)
            classes = np.concatenate([np.stack(bases), np.take_along_axis(groups, row_bins, axis=1)])
            bits, table_bits = entropy.token_bits_per_class_of_rows(*tokens, classes)
            costs = bits + share * len(rows) / len(x) * table_bits  # tables charged for the rows' share
            best = int(np.argmin(costs[len(bases):]))
            return candidates[best] if costs[len(bases) + best] < costs[:len(bases)].min() else -1

        screen = evenly_spaced(len(x), _SCREEN_ROWS)
        chosen = best_of(screen, list(range(j)), "class screen")
        if chosen < 0:
            return
        everything = np.arange(len(x))
        if best_of(everything, [chosen], "class") == chosen:  # confirmed on all the rows fitted on
            self.class_context[j] = chosen
            groups, _ = groupings(everything, [chosen], "class")
            self.class_edges[j] = class_bins(everything, chosen, "class")[0]
            self.class_groups[j] = groups[0, :len(self.class_edges[j]) + 1]

    # -- storage ------------------------------------------------------------------------------------
    def to_arrays(self) -> list[np.ndarray]:
        """``[coefficients (int64), layout (int32: context, knots per column, class context, edges per
        column), knots then curve values (int32), class edges (int32), class of each bin (uint8)]``."""
        layout = np.concatenate([self.context, [len(v) for v in self.knots], self.class_context,
                                 [len(e) for e in self.class_edges]])
        return [self.coefficients.ravel().astype(np.int64), layout.astype(np.int32),
                np.concatenate([*self.knots, *self.values, np.zeros(0, np.int64)]).astype(np.int32),
                np.concatenate([*self.class_edges, np.zeros(0, np.int64)]).astype(np.int32),
                np.concatenate([*self.class_groups, np.zeros(0, np.int64)]).astype(np.uint8)]

    @classmethod
    def from_arrays(cls, arrays: list[np.ndarray], k: int) -> Predictor:
        """Inverse of :meth:`to_arrays`, checked (a damaged chunk raises :class:`CodecError`)."""
        if len(arrays) != 5:
            raise CodecError("coded ae chunk: its residual predictor has the wrong layout (corrupted)")
        coefficients, layout, points, edges, groups = (np.asarray(a, dtype=np.int64) for a in arrays)
        if len(layout) != 4 * k:
            raise CodecError("coded ae chunk: its residual predictor has the wrong size (corrupted)")
        context, n_knots, class_context, n_edges = layout.reshape(4, k)
        knots, values = points[:len(points) // 2], points[len(points) // 2:]
        if len(coefficients) != k * (k + 1) or (n_knots < 0).any() or len(points) != 2 * n_knots.sum() \
                or (n_edges < 0).any() or len(edges) != n_edges.sum() \
                or len(groups) != len(edges) + int((class_context >= 0).sum()):
            raise CodecError("coded ae chunk: its residual predictor has the wrong size (corrupted)")
        if (np.abs(coefficients.reshape(k, k + 1)[:, :k]) > _MAX_COEFFICIENT).any() \
                or (np.abs(coefficients.reshape(k, k + 1)[:, k]) > _MAX_CONSTANT).any() \
                or (np.abs(knots) > _MAX_CURVE).any() or (np.abs(values) > _MAX_CURVE).any():
            raise CodecError("coded ae chunk: its residual predictor is out of range (corrupted)")
        split = np.cumsum(n_knots)[:-1]
        knots_per, values_per = np.split(knots, split), np.split(values, split)
        edges_per = np.split(edges, np.cumsum(n_edges)[:-1])
        groups_per = np.split(groups, np.cumsum(n_edges + (class_context >= 0))[:-1])
        for j, (c, kn, cc, e) in enumerate(zip(context.tolist(), knots_per, class_context.tolist(), edges_per)):
            if not (c == -1 and len(kn) == 0 or 0 <= c < j and len(kn) >= 1 and (np.diff(kn) > 0).all()) \
                    or not (cc == -1 and len(e) == 0 or 0 <= cc < j and (np.diff(e) > 0).all()):
                raise CodecError("coded ae chunk: its residual predictor has a bad context (corrupted)")
        return cls(coefficients.reshape(k, k + 1), context, list(knots_per), list(values_per), class_context,
                   list(edges_per), list(groups_per))
