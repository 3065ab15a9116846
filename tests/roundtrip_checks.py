"""Assertions shared by the round-trip tests: structure and carried-over branches identical."""

from __future__ import annotations

import awkward as ak
import numpy as np
import uproot


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
