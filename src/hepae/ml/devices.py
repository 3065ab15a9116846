"""Choosing the torch device: ``"auto"`` is CUDA when available, else the CPU."""

from __future__ import annotations

import torch

from hepae.errors import HepaeError


class DeviceError(HepaeError, ValueError):
    """An unknown or unavailable torch device was asked for."""


def _backend(kind: str) -> object | None:
    """The torch module of an accelerator kind (``torch.cuda``, ``torch.mps``, ``torch.xpu``), if any."""
    return getattr(torch, kind, None) if kind in ("cuda", "mps", "xpu") else None


def _count(kind: str) -> int:
    """How many devices of ``kind`` this machine has (0 when torch was built without it)."""
    if kind == "mps":
        available = getattr(getattr(torch.backends, "mps", None), "is_available", lambda: False)()
        return 1 if available else 0
    module = _backend(kind)
    try:
        if module is None or not module.is_available():  # type: ignore[attr-defined]
            return 0
        return int(module.device_count())  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - a broken driver counts as no device
        return 0


def available_devices() -> list[str]:
    """The devices this machine has, as ``--device`` takes them: ``cpu``, ``cuda:0``, ``cuda:1``, ..."""
    names = ["cpu"]
    for kind in ("cuda", "xpu"):
        names += [f"{kind}:{i}" for i in range(_count(kind))]
    if _count("mps"):
        names.append("mps")
    return names


def _listing() -> str:
    return f"devices on this machine: {', '.join(available_devices())} (or auto)"


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ... as a :class:`torch.device` that exists here.

    Parameters
    ----------
    name
        ``"auto"`` (CUDA if available, else the CPU), a device string or a :class:`torch.device`.

    Returns
    -------
    torch.device

    Raises
    ------
    DeviceError
        The name is not a torch device (``"tpu"``), or this machine does not have it (``"cuda:3"`` with
        one GPU, ``"cuda"`` without CUDA); the message lists the devices that exist.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = name if isinstance(name, torch.device) else torch.device(str(name).strip())
    except (RuntimeError, TypeError, ValueError):
        raise DeviceError(f"unknown torch device {str(name)!r}; {_listing()}") from None
    if device.type == "cpu":
        return device
    count = _count(device.type)
    if device.type not in ("cuda", "mps", "xpu"):
        raise DeviceError(f"device {str(name)!r}: hepae runs on cpu, cuda, mps or xpu devices; {_listing()}")
    if count == 0 or (device.index is not None and device.index >= count):
        has = f"it has {count} {device.type.upper()} device(s)" if count else f"it has no {device.type.upper()} device"
        raise DeviceError(f"device {str(name)!r} does not exist on this machine ({has}); {_listing()}")
    return device
