"""Progress bars on a terminal, nothing in batch logs.

In a batch job or a CI log, a tqdm bar writes a line per update (the demo's log was 110 kB of them).
Commands therefore show a bar only when stderr is a terminal, unless asked (``progress=True``), and
print one summary line per command instead.
"""

from __future__ import annotations

import sys
from typing import Any


def want_progress(progress: bool | None) -> bool:
    """``progress`` if given, else whether stderr is a terminal."""
    if progress is not None:
        return bool(progress)
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


def progress_bar(progress: bool | None, **options: Any) -> Any:
    """A tqdm bar (a context manager with ``update``), disabled unless :func:`want_progress`."""
    from tqdm.auto import tqdm

    return tqdm(disable=not want_progress(progress), **options)
