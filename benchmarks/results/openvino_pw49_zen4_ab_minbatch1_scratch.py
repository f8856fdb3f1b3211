"""Scratch: benchmarks/openvino_ab.py with runtime.POINTWISE_MIN_BATCH = 1 (fold at a static batch 1 too)."""
import runpy
import sys

sys.path.insert(0, "benchmarks")
import tvexport.openvino.runtime as runtime  # noqa: E402

runtime.POINTWISE_MIN_BATCH = 1
sys.argv = ["benchmarks/openvino_ab.py", *sys.argv[1:]]
runpy.run_path("benchmarks/openvino_ab.py", run_name="__main__")
