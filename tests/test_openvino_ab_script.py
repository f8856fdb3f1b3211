"""benchmarks/openvino_ab.py --switch build: this checkout's extension against another build of it,
both loaded in one process; and its refusals."""

from __future__ import annotations

import importlib
import json
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

pytest.importorskip("openvino")

from conftest import check_render_reads_once, check_render_refusals, heavy_imports, run_script  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "openvino_ab.py"


@pytest.fixture(scope="module")
def ab() -> ModuleType:
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        return importlib.import_module("openvino_ab")
    finally:
        sys.path.remove(str(SCRIPT.parent))


# Runs the script with this checkout's library (A) loaded first, then TVEXPORT_OV_KERNEL=generic, which
# each library reads once, as it loads: B's copy, loaded after, runs the generic kernel, A and A' this CPU's widest.
B_GENERIC = f"""\
import ctypes, os, sys
import openvino
from tvexport.openvino import extension_path
ctypes.CDLL(str(extension_path()))  # A's library, loaded now and kept loaded
os.environ["TVEXPORT_OV_KERNEL"] = "generic"
sys.path.insert(0, {str(SCRIPT.parent)!r})
import openvino_ab
sys.exit(openvino_ab.main(openvino_ab.parse_args(sys.argv[1:])))
"""


def test_build_ab_runs_a_second_library(extension: Path, tmp_path: Path) -> None:
    """A copy of the library at another path is loaded for copy B beside this checkout's build
    for A and A', checked to compute the same, timed, and named in the report. The copy is a
    library of its own, and B's model runs it: loaded with another kernel variant than A's, B
    reports that variant and its output is not A's bits, while A' computes A's bits exactly. Before,
    the test checked B's kernel was A's (identical copies), which held were B's library ignored."""
    other = tmp_path / "other" / extension.name
    other.parent.mkdir()
    shutil.copy2(extension, other)
    driver = tmp_path / "b_generic.py"
    driver.write_text(B_GENERIC)
    run = run_script(driver, "--switch", "build", "--extension-b", str(other), "--quick", "--arch", "face_mobilenetv2_x0_1",
                     "--kernel-dtype", "int8", "--out", str(tmp_path), "--name", "ab")
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads((tmp_path / "ab.json").read_text())
    assert result["switch"] == "build"
    case = result["cases"][0]
    assert case["extension_b"] == str(other) and case["kernel_b"] == "baseline"
    assert f"B: {case['kernel_b']} {other}." in (tmp_path / "ab.md").read_text()
    assert case["candidates"] == list(case["tv_us"]["A"]) and len(case["candidates"]) == 17  # the build switch reaches every TV layer
    assert case["max_diff"]["A'"] == 0.0, case["max_diff"]  # one library, one graph: the same bits
    if case["kernel"] == "baseline":
        pytest.skip("this CPU runs the generic kernel only: B's library cannot run another variant than A's")
    assert 0.0 < case["max_diff"]["B"] <= 1e-4, case["max_diff"]  # B's generic kernel rounds otherwise than A's


@pytest.mark.parametrize(("args", "says"), [
    (["--switch", "build"], "--switch build takes --extension-b LIB"),
    (["--switch", "nta", "--extension-b", "/dev/null"], "--extension-b goes with --switch build only"),
    (["--switch", "build", "--extension-b", "/nonexistent/lib.so"], "--extension-b /nonexistent/lib.so: no such file"),
    (["--switch", "build", "--extension-b", str(ROOT / "README.md")], "OpenVINO cannot load it"),
], ids=["missing", "wrong-switch", "no-file", "not-a-library"])
def test_build_ab_refusals(args: list[str], says: str, tmp_path: Path) -> None:
    run, heavy = heavy_imports(SCRIPT, *args, "--quick", "--out", str(tmp_path))
    assert run.returncode == 2 and says in run.stderr and "Traceback" not in run.stderr, run.stderr[-2000:]
    assert not heavy, f"{sorted(heavy)} imported before the refusal (seconds each): parse the options first"
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("switch", ["no-such-switch", ["not", "a", "name"]], ids=["removed", "a-list"])
def test_render_of_a_removed_switch_refused(tmp_path: Path, switch: Any) -> None:
    """A results JSON measured with a switch this checkout no longer has (or whose switch is no name)
    is refused in one line: before, argparse's usage block came first (and a list was a TypeError)."""
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"schema": "tvexport.bench.openvino_ab", "switch": switch, "cases": []}))
    run = run_script(SCRIPT, "--render", str(old), "--out", str(tmp_path / "out"))
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert run.returncode == 2 and len(lines) == 1 and "Traceback" not in run.stderr, run.stderr[-2000:]
    assert lines[0].startswith(f"error: --render {old}: measured with --switch {switch}, which this checkout no longer has"), lines[0]
    assert not (tmp_path / "out").exists()


def test_a_switch_in_the_table_is_an_option(ab: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """--switch takes its choices from SWITCHES (before: from SWITCH_NAMES, a second list of its keys
    kept in step by an assert at import, so a switch added to the table alone was 'invalid choice')."""
    monkeypatch.setitem(ab.SWITCHES, "test-switch", ab.SWITCHES["serial"])
    assert ab.parse_args(["--switch", "test-switch", "--out", str(tmp_path)]).switch == "test-switch"


def test_render_reads_its_file_once(ab: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """--render reads the results JSON once: parse_args checks it and main re-renders what it read
    (before: three reads, in parse_args, in main and in _common.rerender)."""
    saved = ROOT / "benchmarks" / "results" / "openvino_ab_build_zen3_b16gap47_split_images_x0_1_b16.json"
    check_render_reads_once(ab, saved, monkeypatch, tmp_path)


def test_same_result(ab: ModuleType) -> None:
    """The check before timing: equal up to float32 summation order, else not."""
    y = np.linspace(-3.0, 3.0, 60, dtype=np.float32).reshape(3, 20)
    assert ab.same_result(y, y + 1e-6 * np.abs(y).max())
    assert not ab.same_result(y, y.reshape(20, 3))
    assert not ab.same_result(y, y * 1.01)


def test_max_diff(ab: ModuleType) -> None:
    """max |B - A| / max |A|, recorded per copy: 0 for the same bits, else the relative gap."""
    y = np.linspace(-3.0, 3.0, 60, dtype=np.float32).reshape(3, 20)
    assert ab.max_diff(y, y.copy()) == 0.0
    z = y.copy()
    z[1, 2] += np.float32(0.375)  # exact in float32: the gap is 0.375 / 3
    assert ab.max_diff(z, y) == 0.125
    assert ab.max_diff(np.zeros(3), np.zeros(3)) == 0.0  # no division by zero


def test_build_render_gives_max_diff_where_recorded(ab: ModuleType, tmp_path: Path) -> None:
    """A --switch build result with max_diff (since tidy49) renders it on the build line, per kernel
    dtype, A' beside; one recorded before (none of the committed results) renders as before."""
    saved = json.loads((ROOT / "benchmarks" / "results" / "openvino_ab_build_zen3_minblock44_dlv3_b16.json").read_text())
    assert [c["kernel_dtype"] for c in saved["cases"]] == ["float32", "float16", "int8"] and "max_diff" not in saved["cases"][0]
    ab.render(saved, tmp_path, "old")
    old = (tmp_path / "old.md").read_text()
    assert "max |B - A|" not in old
    for case, b in zip(saved["cases"], (0.0, 5.1e-7, 1.2e-6)):
        case["max_diff"] = {"B": b, "A'": 0.0}
    ab.render(saved, tmp_path, "new")
    new = (tmp_path / "new.md").read_text()
    said = " B's output vs A's, max |B - A| / max |A|: float32 0, float16 5.1e-07, int8 1.2e-06 (0: the same bits; A' vs A: 0, 0, 0)."
    build_line = next(line for line in old.splitlines() if line.startswith("Kernel variant, extension build:"))
    assert build_line + said in new.splitlines(), new[-600:]
    assert new.replace(said, "") == old  # nothing else changes


def test_pointwise_candidates_are_the_folded_layers(ab: ModuleType, extension: Path) -> None:
    """Before: --switch pointwise marked 'reachable' every TV layer a Conv 1x1 feeds (16 in face
    MobileNetV2 x1.0), also those B leaves unfolded (more than POINTWISE_MAX_CIN input channels), so
    its 'reachable' sums mixed folded and unfolded layers. Now: the layers the runner folds, which
    are those of at most POINTWISE_MAX_CIN input channels; at a static batch of 1 the same with the
    AVX-512 kernel variant, none with the others."""
    from onnx import numpy_helper

    from tvexport.openvino.runtime import POINTWISE_MAX_CIN, pointwise_min_batch
    from tvexport.profile import load_subject

    model = load_subject("face_mobilenetv2_x1_0").networks[0].form("baked")
    graph = ab.plugin_graph(model, 2)
    inits = {t.name: numpy_helper.to_array(t) for t in graph.graph.initializer}
    producer = {out: n for n in graph.graph.node for out in n.output}
    fed, tv = {}, set(ab.tv_nodes(graph))
    for node in graph.graph.node:
        if node.name in tv:
            src = producer[node.input[0]]
            while src.op_type in ("Clip", "Relu"):
                src = producer[src.input[0]]
            if src.op_type == "Conv" and inits[src.input[1]].shape[2:] == (1, 1):
                fed[node.name] = inits[src.input[1]].shape[1]
    narrow = [name for name, cin in fed.items() if cin <= POINTWISE_MAX_CIN]
    assert 0 < len(narrow) < len(fed)  # the test can tell the two apart
    assert ab.pointwise_candidates(graph) == narrow
    one = ab.plugin_graph(model, 1)  # a static batch 1 folds with the AVX-512 kernel variant only (runtime.pointwise_min_batch)
    kernel = ab.OpenVinoRunner(one, fuse_pointwise=False).kernel
    assert ab.pointwise_candidates(one) == (narrow if pointwise_min_batch(kernel) == 1 else [])


def test_render_refusals(tmp_path: Path) -> None:
    """Before: --render of a missing file, of text, of a JSON list or of another script's result
    ended in a traceback (FileNotFoundError, JSONDecodeError, AttributeError or KeyError)."""
    check_render_refusals(SCRIPT, tmp_path)
