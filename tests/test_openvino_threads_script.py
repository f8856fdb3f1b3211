"""benchmarks/openvino_threads.py: a tiny run (thread counts side by side in one process), its
re-render, and its refusals."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

pytest.importorskip("openvino")

from conftest import check_render_reads_once, check_render_refusals, check_tables_and_render, heavy_imports, run_script  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "openvino_threads.py"


def test_tiny_run_and_render(extension: Path, tmp_path: Path) -> None:
    """Every TV layer and every matched DW layer has a counter per thread count, the wall ratios are
    paired per round, and --render rewrites the same report from the JSON."""
    run = run_script(SCRIPT, "--quick", "--arch", "face_mobilenetv2_x0_1", "--kernel-dtype", "int8", "--out", str(tmp_path), "--name", "thr")
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads((tmp_path / "thr.json").read_text())
    assert result["thread_counts"] == [1, 2]
    case = result["cases"][0]
    assert set(case["nets"]) == {"tv-int8", "dw"}
    for net, e in case["nets"].items():
        assert set(e["wall_us"]) == {"1", "2"} and set(e["wall_ratio"]) == {"2"}
        assert e["wall_ratio"]["2"]["n"] == case["rounds"] == 2
        layers = e["layers_us"]["1"]
        assert len(layers) == 17 and set(layers) == set(e["layers_us"]["2"]), net  # x0.1: 17 TV layers, as many DW in their places
        assert all(v >= 0 for v in layers.values()), net
    md = (tmp_path / "thr.md").read_text()
    assert "1 vs 2 threads (compared)" in md and "| tv-int8 |" in md and "| dw |" in md
    check_tables_and_render(SCRIPT, tmp_path, "thr")


@pytest.mark.parametrize(("args", "says"), [
    (["--thread-count", "2", "--thread-count", "2"], "give distinct thread counts >= 1"),
    (["--thread-count", "0", "--thread-count", "1"], "give distinct thread counts >= 1"),
], ids=["same", "zero"])
def test_refusals(args: list[str], says: str, tmp_path: Path) -> None:
    run, heavy = heavy_imports(SCRIPT, *args, "--out", str(tmp_path))
    assert run.returncode != 0 and says in run.stderr and "Traceback" not in run.stderr, run.stderr[-2000:]
    assert not heavy, f"{sorted(heavy)} imported before the refusal (seconds each): parse the options first"
    assert not list(tmp_path.iterdir())


def test_render_refusals(tmp_path: Path) -> None:
    """Before: --render of a missing file, of text, of a JSON list or of another script's result
    ended in a traceback (FileNotFoundError, JSONDecodeError, AttributeError or KeyError)."""
    check_render_refusals(SCRIPT, tmp_path)


def test_render_reads_its_file_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """--render reads the results JSON once: parse_args checks it and main re-renders what it read
    (before: twice, in parse_args and in _common.rerender from main), as openvino_ab.py does."""
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    threads = importlib.import_module("openvino_threads")
    check_render_reads_once(threads, ROOT / "benchmarks" / "results" / "openvino_threads_zen3_b1.json", monkeypatch, tmp_path)
