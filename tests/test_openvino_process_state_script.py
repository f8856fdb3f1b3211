"""benchmarks/openvino_process_state.py: a tiny run (two child processes, one with an OpenVINO
property), its re-render, and its refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("openvino")

from conftest import check_render_refusals, check_tables_and_render, heavy_imports, run_script  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "openvino_process_state.py"


def test_tiny_run_and_render(extension: Path, tmp_path: Path) -> None:
    """Each state has its rounds, paired against the first state (itself: exactly 1), the children's
    threads are read from /proc, and --render rewrites the same report from the JSON."""
    states = ["clean", "paired@ENABLE_CPU_PINNING=NO"]
    run = run_script(SCRIPT, "--quick", "--state", states[0], "--state", states[1], "--out", str(tmp_path), "--name", "ps")
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads((tmp_path / "ps.json").read_text())
    m = result["measure"]
    assert m["reference"] == "clean" and list(m["states"]) == states
    ref, other = m["states"]["clean"], m["states"][states[1]]
    assert ref["models"] == 2 and other["models"] == 7  # TV + DW; + f16, int8, portable (OpenVINO), portable, DW (onnxruntime)
    assert ref["tv_vs_ref"]["median"] == 1.0 and ref["tv_vs_ref"]["n"] == result["rounds"] == 2
    for s in (ref, other):
        assert s["tv_s"]["median"] > 0 and s["dw_s"]["median"] > 0 and s["threads"] >= 2 and s["affinities"]
        assert s["own_cpu_per_wall"]["median"] > 0  # the child's threads ran its block (schedstat)
    assert 0 <= m["foreign"]["median"] <= 1 and m["steal"]["median"] >= 0
    md = (tmp_path / "ps.md").read_text()
    assert "| clean | 2 |" in md and "| paired@ENABLE_CPU_PINNING=NO | 7 |" in md
    check_tables_and_render(SCRIPT, tmp_path, "ps")


@pytest.mark.parametrize(("args", "says"), [
    (["--state", "dirty"], "unknown state 'dirty'"),
    (["--state", "clean@PINNING"], "properties are KEY=VALUE"),
    (["--state", "clean", "--state", "clean"], "--state given twice"),
    (["--rounds", "1"], "--rounds must be >= 2"),
], ids=["state", "property", "twice", "rounds"])
def test_refusals(args: list[str], says: str, tmp_path: Path) -> None:
    run, heavy = heavy_imports(SCRIPT, *args, "--out", str(tmp_path))
    assert run.returncode != 0 and says in run.stderr and "Traceback" not in run.stderr, run.stderr[-2000:]
    assert not heavy, f"{sorted(heavy)} imported before the refusal (seconds each): parse the options first"
    assert not list(tmp_path.iterdir())


def test_child_failure_is_one_line(extension: Path, tmp_path: Path) -> None:
    """A property OpenVINO refuses stops the run with the child's own one-line reason."""
    run = run_script(SCRIPT, "--quick", "--state", "clean@INFERENCE_NUM_THREADS=many", "--out", str(tmp_path))
    assert run.returncode != 0 and "before it was ready:" in run.stderr and "Traceback" not in run.stderr, run.stderr[-2000:]
    assert not list(tmp_path.iterdir())


def test_child_dying_during_the_rounds_is_one_line(tmp_path: Path) -> None:
    """A child that exits during the rounds (no JSON line for its block) stops the run with its own
    last line, not a JSON decoding traceback."""
    import importlib
    import subprocess
    import sys

    sys.path.insert(0, str(SCRIPT.parent))
    try:
        script = importlib.import_module("openvino_process_state")
    finally:
        sys.path.remove(str(SCRIPT.parent))
    with (tmp_path / "log").open("w+") as log:
        p = subprocess.Popen([sys.executable, "-c", "import sys; print('out of memory', file=sys.stderr); sys.exit(3)"],
                             stdout=subprocess.PIPE, stderr=log, text=True)
        with pytest.raises(SystemExit) as info:
            script._reply("paired", p, log)
    assert str(info.value) == "error: the child for state 'paired' exited (3) during the rounds: out of memory"


def test_render_refusals(tmp_path: Path) -> None:
    """Before: --render of a missing file, of text, of a JSON list or of another script's result
    ended in a traceback (FileNotFoundError, JSONDecodeError, AttributeError or KeyError)."""
    check_render_refusals(SCRIPT, tmp_path)


def test_render_of_a_result_without_its_fields_is_one_line(tmp_path: Path) -> None:
    """A result of this script that lacks a field the report reads (edited, or from a version that
    wrote others): one line from the shared ``_common.rerender``, not the KeyError's traceback."""
    old = tmp_path / "old.json"
    old.write_text('{"schema": "tvexport.bench.openvino_process_state"}')
    run = run_script(SCRIPT, "--render", str(old), "--out", str(tmp_path / "out"))
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert run.returncode == 2 and len(lines) == 1 and "Traceback" not in run.stderr, run.stderr[-2000:]
    assert lines[0].startswith(f"error: --render {old}: the result lacks what this script's report reads (KeyError: 'measure')"), lines[0]
    assert "re-render it with the commit that wrote it" in lines[0] and not (tmp_path / "out").exists()
