"""Where the answer is known: the learned entropy model against the conditional entropy of a generator.

    python benchmarks/known_answer.py                       # train on seed 1, report on seed 2
    python benchmarks/known_answer.py --events 20000 --bounds 1e-2,1e-3

Our jet samples model most detector variables as independent noise, which leaves a joint model little to
find. This generator states how its variables depend on each other, so the best any coder can do is known:
the conditional entropy of each quantized value given everything generated before it, computed from the
generator's own densities (``limit``). Objects come in events of 1 + Poisson(1.5); per object, in coding order:

========  =====  ==============================================================================
pt        rel    20 * exp(E), E exponential with mean 0.7
eta       abs    normal(0, 1.5)
phi       abs    uniform in (-pi, pi]; the second object of an event: the leading one's + pi + normal(0, 0.2),
                 wrapped into (-pi, pi] (back to back)
spread    abs    normal(0, 0.02 * (pt / 20)**0.7): a spread that grows with pt
frac1     abs    beta(2, 5)
frac2     abs    frac1 * uniform(0, 1): a fraction bounded by another
mix       abs    normal(0.6, 0.04) with probability w = 1 / (1 + exp(-3 (|eta| - 1.5))), else normal(0.2, 0.08):
                 a mixture whose weight depends on |eta|
copy      abs    frac1 half of the time, else frac1 + normal(0, 0.05): equal to another one half of the time
========  =====  ==============================================================================

The limit conditions on the exact earlier values (the codec sees them quantized: at these bounds the
difference is far below a percent). Rows: the order-0 entropy of the quantized values (a limit for coders of
independent values), SZ3 (``pip install pysz``; on log|x| for the relative column), hepae's ``bounded`` codec
with its hand-built parts, and with a learned entropy model trained on another seed. Bytes per object of the
codec's streams on one chunk of all objects (tables included; the model's own bytes beside it).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
from generated_limit import sz3_bytes  # the script beside this one

from hepae.codecs import entropy
from hepae.codecs.bounded import Bounded
from hepae.codecs.bounds import ErrorBound, quantization_step
from hepae.entropy_models import fit_entropy_model

COLUMNS = ["pt", "eta", "phi", "spread", "frac1", "frac2", "mix", "copy"]
KINDS = ["rel"] + ["abs"] * 7


def generate(n_events: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(values (n, 8) float32, objects per event)`` of the generator in this module's description."""
    rng = np.random.default_rng(seed)
    counts = 1 + rng.poisson(1.5, n_events)
    n = int(counts.sum())
    first = np.repeat(np.cumsum(counts) - counts, counts)
    rank = np.arange(n) - first
    pt = 20.0 * np.exp(rng.exponential(0.7, n))
    eta = rng.normal(0.0, 1.5, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    second = rank == 1
    phi[second] = np.angle(np.exp(1j * (phi[first[second]] + np.pi + rng.normal(0.0, 0.2, int(second.sum())))))
    spread = rng.normal(0.0, 1.0, n) * 0.02 * (pt / 20.0) ** 0.7
    frac1 = rng.beta(2.0, 5.0, n)
    frac2 = frac1 * rng.uniform(0.0, 1.0, n)
    w = 1.0 / (1.0 + np.exp(-3.0 * (np.abs(eta) - 1.5)))
    mix = np.where(rng.uniform(size=n) < w, rng.normal(0.6, 0.04, n), rng.normal(0.2, 0.08, n))
    copy = np.where(rng.uniform(size=n) < 0.5, frac1, frac1 + rng.normal(0.0, 0.05, n))
    return np.column_stack([pt, eta, phi, spread, frac1, frac2, mix, copy]).astype(np.float32), counts


_erf = np.frompyfunc(math.erf, 1, 1)


def _normal_cdf(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + _erf(np.asarray(z, np.float64) / math.sqrt(2.0)).astype(np.float64))


def _normal_mass(lo: np.ndarray, hi: np.ndarray, mean: np.ndarray | float, sigma: np.ndarray | float) -> np.ndarray:
    return _normal_cdf((hi - mean) / sigma) - _normal_cdf((lo - mean) / sigma)


def _overlap(lo: np.ndarray, hi: np.ndarray, a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    return np.clip(np.minimum(hi, b) - np.maximum(lo, a), 0.0, None)


def _beta25_cdf(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return 1.0 - (1.0 - x) ** 6 - 6.0 * x * (1.0 - x) ** 5


def limit_bits(x: np.ndarray, counts: np.ndarray, steps: list[float]) -> np.ndarray:
    """Per column, the mean bits of each quantized value given the exact earlier ones (the generator's
    densities integrated over the value's quantization bin; bins are multiples of the step, of log|x| for pt)."""
    v = x.astype(np.float64)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    rank = np.arange(len(v)) - first

    def bin_of(j: int) -> tuple[np.ndarray, np.ndarray]:
        t = np.log(v[:, j]) if j == 0 else v[:, j]
        k = np.rint(t / steps[j])
        return (k - 0.5) * steps[j], (k + 0.5) * steps[j]

    p = np.zeros_like(v)
    lo, hi = bin_of(0)
    exponential = np.exp(-np.clip(np.stack([lo, hi]) - math.log(20.0), 0, None) / 0.7)  # survival at the edges
    p[:, 0] = exponential[0] - exponential[1]
    lo, hi = bin_of(1)
    p[:, 1] = _normal_mass(lo, hi, 0.0, 1.5)
    lo, hi = bin_of(2)
    uniform = _overlap(lo, hi, -np.pi, np.pi) / (2 * np.pi)
    centre = np.angle(np.exp(1j * (v[first, 2] + np.pi)))
    wrapped = sum(_normal_mass(lo, hi, centre + 2 * np.pi * k, 0.2) for k in (-1, 0, 1))
    p[:, 2] = np.where(rank == 1, wrapped, uniform)
    lo, hi = bin_of(3)
    p[:, 3] = _normal_mass(lo, hi, 0.0, 0.02 * (v[:, 0] / 20.0) ** 0.7)
    lo, hi = bin_of(4)
    p[:, 4] = _beta25_cdf(hi) - _beta25_cdf(lo)
    lo, hi = bin_of(5)
    p[:, 5] = _overlap(lo, hi, 0.0, v[:, 4]) / v[:, 4]
    lo, hi = bin_of(6)
    w = 1.0 / (1.0 + np.exp(-3.0 * (np.abs(v[:, 1]) - 1.5)))
    p[:, 6] = w * _normal_mass(lo, hi, 0.6, 0.04) + (1 - w) * _normal_mass(lo, hi, 0.2, 0.08)
    lo, hi = bin_of(7)
    p[:, 7] = 0.5 * ((lo <= v[:, 4]) & (v[:, 4] < hi)) + 0.5 * _normal_mass(lo, hi, v[:, 4], 0.05)
    return -np.log2(np.clip(p, 1e-300, None)).mean(axis=0)


def _codec_bytes(x: np.ndarray, counts: np.ndarray, bounds: list[ErrorBound], model=None) -> tuple[float, float]:
    codec = Bounded(bounds, entropy_model=model).bind(COLUMNS, np.float32)
    started = time.perf_counter()
    streams = codec.encode(x, counts)
    decoded = codec.decode(streams, counts)
    for j, b in enumerate(bounds):  # every value within its bound
        error = np.abs(decoded[:, j].astype(np.float64) - x[:, j])
        assert (error <= b.value * (np.abs(x[:, j].astype(np.float64)) if b.kind == "rel" else 1.0)).all(), b
    return sum(len(s) for s in streams.values()) / len(x), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=40_000, help="events of each sample (~2.5 objects each)")
    parser.add_argument("--bounds", default="1e-2,1e-3")
    parser.add_argument("--train-seed", type=int, default=1)
    parser.add_argument("--seed", type=int, default=2, help="seed of the sample reported on")
    parser.add_argument("--iterations", type=int, default=400)
    parser.add_argument("--json-out", default="known_answer.json")
    args = parser.parse_args()
    train_x, train_counts = generate(args.events, args.train_seed)
    x, counts = generate(args.events, args.seed)
    rows = []
    for bound in (float(b) for b in args.bounds.split(",")):
        bounds = [ErrorBound(c, k, bound) for c, k in zip(COLUMNS, KINDS)]
        margin = Bounded(bounds).bind(COLUMNS, np.float32).margin
        steps = [quantization_step(b.kind, b.value, margin) for b in bounds]
        started = time.perf_counter()
        model = fit_entropy_model(train_x, train_counts, bounds, iterations=args.iterations)
        training_seconds = time.perf_counter() - started
        limit = limit_bits(x, counts, steps)
        order0 = [entropy.entropy_bits(np.rint((np.log(x[:, j]) if j == 0 else x[:, j].astype(np.float64)) / steps[j]))
                  / len(x) for j in range(len(COLUMNS))]
        hand, hand_seconds = _codec_bytes(x, counts, bounds)
        mine, mine_seconds = _codec_bytes(x, counts, bounds, model)
        row = {"bound": bound, "objects": len(x), "limit": float(limit.sum()) / 8, "order0": sum(order0) / 8,
               "sz3": sz3_bytes(x, bounds), "hand_built": hand, "learned": mine, "model_bytes": model.size,
               "model_columns": sorted(model.columns), "training_seconds": round(training_seconds, 1),
               "limit_per_column": dict(zip(COLUMNS, (float(b) / 8 for b in limit))),
               "seconds": {"hand_built": round(hand_seconds, 2), "learned": round(mine_seconds, 2)}}
        rows.append(row)
        print(f"bound {bound:g}: {len(x)} objects (trained on seed {args.train_seed}, reported on seed {args.seed})")
        print(f"  {'':28s} {'B/object':>9s} {'over limit':>11s}")
        for name, key in (("limit (generator densities)", "limit"), ("order-0 entropy", "order0"), ("SZ3", "sz3"),
                          ("bounded, hand-built", "hand_built"), ("bounded, learned model", "learned")):
            value = row[key]
            if value is None:
                print(f"  {name:28s} {'(pip install pysz)':>9s}")
                continue
            print(f"  {name:28s} {value:9.3f} {value / row['limit'] - 1:+10.1%}")
        print(f"  model: {model.size} bytes, columns {', '.join(row['model_columns'])}, trained in "
              f"{training_seconds:.0f} s")
    Path(args.json_out).write_text(json.dumps({"rows": rows}, indent=1))
    print(f"wrote {args.json_out}")


if __name__ == "__main__":
    main()
