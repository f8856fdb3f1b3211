"""Each runtime's imports stay in its own room: tensorrt only in tvexport/trt/, triton only in
tvexport/kernels/, openvino only in tvexport/openvino/ and the profile backends, at module level
and inside functions alike (an import inside a function breaks the rule as much as one at the top:
a user without that package gets a raw ImportError from the wrong module)."""

from __future__ import annotations

import ast
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
