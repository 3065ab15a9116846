"""Reading ahead: the next chunk is produced in a background thread while the caller works on this one.

Compressing reads a chunk (uproot: decompression and deserialization) and then encodes it; decompressing
decodes a chunk and then writes it (uproot: serialization and ZSTD). Much of each half runs outside the
GIL (ZSTD/LZMA in cramjam, numpy's loops, hepae's compiled kernels), so on two cores the halves overlap.
Chunks still come out one by one and in order, so the output is the same as without reading ahead; at
most one chunk more is held in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
_END = object()


def prefetched(items: Iterator[T]) -> Iterator[T]:
    """The items of ``items``, each one produced in a background thread while the caller holds the one before.

    An exception raised while producing an item is raised here, when the caller asks for that item. A
    caller that stops early leaves no thread behind (the item being produced is waited for and dropped).
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="hepae-read-ahead") as pool:
        pending = pool.submit(next, items, _END)
        while True:
            item = pending.result()
            if item is _END:
                return
            pending = pool.submit(next, items, _END)
            yield item  # type: ignore[misc]
