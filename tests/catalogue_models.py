"""Catalogue rows (see ``tests/catalogue.py``): crafted or damaged model files (.hepae) and JSON documents."""

from __future__ import annotations

from catalogue import Case

MODEL_CASES: list[Case] = []
