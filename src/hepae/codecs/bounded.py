"""The ``bounded`` codec: every value within its error bound, and no network.

Each column is quantized to integer steps of its bound around a constant (the chunk's median, put on
the column's grid; under a relative bound the median of ``|x|``, given each value's own sign, so that
values of either sign, as η and φ have, cost one sign bit rather than an exact value); each column's
steps are then predicted from the columns before it
(:class:`hepae.codecs.residual_prediction.Predictor`: a fixed-point linear fit, a context curve, class
tables) and entropy coded (:mod:`hepae.codecs.entropy`). Values that cannot be kept within the bound
(NaN, Inf, a zero or a sign change under a relative bound) are stored exactly. This is the ``ae``
codec's coded chunk with no latent value (the same bytes, ``docs/format.md``), plus a stream of the
relative-bound columns' sign bits (entropy coded: a column of one sign costs its table alone), so
decoding needs neither torch nor a model file, and every machine decodes the same values.

It serves every float branch of a whole file (``hepae compress --profile``) and any feature set
(``--codec bounded --features ... --error-bound ...``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from os import PathLike
from typing import Any

import numpy as np

from hepae.codecs import entropy, learned, order_statistics
from hepae.codecs.ae import _CodedChunk, _rank_classes
from hepae.codecs.base import BoundCodec, Codec
from hepae.codecs.bounds import (
    DEFAULT_MARGIN,
    EXCEPTION,
    ErrorBound,
    constant_margin,
    magnitude_bits,
    on_grid,
    quantize_residuals,
)
from hepae.codecs.residual_prediction import Predictor, evenly_spaced, zigzag
from hepae.errors import CodecError, FeatureSetError

FIT_ROWS = 4096
"""Rows the predictor is fitted on: a whole file has many columns to fit, and beyond a few thousand rows
the fit gains < 0.1 % of the bytes (27 jet variables: 4096 rows against 16384). The predictor fitted on
the first chunk that has this many rows is kept for the rest of the file (it is stored in every chunk):
fitting is most of the encoding time."""


_CENTER_ROWS = 8192  # rows whose median is a column's constant


class Bounded(Codec):
    """Prediction and entropy coding under a per-column error bound; needs no model.

    Parameters
    ----------
    error_bounds : iterable of str or ErrorBound
        One per column: ``"pt=rel:1e-3"``, ``"eta=abs:1e-3"``, ``"pt=bits:10"``.
    margin : float
        Fraction of each bound kept for differences between machines (``exp``/``log``); the codec uses
        at most this, and less where float32 rounding allows (:func:`hepae.codecs.bounds.constant_margin`).
    entropy_model : EntropyModel, its JSON document, or the path of one, optional
        A learned entropy model (``hepae train-entropy``): per chunk and column, used where it codes the column
        in fewer bytes than the hand-built parts. It becomes part of the codec's configuration, so the
        compressed file carries it (checked by its SHA-256 when read).
    exact : iterable of str, optional
        Columns kept bit for bit beside the bounded ones (a whole file's float branches that its profile keeps
        exact, coded with their collection): each value's bits without the sign are steps from a center
        (:func:`hepae.codecs.bounds.magnitude_bits`), its sign in the sign stream, predicted and entropy coded
        like the others. The entropy model never codes them (nor reads them as inputs).
    """

    codec_id = "bounded"
    summary = ("every value within its --error-bound (one per column): predicted from the columns before it and "
               "entropy coded; needs no model")
    supports_error_bounds = True

    def __init__(self, error_bounds: Iterable[str | ErrorBound] = (), margin: float = DEFAULT_MARGIN,
                 entropy_model: learned.EntropyModel | dict[str, Any] | str | PathLike[str] | None = None,
                 exact: Iterable[str] = ()):
        if isinstance(error_bounds, str):
            error_bounds = [error_bounds]
        bounds = tuple(b if isinstance(b, ErrorBound) else ErrorBound.parse(b) for b in error_bounds)
        if not bounds:
            raise CodecError("the bounded codec needs an error bound for every column (--error-bound COLUMN=rel:B)")
        if isinstance(exact, str) or not all(isinstance(c, str) and c for c in exact):
            raise CodecError(f"bounded: exact must be a list of column names, got {exact!r}")
        exact = tuple(exact)
        names = [b.column for b in bounds] + list(exact)
        if len(set(names)) != len(names):
            raise CodecError(f"bounded: more than one error bound (or exact) for a column: {names}")
        if not 0 < margin < 1:
            raise CodecError(f"bounded: margin must be in (0, 1), got {margin}")
        if entropy_model is not None:
            entropy_model = learned.as_entropy_model(entropy_model, "the bounded codec's entropy model")
        self._set(error_bounds=bounds, margin=float(margin), entropy_model=entropy_model, exact=exact)

    def get_config(self) -> dict[str, Any]:
        config = {"id": self.codec_id, "error_bounds": [str(b) for b in self.error_bounds], "margin": self.margin}
        if self.entropy_model is not None:
            config["entropy_model"] = self.entropy_model.to_dict()
        if self.exact:
            config["exact"] = list(self.exact)
        return config

    def __repr__(self) -> str:
        model = f", entropy_model={self.entropy_model!r}" if self.entropy_model is not None else ""
        exact = f", exact={list(self.exact)!r}" if self.exact else ""
        return f"Bounded(error_bounds={[str(b) for b in self.error_bounds]!r}, margin={self.margin!r}{model}{exact})"

    def bind(self, columns: Sequence[str], dtype: Any, model: Any = None) -> BoundBounded:
        return BoundBounded(self, columns, dtype)


class BoundBounded(BoundCodec):
    """The ``bounded`` codec bound to its columns (every one of them bounded)."""

    codec: Bounded

    def __init__(self, codec: Bounded, columns: Sequence[str], dtype: Any) -> None:
        super().__init__(codec, columns, dtype)
        by_column = {b.column: b for b in codec.error_bounds} | {c: ErrorBound.exact(c) for c in codec.exact}
        unknown = sorted(set(by_column) - set(self.columns))
        if unknown:
            raise FeatureSetError(f"error bound(s) for {unknown}: no such column; columns are {self.columns}")
        missing = [c for c in self.columns if c not in by_column]
        if missing:
            raise CodecError(f"the bounded codec needs an error bound for every column; {missing} have none "
                             "(--error-bound COLUMN=rel:B)")
        self.error_bounds = tuple(by_column[c] for c in self.columns)
        self.margin = constant_margin(self.error_bounds, codec.margin)
        self._relative = [j for j, b in enumerate(self.error_bounds) if b.kind in ("rel", "exact")]  # own signs
        self._predictor: Predictor | None = None  # fitted on the first chunk of FIT_ROWS rows, kept for the file
        model = codec.entropy_model
        self._learned = learned.model_columns(model, list(self.columns), list(self.error_bounds)) \
            if model is not None else None
        if self._learned is not None and all(entry is None for entry in self._learned):
            self._learned = None  # the model serves none of these columns: chunks as without it

    def stream_dtypes(self) -> dict[str, str]:
        return {"coded": "uint8", **({"signs": "uint8"} if self._relative else {}),
                **({"learned": "uint8"} if self._learned is not None else {})}

    def chunk_streams(self) -> set[str]:
        return set(self.stream_dtypes())

    def quantize(self, values: np.ndarray, counts: np.ndarray | None = None) -> dict[str, Any]:
        """One chunk's integer steps and what codes them: ``steps`` (n, k), exception ``flags`` and ``exact``
        values per column, ``constant``, ``negative`` signs, ``ranks``, and the ``predictor`` (fitted on the
        first chunk of :data:`FIT_ROWS` rows, kept for the rest of the file)."""
        values = np.asarray(values)
        if values.ndim != 2 or values.shape[1] != len(self.columns):
            raise CodecError(f"bounded: expected ({len(values)}, {len(self.columns)}) values, got {values.shape}")
        n, k = values.shape
        ranks = _rank_classes(counts, n)
        constant = on_grid(self._centers(values), list(range(k)), self.error_bounds, self.margin)
        negative = {j: np.signbit(values[:, j]) for j in self._relative}  # each value keeps its own sign
        steps = np.zeros((n, k), dtype=np.int64, order="F")  # column after column: contiguous columns
        flags, exact = [], []
        for j, b in enumerate(self.error_bounds):
            zeros_apart = False
            if b.kind == "exact":
                constant[j], zeros_apart = self._exact_center(values[:, j], negative[j])
            residual, _ = quantize_residuals(values[:, j], constant[j], b.kind, b.value, self.margin, negative.get(j))
            if zeros_apart:  # zeros as exceptions (marked, not stored), the other values around their center
                residual[magnitude_bits(values[:, j]) == 0] = EXCEPTION
            flag = residual == EXCEPTION
            residual[flag] = 0
            steps[:, j] = residual
            flags.append(flag)
            exact.append(values[flag, j])
        predictor = self._predictor
        if predictor is None:
            predictor = Predictor.fit(steps, flags, True, ranks, rows=FIT_ROWS)
            if n >= FIT_ROWS:  # a small chunk fits for itself only
                self._predictor = predictor
        return {"steps": steps, "flags": flags, "exact": exact, "constant": constant, "negative": negative,
                "ranks": ranks, "predictor": predictor}

    def encode(self, values: np.ndarray, counts: np.ndarray | None = None) -> dict[str, np.ndarray]:
        q = self.quantize(values, counts)
        steps, flags, exact, predictor, ranks = q["steps"], q["flags"], q["exact"], q["predictor"], q["ranks"]
        n = len(steps)
        hand_tokens = predictor.tokens(steps, flags)
        tokens = hand_tokens
        out = {}
        chunk_learned, gains = None, {}
        if self._learned is not None:  # the learned model, where it codes a column in fewer bytes
            chunk_learned, tokens, gains = self.learned_choice(q, hand_tokens, counts)
            predictor = replace(predictor, learned=chunk_learned)
        ordered = self.ordered_choice(q, tokens, counts, predictor)
        if ordered:  # sorted within events: the order-statistic model codes them; their residual streams are empty
            if chunk_learned is not None:  # what the learned model keeps must still pay for its part's header
                tokens = learned.without(chunk_learned, ordered, gains, hand_tokens, tokens)
            tokens = [np.ones(n, np.uint64) if j in ordered else t for j, t in enumerate(tokens)]
            predictor = replace(predictor, ordered=frozenset(ordered))
        if chunk_learned is not None:
            out["learned"] = chunk_learned.to_bytes()
        chunk = _CodedChunk(np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros((n, 0), np.int64),
                            np.zeros(0, np.float64), predictor, tokens,
                            np.concatenate(exact).astype(self.dtype) if exact else np.zeros(0, self.dtype), ranks,
                            q["constant"], self.margin, steps, order_statistics.encode(steps, ordered, counts))
        out["coded"] = chunk.to_bytes()
        if self._relative:
            out["signs"] = entropy.encode_streams([q["negative"][j].astype(np.uint64) for j in self._relative])
        return out

    def learned_choice(self, q: dict[str, Any], tokens: list[np.ndarray], counts: np.ndarray | None
                       ) -> tuple[learned.LearnedChunk, list[np.ndarray], dict[int, float]]:
        """Where the entropy model codes the chunk of :meth:`quantize` (``q``, hand-built ``tokens``) in fewer
        bits: the chunk's learned columns, every column's tokens, and the bits saved per learned column."""
        steps, flags, predictor, ranks = q["steps"], q["flags"], q["predictor"], q["ranks"]
        hand_built = [predictor.column_arguments(j) for j in range(len(self.columns))]
        classes = [predictor.classes(steps, j) for j in range(len(self.columns))]
        classes = [ranks if c is None else c for c in classes]
        chunk = learned.choose(self._learned, list(self.error_bounds), self.margin, steps, flags, hand_built,  # type: ignore[arg-type]
                               tokens, classes, counts)
        tokens, gains = learned.confirm(chunk, steps, flags, hand_built, tokens, classes)
        return chunk, tokens, gains

    def ordered_choice(self, q: dict[str, Any], tokens: list[np.ndarray], counts: np.ndarray | None,
                       predictor: Predictor) -> list[int]:
        """The columns of the chunk of :meth:`quantize` (``q``) that :mod:`hepae.codecs.order_statistics` codes in
        fewer bits than ``tokens`` (hand-built or learned, as ``predictor`` classes them)."""
        steps, flags, ranks = q["steps"], q["flags"], q["ranks"]
        bits: list[float | None] = []
        for j in range(len(self.columns)):
            if not order_statistics.candidate(steps[:, j], flags[j], counts):
                bits.append(None)
                continue
            classes = predictor.classes(steps, j)
            bits.append(learned.coded_bits(tokens[j], ranks if classes is None else classes, 1.0))
        return order_statistics.choose(steps, counts, bits)

    def _exact_center(self, column: np.ndarray, negative: np.ndarray) -> tuple[np.floating, bool]:
        """An exact column's center, and whether its zeros are exceptions: the median of its finite magnitudes with
        zeros as steps, or, if it has zeros, the median of the others with zeros as exceptions, whichever leaves
        fewer bits (on a sample of rows; order-0, exceptions at their stored size). A quantity that is 0 in most
        objects (MET without MET, a 0/1 flag) pays a fraction of a bit per zero (chunk layout 5 marks them) and
        codes its other values near their own center."""
        rows = evenly_spaced(len(column), _CENTER_ROWS)
        sample, signs = column[rows], negative[rows]
        with np.errstate(invalid="ignore"):  # a signalling NaN, widened (not finite: not used)
            magnitudes = np.abs(sample.astype(np.float64))
        finite = magnitudes[np.isfinite(magnitudes)]
        candidates = [(np.median(finite) if len(finite) else 0.0, False)]
        if (finite > 0).any() and (finite == 0).any():
            candidates.append((np.median(finite[finite > 0]), True))
        best, cost = (column.dtype.type(0), False), np.inf
        for median, zeros_apart in candidates:  # the center is stored as float32 (array 10)
            center = column.dtype.type(np.float32(min(median, float(np.finfo(np.float32).max))))
            q, exact = quantize_residuals(sample, center, "exact", 0.0, self.margin, signs)
            if zeros_apart:
                zero = magnitude_bits(sample) == 0
                q[zero], exact[zero] = EXCEPTION, sample[zero]
            tokens = np.where(q == EXCEPTION, np.uint64(0), zigzag(q) + np.uint64(1))  # as the coder sees them
            stored = int(np.count_nonzero(exact.view(f"u{exact.dtype.itemsize}")))  # not +0.0: stored as they are
            bits = entropy.estimated_bits(tokens) + 8 * exact.dtype.itemsize * stored
            if bits < cost:
                best, cost = (center, zeros_apart), bits
        return best

    def _centers(self, values: np.ndarray) -> np.ndarray:
        """Per column, the median of its finite values (of the magnitudes of its non-zero ones under a relative
        bound; 1 if none)."""
        out = np.zeros(values.shape[1])
        rows = evenly_spaced(len(values), _CENTER_ROWS)  # a center needs no exact median
        for j, b in enumerate(self.error_bounds):
            if b.kind == "exact":  # centered by _exact_center
                continue
            with np.errstate(invalid="ignore"):  # a signalling NaN, widened (not finite: not used)
                column = values[rows, j].astype(np.float64)
            if b.kind == "rel":
                column = np.abs(column)
            usable = np.isfinite(column) & ((column != 0) if b.kind == "rel" else True)
            if usable.any():
                out[j] = np.median(column[usable])
            elif b.kind == "rel":
                out[j] = 1.0
        return np.clip(out, -3e38, 3e38)

    def decode(self, streams: dict[str, np.ndarray], counts: np.ndarray | None = None) -> np.ndarray:
        chunk_learned = None
        if self._learned is not None:
            if "learned" not in streams:
                raise CodecError("coded bounded chunk has no learned-model part, which its codec writes (corrupted)")
            chunk_learned = lambda n: learned.LearnedChunk.read(streams["learned"], self._learned, counts, n)  # noqa: E731
        chunk = _CodedChunk.read(streams["coded"], self.dtype, counts, len(self.columns), 0, learned=chunk_learned)
        if chunk.constant is None or len(chunk.constant) != len(self.columns):
            raise CodecError("coded bounded chunk has no constant prediction of the right size (corrupted)")
        n, k = len(chunk.q_latent), len(self.columns)
        negative = dict(zip(self._relative, (s.astype(bool) for s in self._signs(streams, n))))
        out = np.empty((n, k), dtype=self.dtype, order="F")
        chunk.apply_residuals(out, range(k), self.error_bounds, centers=chunk.constant.astype(self.dtype),
                              negative=negative)
        return out

    def _signs(self, streams: dict[str, np.ndarray], n: int) -> list[np.ndarray]:
        """The relative-bound columns' sign bits (1: negative), checked to be ``n`` bits each."""
        if not self._relative:
            return []
        if "signs" not in streams:
            raise CodecError("coded bounded chunk has no sign stream (corrupted)")
        signs = entropy.decode_streams(np.asarray(streams["signs"], np.uint8), None,
                                       max_symbols=n * len(self._relative), n_streams=len(self._relative))
        if len(signs) != len(self._relative) or any(len(s) != n or (s > 1).any() for s in signs):
            raise CodecError("coded bounded chunk has sign bits of the wrong number or value (corrupted)")
        return signs
