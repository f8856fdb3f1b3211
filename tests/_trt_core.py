"""A stand-in for the compiled core of TensorRT's Python package, and the C++ callers of a plugin.

TensorRT's bindings wheel (``tensorrt-cu12-bindings`` on PyPI) ships NVIDIA's ``tensorrt.plugin``
package as plain Python next to the compiled ``tensorrt.so``, which needs libnvinfer and a GPU.
``load_real_plugin_package`` imports that real Python package with only the compiled core replaced
by ``make_core``: enums, descriptor structs, dimension expressions, the plugin registry and the
base classes the pybind11 module defines. Everything else (the decorators and their signature
validation, ``TensorDesc``/``ShapeExpr``/``SymInt32``/``SymIntExprs``, ``KernelLaunchParams``, the
fake-shape pass, the type/format combinations) is NVIDIA's own code.

``parse_node`` and ``Builder`` play the C++ side: the ONNX parser (onnx-tensorrt's fallback plugin
importer: fields in the creator's field order, INT attributes as INT32 fields, then
``createPlugin``) and the builder's calls into ``IPluginV3QuickAOTBuild`` as
``python/src/infer/pyPlugin.cpp`` makes them, including its cast of ``get_kernel``'s result to
``(std::string, bytes)``.
"""

from __future__ import annotations

import enum
import importlib
import sys
import types
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

# --------------------------------------------------------------------------- the compiled core


class _Enum(enum.Enum):
    def __repr__(self) -> str:
        return f"{type(self).__name__}.{self.name}"


DataType = _Enum("DataType", "FLOAT HALF INT8 INT32 BOOL UINT8 FP8 BF16 INT64 INT4 FP4")
TensorFormat = _Enum("TensorFormat", "LINEAR CHW2 HWC8 CHW4 CHW16 CHW32 DHWC8 CDHW32 HWC DLA_LINEAR DLA_HWC4 HWC16 DHWC")
PluginFieldType = _Enum("PluginFieldType", "FLOAT16 FLOAT32 FLOAT64 INT8 INT16 INT32 CHAR DIMS UNKNOWN BF16 INT64 FP8 INT4 FP4")
DimensionOperation = _Enum("DimensionOperation", "SUM PROD MAX MIN SUB EQUAL LESS FLOOR_DIV CEIL_DIV")
QuickPluginCreationRequest = _Enum("QuickPluginCreationRequest", "UNKNOWN PREFER_JIT PREFER_AOT STRICT_JIT STRICT_AOT")
TensorRTPhase = _Enum("TensorRTPhase", "BUILD RUNTIME")
PluginArgType = _Enum("PluginArgType", "INT")
PluginArgDataType = _Enum("PluginArgDataType", "INT8 INT16 INT32")

_OPS = {
    "SUM": lambda a, b: a + b, "PROD": lambda a, b: a * b, "MAX": max, "MIN": min, "SUB": lambda a, b: a - b,
    "EQUAL": lambda a, b: int(a == b), "LESS": lambda a, b: int(a < b), "FLOOR_DIV": lambda a, b: a // b,
    "CEIL_DIV": lambda a, b: -(-a // b),
}


class IDimensionExpr:
    """A dimension expression: an int, a named symbol (a dynamic dim), or an operation on two."""

    def __init__(self, value: Any, op: Any = None, args: tuple = ()) -> None:
        self.value, self.op, self.args = value, op, args

    def symbols(self) -> set[str]:
        if self.op is not None:
            return set().union(*(a.symbols() for a in self.args))
        return {self.value} if isinstance(self.value, str) else set()

    def is_constant(self) -> bool:
        return not self.symbols()

    def get_constant_value(self) -> int:
        assert self.is_constant(), "not a constant"
        return self.evaluate({})

    def evaluate(self, env: dict[str, int]) -> int:
        if self.op is not None:
            return _OPS[self.op.name](*(a.evaluate(env) for a in self.args))
        return env[self.value] if isinstance(self.value, str) else int(self.value)


class IExprBuilder:
    def constant(self, value: int) -> IDimensionExpr:
        return IDimensionExpr(int(value))

    def operation(self, op: Any, a: IDimensionExpr, b: IDimensionExpr) -> IDimensionExpr:
        expr = IDimensionExpr(None, op, (a, b))
        return IDimensionExpr(expr.evaluate({})) if expr.is_constant() else expr  # TensorRT folds constants

    def declare_size_tensor(self, *args: Any) -> IDimensionExpr:
        raise NotImplementedError("size tensors are not used by tvexport's plugins")


class Dims(tuple):
    MAX_DIMS = 8

    def __new__(cls, value: Any = ()) -> Dims:
        return super().__new__(cls, () if isinstance(value, int) else tuple(int(v) for v in value))


class DimsExprs(list):
    def __init__(self, n: int) -> None:
        super().__init__([None] * n)


class PluginTensorDesc:
    def __init__(self) -> None:
        self.dims, self.type, self.format, self.scale = Dims(), None, TensorFormat.LINEAR, 1.0


class DynamicPluginTensorDesc:
    def __init__(self, dims: tuple, dtype: Any, profile: tuple[tuple, tuple, tuple], fmt: Any = TensorFormat.LINEAR) -> None:
        self.desc = PluginTensorDesc()
        self.desc.dims, self.desc.type, self.desc.format = Dims(dims), dtype, fmt
        self.min, self.opt, self.max = (Dims(p) for p in profile)


class PluginField:
    def __init__(self, name: str, data: Any = None, type: Any = None) -> None:  # noqa: A002 - TensorRT's keyword
        self.name, self.type = name, type
        self.data = np.frombuffer(data, dtype=np.int8) if isinstance(data, bytes) else np.asarray(data)


class PluginFieldCollection(list):
    pass


class _Base:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass


class _Registry:
    def __init__(self) -> None:
        self.creators: dict[tuple[str, str, str], Any] = {}

    def register_creator(self, creator: Any, namespace: str) -> bool:
        self.creators[(creator.name, creator.plugin_version, namespace)] = creator
        return True

    def get_creator(self, name: str, version: str, namespace: str = "") -> Any:
        return self.creators.get((name, version, namespace))


class Logger:
    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

    def __init__(self, *args: Any) -> None:
        self.messages: list[str] = []

    def log(self, severity: int, msg: str) -> None:
        self.messages.append(msg)


def make_core(version: str) -> types.ModuleType:
    """The compiled ``tensorrt`` module's surface that ``tensorrt.plugin`` touches."""
    core = types.ModuleType("tensorrt")
    core.__version__ = version  # type: ignore[attr-defined]
    for name, obj in {
        "DataType": DataType, "TensorFormat": TensorFormat, "PluginFieldType": PluginFieldType,
        "DimensionOperation": DimensionOperation, "QuickPluginCreationRequest": QuickPluginCreationRequest,
        "TensorRTPhase": TensorRTPhase, "PluginArgType": PluginArgType, "PluginArgDataType": PluginArgDataType,
        "IDimensionExpr": IDimensionExpr, "IExprBuilder": IExprBuilder, "Dims": Dims, "DimsExprs": DimsExprs,
        "PluginTensorDesc": PluginTensorDesc, "DynamicPluginTensorDesc": DynamicPluginTensorDesc,
        "PluginField": PluginField, "PluginFieldCollection": PluginFieldCollection, "Logger": Logger,
    }.items():
        setattr(core, name, obj)
    for name in ("ITensor", "ISymExpr", "IPluginV3", "IPluginV3QuickCore", "IPluginV3QuickBuild", "IPluginV3QuickRuntime",
                 "IPluginV3QuickAOTBuild", "IPluginCreatorV3Quick"):
        setattr(core, name, type(name, (_Base,), {}))
    core.float32, core.float16, core.int8, core.int32, core.int64, core.bool = (  # type: ignore[attr-defined]
        DataType.FLOAT, DataType.HALF, DataType.INT8, DataType.INT32, DataType.INT64, DataType.BOOL)
    registry = _Registry()
    core.get_plugin_registry = lambda: registry  # type: ignore[attr-defined]
    core.nptype = lambda t: {DataType.FLOAT: np.float32, DataType.HALF: np.float16, DataType.INT8: np.int8, DataType.INT32: np.int32}[t]  # type: ignore[attr-defined]
    return core


def unpack_plugin_package(wheel: Path, dest: Path) -> Path:
    """The wheel's ``tensorrt_bindings`` package directory (Python files only), unpacked into ``dest``."""
    with zipfile.ZipFile(wheel) as zf:
        for member in zf.namelist():
            if member.startswith("tensorrt_bindings/") and member.endswith(".py"):
                zf.extract(member, dest)
    return dest / "tensorrt_bindings"


def load_real_plugin_package(package_dir: Path, version: str) -> tuple[types.ModuleType, types.ModuleType]:
    """Put a fresh core at ``sys.modules['tensorrt']`` whose package path is the wheel's directory,
    so that ``import tensorrt.plugin`` runs NVIDIA's files. The caller restores ``sys.modules``."""
    for name in [m for m in sys.modules if m == "tensorrt" or m.startswith("tensorrt.")]:
        del sys.modules[name]
    core = make_core(version)
    core.__path__ = [str(package_dir)]  # type: ignore[attr-defined]
    sys.modules["tensorrt"] = core
    with warnings.catch_warnings():  # NVIDIA's docstrings hold invalid escapes ('\s'); not ours to fix
        warnings.simplefilter("ignore", DeprecationWarning)
        trtp = importlib.import_module("tensorrt.plugin")
    core.plugin = trtp  # type: ignore[attr-defined]
    return core, trtp


# --------------------------------------------------------------------------- the C++ callers


def parse_node(core: types.ModuleType, node: Any, *, pass_node_name: bool, prefer_aot: bool = True) -> Any:
    """onnx-tensorrt's fallback importer for one plugin node (onnxOpImporters.cpp, FallbackPluginImporter;
    importerUtils.cpp, loadFields and createPlugin): find the creator by op type, ``plugin_version``
    (default "1") and ``plugin_namespace`` (default "", then the node's domain), load the creator's
    declared fields from the node's attributes (INT/INTS as INT32, FLOAT/FLOATS as FLOAT32, STRING
    as CHAR; absent ones skipped), and create the plugin with the op type (current parsers) or the
    node name (older ones) as its name. The creation request is the node's attribute ``aot`` when
    present, read as the parser reads it (its INT value as an int32, 0 for any other type; nonzero:
    STRICT_AOT, 0: STRICT_JIT), else the network's preference
    (``prefer_aot``: the PREFER_AOT_PYTHON_PLUGINS flag tvexport.trt.build sets; else UNKNOWN)."""
    from onnx import AttributeProto, helper

    attrs = {a.name: a for a in node.attribute}
    version = attrs["plugin_version"].s.decode() if "plugin_version" in attrs else "1"
    namespace = attrs["plugin_namespace"].s.decode() if "plugin_namespace" in attrs else ""
    creator = core.get_plugin_registry().get_creator(node.op_type, version, namespace)
    if creator is None:  # the fallback to the node's domain
        namespace = node.domain
        creator = core.get_plugin_registry().get_creator(node.op_type, version, namespace)
    if creator is None:
        raise LookupError(f"Plugin not found: {node.op_type} version {version} namespace {namespace!r}")
    kinds = {AttributeProto.INT: (np.int32, PluginFieldType.INT32), AttributeProto.INTS: (np.int32, PluginFieldType.INT32),
             AttributeProto.FLOAT: (np.float32, PluginFieldType.FLOAT32), AttributeProto.FLOATS: (np.float32, PluginFieldType.FLOAT32)}
    fields = []
    for f in creator.field_names:
        if f.name not in attrs:
            continue  # the parser warns and leaves it out
        a = attrs[f.name]
        if a.type == AttributeProto.STRING:
            fields.append(PluginField(f.name, a.s, PluginFieldType.CHAR))
        else:
            dtype, kind = kinds[a.type]
            fields.append(PluginField(f.name, np.array(helper.get_attribute_value(a), dtype=dtype).reshape(-1), kind))
    if "aot" in attrs:  # static_cast<bool>(attrs.get<int>("aot", 0)): the proto's int64 ``i`` as an int32 (0 for a non-INT attribute)
        aot = (attrs["aot"].i + 2**31) % 2**32 - 2**31
        request = QuickPluginCreationRequest.STRICT_AOT if aot else QuickPluginCreationRequest.STRICT_JIT
    else:
        request = QuickPluginCreationRequest.PREFER_AOT if prefer_aot else QuickPluginCreationRequest.UNKNOWN
    name = node.name if pass_node_name else node.op_type
    return creator.create_plugin(name, namespace, PluginFieldCollection(fields), TensorRTPhase.BUILD, request)


class _SymSetter:
    def __init__(self) -> None:
        self.nbSymExprs = 0
        self.items: dict[int, Any] = {}

    def __setitem__(self, i: int, value: Any) -> None:
        self.items[i] = value


class Builder:
    """The builder's calls into one AOT plugin for an NCHW input with a dynamic batch ``N``.

    An exception a callback raises propagates here, for the tests to see; TensorRT's C++ side
    catches it, prints it to std::cerr and fails the call (python/src/infer/pyPlugin.cpp,
    PLUGIN_API_CATCH), which is why the plugin keeps it for the build (``tvexport.trt._env.plugin_failures``)."""

    def __init__(self, version: str, plugin: Any, inputs: list[tuple[tuple, Any]], profile: tuple[int, int, int]) -> None:
        self.version = tuple(int(v) for v in version.split(".")[:2])
        self.plugin, self.inputs, self.profile = plugin, inputs, profile
        self.builder = IExprBuilder()
        self.in_exprs = [[IDimensionExpr("N" if d == -1 else d) for d in shape] for shape, _ in inputs]

    def _dyn(self, shape: tuple, dtype: Any) -> DynamicPluginTensorDesc:
        lo, opt, hi = ([b if d == -1 else d for d in shape] for b in self.profile)
        return DynamicPluginTensorDesc(shape, dtype, (lo, opt, hi))

    def output(self) -> tuple[Any, IDimensionExpr]:
        """Output type (network types in) and output dims (expressions)."""
        types_ = self.plugin.get_output_data_types([t for _, t in self.inputs], [len(s) for s, _ in self.inputs])
        exprs = self.plugin.get_output_shapes([list(e) for e in self.in_exprs], [], self.builder)
        self.out_type, self.out_exprs = types_[0], exprs[0]
        return types_[0], exprs[0]

    def combinations(self) -> list[tuple]:
        """The plugin's type combinations, (input types..., output type) each."""
        shape = tuple(-1 if e.symbols() else e.evaluate({}) for e in self.out_exprs)
        in_out = [self._dyn(s, t) for s, t in self.inputs] + [self._dyn(shape, self.out_type)]
        flat = self.plugin.get_supported_format_combinations(in_out, len(self.inputs))
        n = len(in_out)
        combos = [tuple(d.type for d in flat[i: i + n]) for i in range(0, len(flat), n)]
        assert all(d.format == TensorFormat.LINEAR for d in flat)
        self.out_shape = shape
        return combos

    def kernels(self, combo: tuple) -> list[dict]:
        """For one combination: configure, every valid tactic's launch parameters and kernel, as
        TensorRT asks for them (pyPlugin.cpp), launch dims as functions of N."""
        shapes = [s for s, _ in self.inputs] + [self.out_shape]
        in_out = [self._dyn(s, t) for s, t in zip(shapes, combo)]
        n_in = len(self.inputs)
        self.plugin.configure_plugin(in_out[:n_in], in_out[n_in:])
        out = []
        for tactic in self.plugin.get_valid_tactics() or [0]:
            self.plugin.set_tactic(tactic)
            launch, setter = types.SimpleNamespace(), _SymSetter()
            self.plugin.get_launch_params([list(e) for e in self.in_exprs], in_out, n_in, launch, setter, self.builder)
            name, ptx = self.plugin.get_kernel([d.desc for d in in_out[:n_in]], [d.desc for d in in_out[n_in:]])
            # pyPlugin.cpp: result.cast<std::tuple<std::string, py::bytes>>()
            assert isinstance(name, (str, bytes)) and isinstance(ptx, bytes), (type(name), type(ptx))
            name = name.decode() if isinstance(name, bytes) else name
            if self.version < (10, 14):
                # getKernel keeps only c_str() of a temporary std::string: the bytes survive only in
                # its inline buffer (libstdc++: up to 15 characters), never in a freed heap block.
                assert len(name.encode()) <= 15, f"kernel name {name!r} would be read from freed memory on TensorRT {self.version}"
            dims = {f: getattr(launch, f).expr for f in ("grid_x", "grid_y", "grid_z", "block_x", "block_y", "block_z", "shared_mem")}
            assert setter.nbSymExprs == len(setter.items)
            extra = [setter.items[i] for i in range(setter.nbSymExprs)]
            assert all(e.type == PluginArgType.INT and e.dtype == PluginArgDataType.INT32 for e in extra)
            # What the engine will launch at the profile's largest batch must be launchable:
            # cuLaunchKernel refuses gridDim.x > 2**31 - 1, gridDim.y/z > 65535 and blocks over 1024
            # threads (CUDA C Programming Guide, "Compute Capabilities"), and TensorRT passes the
            # extra args as the INT32 that SymInt32 declares (tensorrt/plugin/_tensor.py,
            # SymExprImpl: PluginArgDataType.INT32), so a larger value would be truncated.
            at_max = {f: e.evaluate({"N": self.profile[2]}) for f, e in dims.items()}
            assert 1 <= at_max["grid_x"] <= 2**31 - 1 and at_max["grid_y"] <= 65535 and at_max["grid_z"] <= 65535, at_max
            assert at_max["block_x"] * at_max["block_y"] * at_max["block_z"] <= 1024, at_max
            assert all(-(2**31) <= e.expr.evaluate({"N": self.profile[2]}) <= 2**31 - 1 for e in extra)
            out.append({
                "tactic": tactic, "name": name, "ptx": ptx.decode(),
                "launch": lambda n, dims=dims: {f: e.evaluate({"N": n}) for f, e in dims.items()},
                "extra": lambda n, extra=extra: [e.expr.evaluate({"N": n}) for e in extra],
            })
        return out
