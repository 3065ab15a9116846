"""Load the JSON Schemas shipped in ``hepae/schemas`` and validate documents against them.

The schemas are package data (read with :mod:`importlib.resources`, never from the network), and the
same files appear at the repository's top-level ``schemas/``.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

import jsonschema
import referencing

from hepae.errors import HepaeError, SchemaValidationError


def schema_text(name: str) -> str:
    """The text of the shipped schema or document ``name`` (a path inside ``hepae/schemas``)."""
    return resources.files("hepae").joinpath("schemas").joinpath(name).read_text(encoding="utf-8")


@functools.cache
def load_schema(name: str) -> dict[str, Any]:
    """Parsed JSON Schema ``name`` (e.g. ``"featureset.schema.json"``), cached. That the shipped schemas
    are valid JSON Schemas is checked by the tests, not on every start (it takes a quarter second)."""
    return json.loads(schema_text(name))


@functools.cache
def _registry() -> referencing.Registry:
    """All shipped schemas, so that ``$ref``s between them resolve locally, never over the network."""
    names = ("featureset.schema.json", "model.schema.json", "container.schema.json")
    resources_ = [(n, referencing.Resource.from_contents(load_schema(n))) for n in names]
    resources_ += [(load_schema(n)["$id"], r) for n, r in resources_]
    return referencing.Registry().with_resources(resources_)


def validate(document: Any, schema_name: str, *, what: str) -> None:
    """Raise :class:`SchemaValidationError` naming ``what`` and the failing JSON path if invalid."""
    validator = jsonschema.Draft202012Validator(load_schema(schema_name), registry=_registry())
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        path = "/".join(str(p) for p in first.absolute_path) or "(top level)"
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise SchemaValidationError(
            f"{what} does not follow {schema_name}: at '{path}': {first.message}{more}"
        )


def validate_versioned(
    document: Any, schema_name: str, *, what: str, max_version: int, error: type[HepaeError]
) -> None:
    """Validate a file's JSON document, first refusing a newer ``format_version`` with "upgrade hepae".

    Problems are raised as ``error`` (e.g. :class:`hepae.errors.ModelFormatError`).
    """
    version = document.get("format_version") if isinstance(document, dict) else None
    if isinstance(version, int) and version > max_version:
        raise error(
            f"{what} has format version {version} (written by hepae {document.get('hepae_version', '?')}); "
            f"this hepae reads up to version {max_version}: upgrade hepae"
        )
    try:
        validate(document, schema_name, what=what)
    except SchemaValidationError as err:
        raise error(str(err)) from None
