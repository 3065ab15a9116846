"""compress: a ROOT file (TTree or RNTuple) or a DarkMachines CSV file in, a compressed ROOT file out.

A short driver: read a chunk (:mod:`hepae.io`) -> encode it (:mod:`hepae.codecs`) -> write it
(:class:`hepae.container.ContainerWriter`). The file's layout is in ``docs/format.md``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import os
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import uproot

from hepae.codecs import Bounded, Codec, get_codec, within_bound
from hepae.codecs.bounds import error_over_bound
from hepae.codecs.learned import EntropyModel, as_entropy_model
from hepae.container import ContainerReader, ContainerWriter
from hepae.container.format import Unit
from hepae.container.writer import check_input_names
from hepae.errors import (
    BranchTypeError,
    CodecError,
    FeatureSetError,
    InputFileError,
    ModelMismatchError,
    UnsupportedBranchError,
)
from hepae.features import FeatureSet, load_featureset
from hepae.io.branches import TreeLayout, counts_and_values
from hepae.io.carryover import plan_carryover, write_class_samples
from hepae.io.darkmachines import TABLE_NAME as DARKMACHINES_TABLE
from hepae.io.prefetch import prefetched
from hepae.io.sources import (
    CSV_SUFFIXES,
    DAMAGED_FILE_ERRORS,
    DEFAULT_STEP_SIZE,
    PathArg,
    main_table,
    open_root,
    open_source,
    root_source,
)
from hepae.io.tensors import (
    check_collection,
    collection_to_tensor,
    select_objects,
    selection_mask,
    tensor_dtype,
    unselected_values,
)
from hepae.io.writing import DEFAULT_COMPRESSION, atomic_output, parse_compression
from hepae.profiles import Profile, guess_profile, load_profile, plan_units, unit_values
from hepae.progress import progress_bar
from hepae.quality.physics import count_unphysical
from hepae.quality.residuals import ResidualAccumulator

if TYPE_CHECKING:
    from hepae.ml.model import HepaeModel


def unsupported_policy(layout: TreeLayout, path: PathArg, drop_unsupported: bool) -> dict[str, str]:
    """Branches that cannot be carried over: an error listing them, or (if allowed) a loud warning."""
    if not layout.unsupported:
        return {}
    listing = "; ".join(f"'{k}': {v}" for k, v in layout.unsupported.items())
    if not drop_unsupported:
        raise UnsupportedBranchError(
            f"{len(layout.unsupported)} branch(es) of tree '{layout.name}' in {path} cannot be written back by "
            f"uproot: {listing}. Pass drop_unsupported=True (CLI: --drop-unsupported) to leave them out; "
            "they are then listed in the output's metadata"
        )
    warnings.warn(f"leaving out {len(layout.unsupported)} branch(es) that cannot be written: {listing}", stacklevel=3)
    return dict(layout.unsupported)


def _plan_other_objects(directory: Any, input: Path, table: str, drop_unsupported: bool
                        ) -> tuple[list[Any], dict[str, str]]:
    """The input file's objects besides the table (:mod:`hepae.io.carryover`): carried, or refused by name."""
    try:
        names = set(directory.keys(cycle=False, recursive=False))
    except DAMAGED_FILE_ERRORS as err:  # damaged directory records
        raise InputFileError(f"cannot list the objects in {input} (damaged file?): {type(err).__name__}") from None
    check_input_names(input, [], names)
    return plan_carryover(directory, input, {table}, drop_unsupported=drop_unsupported)


def _where_the_model_pays(unit: Unit, first: dict[str, Any] | None, num_entries: int, input: Path) -> Unit:
    """``unit``, or, where the part of an entropy model its codec carries saves fewer bytes on the file's first
    chunk (scaled to the whole file) than that part adds to the file, the unit without it: a file is not made
    bigger by a model that does not pay for itself."""
    codec = unit.codec.codec
    if codec.entropy_model is None or first is None:
        return unit
    values, counts = unit_values(first, unit, input, 0)
    without = Bounded(codec.error_bounds, codec.margin, exact=codec.exact).bind(unit.codec.columns, unit.codec.dtype)
    saved = sum(len(s) for s in without.encode(values, counts).values()) \
        - sum(len(s) for s in unit.codec.encode(values, counts).values())
    n_first = len(next(iter(first.values()))) if first else 0
    model_bytes = len(json.dumps(codec.entropy_model.to_dict(), separators=(",", ":")))
    if saved * num_entries / max(n_first, 1) > model_bytes:
        return unit
    return dataclasses.replace(unit, codec=without)


def _unit_count_check(arrays: dict[str, Any], unit: Unit, counts: np.ndarray | None, input: Path) -> None:
    """The kept branch a unit takes its counts from must hold as many values per event as the unit."""
    if counts is None or unit.count_added:
        return
    lengths = counts_and_values(arrays[unit.count_branch])[0]
    if not np.array_equal(lengths, counts):
        raise BranchTypeError(f"{input}: branch '{unit.count_branch}' and the branches of unit '{unit.name}' share "
                              f"the counter '{unit.counter}' but hold different numbers of values per event")


class _BoundChecker:
    """Per lossy branch of the units: the largest error found, in units of its bound (<= 1 or a bug)."""

    def __init__(self, units: list[Unit]) -> None:
        self.worst = {b.column: 0.0 for u in units for b in u.codec.error_bounds if b.kind != "exact"}

    def update(self, unit: Unit, values: np.ndarray, decoded: np.ndarray) -> None:
        for j, bound in enumerate(unit.codec.error_bounds):
            x, r = values[:, j], decoded[:, j]
            if not within_bound(x, r, bound.kind, bound.value).all():
                raise CodecError(f"the decoded values of '{bound.column}' are not all within {bound} (a hepae bug: "
                                 "please report it); nothing was written")
            if bound.kind != "exact":  # the exact columns are the same bits (checked above)
                ratio = np.abs(error_over_bound(x, r, bound.kind, bound.value))
                self.worst[bound.column] = max(self.worst[bound.column], float(np.max(ratio, initial=0.0)))

    def summary(self) -> dict[str, float]:
        return {name: round(worst, 4) for name, worst in self.worst.items()}


class _ChecksBehind:
    """Decode what was encoded and check it, in a background thread, at most one chunk behind the encoder.

    The checks of a chunk run while the next chunk is encoded (on two cores the two overlap). Before a
    chunk after that starts, the checks of the one before it are waited for: at most one chunk more is
    held, and a check that fails (a value outside its bound) raises here, in the caller's thread, before
    the output is kept. The checks run in the order they were given, one at a time.
    """

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hepae-check")
        self._previous: list[Future[int]] = []
        self._current: list[Future[int]] = []
        self.unphysical = 0

    def submit(self, check: Callable[..., int], *args: Any) -> None:
        """Run ``check(*args)`` (it returns a number of unphysical objects, summed in :attr:`unphysical`)."""
        self._current.append(self._pool.submit(check, *args))

    def chunk_done(self) -> None:
        """The current chunk's checks are all given: wait for the previous chunk's."""
        self._wait(self._previous)
        self._previous, self._current = self._current, []

    def finish(self) -> None:
        """Wait for every check."""
        self._wait(self._previous)
        self._wait(self._current)

    def close(self) -> None:
        """Drop the checks not started (after a failure) and wait for the one running."""
        for future in self._previous + self._current:
            future.cancel()
        self._pool.shutdown(wait=True)

    def _wait(self, futures: list[Future[int]]) -> None:
        while futures:
            self.unphysical += futures.pop(0).result()


def _check_collection(bound: Any, streams: dict[str, np.ndarray], counts: np.ndarray, encoded: np.ndarray,
                      lossless: list[int], accumulator: ResidualAccumulator, featureset: FeatureSet) -> int:
    """Decode a chunk's collection, add its residuals to ``accumulator``; its number of unphysical objects."""
    reco = bound.decode(streams, counts)
    reco[:, lossless] = encoded[:, lossless]  # carried exactly
    accumulator.update(encoded, reco)
    return count_unphysical(featureset, reco)


def _check_unit(checker: _BoundChecker, unit: Unit, values: np.ndarray, coded: dict[str, np.ndarray],
                counts: np.ndarray | None) -> int:
    """Decode a chunk's unit and check every value against its bound (:class:`CodecError` if one is not)."""
    ones = np.ones(len(values), np.int64) if counts is None else counts
    checker.update(unit, values, unit.codec.decode(coded, ones))
    return 0


def compress(
    input: PathArg,
    output: PathArg,
    model: HepaeModel | PathArg | None = None,
    *,
    codec: str | dict[str, Any] | Codec = "ae",
    featureset: str | FeatureSet | None = None,
    profile: str | Profile | PathLike[str] | dict[str, Any] | None = None,
    rules: Sequence[str] = (),
    entropy_model: EntropyModel | dict[str, Any] | str | PathLike[str] | None = None,
    strict: bool = False,
    tree: str | None = None,
    step_size: int | str = DEFAULT_STEP_SIZE,
    compression: str = DEFAULT_COMPRESSION,
    overwrite: bool = False,
    drop_unsupported: bool = False,
    device: str = "auto",
    check: bool = True,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Compress ``input`` into the ROOT file ``output``: a feature-set collection with ``codec``, every float
    branch under a precision ``profile``, or both.

    ``input`` is a ROOT file (TTree or RNTuple) or a DarkMachines CSV file (kept as an RNTuple). What is
    compressed:

    * with a ``model`` or a ``featureset``: that collection, with ``codec`` (``ae``, the default, needs
      ``model`` and embeds its decoder; ``truncate``, ``lossless`` and ``bounded`` need only the feature
      set). Its branches are replaced by the codec's streams and a per-event object count (if the feature
      set selects objects, only the selected ones are encoded and the others kept exactly);
    * with a ``profile`` (:mod:`hepae.profiles`: a built-in name such as ``"nanoaod"``, a JSON file, a
      dict) or command-line ``rules`` (``"Jet_btag*=abs:1e-3"``, put before the profile's): every float
      branch a rule makes lossy, coded by the ``bounded`` codec in units (one per collection, one for the
      per-event floats), each value within its rule. Without a model or a feature set, the profile
      defaults to the built-in one that fits the file (:func:`hepae.profiles.guess_profile`), so a
      whole-file run always works at a stated precision. ``strict``: a profile rule that matches no
      branch is an error. ``tree``: the table to compress (default: the feature set's, else the one with
      the most branches, :func:`hepae.io.sources.main_table`).

    ``entropy_model``: a learned entropy model for the units (``hepae train-entropy --profile``, a path, its
    document or the model): each unit codes the lossy branches it serves with it, per chunk and branch where that
    is smaller, and carries that part of it. A model that serves none of the file's lossy branches is an error.
    (A feature-set collection's model goes in its codec: ``Bounded(..., entropy_model=)``.)

    Every other branch of the table is carried over with identical values, and so are the file's other
    objects. Reading and writing stream in chunks of ``step_size``; the network runs on ``device``.

    With ``check`` (default), the streams are also decoded as decompression will: the collection's
    residuals and unphysical objects are reported, and every unit's values are checked against their
    bounds (the summary's ``max_error_over_bound``, at most 1).

    ``progress``: a progress bar (default: only on a terminal).

    Returns a summary dict (sizes per unit, ratios, counts, residuals, timing).
    """
    started = time.perf_counter()
    input, output = Path(input), Path(output)
    with_collection = model is not None or featureset is not None
    codec = get_codec(codec) if with_collection else None
    model_path = None if model is None or _is_model(model) else Path(model)
    if model is not None:
        if not _is_model(model):
            from hepae.ml.model import load_model  # torch: only with a model

            model = load_model(model)
        model = model.to(device)
    if with_collection:
        featureset = collection_featureset(model, codec, featureset)
    if profile is not None:
        profile = load_profile(profile)
    if entropy_model is not None:
        entropy_model = as_entropy_model(entropy_model)
    if rules and profile is None and with_collection:
        profile = Profile("command line", ())
    if profile is not None:
        profile = profile.with_rules(rules)
    with contextlib.ExitStack() as stack:
        is_csv = input.suffix.lower() in CSV_SUFFIXES
        directory = None if is_csv else stack.enter_context(open_root(input))
        if tree is None:
            tree = featureset.tree if featureset is not None else \
                (DARKMACHINES_TABLE if is_csv else main_table(directory, input))
        elif featureset is not None and tree != featureset.tree:
            raise FeatureSetError(f"feature set '{featureset.name}' is in table '{featureset.tree}', not '{tree}'")
        source = stack.enter_context(open_source(input, tree)) if is_csv else root_source(directory, input, tree)
        layout = source.layout
        if not with_collection and profile is None:
            profile = load_profile(guess_profile(layout, source.format)).with_rules(rules)
        counter = replaced = None
        bound = None
        if featureset is not None:
            counter = check_collection(layout, featureset, input)
            dtype = tensor_dtype(layout, featureset)  # float64 inputs stay float64: no value is narrowed
            wide = [b for b in featureset.compressed_branches if np.dtype(layout.spec(b).dtype).kind in "iu"
                    and np.dtype(layout.spec(b).dtype).itemsize == 8]
            if wide and codec.exact:
                raise CodecError(f"the {codec.codec_id} codec stores floats, which cannot hold every 64-bit integer "
                                 f"of {wide} in {input}; mark these columns 'lossless' in the feature set to carry "
                                 "them as they are")
            bound = codec.bind(featureset.column_names, dtype, model if codec.needs_model else None)
            replaced = featureset.compressed_branches  # lossless columns stay as they are
        dropped = unsupported_policy(layout, input, drop_unsupported)
        carried, dropped_objects = ([], {}) if directory is None else \
            _plan_other_objects(directory, input, source.name, drop_unsupported)
        check_input_names(input, layout.all_names(), [])
        resolution = None if profile is None else \
            profile.resolve(layout, featureset.input_branches if featureset is not None else (), strict=strict,
                            where=str(input))
        bounds = {} if resolution is None else resolution.bounds
        chunks = stack.enter_context(contextlib.closing(prefetched(source.iterate(layout.names, step_size))))
        first = next(chunks, None)
        kept = [s for s in layout.branches if s.name not in bounds and s.name not in (replaced or ())]
        units = plan_units(layout, bounds, kept, first, exact=() if resolution is None else resolution.exact,
                           entropy_model=entropy_model)
        if entropy_model is not None:
            if not any(u.codec.codec.entropy_model is not None for u in units):
                raise CodecError(f"the entropy model (columns {', '.join(sorted(entropy_model.columns)[:6])}"
                                 f"{', ...' if len(entropy_model.columns) > 6 else ''}) serves none of the lossy "
                                 f"branches of {input} under this profile (train one with 'hepae train-entropy "
                                 "--profile'; a model of a feature set's columns goes with --codec bounded --features)")
            units = [_where_the_model_pays(u, first, layout.num_entries, input) for u in units]
        unit_names = {b.name for unit in units for b in unit.branches}  # the lossy ones and exact floats with them
        if not units and profile is not None and profile.name != "command line":
            warnings.warn(f"profile '{profile.name}' makes no float branch of '{source.name}' in {input} lossy: "
                          "they are stored exactly", stacklevel=2)
        n_objects = n_encoded = n_events = 0
        accumulator = ResidualAccumulator(featureset) if check and featureset is not None else None
        checker = _BoundChecker(units) if check else None
        checks = stack.enter_context(contextlib.closing(_ChecksBehind()))
        lossless = [j for j, column in enumerate(featureset.columns) if column.lossless] if featureset else []
        inputs = [input] + ([model_path] if model_path is not None else [])
        with atomic_output(output, overwrite=overwrite, inputs=inputs) as tmp:
            with uproot.recreate(tmp, compression=parse_compression(compression, threads=True)) as file:
                writer = ContainerWriter(file, bound, units=units, storage=source.storage, table=source.name,
                                         title=source.title, branches=layout.branches, replaced=replaced or (),
                                         selecting=featureset is not None and featureset.select is not None,
                                         carried_classes=write_class_samples(directory, carried, input)
                                         if carried else None)
                with progress_bar(progress, total=layout.num_entries, unit="event",
                                  desc=f"compress {input.name}") as bar:
                    remaining = itertools.chain([first] if first is not None else [], chunks)
                    first = None  # held by the loop while it is worked on, no longer
                    for arrays in remaining:
                        n_chunk = len(arrays[layout.names[0]]) if layout.names else 0
                        data = {name: arrays[name] for name in layout.names
                                if name not in unit_names and name not in (replaced or ())}
                        streams = encoded_counts = None
                        if bound is not None:
                            values, counts = collection_to_tensor(arrays, featureset, dtype, source=input,
                                                                  entry_start=n_events)
                            mask = selection_mask(arrays, featureset)
                            encoded, encoded_counts = select_objects(values, counts, mask)
                            streams = bound.encode(encoded, encoded_counts)
                            if accumulator is not None:
                                checks.submit(_check_collection, bound, streams, encoded_counts, encoded, lossless,
                                              accumulator, featureset)
                            if mask is not None:  # the objects not selected keep their values
                                data.update(unselected_values(arrays, replaced, mask, counts - encoded_counts))
                            n_objects += len(values)
                            n_encoded += len(encoded)
                            n_chunk = len(counts)
                        unit_streams, unit_counts = [], []
                        for unit in units:
                            values, counts = unit_values(arrays, unit, input, n_events)
                            _unit_count_check(arrays, unit, counts, input)
                            coded = unit.codec.encode(values, counts)
                            if checker is not None:
                                checks.submit(_check_unit, checker, unit, values, coded, counts)
                            unit_streams.append(coded)
                            unit_counts.append(counts)
                        writer.write_chunk(data, encoded_counts, streams, n_chunk, unit_streams, unit_counts)
                        checks.chunk_done()
                        n_events += n_chunk
                        bar.update(n_chunk)
                    checks.finish()
                    unphysical = checks.unphysical
                if n_events != layout.num_entries:
                    raise InputFileError(f"{input}: {layout.num_entries} events were counted but {n_events} read "
                                         "(was the file changed while it was being compressed?)")
                if model is not None and bound is not None and codec.needs_model and bound.decoder_used:
                    writer.embed_decoder(model)  # not if no chunk needs it
                if directory is not None:  # the other objects, as they are
                    writer.carry(directory, carried, dropped_objects, input, step_size)
                collection = None if featureset is None else {
                    "counter": counter,
                    "counter_in_input": counter in layout.counters,
                    "n_objects": n_objects,
                    "n_compressed_objects": n_encoded,
                    "branches": [layout.spec(b).to_dict() for b in featureset.branches],
                    "lossless_branches": [c.branch for c in featureset.columns if c.lossless],
                    "selection": featureset.select,
                    "input_compressed_bytes": source.stored_bytes(replaced),
                }
                metadata = writer.finish(
                    table=source.name,
                    featureset=featureset.to_dict() if featureset is not None else None,
                    source={"file": input.name, "format": source.format, "size_bytes": os.path.getsize(input),
                            "num_entries": layout.num_entries},
                    collection=collection,
                    branches=layout.branches,
                    counters=layout.counters,
                    dropped_branches=dropped,
                    unit_input_bytes=[source.stored_bytes([b.name for b in u.branches]) for u in units],
                    profile=None if profile is None or resolution is None else {
                        **profile.to_dict(resolution.rules),
                        "applied": {name: f"{b.kind}:{b.value!r}" for name, b in bounds.items()},
                        **({} if entropy_model is None else
                           {"entropy_model_sha256": entropy_model.to_dict()["sha256"]})},
                )
            with ContainerReader(tmp, written=metadata) as written:  # reads back as meant, before anyone sees it
                written.check_as_written(metadata, output)
                sizes = written.sizes()
    seconds = time.perf_counter() - started
    return {
        "input": str(input),
        "output": str(output),
        "codec": codec.get_config() if codec is not None else None,
        "profile": None if profile is None else profile.name,
        "n_events": layout.num_entries,
        "n_objects": n_objects,
        "n_compressed_objects": n_encoded,
        "lossy_branches": len(bounds) + (len(replaced) if replaced else 0),
        "chunks": len(writer.digests),
        "dropped_branches": dropped,
        "carried_objects": [o.path for o in carried],
        "dropped_objects": dropped_objects,
        "residuals": accumulator.summary() if accumulator is not None else None,
        "unphysical_objects": unphysical if check and featureset is not None else None,
        "max_error_over_bound": checker.summary() if checker is not None and units else None,
        "seconds": round(seconds, 3),
        "objects_per_second": round(n_objects / seconds, 1) if seconds > 0 and n_objects else None,
        "events_per_second": round(n_events / seconds, 1) if seconds > 0 else None,
        **sizes,
    }


def collection_featureset(model: HepaeModel | None, codec: Codec,
                          featureset: str | PathLike[str] | FeatureSet | dict[str, Any] | None) -> FeatureSet:
    """The feature set a collection is compressed with (``featureset``, else the model's), after the checks made
    before any file is read: the codec has the trained model it needs, and the model was trained on that feature
    set. :class:`CodecError` or :class:`ModelMismatchError` if not."""
    if model is None and codec.needs_model:
        raise CodecError(f"the {codec.codec_id} codec needs a trained model (CLI: -m MODEL)")
    chosen = load_featureset(featureset if featureset is not None else model.featureset)  # type: ignore[union-attr]
    if model is not None and model.featureset.to_dict() != chosen.to_dict():
        raise ModelMismatchError(
            f"the model was trained on feature set '{model.featureset.name}', not on '{chosen.name}'")
    return chosen


def _is_model(model: Any) -> bool:
    """A loaded model (anything with a decoder to embed), rather than the path of a model file."""
    return not isinstance(model, str | PathLike)
