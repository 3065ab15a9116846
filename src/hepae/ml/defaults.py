"""Training defaults, importable without torch (the command line shows them in ``--help``)."""

from typing import Any

DEFAULTS: dict[str, Any] = {
    "arch": "AE_3D_200",
    "latent": 3,
    "epochs": 20,
    "batch_size": 256,
    "max_lr": 3e-3,
    "weight_decay": 1e-2,
    "val_fraction": 0.1,
    "normalization": "featureset",
    "seed": 0,
}
