"""The learned entropy model of the ``bounded`` codec: integer networks, the same on every machine.

The hand-built parts of :mod:`hepae.codecs.residual_prediction` predict each bounded column from the
columns before it in the same object. What they cannot see: the other objects of the event (in a dijet the
second jet's phi is the first one's plus pi, its pT close to the first one's), and spreads that depend on
several columns at once. Per bounded column, a :class:`ColumnModel` holds two small networks trained on
code length (``hepae train-entropy``, :mod:`hepae.entropy_models`):

* a **location** network: a shift of the hand-built prediction, from the object's earlier columns, its place
  in the event and the columns of its event's leading object and of the object before it (the column being
  coded too: those objects are decoded first);
* a **scale** network: the log of the spread of what is left, from the same inputs but the other objects'
  value of the column being coded; its output, cut into bins, chooses the entropy coder's frequency table.

The networks run in integer arithmetic only (int16 weights, int64 sums, shifts, a ReLU), so encoder and
decoder compute the same shifts and tables on every machine, thread count, BLAS or torch version, and
without torch: :mod:`hepae.codecs.kernels` runs them. A model is stored as JSON (``schemas/entropy-model
.schema.json``) with a SHA-256 of its content, checked when it is read: a damaged or edited model is refused.

Per chunk, the codec takes the learned model for a column only where it codes the column in fewer bytes
than the hand-built parts (its per-chunk parameters and tables included), so a file is never bigger with a
model than without one; the choice and the per-chunk integers (:class:`LearnedChunk`) are stored in the
chunk. Decoding uses the stored integers alone; the float units in the model are read by the encoder only.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, replace
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from hepae.codecs import entropy, kernels
from hepae.codecs.ae import _rank_classes
from hepae.codecs.bounds import ErrorBound, quantization_step
from hepae.errors import CodecError, ModelFormatError, UnknownLayoutError
from hepae.schema import validate

FORMAT = "hepae-entropy-model"
VERSION = 1
MAX_FEATURES = 8
"""Inputs of a column's networks besides the two rank flags."""
MAX_HIDDEN = 32
MAX_WEIGHT = 32767
"""Weights are int16."""
INPUT_BITS = 10
"""An input of value 1.0 (one unit of its column) is ``2**INPUT_BITS`` in the networks' integers."""
N_CLASSES = 16
"""Frequency tables per learned column and chunk (at most)."""
_CHUNK_VERSION = 1
SOURCES = ("object", "leading", "previous")
"""Where a feature is read: the object, its event's leading object, or the object before it in the event."""
_SELECT_ROWS = 65_536  # rows of a chunk on which the learned model is tried against the hand-built one


# -- the model --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class IntegerNetwork:
    """``output = b2 + sum(w2 * min(relu(w1 @ x + b1) >> shift, 32767))``: ``x`` the integer inputs, the
    output ``2**output_bits`` per unit."""

    w1: np.ndarray  # (hidden, 2 + features) int64, |w| <= MAX_WEIGHT
    b1: np.ndarray  # (hidden,) int64
    shift: int
    w2: np.ndarray  # (hidden,) int64, |w| <= MAX_WEIGHT
    b2: int
    output_bits: int

    def to_dict(self) -> dict[str, Any]:
        return {"hidden": int(self.w1.shape[0]), "inputs": int(self.w1.shape[1]), "shift": int(self.shift),
                "output_bits": int(self.output_bits), "w1": _encode(self.w1.astype(np.int16)),
                "b1": _encode(self.b1.astype(np.int32)), "w2": _encode(self.w2.astype(np.int16)), "b2": int(self.b2)}

    @classmethod
    def from_dict(cls, d: dict[str, Any], inputs: int, where: str) -> IntegerNetwork:
        hidden = d["hidden"]
        if not all(type(d[k]) is int for k in ("hidden", "inputs", "shift", "output_bits", "b2")) \
                or not (1 <= hidden <= MAX_HIDDEN and d["inputs"] == inputs and 0 <= d["shift"] <= 40
                        and 0 <= d["output_bits"] <= 40 and abs(d["b2"]) <= 1 << 28):
            raise ModelFormatError(f"{where}: network sizes or shifts are not integers in range")
        w1 = _decode(d["w1"], np.int16, hidden * inputs, where).reshape(hidden, inputs)
        return cls(w1, _decode(d["b1"], np.int32, hidden, where), int(d["shift"]),
                   _decode(d["w2"], np.int16, hidden, where), int(d["b2"]), int(d["output_bits"]))

    def kernel_arguments(self) -> tuple:
        return (self.w1.astype(np.int64), self.b1.astype(np.int64), np.int64(self.shift), self.w2.astype(np.int64),
                np.int64(self.b2))


@dataclass(frozen=True)
class ColumnModel:
    """One bounded column's networks and the units their inputs and outputs are in.

    ``kind`` is the bound kind the model was trained under (``abs``: units of the value, ``rel``: of
    ``log|x|``); a column coded under the other kind does not use it. ``unit`` is one unit of the column
    (the spread of its values in training), ``features`` the inputs as ``(source, column, kind, unit)``.
    """

    column: str
    kind: str
    unit: float
    features: tuple[tuple[str, str, str, float], ...]
    location: IntegerNetwork
    scale: IntegerNetwork

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "kind": self.kind, "unit": self.unit,
                "features": [{"source": s, "column": c, "kind": k, "unit": u} for s, c, k, u in self.features],
                "location": self.location.to_dict(), "scale": self.scale.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str) -> ColumnModel:
        features = tuple((f["source"], f["column"], f["kind"], float(f["unit"])) for f in d["features"])
        where = f"{where}, column {d['column']!r}"
        if len(features) > MAX_FEATURES or any(s not in SOURCES or not (0 < u < 1e30) for s, _, _, u in features) \
                or not 0 < d["unit"] < 1e30:
            raise ModelFormatError(f"{where}: bad features or units")
        inputs = 2 + len(features)
        return cls(d["column"], d["kind"], float(d["unit"]), features,
                   IntegerNetwork.from_dict(d["location"], inputs, where + " location"),
                   IntegerNetwork.from_dict(d["scale"], inputs, where + " scale"))


@dataclass(frozen=True, repr=False)
class EntropyModel:
    """Learned networks per bounded column (by column name), and what they were trained on."""

    columns: dict[str, ColumnModel]
    trained_on: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        content = {"columns": [c.to_dict() for c in self.columns.values()], "trained_on": self.trained_on}
        return {"format": FORMAT, "version": VERSION, "sha256": _digest(content), **content}

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "entropy model") -> EntropyModel:
        """A model from :meth:`to_dict`'s document, validated against its schema and its checksum."""
        validate(d, "entropy-model.schema.json", what=source)
        if d["version"] != VERSION:
            raise ModelFormatError(f"{source}: entropy model version {d['version']}; this hepae reads version "
                                   f"{VERSION}")
        content = {"columns": d["columns"], "trained_on": d["trained_on"]}
        if _digest(content) != d["sha256"]:
            raise ModelFormatError(f"{source}: the entropy model's checksum does not match its content (damaged or "
                                   "edited)")
        columns = [ColumnModel.from_dict(c, source) for c in d["columns"]]
        names = [c.column for c in columns]
        if len(set(names)) != len(names):
            raise ModelFormatError(f"{source}: the entropy model has more than one entry for a column")
        return cls({c.column: c for c in columns}, d["trained_on"])

    def save(self, path: str | PathLike[str], *, overwrite: bool = False) -> Path:
        path = Path(path)
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists (overwrite=True to replace it)")
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return path

    def __repr__(self) -> str:
        names = list(self.columns)
        return (f"EntropyModel({len(names)} column(s): {', '.join(names[:6])}{', ...' if len(names) > 6 else ''}; "
                f"sha256 {self.to_dict()['sha256'][:12]})")

    def serving(self, columns: list[str], bounds: list[ErrorBound]) -> EntropyModel | None:
        """The part of this model that serves some of ``columns`` coded under ``bounds`` (:func:`model_columns`),
        or None if it serves none of them: what a whole file's unit carries."""
        served = [entry[0].column for entry in model_columns(self, columns, bounds) if entry is not None]
        if not served:
            return None
        trained_on = {k: v for k, v in self.trained_on.items() if k != "units"}  # not every unit's statistics
        return EntropyModel({c: self.columns[c] for c in served}, trained_on)

    @property
    def size(self) -> int:
        """Bytes of the model's JSON document (what a compressed file embeds)."""
        return len(json.dumps(self.to_dict(), separators=(",", ":")))


def load_entropy_model(path: str | PathLike[str]) -> EntropyModel:
    """An entropy model written by ``hepae train-entropy`` (:meth:`EntropyModel.save`), checked."""
    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelFormatError(f"{path}: not an entropy model ({err})") from None
    return EntropyModel.from_dict(document, str(path))


def as_entropy_model(model: EntropyModel | dict[str, Any] | str | PathLike[str], what: str = "entropy model"
                     ) -> EntropyModel:
    """An :class:`EntropyModel` from itself, its JSON document (checked) or the path of its file (checked)."""
    if isinstance(model, EntropyModel):
        return model
    if isinstance(model, (str, PathLike)):
        return load_entropy_model(model)
    if isinstance(model, dict):
        return EntropyModel.from_dict(model, what)
    raise CodecError(f"entropy_model must be an EntropyModel, its JSON document or a path, not {type(model).__name__}")


def _encode(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a, a.dtype.newbyteorder("<")).tobytes()).decode("ascii")


def _decode(text: str, dtype: Any, n: int, where: str) -> np.ndarray:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except ValueError:
        raise ModelFormatError(f"{where}: an array is not base64") from None
    dtype = np.dtype(dtype).newbyteorder("<")
    if len(raw) != n * dtype.itemsize:
        raise ModelFormatError(f"{where}: an array holds {len(raw) // dtype.itemsize} values, not {n}")
    return np.frombuffer(raw, dtype).astype(np.int64)


def _digest(content: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# -- events -----------------------------------------------------------------------------------------

def event_context(counts: np.ndarray | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(others, rank)`` per object: ``others`` (2, n), the rows of its event's leading object and of the object
    before it (-1 for the leading object itself, and for every object without per-event counts), and its place
    in the event (0, 1, 2 for any later one)."""
    rank = _rank_classes(counts, n)
    if rank is None:
        return np.full((2, n), -1, np.int64), np.zeros(n, np.int64)
    row = np.arange(n, dtype=np.int64)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    later = row > first
    return np.stack([np.where(later, first, -1), np.where(later, row - 1, -1)]), rank.astype(np.int64)


# -- one chunk --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LearnedColumn:
    """The integers one chunk codes one column with: the inputs' multipliers, the location's multiplier, the
    scale classes' offset and width, and the range the column's steps are taken modulo (``width`` 0: none)."""

    model: ColumnModel
    source: np.ndarray  # per feature: 0 the object, 1 its event's leading object, 2 the object before it
    feature_columns: np.ndarray  # per feature: the bounded column read
    multipliers: np.ndarray  # per feature
    out_multiplier: int
    offset: int
    class_shift: int
    low: int
    width: int

    def _inputs(self) -> tuple:
        return self.source, self.feature_columns, self.multipliers

    def classes(self, steps: np.ndarray, j: int, others: np.ndarray, rank: np.ndarray) -> np.ndarray:
        return kernels.learned_classes(steps, j, others, rank, *self._inputs(), *self.model.scale.kernel_arguments(),
                                       np.int64(self.offset), np.int64(self.class_shift), np.int64(N_CLASSES))

    def tokens(self, steps: np.ndarray, j: int, flags: np.ndarray, hand_built: tuple, others: np.ndarray,
               rank: np.ndarray) -> np.ndarray:
        return kernels.learned_residual_tokens(steps, j, flags, *hand_built, others, rank, *self._inputs(),
                                               *self.model.location.kernel_arguments(), np.int64(self.out_multiplier),
                                               np.int64(self.low), np.int64(self.width))

    def undo(self, steps: np.ndarray, tokens: np.ndarray, j: int, hand_built: tuple, others: np.ndarray,
             rank: np.ndarray) -> None:
        kernels.learned_undo_column(steps, tokens, j, *hand_built, others, rank, *self._inputs(),
                                    *self.model.location.kernel_arguments(), np.int64(self.out_multiplier),
                                    np.int64(self.low), np.int64(self.width))


@dataclass
class LearnedChunk:
    """Which columns of one chunk the learned model codes, with their integers, and the chunk's events."""

    columns: list[LearnedColumn | None]
    others: np.ndarray  # (2, n): each object's leading and previous object in its event (-1: none)
    rank: np.ndarray

    def uses(self, j: int) -> bool:
        return j < len(self.columns) and self.columns[j] is not None

    def classes(self, steps: np.ndarray, j: int) -> np.ndarray:
        return self.columns[j].classes(steps, j, self.others, self.rank)  # type: ignore[union-attr]

    def tokens(self, steps: np.ndarray, j: int, flags: np.ndarray, hand_built: tuple) -> np.ndarray:
        return self.columns[j].tokens(steps, j, flags, hand_built, self.others, self.rank)  # type: ignore[union-attr]

    def undo(self, steps: np.ndarray, tokens: np.ndarray, j: int, hand_built: tuple) -> None:
        self.columns[j].undo(steps, tokens, j, hand_built, self.others, self.rank)  # type: ignore[union-attr]

    def to_bytes(self) -> np.ndarray:
        """Nothing if no column uses the model; else ``[version, k]``, the used columns, per used column
        ``[out_multiplier, offset, class_shift, low, width]`` and their input multipliers (int64 each)."""
        used = [j for j, c in enumerate(self.columns) if c is not None]
        if not used:
            return np.zeros(0, np.uint8)
        columns = [self.columns[j] for j in used]
        rows = [[c.out_multiplier, c.offset, c.class_shift, c.low, c.width] for c in columns]  # type: ignore[union-attr]
        return entropy.pack_arrays([np.array([_CHUNK_VERSION, len(self.columns)], np.int64),
                                    np.array(used, np.int64), np.array(rows, np.int64).reshape(-1),
                                    np.concatenate([*(c.multipliers for c in columns),  # type: ignore[union-attr]
                                                    np.zeros(0, np.int64)]).astype(np.int64)])

    @classmethod
    def read(cls, data: np.ndarray, models: list[tuple[ColumnModel, np.ndarray, np.ndarray] | None],
             counts: np.ndarray | None, n: int) -> LearnedChunk:
        """A chunk's learned part from its bytes; ``models`` per bounded column: its model with its features'
        sources and columns (None: the codec's model has none for it). Every integer is range-checked."""
        data = np.asarray(data, np.uint8)
        columns: list[LearnedColumn | None] = [None] * len(models)
        if len(data) == 0:  # no column of this chunk uses the model
            return cls(columns, *event_context(counts, n))
        try:
            arrays = entropy.unpack_arrays(data)
        except ValueError as err:
            raise CodecError(f"coded chunk: its learned-model part is damaged: {err}") from None
        if len(arrays) != 4:
            raise CodecError(f"coded chunk: its learned-model part holds {len(arrays)} arrays, not 4 (corrupted)")
        header, used, rows, multipliers = arrays
        if header.dtype != np.int64 or len(header) != 2:
            raise CodecError("coded chunk: its learned-model part has no valid header (corrupted)")
        if header[0] != _CHUNK_VERSION:
            raise UnknownLayoutError(f"coded chunk: its learned-model part has layout {int(header[0])}, not "
                                     f"{_CHUNK_VERSION} (written by a newer hepae, or corrupted)")
        if header[1] != len(models) or used.dtype != np.int64 or rows.dtype != np.int64 \
                or multipliers.dtype != np.int64 or len(rows) != 5 * len(used) \
                or (len(used) and (used.min() < 0 or used.max() >= len(models) or (np.diff(used) <= 0).any())):
            raise CodecError("coded chunk: its learned-model part has an unknown layout (corrupted)")
        position = 0
        for j, row in zip(used.tolist(), rows.reshape(-1, 5).tolist()):
            out_multiplier, offset, class_shift, low, width = row
            if models[j] is None:
                raise CodecError("coded chunk uses a learned model for a column the codec's model has none for")
            column_model, source, feature_columns = models[j]  # type: ignore[misc]
            m = multipliers[position:position + len(source)]
            position += len(source)
            if len(m) != len(source) or (np.abs(m) > _MAX_MULTIPLIER).any() \
                    or not (0 <= out_multiplier <= _MAX_OUT_MULTIPLIER and abs(offset) <= 1 << 40
                            and 0 <= class_shift <= 40 and abs(low) <= 1 << 32 and 0 <= width <= 1 << 33):
                raise CodecError("coded chunk: its learned-model integers are out of range (corrupted)")
            columns[j] = LearnedColumn(column_model, source, feature_columns, m, out_multiplier, offset, class_shift,
                                       low, width)
        if position != len(multipliers):
            raise CodecError("coded chunk: its learned-model part has the wrong size (corrupted)")
        return cls(columns, *event_context(counts, n))


_MAX_MULTIPLIER = 1 << 31  # steps (< 2**31) times this stays within int64
_MAX_OUT_MULTIPLIER = 1 << 34  # a network output (|o| <= 2**28) times this stays within int64


def model_columns(model: EntropyModel, columns: list[str], bounds: list[ErrorBound]
                  ) -> list[tuple[ColumnModel, np.ndarray, np.ndarray] | None]:
    """Per bounded column: its model, with each feature's source (0, 1, 2: ``SOURCES``) and bounded column,
    where the model has one trained under the same bound kind and every feature it reads is a column coded under
    its kind."""
    index = {c: j for j, c in enumerate(columns)}
    out: list[tuple[ColumnModel, np.ndarray, np.ndarray] | None] = []
    for j, (name, bound) in enumerate(zip(columns, bounds)):
        m = model.columns.get(name)
        usable = m is not None and m.kind == bound.kind and all(
            c in index and bounds[index[c]].kind == k and (index[c] < j or (s != "object" and index[c] <= j))
            for s, c, k, _ in m.features)
        if not usable:
            out.append(None)
            continue
        out.append((m, np.array([SOURCES.index(s) for s, _, _, _ in m.features], np.int64),  # type: ignore[union-attr]
                    np.array([index[c] for _, c, _, _ in m.features], np.int64)))  # type: ignore[union-attr]
    return out


def choose(models: list[tuple[ColumnModel, np.ndarray, np.ndarray] | None], bounds: list[ErrorBound], margin: float,
           steps: np.ndarray, flags: list[np.ndarray], hand_built: list[tuple], hand_tokens: list[np.ndarray],
           hand_classes: list[np.ndarray | None], counts: np.ndarray | None) -> LearnedChunk:
    """The learned columns of one chunk: per column that has a model (``models``, of :func:`model_columns`),
    the learned model (with the best of a few class widths, with and without taking the steps modulo their
    range) where it codes the chunk's first rows in fewer bits than the hand-built parts (``hand_tokens`` with
    ``hand_classes``, ``hand_built`` the predictor's kernel arguments), its tables and integers included."""
    n = len(steps)
    others, rank = event_context(counts, n)
    m = _first_rows(counts, n)
    head, head_others, head_rank = steps[:m], np.ascontiguousarray(others[:, :m]), rank[:m]
    step_sizes = [quantization_step(b.kind, b.value, margin) if b.kind != "exact" else 0.0 for b in bounds]
    chosen: list[LearnedColumn | None] = []
    for j, entry in enumerate(models):
        flag = flags[j][:m]
        if entry is None or m < 64 or flag.all():
            chosen.append(None)
            continue
        column_model, source, feature_columns = entry
        multipliers = np.array([_clip(round(step_sizes[c] / unit * 2.0 ** (INPUT_BITS + 16)), _MAX_MULTIPLIER)
                                for c, (_, _, _, unit) in zip(feature_columns, column_model.features)], np.int64)
        out_multiplier = min(round(column_model.unit / step_sizes[j] * 2.0 ** (32 - column_model.location.output_bits)),
                             _MAX_OUT_MULTIPLIER)
        coded = steps[~flags[j], j]  # every coded step of the chunk lies in the range taken modulo
        raw = kernels.learned_classes(head, j, head_others, head_rank, source, feature_columns, multipliers,
                                      *column_model.scale.kernel_arguments(), np.int64(1 << 40), np.int64(0),
                                      np.int64(1 << 62)) - (1 << 40)  # the scale network's outputs (|o| <= 2**28)
        offset = -int(np.quantile(raw[~flag], 0.01, method="nearest"))
        hand_bits = coded_bits(hand_tokens[j][:m], None if hand_classes[j] is None else hand_classes[j][:m], n / m)
        best, best_bits = None, hand_bits - 64.0 * (6 + len(source))  # the learned integers: 8 bytes each
        for low, width in ((0, 0), (int(coded.min()), int(coded.max()) - int(coded.min()) + 1)):
            trial = LearnedColumn(column_model, source, feature_columns, multipliers, out_multiplier, offset, 0, low,
                                  width)
            tokens = trial.tokens(head, j, flag, hand_built[j], head_others, head_rank)
            for class_shift in range(max(column_model.scale.output_bits - 2, 0), min(column_model.scale.output_bits + 2,
                                                                                     41)):
                bits = coded_bits(tokens, np.clip((raw + offset) >> class_shift, 0, N_CLASSES - 1), n / m)
                if bits < best_bits:
                    best, best_bits = replace(trial, class_shift=class_shift), bits
        chosen.append(best)
    return LearnedChunk(chosen, others, rank)


def confirm(chunk: LearnedChunk, steps: np.ndarray, flags: list[np.ndarray], hand_built: list[tuple],
            hand_tokens: list[np.ndarray], hand_classes: list[np.ndarray | None]
            ) -> tuple[list[np.ndarray], dict[int, float]]:
    """Every column's tokens for the whole chunk, and the bits the model saves per learned column: the learned
    tokens where :func:`choose` took the model and it still codes the whole chunk in fewer bits than the
    hand-built parts, its stored integers included, else the hand-built ones. Columns whose learned code is not
    smaller are dropped from ``chunk``, and all of them if together they do not pay for the ``learned`` stream's
    header; a chunk is then as without a model."""
    out = list(hand_tokens)
    gains: dict[int, float] = {}
    for j, column in enumerate(chunk.columns):
        if column is None:
            continue
        tokens = chunk.tokens(steps, j, flags[j], hand_built[j])
        gain = coded_bits(hand_tokens[j], hand_classes[j], 1.0) - coded_bits(tokens, chunk.classes(steps, j), 1.0) \
            - 64.0 * (6 + len(column.source))  # its index, five integers and its multipliers, 8 bytes each
        if gain > 0:
            out[j] = tokens
            gains[j] = gain
        else:
            chunk.columns[j] = None
    if sum(gains.values()) <= 8.0 * _HEADER_BYTES:
        chunk.columns = [None] * len(chunk.columns)
        return list(hand_tokens), {}
    return out, gains


_HEADER_BYTES = 8 * (1 + 2 * 4) + 16  # pack_arrays' header of the four arrays, and [version, k]


def without(chunk: LearnedChunk, columns: list[int], gains: dict[int, float], hand_tokens: list[np.ndarray],
            tokens: list[np.ndarray]) -> list[np.ndarray]:
    """``chunk`` (of :func:`confirm`, which gave ``tokens`` and ``gains``) without ``columns``, which another model
    codes: every column's tokens, the hand-built ones for all of them if what the model still codes no longer pays
    for the ``learned`` stream's header (then no column uses it)."""
    for j in columns:
        chunk.columns[j] = None
    kept = [j for j, c in enumerate(chunk.columns) if c is not None]
    if kept and sum(gains.get(j, 0.0) for j in kept) > 8.0 * _HEADER_BYTES:
        return list(tokens)
    chunk.columns = [None] * len(chunk.columns)
    return [hand_tokens[j] if j in kept else t for j, t in enumerate(tokens)]


def _clip(value: int, limit: int) -> int:
    return max(-limit, min(limit, value))


def _first_rows(counts: np.ndarray | None, n: int) -> int:
    """How many of the chunk's first rows the choice looks at: whole events, about ``_SELECT_ROWS``."""
    if counts is None or n <= _SELECT_ROWS:
        return min(n, _SELECT_ROWS)
    ends = np.cumsum(np.asarray(counts, np.int64))
    return int(ends[max(int(np.searchsorted(ends, _SELECT_ROWS, side="right")) - 1, 0)]) or n


def coded_bits(tokens: np.ndarray, classes: np.ndarray | None, scale: float) -> float:
    """Bits of coding ``tokens`` (a sample of ``1 / scale`` of the chunk's rows) as
    :func:`hepae.codecs.entropy.encode_streams` does: a table per class where that is smaller, tables
    included, else one table; the symbols' bits scaled to the chunk, the tables counted once."""
    token, width, _ = entropy.tokenize(tokens)
    without = entropy.token_bits(token, width, tables=False)
    best = scale * without + (entropy.token_bits(token, width) - without)
    if classes is not None:
        symbols, tables = entropy.token_bits_per_class(token, width, classes)
        best = min(best, scale * symbols + tables)
    return best


__all__ = ["ColumnModel", "EntropyModel", "IntegerNetwork", "LearnedChunk", "LearnedColumn", "as_entropy_model",
           "choose", "confirm", "event_context", "load_entropy_model", "model_columns", "without"]
