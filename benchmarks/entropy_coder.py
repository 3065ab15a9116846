"""Speed and size of hepae's entropy coder (tokens + tables + constriction's ANS) on integer streams.

    python benchmarks/entropy_coder.py                     # 2 M symbols per stream kind
    python benchmarks/entropy_coder.py --symbols 500000 --json-out entropy.json

Streams like the ``ae`` codec's: residual steps (Laplace-like, zigzag-folded), quantized latents
(Gaussian), a peaked stream that one value dominates, and a stream coded with classes (a table per
class). Baseline, measured in the same run on the same values: zstd (level 5, the output files'
default) of the values' byte planes, the way the ``truncate`` codec stores integers. Also the
order-0 entropy of each stream, the size an ideal static coder would reach. Speeds are the fastest
of ``--repeat`` rounds (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import cramjam
import numpy as np

from hepae.codecs import entropy
from hepae.codecs.residual_prediction import zigzag


def streams(n: int, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """Name -> (values, classes or None)."""
    rng = np.random.default_rng(seed)
    classes = rng.integers(0, 3, n)
    return {
        "residual steps (Laplace, b=3)": (zigzag(np.rint(rng.laplace(0, 3, n)).astype(np.int64)), None),
        "latent steps (normal, sigma=40)": (zigzag(np.rint(rng.normal(0, 40, n)).astype(np.int64)), None),
        "peaked (90 % zeros)": (np.where(rng.random(n) < 0.9, 0, rng.geometric(0.3, n)).astype(np.uint64), None),
        "3 classes (widths 1, 8, 64)": (zigzag(np.rint(rng.laplace(0, np.array([1.0, 8.0, 64.0])[classes]))
                                              .astype(np.int64)), classes),
    }


def fastest(function: Callable[[], object], repeat: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - started)
    return best, result


def zstd_planes(values: np.ndarray) -> int:
    """Bytes of zstd level 5 over the values' byte planes (as many planes as the largest value needs)."""
    n_bytes = max(1, int(values.max()).bit_length() + 7 >> 3) if len(values) else 1
    planes = np.stack([((values >> np.uint64(8 * k)) & np.uint64(0xFF)).astype(np.uint8) for k in range(n_bytes)])
    return len(cramjam.zstd.compress(planes.tobytes(), level=5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json-out", default="entropy_coder.json")
    args = parser.parse_args()
    rows = []
    for name, (values, classes) in streams(args.symbols, args.seed).items():
        class_list = [classes] if classes is not None else None
        t_encode, coded = fastest(lambda: entropy.encode_streams([values], class_list), args.repeat)
        t_decode, back = fastest(lambda: entropy.decode_streams(coded, class_list), args.repeat)
        assert np.array_equal(back[0], values)
        t_zstd, zstd_bytes = fastest(lambda: zstd_planes(values), args.repeat)
        limit = (sum(entropy.entropy_bits(values[classes == c]) for c in np.unique(classes)) if classes is not None
                 else entropy.entropy_bits(values)) / 8
        rows.append({"stream": name, "symbols": len(values), "hepae_bytes": int(len(coded)),
                     "zstd_planes_bytes": zstd_bytes, "entropy_limit_bytes": round(limit),
                     "hepae_vs_limit": round(len(coded) / limit, 4), "hepae_vs_zstd": round(len(coded) / zstd_bytes, 4),
                     "encode_msym_s": round(len(values) / t_encode / 1e6, 2),
                     "decode_msym_s": round(len(values) / t_decode / 1e6, 2),
                     "zstd_msym_s": round(len(values) / t_zstd / 1e6, 2)})
    header = (f"{'stream':<34}{'bytes':>10}{'/limit':>8}{'/zstd':>7}{'enc Msym/s':>12}{'dec Msym/s':>12}"
              f"{'zstd Msym/s':>13}")
    print(f"{args.symbols} symbols per stream; fastest of {args.repeat} rounds")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['stream']:<34}{r['hepae_bytes']:>10}{r['hepae_vs_limit']:>8.3f}{r['hepae_vs_zstd']:>7.3f}"
              f"{r['encode_msym_s']:>12.2f}{r['decode_msym_s']:>12.2f}{r['zstd_msym_s']:>13.2f}")
    with open(args.json_out, "w") as handle:
        json.dump({"symbols": args.symbols, "repeat": args.repeat, "rows": rows}, handle, indent=1)
    print(f"wrote {args.json_out}")


if __name__ == "__main__":
    main()
