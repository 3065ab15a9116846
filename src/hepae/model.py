"""The trained model a user handles: network + feature set + fitted normalization + training summary.

A model file is an ``.npz`` archive (a zip of ``.npy`` arrays) read with ``allow_pickle=False``: a JSON
header (``schemas/model.schema.json``) stored as a byte array, and one array per tensor. Loading never
unpickles and never runs code from the file. The same format, holding only the decoder, is embedded in
every compressed file.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Iterable
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hepae._version import __version__
from hepae.devices import resolve_device
from hepae.errors import HepaeError, ModelFormatError, ModelMismatchError
from hepae.features import FeatureSet
from hepae.networks import ArchSpec, Autoencoder, inference_forward
from hepae.schema import validate_versioned
from hepae.transforms import ColumnTransform
from hepae.writing import atomic_output

MODEL_FORMAT_VERSION = 1
_HEADER_KEY = "hepae_header"
_INFERENCE_BATCH = 8192  # bounds activation memory (8192 x 200 floats per layer); MLPs gain nothing from more


def _model_id(tensors: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        digest.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]


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
        normalized = self.normalization.transform(np.asarray(values, dtype=np.float32))
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
        """Rebuild a model from :meth:`to_bytes` output, with no pickle and full validation."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as archive:
                if _HEADER_KEY not in archive.files:
                    raise ModelFormatError(f"{source} is not a hepae model file (no '{_HEADER_KEY}' entry)")
                header = json.loads(archive[_HEADER_KEY].tobytes().decode())
                arrays = {k: archive[k] for k in archive.files if k != _HEADER_KEY}
        except HepaeError:
            raise
        except (ValueError, OSError, zipfile.BadZipFile, EOFError, UnicodeDecodeError, KeyError) as err:
            raise ModelFormatError(f"{source} is not a readable hepae model file: {err}") from None
        validate_versioned(header, "model.schema.json", what=f"model header of {source}",
                           max_version=MODEL_FORMAT_VERSION, error=ModelFormatError)
        if set(arrays) != set(header["tensors"]):
            raise ModelFormatError(f"{source}: tensors in the file do not match its header")
        for name, info in header["tensors"].items():
            if arrays[name].dtype.name != info["dtype"] or list(arrays[name].shape) != info["shape"]:
                raise ModelFormatError(f"{source}: tensor '{name}' does not match its header")
        if _model_id(arrays) != header["model_id"]:
            raise ModelFormatError(f"{source}: tensor checksum mismatch (file corrupted or edited)")
        featureset = FeatureSet.from_dict(header["featureset"], source=f"embedded in {source}")
        normalization = ColumnTransform.from_config(header["normalization"])
        network = Autoencoder(ArchSpec.from_dict(header["architecture"]))
        expected = {k: v for k, v in network.state_dict().items() if k.split(".", 1)[0] in header["parts"]}
        if set(expected) != set(arrays):
            raise ModelFormatError(f"{source}: tensors do not fit architecture {network.spec.layout}")
        for name, tensor in expected.items():
            if tuple(tensor.shape) != arrays[name].shape:
                raise ModelFormatError(f"{source}: tensor '{name}' has shape {arrays[name].shape}, "
                                       f"architecture expects {tuple(tensor.shape)}")
        network.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in arrays.items()}, strict=False)
        return cls(network, featureset, normalization, header["training"], header["parts"])


def load_model(path: str | PathLike[str]) -> HepaeModel:
    """Read a model file written by :meth:`HepaeModel.save` (pickle-free)."""
    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(f"model file {path} does not exist")
    return HepaeModel.from_bytes(path.read_bytes(), source=str(path))
