"""One row of the bad-input catalogue (``tests/test_errors.py`` runs every row; ``docs/errors.md`` lists them)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    """A bad input, the error it must raise (``None``: handled) and the message, ``<...>`` for varying text.

    ``trigger`` gets a context dict: ``tmp`` (an empty directory), ``sample``, ``model``, ``nano_model``,
    ``container`` (a compressed ``sample``).
    """

    name: str
    error: type[BaseException] | None
    example: str
    trigger: Callable[[dict], object]

    @property
    def pattern(self) -> str:
        return ".*".join(re.escape(part) for part in re.split(r"<[^>]*>", self.example))
