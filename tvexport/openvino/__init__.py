"""OpenVINO: a C++ extension that runs ``tvexport::tv_dwconv`` nodes fused on the CPU plugin, and
a runner for tvexport's ONNX graphs (portable or plugin form).

The extension's sources ship in ``ext/`` (package data) and are built with the machine's
compiler against the installed openvino wheel (``build_extension``, or
``tvexport extension build openvino``); runners build it into the cache on first use. Importing
this package does not import openvino.

    from tvexport.openvino import OpenVinoRunner, build_extension
    lib = build_extension().path                 # cached by source hash
    run = OpenVinoRunner("model_plugin.onnx", threads=2)
    y = run(x)                                   # NCHW float32 in, float32 out

``missing_build_tool()`` says (one line) what building the extension lacks here, ``find_compiler()``
and ``compiler_id()`` which C++ compiler it uses (``compiler_command()``: with the arguments ``$CXX``
may add), ``build_key(lib)`` which build a library is.
"""

from ._build import (
    ExtensionBuild,
    build_extension,
    build_key,
    cache_dir,
    compiler_command,
    compiler_id,
    extension_path,
    find_compiler,
    missing_build_tool,
)
from .runtime import PRECISIONS, OpenVinoRunner

__all__ = [
    "PRECISIONS", "ExtensionBuild", "OpenVinoRunner", "build_extension", "build_key", "cache_dir", "compiler_command", "compiler_id",
    "extension_path", "find_compiler", "missing_build_tool",
]
