"""Compression on worker threads (hepae.io.parallel_compression): the same file, written faster.

hepae's writers hand uproot a compression object that compresses a chunk's baskets ahead, on other
threads. What it must never change: the bytes of any basket, the ``fCompress`` codes, the values read back.
"""

import awkward as ak
import numpy as np
import pytest
import uproot

from hepae.io.branches import BranchSpec
from hepae.io.parallel_compression import CompressionAhead, parallel_compression, set_compression_threads
from hepae.io.writing import TreeWriter, parse_compression

SPECS = [
    BranchSpec("event", "uint64"),
    BranchSpec("Jet_pt", "float32", "nJet"),
    BranchSpec("flag", "bool"),
    BranchSpec("Jet_id", "int32", "nJet"),
    BranchSpec("Mu_pt", "float64", "nMu"),
    BranchSpec("fixed", "(3,)float32"),
    BranchSpec("a_branch_name_longer_than_255_bytes_" + "x" * 240, "float32", "nJet"),
]


def _chunk(seed: int, n_events: int) -> dict:
    rng = np.random.default_rng(seed)
    n_jet, n_mu = rng.integers(0, 6, n_events), rng.integers(0, 3, n_events)
    jet_pt = ak.unflatten(np.round(rng.exponential(50, n_jet.sum()), 1).astype(np.float32), n_jet)
    return {
        "event": np.arange(n_events, dtype=np.uint64) + seed * n_events,
        "Jet_pt": jet_pt,
        "flag": rng.random(n_events) < 0.5,
        "Jet_id": ak.unflatten(rng.integers(-5, 5, n_jet.sum()).astype(np.int32), n_jet),
        "Mu_pt": ak.unflatten(rng.exponential(20, n_mu.sum()), n_mu),
        "fixed": rng.normal(size=(n_events, 3)).astype(np.float32),
        SPECS[-1].name: jet_pt * 2,
    }


def _write(path, compression, chunks, tree="dir/Events"):
    with uproot.recreate(path, compression=compression) as file:
        writer = TreeWriter(file, tree, SPECS)
        for chunk in chunks:
            writer.extend(chunk)
    return compression


def _baskets(path, tree="dir/Events"):
    """Each branch's compressed baskets as stored (the bytes after each basket's key), the arrays, fCompress."""
    raw = path.read_bytes()
    with uproot.open(path) as file:
        t = file[tree]
        stored = {}
        for branch in t.branches:
            seeks, sizes = branch.member("fBasketSeek"), branch.member("fBasketBytes")
            stored[branch.name] = []
            for i in range(branch.num_baskets):
                key_length = int.from_bytes(raw[seeks[i] + 14:seeks[i] + 16], "big")  # after fNbytes..fDatime
                stored[branch.name].append(raw[seeks[i] + key_length:seeks[i] + sizes[i]])
        return stored, t.arrays(library="ak"), file.file.fCompress


@pytest.mark.parametrize("spec", ["zstd:5", "zlib:4", "lzma:2", "lz4:4"])
def test_every_basket_is_compressed_ahead_and_the_file_reads_the_same(tmp_path, spec):
    chunks = [_chunk(seed, 3000) for seed in range(3)]
    plain = _write(tmp_path / "plain.root", parse_compression(spec), chunks)
    ahead = _write(tmp_path / "ahead.root", parse_compression(spec, threads=True), chunks)
    if not isinstance(ahead, CompressionAhead):
        pytest.skip("a single-core process writes without worker threads")
    # 7 branches + 2 counters per chunk: every basket came from a worker (uproot's own objects did not)
    assert ahead.compressed_ahead == 9 * len(chunks)
    baskets_plain, arrays_plain, code_plain = _baskets(tmp_path / "plain.root")
    baskets_ahead, arrays_ahead, code_ahead = _baskets(tmp_path / "ahead.root")
    assert code_ahead == code_plain == plain.code
    assert baskets_ahead == baskets_plain
    assert ak.array_equal(arrays_ahead, arrays_plain)
    assert ak.array_equal(arrays_ahead["Jet_pt"], ak.concatenate([c["Jet_pt"] for c in chunks]))


def test_bytes_not_foreseen_are_compressed_where_asked():
    ahead = parallel_compression(uproot.ZSTD(5))
    if not isinstance(ahead, CompressionAhead):
        pytest.skip("a single-core process writes without worker threads")
    foreseen, other = b"foreseen " * 1000, b"something else " * 1000
    ahead.compress_ahead([foreseen, b"never asked for " * 100])
    assert ahead.compress(other) == uproot.ZSTD(5).compress(other)  # a wrong guess costs time, not bytes
    assert ahead.compress(foreseen) == uproot.ZSTD(5).compress(foreseen)
    assert (ahead.compressed_ahead, ahead.compressed_here) == (1, 1)
    ahead.finish()
    assert ahead.compress(foreseen) == uproot.ZSTD(5).compress(foreseen)  # forgotten after the chunk
    assert ahead.compressed_here == 2


def test_same_algorithm_level_and_code_as_uproot_object():
    for plain in (uproot.ZSTD(5), uproot.ZLIB(1), uproot.LZMA(9), uproot.LZ4(4)):
        ahead = parallel_compression(plain)
        assert ahead == plain and ahead.code == plain.code and ahead.name == plain.name
    assert parallel_compression(None) is None
    assert parse_compression("none", threads=True) is None


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_a_forked_child_writes_with_its_own_threads(tmp_path):
    import multiprocessing

    chunks = [_chunk(1, 500)]
    _write(tmp_path / "parent.root", parse_compression("zstd:5", threads=True), chunks)  # the parent's pool exists
    context = multiprocessing.get_context("fork")
    child = context.Process(target=_write, args=(tmp_path / "child.root", parse_compression("zstd:5", threads=True),
                                                 chunks))
    child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
    assert child.exitcode == 0  # with the parent's pool it would wait for threads that do not exist
    assert _baskets(tmp_path / "child.root")[0] == _baskets(tmp_path / "parent.root")[0]


def test_a_process_told_to_use_no_threads_writes_as_uproot_does(tmp_path):
    try:
        set_compression_threads(0)  # what a Dask worker running one task per core sets
        assert type(parse_compression("zstd:5", threads=True)) is uproot.ZSTD
        _write(tmp_path / "serial.root", parse_compression("zstd:5", threads=True), [_chunk(1, 500)])
    finally:
        set_compression_threads(None)
    with pytest.raises(ValueError, match=">= 0"):
        set_compression_threads(-1)
    ahead = parse_compression("zstd:5", threads=True)
    _write(tmp_path / "ahead.root", ahead, [_chunk(1, 500)])
    if isinstance(ahead, CompressionAhead):
        assert ahead.compressed_ahead == 9
    assert _baskets(tmp_path / "serial.root")[0] == _baskets(tmp_path / "ahead.root")[0]


def test_arrays_handed_to_compress_are_compressed_where_asked():
    ahead = parallel_compression(uproot.ZSTD(5))
    if not isinstance(ahead, CompressionAhead):
        pytest.skip("a single-core process writes without worker threads")
    page = np.arange(1000, dtype=np.float32)  # uproot's RNTuple writer hands over arrays, not bytes
    ahead.compress_ahead([page.tobytes()])
    assert ahead.compress(page) == uproot.ZSTD(5).compress(page)
    assert ahead.compressed_here == 1
