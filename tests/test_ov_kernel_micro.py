"""benchmarks/openvino_kernel_micro.py's driver computes what the extension's kernel should: its
output against a float64 numpy reference, so the microbenchmark cannot silently time a wrong kernel.
The first test builds the driver (about 10 s of g++ on 2 cores; cached by source hash after that)."""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def micro() -> ModuleType:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        mod = importlib.import_module("openvino_kernel_micro")
    finally:
        sys.path.remove(str(BENCHMARKS))
    if mod.compiler() is None:
        pytest.skip("no C++ compiler ($CXX, c++, g++ or clang++) to build the microbenchmark driver")
    if mod.native_isa() is None:
        pytest.skip("the microbenchmark times the kernel's AVX-512 or AVX2 variant, and this CPU has neither")
    return mod


def reference(d: Path, c: int, k: int, stride: int, oh: int, ow: int, dtype: str, n: int) -> np.ndarray:
    """The float64 truth of what the driver ran (its layouts: main.cpp, kernel.hpp), clamped to [0, 6]."""
    kk, pad = k * k, k // 2
    x = np.fromfile(d / "x.bin", np.float32).reshape(n, oh * stride, ow * stride, c).astype(np.float64)
    w = np.fromfile(d / "weight.bin", {"f32": np.float32, "f16": np.float16, "i8": np.int8}[dtype]).reshape(oh, kk, ow, c).astype(np.float64)
    if dtype == "i8":
        w = w * np.fromfile(d / "scale.bin", np.float32).reshape(1, kk, 1, c)
    bias = np.fromfile(d / "bias.bin", np.float32).astype(np.float64)
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    y = np.broadcast_to(bias, (n, oh, ow, c)).copy()
    for ky in range(k):
        for kx in range(k):
            window = xp[:, ky : ky + stride * oh : stride, kx : kx + stride * ow : stride, :]
            y += w[None, :, ky * k + kx, :, :] * window
    return np.clip(y, 0.0, 6.0)


# (C, k, stride, out_h, out_w, dtype, batch): int8 with scales in registers (C = 48) and loaded
# (C = 40), the ring and in-place input paths, a k = 5 layer, a batch of 2, and C >= 512 (one
# position per segment, as the benchmark's largest face MobileNetV2 x1.0 layers)
CASES = [(48, 3, 1, 6, 21, "i8", 1), (40, 3, 2, 5, 9, "i8", 1), (32, 3, 2, 4, 7, "f16", 1), (24, 5, 1, 5, 6, "f32", 2),
         (576, 3, 2, 2, 3, "i8", 1), (960, 3, 1, 2, 3, "f16", 1)]


# the constants (kernels, int8 scales, bias) 16 or 48 bytes past a 64-byte boundary, as OpenVINO
# hands them to the op: the kernel copies misaligned scale and bias rows into aligned scratch
# (C = 1400 at k = 7, batch 2: the channel-block path; k = 5 and batch 5 int8 with loaded scales)
OFFSET_CASES = [(case, 0) for case in CASES] + [(case, off) for case in CASES if case[5] == "i8" for off in (16, 48)] + [(CASES[3], 16)] + [
    ((1400, 7, 1, 16, 5, "i8", 2), 16), ((24, 5, 1, 5, 6, "i8", 2), 48), ((96, 3, 1, 5, 9, "i8", 5), 16)]


# every kernel variant the driver can time that this CPU runs (AVX-512 machines run both)
@pytest.mark.parametrize("isa", ["avx512", "avx2"])
@pytest.mark.parametrize(("case", "offset"), OFFSET_CASES, ids=lambda c: "-".join(map(str, c)) if isinstance(c, tuple) else f"offset{c}")
def test_driver_matches_float64_reference(micro: ModuleType, case: tuple, offset: int, isa: str, tmp_path: Path) -> None:
    if not micro.ISAS[isa][1] <= micro.cpu_flags():
        pytest.skip(f"this CPU does not run the {isa} variant")
    binary = micro.build(log=False, isa=isa)
    env = {**os.environ, "TVX_MICRO_CONST_OFFSET": str(offset)}
    subprocess.run([str(binary), "check", str(tmp_path), *map(str, case)], check=True, env=env)
    c, k, stride, oh, ow, dtype, n = case
    got = np.fromfile(tmp_path / "y.bin", np.float32).reshape(n, oh, ow, c)
    ref = reference(tmp_path, *case)
    assert (ref > 0).mean() > 0.2  # enough outputs above the clamp for the check to mean something
    assert np.abs(got - ref).max() <= 2e-6 * np.abs(ref).max()


def test_bench_mode_reports_each_state(micro: ModuleType) -> None:
    binary = micro.build(log=False)
    out = subprocess.run([str(binary), "bench", "2", "0", "1", str(1 << 20), "16,3,1,4,4,i8"], check=True, capture_output=True, text=True).stdout
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(r["state"], len(r["ns"])) for r in lines] == [("hot", 2), ("cold", 2)]
    assert lines[1]["copies"] * lines[1]["kernel_bytes"] >= 1 << 20


def test_bench_mode_takes_a_batch_and_refuses_a_bad_offset(micro: ModuleType) -> None:
    binary = micro.build(log=False)
    out = subprocess.run([str(binary), "bench", "1", "0", "0", "0", "16,3,1,4,4,f32,3"], check=True, capture_output=True, text=True).stdout
    assert [json.loads(line)["case"] for line in out.splitlines()] == ["16,3,1,4,4,f32,3"] * 2
    for offset in ("6", "abc", "16x"):
        bad = subprocess.run([str(binary), "bench", "1", "0", "0", "0", "16,3,1,4,4,f32"], capture_output=True, text=True,
                             env={**os.environ, "TVX_MICRO_CONST_OFFSET": offset})
        assert bad.returncode == 2 and "multiple of 4" in bad.stderr
    for spec in ("16,3,1,4,4,f32,abc", "16,3,1,4,4,f32,", "16,3,1,4,4,f32,2junk", "16,3,1,4,4,f32,0", "16,4,1,4,4,f32"):
        bad = subprocess.run([str(binary), "bench", "1", "0", "0", "0", spec], capture_output=True, text=True)
        assert bad.returncode == 2 and "bad case" in bad.stderr, spec


def test_scratch_header_lays_out_the_driver_data_too(micro: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A scratch kernel.cpp with its own kernel.hpp (here twice ext/'s segment length) builds the
    driver against that header as well, so the tiled int8 scale and bias rows match what the kernel
    reads (C = 40: scales read across the segment, whose length differs between the headers)."""
    ext = micro.EXT
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    header = (ext / "kernel.hpp").read_text()
    found = re.search(r"constexpr int64_t kSegment = (\d+);", header)
    assert found, "kernel.hpp no longer defines kSegment as this test expects"
    segment = 2 * int(found.group(1))
    (scratch / "kernel.hpp").write_text(header.replace(found.group(0), f"constexpr int64_t kSegment = {segment};"))
    # the kernel must see the scratch header, or the test would pass without testing anything
    (scratch / "kernel.cpp").write_text((ext / "kernel.cpp").read_text() + f"\nstatic_assert(tvx::kSegment == {segment});\n")
    monkeypatch.setattr(micro, "cache_root", lambda: tmp_path / "cache")  # a one-off build, not kept
    binary = micro.build(micro.Variant("segment", scratch / "kernel.cpp", ()), log=False)
    case = (40, 3, 2, 5, 9, "i8", 1)
    run = tmp_path / "run"
    run.mkdir()
    subprocess.run([str(binary), "check", str(run), *map(str, case)], check=True)
    got = np.fromfile(run / "y.bin", np.float32).reshape(1, 5, 9, 40)
    ref = reference(run, *case)
    assert (ref > 0).mean() > 0.2
    assert np.abs(got - ref).max() <= 2e-6 * np.abs(ref).max()


def test_variant_flags_joined_by_a_colon_refused(micro: ModuleType) -> None:
    """Flags are separated by spaces; "-UX:-DX=2" would reach the compiler as one flag that
    undefines X and defines nothing (a scratch run once measured such a build as "X=2")."""
    assert micro.Variant.parse("two:-DA=1 -DB=2").flags == ("-DA=1", "-DB=2")
    with pytest.raises(SystemExit, match="flag '-UX:-DX=2' holds a ':'; flags are separated by spaces"):
        micro.Variant.parse("x:-UX:-DX=2")


def test_fma_mode_and_compute_floor(micro: ModuleType) -> None:
    """The register-only peak is a positive rate, and the network sums' compute floor is each
    row's vectors (times its count) at that rate; rows without vectors (older JSON) are left out."""
    binary = micro.build(log=False)
    out = subprocess.run([str(binary), "fma"], check=True, capture_output=True, text=True).stdout
    rate = json.loads(out)["fma_vectors_per_ns"]
    assert 0.1 < rate < 100  # vectors of 16 multiply-adds per ns: 1.6-1600 GFMA/s
    rows = [{"variant": "a", "dtype": "float32", "state": "hot", "count": 2, "median_ns": 1e6, "kernel_bytes": 10**6, "vectors": 4 * 10**6},
            {"variant": "a", "dtype": "float32", "state": "hot", "count": 1, "median_ns": 1e6, "kernel_bytes": 10**6},
            {"variant": "a", "dtype": "float32", "state": "cold", "count": 2, "median_ns": 2e6, "kernel_bytes": 10**6, "vectors": 4 * 10**6}]
    tot = micro.network_totals(rows, "a", 10.0, 8.0)
    assert tot[("float32", "compute")] == pytest.approx(2 * 4e6 / 8.0 / 1e6)  # 1 ms
    assert tot[("float32", "hot")] == pytest.approx(3.0) and tot[("float32", "cold")] == pytest.approx(4.0)
    assert ("float32", "compute") not in micro.network_totals(rows, "a", 10.0)
