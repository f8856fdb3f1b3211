"""The zoo: reference-compatible face and segmentation networks and their baselines."""

from .registry import (
    FAMILIES,
    ArchConfig,
    ArchSpec,
    Atom,
    TVSettings,
    config_of,
    create_model,
    detect_arch,
    list_models,
    resolve_arch,
)

__all__ = [
    "FAMILIES",
    "ArchConfig",
    "ArchSpec",
    "Atom",
    "TVSettings",
    "config_of",
    "create_model",
    "detect_arch",
    "list_models",
    "resolve_arch",
]
