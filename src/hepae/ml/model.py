"""The trained model a user handles: network + feature set + fitted normalization + training summary.

A model file is an ``.npz`` archive (a zip of ``.npy`` arrays): a JSON header
(``schemas/model.schema.json``) stored as a byte array, and one array per tensor. Loading never
unpickles and never runs code from the file. The same format, holding only the decoder, is embedded in
every compressed file, and is read back through the same :meth:`HepaeModel.from_bytes`.

Loading trusts no size in the file before checking it, so that a crafted or damaged file is refused
before anything large is allocated (peak memory below what a genuine file of the same size needs):

1. the file is at most :data:`MAX_MODEL_BYTES`; its zip directory has at most a few thousand entries,
   no duplicate or encrypted members, only stored or deflated ones, none expanding more than
   :data:`MAX_DEFLATE_RATIO` times (stored: not at all), and no more compressed bytes than the file holds;
2. the header member is at most :data:`MAX_HEADER_BYTES`, a 1-D uint8 ``.npy`` array; its JSON nests at
   most :data:`hepae.schema.MAX_JSON_DEPTH` deep and follows the schema (types, before any use);
3. the architecture has at most :data:`hepae.networks.MAX_PARAMETERS` parameters and the header's
   tensors are exactly the ones it implies (names, shapes, dtypes), computed without building it;
4. the members are exactly those tensors, each declaring the size its dtype and shape imply;
5. each member's ``.npy`` preamble is parsed on its own (never ``np.load``: no pickle, no allocation
   from a declared shape) and must give the header's dtype and shape; only when all do are the data
   read, each into an array of exactly that size; the zip CRCs and the ``model_id`` checksum follow.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import struct
import tokenize
import zipfile
import zlib
from collections.abc import Iterable
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hepae._version import __version__
from hepae.errors import HepaeError, InputFileError, ModelFormatError, ModelMismatchError
from hepae.features import FeatureSet
from hepae.io.writing import atomic_output
from hepae.ml.devices import resolve_device
from hepae.ml.networks import MAX_PARAMETERS, ArchSpec, Autoencoder, inference_forward
from hepae.schema import parse_json, validate_versioned
from hepae.transforms import ColumnTransform

MODEL_FORMAT_VERSION = 1
_HEADER_KEY = "hepae_header"
_HEADER_MEMBER = f"{_HEADER_KEY}.npy"
_INFERENCE_BATCH = 8192  # bounds activation memory (8192 x 200 floats per layer); MLPs gain nothing from more

MAX_HEADER_BYTES = 16 * 2**20
"""Largest JSON header read (a genuine one is a few kB, up to ~1 MB with quantile normalizations)."""
MAX_DEFLATE_RATIO = 20
"""Most a deflated member may expand (float weights hardly compress; hepae itself stores them)."""
_NPY_PREAMBLE_MAX = 4096  # bytes of an .npy member before its data (np.save writes 128)
_MAX_MEMBERS = 1024  # zip entries: a network of MAX_HIDDEN_LAYERS batch-norm layers has 457 tensors
_ZIP_ENTRY_MAX = 1024  # zip bytes per member besides its data, for MAX_MODEL_BYTES
MAX_MODEL_BYTES = MAX_PARAMETERS * 8 + MAX_HEADER_BYTES + _MAX_MEMBERS * (_NPY_PREAMBLE_MAX + _ZIP_ENTRY_MAX)
"""Largest model file read: :data:`hepae.networks.MAX_PARAMETERS` float64 numbers and the largest header."""
_READ_CHUNK = 1 << 20
_FLOAT_DTYPES = ("float32", "float64")
# what zipfile and the .npy preamble parser raise on a damaged file (ModelFormatError is a ValueError too,
# so hepae's own errors are re-raised first)
_READ_ERRORS = (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, KeyError, NotImplementedError,
                RuntimeError, struct.error, OverflowError, TypeError, SyntaxError, RecursionError,
                tokenize.TokenError)


def _model_id(tensors: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        digest.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
        digest.update(array.data)  # the bytes of array.tobytes(), without copying them
    return digest.hexdigest()[:16]


def _short(value: object, limit: int = 80) -> str:
    """``str(value)``, cut to ``limit`` characters (values from a hostile file can be long)."""
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _names(names: Iterable[str]) -> str:
    """A few of ``names`` for a message: ``['a', 'b', 'c'] and 4 more``."""
    names = sorted(names)
    shown = "[" + ", ".join(repr(_short(n, 60)) for n in names[:3]) + "]"
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def _check_directory(archive: zipfile.ZipFile, size: int, source: str) -> dict[str, zipfile.ZipInfo]:
    """Check the zip directory's declared sizes before any member is read; name -> entry.

    Raises
    ------
    ModelFormatError
        For duplicate or encrypted members, compression other than stored or deflate, a member expanding
        more than :data:`MAX_DEFLATE_RATIO` times (a zip bomb), or more compressed bytes than the file has.
    """
    infos: dict[str, zipfile.ZipInfo] = {}
    compressed = 0
    for info in archive.infolist():
        name = _short(info.filename, 60)
        if info.filename in infos:
            raise ModelFormatError(f"{source}: zip member '{name}' appears more than once")
        if len(infos) >= _MAX_MEMBERS:
            raise ModelFormatError(f"{source} is not a hepae model file: over {_MAX_MEMBERS} zip members")
        if info.flag_bits & 0x1:
            raise ModelFormatError(f"{source}: zip member '{name}' is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ModelFormatError(f"{source}: zip member '{name}' uses compression method {info.compress_type}; "
                                   "expected stored or deflated members")
        limit = info.compress_size
        if info.compress_type == zipfile.ZIP_DEFLATED:
            limit = MAX_DEFLATE_RATIO * info.compress_size + _NPY_PREAMBLE_MAX
        if info.file_size > limit:
            raise ModelFormatError(f"{source}: zip member '{name}' would expand to {info.file_size} bytes from "
                                   f"{info.compress_size}, more than {limit} (a zip bomb, or a damaged file)")
        compressed += info.compress_size
        infos[info.filename] = info
    if compressed > size:
        raise ModelFormatError(f"{source}: its zip members declare {compressed} compressed bytes, more than the "
                               f"file's {size} (damaged file?)")
    return infos


def _check_npy(archive: zipfile.ZipFile, info: zipfile.ZipInfo, source: str, what: str,
               dtype: np.dtype, shape: tuple[int, ...] | None) -> tuple[tuple[int, ...], bool, int]:
    """Parse one ``.npy`` member's preamble (at most :data:`_NPY_PREAMBLE_MAX` bytes read): its dtype and
    shape must be ``dtype`` and ``shape`` (``None``: any 1-D shape), and the member exactly that big.

    Parameters
    ----------
    archive, info
        The open model file and the member's zip entry.
    source, what
        The file and the array (e.g. ``"tensor 'decoder.0.weight'"``), for messages.
    dtype, shape
        What the model header says the array holds (``shape=None``: the header itself, 1-D).

    Returns
    -------
    tuple
        The shape, whether the data are in Fortran order, and the preamble's length in bytes.

    Raises
    ------
    ModelFormatError
        If the preamble is unreadable or does not match, or the member's size does not fit it.
    """
    member = _short(info.filename, 60)
    with archive.open(info) as stream:
        preamble = io.BytesIO(stream.read(min(info.file_size, _NPY_PREAMBLE_MAX)))
    try:
        version = np.lib.format.read_magic(preamble)
        if version == (1, 0):
            found_shape, fortran, found_dtype = np.lib.format.read_array_header_1_0(
                preamble, max_header_size=_NPY_PREAMBLE_MAX)
        elif version == (2, 0):
            found_shape, fortran, found_dtype = np.lib.format.read_array_header_2_0(
                preamble, max_header_size=_NPY_PREAMBLE_MAX)
        else:
            raise ValueError(f".npy format version {version} (expected 1.0 or 2.0)")
    except _READ_ERRORS as err:
        raise ModelFormatError(f"{source}: member '{member}' is not a readable .npy array: "
                               f"{_short(err, 200)}") from None
    found = f"{_short(found_dtype, 40)} {_short(found_shape, 60)}"
    if shape is None and (found_dtype != dtype or len(found_shape) != 1):
        raise ModelFormatError(f"{source}: {what} is {found}; expected a 1-D {dtype} array")
    if shape is not None and (found_dtype != dtype or tuple(found_shape) != shape):
        raise ModelFormatError(f"{source}: {what} does not match its header: the file holds {found}, "
                               f"the header says {dtype} {shape}")
    shape = tuple(found_shape) if shape is None else shape
    start = preamble.tell()
    if info.file_size != start + math.prod(shape) * dtype.itemsize:
        raise ModelFormatError(f"{source}: member '{member}' is {info.file_size} bytes; its {dtype} "
                               f"{_short(shape, 60)} array and {start}-byte preamble take "
                               f"{start + math.prod(shape) * dtype.itemsize}")
    return shape, bool(fortran), start


def _read_npy(archive: zipfile.ZipFile, info: zipfile.ZipInfo, source: str, dtype: np.dtype,
              layout: tuple[tuple[int, ...], bool, int]) -> np.ndarray:
    """The data of an ``.npy`` member checked by :func:`_check_npy` (``layout`` is what it returned),
    read into an array of exactly the size checked; zipfile checks the member's CRC-32 at its end."""
    shape, fortran, start = layout
    nbytes = math.prod(shape) * dtype.itemsize
    raw = np.empty(nbytes, dtype=np.uint8)
    view = memoryview(raw)
    with archive.open(info) as stream:
        stream.read(start)
        filled = 0
        while filled < nbytes:  # chunked: readinto would otherwise read a whole copy first
            n = stream.readinto(view[filled:filled + _READ_CHUNK])
            if not n:
                raise ModelFormatError(f"{source}: member '{_short(info.filename, 60)}' ends after {filled} of "
                                       f"{nbytes} data bytes (damaged file?)")
            filled += n
        stream.read()  # nothing is left; makes zipfile check the member's CRC-32 if it has not yet
    array = raw.view(dtype)
    return array.reshape(shape[::-1]).T if fortran else array.reshape(shape)


def _read_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo, source: str) -> dict[str, Any]:
    """The model header: bounded in size and nesting, schema-checked (types) before any field is used."""
    if info.file_size > MAX_HEADER_BYTES + _NPY_PREAMBLE_MAX:  # before reading it
        raise ModelFormatError(f"{source}: its model header is {info.file_size} bytes; "
                               f"at most {MAX_HEADER_BYTES} expected")
    uint8 = np.dtype(np.uint8)
    layout = _check_npy(archive, info, source, f"its header member '{_HEADER_MEMBER}'", uint8, None)
    text = _read_npy(archive, info, source, uint8, layout).tobytes()
    if len(text) > MAX_HEADER_BYTES:
        raise ModelFormatError(f"{source}: its model header is {len(text)} bytes; at most {MAX_HEADER_BYTES} expected")
    header = parse_json(text, what=f"model header of {source}", error=ModelFormatError)
    validate_versioned(header, "model.schema.json", what=f"model header of {source}",
                       max_version=MODEL_FORMAT_VERSION, error=ModelFormatError)
    return header


def _check_tensors(header: dict[str, Any], source: str) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
    """The header's architecture, bounded, and its tensors: exactly those the architecture implies
    for the header's ``parts`` (names, shapes, dtypes), computed without building the network.

    Returns
    -------
    dict
        Tensor name -> (dtype, shape), the shape as the architecture gives it (Python ints).
    """
    spec = ArchSpec.from_dict(header["architecture"])
    spec.check_size(where=f"{source}: ")
    expected = {name: shape for name, shape in spec.tensor_shapes().items()
                if name.split(".", 1)[0] in header["parts"]}
    declared = header["tensors"]
    if set(declared) != set(expected):
        missing, unexpected = set(expected) - set(declared), set(declared) - set(expected)
        raise ModelFormatError(f"{source}: tensors do not fit architecture {spec.layout}: missing "
                               f"{_names(missing)}, unexpected {_names(unexpected)}")
    for name, shape in expected.items():
        if tuple(declared[name]["shape"]) != shape:
            raise ModelFormatError(f"{source}: tensor '{name}' has shape {tuple(declared[name]['shape'])}, "
                                   f"architecture expects {shape}")
        dtypes = ("int64",) if name.endswith(".num_batches_tracked") else _FLOAT_DTYPES
        if declared[name]["dtype"] not in dtypes:
            raise ModelFormatError(f"{source}: tensor '{name}' is {declared[name]['dtype']}; "
                                   f"expected {' or '.join(dtypes)}")
    return {name: (np.dtype(declared[name]["dtype"]), shape) for name, shape in expected.items()}


def _read_archive(data: bytes, source: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The checked header and tensors of a model file's bytes (see the module docstring for the order)."""
    if len(data) > MAX_MODEL_BYTES:
        raise ModelFormatError(f"{source} is {len(data)} bytes; a hepae model file is at most {MAX_MODEL_BYTES} "
                               f"bytes ({MAX_PARAMETERS:,} parameters)")
    # zipfile makes an object per central-directory entry; each starts with this signature
    if data.count(b"PK\x01\x02") > 4 * _MAX_MEMBERS:
        raise ModelFormatError(f"{source} is not a hepae model file: over {4 * _MAX_MEMBERS} zip directory entries")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = _check_directory(archive, len(data), source)
            if _HEADER_MEMBER not in infos:
                raise ModelFormatError(f"{source} is not a hepae model file (no '{_HEADER_KEY}' entry)")
            header = _read_header(archive, infos[_HEADER_MEMBER], source)
            tensors = _check_tensors(header, source)
            members = {f"{name}.npy": name for name in tensors}
            present = set(infos) - {_HEADER_MEMBER}
            if present != set(members):
                raise ModelFormatError(f"{source}: tensors in the file do not match its header: missing "
                                       f"{_names(set(members) - present)}, unexpected {_names(present - set(members))}")
            for member, name in members.items():  # every declared size, before reading any tensor
                dtype, shape = tensors[name]
                nbytes = math.prod(shape) * dtype.itemsize
                if not nbytes < infos[member].file_size <= nbytes + _NPY_PREAMBLE_MAX:
                    raise ModelFormatError(
                        f"{source}: zip member '{_short(member, 60)}' declares {infos[member].file_size} bytes; "
                        f"tensor '{name}' ({dtype} {shape}) takes {nbytes} bytes and a preamble of at most "
                        f"{_NPY_PREAMBLE_MAX}")
            layouts = {name: _check_npy(archive, infos[member], source, f"tensor '{name}'", *tensors[name])
                       for member, name in members.items()}  # every preamble, before reading any data
            arrays = {name: _read_npy(archive, infos[member], source, tensors[name][0], layouts[name])
                      for member, name in members.items()}
    except HepaeError:
        raise
    except _READ_ERRORS as err:
        raise ModelFormatError(f"{source} is not a readable hepae model file: {_short(err, 200)}") from None
    return header, arrays


class HepaeModel:
    """A trained autoencoder with everything needed to compress and decompress a feature set.

    Attributes:
        network: the :class:`hepae.networks.Autoencoder` (torch module, in eval mode).
        featureset: the :class:`hepae.features.FeatureSet` it was trained on.
        normalization: the fitted :class:`hepae.transforms.ColumnTransform`.
        training: training summary (settings, per-epoch losses, best epoch, sizes, timing).
        parts: ``("encoder", "decoder")``, or ``("decoder",)`` for a model read from a compressed file.
    """

    def __init__(
        self,
        network: Autoencoder,
        featureset: FeatureSet,
        normalization: ColumnTransform,
        training: dict[str, Any] | None = None,
        parts: Iterable[str] = ("encoder", "decoder"),
    ):
        if network.spec.n_features != featureset.n_features or normalization.n_columns != featureset.n_features:
            raise ModelMismatchError(
                f"network ({network.spec.n_features} inputs), normalization ({normalization.n_columns} columns) "
                f"and feature set '{featureset.name}' ({featureset.n_features} columns) disagree"
            )
        self.network = network.eval()
        self.featureset = featureset
        self.normalization = normalization
        self.training = dict(training or {})
        self.parts = tuple(parts)

    # -- description --------------------------------------------------------------------------------
    @property
    def arch(self) -> ArchSpec:
        return self.network.spec

    @property
    def latent_size(self) -> int:
        return self.arch.latent

    def _tensors(self, parts: Iterable[str]) -> dict[str, np.ndarray]:
        parts = tuple(parts)
        return {
            name: tensor.detach().cpu().numpy()
            for name, tensor in self.network.state_dict().items()
            if name.split(".", 1)[0] in parts
        }

    @property
    def model_id(self) -> str:
        """Short content hash of all tensors this model holds (same weights -> same id)."""
        return _model_id(self._tensors(self.parts))

    def header(self, parts: Iterable[str] | None = None) -> dict[str, Any]:
        parts = tuple(parts or self.parts)
        tensors = self._tensors(parts)
        return {
            "format": "hepae-model",
            "format_version": MODEL_FORMAT_VERSION,
            "hepae_version": __version__,
            "model_id": _model_id(tensors),
            "architecture": self.arch.to_dict(),
            "featureset": self.featureset.to_dict(),
            "normalization": self.normalization.get_config(),
            "parts": list(parts),
            "tensors": {k: {"dtype": v.dtype.name, "shape": list(v.shape)} for k, v in tensors.items()},
            "training": self.training,
        }

    def __repr__(self) -> str:
        return (f"HepaeModel({self.arch.name} {self.arch.layout}, featureset='{self.featureset.name}', "
                f"id={self.model_id}, parts={self.parts})")

    # -- inference ----------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    def to(self, device: str | torch.device = "auto") -> HepaeModel:
        """Run inference on ``device`` (``"auto"``: CUDA if available); returns ``self``."""
        self.network.to(resolve_device(device))
        return self

    def _run(self, module: torch.nn.Module, x: np.ndarray, out_dim: int) -> np.ndarray:
        out = np.empty((len(x), out_dim), dtype=np.float32)
        device = self.device
        with torch.inference_mode():
            for start in range(0, len(x), _INFERENCE_BATCH):
                batch = torch.from_numpy(np.ascontiguousarray(x[start:start + _INFERENCE_BATCH], dtype=np.float32))
                out[start:start + len(batch)] = inference_forward(module, batch.to(device)).cpu().numpy()
        return out

    def encode(self, values: np.ndarray) -> np.ndarray:
        """Physical ``(n, D)`` values -> float32 latent ``(n, latent)``; checks each column's domain."""
        if "encoder" not in self.parts:
            raise ModelFormatError("this model holds only the decoder (as embedded in a compressed file); "
                                   "load the full model file to compress")
        self.normalization.check_domain(values, where=f"feature set '{self.featureset.name}'")
        values = np.asarray(values)
        precision = np.float64 if values.dtype == np.float64 else np.float32  # 1e-300 must not become 0 first
        normalized = self.normalization.transform(np.asarray(values, dtype=precision)).astype(np.float32, copy=False)
        return self._run(self.network.encoder, normalized, self.latent_size)

    def decode(self, latent: np.ndarray) -> np.ndarray:
        """Float32 latent ``(n, latent)`` -> reconstructed physical values ``(n, D)``."""
        latent = np.asarray(latent, dtype=np.float32)
        if latent.ndim != 2 or latent.shape[1] != self.latent_size:
            raise ModelMismatchError(f"expected latent values of shape (n, {self.latent_size}), got {latent.shape}")
        normalized = self._run(self.network.decoder, latent, self.featureset.n_features)
        with np.errstate(over="ignore"):
            return self.normalization.inverse_transform(normalized)

    def reconstruct(self, values: np.ndarray) -> np.ndarray:
        return self.decode(self.encode(values))

    # -- files --------------------------------------------------------------------------------------
    def to_bytes(self, parts: Iterable[str] | None = None) -> bytes:
        """The model file's bytes (optionally with only some parts, e.g. ``("decoder",)``)."""
        parts = tuple(parts or self.parts)
        missing = set(parts) - set(self.parts)
        if missing:
            raise ModelFormatError(f"this model does not hold {sorted(missing)}")
        header = json.dumps(self.header(parts), sort_keys=True).encode()
        buffer = io.BytesIO()
        np.savez(buffer, **{_HEADER_KEY: np.frombuffer(header, dtype=np.uint8)}, **self._tensors(parts))
        return buffer.getvalue()

    def save(self, path: str | PathLike[str], *, overwrite: bool = False) -> Path:
        """Write the model file (atomically; an existing file only with ``overwrite``); returns its path."""
        path = Path(path)
        with atomic_output(path, overwrite=overwrite) as tmp:
            tmp.write_bytes(self.to_bytes())
        return path

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "<bytes>") -> HepaeModel:
        """Rebuild a model from :meth:`to_bytes` output, with no pickle and full validation.

        Every size the file declares is checked before it is used (see the module docstring), for model
        files and for decoders embedded in compressed files alike.

        Parameters
        ----------
        data
            The bytes of a model file.
        source
            The file they come from, for messages.

        Raises
        ------
        ModelFormatError
            One line naming ``source``, what is wrong and what was expected.
        """
        header, arrays = _read_archive(data, source)
        if _model_id(arrays) != header["model_id"]:
            raise ModelFormatError(f"{source}: tensor checksum mismatch (file corrupted or edited)")
        try:
            featureset = FeatureSet.from_dict(header["featureset"], source=f"embedded in {source}")
        except HepaeError as err:
            raise ModelFormatError(str(err)) from None
        try:
            normalization = ColumnTransform.from_config(header["normalization"])
        except (HepaeError, TypeError, ValueError, KeyError) as err:
            raise ModelFormatError(f"{source}: its normalization cannot be rebuilt: {_short(err, 200)}") from None
        spec = ArchSpec.from_dict(header["architecture"])
        if not spec.n_features == featureset.n_features == normalization.n_columns == len(normalization.names):
            raise ModelFormatError(
                f"{source}: architecture ({spec.n_features} inputs), normalization ({normalization.n_columns} "
                f"columns, {len(normalization.names)} names) and feature set '{featureset.name}' "
                f"({featureset.n_features} columns) disagree")
        network = Autoencoder(spec)
        network.load_state_dict({k: torch.from_numpy(v) for k, v in arrays.items()}, strict=False)
        return cls(network, featureset, normalization, header["training"], header["parts"])


def load_model(path: str | PathLike[str]) -> HepaeModel:
    """Read a model file written by :meth:`HepaeModel.save` (pickle-free)."""
    from hepae.io.sources import check_input_file

    path = Path(path)
    try:
        check_input_file(path, "model file")  # a FIFO, a symbolic link loop: said as such, never opened
    except InputFileError as err:
        raise ModelFormatError(str(err)) from None
    size = path.stat().st_size
    if size > MAX_MODEL_BYTES:  # before reading it
        raise ModelFormatError(f"{path} is {size} bytes; a hepae model file is at most {MAX_MODEL_BYTES} bytes "
                               f"({MAX_PARAMETERS:,} parameters)")
    return HepaeModel.from_bytes(path.read_bytes(), source=str(path))
