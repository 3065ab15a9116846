"""The ``ae`` codec: the autoencoder's latent values, float32 or quantized and entropy coded, and
optional error bounds kept by coding each bounded column's residual.

With ``latent_bits`` (an int for every latent dimension, or ``"auto"``), each chunk is one coded
byte stream (:mod:`hepae.codecs.entropy`): per latent dimension, integers in steps of
``std * 2**-bits`` (the std measured on the validation split at training time; 0 bits drops the
dimension); per bounded column, the residual steps, predicted from those of the columns before it
(:class:`hepae.codecs.residual_prediction.Predictor`, fitted on the chunk: m follows pT, DetectorEta
follows eta, CentroidR is a curve of eta), so only what is new is coded. ``"auto"`` chooses each
dimension's bits for the fewest estimated bytes on a sample of the first chunk: a dimension that
costs more than it saves in residuals is dropped. A chunk that keeps no latent value runs no
network when decoding (its constant prediction is stored), and uses a margin of 0.01 (more for
relative bounds below 1e-4), enough for ``exp``/``log`` differences between machines.

The codec never imports torch: the model it is bound to brings its own ``encode``/``decode``.
The coded chunk's byte layout is in ``docs/format.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from hepae.codecs import entropy, order_statistics
from hepae.codecs.base import BoundCodec, Codec
from hepae.codecs.bounds import (
    DEFAULT_MARGIN,
    EXCEPTION,
    ErrorBound,
    apply_residuals,
    constant_margin,
    on_grid,
    quantize_residuals,
)
from hepae.codecs.residual_prediction import Predictor, evenly_spaced, unzigzag, zigzag
from hepae.errors import CodecError, FeatureSetError, UnknownLayoutError


class AE(Codec):
    """The autoencoder: latent values (float32, or quantized and entropy coded), optional error bounds.

    Parameters
    ----------
    latent_bits : int, "auto" or None
        None: float32 latent values. An int (0..24): each latent dimension quantized to steps of
        ``std * 2**-latent_bits``. ``"auto"`` (the default with error bounds): chosen per dimension
        on the first chunk, for the fewest bytes.
    error_bounds : iterable of str or ErrorBound
        ``"pt=rel:1e-3"``, ``"eta=abs:1e-3"``: every value of these columns comes back within its bound.
    margin : float
        Fraction of each bound kept for differences between the compressing and the decoding machine.
    """

    codec_id = "ae"
    summary = "the autoencoder's latent values, optionally with --error-bound per column (needs -m MODEL)"
    needs_model = True
    supports_error_bounds = True
    has_latent_values = True

    def __init__(self, latent_bits: int | str | None = None, error_bounds: Iterable[str | ErrorBound] = (),
                 margin: float = DEFAULT_MARGIN):
        if isinstance(error_bounds, str):
            error_bounds = [error_bounds]
        bounds = tuple(b if isinstance(b, ErrorBound) else ErrorBound.parse(b) for b in error_bounds)
        if latent_bits is None and bounds:
            latent_bits = "auto"
        if latent_bits == "auto" and not bounds:
            raise CodecError("ae: latent_bits='auto' trades latent bits against residual bits, so it needs error "
                             "bounds; give a number of bits without them")
        if latent_bits not in (None, "auto") and not (isinstance(latent_bits, int | np.integer)
                                                      and not isinstance(latent_bits, bool)
                                                      and 0 <= int(latent_bits) <= 24):
            raise CodecError(f"ae: latent_bits must be 'auto' or in 0..24, got {latent_bits!r}")
        if latent_bits == 0 and not bounds:
            raise CodecError("ae: latent_bits=0 without error bounds would give every object the same values")
        if not 0 < margin < 1:
            raise CodecError(f"ae: margin must be in (0, 1), got {margin}")
        names = [b.column for b in bounds]
        if len(set(names)) != len(names):
            raise CodecError(f"ae: more than one error bound for a column: {names}")
        self._set(latent_bits=latent_bits if latent_bits in (None, "auto") else int(latent_bits),
                  error_bounds=bounds, margin=float(margin))

    @property
    def quantized(self) -> bool:
        """Latent values quantized and entropy coded (one coded byte stream per chunk)."""
        return self.latent_bits is not None

    def get_config(self) -> dict[str, Any]:
        return {"id": self.codec_id, "latent_bits": self.latent_bits,
                "error_bounds": [str(b) for b in self.error_bounds], "margin": self.margin}

    def network_columns(self, columns: Sequence[str]) -> set[str]:
        return set(columns) - {b.column for b in self.error_bounds}

    def latent_values(self, streams: dict[str, np.ndarray], counts: np.ndarray | None = None) -> np.ndarray:
        """The float32 latent values ``(n, latent)`` that one chunk's streams hold (dequantized; a dropped
        dimension holds its chunk's median)."""
        if "coded" in streams:
            return _CodedChunk.read(streams["coded"], None, counts, len(self.error_bounds)).latent
        names = sorted((n for n in streams if n.startswith("latent_")), key=lambda n: int(n.split("_")[1]))
        return np.stack([streams[n] for n in names], axis=1).astype(np.float32)

    def bind(self, columns: Sequence[str], dtype: Any, model: Any = None) -> BoundAE:
        """Check the bounds against the columns and the model; without a model (a file whose chunks need
        no network) the quantized codec can only decode."""
        return BoundAE(self, columns, dtype, model)


class BoundAE(BoundCodec):
    """The ``ae`` codec bound to a collection and a model (or, to decode, to the embedded decoder)."""

    codec: AE
    _BIT_CHOICES = tuple(range(0, 11))
    _AUTO_SAMPLE = 8192
    _AUTO_MINIMUM = 1024

    def __init__(self, codec: AE, columns: Sequence[str], dtype: Any, model: Any = None) -> None:
        super().__init__(codec, columns, dtype)
        self.model = model
        self.error_bounds = codec.error_bounds
        unknown = [b.column for b in self.error_bounds if b.column not in self.columns]
        if unknown:
            raise FeatureSetError(f"error bound(s) for {unknown}: no such column; columns are {self.columns}")
        self._bounded = [self.columns.index(b.column) for b in self.error_bounds]
        self._chosen_bits: np.ndarray | None = None  # "auto": chosen on the first chunk, kept for the file
        self._network_used = not codec.quantized  # a chunk without latent values stores its constant prediction
        self.latent_size: int | None = None
        if model is None:
            if not codec.quantized:
                raise CodecError("the ae codec needs a trained model")
            return
        self.latent_size = model.latent_size
        exact = {c.name for c in model.featureset.columns if c.lossless}
        unbounded = [c for c in self.columns if c not in exact and c not in {b.column for b in self.error_bounds}]
        if codec.latent_bits == "auto" and unbounded:
            raise CodecError(f"ae: latent_bits='auto' may drop the latent values, which only bounded columns survive; "
                             f"give error bounds for {unbounded} too, or a number of latent bits")
        if codec.quantized and "encoder" in model.parts:
            std = model.training.get("latent_std")
            if std is None or len(std) != model.latent_size:
                raise CodecError("this model has no latent statistics; retrain it to quantize its latent values, "
                                 "or leave latent_bits unset")
            self._latent_std = np.maximum(np.asarray(std, dtype=np.float64), 1e-12)

    @property
    def margin(self) -> float:
        return self.codec.margin

    def stream_dtypes(self) -> dict[str, str]:
        if self.codec.quantized:
            return {"coded": "uint8"}
        return {f"latent_{i}": "float32" for i in range(self.latent_size)}

    def chunk_streams(self) -> set[str]:
        return {"coded"} if self.codec.quantized else set()

    @property
    def decoder_used(self) -> bool:
        return self._network_used

    def _safe_inputs(self, values: np.ndarray, model: Any) -> np.ndarray:
        """Values outside a bounded column's normalization domain (NaN, log of <= 0, ...) replaced by an
        in-domain value: the network can encode the object, and the bound stores the value exactly."""
        out = values
        for j in self._bounded:
            transform = model.normalization.transforms[j]
            bad = transform.domain_violations(values[:, j])
            if bad.any():
                out = out.copy() if out is values else out
                out[bad, j] = transform.inverse_transform(np.zeros(1))[0]
        return out

    def encode(self, values, counts=None):
        model = self.model
        safe = self._safe_inputs(values, model)
        if not self.codec.quantized:
            latent = model.encode(safe)
            return {f"latent_{i}": latent[:, i] for i in range(self.latent_size)}
        sample = evenly_spaced(len(values), self._AUTO_SAMPLE)
        if self.codec.latent_bits == "auto":
            bits = self._chosen_bits
            if bits is None:
                bits = self._choose_bits(values[sample], model.encode(safe[sample]), model)
                if len(sample) >= self._AUTO_MINIMUM:  # a small chunk chooses for itself only
                    self._chosen_bits = bits
        else:
            bits = np.full(self.latent_size, self.codec.latent_bits, dtype=np.int64)
        dropped = bool((bits == 0).all())  # then only the latent center matters: a sample gives it
        latent = model.encode(safe[sample] if dropped else safe)
        chunk = self._code(values, latent, bits, model, _rank_classes(counts, len(values)))
        self._network_used |= chunk.constant is None
        return {"coded": chunk.to_bytes()}

    def decode(self, streams, counts=None):
        model = self.model
        chunk = _CodedChunk.read(streams["coded"], self.dtype, counts, len(self._bounded),
                                 model.latent_size if model is not None else None) if self.codec.quantized else None
        if chunk is not None and chunk.constant is not None:  # no latent value: the network's output is constant
            out = np.repeat(chunk.constant[None, :], len(chunk.q_latent), axis=0)
        elif model is None:
            raise CodecError("this chunk needs the autoencoder's decoder, and the file has none embedded")
        else:
            out = model.decode(chunk.latent if chunk else self.codec.latent_values(streams))
        out = np.asarray(out, dtype=self.dtype)  # float64 inputs: bounds and exceptions in float64
        if chunk is not None and self._bounded:
            chunk.apply_residuals(out, self._bounded, self.error_bounds)
        return out

    # -- coding one chunk ---------------------------------------------------------------------------
    def _quantize_latent(self, latent: np.ndarray, bits: np.ndarray, n: int
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(integer steps, per-dimension center, step) of ``n`` objects; with every dimension dropped,
        ``latent`` may be a sample (only its median is used)."""
        center = np.median(latent, axis=0).astype(np.float32).astype(np.float64) if len(latent) else \
            np.zeros(latent.shape[1])
        step = self._latent_std * np.exp2(-bits.astype(np.float64))
        if (bits == 0).all():
            q = np.zeros((n, len(bits)), dtype=np.int64)
        else:
            limit = 2.0**40
            q = np.clip(np.rint((latent.astype(np.float64) - center) / step), -limit, limit).astype(np.int64)
            q[:, bits == 0] = 0
        return q, center, step

    def _residual_steps(self, values, predicted, margin: float) -> tuple[np.ndarray, list[np.ndarray]]:
        """``(n, bounded)`` int64 residual steps (exceptions 0) and, per bounded column, exception flags."""
        steps = np.zeros((len(values), len(self._bounded)), dtype=np.int64)
        flags = []
        for k, (j, b) in enumerate(zip(self._bounded, self.error_bounds)):
            residual, _ = quantize_residuals(values[:, j], predicted[:, j], b.kind, b.value, margin)
            flag = residual == EXCEPTION
            steps[:, k] = np.where(flag, 0, residual)
            flags.append(flag)
        return steps, flags

    def _code(self, values, latent, bits, model, ranks: np.ndarray | None = None, contexts: bool = True
              ) -> _CodedChunk:
        q_latent, center, step = self._quantize_latent(latent, bits, len(values))
        tokens: list[np.ndarray] = []
        predictor = Predictor.empty(len(self._bounded))
        steps = np.zeros((len(values), 0), dtype=np.int64)
        exact: list[np.ndarray] = []
        constant = None
        if (bits == 0).all():  # every object gets the same prediction: keep it, decoding needs no network
            constant = model.decode(_dequantize(q_latent[:1], center, step))[0] if len(values) else \
                np.zeros(len(self.columns), np.float32)
        margin = self.margin if constant is None else self._constant_margin()
        if constant is not None:
            constant = self._on_grid(constant, margin)
        if self._bounded:
            predicted = np.repeat(constant[None, :], len(values), axis=0) if constant is not None else \
                model.decode(_dequantize(q_latent, center, step))
            steps, flags = self._residual_steps(values, predicted, margin)
            predictor = Predictor.fit(steps, flags, contexts, ranks)
            tokens = predictor.tokens(steps, flags)
            exact = [values[flag, j] for flag, j in zip(flags, self._bounded)]
        return _CodedChunk(bits, center, q_latent, self._latent_std, predictor, tokens,
                           np.concatenate(exact).astype(self.dtype) if exact else np.zeros(0, self.dtype), ranks,
                           None if constant is None else constant.astype(np.float32), margin, steps)

    def _on_grid(self, constant: np.ndarray, margin: float) -> np.ndarray:
        return on_grid(constant, self._bounded, self.error_bounds, margin)

    def _constant_margin(self) -> float:
        return constant_margin(self.error_bounds, self.margin)

    def _choose_bits(self, sample_values, sample_latent, model) -> np.ndarray:
        """Per latent dimension, the bits that give the fewest estimated bits per object on a sample:
        first one setting for all dimensions (from 0 bits up, until the cost has risen twice in a row),
        then each dimension on its own (0, and up to 2 bits either side)."""

        def cost(bits: np.ndarray) -> float:
            chunk = self._code(sample_values, sample_latent, bits, model, contexts=False)  # a sample: no classes
            return chunk.estimated_bits()

        uniform: dict[int, float] = {}
        for b in self._BIT_CHOICES:  # up to two rises in a row: past the minimum
            uniform[b] = cost(np.full(self.latent_size, b))
            if b >= 2 and uniform[b] > uniform[b - 1] > uniform[b - 2]:
                break
        best = np.full(self.latent_size, min(uniform, key=uniform.get), dtype=np.int64)
        best_cost = uniform[int(best[0])]
        for i in range(self.latent_size):
            for b in sorted({0, *range(max(0, best[i] - 2), min(max(self._BIT_CHOICES), best[i] + 2) + 1)} - {best[i]}):
                trial = best.copy()
                trial[i] = b
                c = cost(trial)
                if c < best_cost:
                    best, best_cost = trial, c
        return best


_RANK_CLASSES = 3
_MAX_LATENT = 1024  # latent dimensions (or bounded columns) a chunk may declare when nothing says how many


def _rank_classes(counts: np.ndarray | None, n: int) -> np.ndarray | None:
    """Per object, its place in its event (0: leading, 1: second, 2: any other); objects are sorted
    (by pT, mostly), so the leading ones' values follow other distributions than the rest's."""
    if counts is None:
        return None
    counts = np.asarray(counts, dtype=np.int64)
    if counts.sum() != n:
        raise CodecError(f"the per-event counts add up to {counts.sum()} objects, not {n}")
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return np.minimum(np.arange(n) - starts, _RANK_CLASSES - 1)


def _dequantize(q: np.ndarray, center: np.ndarray, step: np.ndarray) -> np.ndarray:
    return (center + q.astype(np.float64) * step).astype(np.float32)


ALL_ZERO = np.zeros(1, np.uint8)
"""The mark of "every exception's exact value is +0.0" (a quantity that is often exactly 0, under a relative
bound): layout 5's array 13, layout 4's array 9. One byte instead of 4 or 8 per value, so that a chunk's bytes
stay what it costs without ROOT's compression to squeeze them."""


def _code_exact(exact: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The exceptions' exact values as layout 5 stores them: those that are not +0.0, and which are (the zero
    mark: empty if none is, :data:`ALL_ZERO` if all are, else one entropy-coded bit per exception, 1 for +0.0).

    Under a relative bound an exact 0 is an exception, and many quantities are 0 in most objects (MET φ in 76 %
    of the γ+jet NanoAOD events); beside a few other exceptions (a NaN, a value of an exact column far from the
    rest) they cost a fraction of a bit each, not 4 or 8 bytes."""
    zero = ~exact.view(f"u{exact.dtype.itemsize}").astype(bool)
    if not zero.any():
        return exact, np.zeros(0, np.uint8)
    if zero.all():
        return exact[:0], ALL_ZERO
    return exact[~zero], entropy.encode_streams([zero.astype(np.uint64)])


def _exact_values(stored: np.ndarray, n: int, dtype: Any, version: int, mark: np.ndarray | None = None) -> np.ndarray:
    """The ``n`` exceptions' exact values that a chunk of layout ``version`` stores, in the codec's ``dtype`` (None:
    as stored): layout 5's values and zero ``mark`` (:func:`_code_exact`) put together; :data:`ALL_ZERO` expanded
    (layout 4); values of another dtype refused from layout 4 on (layout 3's were always cast)."""
    if version >= 5:
        if mark is None or mark.dtype != np.uint8 or stored.dtype.kind != "f" or \
                (dtype is not None and stored.dtype != np.dtype(dtype)):
            raise CodecError("coded ae chunk: its exact values or their zero mark have the wrong type (corrupted)")
        if len(mark) == 0:
            zero = np.zeros(n, bool)
        elif np.array_equal(mark, ALL_ZERO) and n > 0:
            zero = np.ones(n, bool)
        else:
            try:
                marks = entropy.decode_streams(mark, max_symbols=n, n_streams=1)
            except CodecError:
                marks = []
            if len(marks) != 1 or len(marks[0]) != n or (marks[0] > 1).any() or n == 0:
                raise CodecError("coded ae chunk: the zero mark of its exact values is damaged (corrupted)")
            zero = marks[0].astype(bool)
        if len(stored) != n - int(zero.sum()):
            raise CodecError("coded ae chunk: the number of exact values does not match its exceptions")
        out = np.zeros(n, stored.dtype if dtype is None else dtype)
        out[~zero] = stored
        return out
    if version >= 4 and stored.dtype == np.uint8:
        if not np.array_equal(stored, ALL_ZERO) or n == 0:
            raise CodecError("coded ae chunk: its exact values are neither values nor the mark of all zeros "
                             "(corrupted)")
        return np.zeros(n, dtype if dtype is not None else np.float64)
    if stored.dtype.kind != "f":
        raise CodecError(f"coded ae chunk: its exact values are {stored.dtype}, not floats (corrupted)")
    if version >= 4 and dtype is not None and stored.dtype != np.dtype(dtype):
        raise CodecError(f"coded ae chunk: its exact values are {stored.dtype}, not the codec's {np.dtype(dtype)} "
                         "(corrupted)")
    if len(stored) != n:
        raise CodecError("coded ae chunk: the number of exact values does not match its exceptions")
    return stored.astype(dtype) if dtype is not None else stored


@dataclass
class _CodedChunk:
    """One chunk of the quantized ``ae`` codec: what :func:`hepae.codecs.entropy.pack_arrays` stores."""

    bits: np.ndarray  # per latent dimension (0: dropped)
    center: np.ndarray  # per latent dimension, float32 values
    q_latent: np.ndarray  # (n, latent) integer steps
    latent_std: np.ndarray  # per latent dimension: the step is std * 2**-bits
    predictor: Predictor  # of each bounded column's residual steps from the columns before it
    residual_tokens: list[np.ndarray]  # per bounded column
    exact: np.ndarray  # exceptions' values, column after column
    ranks: np.ndarray | None = None  # per object, its rank class in its event: a table per class
    constant: np.ndarray | None = None  # with no latent dimension kept: the prediction for every object
    margin: float = DEFAULT_MARGIN  # of the error bounds in this chunk
    steps: np.ndarray | None = None  # (n, bounded) residual steps, as the tokens give them back
    ordered: np.ndarray | None = None  # hepae.codecs.order_statistics' bytes of the columns sorted within events

    _VERSION: ClassVar[int] = 6  # 6: + columns sorted within events; 5: +0.0 exact values marked one by one;
    # 4: all-zero marked; 3: as they are
    _READABLE: ClassVar[tuple[int, ...]] = (3, 4, 5, 6)  # (1, 2: never released)

    def _streams(self) -> list[np.ndarray]:
        kept = np.flatnonzero(self.bits > 0)
        return [zigzag(self.q_latent[:, i]) for i in kept] + list(self.residual_tokens)

    def estimated_bits(self) -> float:
        return sum(entropy.estimated_bits(s, tables=False) for s in self._streams())

    def _classes(self) -> list[np.ndarray | None]:
        """Per stream, the entropy coder's classes: a bounded column's class context, else the ranks."""
        n_kept = int((self.bits > 0).sum())
        own = [self.predictor.classes(self.steps, j) for j in range(len(self.residual_tokens))]
        return [self.ranks] * n_kept + [None if j in self.predictor.ordered else self.ranks if c is None else c
                                        for j, c in enumerate(own)]

    def to_bytes(self) -> np.ndarray:
        streams = self._streams()
        header = np.array([self._VERSION, len(self.q_latent), len(self.bits), len(self.residual_tokens),
                           int(self.ranks is not None)], np.int64)
        coded = entropy.encode_streams(streams, self._classes())
        constant = np.zeros(0, np.float32) if self.constant is None else self.constant
        exact, zero_mark = _code_exact(self.exact)
        return entropy.pack_arrays([header, self.bits.astype(np.int64), self.center.astype(np.float32),
                                    self.latent_std.astype(np.float64), *self.predictor.to_arrays(),
                                    exact, constant, np.array([self.margin], np.float64), coded, zero_mark,
                                    np.zeros(0, np.uint8) if self.ordered is None else self.ordered])

    def apply_residuals(self, predicted: np.ndarray, columns: Sequence[int], bounds: Sequence[ErrorBound],
                        centers: np.ndarray | None = None, negative: dict[int, np.ndarray] | None = None) -> None:
        """The bounded columns of ``predicted`` (``(n, D)``, in place): the prediction moved by each column's
        residual steps, or the exact value where the token marks an exception. ``columns[k]`` is the
        column of ``bounds[k]`` and of residual stream ``k``. With ``centers``, column ``columns[k]``'s
        prediction is ``centers[k]`` for every object (what ``predicted`` holds there is not read), with the
        sign flipped where ``negative[columns[k]]`` is set (relative bounds)."""
        exact = np.split(self.exact, np.cumsum([(t == 0).sum() for t in self.residual_tokens])[:-1])
        negative = negative or {}
        for k, (j, b) in enumerate(zip(columns, bounds)):
            is_exception = self.residual_tokens[k] == 0
            residual = self.steps[:, k].astype(np.int32)
            residual[is_exception] = EXCEPTION
            exact_column = np.zeros(len(predicted), dtype=predicted.dtype)
            exact_column[is_exception] = exact[k]
            base = predicted[:, j] if centers is None else centers[k]
            predicted[:, j] = apply_residuals(base, residual, exact_column, b.kind, b.value, self.margin,
                                              predicted.dtype, negative.get(j))

    @property
    def latent(self) -> np.ndarray:
        return _dequantize(self.q_latent, self.center.astype(np.float64),
                           self.latent_std * np.exp2(-self.bits.astype(np.float64)))

    @classmethod
    def read(cls, data: np.ndarray, dtype: Any, counts: np.ndarray | None = None, n_bounded_expected: int | None = None,
             n_latent_expected: int | None = None, learned: Callable[[int], Any] | None = None) -> _CodedChunk:
        """A chunk from its bytes; ``counts`` (objects per event) if it was coded with them; ``learned``: reads
        the chunk's :class:`hepae.codecs.learned.LearnedChunk` given its number of objects (the ``bounded`` codec
        with an entropy model).

        Every size the chunk declares is checked against the codec's columns, its model and ``counts``
        before anything of that size is allocated, so a crafted chunk cannot exhaust memory. ``dtype``: the
        codec's (layout 4: the exact values must have it); None to read the latent values only.
        """
        try:
            arrays = entropy.unpack_arrays(data)
        except ValueError as err:
            raise CodecError(f"coded ae chunk is damaged: {err}") from None
        if not arrays or arrays[0].dtype != np.int64 or len(arrays[0]) != 5:
            raise CodecError("coded ae chunk has no valid header (corrupted)")
        version, n, n_latent, n_bounded, by_rank = arrays[0].tolist()
        n_predictor = 5
        if version not in cls._READABLE:
            raise UnknownLayoutError(f"coded ae chunk has layout {version}, not one of {list(cls._READABLE)} (written "
                                     "by a development version of hepae before its ANS coder was constriction's, or by "
                                     "a newer hepae)")
        if len(arrays) != 8 + n_predictor + (version >= 5) + (version >= 6):
            raise CodecError("coded ae chunk has an unknown layout (written by a newer hepae, or corrupted)")
        if n < 0 or n_latent < 0 or n_bounded < 0:
            raise CodecError("coded ae chunk has negative sizes (corrupted)")
        if (n_bounded_expected is not None and n_bounded != n_bounded_expected) or n_latent > _MAX_LATENT \
                or n_bounded > _MAX_LATENT \
                or (n_latent_expected is not None and n_latent != n_latent_expected):
            raise CodecError(f"coded ae chunk declares {n_bounded} bounded column(s) and {n_latent} latent "
                             f"dimension(s); the codec has {n_bounded_expected} and {n_latent_expected} (corrupted)")
        if counts is not None and n != int(np.sum(counts)):
            raise CodecError(f"coded ae chunk holds {n} objects, the per-event counts say {int(np.sum(counts))}")
        bits, center, std = arrays[1:4]
        exact, constant, margin, coded = arrays[4 + n_predictor:8 + n_predictor]
        zero_mark = arrays[8 + n_predictor] if version >= 5 else None
        if len(bits) != n_latent or len(center) != n_latent or len(std) != n_latent or ((bits < 0) | (bits > 24)).any():
            raise CodecError("coded ae chunk has an unknown layout (written by a newer hepae, or corrupted)")
        predictor = Predictor.from_arrays(arrays[4:4 + n_predictor], n_bounded)
        predictor.learned = learned(n) if learned is not None else None
        kept = np.flatnonzero(bits > 0)
        ranks = None
        if by_rank:
            if counts is None:
                raise CodecError("this chunk was coded per rank in the event: decoding needs the per-event counts")
            ranks = _rank_classes(counts, n)
        steps = np.zeros((n, n_bounded), dtype=np.int64, order="F")  # contiguous columns
        ordered = arrays[9 + n_predictor] if version >= 6 else np.zeros(0, np.uint8)
        if ordered.dtype != np.uint8:
            raise CodecError("coded ae chunk has an unknown layout (written by a newer hepae, or corrupted)")
        if len(ordered):  # the columns sorted within events first: the others' predictions may read them
            sorted_columns = order_statistics.decode(ordered, counts, n, n_bounded)
            for j, column in sorted_columns.items():
                steps[:, j] = column
            predictor.ordered = frozenset(sorted_columns)
            if predictor.learned is not None and any(predictor.learned.uses(j) for j in predictor.ordered):
                raise CodecError("coded ae chunk: a column is both sorted and coded by the learned model (corrupted)")
        undone = [0]

        def classes(i: int, before: list[np.ndarray]) -> np.ndarray | None:
            """Stream ``i``'s classes, from the residual steps of the columns decoded before it."""
            j = i - len(kept)
            if j in predictor.ordered:
                raise CodecError(f"coded ae chunk: sorted column {j}'s residual stream has more than one table "
                                 "(corrupted)")
            chunk_learned = predictor.learned
            if j < 0 or (predictor.class_context[j] < 0 and not (chunk_learned is not None and chunk_learned.uses(j))):
                return ranks
            while undone[0] < j:
                predictor.undo_column(steps, before[len(kept) + undone[0]], undone[0])
                undone[0] += 1
            return predictor.classes(steps, j)

        streams = entropy.decode_streams(coded, classes,
                                         max_symbols=n * (len(kept) + n_bounded), n_streams=len(kept) + n_bounded)
        if len(streams) != len(kept) + n_bounded or any(len(s) != n for s in streams):
            raise CodecError("coded ae chunk holds streams of the wrong number or length")
        q_latent = np.zeros((n, n_latent), dtype=np.int64)
        for i, s in zip(kept, streams):
            q_latent[:, i] = unzigzag(s)
        tokens = list(streams[len(kept):])
        if any((tokens[j] != 1).any() for j in predictor.ordered):
            raise CodecError("coded ae chunk: a sorted column's residual stream holds tokens other than 1 (corrupted)")
        for j in range(undone[0], n_bounded):  # the columns no class asked for yet
            predictor.undo_column(steps, tokens[j], j)
        exact = _exact_values(exact, sum(int((t == 0).sum()) for t in tokens), dtype, version, zero_mark)
        if len(constant) and (bits > 0).any():
            raise CodecError("coded ae chunk has both latent values and a constant prediction")
        if len(margin) != 1 or not 0 < margin[0] < 1:
            raise CodecError("coded ae chunk has no valid error-bound margin")
        return cls(bits, center, q_latent, std, predictor, tokens, exact, ranks, constant if len(constant) else None,
                   float(margin[0]), steps, ordered if len(ordered) else None)


