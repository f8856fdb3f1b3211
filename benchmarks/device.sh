#!/usr/bin/env bash
# Every GPU check and benchmark of the TV kernel / TensorRT path, in one run, figures into one file.
#
#   benchmarks/device.sh [RESULTS.md]        (default: $OUT/device_results.md, else ./device_results.md)
#
# Steps (each runs even if an earlier one failed; each is recorded as ok / FAILED / not run + why):
#   1. environment: GPU, driver, torch/CUDA/triton/tensorrt versions
#   2. kernel tests on CUDA, compiled (TRITON_INTERPRET unset): tests/test_kernels.py
#   3. bandwidth benchmark: benchmarks/kernel_bandwidth.py (face MobileNetV2 x1.0 TV layers), the
#      current kernel and the one before issue 16 side by side (before/after in one run)
#   4. TensorRT tests (if tensorrt imports): tests/test_trt.py: engines of float32, float16, and
#      float16/int8-compressed kernels against a float64 reference (this is where the stripped
#      PTX, the driver-capped ISA, the 12-character kernel name on TensorRT 10.9-10.13, int8
#      constants feeding a plugin and the node-name/op-type parser reading meet real TensorRT)
#   5. trtexec runs an engine built by `tvexport build` without Python (if trtexec is on PATH)
# Environment: PYTHON (default python3), STEP_TIMEOUT seconds per step (default 420).
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
STEP_TIMEOUT=${STEP_TIMEOUT:-420}
RESULTS=${1:-${OUT:-.}/device_results.md}
DIR=$(dirname "$RESULTS")
mkdir -p "$DIR"
LOGS="$DIR/device_logs"
mkdir -p "$LOGS"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"   # the checkout's tvexport, even if not pip-installed
unset TRITON_INTERPRET
export TRITON_DEFAULT_FP_FUSION=${TRITON_DEFAULT_FP_FUSION:-1}

STATUS=()   # "| step | status | detail |" rows
record() { STATUS+=("| $1 | $2 | $3 |"); echo "[device.sh] $1: $2 ${3:+($3)}"; }
# run_step NAME LOGFILE CMD...: run with a timeout, record ok/FAILED with the log's last summary line
run_step() {
  local name=$1 log=$2; shift 2
  echo "[device.sh] running $name: $*"
  timeout "$STEP_TIMEOUT" "$@" >"$log" 2>&1
  local rc=$?
  local last
  last=$(grep -E "passed|failed|error|skipped" "$log" | tail -n 1 | tr '|' '/')
  if [ $rc -eq 0 ]; then record "$name" ok "${last:-exit 0}"
  elif [ $rc -eq 124 ]; then record "$name" FAILED "timed out after ${STEP_TIMEOUT}s"
  else record "$name" FAILED "exit $rc; ${last:-see $(basename "$log")}"; fi
  return $rc
}

# 1. environment -------------------------------------------------------------------------------
{
  echo "date: $(date -u +%FT%TZ)"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.memory --format=csv,noheader
  "$PY" - <<'PY'
import importlib, platform
print("python", platform.python_version())
for mod in ("torch", "triton", "tensorrt", "onnx", "numpy", "pytest", "typer", "rich"):
    try:
        m = importlib.import_module(mod)
        print(mod, getattr(m, "__version__", "?"))
    except Exception as e:  # noqa: BLE001
        print(mod, "NOT IMPORTABLE:", type(e).__name__, str(e).splitlines()[0] if str(e) else "")
import torch
print("torch.cuda", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print("device", p.name, f"sm_{p.major}{p.minor}", p.multi_processor_count, "SMs")
try:
    from tvexport.kernels._triton import driver_cuda_version, driver_ptx_version, triton_ptx_version
    print("driver CUDA", driver_cuda_version(), "| triton's PTX ISA (sm_90)", triton_ptx_version(90),
          "| ISA for AOT plugins", driver_ptx_version())
except Exception as e:  # noqa: BLE001
    print("driver_ptx_version: n/a", e)
PY
} >"$LOGS/environment.txt" 2>&1
HAS_CUDA=$("$PY" -c "import torch; print(int(torch.cuda.is_available()))" 2>/dev/null || echo 0)
HAS_TRITON=$("$PY" -c "import triton" >/dev/null 2>&1 && echo 1 || echo 0)
HAS_TRT=$("$PY" -c "import tensorrt" >/dev/null 2>&1 && echo 1 || echo 0)
record "environment" ok "cuda=$HAS_CUDA triton=$HAS_TRITON tensorrt=$HAS_TRT (environment.txt)"

# 2. kernel tests on CUDA ----------------------------------------------------------------------
if [ "$HAS_CUDA" = 1 ] && [ "$HAS_TRITON" = 1 ]; then
  run_step "kernel tests (CUDA, compiled + interpreter)" "$LOGS/test_kernels.txt" "$PY" -m pytest -q -rs tests/test_kernels.py
  grep -q "SKIPPED.*CUDA" "$LOGS/test_kernels.txt" && record "kernel tests: CUDA cases" FAILED "CUDA tests were skipped"
else
  record "kernel tests (CUDA)" "not run" "needs torch.cuda and triton (cuda=$HAS_CUDA, triton=$HAS_TRITON)"
fi

# 3. bandwidth benchmark -----------------------------------------------------------------------
if [ "$HAS_CUDA" = 1 ] && [ "$HAS_TRITON" = 1 ]; then
  run_step "bandwidth benchmark" "$LOGS/kernel_bandwidth.txt" \
    "$PY" benchmarks/kernel_bandwidth.py --json "$DIR/kernel_bandwidth.json" --markdown "$DIR/kernel_bandwidth.md"
else
  record "bandwidth benchmark" "not run" "needs torch.cuda and triton"
fi

# 4. TensorRT tests ----------------------------------------------------------------------------
if [ "$HAS_TRT" = 1 ] && [ "$HAS_CUDA" = 1 ]; then
  run_step "TensorRT tests" "$LOGS/test_trt.txt" "$PY" -m pytest -q -rs tests/test_trt.py
  grep -q "SKIPPED.*tensorrt" "$LOGS/test_trt.txt" && record "TensorRT tests: engine cases" FAILED "engine tests were skipped"
else
  record "TensorRT tests" "not run" "tensorrt importable=$HAS_TRT, cuda=$HAS_CUDA"
fi

# 5. the engine runs without Python ------------------------------------------------------------
if [ "$HAS_TRT" = 1 ] && [ "$HAS_CUDA" = 1 ] && command -v trtexec >/dev/null; then
  ENGINE_DIR="$DIR/engine_smoke"
  mkdir -p "$ENGINE_DIR"
  "$PY" - "$ENGINE_DIR" >"$LOGS/engine_smoke_onnx.txt" 2>&1 <<'PY'
import sys
from pathlib import Path
sys.path.insert(0, "tests")
from test_trt import _spec, _tv_model  # the hand-written tv_dwconv graph of the tests
_tv_model(Path(sys.argv[1]) / "tv.onnx", [_spec(96, 3, 2, 48, 48, "channel"), _spec(96, 3, 1, 48, 48, None, 1)])
PY
  if run_step "tvexport build (smoke engine)" "$LOGS/engine_smoke_build.txt" \
       "$PY" -m tvexport build "$ENGINE_DIR/tv.onnx" -o "$ENGINE_DIR/tv.engine" --max-batch 32 --force; then
    run_step "trtexec --loadEngine (no Python plugin code)" "$LOGS/trtexec.txt" \
      trtexec --loadEngine="$ENGINE_DIR/tv.engine" --shapes=x:32x96x96x96 --iterations=200 --warmUp=200 --useCudaGraph
    grep -E "GPU Compute Time|Throughput" "$LOGS/trtexec.txt" | head -n 3 >"$LOGS/trtexec_summary.txt"
  fi
else
  record "trtexec smoke" "not run" "needs tensorrt, CUDA and trtexec on PATH"
fi

# results file ---------------------------------------------------------------------------------
{
  echo "# Device results: TV kernel and TensorRT path"
  echo
  echo "| step | status | detail |"
  echo "|---|---|---|"
  printf '%s\n' "${STATUS[@]}"
  echo
  echo "## Environment"
  echo '```'
  cat "$LOGS/environment.txt"
  echo '```'
  if [ -f "$DIR/kernel_bandwidth.md" ]; then echo; cat "$DIR/kernel_bandwidth.md"; fi
  if [ -f "$LOGS/trtexec_summary.txt" ]; then echo; echo "## trtexec (engine from tvexport build, batch 32)"; echo '```'; cat "$LOGS/trtexec_summary.txt"; echo '```'; fi
  for f in test_kernels test_trt; do
    if [ -f "$LOGS/$f.txt" ]; then echo; echo "## $f (tail)"; echo '```'; tail -n 25 "$LOGS/$f.txt"; echo '```'; fi
  done
} >"$RESULTS"
echo "[device.sh] wrote $RESULTS (logs in $LOGS)"
