"""TensorRT deployment: the ``tv_dwconv`` plugin, engine building and a runner.

Importing this package does not import TensorRT: ``tvexport.trt.plugin`` registers the plugin,
``tvexport.trt.build.build_engine`` builds an engine (``tvexport build``) and
``tvexport.trt.runner.load_runner`` runs one (backend ``tensorrt``). Only this package imports
``tensorrt``; without it those raise ``MissingDependencyError`` with the install command.
"""

from __future__ import annotations

from .._depthwise import PLUGIN_ID
from ._spec import (
    MIN_TENSORRT,
    BuildPlan,
    Profile,
    TVAttrs,
    infer_output_dims,
    parse_attrs,
    plan_build,
    profile_shapes,
    resolve_precision,
    sidecar_contents,
    sidecar_path,
)

__all__ = [
    "MIN_TENSORRT",
    "PLUGIN_ID",
    "BuildPlan",
    "Profile",
    "TVAttrs",
    "infer_output_dims",
    "parse_attrs",
    "plan_build",
    "profile_shapes",
    "resolve_precision",
    "sidecar_contents",
    "sidecar_path",
]
