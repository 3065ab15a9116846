"""Load the JSON Schemas shipped in ``hepae/schemas`` and validate documents against them.

The schemas are package data (read with :mod:`importlib.resources`, never from the network), and the
same files appear at the repository's top-level ``schemas/``.

Documents from files are parsed with :func:`parse_json`, which refuses nesting deeper than
:data:`MAX_JSON_DEPTH` (``json.loads`` itself would raise ``RecursionError`` on very deep nesting),
and :func:`validate` refuses such documents before walking them.
"""

from __future__ import annotations

import functools
import itertools
import json
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema
import referencing

from hepae.errors import HepaeError, SchemaValidationError

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

MAX_JSON_DEPTH = 32
"""Deepest nesting of JSON arrays and objects accepted in a feature set, model header or metadata (the
shipped documents nest at most 6 deep)."""
_MAX_MESSAGE = 200  # characters of a jsonschema message kept (it quotes the offending value)
_MAX_ERRORS = 100  # schema violations collected before giving up


def json_depth(document: Any, limit: int = MAX_JSON_DEPTH) -> int:
    """Nesting depth of arrays and objects in ``document`` (a scalar: 0), without recursion.

    Stops counting once ``limit + 1`` is reached, so the walk is cheap for hostile documents.
    """
    deepest = 0
    stack = [(document, 1)] if isinstance(document, dict | list) else []
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            break
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def parse_json(text: str | bytes, *, what: str, error: type[HepaeError]) -> Any:
    """``json.loads(text)``, with every failure raised as one-line ``error`` naming ``what``.

    Parameters
    ----------
    text
        The JSON text (bytes must be UTF-8).
    what
        The document, for messages, e.g. ``"feature set file jets.json"``.
    error
        The :class:`hepae.errors.HepaeError` subclass to raise.

    Raises
    ------
    HepaeError
        ``error`` if ``text`` is not UTF-8 or not JSON, or nests deeper than :data:`MAX_JSON_DEPTH`.
    """
    try:
        document = json.loads(text.decode("utf-8") if isinstance(text, bytes) else text)
    except RecursionError:
        raise error(f"{what} nests arrays/objects deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError, an integer of over 4300 digits
        raise error(f"{what} is not valid JSON: {err}") from None
    if json_depth(document) > MAX_JSON_DEPTH:
        raise error(f"{what} nests arrays/objects deeper than {MAX_JSON_DEPTH} levels")
    return document


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
    """Raise :class:`SchemaValidationError` naming ``what`` and the failing JSON path if invalid.

    A document nested deeper than :data:`MAX_JSON_DEPTH` is refused before it is walked.
    """
    if json_depth(document) > MAX_JSON_DEPTH:
        raise SchemaValidationError(f"{what} nests arrays/objects deeper than {MAX_JSON_DEPTH} levels")
    validator = jsonschema.Draft202012Validator(load_schema(schema_name), registry=_registry())
    try:
        # at most _MAX_ERRORS + 1 errors: a list of millions of wrong items would otherwise make millions
        errors = sorted(itertools.islice(validator.iter_errors(document), _MAX_ERRORS + 1),
                        key=lambda e: list(e.absolute_path))
        if errors:
            first = errors[0]
            message = first.message
            path = "/".join(str(p) for p in first.absolute_path) or "(top level)"
    except RecursionError:  # not expected within MAX_JSON_DEPTH; never a traceback all the same
        raise SchemaValidationError(f"{what} is nested too deeply to be checked against {schema_name}") from None
    if errors:
        if len(message) > _MAX_MESSAGE or "\n" in message:
            message = message.replace("\n", " ")[:_MAX_MESSAGE] + "..."
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        if len(errors) > _MAX_ERRORS:
            more = f" (and over {_MAX_ERRORS - 1} more problems)"
        raise SchemaValidationError(f"{what} does not follow {schema_name}: at '{path}': {message}{more}")


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


def builtin_names(folder: str) -> list[str]:
    """The names of the JSON documents shipped in ``hepae/schemas/<folder>/`` (feature sets, profiles), sorted."""
    directory = resources.files("hepae").joinpath("schemas").joinpath(folder)
    return sorted(p.name[: -len(".json")] for p in directory.iterdir() if p.name.endswith(".json"))


def _builtin_document(spec: str, folder: str) -> Traversable | None:
    """The shipped document ``hepae/schemas/<folder>/<spec>.json`` if ``spec`` names one (a name such as
    ``nanoaod``, not ending in ``.json``), else None."""
    if spec.endswith(".json"):
        return None
    document = resources.files("hepae").joinpath("schemas").joinpath(folder).joinpath(f"{spec}.json")
    return document if document.is_file() else None


def is_builtin(spec: str, folder: str) -> bool:
    """Whether :func:`read_named_document` reads ``spec`` from the documents shipped in ``hepae/schemas/<folder>/``
    rather than from a user's file."""
    return _builtin_document(spec, folder) is not None


def read_named_document(spec: str, folder: str, *, noun: str, error: type[HepaeError],
                        max_bytes: int) -> tuple[Any, str]:
    """``(document, source)`` of a built-in document (``spec`` a name in ``hepae/schemas/<folder>/``) or of a
    JSON file (``spec`` a path, at most ``max_bytes``). Failures, and a ``spec`` that is neither, are one-line
    ``error`` naming the ``noun`` ("feature set", "precision profile")."""
    builtin = _builtin_document(spec, folder)
    if builtin is not None:
        return parse_json(builtin.read_bytes(), what=f"{noun} '{spec}'", error=error), f"'{spec}'"
    path = Path(spec)
    if path.is_file():
        size = path.stat().st_size
        if size > max_bytes:
            raise error(f"{noun} file {path} is {size} bytes; a {noun} is at most {max_bytes} bytes of JSON")
        return parse_json(path.read_bytes(), what=f"{noun} file {path}", error=error), str(path)
    raise error(f"unknown {noun} {spec!r}: neither a built-in one ({', '.join(builtin_names(folder))}) nor an "
                "existing JSON file")
