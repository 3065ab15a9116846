"""ROOT compression on worker threads: a chunk's baskets are compressed ahead, while uproot writes them.

uproot writes a TTree chunk one basket after another and compresses each one (ZSTD, ZLIB, LZMA or LZ4)
on the calling thread. Compressing is most of the time of writing (1.7 of 2.3 s when a 300k-event file
is decompressed) and runs outside the GIL, so it can run on other cores. :class:`TreeWriter
<hepae.io.writing.TreeWriter>` knows the bytes of every basket of a chunk before uproot asks for them:
:func:`parallel_compression` gives an uproot compression object that, once told those bytes
(:meth:`CompressionAhead.compress_ahead`), compresses them on worker threads, a few baskets ahead of
uproot, and hands uproot the result when uproot asks for the same bytes.

The output is the same file as uproot's own: the same algorithm and level, the same compressed bytes of
each basket (the same library call, on another thread), the same ``fCompress`` code. A basket whose bytes
were not foreseen (another uproot version's layout, an object other than a basket) is compressed where
uproot asks, as without this module: predicting wrong costs time, never correctness, because a result is
only handed out for bytes equal to those it was computed from.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import uproot

_ROOT_BLOCK = 2**24 - 1
"""The largest block of one ROOT compression header; uproot splits longer baskets into such blocks."""

_pools: dict[int, ThreadPoolExecutor] = {}
_pool_lock = threading.Lock()
_threads: int | None = None  # None: one per core, at most 8 (set_compression_threads)


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system says, else the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def set_compression_threads(threads: int | None) -> None:
    """How many threads compress in this process: ``None`` one per core (at most 8, the default), ``0`` or
    ``1`` none: the calling thread compresses, as uproot does (a Dask worker that runs one single-threaded
    task per core). Applies to the outputs opened after the call; those being written go on as they were."""
    global _threads
    if threads is not None and threads < 0:
        raise ValueError(f"compression threads must be >= 0 or None, not {threads}")
    _threads = threads


def _thread_count() -> int:
    return min(available_cores(), 8) if _threads is None else _threads


def _shared_pool() -> ThreadPoolExecutor:
    """The process's pool of compression threads of the count in force (:func:`set_compression_threads`)."""
    workers = max(_thread_count(), 1)
    with _pool_lock:
        if workers not in _pools:
            _pools[workers] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hepae-compress")
        return _pools[workers]


def _forget_pools_in_child() -> None:
    """A forked child has none of its parent's threads: it makes its own pools (the parent's would never run)."""
    global _pools, _pool_lock
    _pools, _pool_lock = {}, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools_in_child)


class CompressionAhead:
    """Mixin for uproot's compression classes: compress foreseen baskets on worker threads.

    Call :meth:`compress_ahead` with the bytes uproot will compress, in the order it will ask for them,
    before a chunk is written, and :meth:`finish` after it; :meth:`compress` (which uproot calls for every
    block it writes) returns a worker's result for bytes equal to a foreseen block and compresses anything
    else itself. At most ``window`` blocks are in flight or waiting, so memory stays a few baskets.
    """

    window: int = 4
    compressed_ahead: int = 0
    """Blocks handed out from a worker's result since this object was made."""
    compressed_here: int = 0
    """Blocks compressed on the calling thread (not foreseen: uproot's other objects, or a layout not known)."""

    def compress_ahead(self, blocks: Iterable[bytes]) -> None:
        """Start compressing ``blocks`` (an iterable, read lazily as results are taken) on worker threads."""
        self.finish()
        if self.level == 0:  # type: ignore[attr-defined]  # uproot stores level 0 uncompressed, never asking
            return
        self._source: Iterator[bytes] | None = _root_blocks(blocks)
        self._pending: list[tuple[bytes, Future[bytes]]] = []
        self._top_up()

    def finish(self) -> None:
        """Forget the foreseen blocks that were not asked for (their work is cancelled or dropped)."""
        for _, future in getattr(self, "_pending", ()):
            future.cancel()
        self._pending, self._source = [], None

    def compress(self, data: bytes) -> bytes:
        """The compressed ``data``: a worker's result if ``data`` was foreseen, else compressed here."""
        for index, (block, future) in enumerate(getattr(self, "_pending", ())):
            if isinstance(data, bytes) and len(block) == len(data) and block == data:  # RNTuple pages are arrays
                del self._pending[index]
                self._top_up()
                self.compressed_ahead += 1
                return future.result()
        self.compressed_here += 1
        return super().compress(data)  # type: ignore[misc]

    def _top_up(self) -> None:
        pool = _shared_pool()
        compress = super().compress  # type: ignore[misc]
        while self._source is not None and len(self._pending) < self.window:
            block = next(self._source, None)
            if block is None:
                self._source = None
                break
            self._pending.append((block, pool.submit(compress, block)))

    @property
    def code_pair(self) -> tuple[int, int]:
        """The ``fCompress`` pair of the uproot class this one extends (uproot only knows its own classes)."""
        return _UPROOT_CLASS[type(self)](self.level).code_pair  # type: ignore[attr-defined]


def _root_blocks(baskets: Iterable[bytes]) -> Iterator[bytes]:
    """The blocks uproot compresses one by one: each basket, cut in pieces of at most 2**24 - 1 bytes."""
    for basket in baskets:
        for start in range(0, len(basket), _ROOT_BLOCK):
            yield basket[start:start + _ROOT_BLOCK]


_AHEAD_CLASS: dict[type, type] = {
    base: type(f"{base.__name__}Ahead", (CompressionAhead, base), {"__doc__": f"{base.__name__}, compressed ahead on "
                                                                             "worker threads."})
    for base in (uproot.ZSTD, uproot.ZLIB, uproot.LZMA, uproot.LZ4)
}
_UPROOT_CLASS = {ahead: base for base, ahead in _AHEAD_CLASS.items()}


def parallel_compression(
    compression: uproot.compression.Compression | None,
) -> uproot.compression.Compression | None:
    """``compression`` as the same algorithm and level, compressing ahead on worker threads.

    ``None``, level 0, a single-core process and one told to use no threads (:func:`set_compression_threads`)
    give ``compression`` unchanged.
    """
    if compression is None or compression.level == 0 or _thread_count() < 2:
        return compression
    for base, ahead in _AHEAD_CLASS.items():
        if type(compression) is base:
            return ahead(compression.level)
    return compression
