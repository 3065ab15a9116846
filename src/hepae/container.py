"""The compressed file: an ordinary ROOT file that uproot and ROOT read.

It holds the input tree (same name) with every uncompressed branch carried over and, instead of the
compressed collection's branches, jagged latent branches ``hepae_latent_<i>`` counted by the
collection's counter; a TObjString ``hepae_metadata`` with JSON metadata that follows
``schemas/container.schema.json``; and a one-entry TTree ``hepae_decoder`` whose ``uint8`` branch holds
the decoder as a pickle-free model file (see :mod:`hepae.model`). Nothing else is needed to decompress.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import awkward as ak
import numpy as np
import uproot

from hepae.errors import ContainerFormatError
from hepae.layout import BranchSpec
from hepae.model import HepaeModel
from hepae.schema import validate, validate_versioned
from hepae.writing import TreeWriter

CONTAINER_FORMAT_VERSION = 1
METADATA_KEY = "hepae_metadata"
DECODER_TREE = "hepae_decoder"
DECODER_BRANCH = "model_npz"
LATENT_PREFIX = "hepae_latent_"


def latent_branch_names(latent_size: int) -> list[str]:
    return [f"{LATENT_PREFIX}{i}" for i in range(latent_size)]


def write_decoder(file: uproot.WritableDirectory, model: HepaeModel) -> tuple[int, str]:
    """Embed the model's decoder; returns its size in bytes and sha256."""
    blob = model.to_bytes(("decoder",))
    writer = TreeWriter(file, DECODER_TREE, [BranchSpec(DECODER_BRANCH, "uint8", f"{DECODER_BRANCH}_size")],
                        title="hepae: embedded decoder (numpy .npz, pickle-free)")
    writer.extend({DECODER_BRANCH: ak.unflatten(np.frombuffer(blob, dtype=np.uint8), [len(blob)])})
    return len(blob), hashlib.sha256(blob).hexdigest()


def write_metadata(file: uproot.WritableDirectory, metadata: dict[str, Any]) -> None:
    validate(metadata, "container.schema.json", what="container metadata (hepae bug)")
    file[METADATA_KEY] = json.dumps(metadata, sort_keys=True)


def read_metadata(file: uproot.ReadOnlyDirectory, path: str) -> dict[str, Any]:
    """Metadata of a compressed file, validated; :class:`ContainerFormatError` if absent or invalid."""
    if METADATA_KEY not in file.keys(cycle=False):
        raise ContainerFormatError(
            f"{path} is not a hepae compressed file (no '{METADATA_KEY}' object); "
            "was it written by 'hepae compress'?"
        )
    try:
        metadata = json.loads(str(file[METADATA_KEY]))
    except (ValueError, TypeError) as err:
        raise ContainerFormatError(f"{path}: metadata is not valid JSON ({err})") from None
    validate_versioned(metadata, "container.schema.json", what=f"metadata of {path}",
                       max_version=CONTAINER_FORMAT_VERSION, error=ContainerFormatError)
    return metadata


def read_decoder(file: uproot.ReadOnlyDirectory, metadata: dict[str, Any], path: str) -> HepaeModel:
    """The embedded decoder, checked against the metadata's checksum."""
    tree_name, branch = metadata["model"]["decoder_tree"], metadata["model"]["decoder_branch"]
    try:
        blob = ak.to_numpy(ak.flatten(file[tree_name][branch].array(library="ak"))).tobytes()
    except Exception as err:
        raise ContainerFormatError(f"{path}: cannot read the embedded decoder '{tree_name}/{branch}': {err}") from None
    if hashlib.sha256(blob).hexdigest() != metadata["checksums"]["decoder"]:
        raise ContainerFormatError(f"{path}: embedded decoder checksum mismatch (file corrupted or edited)")
    return HepaeModel.from_bytes(blob, source=f"decoder embedded in {path}")


def collection_specs(metadata: dict[str, Any]) -> list[BranchSpec]:
    return [BranchSpec.from_dict(b) for b in metadata["collection"]["branches"]]


class LatentHasher:
    """sha256 over the latent values (float32, little-endian, object order), chunk by chunk."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256()

    def update(self, latent: np.ndarray) -> None:
        self._digest.update(np.ascontiguousarray(latent, dtype="<f4").tobytes())

    def hexdigest(self) -> str:
        return self._digest.hexdigest()
