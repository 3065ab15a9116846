"""Choosing the torch device: ``"auto"`` is CUDA when available, else the CPU."""

from __future__ import annotations

import torch

from hepae.errors import HepaeError


class DeviceError(HepaeError, ValueError):
    """An unknown or unavailable torch device was asked for."""


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ... as a usable :class:`torch.device`."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as err:
        raise DeviceError(f"unknown torch device {name!r} ({err}); use auto, cpu or cuda") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device {name!r} asked for, but CUDA is not available here; use --device cpu or auto")
    return device
