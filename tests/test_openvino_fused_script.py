"""benchmarks/openvino_fused.py: a width sweep merged into a results file keeps the paired rows'
machine line and bandwidth, and records its own machine line and build."""

from __future__ import annotations

import copy
import importlib
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytest.importorskip("openvino")

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
RESULTS = BENCHMARKS / "results" / "openvino_fused_zen4.json"


@pytest.fixture(scope="module")
def fused() -> ModuleType:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return importlib.import_module("openvino_fused")
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_sweep_only_keeps_the_paired_rows_machine(fused: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    previous = json.loads(RESULTS.read_text())
    previous["machine_text"] = "paired rows' machine; load average 0.1/0.1/0.1"
    sweep = {k: v for k, v in previous["sweep"].items() if k not in ("command", "machine_text", "kernel", "extension")}
    (tmp_path / "merged.json").write_text(json.dumps(previous))

    def no_bandwidth() -> None:
        raise AssertionError("a sweep merged into paired rows must not re-measure their bandwidth")

    monkeypatch.setattr(fused, "copy_bandwidth", no_bandwidth)
    monkeypatch.setattr(fused, "width_sweep", lambda args: {**copy.deepcopy(sweep), "kernel": "K", "extension": "E"})
    monkeypatch.setattr(sys, "argv", ["openvino_fused.py", "--sweep-only", "--name", "merged", "--out", str(tmp_path)])
    assert fused.main() == 0
    merged = json.loads((tmp_path / "merged.json").read_text())
    assert merged["machine_text"] == previous["machine_text"] and merged["bandwidth"] == previous["bandwidth"]
    assert merged["cases"] == previous["cases"]
    assert merged["sweep"]["machine_text"] != previous["machine_text"] and merged["sweep"]["extension"] == "E"
    text = (tmp_path / "merged.md").read_text()
    assert f"Machine: {previous['machine_text']}." in text
    assert "Sweep machine: " in text and "TV kernel, extension build: K E." in text
    assert (tmp_path / "merged_width_sweep.png").stat().st_size > 0
