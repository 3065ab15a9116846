"""What experiments do today, for comparison: a table rewritten as ROOT writes it (lossless), or with every
lossy branch's mantissa truncated to the precision of its rule (NanoAOD-style), then ZSTD or LZMA.

CMS NanoAOD stores each float with a fixed number of mantissa bits and lets the file's compression do the
rest; that is the baseline a precision profile has to beat at the same guaranteed precision:

* ``rel:B`` (and ``bits:N``): the fewest mantissa bits N with ``2**-(N+1) <= B`` (rounding to nearest keeps
  ``|error| <= 2**-(N+1) |x|``);
* ``abs:B``: the fewest bits that keep ``|error| <= B`` for the largest ``|x|`` of the chunk
  (``max|x| 2**-(N+1) <= B``), a fixed precision per branch and chunk, as NanoAOD fixes it per branch.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import warnings
from os import PathLike
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot

from hepae.codecs import ErrorBound, truncate_mantissa
from hepae.io.carryover import copy_objects, plan_carryover, write_class_samples
from hepae.io.sources import CSV_SUFFIXES, DEFAULT_STEP_SIZE, default_table, open_root, open_source
from hepae.io.writing import atomic_output, declare_classes, make_writer, parse_compression

_MANTISSA = {np.dtype("float32"): 23, np.dtype("float64"): 52}


def truncation_bits(bound: ErrorBound, values: np.ndarray) -> int:
    """The fewest mantissa bits that keep every one of ``values`` within ``bound`` when rounded to them."""
    limit = _MANTISSA[np.dtype(values.dtype)]
    if bound.kind == "rel":
        return min(limit, max(1, math.ceil(-math.log2(bound.value)) - 1))
    finite = np.abs(values[np.isfinite(values)].astype(np.float64))
    largest = float(finite.max(initial=0.0))
    if largest <= bound.value:
        return 1
    return min(limit, max(1, math.ceil(math.log2(largest / bound.value)) - 1))


def _truncated(values: Any, bound: ErrorBound) -> Any:
    jagged = isinstance(values, ak.Array) and values.ndim > 1
    flat = ak.to_numpy(ak.flatten(values, axis=1)) if jagged else np.asarray(ak.to_numpy(values))
    out = truncate_mantissa(flat, truncation_bits(bound, flat)).astype(flat.dtype)
    return ak.unflatten(out, ak.num(values, axis=1)) if jagged else out


def rewrite(input: str | PathLike[str], output: str | PathLike[str], *, table: str | None = None,
            truncate: dict[str, ErrorBound] | None = None, compression: str = "zstd:5",
            step_size: int | str = DEFAULT_STEP_SIZE, overwrite: bool = False, carry: bool = False) -> dict[str, Any]:
    """Write ``input``'s ``table`` (default: its main one) to ``output`` as uproot writes it, the branches
    of ``truncate`` (name -> bound) mantissa-truncated to their bound (see the module docstring). Branches
    uproot cannot write are left out. With ``carry``, the file's other objects are copied too, as
    ``hepae compress --drop-unsupported`` carries them (so that whole files compare); else only the table.

    Returns ``{"output", "output_bytes", "seconds", "truncated_branches"}``.
    """
    started = time.perf_counter()
    input, output = Path(input), Path(output)
    truncate = dict(truncate or {})
    table = default_table(input) if table is None else table
    with contextlib.ExitStack() as stack:
        source = stack.enter_context(open_source(input, table))
        tmp = stack.enter_context(atomic_output(output, overwrite=overwrite, inputs=[input]))
        directory, carried = None, []
        if carry and input.suffix.lower() not in CSV_SUFFIXES:
            directory = stack.enter_context(open_root(input))
            with warnings.catch_warnings():  # what cannot be carried is left out, as hepae leaves it out
                warnings.simplefilter("ignore", UserWarning)
                carried, _ = plan_carryover(directory, input, {table}, drop_unsupported=True)
        specs = source.layout.branches
        with uproot.recreate(tmp, compression=parse_compression(compression)) as file:
            if carried:
                declare_classes(file, write_class_samples(directory, carried, input))
            writer = make_writer(file, source.storage, source.name, specs, title=source.title)
            for chunk in source.iterate([s.name for s in specs], step_size):
                writer.extend({name: _truncated(values, truncate[name]) if name in truncate else values
                               for name, values in chunk.items()})
            if carried:
                copy_objects(directory, file, carried, input, step_size=step_size)
    return {"output": str(output), "output_bytes": os.path.getsize(output),
            "seconds": round(time.perf_counter() - started, 3), "truncated_branches": len(truncate)}
