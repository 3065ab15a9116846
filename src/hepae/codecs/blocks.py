"""Elementwise work in blocks: the codecs' per-value arithmetic on cache-sized slices.

A chunk holds up to millions of values per column, and each step of the codecs' numpy arithmetic makes
a temporary array of that length. Done on the whole column at once, every one of those passes goes
through main memory; done on slices of :data:`BLOCK` values, the temporaries stay in the processor's
cache and are reused, which made quantizing 2-4x faster here (the integer work has compiled loops,
:mod:`hepae.codecs.kernels`). The result is the same value for value: only functions that treat each value
on its own are applied this way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

BLOCK = 1 << 15
"""Values per block: a few float64 temporaries of this length fit in a core's L2 cache."""


def blocks(n: int, size: int = BLOCK) -> Iterator[slice]:
    """Slices of ``size`` positions covering ``range(n)``, in order."""
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def blockwise(function: Callable[..., tuple[np.ndarray, ...]], n: int, arrays: dict[str, object],
              dtypes: tuple[np.dtype | type, ...]) -> tuple[np.ndarray, ...]:
    """``function(**arrays)`` for an elementwise ``function`` of ``n`` values, computed block by block.

    ``arrays`` maps keyword to argument: arguments with a first dimension of ``n`` are sliced, anything
    else (scalars, None, shorter arrays) is passed whole. ``function`` returns a tuple of 1-D arrays,
    one per dtype of ``dtypes``.
    """
    if n <= BLOCK:
        return function(**arrays)
    sliced = {k: np.ndim(v) >= 1 and len(v) == n for k, v in arrays.items()}  # type: ignore[arg-type]
    out = tuple(np.empty(n, dtype=d) for d in dtypes)
    for part in blocks(n):
        results = function(**{k: v[part] if sliced[k] else v for k, v in arrays.items()})  # type: ignore[index]
        for target, result in zip(out, results):
            target[part] = result
    return out
