"""Many files at once on Dask: ``compress_many`` / ``decompress_many``, one task per file.

Runs on any ``dask.distributed`` cluster: an existing :class:`distributed.Client`, a scheduler address
(``tcp://host:8786``, e.g. from dask-jobqueue on HTCondor/Slurm or coffea-casa), or by default a
:class:`distributed.LocalCluster` with one single-threaded worker process per core. Inputs and outputs
must be on a file system every worker sees; the model travels to the workers as bytes, the codec's
configuration (a learned entropy model inside it) and the feature set as JSON documents.

Output names are predictable: ``<stem>.compressed.root`` for compression and ``<stem>.reco.root`` for
decompression (a trailing ``.compressed`` is dropped from the stem). A failing file is reported in the
summary and does not stop the others; with ``resume=True`` a file whose valid output already exists is
skipped (for compression: made from the same input with the same codec configuration, feature set, profile,
command-line rules and units' entropy model). A JSON summary (per file: status, bytes in/out, objects, seconds,
error and, for compression, the number of unphysical reconstructed objects) is returned and written to
``<outdir>/hepae-<command>.json``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hepae.errors import HepaeError, OutputFileError
from hepae.io.parallel_compression import set_compression_threads
from hepae.io.sources import DEFAULT_STEP_SIZE, PathArg
from hepae.io.tensors import expand_inputs
from hepae.io.writing import DEFAULT_COMPRESSION, atomic_output
from hepae.ml.model import HepaeModel, load_model
from hepae.progress import progress_bar

if TYPE_CHECKING:
    from hepae.codecs import Codec
    from hepae.features import FeatureSet


class ClusterError(HepaeError, ValueError):
    """A Dask cluster setting that cannot work (e.g. fewer than one worker)."""


def _check_workers(workers: int | None) -> None:
    """:class:`ClusterError` unless ``workers`` is None (one per core) or a positive integer."""
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ClusterError(f"workers={workers!r}: a local Dask cluster needs at least one worker process "
                           "(CLI: --workers N with N >= 1)")


def check_output_directory(outdir: PathArg) -> Path:
    """:class:`OutputFileError` if ``outdir`` exists and is not a directory; creates nothing."""
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise OutputFileError(f"output directory {outdir} exists and is not a directory; -o takes a directory "
                              "for the output files")
    return outdir


def _output_directory(outdir: PathArg) -> Path:
    """``outdir``, created if missing; :class:`OutputFileError` if it is a file or cannot be created."""
    outdir = check_output_directory(outdir)
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputFileError(f"cannot create output directory {outdir}: {err.strerror}") from None
    return outdir


def output_name(input: Path, command: str) -> str:
    """``jets.root`` -> ``jets.compressed.root`` (compress); ``jets.compressed.root`` -> ``jets.reco.root``."""
    stem = input.name[: -len(".root")] if input.name.endswith(".root") else input.name
    if command == "compress":
        return f"{stem}.compressed.root"
    stem = stem[: -len(".compressed")] if stem.endswith(".compressed") else stem
    return f"{stem}.reco.root"


def _valid_compressed(output: Path, input: Path, options: dict[str, Any]) -> bool:
    """True if ``output`` is a container made from ``input`` (same name and size) as ``options`` ask
    (:func:`_same_settings`) whose every checksum holds (metadata, decoder, each chunk, carried objects:
    :func:`hepae.decompression.verify`)."""
    from hepae.container import ContainerReader
    from hepae.decompression import verify

    try:
        source = verify(output)["source"]
        if source["file"] != input.name or source["size_bytes"] != input.stat().st_size:
            return False
        with ContainerReader(output) as reader:
            return _same_settings(reader.metadata, options)
    except (HepaeError, OSError):
        return False


def _valid_reconstruction(output: Path, input: Path) -> bool:
    """True if ``output`` holds the tree, branches and entries that ``input`` (a container) describes."""
    from hepae.container import ContainerReader
    from hepae.io.sources import open_root, root_source

    try:
        with ContainerReader(input) as reader:
            metadata = reader.metadata
        with open_root(output) as directory:
            table = root_source(directory, output, metadata["tree"])
            names = set(table.layout.all_names())
            if (table.num_entries != metadata["source"]["num_entries"]
                    or not all(b["name"] in names for b in metadata["branches"])):
                return False
            for _ in table.iterate([b["name"] for b in metadata["branches"]]):  # every basket readable
                pass
            return True
    except (HepaeError, OSError):
        return False


def _run_one(command: str, input: str, output: str, model_bytes: bytes | None, options: dict[str, Any]) -> dict:
    """One file on one worker; never raises, so one bad file cannot stop the others."""
    import torch

    from hepae.compression import compress
    from hepae.decompression import decompress

    torch.set_num_threads(1)  # one single-threaded task per core
    set_compression_threads(0)  # and its ROOT output compressed on its own thread
    started = time.perf_counter()
    source, target = Path(input), Path(output)
    record: dict[str, Any] = {"input": input, "output": output, "status": "ok", "error": None,
                              "input_bytes": source.stat().st_size if source.is_file() else None}
    try:
        resume = options.pop("resume")
        valid = (lambda t, s: _valid_compressed(t, s, options)) if command == "compress" else _valid_reconstruction
        if resume and target.exists() and valid(target, source):
            record.update(status="skipped", output_bytes=target.stat().st_size, objects=None)
        elif command == "compress":
            model = None if model_bytes is None else \
                HepaeModel.from_bytes(model_bytes, source="model sent to the worker")
            summary = compress(source, target, model, progress=False, **options)
            record.update(output_bytes=summary["output_bytes"], objects=summary["n_objects"],
                          unphysical_objects=summary["unphysical_objects"])
        else:
            summary = decompress(source, target, progress=False, **options)
            record.update(output_bytes=summary["output_bytes"], objects=summary["n_objects"])
    except Exception as err:  # noqa: BLE001 - reported per file, the run goes on
        record.update(status="failed", error=f"{type(err).__name__}: {err}", output_bytes=None, objects=None)
    record["seconds"] = round(time.perf_counter() - started, 3)
    return record


@contextlib.contextmanager
def dask_client(client: Any = None, scheduler: str | None = None, workers: int | None = None) -> Iterator[Any]:
    """The given client, a client of ``scheduler``, or a local cluster of ``workers`` processes."""
    if client is not None:
        yield client
        return
    _check_workers(workers)
    from distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler) as connected:
            yield connected
        return
    n_workers = workers or os.cpu_count() or 1
    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as local:
        yield local


def _many(
    command: str,
    inputs: PathArg | Sequence[PathArg],
    outdir: PathArg,
    model_bytes: bytes | None,
    *,
    client: Any,
    scheduler: str | None,
    workers: int | None,
    progress: bool,
    options: dict[str, Any],
) -> dict[str, Any]:
    started = time.perf_counter()
    _check_workers(workers)
    files = expand_inputs(inputs)
    outdir = _output_directory(outdir)
    outputs = [outdir / output_name(f, command) for f in files]
    clashes = sorted({o.name for o in outputs if outputs.count(o) > 1})
    if clashes:
        raise OutputFileError(f"several inputs would write the same output(s) {clashes} in {outdir}; "
                              "give them different file names")
    from distributed import as_completed

    records: list[dict[str, Any]] = []
    with dask_client(client, scheduler, workers) as dask:
        # unique keys: runs on one client must never share (and release) each other's data
        run = uuid.uuid4().hex[:8]
        payload = dask.scatter(model_bytes, broadcast=True, hash=False) if model_bytes is not None else None
        futures = [
            dask.submit(_run_one, command, str(f), str(o), payload, dict(options), pure=False,
                        key=f"hepae-{command}-{run}-{i}-{f.name}")
            for i, (f, o) in enumerate(zip(files, outputs))
        ]
        bar = progress_bar(progress, total=len(futures), unit="file", desc=f"{command}-many")
        with bar:
            for future in as_completed(futures):
                try:
                    records.append(future.result())
                except Exception as err:  # noqa: BLE001 - a worker that died: still report the file
                    index = futures.index(future)
                    records.append({"input": str(files[index]), "output": str(outputs[index]), "status": "failed",
                                    "error": f"{type(err).__name__}: {err}", "input_bytes": None,
                                    "output_bytes": None, "objects": None, "seconds": None})
                bar.update(1)
    order = {str(f): i for i, f in enumerate(files)}
    records.sort(key=lambda r: order[r["input"]])
    summary = {
        "command": f"{command}-many",
        "outdir": str(outdir),
        "n_files": len(records),
        **{status: sum(r["status"] == status for r in records) for status in ("ok", "skipped", "failed")},
        "seconds": round(time.perf_counter() - started, 3),
        "files": records,
    }
    summary_path = outdir / f"hepae-{command}-many.json"
    with atomic_output(summary_path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    summary["summary_file"] = str(summary_path)
    return summary


def compress_many(
    inputs: PathArg | Sequence[PathArg],
    model: HepaeModel | PathArg | None,
    outdir: PathArg,
    *,
    codec: str | dict[str, Any] | Codec | None = None,
    featureset: str | PathArg | FeatureSet | dict[str, Any] | None = None,
    profile: str | PathArg | None = None,
    rules: Sequence[str] = (),
    entropy_model: Any = None,
    client: Any = None,
    scheduler: str | None = None,
    workers: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    step_size: int | str = DEFAULT_STEP_SIZE,
    compression: str = DEFAULT_COMPRESSION,
    drop_unsupported: bool = False,
    device: str = "cpu",
    progress: bool | None = None,
) -> dict[str, Any]:
    """Compress every file of ``inputs`` (paths or globs) into ``outdir``, one Dask task per file.

    Parameters
    ----------
    inputs : path-like, glob pattern, or a sequence of them
    model : HepaeModel, path-like or None
        Sent to every worker as bytes (pickle-free). None: whole files under ``profile`` only, or a
        ``featureset`` collection with a codec that needs no model.
    codec, featureset
        As for :func:`hepae.compress`: how the collection is coded (a name, a config dict or a codec; default
        ``ae``, which needs ``model``; ``bounded`` with its error bounds, and a learned entropy model if given
        one, needs only the feature set) and its feature set (default: the model's). Both are checked here
        and sent to every worker as their JSON documents (the bounded codec's entropy model inside its
        config), so a worker reads no file of them.
    outdir : path-like
        Outputs are ``<outdir>/<stem>.compressed.root``.
    profile, rules
        A precision profile (built-in name or JSON file) and command-line rules, as for
        :func:`hepae.compress`: every float branch of each file a rule makes lossy is coded within it.
        With neither and no model, each file gets the built-in profile that fits it.
    entropy_model : EntropyModel, its JSON document or a path, optional
        A learned entropy model for the units (``hepae train-entropy --profile``), as for :func:`hepae.compress`;
        checked here and sent to every worker as its document.
    client : dask.distributed.Client, optional
        The client to use; else ``scheduler`` (an address) or a local cluster of ``workers``
        processes (default: one per core).
    resume : bool
        Skip files whose valid output already exists (every checksum verified).

    Returns
    -------
    dict
        The summary, also written to ``<outdir>/hepae-compress-many.json``.
    """
    _check_workers(workers)  # the cheap checks before loading the model
    check_output_directory(outdir)
    if model is not None:
        model = model if isinstance(model, HepaeModel) else load_model(model)
    from hepae.profiles import Profile, load_profile

    if profile is not None or rules:  # a bad profile or rule fails here, once, not in every task
        (load_profile(profile) if profile is not None else Profile("command line", ())).with_rules(rules)
    if profile is not None:
        profile = str(profile) if not Path(str(profile)).is_file() else str(Path(str(profile)).resolve())
    options = {"resume": resume, "overwrite": overwrite, "step_size": step_size, "compression": compression,
               "drop_unsupported": drop_unsupported, "device": device, "profile": profile, "rules": list(rules)}
    if entropy_model is not None:
        from hepae.codecs.learned import as_entropy_model

        options["entropy_model"] = as_entropy_model(entropy_model).to_dict()
    if model is not None or featureset is not None:  # the collection, checked as compress checks it
        options.update(_collection_options(model, codec, featureset))
    return _many("compress", inputs, outdir, model.to_bytes() if model is not None else None, client=client,
                 scheduler=scheduler,
                 workers=workers, progress=progress, options=options)


def _collection_options(model: HepaeModel | None, codec: str | dict[str, Any] | Codec | None,
                        featureset: str | PathArg | FeatureSet | dict[str, Any] | None) -> dict[str, Any]:
    """The codec's config and the feature set's document for the workers, after the checks that compress makes
    before reading a file: the model's feature set is the one given, the codec has the model it needs, and its
    settings fit the feature set's columns (every column bounded, for instance)."""
    import numpy as np

    from hepae.codecs import get_codec
    from hepae.compression import collection_featureset

    bound = get_codec(codec if codec is not None else "ae")
    chosen = collection_featureset(model, bound, featureset)
    bound.bind(chosen.column_names, np.dtype(chosen.dtype), model if bound.needs_model else None)
    return {"codec": bound.get_config(), "featureset": chosen.to_dict()}


def _same_settings(metadata: dict[str, Any], options: dict[str, Any]) -> bool:
    """Whether a compressed file was made as ``options`` ask now (its codec configuration and feature set, its
    profile, the command-line rules, the units' entropy model): else a resumed run compresses it again rather than
    keep what it no longer asks for (a looser bound, another entropy model: the file records the sha256 of the
    units' model it was offered, whether or not a unit kept a part of it)."""
    from hepae.profiles import Rule, load_profile

    if metadata.get("codec") != options.get("codec"):
        return False
    asked_model = options.get("entropy_model")
    if (metadata.get("profile") or {}).get("entropy_model_sha256") != (asked_model or {}).get("sha256"):
        return False
    if options.get("featureset") is not None and metadata.get("featureset") != options["featureset"]:
        return False
    recorded = metadata.get("profile") or {}
    if options.get("profile") is not None and recorded.get("name") != load_profile(options["profile"]).name:
        return False
    asked = [(r.pattern, r.rule) for r in (Rule.parse(text) for text in options.get("rules", ()))]
    return [(r["pattern"], r["rule"]) for r in recorded.get("rules", ()) if r["origin"] == "command line"] == asked


def decompress_many(
    inputs: PathArg | Sequence[PathArg],
    outdir: PathArg,
    *,
    client: Any = None,
    scheduler: str | None = None,
    workers: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    compression: str = DEFAULT_COMPRESSION,
    device: str = "cpu",
    progress: bool | None = None,
) -> dict[str, Any]:
    """Decompress every compressed file of ``inputs`` into ``outdir``; see :func:`compress_many`."""
    options = {"resume": resume, "overwrite": overwrite, "compression": compression, "device": device}
    return _many("decompress", inputs, outdir, None, client=client, scheduler=scheduler, workers=workers,
                 progress=progress, options=options)


