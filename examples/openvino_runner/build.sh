#!/usr/bin/env bash
# Build openvino_runner against the OpenVINO inside the installed openvino wheel.
#   examples/openvino_runner/build.sh [BUILD_DIR]        (default: build/openvino_runner)
# PYTHON selects the interpreter whose openvino is used (default: python3).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="${1:-build/openvino_runner}"
python="${PYTHON:-python3}"
ov_dir="$("$python" -c 'import openvino, os; print(os.path.join(os.path.dirname(openvino.__file__), "cmake"))')"
generator=()
if command -v ninja >/dev/null; then generator=(-G Ninja); fi
cmake -S "$here" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DOpenVINO_DIR="$ov_dir" -DTBB_DIR="$ov_dir"
cmake --build "$build" -j "$(nproc)"
echo "built $build/openvino_runner"
