"""Each runtime's imports stay in its own room: tensorrt only in tvexport/trt/, triton only in
tvexport/kernels/, openvino only in tvexport/openvino/ and the profile backends, at module level
and inside functions alike (an import inside a function breaks the rule as much as one at the top:
a user without that package gets a raw ImportError from the wrong module)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "tvexport"
ROOMS = {
    "tensorrt": ("trt/",),
    "triton": ("kernels/",),
    "openvino": ("openvino/", "profile/backends/"),
    "onnxruntime": ("export/", "profile/backends/"),
}


def imported_packages(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, top-level package) of every absolute import in ``tree``, however deeply nested."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name.split(".")[0]) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def test_the_scan_sees_imports_inside_functions() -> None:
    tree = ast.parse("def f():\n    if True:\n        from tensorrt import Logger\n    import triton.language as tl\n")
    assert sorted(imported_packages(tree)) == [(3, "tensorrt"), (4, "triton")]


@pytest.mark.parametrize("package", sorted(ROOMS))
def test_runtime_imports_stay_in_their_room(package: str) -> None:
    outside = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith(ROOMS[package]):
            continue
        outside += [f"tvexport/{rel}:{line}" for line, top in imported_packages(ast.parse(path.read_text())) if top == package]
    assert not outside, f"{package} imported outside {', '.join('tvexport/' + r for r in ROOMS[package])}: {outside}"


FACADE = "__init__"
# Data flows one way (the project guide): checkpoint -> models -> bake -> export -> trt / kernels /
# openvino -> profile -> cli. A module may import its own stage and earlier ones only.
STAGES = {
    "errors": 0, "_io": 0, "artifacts": 0, "_depthwise": 0, "_version": 0,
    "checkpoint": 1,
    "models": 2, "layers": 2, "quantize": 2, "testing": 2,
    "bake": 3, "accuracy": 3, "resize": 3, "compile": 3, "summary": 3,
    "export": 4,
    "trt": 5, "kernels": 5, "openvino": 5,
    "profile": 6,
    "cli": 7, "__main__": 7,
    # The facade (tvexport/__init__.py) re-exports every stage, so it comes after all of them: a
    # module taking a name from it (``from . import __version__``) imports every stage back.
    FACADE: 8,
}
# The one sanctioned exception: a TV layer's eager CUDA forward runs the fused Triton kernel,
# imported inside that method (tvexport.kernels never imports tvexport.layers).
SANCTIONED = {("layers", "kernels")}


def resolved_imports(tree: ast.AST, package: tuple[str, ...]) -> list[tuple[int, str, list[str]]]:
    """(line, absolute module, names taken) of every import in ``tree``, however deeply nested;
    ``package`` is the importing module's package, e.g. ("tvexport", "export") (relative imports
    resolve against it). An ``import`` statement takes no names."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - (node.level - 1)]) if node.level else []
            module = ".".join(base + (node.module.split(".") if node.module else []))
            found.append((node.lineno, module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name, []) for a in node.names]
    return found


def internal_imports(path: Path, source: str | None = None) -> list[tuple[int, str]]:
    """(line, first component under tvexport) of every import of a tvexport module in ``path``
    (or in ``source``, read as if it were ``path``); ``FACADE`` for a name taken from the package itself."""
    package = ("tvexport", *path.relative_to(PACKAGE).parent.parts)
    found = []
    for line, module, names in resolved_imports(ast.parse(path.read_text() if source is None else source), package):
        top, *rest = module.split(".")
        if top != "tvexport":
            continue
        # ``from tvexport import bake`` and ``from . import bake`` take a module by name
        targets = [[n] for n in names] if not rest and names else [rest]
        found += [(line, t[0] if t and t[0] in STAGES else FACADE) for t in targets]
    return found


def test_the_scan_sees_names_taken_from_the_facade() -> None:
    """Before: ``from . import __version__`` (in bake, export/onnx, export/aoti) was dropped as no
    stage, hiding the cycle tvexport -> export -> _common -> bake -> tvexport."""
    code = "from . import __version__\nfrom ._version import __version__\nfrom . import checkpoint\nimport tvexport\nfrom tvexport import bake\n"
    assert internal_imports(PACKAGE / "bake.py", code) == [(1, FACADE), (2, "_version"), (3, "checkpoint"), (4, FACADE), (5, "bake")]
    assert internal_imports(PACKAGE / "export" / "onnx.py", "def f():\n    from .. import __version__\n") == [(2, FACADE)]


def test_imports_flow_one_way() -> None:
    against = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts == ("__init__",):
            continue  # the public facade re-exports every stage
        own = parts[0]
        assert own in STAGES, f"tvexport/{path.relative_to(PACKAGE)}: give its stage in STAGES"
        for line, target in internal_imports(path):
            if STAGES[target] > STAGES[own] and (own, target) not in SANCTIONED:
                against.append(f"tvexport/{path.relative_to(PACKAGE).as_posix()}:{line} ({own} imports {target})")
    assert not against, f"imports against checkpoint -> models -> bake -> export -> trt/kernels/openvino -> profile -> cli: {against}"


def _pyproject() -> dict:
    """pyproject.toml, parsed: tomllib is Python >= 3.11, and requires-python allows 3.10, where
    these tests take tomli or skip (before: they errored)."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        tomllib = pytest.importorskip("tomli", reason="Python 3.10 without tomli cannot read pyproject.toml")
    return tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())


def test_pyproject_reader_skips_without_a_toml_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tomllib", None)  # as on Python 3.10: import tomllib fails
    monkeypatch.setitem(sys.modules, "tomli", None)
    with pytest.raises(pytest.skip.Exception):
        _pyproject()


def test_version_is_written_once() -> None:
    """The version is written in tvexport/_version.py only: pyproject.toml declares it dynamic and has
    setuptools read that attribute (before: a second copy in pyproject.toml, kept equal by a test)."""
    pyproject = _pyproject()
    assert "version" not in pyproject["project"] and "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "tvexport._version.__version__"}


def test_built_metadata_carries_the_version() -> None:
    """What ``pip install .`` (not editable) records: the build backend's own metadata hook, run on the
    source tree in a subprocess, gives a wheel whose Version is ``tvexport.__version__``."""
    import subprocess
    import tempfile

    import tvexport
    from tvexport._version import __version__

    root = Path(__file__).resolve().parent.parent
    # pip builds in an isolated environment with the backend pyproject.toml requires; this test runs the
    # one installed here (torch requires setuptools), which may be older (Python 3.11's venv: 65.5)
    from packaging.requirements import Requirement
    from packaging.version import Version

    setuptools = pytest.importorskip("setuptools")
    required = Requirement(_pyproject()["build-system"]["requires"][0])
    if not required.specifier.contains(Version(setuptools.__version__)):
        pytest.skip(f"setuptools {setuptools.__version__} here; the build needs {required}")
    hook = (
        "import pathlib, sys, setuptools.build_meta as backend\n"
        "out = pathlib.Path(sys.argv[1])\n"  # read before the hook: setuptools rewrites sys.argv
        "d = backend.prepare_metadata_for_build_wheel(str(out))\n"
        "sys.stdout.write((out / d / 'METADATA').read_text())\n"
    )
    with tempfile.TemporaryDirectory() as out:
        done = subprocess.run([sys.executable, "-c", hook, out], cwd=root, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        metadata = done.stdout.split("\n\n")[0].splitlines()  # the headers; the README follows
    assert "Name: tvexport" in metadata and f"Version: {__version__}" in metadata
    assert tvexport.__version__ == __version__


def test_installed_metadata_carries_the_version() -> None:
    """The installed distribution (the editable install in development) records the same version;
    after a version change, reinstall (``pip install -e .``) to refresh it."""
    from importlib.metadata import PackageNotFoundError, version

    from tvexport._version import __version__

    try:
        installed = version("tvexport")
    except PackageNotFoundError:
        pytest.skip("tvexport is not installed (run from a source tree on PYTHONPATH)")
    assert installed == __version__, f"installed metadata says {installed}, tvexport/_version.py {__version__}: reinstall (pip install -e .)"


def test_external_data_name_is_written_once() -> None:
    """An ONNX export's external weights file, ``<output>.data``, is named by
    ``tvexport.artifacts.external_data_path`` only (before: ``+ ".data"`` in export/onnx.py twice and
    export/_dispatch.py, and ``"model.onnx.data"`` for onnxruntime's temporary copy)."""
    from tvexport.artifacts import external_data_path

    assert external_data_path(Path("out/m.onnx")) == Path("out/m.onnx.data")
    spelled = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and (node.value == ".data" or node.value.endswith(".onnx.data")):
                spelled.append(f"tvexport/{path.relative_to(PACKAGE).as_posix()}:{node.lineno}")
    assert [s.split(":")[0] for s in spelled] == ["tvexport/artifacts.py"], spelled


def test_plugin_identity_is_written_once() -> None:
    """The TV node's plugin name, namespace and version (what TensorRT's ONNX parser looks the plugin
    up by) are string literals in tvexport/_depthwise.py only; the ONNX exporter and the TensorRT
    path import them (before: written in both tvexport/export/_onnx_tv.py and tvexport/trt/_spec.py)."""
    names = {"PLUGIN_NAME", "PLUGIN_NAMESPACE", "PLUGIN_VERSION", "PLUGIN_OP", "PLUGIN_DOMAIN"}
    literal = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, ast.Constant):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                literal += [f"tvexport/{path.relative_to(PACKAGE).as_posix()}:{t.id}" for t in targets if isinstance(t, ast.Name) and t.id in names]
    assert sorted(literal) == ["tvexport/_depthwise.py:PLUGIN_NAME", "tvexport/_depthwise.py:PLUGIN_NAMESPACE", "tvexport/_depthwise.py:PLUGIN_VERSION"]
    from tvexport import _depthwise
    from tvexport.export import _onnx_tv

    assert (_onnx_tv.PLUGIN_OP, _onnx_tv.PLUGIN_DOMAIN) == (_depthwise.PLUGIN_NAME, _depthwise.PLUGIN_NAMESPACE) == ("tv_dwconv", "tvexport")
    assert _depthwise.PLUGIN_VERSION == "1"


def test_plugin_identity_is_imported_from_where_it_is_defined() -> None:
    """The plugin's names (PLUGIN_*, defined in tvexport/_depthwise.py) are imported from there, not
    relayed by a module that imported them (before: tvexport/trt/_spec.py imported plugin names it did
    not use for tvexport/trt/_onnx.py, tvexport/trt/plugin.py and the tests; tvexport/export/_onnx_tv.py
    relayed two to tvexport/export/_plugin_ref.py)."""
    tree = ast.parse((PACKAGE / "_depthwise.py").read_text())
    defined = {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name) and t.id.startswith("PLUGIN_")}
    assert defined == {"PLUGIN_ID", "PLUGIN_ID_I8", "PLUGIN_NAME", "PLUGIN_NAME_I8", "PLUGIN_NAMESPACE", "PLUGIN_VERSION"}
    root = PACKAGE.parent
    files = [(p, ("tvexport", *p.relative_to(PACKAGE).parent.parts)) for p in sorted(PACKAGE.rglob("*.py"))]
    files += [(p, ()) for p in sorted((root / "tests").glob("*.py")) + sorted((root / "benchmarks").glob("*.py"))]
    relayed = []
    for path, package in files:
        for line, module, names in resolved_imports(ast.parse(path.read_text()), package):
            if module.startswith("tvexport") and module != "tvexport._depthwise":
                relayed += [f"{path.relative_to(root).as_posix()}:{line} ({n} from {module})" for n in names if n in defined]
    assert not relayed, f"the plugin's names imported through another module (import them from tvexport._depthwise): {relayed}"


def test_plugin_identity_is_not_spelled_out_in_python() -> None:
    """Nor is the qualified op name ``tvexport::tv_dwconv`` written as a literal anywhere in the package
    (before: the torch custom op, tvexport/kernels/_op.py, spelled it itself): it is built from the
    names in tvexport/_depthwise.py, so renaming the plugin there renames every runtime's op."""
    from tvexport._depthwise import PLUGIN_NAME, PLUGIN_NAMESPACE

    qualified = {f"{PLUGIN_NAMESPACE}::{PLUGIN_NAME}", f"{PLUGIN_NAMESPACE}::{PLUGIN_NAME}_i8"}
    spelled = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in qualified:
                spelled.append(f"tvexport/{path.relative_to(PACKAGE).as_posix()}:{node.lineno}")
    assert not spelled, f"the plugin's qualified name written out (build it from tvexport._depthwise's PLUGIN_NAMESPACE/PLUGIN_NAME): {spelled}"
    import torch

    from tvexport.kernels import _op  # noqa: F401  (registers the op under the shared name)

    assert hasattr(getattr(torch.ops, PLUGIN_NAMESPACE), PLUGIN_NAME)


def test_openvino_sources_spell_the_python_definitions() -> None:
    """The C++ extension (tvexport/openvino/ext/tv_dwconv.cpp) cannot import tvexport/_depthwise.py, so
    it writes the node's identity and its largest k itself: they must be the Python side's, or
    OpenVINO would not convert the nodes tvexport exports (or would take a k the other paths refuse)."""
    import re

    from tvexport._depthwise import MAX_NODE_K, PLUGIN_NAME, PLUGIN_NAMESPACE

    source = (PACKAGE / "openvino" / "ext" / "tv_dwconv.cpp").read_text()
    conversions = re.findall(r'ConversionExtension>\(\s*"([^"]*)",\s*"([^"]*)"', source)
    assert conversions == [(PLUGIN_NAME, PLUGIN_NAMESPACE)], conversions
    assert re.findall(r"constexpr int64_t kMaxK = (\d+);", source) == [str(MAX_NODE_K)]


def version_imports_inside_functions(path: Path, source: str | None = None) -> list[int]:
    """Lines where a function in ``path`` (or ``source``, read as if it were ``path``) imports
    tvexport._version, however the import is spelled (``from . import _version`` too)."""
    tree = ast.parse(path.read_text() if source is None else source)
    in_functions = {node.lineno for func in ast.walk(tree) if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef))
                    for node in ast.walk(func) if isinstance(node, (ast.Import, ast.ImportFrom))}
    return [line for line, target in internal_imports(path, source) if target == "_version" and line in in_functions]


def test_version_is_imported_at_module_top() -> None:
    """tvexport/_version.py is a leaf (no imports): a module needing ``__version__`` imports it at
    its top, as bake and export do (before: tvexport/profile/machine.py and tvexport/trt/build.py
    imported it inside functions, as if it were an optional dependency)."""
    forms = ["from .._version import __version__", "from .. import _version", "from tvexport._version import __version__",
             "import tvexport._version", "from tvexport import _version"]
    assert [version_imports_inside_functions(PACKAGE / "export" / "onnx.py", f"import os\ndef f():\n    {form}\n") for form in forms] == [[3]] * len(forms)
    assert version_imports_inside_functions(PACKAGE / "bake.py", "from . import _version\nclass A:\n    def f(self):\n        from . import _version\n") == [4]
    inside = [f"tvexport/{path.relative_to(PACKAGE).as_posix()}:{line}" for path in sorted(PACKAGE.rglob("*.py")) for line in version_imports_inside_functions(path)]
    assert not inside, f"tvexport._version imported inside a function (import it at the module's top): {inside}"
    leaf = ast.parse((PACKAGE / "_version.py").read_text())
    assert not [n for n in ast.walk(leaf) if isinstance(n, (ast.Import, ast.ImportFrom))]  # the leaf stays a leaf


def test_openvino_build_internals_stay_inside() -> None:
    """Code outside tvexport/openvino/ (the package and benchmarks/) uses the extension build's public
    functions, not tvexport.openvino._build's private lookups (before: the openvino-fused bench backend
    called ``_requirements()``, benchmarks/openvino_kernel_micro.py ``_compiler()``/``_compiler_id()``,
    benchmarks/openvino_ab.py ``_read_sidecar()``)."""
    root = PACKAGE.parent
    files = [(p, ("tvexport", *p.relative_to(PACKAGE).parent.parts)) for p in sorted(PACKAGE.rglob("*.py"))
             if not p.relative_to(PACKAGE).as_posix().startswith("openvino/")]
    files += [(p, ()) for p in sorted((root / "benchmarks").glob("*.py"))]
    private = []
    for path, package in files:
        for line, module, names in resolved_imports(ast.parse(path.read_text()), package):
            taken = [f"{module}.{n}" for n in names] if module == "tvexport.openvino" else [module]
            private += [f"{path.relative_to(root).as_posix()}:{line} ({t})" for t in taken if t.startswith("tvexport.openvino._")]
    assert not private, f"private parts of tvexport.openvino used outside it (use the package's public functions): {private}"


def test_first_line_of_a_message_is_written_once() -> None:
    """The first line of another library's message, as a one-line error quotes it, is
    ``tvexport.errors.first_line`` (before: ``(str(err).strip().splitlines() or [...])[0][:N]`` written
    out eleven times in export/onnx.py and export/aoti.py, a variant in cli/__init__.py and
    checkpoint.py, and trt/_env.py's own ``first_line``). tvexport/openvino/ keeps its ``_first_line``,
    which reads OpenVINO's framing, not a first line."""
    from tvexport.errors import first_line

    assert first_line(RuntimeError("\n  onnx says: bad node  \n  at line 3\n"), limit=12) == "onnx says: b"
    assert first_line(RuntimeError(" \n ")) == "RuntimeError" and first_line(KeyError(), default="") == ""
    assert first_line("\n[TRT] parse error\nmore") == "[TRT] parse error" and first_line("") == ""
    assert first_line(ValueError(""), default="unknown error") == "unknown error"
    spelled = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith("openvino/"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or) and isinstance(node.values[0], ast.Call):
                func = node.values[0].func
                if isinstance(func, ast.Attribute) and func.attr == "splitlines":
                    spelled.append(f"tvexport/{rel}:{node.lineno}")
    defined = [f"tvexport/{p.relative_to(PACKAGE).as_posix()}" for p in sorted(PACKAGE.rglob("*.py"))
               if any(isinstance(n, ast.FunctionDef) and n.name == "first_line" for n in ast.parse(p.read_text()).body)]
    assert not spelled and defined == ["tvexport/errors.py"], (spelled, defined)
