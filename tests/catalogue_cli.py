"""Catalogue rows (see ``tests/catalogue.py``): command-line runs and input/output paths."""

from __future__ import annotations

from catalogue import Case

CLI_CASES: list[Case] = []
