"""Autoencoder networks: configurable MLPs covering the original research code's architectures.

* ``AE_bn_LeakyReLU``: every layer is Linear -> LeakyReLU(0.01) -> BatchNorm1d, the latent layer too;
  the output layer is a plain Linear (seed: 4-400-400-200-3-200-400-400-4, 27-200-200-200-N-...).
* ``AE_3D_200``: Linear layers with Tanh between them, none on the output
  (seed: 4-200-100-50-3-50-100-200-4); the encoder's latent is linear and the decoder starts with Tanh.

An :class:`ArchSpec` is plain data (JSON), so a model file describes its network completely.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from hepae.errors import ModelFormatError

ARCHITECTURES: dict[str, dict[str, Any]] = {
    "AE_bn_LeakyReLU": {"hidden": [400, 400, 200], "activation": "leaky_relu", "batchnorm": True},
    "AE_3D_200": {"hidden": [200, 100, 50], "activation": "tanh", "batchnorm": False},
}


@dataclass(frozen=True)
class ArchSpec:
    """Shape of an autoencoder: ``n_features - hidden... - latent - reversed(hidden)... - n_features``."""

    name: str
    n_features: int
    latent: int
    hidden: tuple[int, ...]
    activation: str
    batchnorm: bool

    @classmethod
    def named(cls, name: str, n_features: int, latent: int, hidden: list[int] | None = None) -> ArchSpec:
        if name not in ARCHITECTURES:
            raise ModelFormatError(f"unknown architecture {name!r}; choose one of {sorted(ARCHITECTURES)}")
        preset = ARCHITECTURES[name]
        if latent < 1 or n_features < 1:
            raise ModelFormatError(f"latent size and number of features must be positive (got {latent}, {n_features})")
        hidden_sizes = tuple(hidden or preset["hidden"])
        return cls(name, n_features, latent, hidden_sizes, preset["activation"], preset["batchnorm"])

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ArchSpec:
        try:
            return cls(d["name"], int(d["n_features"]), int(d["latent"]), tuple(int(h) for h in d["hidden"]),
                       d["activation"], bool(d["batchnorm"]))
        except (KeyError, TypeError, ValueError) as err:
            raise ModelFormatError(f"invalid architecture description {d!r}: {err}") from None

    @property
    def layout(self) -> str:
        nodes = [self.n_features, *self.hidden, self.latent, *reversed(self.hidden), self.n_features]
        return "-".join(str(n) for n in nodes)


def _activation(name: str) -> nn.Module:
    if name == "leaky_relu":
        return nn.LeakyReLU(0.01)
    if name == "tanh":
        return nn.Tanh()
    raise ModelFormatError(f"unknown activation {name!r}")


def _stack(sizes: list[int], spec: ArchSpec, *, last_plain: bool, lead_activation: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    if lead_activation:
        layers.append(_activation(spec.activation))
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if last_plain and i == len(sizes) - 2:
            break
        layers.append(_activation(spec.activation))
        if spec.batchnorm:
            layers.append(nn.BatchNorm1d(n_out))
    return nn.Sequential(*layers)


class Autoencoder(nn.Module):
    """An MLP autoencoder with separate :meth:`encode` and :meth:`decode`."""

    def __init__(self, spec: ArchSpec):
        super().__init__()
        self.spec = spec
        down = [spec.n_features, *spec.hidden, spec.latent]
        up = [spec.latent, *reversed(spec.hidden), spec.n_features]
        if spec.batchnorm:  # seed AE_bn_LeakyReLU: activation + BatchNorm on the latent too
            self.encoder = _stack(down, spec, last_plain=False, lead_activation=False)
            self.decoder = _stack(up, spec, last_plain=True, lead_activation=False)
        else:  # seed AE_3D_200: linear latent, decoder starts with the activation
            self.encoder = _stack(down, spec, last_plain=True, lead_activation=False)
            self.decoder = _stack(up, spec, last_plain=True, lead_activation=True)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def inference_forward(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``module(x)`` for inference (no gradients). On the CPU, a Sequential's Tanh layers are computed in
    place as ``2 / (1 + exp(-2x)) - 1``: about twice as fast as ``torch.tanh`` there, within 2e-7."""
    if x.device.type != "cpu" or not isinstance(module, nn.Sequential):
        return module(x)
    h, owned = x, False  # ``x`` may share memory with the caller's array: never changed in place
    for layer in module:
        if isinstance(layer, nn.Tanh):
            h = h if owned else h.clone()
            h.mul_(-2.0).exp_().add_(1.0).reciprocal_().mul_(2.0).sub_(1.0)
        else:
            h = layer(h)
        owned = True
    return h
