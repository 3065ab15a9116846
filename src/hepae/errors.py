"""Exceptions raised by hepae.

Every error hepae raises on purpose derives from :class:`HepaeError`, so a pipeline can catch them all
with one ``except``. Where an error refines a builtin meaning (a missing key, a bad value), it also
derives from that builtin, as uproot's ``KeyInFileError(KeyError)`` does. Messages name the file, tree,
branch or line concerned, say what was expected, and, where possible, what to do.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def close_matches(name: str, candidates: Iterable[str], n: int = 5) -> list[str]:
    """The candidates nearest to ``name``, best first (for "did you mean" hints)."""
    candidates = list(candidates)
    matches = difflib.get_close_matches(name, candidates, n=n, cutoff=0.5)
    if len(matches) < n:  # also offer names sharing the last component, e.g. ".pt" or "_pt"
        tail = name.replace("_", ".").rsplit(".", 1)[-1].lower()
        for candidate in candidates:
            if candidate not in matches and candidate.replace("_", ".").rsplit(".", 1)[-1].lower() == tail:
                matches.append(candidate)
            if len(matches) >= n:
                break
    return matches


class HepaeError(Exception):
    """Base class of every error hepae raises on purpose."""


class InputFileError(HepaeError, OSError):
    """An input file is missing, unreadable or not the kind of file expected."""


class OutputFileError(HepaeError, OSError):
    """An output file cannot be written (exists, is the input, directory unwritable, ...)."""


class TreeNotFoundError(HepaeError, KeyError):
    """The requested tree is not in the file; the message lists the trees that are."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class BranchNotFoundError(HepaeError, KeyError):
    """A branch required by a feature set is missing; the message lists close matches."""

    def __str__(self) -> str:
        return str(self.args[0])


class BranchTypeError(HepaeError, TypeError):
    """A branch exists but has an unexpected type (not jagged, not numeric, wrong counter)."""


class UnsupportedBranchError(HepaeError, TypeError):
    """Branches that uproot cannot write back to a TTree (doubly jagged, objects, strings)."""


class FeatureSetError(HepaeError, ValueError):
    """A feature set is unknown or its definition is invalid."""


class SchemaValidationError(HepaeError, ValueError):
    """A JSON document (feature set, container metadata, model header) fails its JSON Schema."""


class TransformDomainError(HepaeError, ValueError):
    """Values lie outside the domain of a normalization (e.g. log of a negative number)."""


class NotFittedError(HepaeError, ValueError, AttributeError):
    """A transform or model was used before ``fit``."""


class ModelFormatError(HepaeError, ValueError):
    """A model file is corrupted, of an unknown/newer format, or not a hepae model at all."""


class ContainerFormatError(HepaeError, ValueError):
    """A compressed file is not a valid hepae container (metadata, checksums, embedded decoder)."""


class ModelMismatchError(HepaeError, ValueError):
    """A model does not fit the data it is applied to (other feature set, other dimensions)."""


class CodecError(HepaeError):
    """A codec setting that cannot work: unknown codec, malformed error bound, a model missing."""


class UnknownLayoutError(CodecError):
    """Coded data in a layout this hepae does not read: a development version's, or a newer hepae's."""


class TrainingError(HepaeError, RuntimeError):
    """Training cannot proceed (no objects to train on, diverging loss, ...)."""


class MalformedCSVError(HepaeError, ValueError):
    """A line of a DarkMachines/PhenoML event file does not follow the format; names file and line."""


class ProfileError(HepaeError, ValueError):
    """A precision profile (or a command-line precision rule) that is not valid, or does not fit the file."""
