"""How far the bounded codec is from the best any coder can do on ``hepae make-sample``'s jets.

    python benchmarks/generated_limit.py                          # 4D and 27D, trained on seed 1, reported on seed 2
    python benchmarks/generated_limit.py --features 27d --events 20000 --bounds 1e-2

The jets of ``make-sample`` (``hepae.samples.generate_jets`` and ``generate_jet_details``) are drawn from stated
densities, so the least number of bits any coder can spend on their quantized values is computable. Per jet,
every variable is conditioned on the exact values the generator drew it from (pT on the event's jet count and
the pT of the jet before it: the jets of an event are sorted by pT; ActiveArea4vec_m on ActiveArea4vec_pt,
HECFrac on EMFrac and eta, OotFracClusters5 on OotFracClusters10, ...), and its density is integrated over the
value's quantization bin (multiples of the codec's step, of log|x| under a relative bound). The sum over the
variables of the mean of ``-log2`` of those masses (``limit``) is at most the entropy of the quantized values
given the event's jet count, whatever order a coder takes them in (conditioning on more never adds entropy),
so no coder of these values, learned or not, stores fewer bits on average. N90Constituents (an integer, carried
exactly beside the bounded columns as ``pareto.py`` does) is left out of every row.

Rows: the limit, the order-0 entropy of the quantized values, SZ3 (``pip install pysz``; on log|x| for the
relative columns), and the ``bounded`` codec with its hand-built parts and with a learned entropy model trained
on another seed (``fit_entropy_model``, once at 1e-3, used at every bound, as ``pareto.py`` does). Bytes per jet
of the codec's streams on one chunk of all the jets (tables included, the per-event counts not: the limit is
given the counts too; the model's own bytes beside it).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from hepae.codecs import entropy, learned, order_statistics
from hepae.codecs.bounded import Bounded
from hepae.codecs.bounds import ErrorBound, quantization_step
from hepae.entropy_models import fit_entropy_model
from hepae.features import load_featureset
from hepae.samples import generate_jet_details, generate_jets

MEV = ("pt", "m", "NegativeE", "LeadingClusterPt")  # make-sample writes these in MeV (xAOD layout)
_erfc_object = np.frompyfunc(math.erfc, 1, 1)


def _erfc(z) -> np.ndarray:
    return np.asarray(_erfc_object(np.asarray(z, np.float64)), np.float64)


def generate(n_events: int, seed: int, details: bool) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """make-sample's jets (its first 50 000-event chunk takes the generator in this order), float32, MeV."""
    rng = np.random.default_rng(seed)
    jets = generate_jets(rng, n_events)
    counts = jets.pop("counts")
    if details:
        jets.update(generate_jet_details(rng, jets))
    return {k: (v * 1000.0 if k in MEV else v).astype(np.float32) for k, v in jets.items()}, counts


# -- masses of a bin ----------------------------------------------------------------------------------

def _phi(z: np.ndarray) -> np.ndarray:
    """The standard normal CDF, accurate in both tails."""
    z = np.asarray(z, np.float64)
    upper = 0.5 * _erfc(np.abs(z) / math.sqrt(2.0))
    return np.where(z > 0, 1.0 - upper, upper)


def normal_mass(lo, hi, mean, sigma) -> np.ndarray:
    """P(lo < N(mean, sigma) <= hi), without cancellation in the upper tail."""
    a, b = (np.asarray(lo, np.float64) - mean) / sigma, (np.asarray(hi, np.float64) - mean) / sigma
    tail = lambda z: 0.5 * _erfc(z / math.sqrt(2.0))  # noqa: E731
    return np.where(a > 0, tail(a) - tail(b), _phi(b) - _phi(a))


def clipped(cdf, lo, hi, low: float, high: float) -> np.ndarray:
    """The mass in (lo, hi] of a variable with CDF ``cdf`` clipped to [low, high] (point masses at the ends)."""
    def g(x):
        x = np.asarray(x, np.float64)
        return np.where(x < low, 0.0, np.where(x >= high, 1.0, cdf(np.clip(x, low, high))))
    return g(hi) - g(lo)


def beta25_cdf(x: np.ndarray) -> np.ndarray:
    x = np.clip(np.asarray(x, np.float64), 0.0, 1.0)
    return 1.0 - (1.0 - x) ** 6 - 6.0 * x * (1.0 - x) ** 5


def beta_half_cdf(b: int):
    """The CDF of Beta(0.5, b), integer b: with x = s**2 the density is 2 (1 - s**2)**(b - 1) / B, a polynomial."""
    terms = np.polynomial.Polynomial([1.0, 0.0, -1.0]) ** (b - 1)
    integral = terms.integ()
    total = integral(1.0)
    return lambda x: integral(np.sqrt(np.clip(np.asarray(x, np.float64), 0.0, 1.0))) / total


def _em_frac_cdf() -> callable:
    """CDF of Beta(2, 5) + N(0, 0.02) (before the clip to [0, 1]), tabulated by convolution on a fine grid."""
    h = 2e-6
    x = np.arange(-0.2, 1.2 + h, h)
    z = np.arange(-0.16, 0.16 + h / 2, h)
    kernel = np.exp(-0.5 * (z / 0.02) ** 2)
    kernel /= kernel.sum()
    size = len(x) + len(kernel) - 1
    n_fft = 1 << (size - 1).bit_length()
    smoothed = np.fft.irfft(np.fft.rfft(beta25_cdf(x), n_fft) * np.fft.rfft(kernel, n_fft), n_fft)
    centre = len(kernel) // 2
    table = smoothed[centre:centre + len(x)]
    inner = (x > -0.04) & (x < 1.04)  # where the convolution saw no edge of the grid
    return lambda v: np.interp(v, x[inner], table[inner])


def _steps(values: np.ndarray, step: float, relative: bool) -> np.ndarray:
    """Each value's quantization step index: of the value, or of log|value| under a relative bound (0 for a zero)."""
    values = values.astype(np.float64)
    if relative:
        values = np.log(np.abs(np.where(values == 0, 1.0, values)))
    return np.rint(values / step)


def _bins(values: np.ndarray, step: float, relative: bool) -> tuple[np.ndarray, np.ndarray]:
    """The quantization bin of each value: of the value, or of log|value| under a relative bound."""
    k = _steps(values, step, relative)
    return (k - 0.5) * step, (k + 0.5) * step


# -- the generator's conditional densities ------------------------------------------------------------

def limit_bits(jets: dict[str, np.ndarray], counts: np.ndarray, steps: dict[str, float],
               relative: dict[str, bool]) -> dict[str, float]:
    """Per variable, the mean ``-log2`` of its quantized value's mass given what the generator drew it from."""
    v = {k: a.astype(np.float64) for k, a in jets.items()}
    first = np.repeat(np.cumsum(counts) - counts, counts)
    rank = np.arange(len(v["pt"])) - first
    left = np.repeat(counts, counts) - rank  # this jet and the ones after it in the event
    mass: dict[str, np.ndarray] = {}

    def bins(name):
        lo, hi = _bins(v[name], steps[name], relative[name])
        return (np.exp(lo), np.exp(hi)) if relative[name] else (lo, hi)

    # pt: 20 GeV * U**(-1/3), capped at 4 TeV, the event's jets sorted by decreasing pt
    def pt_cdf(p):
        p = np.asarray(p, np.float64)
        return np.where(p < 20e3, 0.0, np.where(p >= 4e6, 1.0, 1.0 - (np.maximum(p, 20e3) / 20e3) ** -3.0))
    lo, hi = bins("pt")
    above = np.where(rank > 0, v["pt"][np.maximum(np.arange(len(rank)) - 1, 0)], np.inf)  # the jet before
    f_above = np.where(np.isfinite(above), pt_cdf(np.where(np.isfinite(above), above, 0.0)), 1.0)
    mass["pt"] = (pt_cdf(np.minimum(hi, above)) ** left - pt_cdf(lo) ** left) / f_above ** left
    # eta: N(0, 1.6), values beyond 4.5 redrawn uniformly in [-4.5, 4.5]
    lo, hi = bins("eta")
    outside = 2.0 * _phi(-4.5 / 1.6)
    mass["eta"] = normal_mass(np.maximum(lo, -4.5), np.minimum(hi, 4.5), 0.0, 1.6) * (hi > -4.5) * (lo < 4.5) \
        + outside * np.clip(np.minimum(hi, 4.5) - np.maximum(lo, -4.5), 0, None) / 9.0
    lo, hi = bins("phi")
    mass["phi"] = np.clip(np.minimum(hi, np.pi) - np.maximum(lo, -np.pi), 0, None) / (2 * np.pi)
    # m: 0 for 1e-4 of the jets, else pt * LogNormal(log 0.1, 0.03) (clipped at 0.02 and 0.4: 54 sigma away)
    lo, hi = _bins(np.where(v["m"] > 0, v["m"], 1.0), steps["m"], True)
    massive = (1 - 1e-4) * normal_mass(lo, hi, np.log(v["pt"]) + math.log(0.1), 0.03)
    mass["m"] = np.where(v["m"] > 0, massive, 1e-4)
    if "ActiveArea" not in v:
        return {k: float(-np.log2(np.clip(p, 1e-300, None)).mean()) for k, p in mass.items()}

    lo, hi = bins("ActiveArea")
    mass["ActiveArea"] = clipped(lambda x: _phi((x - 0.5) / 0.06), lo, hi, 0.2, 0.8)
    lo, hi = bins("ActiveArea4vec_pt")
    mass["ActiveArea4vec_pt"] = normal_mass(lo, hi, v["ActiveArea"], 0.03 * v["ActiveArea"])
    lo, hi = bins("ActiveArea4vec_m")
    scale = 0.29 * v["ActiveArea4vec_pt"]
    lognormal = lambda x, s, sigma: np.where(x > 0, _phi(np.log(np.maximum(x, 1e-300) / s) / sigma), 0.0)  # noqa: E731
    mass["ActiveArea4vec_m"] = lognormal(hi, scale, 0.1) - lognormal(lo, scale, 0.1)
    lo, hi = bins("ActiveArea4vec_eta")
    mass["ActiveArea4vec_eta"] = normal_mass(lo, hi, v["eta"], 0.02)
    lo, hi = bins("ActiveArea4vec_phi")  # phi + N(0, 0.02), wrapped into (-pi, pi]
    lo, hi = np.maximum(lo, -np.pi), np.minimum(hi, np.pi)
    mass["ActiveArea4vec_phi"] = sum(normal_mass(lo, hi, v["phi"] + 2 * np.pi * k, 0.02) for k in (-1, 0, 1)) \
        * (hi > lo)
    lo, hi = bins("AverageLArQF")
    cdf = beta_half_cdf(20)
    mass["AverageLArQF"] = cdf(hi) - cdf(lo)
    lo, hi = bins("LArQuality")
    cdf = beta_half_cdf(12)
    mass["LArQuality"] = cdf(hi) - cdf(lo)
    lo, hi = bins("NegativeE")  # -Exponential(scale 300 MeV * pt / 50 GeV)
    scale = 0.006 * v["pt"]
    mass["NegativeE"] = np.exp(-np.maximum(-hi, 0.0) / scale) - np.exp(-np.maximum(-lo, 0.0) / scale)
    in_hec = (np.abs(v["eta"]) > 1.5) & (np.abs(v["eta"]) < 3.2)
    lo, hi = bins("HECQuality")  # N(0, 0.3) for 5 % of the jets in the HEC, else 0
    at_zero = (lo <= 0) & (0 < hi)
    mass["HECQuality"] = np.where(in_hec, 0.95 * at_zero + 0.05 * normal_mass(lo, hi, 0.0, 0.3), at_zero * 1.0)
    lo, hi = bins("Width")  # clip(0.8 m / pt + N(0, 0.02), 0, 0.4)
    centre = 0.8 * v["m"] / v["pt"]
    mass["Width"] = clipped(lambda x: _phi((x - centre) / 0.02), lo, hi, 0.0, 0.4)
    lo, hi = bins("WidthPhi")  # 0.6 Width LogNormal(0, 0.1)
    scale = 0.6 * v["Width"]
    mass["WidthPhi"] = np.where(scale > 0, lognormal(hi, np.maximum(scale, 1e-300), 0.1)
                                - lognormal(lo, np.maximum(scale, 1e-300), 0.1), (lo <= 0) & (0 < hi))
    lo, hi = _bins(v["CentroidR"], steps["CentroidR"], True)
    theta = 2.0 * np.arctan(np.exp(-v["eta"]))
    centre = np.log(np.clip(1500.0 / np.maximum(np.sin(theta), 0.15), 1200.0, 6000.0))
    mass["CentroidR"] = normal_mass(lo, hi, centre, 0.05)
    lo, hi = bins("DetectorEta")
    mass["DetectorEta"] = normal_mass(lo, hi, v["eta"], 0.005)
    for name, centre, sigma in (("LeadingClusterCenterLambda", math.log(400.0), 0.5),
                                ("LeadingClusterSecondLambda", math.log(3e4), 0.8),
                                ("LeadingClusterSecondR", math.log(2e3), 0.8)):
        lo, hi = _bins(v[name], steps[name], True)
        mass[name] = normal_mass(lo, hi, centre, sigma)
    lo, hi = _bins(v["LeadingClusterPt"], steps["LeadingClusterPt"], True)  # pt * Beta(2, 5)
    mass["LeadingClusterPt"] = beta25_cdf(np.exp(hi) / v["pt"]) - beta25_cdf(np.exp(lo) / v["pt"])
    lo, hi = bins("EMFrac")  # clip(Beta(2, 5) + N(0, 0.02), 0, 1)
    mass["EMFrac"] = clipped(_em_frac_cdf(), lo, hi, 0.0, 1.0)
    lo, hi = bins("HECFrac")  # in the HEC (1 - EMFrac) Uniform(0.3, 0.7), elsewhere |N(0, 0.001)|
    width = 0.4 * (1.0 - v["EMFrac"])
    start = 0.3 * (1.0 - v["EMFrac"])
    uniform = np.where(width > 0, np.clip(np.minimum(hi, start + width) - np.maximum(lo, start), 0, None)
                       / np.maximum(width, 1e-300), (lo <= 0) & (0 < hi))
    half_normal = 2.0 * normal_mass(np.maximum(lo, 0.0), np.maximum(hi, 0.0), 0.0, 0.001)
    mass["HECFrac"] = np.where(in_hec, uniform, half_normal)
    lo, hi = bins("Timing")
    mass["Timing"] = 0.99 * normal_mass(lo, hi, 0.0, 1.2) + 0.01 * normal_mass(lo, hi, 0.0, 15.0)

    def exponential_mass(a, b, scale):
        return np.exp(-np.maximum(a, 0.0) / scale) - np.exp(-np.maximum(b, 0.0) / scale)
    lo, hi = bins("OotFracClusters10")  # 0 for 70 %, else min(Exponential(0.03), 1)
    mass["OotFracClusters10"] = 0.7 * ((lo <= 0) & (0 < hi)) + 0.3 * exponential_mass(lo, hi, 0.03)
    lo, hi = bins("OotFracClusters5")  # OotFracClusters10 + (0 for 50 %, else Exponential(0.03)), capped at 1
    o = v["OotFracClusters10"]
    mass["OotFracClusters5"] = 0.5 * ((lo <= o) & (o < hi)) + 0.5 * exponential_mass(lo - o, hi - o, 0.03)
    return {k: float(-np.log2(np.clip(p, 1e-300, None)).mean()) for k, p in mass.items()}


# -- the coders -----------------------------------------------------------------------------------------

def sz3_bytes(x: np.ndarray, bounds: list[ErrorBound]) -> float | None:
    try:
        from pysz import sz, szConfig, szErrorBoundMode
    except ImportError:
        return None
    total = 0
    for j, b in enumerate(bounds):
        data = x[:, j].astype(np.float64)
        if b.kind == "rel":
            exact = data == 0
            total += 4 * int(exact.sum())  # zeros under a relative bound: kept exactly beside SZ3's stream
            data = np.log(np.abs(np.where(exact, 1.0, data)))
        config = szConfig()
        config.errorBoundMode = szErrorBoundMode.ABS
        config.absErrorBound = math.log1p(b.value) if b.kind == "rel" else b.value
        total += len(sz.compress(data, config)[0])
    return total / len(x)


def column_bits(x: np.ndarray, counts: np.ndarray, bounds: list[ErrorBound]) -> dict[str, float]:
    """Bits per jet of each column in the bounded codec's hand-built code: the estimate its choices use (symbols,
    raw bits and tables; the coded streams add the per-chunk integers and the coder's last words)."""
    names = [b.column for b in bounds]
    codec = Bounded(bounds).bind(names, np.float32)
    q = codec.quantize(x, counts)
    steps, flags, predictor = q["steps"], q["flags"], q["predictor"]
    tokens = predictor.tokens(steps, flags)
    ordered = codec.ordered_choice(q, tokens, counts, predictor)
    out = {}
    for j, name in enumerate(names):
        if j in ordered:
            out[name] = order_statistics.estimated_bits(steps[:, j], counts) / len(x)
            continue
        classes = predictor.classes(steps, j)
        out[name] = learned.coded_bits(tokens[j], q["ranks"] if classes is None else classes, 1.0) / len(x)
    return out


def codec_bytes(x: np.ndarray, counts: np.ndarray, bounds: list[ErrorBound], model=None) -> float:
    """Bytes per jet of the bounded codec's streams on one chunk; every value checked against its bound."""
    names = [b.column for b in bounds]
    codec = Bounded(bounds, entropy_model=model).bind(names, np.float32)
    streams = codec.encode(x, counts)
    decoded = codec.decode(streams, counts)
    for j, b in enumerate(bounds):
        error = np.abs(decoded[:, j].astype(np.float64) - x[:, j])
        assert (error <= b.value * (np.abs(x[:, j].astype(np.float64)) if b.kind == "rel" else 1.0)).all(), b
    return sum(len(s) for s in streams.values()) / len(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--features", default="4d,27d", help="4d, 27d or both")
    parser.add_argument("--events", type=int, default=20_000, help="events of each sample (~2.6 jets each)")
    parser.add_argument("--bounds", default="1e-2,1e-3,1e-4")
    parser.add_argument("--train-seed", type=int, default=1)
    parser.add_argument("--seed", type=int, default=2, help="seed of the sample reported on")
    parser.add_argument("--iterations", type=int, default=400, help="of the entropy model's training")
    parser.add_argument("--json-out", default="generated_limit.json")
    args = parser.parse_args()
    rows = []
    for features in args.features.split(","):
        featureset = load_featureset(f"atlas-jets-{features}")
        columns = [c for c in featureset.columns if c.name != "N90Constituents"]
        names = [c.name for c in columns]
        kinds = ["rel" if c.residual == "relative" else "abs" for c in columns]
        train, train_counts = generate(args.events, args.train_seed, features == "27d")
        jets, counts = generate(args.events, args.seed, features == "27d")
        train_x = np.column_stack([train[n] for n in names])
        x = np.column_stack([jets[n] for n in names])
        started = time.perf_counter()
        model = fit_entropy_model(train_x, train_counts, [ErrorBound(n, k, 1e-3) for n, k in zip(names, kinds)],
                                  iterations=args.iterations)
        training_seconds = time.perf_counter() - started
        for bound in (float(b) for b in args.bounds.split(",")):
            bounds = [ErrorBound(n, k, bound) for n, k in zip(names, kinds)]
            margin = Bounded(bounds).bind(names, np.float32).margin
            steps = {b.column: quantization_step(b.kind, b.value, margin) for b in bounds}
            limit = limit_bits(jets, counts, steps, {n: k == "rel" for n, k in zip(names, kinds)})
            order0 = sum(entropy.entropy_bits(_steps(x[:, j], steps[n], k == "rel"))
                         for j, (n, k) in enumerate(zip(names, kinds))) / len(x)
            hand, with_model = codec_bytes(x, counts, bounds), codec_bytes(x, counts, bounds, model)
            per_column = column_bits(x, counts, bounds)
            row = {"features": features, "bound": bound, "jets": len(x), "events": args.events,
                   "train_seed": args.train_seed, "seed": args.seed, "limit": sum(limit.values()) / 8,
                   "order0": order0 / 8, "sz3": sz3_bytes(x, bounds), "hand_built": hand, "learned": with_model,
                   "steps": steps, "model_bytes": model.size, "model_columns": sorted(model.columns),
                   "training_seconds": round(training_seconds, 1),
                   "limit_per_column": {k: b / 8 for k, b in limit.items()},
                   "hand_built_per_column": {k: b / 8 for k, b in per_column.items()}}
            rows.append(row)
            print(f"{features} at {bound:g}: {len(x)} jets of seed {args.seed} (model trained on seed "
                  f"{args.train_seed}, {model.size} bytes, columns {', '.join(row['model_columns']) or 'none'})")
            print(f"  {'':30s} {'B/jet':>8s} {'over limit':>11s}")
            for name, key in (("limit (generator densities)", "limit"), ("order-0 entropy", "order0"),
                              ("SZ3", "sz3"), ("bounded, hand-built", "hand_built"),
                              ("bounded, learned model", "learned")):
                value = row[key]
                if value is None:
                    print(f"  {name:30s} {'(pip install pysz)':>8s}")
                    continue
                print(f"  {name:30s} {value:8.3f} {value / row['limit'] - 1:+10.1%}")
            excess = sorted(((per_column[k] - limit[k], k) for k in limit), reverse=True)[:5]
            print("  hand-built over the limit, bits a jet (estimate; the codec takes ActiveArea4vec_m before _pt, "
                  "the generator after): " + ", ".join(f"{k} {e:+.2f}" for e, k in excess))
    Path(args.json_out).write_text(json.dumps({"rows": rows}, indent=1))
    print(f"wrote {args.json_out}")


if __name__ == "__main__":
    main()
