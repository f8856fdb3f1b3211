#!/usr/bin/env bash
# Build aoti_runner against the libtorch inside the installed torch wheel.
#   examples/aoti_runner/build.sh [BUILD_DIR]        (default: build/aoti_runner)
# PYTHON selects the interpreter whose torch is used (default: python3).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="${1:-build/aoti_runner}"
python="${PYTHON:-python3}"
prefix="$("$python" -c 'import torch; print(torch.utils.cmake_prefix_path)')"
cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix"
cmake --build "$build" -j "$(nproc)"
echo "built $build/aoti_runner"
