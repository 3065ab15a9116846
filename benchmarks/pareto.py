"""Bytes per object against error: hepae's codecs beside the classical ones, on one file.

    python benchmarks/pareto.py                                  # generated sample (train and test differ)
    python benchmarks/pareto.py --input qcd.root --train other.root --features atlas-jets-4d
    pip install pysz zfpy                                        # to include SZ3 and ZFP (optional)

For each point: the bytes per object of the compressed collection (streams plus the per-event counts,
measured as the marginal cost between the file and its first quarter, so per-file costs cancel; the
embedded model's size beside it), and per variable the residual sigma and max |error|. Points:
lossless float32; mantissa truncation at 6..16 bits; SZ3 and ZFP at the bounds (on log x for the
relative variables); the autoencoder at its latent sizes and quantization steps; the autoencoder with
error bounds; the ``bounded`` codec with its hand-built parts and with a learned entropy model
(``hepae train-entropy``); and the order-0 entropy of the values quantized uniformly to each bound (a
limit for coders of independent values). The models are trained on ``--train``, never on the evaluated
file (the learned entropy model once, at its default bound, and used at every bound). Prints a table,
writes JSON and a PNG. ``--only-bounded`` leaves out the autoencoder and truncation points.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import uproot

import hepae
from hepae.codecs import AE, Bounded, Lossless, Truncate, entropy
from hepae.entropy_models import train_entropy_model
from hepae.io.sources import open_source
from hepae.io.tensors import collection_to_tensor


def _values(path: Path, featureset) -> tuple[np.ndarray, np.ndarray]:
    with open_source(path, featureset.tree) as source:
        chunks = [collection_to_tensor(a, featureset) for a in source.iterate(featureset.input_branches)]
    return np.concatenate([c[0] for c in chunks]), np.concatenate([c[1] for c in chunks])


def _errors(featureset, x: np.ndarray, reco: np.ndarray) -> dict[str, dict[str, float]]:
    out = {}
    for j, column in enumerate(featureset.columns):
        a, b = x[:, j].astype(np.float64), reco[:, j].astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = (b - a) / np.abs(a) if column.residual == "relative" else b - a
        r = r[np.isfinite(r)]
        out[column.name] = {"sigma": float(r.std()), "max": float(np.abs(r).max())}
    return out


def _first_quarter(path: Path, target: Path, tree: str) -> Path:
    from hepae.io.branches import describe_tree
    from hepae.io.writing import TreeWriter

    with uproot.open(path) as f:
        t = f[tree]
        layout, arrays = describe_tree(t), t.arrays(library="ak", how=dict, entry_stop=t.num_entries // 4)
    with uproot.recreate(target) as out:
        TreeWriter(out, tree, layout.branches).extend(arrays)
    return target


def _hepae_point(name, codec, model, featureset, big, small, n_big, n_small, tmp, x) -> dict:
    started = time.perf_counter()
    summaries = [hepae.compress(source, tmp / f"{label}.root", model, codec=codec, featureset=featureset,
                                overwrite=True, check=False, progress=False)
                 for source, label in ((big, "c_big"), (small, "c_small"))]
    sizes = [s["collection_latent_bytes"] for s in summaries]  # codec streams and per-event counts
    reco_path = tmp / "reco.root"
    hepae.decompress(tmp / "c_big.root", reco_path, overwrite=True, progress=False)
    reco, _ = _values(reco_path, featureset)
    return {"name": name, "codec": codec.get_config(), "bytes_per_object": (sizes[0] - sizes[1]) / (n_big - n_small),
            "model_bytes": summaries[0]["decoder_bytes"], "errors": _errors(featureset, x, reco),
            "latent_bits": _latent_bits(tmp / "c_big.root"), "seconds": round(time.perf_counter() - started, 2)}


def _latent_bits(path: Path) -> list[int] | None:
    """Bits per latent dimension of the first chunk of a quantized ae file (0: dimension dropped)."""
    with uproot.open(path) as f:
        if "hepae_streams" not in f or "coded" not in f["hepae_streams"].keys():
            return None
        coded = f["hepae_streams"]["coded"].array(library="np", entry_stop=1)[0]
    return entropy.unpack_arrays(coded)[1].tolist()  # the chunk's second array (hepae.codecs._CodedChunk)


def _classical(name, compress_column, featureset, x, bound, count_bytes) -> dict:
    """SZ3 or ZFP per column (log of |x| for relative bounds, as SZ3 does for pointwise-relative)."""
    total, reco = count_bytes, np.empty_like(x)
    for j, column in enumerate(featureset.columns):
        values = x[:, j].astype(np.float64)
        relative = column.residual == "relative"
        sign = np.sign(values)
        with np.errstate(divide="ignore"):
            data = np.log(np.abs(values)) if relative else values
        exact = ~np.isfinite(data)  # zeros under a relative bound: stored as exceptions
        data = np.where(exact, 0.0, data)
        tolerance = math.log1p(bound) if relative else bound
        size, back = compress_column(data, tolerance)
        total += size + exact.sum() * 8  # position and value of each exception
        reco[:, j] = np.where(exact, values, sign * np.exp(back) if relative else back)
    return {"name": f"{name} {bound:g}", "bytes_per_object": total / len(x), "model_bytes": 0,
            "errors": _errors(featureset, x, reco)}


def _sz3(data: np.ndarray, tolerance: float) -> tuple[int, np.ndarray]:
    from pysz import sz, szConfig, szErrorBoundMode

    config = szConfig()
    config.errorBoundMode = szErrorBoundMode.ABS
    config.absErrorBound = tolerance
    compressed, _ = sz.compress(data, config)
    back, _ = sz.decompress(compressed, np.float64, data.shape)
    return len(compressed), back


def _zfp(data: np.ndarray, tolerance: float) -> tuple[int, np.ndarray]:
    import zfpy

    compressed = zfpy.compress_numpy(data, tolerance=tolerance)
    return len(compressed), zfpy.decompress_numpy(compressed)


def _entropy_limit(featureset, x: np.ndarray, bound: float, count_bytes: int) -> dict:
    bits = 0.0
    for j, column in enumerate(featureset.columns):
        values = x[:, j].astype(np.float64)
        with np.errstate(divide="ignore"):
            data = np.log(np.abs(values)) / (2 * math.log1p(bound)) if column.residual == "relative" else \
                values / (2 * bound)
        finite = data[np.isfinite(data)]
        bits += entropy.entropy_bits(np.rint(finite)) / len(finite) * len(data)
    return {"name": f"entropy limit {bound:g}", "bytes_per_object": (bits / 8 + count_bytes) / len(x),
            "model_bytes": 0, "errors": {}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", help="ROOT file to evaluate (default: a generated sample)")
    parser.add_argument("--train", help="ROOT file to train on (default: another generated sample)")
    parser.add_argument("--features", default="atlas-jets-4d")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--latents", default="3,4", help="latent sizes of the autoencoder points")
    parser.add_argument("--latent-bits", default="6,10", help="quantization of the latent values")
    parser.add_argument("--bounds", default="1e-2,1e-3,1e-4")
    parser.add_argument("--bounded-latent-bits", default="2,6",
                        help="fixed latent bits of the bounded autoencoder, beside 'auto'")
    parser.add_argument("--entropy-iterations", type=int, default=400,
                        help="Adam iterations per column of the learned entropy model")
    parser.add_argument("--only-bounded", action="store_true",
                        help="only the bounded codec (hand-built and learned), SZ3, ZFP and the entropy limits")
    parser.add_argument("--json-out", default="pareto.json")
    parser.add_argument("--png-out", default="pareto.png")
    args = parser.parse_args()
    featureset = hepae.load_featureset(args.features)
    bounds = [float(b) for b in args.bounds.split(",")]
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        big = Path(args.input) if args.input else hepae.make_sample(tmp / "eval.root", featureset, n_events=args.events,
                                                                     seed=2)
        training = Path(args.train) if args.train else hepae.make_sample(tmp / "train.root", featureset,
                                                                          n_events=args.events, seed=1)
        small = _first_quarter(big, tmp / "quarter.root", featureset.tree)
        x, counts = _values(big, featureset)
        n_big, n_small = len(x), len(_values(small, featureset)[0])
        common = (featureset, big, small, n_big, n_small, tmp, x)
        rows.append(_hepae_point("lossless", Lossless(), None, *common))
        hepae.compress(big, tmp / "l.root", codec="lossless", featureset=featureset, check=False, progress=False)
        with uproot.open(tmp / "l.root") as f:  # what the per-event counts cost: the same for every codec
            count_bytes = int(f[featureset.tree]["hepae_count"].compressed_bytes)
        if not args.only_bounded:
            for bits in (6, 8, 10, 12, 14, 16):
                rows.append(_hepae_point(f"truncate {bits} bits", Truncate(bits), None, *common))
            models = {int(latent): hepae.train(training, featureset, latent=int(latent), epochs=args.epochs,
                                               batch_size=512, max_lr=1e-2, progress=False)
                      for latent in args.latents.split(",")}
            for latent, model in models.items():
                for bits in args.latent_bits.split(","):
                    rows.append(_hepae_point(f"ae latent {latent}, {bits} bits", AE(latent_bits=int(bits)), model,
                                             *common))
        # the bounded codec codes the bounded columns; a feature set's lossless ones (27D: N90Constituents) are
        # carried exactly beside the collection, as the ae codec's are, so the bounded rows use the feature set
        # without them (the same collection bytes)
        keep = [j for j, c in enumerate(featureset.columns) if not c.lossless]
        document = featureset.to_dict()
        document["columns"] = [document["columns"][j] for j in keep]
        bounded_featureset = hepae.load_featureset(document)
        bounded_common = (bounded_featureset, big, small, n_big, n_small, tmp, x[:, keep])
        started = time.perf_counter()
        entropy_model = train_entropy_model(training, bounded_featureset, iterations=args.entropy_iterations)
        training_seconds = time.perf_counter() - started
        for bound in bounds:
            error_bounds = [f"{c.name}={'rel' if c.residual == 'relative' else 'abs'}:{bound:g}"
                            for c in featureset.columns if not c.lossless]
            if not args.only_bounded:
                for bits in ("auto", *args.bounded_latent_bits.split(",")):
                    codec = AE(latent_bits=bits if bits == "auto" else int(bits), error_bounds=error_bounds)
                    rows.append(_hepae_point(f"ae bounded {bound:g}, {bits} bits", codec, models[min(models)],
                                             *common))
            rows.append(_hepae_point(f"bounded {bound:g}, hand-built", Bounded(error_bounds), None,
                                     *bounded_common))
            learned = _hepae_point(f"bounded {bound:g}, learned", Bounded(error_bounds, entropy_model=entropy_model),
                                   None, *bounded_common)
            rows.append({**learned, "model_bytes": entropy_model.size, "training_seconds": round(training_seconds, 1),
                         "learned_columns": sorted(entropy_model.columns)})
            # the same columns as the bounded rows (a lossless column is carried beside the collection)
            rows.append(_entropy_limit(bounded_featureset, x[:, keep], bound, count_bytes))
            for name, compress_column in (("sz3", _sz3), ("zfp", _zfp)):
                try:
                    rows.append(_classical(name, compress_column, bounded_featureset, x[:, keep], bound, count_bytes))
                except ImportError:
                    print(f"({name} not installed: pip install pysz zfpy)")
        _learned_table(rows, bounds, args, entropy_model, training_seconds)
    _report(rows, featureset, args)


def _learned_table(rows: list[dict], bounds: list[float], args, entropy_model, training_seconds: float) -> None:
    """Per bound: the learned entropy model against the hand-built coder, SZ3 and the order-0 entropy."""
    by_name = {r["name"]: r for r in rows}
    print(f"learned entropy model: trained on {args.train or 'a generated sample (seed 1)'}, evaluated on "
          f"{args.input or 'another one (seed 2)'}; {entropy_model.size} bytes, {training_seconds:.0f} s, columns "
          f"{', '.join(sorted(entropy_model.columns)) or '(none kept)'}")
    print(f"{'bound':>7s} {'learned':>9s} {'hand-built':>10s} {'learned/hand':>12s} {'SZ3':>8s} {'order-0':>8s}")
    for bound in bounds:
        mine, hand = by_name[f"bounded {bound:g}, learned"], by_name[f"bounded {bound:g}, hand-built"]
        sz3 = by_name.get(f"sz3 {bound:g}")
        order0 = by_name[f"entropy limit {bound:g}"]
        print(f"{bound:7g} {mine['bytes_per_object']:9.3f} {hand['bytes_per_object']:10.3f} "
              f"{mine['bytes_per_object'] / hand['bytes_per_object']:12.4f} "
              f"{sz3['bytes_per_object'] if sz3 else float('nan'):8.3f} {order0['bytes_per_object']:8.3f}")


def _report(rows: list[dict], featureset, args) -> None:
    names = featureset.column_names
    shown = names[:6]
    header = f"{'point':34s} {'B/object':>9s} {'model B':>8s} " + " ".join(f"{n[:9] + ' max':>13s}" for n in shown) \
        + "  latent bits"
    print(header)
    print("-" * len(header))
    for r in rows:
        errors = " ".join(f"{r['errors'][n]['max']:13.2e}" if n in r["errors"] else f"{'':13s}" for n in shown)
        bits = r.get("latent_bits")
        print(f"{r['name']:34s} {r['bytes_per_object']:9.3f} {r['model_bytes']:8d} {errors}  {bits if bits else ''}")
    Path(args.json_out).write_text(json.dumps({"featureset": featureset.name, "rows": rows}, indent=1))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    for family, marker in (("truncate", "s"), ("sz3", "^"), ("zfp", "v"), ("ae bounded", "o"), ("ae latent", "x"),
                           ("bounded", "D")):
        points = [r for r in rows if r["name"].startswith(family) and r["errors"]]
        if points:
            worst = [max(e["max"] for e in r["errors"].values()) for r in points]
            ax.scatter([r["bytes_per_object"] for r in points], np.maximum(worst, 1e-9), marker=marker, label=family)
    for r in rows:
        if r["name"].startswith("entropy limit"):
            ax.axvline(r["bytes_per_object"], color="grey", ls=":", lw=1)
        if r["name"] == "lossless":
            ax.axvline(r["bytes_per_object"], color="black", ls="--", lw=1, label="lossless float32")
    ax.set_xlabel("bytes per object (marginal; counts included, model not)")
    ax.set_ylabel("max |error| over variables (relative or absolute)")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title(f"{featureset.name}: size vs error (dotted: entropy limits at the bounds)")
    fig.savefig(args.png_out, dpi=110)
    print(f"wrote {args.json_out} and {args.png_out}")


if __name__ == "__main__":
    main()
