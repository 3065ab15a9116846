"""Giving freed memory back to the operating system between chunks.

Reading a chunk with uproot and awkward allocates and frees many buffers of varying sizes; glibc's
allocator keeps the freed pages, fragmented, in its arenas, so a process that streams a long file
grows by tens of MB over its chunks although nothing it holds grows (``benchmarks/memory.py``: Python's
own allocations stay flat, the resident size did not). ``malloc_trim`` returns those pages; dask's
workers do the same (``distributed``'s memory trimming). Elsewhere (musl, macOS, Windows) this does
nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys


@functools.cache
def _malloc_trim() -> object | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


def release_freed_memory() -> None:
    """Return the allocator's free pages to the operating system (glibc only; cheap, ~1 ms)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)  # type: ignore[operator]
