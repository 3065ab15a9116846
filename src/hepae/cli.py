"""The ``hepae`` command line: argument parsing and printing only; the work is done by the facade.

Exit codes: 0 success, 1 a hepae error or a failing file system (one clear line on stderr; ``--debug``
for the traceback), 2 bad command-line usage, 130 interrupted (SIGINT/SIGTERM), 141 stdout closed early
(``hepae inspect f | head -2``: quietly, as a command killed by SIGPIPE). Progress bars go to stderr,
results to stdout (``--json`` for machine-readable output).
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import os
import signal
import sys
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hepae import _version
from hepae.codecs import get_codec, kernels, registered_codecs
from hepae.errors import CodecError, HepaeError
from hepae.io.sources import DEFAULT_STEP_SIZE, memory_size
from hepae.io.writing import DEFAULT_COMPRESSION, parse_compression
from hepae.ml.defaults import DEFAULTS
from hepae.validation.plotting import STYLES
from hepae.validation.thresholds import DEFAULT_THRESHOLDS


class ManyFilesFailed(HepaeError):
    """Some files of a compress-many/decompress-many run failed (the others are done)."""


MIN_STEP_ENTRIES = 1000
"""The smallest ``--step-size`` in entries: every chunk costs an entry of the codec streams and a pass of
the codec, so 1-entry chunks made outputs ~50x larger and runs 5-9x slower. A file with fewer entries is
read in one chunk anyway."""
MIN_STEP_BYTES = 1_000_000
"""The smallest ``--step-size`` as a memory size (1 MB), for the same reason."""
def _step_size(text: str) -> int | str:
    """Entries (``100000``) or a memory size (``'100 MB'``), checked here rather than deep in uproot.

    Refuses chunks below :data:`MIN_STEP_ENTRIES` entries or :data:`MIN_STEP_BYTES` bytes.
    """
    if text.strip().isdigit():
        if int(text) < MIN_STEP_ENTRIES:
            raise argparse.ArgumentTypeError(
                f"{text.strip()} entries per chunk is too small (per-chunk overhead multiplies the output size and "
                f"time); give at least {MIN_STEP_ENTRIES} (a file with fewer entries is read in one chunk anyway)")
        return int(text)
    size = memory_size(text)
    if size is not None:
        if size < MIN_STEP_BYTES:
            raise argparse.ArgumentTypeError(f"{text!r} per chunk is too small; give at least '1 MB'")
        return text
    raise argparse.ArgumentTypeError(f"{text!r}: give a number of entries (e.g. 100000) or a size like '100 MB'")


def _workers(text: str) -> int:
    """A number of Dask worker processes: a positive integer."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a positive number of worker processes (e.g. 4)")
    return int(text)


def _compression(text: str) -> str:
    try:
        parse_compression(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _human_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1000
    return str(n)


def _table(rows: list[Sequence[Any]], header: Sequence[str]) -> str:
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


def format_sizes(summary: dict[str, Any]) -> str:
    def known(value: Any, text: str = "{}") -> str:
        """``value`` in ``text``, or "-" where it is unknown (a CSV input; baskets inside a TTree's own record)."""
        return text.format(value) if value is not None else "-"

    rows = [
        ("input file", _human_bytes(summary["input_bytes"]), ""),
        ("compressed file", _human_bytes(summary["output_bytes"]), f"ratio {summary['file_ratio']}"),
    ]
    if "collection_input_bytes" in summary:
        rows += [
            ("collection in input", _human_bytes(summary["collection_input_bytes"]),
             known(summary["bytes_per_object_input"], "{} B/object")),
            ("codec streams", _human_bytes(summary["collection_latent_bytes"]),
             f"{summary['bytes_per_object_latent']} B/object"),
            ("embedded decoder", _human_bytes(summary["decoder_bytes"]),
             f"learned entropy model {_human_bytes(summary['entropy_model_bytes'])}"
             if summary.get("entropy_model_bytes") else ""),
            ("collection ratio", known(summary["collection_ratio"]),
             known(summary["collection_ratio_without_decoder"], "{} without decoder")),
        ]
    table = _table(rows, ("", "size", ""))
    if summary.get("units"):
        units = [(u["name"], u["branches"], u["n_objects"], _human_bytes(u["input_bytes"]),
                  _human_bytes(u["output_bytes"]), u["ratio"] if u["ratio"] is not None else "-")
                 for u in summary["units"]]
        shared = "; after: share of the packed 'units' branch, by coded bytes" if summary.get("units_shared") else ""
        table += f"\n\nunits (profile-coded float branches; bytes before -> after{shared}):\n" + \
            _table(units, ("unit", "branches", "objects", "before", "after", "ratio"))
    return table


def _entropy_model_text(document: dict[str, Any]) -> str:
    """A learned entropy model in one line: its columns, where it was trained, its checksum."""
    trained = document.get("trained_on", {})
    columns = [c["column"] for c in document.get("columns", [])]
    return (f"<learned: {len(columns)} column(s) {', '.join(columns[:6])}{', ...' if len(columns) > 6 else ''}; "
            f"trained on {', '.join(trained.get('files', [])) or 'arrays'}; sha256 {str(document.get('sha256'))[:12]}>")


def format_bounds(worst: dict[str, float], limit: int = 8) -> str:
    """The branches whose largest error came closest to their bound."""
    rows = sorted(worst.items(), key=lambda item: -item[1])[:limit]
    return _table([(name, f"{value:.3f}") for name, value in rows], ("branch", "max |error| / bound"))


def format_residuals(residuals: dict[str, dict[str, Any]]) -> str:
    rows = [
        (name, r["kind"], f"{r['mean']:+.2e}", f"{r['std']:.2e}", f"{r['width68']:.2e}", f"{r['width99']:.2e}",
         f"{r['max_abs']:.2e}", r["n"])
        for name, r in residuals.items()
    ]
    return _table(rows, ("variable", "residual", "mean", "sigma", "68% |r|", "99% |r|", "max |r|", "objects"))


# -- commands ---------------------------------------------------------------------------------------
def cmd_featuresets(args: argparse.Namespace) -> None:
    from hepae.features import list_featuresets

    featuresets = list_featuresets()
    if args.json:
        _print_json([fs.to_dict() for fs in featuresets])
        return
    rows = [(fs.name, fs.tree, ", ".join(fs.branches), fs.counter or "-", fs.columns[0].unit or "-")
            for fs in featuresets]
    print(_table(rows, ("name", "tree", "branches", "counter", "unit")))


def cmd_profiles(args: argparse.Namespace) -> None:
    from hepae.profiles import builtin_profiles, load_profile

    profiles = [load_profile(name) for name in builtin_profiles()]
    if args.json:
        _print_json([p.to_dict() | {"description": p.description} for p in profiles])
        return
    rows = [(p.name, len(p.rules), p.unmatched, p.description[:70]) for p in profiles]
    print(_table(rows, ("name", "rules", "unmatched floats", "description")))
    print("\nrules: rel:B (|error| <= B|x|), abs:B, bits:N (N mantissa bits: relative 2^-(N+1)), exact; "
          "first matching pattern wins. See the files in hepae/schemas/profiles/.")


def cmd_make_sample(args: argparse.Namespace) -> None:
    from hepae.samples import make_darkmachines_sample, make_sample

    if args.output.endswith(".csv"):
        path = make_darkmachines_sample(args.output, n_events=args.events, seed=args.seed, overwrite=args.overwrite)
        args.features = "darkmachines-csv"
    else:
        path = make_sample(args.output, args.features, n_events=args.events, seed=args.seed,
                           overwrite=args.overwrite)
    if args.json:
        _print_json({"output": str(path), "n_events": args.events, "featureset": args.features})
    else:
        print(f"wrote {args.events} events ({args.features} layout) to {path}")


def _check_device(name: str) -> None:
    """Fail before any work if the torch device ``name`` does not exist here (:class:`DeviceError`)."""
    if name in ("auto", "cpu"):  # always there: no need to import torch (2 s) for a file that runs no network
        return
    from hepae.ml.devices import resolve_device

    resolve_device(name)


def cmd_train_entropy(args: argparse.Namespace) -> None:
    from hepae.entropy_models import train_entropy_model
    from hepae.io.tensors import expand_inputs
    from hepae.io.writing import check_output_path

    inputs = expand_inputs(args.inputs)
    check_output_path(args.output, overwrite=args.overwrite, inputs=inputs)  # fail before training, not after
    log = None if args.quiet or args.json else (lambda line: print("  " + line))
    model = train_entropy_model(inputs, args.features, error_bounds=args.error_bound or (), profile=args.profile,
                                tree=args.tree, max_objects=args.max_objects, hidden=args.hidden,
                                iterations=args.iterations, seed=args.seed, log=log, progress=_progress(args))
    model.save(args.output, overwrite=args.overwrite)
    summary = {"output": args.output, "columns": sorted(model.columns), "bytes": model.size, **model.trained_on}
    if args.json:
        _print_json(summary)
    elif args.profile is not None:
        t = model.trained_on
        units = ", ".join(f"{name} ({u['objects']} objects)" if "objects" in u else f"{name} (skipped)"
                          for name, u in t["units"].items())
        saved = sum(sum(u.get("held_out_bits_saved", {}).values()) for u in t["units"].values()) / 8
        print(f"entropy model for {len(model.columns)} lossy branches under profile '{t['profile']}' written to "
              f"{args.output} ({model.size} bytes) in {t['seconds']} s; units: {units}; on their held-out objects "
              f"it saves {saved:.0f} bytes against the hand-built coder")
        if not model.columns:
            print("  no branch's networks paid on the held-out events: files compressed with this model are the "
                  "same as without it")
        print(f"  use it with: hepae compress IN -o OUT --profile {args.profile} --entropy-model {args.output}")
    else:
        t = model.trained_on
        print(f"entropy model for {len(model.columns)} of the bounded columns of {t['featureset']} written to "
              f"{args.output} ({model.size} bytes): trained on {t['objects']} objects in {t['seconds']} s; on "
              f"{t['held_out_objects']} held-out objects it saves {sum(t['held_out_bits_saved'].values()) / 8:.0f} "
              "bytes against the hand-built coder")
        if not model.columns:
            print("  no column's networks paid on the held-out events: files compressed with this model are the "
                  "same as without it")
        print(f"  use it with: hepae compress IN -o OUT --codec bounded --features {t['featureset']} "
              f"--error-bound ... --entropy-model {args.output}")


def cmd_train(args: argparse.Namespace) -> None:
    from hepae.io.tensors import expand_inputs
    from hepae.io.writing import check_output_path
    from hepae.ml.training import train

    _check_device(args.device)
    inputs = expand_inputs(args.inputs)
    check_output_path(args.output, overwrite=args.overwrite, inputs=inputs)  # fail before training, not after
    model = train(
        inputs, args.features, latent=args.latent, arch=args.arch, hidden=args.hidden,
        normalization=args.normalization, epochs=args.epochs, batch_size=args.batch_size, max_lr=args.lr,
        weight_decay=args.weight_decay, val_fraction=args.val_fraction, seed=args.seed, step_size=args.step_size,
        device=args.device, progress=_progress(args),
    )
    if int(os.environ.get("RANK", "0")) != 0:
        return  # under torchrun every rank has the same model; rank 0 writes it
    model.save(args.output, overwrite=args.overwrite)
    summary = {"output": args.output, "model_id": model.model_id, **{k: v for k, v in model.training.items()
                                                                     if k != "history"}}
    if args.json:
        _print_json(summary)
    else:
        t = model.training
        print(f"model {model.arch.name} {model.arch.layout} ({model.model_id}) written to {args.output}")
        print(f"  {t['n_train_objects']} training / {t['n_val_objects']} validation objects "
              f"from {t['n_events']} events")
        print(f"  best validation MSE {t['best_val_loss']:.3e} at epoch {t['best_epoch']}/{t['epochs']}, "
              f"{t['seconds']:.1f} s")


def _stream_names(streams: list[dict[str, str]]) -> str:
    names = [s["name"] for s in streams]
    return ", ".join(names) if len(names) <= 4 else f"{len(names)} streams"


def _latent_bits(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of bits or 'auto', got {text!r}") from None


_CODEC_OPTIONS = {"latent_bits": "--latent-bits", "error_bounds": "--error-bound", "mantissa_bits": "--mantissa-bits",
                  "entropy_model": "--entropy-model"}
"""Codec settings the command line offers: the codec's parameter -> its option."""


def _codec_config(args: argparse.Namespace) -> dict[str, Any]:
    """The chosen codec's config from the options that are its parameters (known from its signature);
    an option given for a codec that does not take it is an error."""
    kind = registered_codecs()[args.codec]
    takes = set(inspect.signature(kind.__init__).parameters)
    given = {"latent_bits": args.latent_bits, "error_bounds": args.error_bound, "mantissa_bits": args.mantissa_bits,
             "entropy_model": getattr(args, "entropy_model", None)}
    config: dict[str, Any] = {"id": args.codec}
    for name, value in given.items():
        if name in takes and value is not None:
            config[name] = value
        elif name not in takes and value is not None:
            owners = [i for i, k in registered_codecs().items() if name in inspect.signature(k.__init__).parameters]
            raise CodecError(f"{_CODEC_OPTIONS[name]} belongs to the {' and '.join(owners)} codec, not to {args.codec}")
    return config


def _progress(args: argparse.Namespace) -> bool | None:
    """Progress bars: never with -q, always with --progress, else only on a terminal."""
    return False if args.quiet else (True if args.progress else None)


def _split_bounds(args: argparse.Namespace) -> list[str]:
    """``--error-bound`` split: bounds on a column of the feature set (or the model's) go to the codec
    (``args.error_bound``), all others are precision rules for the profile."""
    columns: set[str] = set()
    if args.model is not None and args.error_bound:  # the model's columns, only where a bound might be one's
        from hepae.ml.model import load_model  # torch: only with a model

        columns = set(load_model(args.model).featureset.column_names)
    if args.features is not None:
        from hepae.features import load_featureset

        columns = set(load_featureset(args.features).column_names)
    with_collection = args.model is not None or args.features is not None
    codec_id = args.codec or "ae"
    takes = with_collection and registered_codecs()[codec_id].supports_error_bounds
    given = args.error_bound or []
    to_codec = [b for b in given if takes and b.partition("=")[0].strip() in columns]
    rules = [b for b in given if b not in to_codec]
    args.error_bound = to_codec or None
    args.codec = codec_id
    if args.codec_given and not with_collection:
        raise CodecError(f"--codec {codec_id} codes a feature-set collection: give --features (or -m MODEL); without "
                         "them every float branch is coded under --profile")
    return rules


def _units_entropy_model(args: argparse.Namespace) -> str | None:
    """``--entropy-model`` without a feature-set collection: the model of a whole file's units (taken out of the
    collection codec's options)."""
    if args.model is not None or args.features is not None:
        return None
    model, args.entropy_model = args.entropy_model, None
    return model


def cmd_compress(args: argparse.Namespace) -> None:
    from hepae.compression import compress

    args.codec_given = args.codec is not None
    rules = _split_bounds(args)
    units_model = _units_entropy_model(args)
    codec = _codec_config(args)
    _check_device(args.device)
    summary = compress(args.input, args.output, args.model,  # the path: an output that is the model is refused
                       codec=codec, featureset=args.features, profile=args.profile, rules=rules, strict=args.strict,
                       entropy_model=units_model,
                       tree=args.tree, step_size=args.step_size, compression=args.compression,
                       overwrite=args.overwrite, drop_unsupported=args.drop_unsupported, device=args.device,
                       check=not args.no_check, progress=_progress(args))
    if args.json:
        _print_json(summary)
    else:
        what = f"{summary['n_objects']} objects" if summary["codec"] is not None else \
            f"{summary['lossy_branches']} float branches"
        profile = f" under profile '{summary['profile']}'" if summary["profile"] else ""
        print(f"compressed {what} in {summary['n_events']} events{profile} "
              f"into {summary['output']} ({summary['seconds']:.2f} s)")
        print(format_sizes(summary))
        if summary["max_error_over_bound"]:
            print("\nlargest errors after decompression, in units of each branch's bound (checked value by value):")
            print(format_bounds(summary["max_error_over_bound"]))
        if summary["carried_objects"] or summary["dropped_objects"]:
            left_out = summary["dropped_objects"]
            print(f"other objects: {len(summary['carried_objects'])} carried, {len(left_out)} left out"
                  + (f" ({', '.join(sorted(left_out)[:5])}{', ...' if len(left_out) > 5 else ''})" if left_out else ""))
        if summary["residuals"] is not None:
            print(f"\nexpected residuals after decompression ({summary['unphysical_objects']} unphysical objects):")
            print(format_residuals(summary["residuals"]))


def cmd_decompress(args: argparse.Namespace) -> None:
    from hepae.decompression import decompress

    _check_device(args.device)
    summary = decompress(args.input, args.output, compression=args.compression,
                         overwrite=args.overwrite, device=args.device, progress=_progress(args))
    if args.json:
        _print_json(summary)
    else:
        what = [f"{summary['n_objects']} objects"] if summary["n_objects"] or not summary["units"] else []
        what += [f"{len(summary['units'])} profile-coded unit(s)"] if summary["units"] else []
        print(f"reconstructed {' and '.join(what)} in {summary['n_events']} events "
              f"into {summary['output']} ({_human_bytes(summary['output_bytes'])}, {summary['seconds']:.2f} s)")


def _report_many(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _print_json(summary)
    else:
        rows = [(Path(r["input"]).name, r["status"], _human_bytes(r["input_bytes"]), _human_bytes(r["output_bytes"]),
                 r["objects"] if r["objects"] is not None else "-", r["seconds"], r["error"] or "")
                for r in summary["files"]]
        print(_table(rows, ("file", "status", "input", "output", "objects", "seconds", "error")))
        print(f"{summary['ok']} ok, {summary['skipped']} skipped, {summary['failed']} failed in "
              f"{summary['seconds']:.1f} s; summary written to {summary['summary_file']}")
    if summary["failed"]:
        raise ManyFilesFailed(f"{summary['failed']} of {summary['n_files']} file(s) failed (see the summary)")


def cmd_compress_many(args: argparse.Namespace) -> None:
    from hepae.cluster import check_output_directory, compress_many

    if args.scheduler is None:  # a local cluster: its workers have this machine's devices
        _check_device(args.device)
    check_output_directory(args.output)  # the cheap check before a model is loaded
    args.codec_given = args.codec is not None
    rules = _split_bounds(args)
    units_model = _units_entropy_model(args)
    codec = _codec_config(args)
    summary = compress_many(args.inputs, args.model, args.output, codec=codec, featureset=args.features,
                            profile=args.profile, rules=rules, entropy_model=units_model, scheduler=args.scheduler,
                            workers=args.workers,
                            resume=args.resume, overwrite=args.overwrite, step_size=args.step_size,
                            compression=args.compression, drop_unsupported=args.drop_unsupported,
                            device=args.device, progress=_progress(args))
    _report_many(summary, args.json)


def cmd_decompress_many(args: argparse.Namespace) -> None:
    from hepae.cluster import decompress_many

    if args.scheduler is None:
        _check_device(args.device)
    summary = decompress_many(args.inputs, args.output, scheduler=args.scheduler, workers=args.workers,
                              resume=args.resume, overwrite=args.overwrite, compression=args.compression,
                              device=args.device, progress=_progress(args))
    _report_many(summary, args.json)


def cmd_inspect(args: argparse.Namespace) -> None:
    from hepae.inspection import inspect

    info = inspect(args.path)
    if args.json:
        _print_json(info)
        return
    if info["kind"] == "hepae-container":
        m = info["metadata"]
        print(f"{info['file']}: hepae compressed file (format {m['format_version']}, hepae {m['hepae_version']}, "
              f"created {m['created']})")
        print(f"  source      {m['source']['file']} ({m['source']['num_entries']} events, "
              f"{_human_bytes(m['source']['size_bytes'])})")
        print(f"  tree        {m['tree']}; {len(m['branches'])} branches carried, "
              f"{len(m['dropped_branches'])} dropped")
        if m.get("carried_objects") or m.get("dropped_objects"):
            dropped = m.get("dropped_objects", {})
            print(f"  objects     {len(m.get('carried_objects', []))} other object(s) carried, {len(dropped)} left out"
                  + (f": {', '.join(sorted(dropped)[:5])}" if dropped else ""))
        if "collection" in m:
            names = ", ".join(b["name"] for b in m["collection"]["branches"])
            print(f"  collection  {m['featureset']['name']}: {names}"
                  f" -> {_stream_names(m['collection']['streams'])} in hepae_streams, "
                  f"{m['collection']['n_objects']} objects")
            settings = ", ".join(f"{k}={_entropy_model_text(v) if k == 'entropy_model' else v}"
                                 for k, v in m["codec"].items() if k != "id")
            print(f"  codec       {m['codec']['id']}" + (f" ({settings})" if settings else ""))
            if "model" in m:
                print(f"  model       {m['model']['architecture']['name']} id {m['model']['model_id']}, decoder "
                      f"{_human_bytes(m['model']['decoder_bytes'])} embedded")
            elif get_codec(m["codec"]).needs_model:
                print("  model       none embedded: no chunk keeps a latent value (decoding runs no network)")
        if "profile" in m:
            profile = m["profile"]
            extra = [r for r in profile["rules"] if r.get("origin") == "command line"]
            print(f"  profile     {profile['name']}: {len(profile['applied'])} float branch(es) lossy, in "
                  f"{len(m['units'])} unit(s); floats no rule matches: {profile['unmatched']}"
                  + (f"; command-line rules: {', '.join(r['pattern'] + '=' + r['rule'] for r in extra)}"
                     if extra else ""))
            for unit in m["units"]:
                codec = get_codec(unit["codec"])
                rules = sorted({str(b).split("=", 1)[1] for b in codec.error_bounds})
                exact = getattr(codec, "exact", ())
                named = ", ".join(exact[:3]) + (", ..." if len(exact) > 3 else "")
                print(f"  unit        {unit['name']}: {len(unit['branches'])} {unit['dtype']} branch(es), "
                      f"{unit['n_objects']} {'values' if unit['counter'] is None else 'objects'}, "
                      f"rules {', '.join(rules[:4])}{', ...' if len(rules) > 4 else ''}"
                      + (f"; {len(exact)} kept exact, bit for bit ({named})" if exact else "")
                      + (f"; entropy model {_entropy_model_text(unit['codec']['entropy_model'])}"
                         if unit["codec"].get("entropy_model") else ""))
        decoder = f", decoder {m['checksums']['decoder'][:16]}..." if "decoder" in m["checksums"] else ""
        chunks = m["checksums"].get("chunks")
        data = f"{len(chunks)} chunk(s) sha256, metadata sha256" if chunks is not None else \
            f"data {m['checksums']['tree'][:16]}... (format 3: metadata unprotected)"
        print(f"  checksums   {data}{decoder}")
        print(format_sizes(info["sizes"]))
    elif info["kind"] == "hepae-model":
        h = info["header"]
        print(f"{info['file']}: {info['repr']}")
        t = h["training"]
        if t:
            loss = t.get("best_val_loss")
            loss = f"{loss:.3e}" if isinstance(loss, int | float) else "-"
            print(f"  trained on {t.get('n_train_objects')} objects, best validation MSE {loss} "
                  f"(epoch {t.get('best_epoch')}/{t.get('epochs')}), normalization {t.get('normalization')}")
    else:
        print(f"{info['file']}: ROOT file, not compressed by hepae")
        for name, tree in info["trees"].items():
            print(f"  TTree {name}: {tree['num_entries']} entries, {tree['n_branches']} branches, "
                  f"{len(tree['unsupported_branches'])} not writable by uproot")
        print(f"  built-in feature sets that match: {', '.join(info['matching_featuresets']) or 'none'}")


def cmd_residuals(args: argparse.Namespace) -> None:
    from hepae.quality.residuals import residual_summary

    residuals = residual_summary(args.original, args.reconstructed, args.features)
    if args.json:
        _print_json(residuals)
    else:
        print(format_residuals(residuals))


def cmd_validate(args: argparse.Namespace) -> int:
    from hepae.validation.report import validate

    thresholds = {"chi2_ndf": args.max_chi2_ndf, "ks": args.max_ks, "wasserstein": args.max_wasserstein}
    report = validate(args.original, args.reconstructed, args.output, featureset=args.features,
                      compressed=args.compressed, branches=args.branches, style=args.style, formats=args.formats,
                      thresholds=thresholds,
                      step_size=args.step_size, overwrite=args.overwrite, progress=_progress(args))
    if args.json:
        _print_json(report.metrics)
    else:
        if report.metrics["variables"]:
            print(format_residuals({k: v for k, v in report.metrics["variables"].items()}))
        branches = report.metrics["branches"]
        if branches:
            bounded = {n: b["max_error_over_bound"] for n, b in branches.items()
                       if b["max_error_over_bound"] is not None}
            broken = [n for n, b in branches.items() if b["within_bound"] is False]
            print(f"\n{len(branches)} lossy branch(es) of '{report.metrics['table']}' compared value by value; "
                  + (f"{len(bounded)} within their bounds" if not broken else f"OUTSIDE their bounds: {broken[:5]}"))
            if bounded:
                print(format_bounds(bounded))
        print(f"\nreport: {report.outdir / 'index.html'} ({len(report.files)} files)")
        print("distribution tests: " + ("all passed" if report.passed else "failed: " + ", ".join(report.failures)))
    return 3 if args.fail_on_mismatch and not report.passed else 0


def cmd_demo(args: argparse.Namespace) -> None:
    from hepae.demo import run_demo

    result = run_demo(args.workdir, n_events=args.events, epochs=args.epochs, seed=args.seed,
                      progress=_progress(args))
    if args.json:
        _print_json(result)
        return
    m, c = result["model"], result["compress"]
    print(f"\nhepae demo in {result['workdir']}/")
    print(f"  sample:     {c['n_events']} events, {c['n_objects']} jets  (jets.root)")
    print(f"  model:      {m['layout']}, best validation MSE {m['best_val_loss']:.3e} at epoch {m['best_epoch']}, "
          f"{m['train_seconds']:.1f} s  (jets.hepae)")
    print(f"  compress:   {c['seconds']:.2f} s  (jets.compressed.root)")
    print(f"  decompress: {result['decompress']['seconds']:.2f} s  (jets.reco.root)\n")
    print(format_sizes(c))
    print("\nresiduals of the reconstructed jets (relative for pt and m, absolute for eta and phi):")
    print(format_residuals(result["residuals"]))
    rows = [(r["mode"], _human_bytes(r["bytes"]), f"{result['comparison'][0]['bytes'] / r['bytes']:.2f}", r["keeps"])
            for r in result["comparison"]]
    print("\nthe same sample, stored five ways (ratio: input as written / this):")
    print(_table(rows, ("", "size", "ratio", "what it keeps")))
    print(f"\nvalidation plots and metrics: {result['report']}")


# -- parser -----------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hepae",
        description="Compress the object collections of HEP ROOT files (TTree or RNTuple) and DarkMachines CSV event "
                    "files with deep autoencoders, and get them back.",
        epilog="Exit status: 0 success, 1 error (one line on stderr; --debug for the traceback), 2 bad usage, "
               "3 validation failed (validate --fail-on-mismatch), 130 interrupted, 141 output pipe closed. "
               "'hepae COMMAND --help' for each command; docs/errors.md lists every error.",
    )
    parser.add_argument("--version", action="version", version=f"hepae {_version.__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def codec_options(p: argparse.ArgumentParser) -> None:
        """How a feature-set collection is coded (compress, compress-many), and the precision rules."""
        codecs = registered_codecs()
        p.add_argument("--codec", default=None, choices=tuple(codecs),
                       help="how the feature-set collection is coded: "
                            + "; ".join(f"{name}: {kind.summary}" for name, kind in codecs.items()) + " (default: ae)")
        p.add_argument("--features", help="feature set, for codecs without a model (default: the model's)")
        p.add_argument("--latent-bits", type=_latent_bits, metavar="BITS|auto",
                       help="ae: quantize latent values to steps of std/2**BITS and entropy code them; 'auto' "
                            "(the default with --error-bound) chooses per dimension, 0 drops a dimension")
        p.add_argument("--error-bound", action="append", metavar="NAME=RULE",
                       help="a precision rule, repeatable: rel:B, abs:B, bits:N or exact. On a column of the feature "
                            "set (pt=rel:1e-3) it is the ae/bounded codec's bound; otherwise a branch pattern added "
                            "before the profile's rules ('Jet_btag*=abs:1e-3')")
        p.add_argument("--mantissa-bits", type=int, help="truncate: mantissa bits kept (default 10)")
        p.add_argument("--entropy-model", metavar="FILE",
                       help="a learned entropy model written by 'hepae train-entropy' for the bounded codec's "
                            "collection (with --features) or for a whole file's units (with --profile), used per "
                            "chunk and column where it codes in fewer bytes (the file then carries it)")

    def common(p: argparse.ArgumentParser, *, output: bool = True, stream: bool = True, device: bool = True) -> None:
        p.add_argument("--json", action="store_true", help="print the result as JSON")
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bars (shown only on a terminal anyway)")
        p.add_argument("--progress", action="store_true", help="progress bars even when stderr is not a terminal")
        if device:
            p.add_argument("--device", default="auto", help="torch device: auto (CUDA if available), cpu, cuda")
        if output:
            p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
        if stream:
            p.add_argument("--step-size", type=_step_size, default=DEFAULT_STEP_SIZE,
                           help=f"chunk size: entries (e.g. 100000, at least {MIN_STEP_ENTRIES}) or memory "
                                f"(e.g. '100 MB', at least '1 MB'); default {DEFAULT_STEP_SIZE!r}")

    p = sub.add_parser("profiles", help="list the built-in precision profiles")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_profiles)

    p = sub.add_parser("featuresets", help="list the built-in feature sets")
    p.add_argument("--json", action="store_true", help="print the full definitions as JSON")
    p.set_defaults(func=cmd_featuresets)

    p = sub.add_parser("make-sample", help="write a synthetic jet sample (no download needed)")
    p.add_argument("output", help="a .root file in the feature set's layout, or a .csv DarkMachines event file")
    p.add_argument("--features", default="atlas-jets-4d", help="layout to write (feature set name or JSON)")
    p.add_argument("--events", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=42)
    common(p, stream=False, device=False)
    p.set_defaults(func=cmd_make_sample)

    p = sub.add_parser("train", help="train an autoencoder on one or several ROOT or DarkMachines CSV files")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="files or quoted glob patterns ('data/*.root', 'events/*.csv')")
    p.add_argument("-o", "--output", required=True, help="model file to write (e.g. jets4d.hepae)")
    p.add_argument("--features", required=True, help="feature set: built-in name or JSON file")
    p.add_argument("--latent", type=int, default=DEFAULTS["latent"])
    p.add_argument("--arch", default=DEFAULTS["arch"], help="AE_3D_200 (tanh, default) or AE_bn_LeakyReLU")
    p.add_argument("--hidden", type=_int_list, default=None, help="hidden sizes, e.g. 400,400,200")
    p.add_argument("--normalization", default=DEFAULTS["normalization"], choices=("featureset", "standard", "quantile"))
    p.add_argument("--epochs", type=int, default=DEFAULTS["epochs"])
    p.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"])
    p.add_argument("--lr", type=float, default=DEFAULTS["max_lr"], help="peak learning rate of the one-cycle schedule")
    p.add_argument("--weight-decay", type=float, default=DEFAULTS["weight_decay"])
    p.add_argument("--val-fraction", type=float, default=DEFAULTS["val_fraction"])
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    common(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("train-entropy", help="train a learned entropy model for the bounded codec (integer networks, "
                                             "decoded the same on every machine, without torch)")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="files or quoted glob patterns ('data/*.root', 'events/*.csv')")
    p.add_argument("-o", "--output", required=True, help="model file to write (JSON, e.g. jets27d-entropy.json)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--features", help="a model for this feature set's collection: built-in name or JSON file")
    what.add_argument("--profile", help="a model for a whole file's units under this precision profile (built-in "
                                        "name or JSON file), for 'hepae compress --profile ... --entropy-model'")
    p.add_argument("--error-bound", action="append", metavar="NAME=RULE",
                   help="with --features: the bound a column is trained at (default: rel:1e-3 or abs:1e-3 by its "
                        "residual type); with --profile: a precision rule before the profile's. The model serves any "
                        "bound of the same kind")
    p.add_argument("--tree", help="with --profile: the table (default: the one with the most branches)")
    p.add_argument("--max-objects", type=int, default=200_000, help="objects read from the inputs (whole events)")
    p.add_argument("--hidden", type=int, default=16, help="hidden units of each network")
    p.add_argument("--iterations", type=int, default=400, help="Adam iterations per column")
    p.add_argument("--seed", type=int, default=0)
    common(p, stream=False, device=False)
    p.set_defaults(func=cmd_train_entropy)

    p = sub.add_parser("compress", help="compress a ROOT file (TTree or RNTuple) or DarkMachines CSV file")
    p.add_argument("input", help="a .root file, or a .csv DarkMachines event file (darkmachines-* feature sets)")
    p.add_argument("-m", "--model", help="model file written by 'hepae train' (needed by the ae codec)")
    p.add_argument("-o", "--output", required=True)
    codec_options(p)
    p.add_argument("--profile", metavar="NAME|FILE",
                   help="precision profile: every float branch a rule makes lossy is coded within it (built-in: "
                        "see 'hepae profiles'; default without -m/--features: the one that fits the file)")
    p.add_argument("--strict", action="store_true", help="a profile rule that matches no branch is an error")
    p.add_argument("--tree", help="the TTree or RNTuple to compress (default: the feature set's, else the table "
                                  "with the most branches)")
    p.add_argument("--compression", type=_compression, default=DEFAULT_COMPRESSION,
                   help="ROOT compression of the output (the streams' entropy coder), e.g. zstd:5, lzma:9, none")
    p.add_argument("--drop-unsupported", action="store_true",
                   help="leave out branches and other objects (trees, histograms, ...) that uproot cannot write "
                        "back, listed in the metadata and the summary, instead of failing")
    p.add_argument("--no-check", action="store_true",
                   help="skip decoding during compression (no residuals or unphysical count in the summary)")
    common(p)
    p.set_defaults(func=cmd_compress)

    p = sub.add_parser("decompress", help="rebuild the original tree from a compressed file")
    p.add_argument("input")
    p.add_argument("-o", "--output", required=True,
                   help="a .root file (TTree or RNTuple, as the input was), or .csv for a file compressed from CSV")
    p.add_argument("--compression", type=_compression, default=DEFAULT_COMPRESSION)
    common(p, stream=False)
    p.set_defaults(func=cmd_decompress)

    def many(p: argparse.ArgumentParser, stream: bool = True) -> None:
        cluster = p.add_mutually_exclusive_group()
        cluster.add_argument("--scheduler", help="address of a running Dask scheduler, e.g. tcp://host:8786")
        cluster.add_argument("--workers", type=_workers,
                             help="size of the local Dask cluster, at least 1 (default: one per core)")
        p.add_argument("--resume", action="store_true", help="skip files whose valid output already exists")
        p.add_argument("--compression", type=_compression, default=DEFAULT_COMPRESSION)
        p.add_argument("--device", default="cpu", help="torch device of each worker (default cpu: one task per core)")
        common(p, device=False, stream=stream)

    p = sub.add_parser("compress-many", help="compress many files on Dask, one task per file")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="files or quoted glob patterns ('data/*.root')")
    p.add_argument("-m", "--model", help="model file written by 'hepae train' (needed by the ae codec)")
    codec_options(p)
    p.add_argument("--profile", metavar="NAME|FILE",
                   help="precision profile for every float branch (default without -m/--features: the one that fits "
                        "each file)")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="directory for <stem>.compressed.root")
    p.add_argument("--drop-unsupported", action="store_true",
                   help="as for compress: leave out what uproot cannot write back (listed) instead of failing")
    many(p)
    p.set_defaults(func=cmd_compress_many)

    p = sub.add_parser("decompress-many", help="decompress many files on Dask, one task per file")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="files or quoted glob patterns")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="directory for <stem>.reco.root")
    many(p, stream=False)
    p.set_defaults(func=cmd_decompress_many)

    p = sub.add_parser("inspect", help="show what a compressed file, model file or ROOT file holds")
    p.add_argument("path")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("residuals", help="per-variable residuals of a reconstruction against the original")
    p.add_argument("original")
    p.add_argument("reconstructed")
    p.add_argument("--features", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_residuals)

    p = sub.add_parser("validate", help="plots and metrics comparing a reconstructed file with the original")
    p.add_argument("original", help="original ROOT or DarkMachines CSV file")
    p.add_argument("reconstructed", help="its reconstruction (hepae decompress output)")
    p.add_argument("-o", "--output", required=True, metavar="REPORT_DIR",
                   help="directory for the PNG/PDF plots, metrics.json, histograms.root and index.html")
    p.add_argument("--features", help="feature set (default: from --compressed, or the first built-in that matches)")
    p.add_argument("--compressed", help="the compressed file: every branch it codes lossily is compared value by value "
                                        "against its rule; adds the latent-space correlation matrix")
    p.add_argument("--branches", nargs="+", metavar="PATTERN",
                   help="compare these float branches value by value (glob patterns; default with --compressed: "
                        "every lossy branch)")
    p.add_argument("--style", default="ATLAS", choices=STYLES, help="mplhep experiment style of the plots")
    p.add_argument("--formats", type=lambda text: [f for f in text.split(",") if f], default=["png", "pdf"],
                   help="plot file formats, comma-separated (default png,pdf); '' for numbers only")
    p.add_argument("--max-chi2-ndf", type=float, default=DEFAULT_THRESHOLDS["chi2_ndf"])
    p.add_argument("--max-ks", type=float, default=DEFAULT_THRESHOLDS["ks"], help="Kolmogorov-Smirnov distance")
    p.add_argument("--max-wasserstein", type=float, default=DEFAULT_THRESHOLDS["wasserstein"],
                   help="Wasserstein distance in units of the original's standard deviation")
    p.add_argument("--fail-on-mismatch", action="store_true",
                   help="exit with status 3 if a distribution test fails (for pipelines)")
    common(p, device=False)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("demo", help="generate a sample, train, compress, decompress and print a summary")
    p.add_argument("--workdir", default="hepae-demo")
    p.add_argument("--events", type=int, default=20_000)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars (shown only on a terminal anyway)")
    p.add_argument("--progress", action="store_true", help="progress bars even when stderr is not a terminal")
    p.set_defaults(func=cmd_demo)
    return parser


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _os_error_line(err: OSError) -> str:
    """An OSError hepae did not anticipate, as one line: the file(s) concerned and the system's reason."""
    files = " -> ".join(str(f) for f in (err.filename, err.filename2) if f is not None)
    reason = err.strerror or str(err) or type(err).__name__
    return f"{files}: {reason}" if files else reason


def _stdout_is_closed() -> bool:
    """Whether stdout is a pipe whose reader has gone (poll reports an error on its write end)."""
    try:
        import select

        poller = select.poll()
        poller.register(sys.stdout.fileno(), 0)
        return any(event & (select.POLLERR | select.POLLHUP) for _, event in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows) or no real stdout: assume it was stdout
        return True


def _stdout_closed() -> int:
    """stdout's reader went away (``hepae inspect f | head -2``): exit quietly, as Python's docs advise.

    Python ignores SIGPIPE, so a write to a closed pipe raises BrokenPipeError. stdout is pointed at
    /dev/null so that the flush at exit cannot fail again; the status is 141 (128 + SIGPIPE), the one a
    command killed by SIGPIPE gives, so ``set -o pipefail`` sees it.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 141


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit:  # --help, --version, usage errors: their text may meet a closed pipe too
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            return _stdout_closed()
        raise
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)  # clean up partial outputs on SIGTERM too
    kernels.NUMBA_EXTENSIONS = False  # nothing in a hepae command uses numba's extensions: ~1.5 s saved
    try:
        with warnings.catch_warnings():
            if not args.debug:  # hepae's own warnings (what was left out) as one line each, like errors
                warnings.showwarning = functools.partial(_show_warning, args.command)
            status = args.func(args) or 0
        sys.stdout.flush()  # here, where a closed pipe can still be handled, not at interpreter exit
    except BrokenPipeError as err:
        if _stdout_is_closed():
            return _stdout_closed()
        return _fail(args, _os_error_line(err))
    except HepaeError as err:
        return _fail(args, str(err))
    except OSError as err:  # the environment (permissions, a vanished file, a failing disk): still one line
        return _fail(args, _os_error_line(err))
    except KeyboardInterrupt:
        print(f"hepae {args.command}: interrupted; no partial output was left", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    return status


def _show_warning(command: str, message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
    print(f"hepae {command}: warning: {message}", file=sys.stderr)


def _fail(args: argparse.Namespace, message: str) -> int:
    """Print the one error line (after the traceback with ``--debug``); the exit status 1."""
    if args.debug:
        traceback.print_exc()
    print(f"hepae {args.command}: error: {message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
