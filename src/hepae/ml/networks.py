"""Autoencoder networks: configurable MLPs covering the original research code's architectures.

* ``AE_bn_LeakyReLU``: every layer is Linear -> LeakyReLU(0.01) -> BatchNorm1d, the latent layer too;
  the output layer is a plain Linear (seed: 4-400-400-200-3-200-400-400-4, 27-200-200-200-N-...).
* ``AE_3D_200``: Linear layers with Tanh between them, none on the output
  (seed: 4-200-100-50-3-50-100-200-4); the encoder's latent is linear and the decoder starts with Tanh.

An :class:`ArchSpec` is plain data (JSON), so a model file describes its network completely. Its
:meth:`ArchSpec.tensor_shapes` are computed without building the network, so that a model file's
tensors can be checked against its architecture, and the architecture against :data:`MAX_PARAMETERS`
and :data:`MAX_HIDDEN_LAYERS`, before anything is allocated.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from hepae.errors import ModelFormatError

ARCHITECTURES: dict[str, dict[str, Any]] = {
    "AE_bn_LeakyReLU": {"hidden": [400, 400, 200], "activation": "leaky_relu", "batchnorm": True},
    "AE_3D_200": {"hidden": [200, 100, 50], "activation": "tanh", "batchnorm": False},
}
MAX_PARAMETERS = 50_000_000
"""Most numbers (weights, biases, batch-norm statistics) a hepae network may hold: 200 MB as float32,
about 250 times the seed's 27-200-200-200-N network. Larger architectures are refused before a
network is built or a model file's tensors are read."""
MAX_HIDDEN_LAYERS = 32
"""Most hidden layers on each side of the latent layer."""
_BATCHNORM_TENSORS = ("weight", "bias", "running_mean", "running_var")


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
        spec = cls(name, n_features, latent, hidden_sizes, preset["activation"], preset["batchnorm"])
        spec.check_size()
        return spec

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

    def _plans(self) -> dict[str, list[tuple[str, int, int]]]:
        """The layers of ``encoder`` and ``decoder`` (see :func:`_plan`), as :class:`Autoencoder` builds them."""
        down = [self.n_features, *self.hidden, self.latent]
        up = [self.latent, *reversed(self.hidden), self.n_features]
        if self.batchnorm:  # seed AE_bn_LeakyReLU: activation + BatchNorm on the latent too
            return {"encoder": _plan(down, self, last_plain=False, lead_activation=False),
                    "decoder": _plan(up, self, last_plain=True, lead_activation=False)}
        # seed AE_3D_200: linear latent, decoder starts with the activation
        return {"encoder": _plan(down, self, last_plain=True, lead_activation=False),
                "decoder": _plan(up, self, last_plain=True, lead_activation=True)}

    def tensor_shapes(self) -> dict[str, tuple[int, ...]]:
        """Name -> shape of every tensor in the network's ``state_dict``, computed without building it.

        Returns
        -------
        dict
            e.g. ``{"encoder.0.weight": (200, 4), "encoder.0.bias": (200,), ...}``; batch-norm layers
            add ``running_mean``, ``running_var`` and a 0-d ``num_batches_tracked`` (int64).
        """
        shapes: dict[str, tuple[int, ...]] = {}
        for part, plan in self._plans().items():
            for index, (kind, n_in, n_out) in enumerate(plan):
                if kind == "linear":
                    shapes[f"{part}.{index}.weight"] = (n_out, n_in)
                    shapes[f"{part}.{index}.bias"] = (n_out,)
                elif kind == "batchnorm":
                    shapes.update({f"{part}.{index}.{name}": (n_out,) for name in _BATCHNORM_TENSORS})
                    shapes[f"{part}.{index}.num_batches_tracked"] = ()
        return shapes

    @property
    def n_parameters(self) -> int:
        """Numbers held by all tensors of :meth:`tensor_shapes` (exact, as a Python int)."""
        return sum(math.prod(shape) for shape in self.tensor_shapes().values())

    def check_size(self, where: str = "") -> None:
        """Refuse an architecture beyond :data:`MAX_HIDDEN_LAYERS` or :data:`MAX_PARAMETERS`.

        Parameters
        ----------
        where
            Prefix of the message naming the file concerned (e.g. ``"jets.hepae: "``).

        Raises
        ------
        ModelFormatError
            With the number of layers or parameters and the limit.
        """
        if len(self.hidden) > MAX_HIDDEN_LAYERS:
            raise ModelFormatError(f"{where}architecture {self.name!r} has {len(self.hidden)} hidden layers; "
                                   f"hepae networks have at most {MAX_HIDDEN_LAYERS}")
        if min(self.n_features, self.latent, *self.hidden) < 1:
            raise ModelFormatError(f"{where}architecture {self.layout} has a layer without nodes")
        n = self.n_parameters
        if n > MAX_PARAMETERS:
            raise ModelFormatError(f"{where}architecture {self.layout} has {n:,} parameters; "
                                   f"hepae networks have at most {MAX_PARAMETERS:,}")


def _activation(name: str) -> nn.Module:
    if name == "leaky_relu":
        return nn.LeakyReLU(0.01)
    if name == "tanh":
        return nn.Tanh()
    raise ModelFormatError(f"unknown activation {name!r}")


def _plan(sizes: list[int], spec: ArchSpec, *, last_plain: bool, lead_activation: bool) -> list[tuple[str, int, int]]:
    """The layers of one half, in order: ``("linear", n_in, n_out)``, ``("activation", n, n)`` or
    ``("batchnorm", n, n)``. Both :func:`_stack` and :meth:`ArchSpec.tensor_shapes` follow it."""
    layers: list[tuple[str, int, int]] = []
    if lead_activation:
        layers.append(("activation", sizes[0], sizes[0]))
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(("linear", n_in, n_out))
        if last_plain and i == len(sizes) - 2:
            break
        layers.append(("activation", n_out, n_out))
        if spec.batchnorm:
            layers.append(("batchnorm", n_out, n_out))
    return layers


def _stack(plan: list[tuple[str, int, int]], spec: ArchSpec) -> nn.Sequential:
    layers: list[nn.Module] = []
    for kind, n_in, n_out in plan:
        if kind == "linear":
            layers.append(nn.Linear(n_in, n_out))
        elif kind == "batchnorm":
            layers.append(nn.BatchNorm1d(n_out))
        else:
            layers.append(_activation(spec.activation))
    return nn.Sequential(*layers)


class Autoencoder(nn.Module):
    """An MLP autoencoder with separate :meth:`encode` and :meth:`decode`."""

    def __init__(self, spec: ArchSpec):
        super().__init__()
        self.spec = spec
        plans = spec._plans()
        self.encoder = _stack(plans["encoder"], spec)
        self.decoder = _stack(plans["decoder"], spec)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def _inference_ops(module: nn.Sequential) -> list[tuple[str, torch.Tensor, torch.Tensor]] | None:
    """A Linear/Tanh Sequential as ``linear`` (W^T, b), ``sigmoid`` and ``affine`` (a, c) steps, with
    ``tanh(z) = 2 / (1 + exp(-2z)) - 1`` and its factors folded into the neighbouring Linear layers:
    three elementwise passes per activation instead of ``torch.tanh``'s slower one. None for other layers."""
    layers = list(module)
    if not layers or not all(isinstance(layer, nn.Linear | nn.Tanh) for layer in layers):
        return None
    ops: list[tuple[str, torch.Tensor, torch.Tensor]] = []
    none = torch.zeros(0)
    folded = False  # the last step left s, with the activation's value 2s - 1
    for i, layer in enumerate(layers):
        if isinstance(layer, nn.Linear):
            weight, bias = layer.weight.detach().double(), layer.bias.detach().double()
            if folded:
                weight, bias = 2 * weight, bias - weight.sum(dim=1)
            if i + 1 < len(layers) and isinstance(layers[i + 1], nn.Tanh):
                weight, bias = -2 * weight, -2 * bias  # the sigmoid step takes exp(-2z)
            ops.append(("linear", weight.t().float().contiguous(), bias.float()))
            folded = False
        else:
            if not ops or ops[-1][0] != "linear":  # a Tanh on the input or on an activation: -2z first
                ops.append(("affine", torch.tensor(-4.0 if folded else -2.0), torch.tensor(2.0 if folded else 0.0)))
            ops.append(("sigmoid", none, none))
            folded = True
    if folded:
        ops.append(("affine", torch.tensor(2.0), torch.tensor(-1.0)))
    return ops


def inference_forward(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``module(x)`` for inference (no gradients). On the CPU, a Linear/Tanh Sequential runs with its
    Tanh layers as ``1 / (1 + exp(.))`` and the rest folded into the Linear layers: about twice as fast
    as ``torch.tanh`` there, within ~1e-6 of ``module(x)``."""
    if x.device.type != "cpu" or not isinstance(module, nn.Sequential):
        return module(x)
    key = tuple((p.data_ptr(), p._version) for p in module.parameters())  # refolded after any training step
    cached = getattr(module, "_hepae_inference", None)
    if cached is None or cached[0] != key:
        cached = (key, _inference_ops(module))
        module._hepae_inference = cached
    ops = cached[1]
    if ops is None:
        return module(x)
    h = x
    for kind, a, c in ops:
        if kind == "linear":
            h = torch.addmm(c, h, a)
        elif kind == "sigmoid":
            h.exp_().add_(1.0).reciprocal_()
        else:
            h = h * a + c
    return h
