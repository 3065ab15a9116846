"""Canonical digests of tables: a sha256 per branch that does not depend on how the data were chunked.

The container (checksums of each chunk) and the carry-over of other objects (a digest of each
carried tree) use it, so that any corrupted or edited value is detected.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import awkward as ak
import numpy as np

from hepae.io.branches import BranchSpec


def _canonical_parts(array: ak.Array) -> list[np.ndarray]:
    """Any awkward array as flat numpy parts that do not depend on chunking: per nesting level the list
    lengths (and None masks), then the numbers; parameters (string, record names) are ignored."""
    array = ak.without_parameters(array)
    kind = array.type.content
    if isinstance(kind, (ak.types.ListType, ak.types.RegularType)):
        return [ak.to_numpy(ak.num(array, axis=1)).astype(np.int64), *_canonical_parts(ak.flatten(array, axis=1))]
    if isinstance(kind, ak.types.RecordType):
        return [part for name in array.fields for part in _canonical_parts(array[name])]
    if isinstance(kind, ak.types.OptionType):
        mask = ak.to_numpy(ak.is_none(array, axis=0))
        return [mask.astype(np.uint8), *_canonical_parts(ak.drop_none(array, axis=0))]
    if isinstance(kind, ak.types.NumpyType):
        return [ak.to_numpy(array)]
    if isinstance(kind, ak.types.UnknownType):
        return []
    return [np.frombuffer(json.dumps(ak.to_list(array)).encode(), np.uint8)]  # unions: rare, slow, exact


class TreeHasher:
    """sha256 over every branch of the compressed tree, chunk by chunk, in a canonical form.

    Per branch, one running digest of its values (in the branch's dtype, little-endian, entry order)
    and, if jagged, one of its per-event counts (int64), so the result does not depend on how the
    file was chunked. Compression hashes what it writes and decompression what it reads, so any
    corrupted or edited value, latent or carried over, is detected.
    """

    def __init__(self, specs: list[BranchSpec]) -> None:
        self._specs = specs
        self._values = {s.name: hashlib.sha256() for s in specs}
        self._counts = {s.name: hashlib.sha256() for s in specs if s.jagged}
        self._parts: dict[str, list[Any]] = {s.name: [] for s in specs if not s.numeric}

    def update(self, data: dict[str, object]) -> None:
        for spec in self._specs:
            values = data[spec.name]
            if not spec.numeric:
                digests = self._parts[spec.name]
                for i, part in enumerate(_canonical_parts(ak.Array(values))):
                    if i == len(digests):
                        digests.append(hashlib.sha256())
                    digests[i].update(np.ascontiguousarray(part, dtype=part.dtype.newbyteorder("<")).tobytes())
                continue
            if spec.jagged:
                counts = ak.to_numpy(ak.num(values, axis=1))
                self._counts[spec.name].update(np.ascontiguousarray(counts, dtype="<i8").tobytes())
                values = ak.flatten(values, axis=1)
            array = ak.to_numpy(values) if isinstance(values, ak.Array) else np.asarray(values)
            dtype = np.dtype(spec.numpy_dtype.base).newbyteorder("<")
            self._values[spec.name].update(np.ascontiguousarray(array, dtype=dtype).tobytes())

    def hexdigest(self) -> str:
        total = hashlib.sha256()
        for spec in self._specs:
            counts = self._counts[spec.name].hexdigest() if spec.jagged else ""
            values = self._values[spec.name].hexdigest()
            if not spec.numeric:
                values = ",".join(d.hexdigest() for d in self._parts[spec.name])
            total.update(f"{spec.name}:{counts}:{values};".encode())
        return total.hexdigest()
