"""Catalogue rows (see ``tests/catalogue.py``): crafted or damaged model files (.hepae) and JSON documents.

The ``craft_*`` functions write one hostile variant of a genuine model file each; ``tests/test_hostile_models.py``
uses them too, to check that every one is refused with less memory than the genuine file needs.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import hepae
import hepae.ml.networks
from catalogue import Case
from hepae import errors

HEADER = "hepae_header.npy"
DEEP = 100_000  # levels of nesting: json.loads alone would raise RecursionError


# -- reading and writing model files member by member ---------------------------------------------------
def members_of(model: Path) -> dict[str, bytes]:
    """The uncompressed bytes of every member of a model file, in file order."""
    with zipfile.ZipFile(model) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def npy(array: np.ndarray) -> bytes:
    """``array`` as the bytes of an ``.npy`` file."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def header_of(members: dict[str, bytes]) -> dict[str, Any]:
    return json.loads(np.load(io.BytesIO(members[HEADER])).tobytes())


def with_header(members: dict[str, bytes], header: dict[str, Any] | str) -> dict[str, bytes]:
    """``members`` with the header replaced by ``header`` (a dict, or JSON text written as is)."""
    text = header if isinstance(header, str) else json.dumps(header)
    return {**members, HEADER: npy(np.frombuffer(text.encode(), dtype=np.uint8))}


def write_zip(path: Path, entries: list[tuple[str, bytes, int, int, int]]) -> Path:
    """Write a zip by hand, trusting every field given: ``(name, payload, method, crc32, size)``,
    where ``payload`` is stored as is (already deflated for method 8) and ``size`` is what the zip
    directory declares as its uncompressed size."""
    out, directory = bytearray(), bytearray()
    for name, payload, method, crc, size in entries:
        raw = name.encode()
        offset = len(out)
        out += struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, method, 0, 0x21, crc, len(payload), size,
                           len(raw), 0) + raw + payload
        directory += struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, method, 0, 0x21, crc,
                                 len(payload), size, len(raw), 0, 0, 0, 0, 0, offset) + raw
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(directory), len(out), 0)
    path.write_bytes(bytes(out + directory + end))
    return path


def write_members(path: Path, members: dict[str, bytes]) -> Path:
    """A model file holding ``members`` stored (uncompressed), as ``np.savez`` writes them."""
    return write_zip(path, [(name, data, 0, zlib.crc32(data), len(data)) for name, data in members.items()])


def first_weight(members: dict[str, bytes]) -> str:
    return sorted(name for name in members if name.endswith(".weight.npy"))[0]


# -- hostile variants of a genuine model file -------------------------------------------------------------
def craft_huge_array(model: Path, out: Path) -> Path:
    """A weight member whose .npy preamble declares a (3000000, 3000000) float32 array (36 TB); the file
    keeps its size (np.load would try to allocate the whole array)."""
    members = members_of(model)
    name = first_weight(members)
    data = members[name]
    start = len(data) - np.load(io.BytesIO(data)).nbytes
    fake = io.BytesIO()
    np.lib.format.write_array_header_1_0(fake, {"descr": "<f4", "fortran_order": False,
                                                "shape": (3_000_000, 3_000_000)})
    assert len(fake.getvalue()) == start  # the same preamble length: the file keeps its size
    members[name] = fake.getvalue() + data[start:]
    return write_members(out, members)


def craft_zip_bomb(model: Path, out: Path, size: int = 256 * 2**20) -> Path:
    """The largest weight member replaced by a valid deflate stream of an .npy array of ``size`` bytes
    (zeros), whose zip entry declares that size: about 1 kB per MB."""
    members = members_of(model)
    name = max(sorted(members), key=lambda n: len(members[n]))
    mib = 2**20
    preamble = io.BytesIO()
    np.lib.format.write_array_header_1_0(preamble, {"descr": "|u1", "fortran_order": False, "shape": (size - 128,)})
    head = preamble.getvalue()
    assert len(head) == 128 and size % mib == 0
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = compressor.compress(head + bytes(mib - 128)) + compressor.flush(zlib.Z_FULL_FLUSH)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = compressor.compress(bytes(mib)) + compressor.flush(zlib.Z_FULL_FLUSH)  # the same bytes every MB
    payload = first + zeros * (size // mib - 1) + zlib.compressobj(9, zlib.DEFLATED, -15).flush()
    crc = zlib.crc32(head + bytes(mib - 128))
    block = bytes(mib)
    for _ in range(size // mib - 1):
        crc = zlib.crc32(block, crc)
    entries = [(n, data, 0, zlib.crc32(data), len(data)) for n, data in members.items() if n != name]
    return write_zip(out, [*entries, (name, payload, zipfile.ZIP_DEFLATED, crc, size)])


def craft_header(model: Path, out: Path, edit: Callable[[dict[str, Any]], object]) -> Path:
    """The model file with ``edit`` applied to its JSON header (the tensors left as they are)."""
    members = members_of(model)
    header = header_of(members)
    edit(header)
    return write_members(out, with_header(members, header))


def craft_huge_hidden(model: Path, out: Path) -> Path:
    """A header declaring hidden layers of a million nodes (2 million million parameters)."""
    return craft_header(model, out, lambda h: h["architecture"].update(hidden=[1_000_000, 1_000_000]))


def craft_tensors_beyond_file(model: Path, out: Path) -> Path:
    """A header declaring 4000-node layers (32 M parameters, within the limit) and their tensors, while
    the file keeps its small ones."""
    def edit(header: dict[str, Any]) -> None:
        spec = hepae.ml.networks.ArchSpec.from_dict({**header["architecture"], "hidden": [4000, 4000]})
        header["architecture"] = spec.to_dict()
        header["tensors"] = {name: {"dtype": "float32" if not name.endswith("tracked") else "int64",
                                    "shape": list(shape)} for name, shape in spec.tensor_shapes().items()}

    return craft_header(model, out, edit)


def craft_deep_header(model: Path, out: Path) -> Path:
    """A header whose training summary nests 100 000 lists deep (json.loads: RecursionError)."""
    members = members_of(model)
    header = header_of(members)
    header["training"]["deep"] = "DEEP"
    text = json.dumps(header).replace('"DEEP"', "[" * DEEP + "]" * DEEP)
    return write_members(out, with_header(members, text))


def _deep_featureset(ctx: dict) -> None:
    document = hepae.load_featureset("atlas-jets-4d").to_dict()
    document["columns"][0]["label"] = "DEEP"
    path = ctx["tmp"] / "deep.json"
    path.write_text(json.dumps(document).replace('"DEEP"', "[" * DEEP + "]" * DEEP))
    hepae.load_featureset(path)


MODEL_CASES: list[Case] = [
    Case("model file member declaring a huge array (36 TB in its .npy preamble)", errors.ModelFormatError,
         "<path>: tensor '<name>' does not match its header: the file holds float32 (3000000, 3000000), "
         "the header says float32 <shape>",
         lambda c: hepae.load_model(craft_huge_array(c["model"], c["tmp"] / "huge-array.hepae"))),
    Case("model file holding a zip bomb (a member expanding to 256 MB)", errors.ModelFormatError,
         "<path>: zip member '<name>.npy' would expand to 268435456 bytes from <n>, more than <limit> "
         "(a zip bomb, or a damaged file)",
         lambda c: hepae.load_model(craft_zip_bomb(c["model"], c["tmp"] / "bomb.hepae"))),
    Case("model header declaring huge hidden layers", errors.ModelFormatError,
         "<path>: architecture 4-1000000-1000000-3-1000000-1000000-4 has <n> parameters; "
         "hepae networks have at most 50,000,000",
         lambda c: hepae.load_model(craft_huge_hidden(c["model"], c["tmp"] / "huge-hidden.hepae"))),
    Case("model header declaring larger tensors than the file holds", errors.ModelFormatError,
         "<path>: zip member '<name>.npy' declares <n> bytes; tensor '<name>' (float32 <shape>) takes <m> bytes "
         "and a preamble of at most 4096",
         lambda c: hepae.load_model(craft_tensors_beyond_file(c["model"], c["tmp"] / "beyond.hepae"))),
    Case("model header nested 100 000 deep (JSON)", errors.ModelFormatError,
         "model header of <path> nests arrays/objects deeper than 32 levels",
         lambda c: hepae.load_model(craft_deep_header(c["model"], c["tmp"] / "deep.hepae"))),
    Case("feature-set file nested 100 000 deep (JSON)", errors.FeatureSetError,
         "feature set file <path> nests arrays/objects deeper than 32 levels", _deep_featureset),
    Case("model header field of the wrong type", errors.ModelFormatError,
         "model header of <path> does not follow model.schema.json: at 'architecture/latent': 'three' is not of "
         "type 'integer'",
         lambda c: hepae.load_model(craft_header(c["model"], c["tmp"] / "typed.hepae",
                                                 lambda h: h["architecture"].update(latent="three")))),
    Case("model training summary field of the wrong type (hepae inspect)", errors.ModelFormatError,
         "model header of <path> does not follow model.schema.json: at 'training/best_val_loss': 'low' is not of "
         "type 'number'",
         lambda c: hepae.inspect(craft_header(c["model"], c["tmp"] / "summary.hepae",
                                              lambda h: h["training"].update(best_val_loss="low")))),
]
