"""Training a learned entropy model for the ``bounded`` codec (``hepae train-entropy``).

The model (:mod:`hepae.codecs.learned`) refines what the hand-built predictor leaves: per bounded column of
a feature set, a location network (a shift of the prediction) and a scale network (which frequency table
codes the residual), from the object's earlier columns, its place in the event and its event's leading
object. Here:

1. the training files' collection is quantized under the given bounds and the hand-built predictor fitted,
   exactly as the codec does (so the networks learn what that predictor leaves);
2. per column, up to :data:`~hepae.codecs.learned.MAX_FEATURES` inputs are chosen among the candidates
   (earlier columns of the object, columns of the leading object) by how much information their bins carry
   about the residual's bin and magnitude;
3. both networks are trained together on code length (:func:`hepae.ml.entropy_networks.fit_networks`) and
   mapped to integer networks (int16 weights; inputs and hidden values ``2**10`` per unit);
4. the last quarter of the events, held out, is coded with and without the model as the codec would: a
   column keeps its networks only where the codec chooses them there, so the model holds nothing that does not
   pay. The bits it saves there are in the model's ``trained_on``.

The model is in units of each column's spread, not of the bound's steps, so a model trained at one bound
serves any other bound of the same kind (``abs`` or ``rel``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from hepae.codecs import learned
from hepae.codecs.bounded import Bounded
from hepae.codecs.bounds import ErrorBound, quantization_step
from hepae.errors import TrainingError
from hepae.features import FeatureSet, load_featureset
from hepae.profiles import Profile, load_profile, plan_units, unit_values
from hepae.progress import progress_bar

DEFAULT_BOUND = 1e-3
"""The bound (relative or absolute, by each column's residual type) a model is trained at by default."""
_MIN_INFORMATION = 0.003  # bits a candidate input must tell about the residual's bins to be considered
_CLIP = 32767 / 2**learned.INPUT_BITS  # the largest input the integer networks represent


def train_entropy_model(
    inputs: str | PathLike[str] | Sequence[str | PathLike[str]],
    featureset: str | FeatureSet | None = None,
    *,
    error_bounds: Sequence[str] = (),
    profile: str | PathLike[str] | Profile | dict[str, Any] | None = None,
    tree: str | None = None,
    max_objects: int = 200_000,
    hidden: int = 16,
    iterations: int = 400,
    seed: int = 0,
    log: Any = None,
    progress: bool | None = None,
) -> learned.EntropyModel:
    """A learned entropy model for the bounded columns of ``featureset``, trained on ``inputs``.

    Parameters
    ----------
    inputs : path or paths
        Training files (ROOT or DarkMachines CSV) in the feature set's layout; at most ``max_objects`` objects
        are read, whole events.
    featureset : str or FeatureSet, optional
        The collection whose bounded columns the model is for (default ``atlas-jets-4d``, unless ``profile``).
    error_bounds : sequence of str
        With a feature set: ``COLUMN=rel:B`` / ``abs:B`` / ``bits:N`` per column; columns not named get
        :data:`DEFAULT_BOUND`, relative or absolute by their residual type. With a profile: precision rules put
        before the profile's (``'Jet_btag*=abs:1e-3'``), as ``hepae compress`` takes them.
    profile : str, path, Profile or dict, optional
        Instead of a feature set: a model for a whole file's units under this precision profile (every collection
        with lossy branches and the per-event floats, as ``hepae compress --profile`` codes them), each trained
        on up to ``max_objects`` of its objects at the profile's bounds. Its columns are the branch names, so
        ``hepae compress --profile ... --entropy-model`` uses it on files of the same layout.
    tree : str, optional
        With a profile: the table (default: as ``hepae compress`` chooses it).
    hidden, iterations, seed
        Hidden units of each network, Adam iterations, random seed.
    log : callable, optional
        Called with one line per trained column.
    progress : bool, optional
        A progress bar over the columns (default: only on a terminal).

    Returns
    -------
    hepae.codecs.learned.EntropyModel
    """
    from hepae.io.sources import open_source
    from hepae.io.tensors import collection_to_tensor

    started = time.perf_counter()
    paths = [Path(inputs)] if isinstance(inputs, (str, PathLike)) else [Path(p) for p in inputs]
    if profile is not None:
        if featureset is not None:
            raise TrainingError("train an entropy model for a feature set's collection or for a profile's units, "
                                "not both")
        return _train_for_profile(paths, profile, error_bounds, tree, max_objects=max_objects, hidden=hidden,
                                  iterations=iterations, seed=seed, log=log, progress=progress, started=started)
    if featureset is None:
        featureset = "atlas-jets-4d"
    fs = featureset if isinstance(featureset, FeatureSet) else load_featureset(featureset)
    values, counts = [], []
    total = 0
    for path in paths:
        with open_source(path, fs.tree) as source:
            for arrays in source.iterate(fs.input_branches):
                v, c = collection_to_tensor(arrays, fs)
                values.append(v)
                counts.append(c)
                total += len(v)
                if total >= max_objects:
                    break
        if total >= max_objects:
            break
    x, n_per_event = _first_objects(np.concatenate(values), np.concatenate(counts), max_objects)
    bounded = [c for c in fs.columns if not c.lossless]
    given = {ErrorBound.parse(b).column: b for b in error_bounds}
    unknown = sorted(set(given) - {c.name for c in bounded})
    if unknown:
        raise TrainingError(f"error bound(s) for {unknown}: not bounded columns of {fs.name}")
    bounds = [ErrorBound.parse(given.get(c.name, f"{c.name}={'rel' if c.residual == 'relative' else 'abs'}:"
                                                 f"{DEFAULT_BOUND:g}")) for c in bounded]
    x = x[:, [fs.column_names.index(c.name) for c in bounded]]
    model = fit_entropy_model(x, n_per_event, bounds, hidden=hidden, iterations=iterations, seed=seed, log=log,
                              progress=progress)
    trained_on = {"files": [p.name for p in paths], "featureset": fs.name, **model.trained_on,
                  "seconds": round(time.perf_counter() - started, 1)}
    return learned.EntropyModel(model.columns, trained_on)


def _train_for_profile(paths: list[Path], profile: Any, rules: Sequence[str], tree: str | None, *, max_objects: int,
                       hidden: int, iterations: int, seed: int, log: Any, progress: bool | None,
                       started: float) -> learned.EntropyModel:
    """A model for the units of ``paths`` (all in the first one's layout) under ``profile`` and ``rules``."""
    from hepae.io.darkmachines import TABLE_NAME as DARKMACHINES_TABLE
    from hepae.io.sources import CSV_SUFFIXES, main_table, open_root, open_source

    profile = load_profile(profile).with_rules(rules)
    first = paths[0]
    if tree is None:
        if first.suffix.lower() in CSV_SUFFIXES:
            tree = DARKMACHINES_TABLE
        else:
            with open_root(first) as directory:
                tree = main_table(directory, first)
    units: list[Any] = []
    values: dict[str, list[np.ndarray]] = {}
    counts: dict[str, list[np.ndarray]] = {}
    taken: dict[str, int] = {}
    for i, path in enumerate(paths):
        if (path.suffix.lower() in CSV_SUFFIXES) != (first.suffix.lower() in CSV_SUFFIXES):
            raise TrainingError(f"{path}: not in the layout of {first} (ROOT and CSV files trained together)")
        with open_source(path, tree) as source:
            planned = _planned_units(source, profile, path)
            if i == 0:
                if not planned:
                    raise TrainingError(f"profile '{profile.name}' makes no float branch of '{tree}' in {first} "
                                        "lossy: nothing to train an entropy model for")
                units = planned
                values, counts = {u.name: [] for u in units}, {u.name: [] for u in units}
                taken = dict.fromkeys(values, 0)
            elif _unit_shapes(planned) != _unit_shapes(units):
                raise TrainingError(f"{path}: its units under profile '{profile.name}' are not those of {first} "
                                    "(other collections, branches or types): train on files of one layout")
            names = [b.name for u in units for b in u.branches]
            n_events = 0
            for arrays in source.iterate(names):
                for unit in units:
                    if taken[unit.name] < max_objects:
                        v, c = unit_values(arrays, unit, path, n_events)
                        values[unit.name].append(v)
                        counts[unit.name].append(np.ones(len(v), np.int64) if c is None else c)
                        taken[unit.name] += len(v)
                n_events += len(arrays[names[0]]) if names else 0
                if all(n >= max_objects for n in taken.values()):
                    break
        if all(n >= max_objects for n in taken.values()):
            break
    columns: dict[str, learned.ColumnModel] = {}
    per_unit: dict[str, Any] = {}
    for unit in units:
        if not values[unit.name]:
            per_unit[unit.name] = {"skipped": f"no {'events' if unit.counter is None else 'objects'} in the files"}
            continue
        lossy = [(j, b) for j, b in enumerate(unit.codec.error_bounds) if b.kind != "exact"]
        x, n_per_event = _first_objects(np.concatenate(values[unit.name]), np.concatenate(counts[unit.name]),
                                        max_objects)
        try:
            model = fit_entropy_model(x[:, [j for j, _ in lossy]], n_per_event if unit.counter is not None else None,
                                      [b for _, b in lossy], hidden=hidden, iterations=iterations, seed=seed, log=log,
                                      progress=progress, dtype=unit.dtype)
        except TrainingError as err:  # a unit with too few objects: coded without a model
            if log is not None:
                log(f"unit {unit.name}: {err}")
            per_unit[unit.name] = {"skipped": str(err)}
            continue
        columns.update(model.columns)
        per_unit[unit.name] = model.trained_on
    if all("skipped" in u for u in per_unit.values()):
        reasons = "; ".join(f"{name}: {u['skipped']}" for name, u in per_unit.items())
        raise TrainingError(f"no unit of {first} under profile '{profile.name}' could be trained ({reasons})")
    trained_on = {"files": [p.name for p in paths], "profile": profile.name, "rules": list(rules), "units": per_unit,
                  "seconds": round(time.perf_counter() - started, 1)}
    return learned.EntropyModel(columns, trained_on)


def _planned_units(source: Any, profile: Profile, path: Path) -> list[Any]:
    """The units ``hepae compress`` codes ``source``'s table in under ``profile`` (its first chunk read)."""
    layout = source.layout
    chunk = next(iter(source.iterate(layout.names)), None)
    resolution = profile.resolve(layout, (), where=str(path))
    kept = [s for s in layout.branches if s.name not in resolution.bounds]
    return plan_units(layout, resolution.bounds, kept, chunk, exact=resolution.exact)


def _unit_shapes(units: list[Any]) -> list[tuple[Any, ...]]:
    """What must agree between training files: each unit's name, counter, dtype and branches."""
    return [(u.name, u.counter, u.dtype, [b.name for b in u.branches]) for u in units]


def _first_objects(x: np.ndarray, n_per_event: np.ndarray, max_objects: int) -> tuple[np.ndarray, np.ndarray]:
    """The first whole events holding at most ``max_objects`` objects (all of them if the first event alone holds
    more)."""
    n_per_event = np.asarray(n_per_event, np.int64)
    ends = np.cumsum(n_per_event)
    keep_events = int(np.searchsorted(ends, max_objects, side="right")) or len(ends)
    n_per_event = n_per_event[:keep_events]
    return x[:int(n_per_event.sum())], n_per_event


def fit_entropy_model(x: np.ndarray, counts: np.ndarray | None, bounds: Sequence[ErrorBound], *, hidden: int = 16,
                      iterations: int = 400, seed: int = 0, log: Any = None,
                      progress: bool | None = False, dtype: Any = np.float32) -> learned.EntropyModel:
    """A learned entropy model of the columns ``x`` (n, k) (objects in events of ``counts``, or one per event),
    trained under ``bounds`` (one per column, named after it) on the first three quarters of the events and kept
    where it pays on the last quarter (see the module's description)."""
    started = time.perf_counter()
    bounds = list(bounds)
    n_per_event = np.ones(len(x), np.int64) if counts is None else np.asarray(counts, np.int64)
    split = int(np.searchsorted(np.cumsum(n_per_event), 0.75 * len(x)))  # events before this one train
    n_train = int(n_per_event[:split].sum())
    if n_train < 256 or len(x) - n_train < 64:
        raise TrainingError(f"{len(x)} objects: too few to train an entropy model")
    names = [b.column for b in bounds]
    codec = Bounded(bounds).bind(names, dtype)
    q = codec.quantize(x[:n_train], n_per_event[:split] if counts is not None else None)
    steps, flags, predictor = q["steps"], q["flags"], q["predictor"]
    others, rank = learned.event_context(n_per_event[:split] if counts is not None else None, n_train)
    margin = codec.margin
    step_sizes = np.array([quantization_step(b.kind, b.value, margin) for b in bounds])
    units = np.array([_unit(steps[~flags[j], j] * step_sizes[j]) for j in range(len(bounds))])
    columns: dict[str, learned.ColumnModel] = {}
    with progress_bar(progress, total=len(names), unit="column", desc="train entropy model") as bar:
        for j, name in enumerate(names):
            bar.set_postfix_str(name, refresh=False)
            if (~flags[j]).sum() >= 256:
                columns[name] = _fit_column(j, names, bounds, steps, flags, predictor, others, rank, step_sizes, units,
                                            counts is not None, hidden, iterations, seed)
            bar.update()
    model = learned.EntropyModel(columns, {})
    saved = _held_out(model, bounds, x[n_train:], n_per_event[split:] if counts is not None else None, dtype)
    if log is not None:
        for name in columns:
            inputs = ", ".join(f"{s}:{c}" for s, c, _, _ in columns[name].features) or "(rank only)"
            log(f"{name:32s} {'kept' if name in saved else 'dropped':8s} held-out bits saved: "
                f"{saved.get(name, 0.0):10.0f}  inputs: {inputs}")
    trained_on = {"objects": int(n_train), "held_out_objects": int(len(x) - n_train),
                  "error_bounds": [str(b) for b in bounds],
                  "held_out_bits_saved": {name: round(bits, 1) for name, bits in saved.items()},
                  "seconds": round(time.perf_counter() - started, 1)}
    return learned.EntropyModel({name: columns[name] for name in names if name in saved}, trained_on)


def _fit_column(j: int, names: list[str], bounds: list[ErrorBound], steps: np.ndarray, flags: list[np.ndarray],
                predictor: Any, others: np.ndarray, rank: np.ndarray, step_sizes: np.ndarray, units: np.ndarray,
                events: bool, hidden: int, iterations: int, seed: int) -> learned.ColumnModel:
    """Column ``j``'s networks: inputs chosen, trained on code length, mapped to integers."""
    from hepae.ml.entropy_networks import fit_networks

    usable = ~flags[j]
    residual = (steps[:, j] - predictor.predict(steps, j)) * step_sizes[j] / units[j]
    candidates = [("object", c) for c in range(j)]
    if events:
        candidates += [(s, c) for s in ("leading", "previous") for c in range(j + 1)]
    inputs_all = {(s, c): _feature(steps, c, step_sizes[c] / units[c], None if s == "object" else
                                   others[learned.SOURCES.index(s) - 1]) for s, c in candidates}
    chosen = _choose_inputs(residual[usable], {k: v[usable] for k, v in inputs_all.items()},
                            rank[usable], learned.MAX_FEATURES)
    location_inputs = np.column_stack([rank == 1, rank >= 2, *[inputs_all[k] for k in chosen]]).astype(np.float32)
    scale_inputs = location_inputs.copy()
    for f, (s, c) in enumerate(chosen):
        if s != "object" and c == j:
            scale_inputs[:, 2 + f] = 0.0  # not known before the column is decoded
    coded = steps[usable, j]
    period = float((coded.max() - coded.min() + 1) * step_sizes[j] / units[j])  # as the codec may wrap them
    weights = fit_networks(location_inputs[usable], scale_inputs[usable], residual[usable],
                           float(step_sizes[j] / units[j]), period=period, hidden=hidden, iterations=iterations,
                           seed=seed + j)
    return learned.ColumnModel(
        names[j], bounds[j].kind, float(units[j]),
        tuple((s, names[c], bounds[c].kind, float(units[c])) for s, c in chosen),
        _integer_network(weights["location"]), _integer_network(weights["scale"]))


def _unit(values: np.ndarray) -> float:
    """One unit of a column: the spread of its values (a robust one where its tails are wide)."""
    if len(values) < 2:
        return 1.0
    q25, q75 = np.quantile(values, [0.25, 0.75])
    spread = float(q75 - q25) / 1.349 or float(np.std(values))
    return spread if math.isfinite(spread) and spread > 0 else 1.0


def _feature(steps: np.ndarray, c: int, scale: float, rows: np.ndarray | None) -> np.ndarray:
    """An input in units (clipped to what the integer networks hold): column ``c`` of the object, or of another
    object of its event (``rows``; 0 where it has none)."""
    if rows is None:
        out = steps[:, c] * scale
    else:
        out = np.where(rows >= 0, steps[np.maximum(rows, 0), c] * scale, 0.0)
    return np.clip(out, -_CLIP, _CLIP)


def _information(a: np.ndarray, b: np.ndarray) -> float:
    """Mutual information (bits) of two small non-negative integer labels, less its bias on independent ones."""
    na, nb = int(a.max()) + 1, int(b.max()) + 1
    joint = np.bincount(a * nb + b, minlength=na * nb).reshape(na, nb).astype(np.float64)
    n = joint.sum()
    pa, pb = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(joint > 0, joint * np.log2(joint * n / (pa * pb)), 0.0)
    return float(terms.sum() / n) - (na - 1) * (nb - 1) / (2 * n * math.log(2))


def _bins(values: np.ndarray, n_bins: int = 16) -> np.ndarray:
    edges = np.unique(np.quantile(values, np.linspace(0, 1, n_bins + 1)[1:-1]))
    return np.searchsorted(edges, values, side="right")


def _choose_inputs(residual: np.ndarray, candidates: dict[tuple[str, int], np.ndarray], rank: np.ndarray,
                   limit: int) -> list[tuple[str, int]]:
    """The candidates whose bins tell most about the residual's bin and its magnitude's (within each rank)."""
    target, magnitude = _bins(residual), _bins(np.abs(residual))
    scores = {}
    for key, values in candidates.items():
        labels = _bins(values) * 3 + rank  # the rank flags are inputs anyway: what a candidate adds to them
        scores[key] = _information(target * 3 + rank, labels) + _information(magnitude * 3 + rank, labels) \
            - 2 * _information(target * 3 + rank, rank)
    ranked = sorted((k for k in scores if scores[k] > _MIN_INFORMATION), key=lambda k: -scores[k])
    return ranked[:limit]


def _integer_network(weights: dict[str, np.ndarray]) -> learned.IntegerNetwork:
    """Float weights -> the integer network computing the same function (inputs and hidden values
    ``2**INPUT_BITS`` per unit; weights scaled by powers of two into int16)."""
    w1, b1, w2, b2 = weights["w1"], weights["b1"], weights["w2"], float(weights["b2"][0])
    bits = learned.INPUT_BITS
    limit = learned.MAX_WEIGHT
    a = int(np.clip(math.floor(math.log2(limit / max(float(np.abs(w1).max()), 1e-9))), 0, 30))
    c = int(np.clip(math.floor(math.log2(limit / max(float(np.abs(w2).max()), 1e-9))), 0, 10))
    while c > 0 and abs(b2) * 2.0 ** (c + bits) > 2**27:
        c -= 1
    return learned.IntegerNetwork(
        np.clip(np.rint(w1 * 2.0**a), -limit, limit).astype(np.int64),
        np.clip(np.rint(b1 * 2.0 ** (a + bits)), -(2**31 - 1), 2**31 - 1).astype(np.int64), a,
        np.clip(np.rint(w2 * 2.0**c), -limit, limit).astype(np.int64),
        int(np.clip(np.rint(b2 * 2.0 ** (c + bits)), -(2**28), 2**28)), c + bits)


def _held_out(model: learned.EntropyModel, bounds: list[ErrorBound], x: np.ndarray,
              counts: np.ndarray | None, dtype: Any = np.float32) -> dict[str, float]:
    """The columns the codec chooses the model for on the held-out events (fitting its own predictor there, as
    on a new file), with the bits it saves on each."""
    codec = Bounded(bounds, entropy_model=model).bind([b.column for b in bounds], dtype)
    if codec._learned is None:  # the model serves none of the columns
        return {}
    q = codec.quantize(x, counts)
    _, _, gains = codec.learned_choice(q, q["predictor"].tokens(q["steps"], q["flags"]), counts)
    saved = {bounds[j].column: gain for j, gain in gains.items()}
    return saved


__all__ = ["DEFAULT_BOUND", "fit_entropy_model", "train_entropy_model"]
