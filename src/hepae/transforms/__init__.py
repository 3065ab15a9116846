"""Invertible, JSON-serializable normalizations (one per column), in the style of scikit-learn."""

from hepae.transforms.base import Transform, get_transform, register_transform, transform_registry
from hepae.transforms.columns import ColumnTransform
from hepae.transforms.scalers import Affine, Identity, Log10, Quantile, Standard

__all__ = [
    "Affine",
    "ColumnTransform",
    "Identity",
    "Log10",
    "Quantile",
    "Standard",
    "Transform",
    "get_transform",
    "register_transform",
    "transform_registry",
]
