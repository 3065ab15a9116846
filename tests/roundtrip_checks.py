"""Assertions shared by the round-trip tests: structure and carried-over branches identical, the same values
decoded everywhere."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

DECODE = """
import sys
{block}
import awkward as ak, hashlib, hepae, uproot
hepae.decompress(sys.argv[1], sys.argv[2], overwrite=True, progress=False)
with uproot.open(sys.argv[2]) as f:
    arrays = f[sys.argv[3]].arrays(library="ak", how=dict)
digest = hashlib.sha256(b"".join(ak.to_numpy(ak.flatten(arrays[k], axis=None)).tobytes() for k in sorted(arrays)))
print(digest.hexdigest())
"""
BLOCK_TORCH = "import builtins\n_real = builtins.__import__\n" \
    "def _no_torch(name, *a, **k):\n    if name == 'torch' or name.startswith('torch.'):\n" \
    "        raise ImportError('torch is not installed here')\n    return _real(name, *a, **k)\n" \
    "builtins.__import__ = _no_torch"


def decoded_digests(compressed: Path, work: Path, tree: str = "CollectionTree") -> set[str]:
    """SHA-256 of every branch of ``tree`` decoded from ``compressed`` in fresh processes: with 1 and with 2
    threads, and with 2 threads where importing torch fails. One digest: the same values everywhere."""
    digests = set()
    for threads, block in (("1", ""), ("2", ""), ("2", BLOCK_TORCH)):  # hepae's kernels are serial; numpy's BLAS
        env = {**os.environ, **{v: threads for v in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                     "MKL_NUM_THREADS")}}
        run = subprocess.run([sys.executable, "-c", DECODE.replace("{block}", block), str(compressed),
                              str(work / f"r{threads}{bool(block)}.root"), tree], capture_output=True, text=True,
                             env=env, timeout=600)
        assert run.returncode == 0, run.stderr[-2000:]
        digests.add(run.stdout.split()[0])  # with torch's import failing too: decoding needs no torch
    return digests


def stream_digest(path: Path) -> str:
    """SHA-256 of every coded stream of a compressed file (the ROOT file's own bytes hold a creation time)."""
    with uproot.open(path) as f:
        streams = f["hepae_streams"].arrays(library="ak", how=dict)
    return hashlib.sha256(b"".join(ak.to_numpy(ak.flatten(streams[k], axis=None)).tobytes()
                                   for k in sorted(streams))).hexdigest()


def arrays_identical(a: ak.Array, b: ak.Array) -> bool:
    """Exact equality, NaN == NaN, same jagged structure."""
    if len(a) != len(b):
        return False
    if a.ndim > 1 and not np.array_equal(ak.to_numpy(ak.num(a, axis=1)), ak.to_numpy(ak.num(b, axis=1))):
        return False
    flat_a = ak.to_numpy(ak.flatten(a, axis=None))
    flat_b = ak.to_numpy(ak.flatten(b, axis=None))
    if flat_a.dtype.kind == "f":
        return np.array_equal(flat_a, flat_b, equal_nan=True)
    return np.array_equal(flat_a, flat_b)


def assert_passthrough_identical(original, reconstructed, tree: str, compressed_branches) -> list[str]:
    """Same branch set, same entries; every branch not compressed identical (values, counts, dtype).

    Returns the names of the branches that were compared.
    """
    with uproot.open(original) as fa, uproot.open(reconstructed) as fb:
        ta, tb = fa[tree], fb[tree]
        assert ta.num_entries == tb.num_entries
        assert set(ta.keys()) == set(tb.keys())
        counters = {br.count_branch.name for br in ta.branches if br.count_branch is not None}
        compared = []
        for name in ta.keys():
            if name in compressed_branches:
                continue
            a, b = ta[name].array(library="ak"), tb[name].array(library="ak")
            assert arrays_identical(a, b), f"branch {name} differs"
            if name not in counters:  # uproot writes counters as int32 whatever they were
                assert ta[name].interpretation == tb[name].interpretation, name
            compared.append(name)
        return compared


def rewrite_container(source, target, *, edit_metadata=None, edit_arrays=None, metadata_checksum=True):
    """Copy a compressed file, letting a test edit its metadata or its tree's arrays (an attacker/bit rot).

    The metadata's checksum is recomputed for the edited metadata (a deliberate, consistent edit, so
    that the checks behind it are tested) unless ``metadata_checksum=False`` (then the original one is kept).
    """
    import hashlib
    import json

    from hepae.container.format import METADATA_CHECKSUM_KEY, METADATA_KEY, STREAM_TREE
    from hepae.io.branches import describe_tree
    from hepae.io.writing import TreeWriter

    with uproot.open(source) as f:
        metadata = json.loads(str(f[METADATA_KEY]))
        checksum = str(f[METADATA_CHECKSUM_KEY])
        trees = {}
        for name in {k.split(";")[0] for k, c in f.classnames().items() if c == "TTree"}:
            tree = f[name]
            trees[name] = (describe_tree(tree), tree.arrays(library="ak", how=dict))
    if edit_metadata is not None:
        edit_metadata(metadata)
    if edit_arrays is not None:  # the main tree's arrays, then (if it takes two arguments) the streams
        import inspect

        main, streams = trees[metadata["tree"]][1], trees[STREAM_TREE][1]
        edit_arrays(main, streams) if len(inspect.signature(edit_arrays).parameters) == 2 else edit_arrays(main)
    with uproot.recreate(target) as out:
        for name, (layout, arrays) in trees.items():
            TreeWriter(out, name, layout.branches).extend(arrays)
        text = json.dumps(metadata, sort_keys=True)
        out[METADATA_KEY] = text
        out[METADATA_CHECKSUM_KEY] = hashlib.sha256(text.encode()).hexdigest() if metadata_checksum else checksum
    return target
