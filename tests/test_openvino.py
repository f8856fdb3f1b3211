"""The OpenVINO extension (tvexport/openvino): the fused tv_dwconv op against a float64 torch truth,
refusals at compile time, zoo networks in plugin form, the build command and its failures.

The extension is built once per session with the machine's compiler (into the cache, so later
sessions reuse it); tests skip when openvino, CMake or a C++ compiler is missing.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

pytest.importorskip("openvino")
onnx = pytest.importorskip("onnx")
from onnx import helper, numpy_helper  # noqa: E402

from conftest import SMALL_TV, check_latency_line, make_model  # noqa: E402
from tvexport.bake import bake_model, random_inputs  # noqa: E402
from tvexport.errors import MissingDependencyError, TvexportError  # noqa: E402
from tvexport.export._onnx_tv import layer_model  # noqa: E402
from tvexport.export.onnx import onnx_graph  # noqa: E402
from tvexport.layers import tv_depthwise_unfold  # noqa: E402
from tvexport.models import list_models  # noqa: E402
from tvexport.openvino import OpenVinoRunner, build_extension  # noqa: E402
from tvexport.openvino import _build  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _have_tools() -> bool:
    """The build's own lookup (cmake beside the interpreter too, $CXX), so tests skip where it would refuse."""
    try:
        _build._requirements()
    except MissingDependencyError:
        return False
    return True


HAVE_TOOLS = _have_tools()
pytestmark = pytest.mark.skipif(not HAVE_TOOLS, reason="needs cmake and a C++ compiler to build the OpenVINO extension")


# --------------------------------------------------------------------------------------------
# One layer: the op against float64 torch
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Case:
    k: int
    stride: int
    bias: str | None  # "map", "channel" or None
    wdtype: str  # "float32", "float16", "int8"
    batch: int | str  # int: static; "N": dynamic (run at 3)
    channels: int = 70  # one full 64-channel block plus a remainder in every kernel variant
    h: int = 5
    w: int = 7  # h != w: a swapped axis shows
    x: str = "float32"  # activations (x, y, bias): "float32" or "float16"

    @property
    def id(self) -> str:
        return f"k{self.k}s{self.stride}-{self.bias or 'nobias'}-{self.wdtype}-b{self.batch}"


def _cases() -> list[Case]:
    grid = itertools.product((3, 5, 7), (1, 2), ("map", "channel", None), ("float32", "float16", "int8"))
    # alternate static batch 1 and a dynamic batch (run at 3) over the grid
    return [Case(k, s, b, d, 1 if i % 2 else "N") for i, (k, s, b, d) in enumerate(grid)]


CASES = _cases()


def quantize(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 with one float32 scale per (channel, tap): (int8 weight, scale (C, k*k, 1, 1))."""
    scale = (np.abs(weight).max(axis=(2, 3), keepdims=True) / 127.0).astype(np.float32)
    scale[scale == 0] = 1.0
    return np.clip(np.round(weight / scale), -127, 127).astype(np.int8), scale


def layer_graph(case: Case, seed: int = 0) -> tuple[Any, np.ndarray, np.ndarray | None]:
    """A one-node plugin graph for ``case``; returns (model, float64 weight it means, float64 bias)."""
    rng = np.random.default_rng(seed)
    c, kk = case.channels, case.k * case.k
    weight = rng.standard_normal((c, kk, case.h, case.w)).astype(np.float32)
    bias = None
    if case.bias == "map":
        bias = rng.standard_normal((c, case.h, case.w)).astype(np.float32)
    elif case.bias == "channel":
        bias = rng.standard_normal((c, 1, 1)).astype(np.float32)
    if case.x == "float16":  # the graph's bias is float16 too: its truth is the rounded one
        bias = None if bias is None else bias.astype(np.float16)
    model = layer_model(weight, bias, stride=case.stride, method="plugin", batch=case.batch, compute=np.dtype(case.x))
    w_init = model.graph.initializer[0]
    if case.wdtype == "float16":
        w16 = weight.astype(np.float16)
        w_init.CopyFrom(numpy_helper.from_array(w16, w_init.name))
        truth = w16.astype(np.float64)
    elif case.wdtype == "int8":
        q, scale = quantize(weight)
        w_init.CopyFrom(numpy_helper.from_array(q, w_init.name))
        model.graph.initializer.append(numpy_helper.from_array(scale, "tv.scale"))
        node = model.graph.node[0]
        if len(node.input) == 2:
            node.input.append("")  # no bias: the empty name keeps scale in 4th place
        node.input.append("tv.scale")
        truth = q.astype(np.float64) * scale.astype(np.float64)
    else:
        truth = weight.astype(np.float64)
    if case.bias == "channel":  # the plugin exporter writes full maps; the node also takes (C, 1, 1)
        b_init = next(t for t in model.graph.initializer if t.name.endswith("bias"))
        b_init.CopyFrom(numpy_helper.from_array(bias, b_init.name))
    return model, truth, None if bias is None else bias.astype(np.float64)


def truth_of(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, stride: int) -> np.ndarray:
    """The float64 truth: the reference's unfold formulation in torch."""
    with torch.no_grad():
        out = tv_depthwise_unfold(torch.from_numpy(x).double(), torch.from_numpy(weight), None if bias is None else torch.from_numpy(bias), stride=stride)
    return out.numpy()


def rel_err(got: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(got.astype(np.float64) - ref).max() / np.abs(ref).max())


def run_case(case: Case, extension: Path, seed: int = 0, threads: int | None = None) -> float:
    model, weight, bias = layer_graph(case, seed)
    runner = OpenVinoRunner(model, what=case.id, extension=extension, threads=threads)
    n = 3 if case.batch == "N" else int(case.batch)
    x = np.random.default_rng(seed + 1).standard_normal((n, case.channels, case.stride * case.h, case.stride * case.w)).astype(case.x)
    got = runner(x)
    assert got.shape == (n, case.channels, case.h, case.w)
    return rel_err(got, truth_of(x.astype(np.float64), weight, bias, case.stride))


# float32 accumulation of <= 49 taps (+ bias) against float64: ~1e-7; a wrong tap, offset, bias
# or scale is O(1)
LAYER_RTOL = 2e-6


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_layer_matches_float64_truth(case: Case, extension: Path) -> None:
    assert run_case(case, extension) < LAYER_RTOL


@pytest.mark.parametrize("case", [Case(3, s, b, d, 5, channels=c, h=40, w=40) for s, b, d, c in
                                  [(1, "channel", "float32", 64), (2, "map", "float32", 64), (1, "map", "float16", 64), (2, "channel", "int8", 64),
                                   # input through the ring copy (C not whole vectors at stride 2; 4 KiB-multiple rows at stride 1)
                                   (2, "map", "float32", 72), (1, "channel", "float32", 128)]],
                         ids=lambda c: f"{c.id}-c{c.channels}")
def test_wide_layer_tiles(case: Case, extension: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A layer big enough for the kernel's tiling: several row blocks per thread, float32 rows
    split into column tiles (their halo columns: in place, or in the ring copy for C=72 and C=128),
    5 images = a full batch tile + a narrower one. int8 tiles at TVX_BLOCK_BYTES
    (TVEXPORT_OV_INT8_WIDE_TILES=0), whatever the machine's L2 (test_int8_tiles_either_width: both)."""
    monkeypatch.setenv("TVEXPORT_OV_INT8_WIDE_TILES", "0")
    assert run_case(case, extension) < LAYER_RTOL


@pytest.mark.parametrize("case", [Case(5, 2, "map", "float16", 4, channels=80, h=6, w=9),
                                  Case(7, 2, "channel", "float32", "N", channels=48, h=5, w=8),
                                  Case(3, 2, "map", "float32", 1, channels=16, h=7, w=10),
                                  Case(5, 2, None, "int8", 1, channels=32, h=5, w=11),
                                  Case(7, 2, "channel", "float16", 2, channels=16, h=4, w=12),
                                  Case(3, 1, "map", "int8", 3, channels=32, h=8, w=32),
                                  # int8 with channels in whole vectors: scales read at q % C
                                  Case(5, 1, "channel", "int8", 1, channels=48, h=6, w=7),
                                  Case(3, 2, "map", "int8", 2, channels=96, h=5, w=9),
                                  Case(7, 1, None, "int8", "N", channels=48, h=4, w=9),
                                  # stride 1, batch > 1, fewer than 32 channels: float16 / int8
                                  # kernels through the ring (in place on AVX-512: masked tails), float32
                                  # in place (edges: Pass::half_tail on AVX2, Pass::masked_tail on AVX-512)
                                  Case(5, 1, "map", "float16", 3, channels=8, h=6, w=13),
                                  Case(3, 1, "channel", "int8", "N", channels=24, h=5, w=11),
                                  Case(7, 1, None, "float32", 2, channels=8, h=5, w=12),
                                  # stride 1, batch 1, channels in whole vectors: in place too
                                  Case(3, 1, "map", "float32", 1, channels=64, h=6, w=9),
                                  Case(7, 1, None, "float16", 1, channels=96, h=5, w=11),
                                  Case(5, 1, "channel", "float32", 1, channels=16, h=6, w=13),
                                  Case(3, 1, "channel", "int8", 1, channels=32, h=5, w=10),
                                  # ... but not with rows of 4 KiB: face MobileNetV2 x1.0's first TV layer's shape
                                  Case(3, 1, "map", "int8", 1, channels=32, h=4, w=32),
                                  # stride 1, k 3, float32, whole batch tiles of 4 images, C whole
                                  # vectors (runs of 9 and 4 positions: what issue 17ag's scratch
                                  # position blocks of 3 or 4 took, with a rest)
                                  Case(3, 1, "map", "float32", 8, channels=48, h=6, w=11),
                                  Case(3, 1, None, "float32", 4, channels=96, h=3, w=6),
                                  # stride 1, batch > 1, float32, C % 16 == 8: a run's last 8 floats and
                                  # the lone edge positions' (C = 8) in one ymm (Pass::half_tail): runs of
                                  # an odd number of positions, two segments a row (97 columns), a batch
                                  # tile of 4 and a narrower one
                                  Case(3, 1, "map", "float32", 5, channels=8, h=3, w=97),
                                  Case(5, 1, "channel", "float32", 3, channels=24, h=5, w=11),
                                  Case(3, 1, None, "float32", "N", channels=40, h=4, w=9),
                                  # C % 16 odd: 1-15-float tails of every length parity (AVX-512:
                                  # Pass::masked_tail), in place at stride 1 and batch > 1 with each
                                  # kernel dtype (C < 32: float16 / int8 in place on AVX-512 only),
                                  # through the ring at stride 2 and at batch 1
                                  Case(3, 1, "map", "float16", 2, channels=13, h=5, w=9),
                                  Case(5, 1, "channel", "int8", 3, channels=21, h=4, w=10),
                                  Case(3, 1, None, "float32", 4, channels=37, h=4, w=7),
                                  Case(3, 2, "map", "int8", 2, channels=13, h=4, w=7),
                                  Case(5, 1, None, "float16", 1, channels=21, h=5, w=7),
                                  # stride 1, batch 1, C = 16 with float16 kernels: the ring (in place measured no faster, tail49)
                                  Case(5, 1, "map", "float16", 1, channels=16, h=6, w=13)],
                         ids=lambda c: f"{c.id}-c{c.channels}")
def test_input_read_paths(case: Case, extension: Path) -> None:
    """float32 inputs are read in place at stride 2 with channels in whole vectors, at any batch:
    the positions whose taps are all inside the row run together (strided input: 48 and 80
    channels put a vector boundary inside a 64-float chunk's positions; runs that end in single
    vectors), the k3/k5/k7 edge positions alone with their padding taps left out; an input row of
    exactly 4 KiB (32 channels x 32 columns) goes through the ring copy at stride 1. int8 kernels
    with C a multiple of 16 read each vector's scales at its channel offset in the tap's first
    position (48 and 96 channels: chunks that start mid-position, single vectors after the chunks,
    lone edge positions; in place at stride 2, and at stride 1 with batches 1 and 3). At
    stride 1 and batch > 1, fewer than 32 channels go through the ring with float16 / int8 kernels
    (in place on AVX-512, whose 1-15-float tails are masked vectors) and in place with float32 ones; at batch 1 the same holds where the channels are whole vectors
    (16 with float32 kernels only; 32, 48, 64, 96; not with 4 KiB rows: 32 x
    32), other channel counts take the ring. Odd C % 16 (13, 21, 37) gives tails of odd lengths on
    every path that ends a run in one."""
    assert run_case(case, extension) < LAYER_RTOL


# float16 activations: the float32 sums of float16 inputs, rounded once to a float16 output (half
# an ulp is 2**-11 = 4.9e-4 of the largest output); the float16-activation bound of
# test_compressed.py. A wrong tap, lane or bias is O(1).
X16_RTOL = 2e-3
# A float16 graph (x, y and bias float16; float16 or int8 kernels, as a float16 export's), one layer
# per case. OpenVINO 2026.4's CPU plugin (INFERENCE_PRECISION_HINT f32 or bf16, this Zen 4) widens
# the activations: a Convert to float32 before the op and one back after it, so the op runs with
# float32 x and y (Pass<float, WT>), not the float16 path (XT = half). C % 16 odd (13, 21): every
# run ends in a 1-15-float tail (AVX-512: Pass::masked_tail): in place at stride 1 and batch 3, the
# ring at batch 1 and at stride 2.
X16_CASES = [Case(k, s, bias, wd, n, channels=c, h=h, w=w, x="float16") for k, s, bias, wd, n, c, h, w in
             [(3, 1, "map", "float16", 1, 13, 5, 9), (5, 1, "channel", "int8", 1, 21, 4, 10),
              (5, 1, None, "float16", 3, 21, 5, 7), (3, 1, "channel", "int8", 3, 13, 6, 11),
              (3, 2, None, "int8", 1, 13, 4, 7), (5, 2, "map", "float16", 1, 21, 5, 6),
              (3, 2, "channel", "float16", 3, 13, 4, 9), (5, 2, "map", "int8", 3, 21, 3, 8)]]


@pytest.mark.parametrize("case", X16_CASES, ids=lambda c: f"{c.id}-c{c.channels}-x16")
def test_float16_activations(case: Case, extension: Path) -> None:
    """One layer of a float16 graph matches the float64 truth of its float16 inputs, kernels and
    bias, with C % 16 odd at stride 1 and 2, batch 1 and 3 (masked tails on AVX-512)."""
    assert run_case(case, extension) < X16_RTOL


@pytest.mark.parametrize("case", [Case(3, 1, "channel", "int8", 1, channels=8, h=6, w=13),  # period 16: one vector
                                  Case(5, 2, "map", "int8", 1, channels=8, h=5, w=7),  # a scalar tail (56 floats a row)
                                  Case(3, 1, None, "int8", 1, channels=24, h=5, w=11),  # period 48 inside 64-float chunks
                                  Case(7, 2, "channel", "int8", 1, channels=24, h=4, w=9),
                                  Case(3, 2, "map", "int8", 1, channels=40, h=5, w=23),  # period 80, chunks and single vectors
                                  Case(5, 1, "channel", "int8", 1, channels=8, h=4, w=80)],  # rows of several segments
                         ids=lambda c: f"{c.id}-c{c.channels}")
def test_int8_scale_period(case: Case, extension: Path) -> None:
    """int8 kernels, one image, through the ring with channels not in whole vectors: each vector's
    scales are read at q % lcm(C, 16) of the tap's tiled row (kernel.cpp: Pass::scale_period),
    which wraps inside a chunk (C = 24: 48 floats; C = 40: 80), at every vector (C = 8: 16), before
    a scalar tail, and in every segment of a long row."""
    assert run_case(case, extension) < LAYER_RTOL


CHANNEL_BLOCK_CASES = [Case(3, 1, "map", "float32", 5, channels=1920, h=16, w=6),
                       Case(7, 1, "channel", "int8", 5, channels=1400, h=16, w=5),
                       Case(7, 1, "channel", "float32", 5, channels=1400, h=16, w=5),
                       Case(5, 1, None, "float16", "N", channels=1344, h=16, w=6)]


# float16 kernels with a tail too (1357 = 84 x 16 + 13; 1344 has none): the last block's last 13
# floats (AVX-512: Pass::masked_tail, the baseline and AVX2 objects body's scalar loop)
@pytest.mark.parametrize("case", CHANNEL_BLOCK_CASES + [Case(5, 1, "map", "float16", 5, channels=1357, h=16, w=6)],
                         ids=lambda c: f"cblock-{c.id}-c{c.channels}")
def test_channel_blocks(case: Case, extension: Path) -> None:
    """Batch > 1, stride 1, one position's kernels too big for a tile of k positions (C >= 512 and
    k*k*C stored values over 64 KiB, as in DeepLabV3+'s ASPP layers): threads walk their rows in
    blocks of channels, read in place (the last block narrower; 1400 channels: an 8-float tail
    (Pass::half_tail with float32 kernels on AVX2, Pass::masked_tail on AVX-512), 1357 a 13-float one); a
    full batch tile of 4 images and a narrower one; edge positions with their padding taps left
    out). Two threads (8 rows each), so that the path is taken whatever the machine's core count
    (with 1 row per thread the tiles are wide enough for the tile path)."""
    assert run_case(case, extension, threads=2) < LAYER_RTOL


def test_channel_blocks_switched_off(extension: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TVEXPORT_OV_CHANNEL_BLOCKS=0 (read as the op is constructed: benchmarks/openvino_ab.py
    compiles one model with it, one without) sends a channel-block layer down the tile path,
    which matches the truth too."""
    monkeypatch.setenv("TVEXPORT_OV_CHANNEL_BLOCKS", "0")
    assert run_case(CHANNEL_BLOCK_CASES[0], extension, threads=2) < LAYER_RTOL


SERIAL_CASES = [Case(3, 1, "map", "float32", 1), Case(5, 2, None, "int8", 3), Case(7, 1, "channel", "float16", "N", channels=24),
                Case(3, 2, "map", "float16", 1, channels=64, h=40, w=40), Case(3, 1, None, "float32", 5, channels=64, h=40, w=40)]


def case_id(c: Case) -> str:
    """The test id of a case with its own size (SERIAL_CASES, SCALE_REGISTER_CASES, ASM_CASES)."""
    return f"{c.id}-c{c.channels}-{c.h}x{c.w}"


@pytest.mark.parametrize("serial_bytes", ["0", "1000000", str(2**62)], ids=["pool", "small-serial", "all-serial"])
@pytest.mark.parametrize("case", SERIAL_CASES, ids=case_id)
def test_layers_on_the_calling_thread(case: Case, serial_bytes: str, extension: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TVEXPORT_OV_SERIAL_BYTES=N (read as the op is constructed, like TVEXPORT_OV_CHANNEL_BLOCKS;
    benchmarks/openvino_ab.py --switch serial) runs the layers that move fewer than N bytes on the
    calling thread, all rows in one kernel call, instead of splitting the rows over the pool: with
    1 MB the 5x7 layers (0.1-0.21 MB) run there and the 40x40 ones (> 3 MB) on the pool; 0 (the
    default) and 2**62 (written out in decimal) put every layer on one side."""
    monkeypatch.setenv("TVEXPORT_OV_SERIAL_BYTES", serial_bytes)
    assert run_case(case, extension, threads=2) < LAYER_RTOL


def test_serial_bytes_not_a_number_refused(extension: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A value strtoll would read only in part (2**62 -> 2) is refused in one line, not taken silently."""
    monkeypatch.setenv("TVEXPORT_OV_SERIAL_BYTES", "2**62")
    with pytest.raises(TvexportError) as info:
        run_case(SERIAL_CASES[0], extension)
    text = str(info.value)
    assert "TVEXPORT_OV_SERIAL_BYTES=2**62 is not a whole number of bytes" in text and "\n" not in text, text


@pytest.mark.parametrize("env", [{"TVEXPORT_OV_KERNEL_L2": "0", "TVEXPORT_OV_KERNEL_NTA": "0"}, {"TVEXPORT_OV_KERNEL_NTA": "1"},
                                 {"TVEXPORT_OV_KERNEL_L2": "0", "TVEXPORT_OV_KERNEL_NTA": "1"}, {"TVEXPORT_OV_KERNEL_NTA": "0"},
                                 {"TVEXPORT_OV_KERNEL_ROWS": "0"}],
                         ids=["l1", "nta", "l1-nta", "l2", "rows-off"])
def test_kernel_prefetch_hints(env: dict[str, str], extension: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel stream's prefetch hint (TVEXPORT_OV_KERNEL_L2=0: into L1 too, as before issue 17q;
    TVEXPORT_OV_KERNEL_NTA=1: non-temporal at batch 1, taking precedence, =0: with locality; the
    default is non-temporal on AMD Zen 5 and later only, so both are set here; benchmarks/openvino_ab.py
    --switch kernel-l2 / nta) and the next row's kernel prefetch turned off (TVEXPORT_OV_KERNEL_ROWS=0,
    --switch kernel-rows) are read as the op is constructed and leave every dtype's results as
    they were: batch 1 and a batch of 3, stride 1 and 2, and a channel-block layer."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    cases = [Case(3, 1, "map", "float32", 1), Case(5, 2, None, "int8", 1, channels=48, h=5, w=11),
             Case(3, 1, "channel", "float16", 3), CHANNEL_BLOCK_CASES[0]]
    for case in cases:
        assert run_case(case, extension, threads=2) < LAYER_RTOL, case.id


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="x86 prefetch instructions")
def test_prefetch_hints_compiled(extension: Path) -> None:
    """The built library holds the three kernel-stream hints in comparable numbers (each prefetch
    site compiles one of each: prefetcht1 for TVEXPORT_OV_KERNEL_NTA=0, prefetcht0 with
    TVEXPORT_OV_KERNEL_L2=0 too, prefetchnta for TVEXPORT_OV_KERNEL_NTA=1; at batch 1 the default
    is prefetchnta on AMD Zen 5 and later, prefetcht1 elsewhere), so the switches reach the machine code. Results
    cannot show a lost hint (test_kernel_prefetch_hints): g++ 12 -O3 once compiled an if-else
    chain over the hints into the prefetchnta alone (284 of them, 21 prefetcht0 from the other
    prefetches, no prefetcht1), leaving the default path with no kernel prefetch, while every
    result stayed right."""
    objdump = shutil.which("objdump")
    if objdump is None:
        pytest.skip("objdump (binutils) is not installed")
    text = subprocess.run([objdump, "-d", "--no-show-raw-insn", str(extension)], capture_output=True, text=True, check=True).stdout
    counts = {hint: len(re.findall(rf"\b{hint}\b", text)) for hint in ("prefetcht0", "prefetcht1", "prefetchnta")}
    assert counts["prefetchnta"] > 0, counts
    assert min(counts["prefetcht0"], counts["prefetcht1"]) >= counts["prefetchnta"] // 2, counts


def test_vectors_in_registers_compiled(extension: Path) -> None:
    """The kernel's 16-float vectors live in registers in every variant: g++ 12 kept a 64-byte
    vector-extension value in memory where the target has no 64-byte registers (the AVX2 and
    baseline variants before kernel.cpp's v16 became a struct of ymm / xmm there), which showed as
    the clamp done lane by lane (6272 vmaxss in the AVX2 variant, 5344 maxss in the baseline one;
    none now) and accumulators moved through general registers (1568 vpinsrq in the AVX2 variant;
    the AVX-512 one has 32). Results stayed right, only 2.6-11x slower than the memory floor on an
    AVX2-only Zen 3 (issue 17)."""
    objdump = shutil.which("objdump")
    if objdump is None:
        pytest.skip("objdump (binutils) is not installed")
    text = subprocess.run([objdump, "-d", "--no-show-raw-insn", str(extension)], capture_output=True, text=True, check=True).stdout
    if "vfmadd" not in text or "zmm" not in text:
        pytest.skip("not the x86-64 multi-variant build")
    counts = {op: len(re.findall(rf"\b{op}\b", text)) for op in ("maxss", "vmaxss", "vpinsrq")}
    assert counts["maxss"] + counts["vmaxss"] <= 64 and counts["vpinsrq"] <= 256, counts


def test_channel_blocks_row_tiles_outer(extension: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TVEXPORT_OV_BLOCKS_OUTER=0 (read like the switch above) walks each row tile through all the
    channel blocks instead of each block through all the row tiles (test_channel_blocks: the
    default); every case has 2 row tiles and 6-8 blocks per thread, so either order that skipped or
    repeated a (tile, block) pair would fail (a row tile from q % tiles in this order only failed this
    test alone). int8 tiles are kept at TVX_BLOCK_BYTES (TVEXPORT_OV_INT8_WIDE_TILES=0): twice that,
    the default on cores with >= 2 MiB of L2, gives the int8 case one row tile."""
    monkeypatch.setenv("TVEXPORT_OV_BLOCKS_OUTER", "0")
    monkeypatch.setenv("TVEXPORT_OV_INT8_WIDE_TILES", "0")
    for case in CHANNEL_BLOCK_CASES:
        assert run_case(case, extension, threads=2) < LAYER_RTOL, case.id


@pytest.mark.parametrize("wide", ["0", "1"], ids=["narrow", "wide"])
def test_int8_tiles_either_width(wide: str, extension: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TVEXPORT_OV_INT8_WIDE_TILES=0|1 (read as the op is constructed; on by default where a core
    has >= 2 MiB of L2, so a machine runs only one of them unless told) sizes int8 kernel tiles at
    batch > 1 as TVX_BLOCK_BYTES (384 KiB) or twice that. Every case is tiled differently by the
    two (two threads): 384 channels at 24x24, 8 rows x 14 positions against 9 whole rows; stride 2,
    480 channels, 6 rows x 15 positions against a thread's 6 whole rows; input rows a multiple of
    4 KiB (64 channels x 64 columns: 16 KiB) through the ring, 10 against 16 rows; channel blocks of
    320 against 640 channels (1920 channels, k = 5) and 6 against 8 rows (1400 channels, k = 7).
    Both match the truth, with a narrower last batch tile where the batch is 5 or 3."""
    monkeypatch.setenv("TVEXPORT_OV_INT8_WIDE_TILES", wide)
    cases = [Case(3, 1, "map", "int8", 5, channels=384, h=24, w=24), Case(3, 2, None, "int8", 3, channels=480, h=12, w=24),
             Case(3, 1, "channel", "int8", 5, channels=64, h=32, w=64), Case(5, 1, None, "int8", "N", channels=1920, h=16, w=6),
             CHANNEL_BLOCK_CASES[1]]
    for case in cases:
        assert run_case(case, extension, threads=2) < LAYER_RTOL, (case.id, case.channels)


@pytest.mark.parametrize("budget", ["4096", "196608", "786432"], ids=["4k", "192k", "768k"])
def test_tile_budget_from_env(budget: str, extension: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TVEXPORT_OV_BLOCK_BYTES=N (read as the op is constructed; benchmarks/openvino_ab.py --switch
    block-bytes / block-bytes-wide) sizes the tiles and channel blocks at batch > 1 for N stored
    kernel bytes instead of TVX_BLOCK_BYTES: 4 KiB gives one-position tiles (kMinRows rows) and the
    narrowest channel blocks, 192 and 768 KiB the A/B's other tiles. Every dtype, stride 1 and 2,
    the ring and the in-place paths, a channel-block layer, a narrower last batch tile."""
    monkeypatch.setenv("TVEXPORT_OV_BLOCK_BYTES", budget)
    monkeypatch.setenv("TVEXPORT_OV_INT8_WIDE_TILES", "0")
    cases = [Case(3, 1, "map", "float32", 5, channels=64, h=40, w=40), Case(3, 2, None, "int8", 3, channels=72, h=20, w=20),
             Case(5, 1, "channel", "float16", 5, channels=48, h=24, w=24), CHANNEL_BLOCK_CASES[0]]
    for case in cases:
        assert run_case(case, extension, threads=2) < LAYER_RTOL, (case.id, case.channels)


def test_tile_budget_not_a_number_refused(extension: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TVEXPORT_OV_BLOCK_BYTES=12k is refused in one line (the kernel's default is not taken silently)."""
    monkeypatch.setenv("TVEXPORT_OV_BLOCK_BYTES", "12k")
    with pytest.raises(TvexportError) as info:
        run_case(Case(3, 1, "map", "float32", 2), extension)
    text = str(info.value)
    assert "TVEXPORT_OV_BLOCK_BYTES=12k is not a whole number of bytes" in text and "\n" not in text, text


@pytest.mark.parametrize("budget", ["1", "4095", str(64 * 2**20 + 1), str(2**62), "99999999999999999999"],
                         ids=["1", "4k-1", "64m+1", "2**62", "past-int64"])
def test_tile_budget_out_of_range_refused(budget: str, extension: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TVEXPORT_OV_BLOCK_BYTES outside 4 KiB..64 MiB is refused in one line saying the range (before:
    1 byte ran as the narrowest tiles, 2**62 overflowed int8 wide tiles' doubling, and a number past
    int64 was read as its largest value, all silently)."""
    monkeypatch.setenv("TVEXPORT_OV_BLOCK_BYTES", budget)
    with pytest.raises(TvexportError) as info:
        run_case(Case(3, 1, "map", "float32", 2), extension)
    text = str(info.value)
    assert f"TVEXPORT_OV_BLOCK_BYTES={budget} is out of range: give 4096 to 67108864 bytes" in text and "\n" not in text, text


@pytest.mark.parametrize("budget", ["4096", str(64 * 2**20), "0"], ids=["4k", "64m", "0"])
def test_tile_budget_range_ends_taken(budget: str, extension: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both ends of TVEXPORT_OV_BLOCK_BYTES's range and 0 (the default) are taken, and match the truth."""
    monkeypatch.setenv("TVEXPORT_OV_BLOCK_BYTES", budget)
    assert run_case(Case(3, 2, None, "int8", 3, channels=72, h=20, w=20), extension, threads=2) < LAYER_RTOL, budget


# int8, k = 3, C dividing 16, 32 or 48: one image's scales held in registers (kernel.cpp:
# scale_register_chunks; AVX-512 only, elsewhere these take the loop that loads them)
SCALE_REGISTER_CASES = [case for c in (8, 16, 24, 32, 48) for case in (
    Case(3, 1, "map", "int8", 1, channels=c, h=6, w=21), Case(3, 2, None, "int8", 1, channels=c, h=5, w=19),
    Case(3, 1, "channel", "int8", 5, channels=c, h=4, w=13))] + [
    Case(5, 1, "map", "int8", 1, channels=16, h=6, w=21), Case(5, 2, None, "int8", 2, channels=48, h=5, w=11),
    Case(5, 2, None, "int8", 1, channels=48, h=5, w=11)]


@pytest.fixture(scope="module")
def kernel_variant(extension: Path) -> str:
    """The instruction-set variant the extension runs on this CPU."""
    return OpenVinoRunner(layer_graph(SCALE_REGISTER_CASES[0])[0], extension=extension).kernel


@pytest.mark.parametrize("switch", ["1", "0"], ids=["registers", "loaded"])
@pytest.mark.parametrize("case", SCALE_REGISTER_CASES, ids=case_id)
def test_int8_scales_in_registers(case: Case, switch: str, extension: Path, kernel_variant: str,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """int8 kernels with one image at a time (batch 1, and the last image of batch 5 after a tile of
    4) keep each tap's scales in registers where the tap's tiled scale row repeats every 1, 2 or 3
    vectors (C = 8, 16: 1; 32: 2; 24, 48: 3; 48-float chunks for the last) and k = 3 (9 taps, 6 in
    the first and last rows): stride 1 through the ring (C < 32) or in place (C = 32, 48, at
    batches 1 and 5), stride 2 in place for C = 16, 32, 48 (lone left-edge positions:
    6 taps, in registers at C = 48; 4 in the first row: loaded) and through the ring for C = 8, 24;
    whole chunks, then single vectors and a scalar tail. k = 5 takes the loop that loads them,
    except positions with 9 or 6 taps inside the image (at stride 2 with batch 1: the corner
    output (0, 0) holds 9). TVEXPORT_OV_SCALE_REGISTERS=0 (read like the switches above) loads them
    in every case. A scale of the wrong tap fails every registers case (16: the k = 3 ones and the
    k = 5 corner), the wrong vector of a period those with C = 24, 32, 48. The path is built for AVX-512 only: elsewhere the
    registers cases are skipped (they would run the loading loop)."""
    if switch == "1" and "AVX-512" not in kernel_variant:
        pytest.skip(f"scale registers are built for AVX-512 only; this CPU runs {kernel_variant}")
    monkeypatch.setenv("TVEXPORT_OV_SCALE_REGISTERS", switch)
    assert run_case(case, extension, threads=2) < LAYER_RTOL


# One image, int8 and float16 kernels: on AVX2 whole chunks run as inline asm (kernel.cpp:
# Pass::asm_runs): int8 at C = 8 (ring), 32 (ring at a 4 KiB row, in place, strided), 48 and 96 (in
# place, strided); float16 at any C contiguous (ring, in place) and C = 32, 48, 96 strided; the
# last image of a batch of 5 (no kernel prefetch). Rows of several chunks and segments, and
# remainders that the chunk loop takes.
ASM_CASES = [Case(3, 1, "channel", "int8", 1, channels=8, h=4, w=40), Case(5, 1, "map", "int8", 1, channels=8, h=5, w=21),
             Case(3, 1, None, "int8", 1, channels=32, h=4, w=32), Case(3, 1, "map", "int8", 1, channels=32, h=4, w=9),
             Case(3, 2, "map", "int8", 1, channels=32, h=4, w=9), Case(3, 1, "map", "int8", 1, channels=48, h=5, w=21),
             Case(5, 2, "channel", "int8", 1, channels=48, h=4, w=11), Case(3, 1, "channel", "int8", 1, channels=96, h=4, w=7),
             Case(3, 2, None, "int8", 1, channels=96, h=3, w=6), Case(3, 1, "map", "float16", 1, channels=8, h=4, w=40),
             Case(3, 1, None, "float16", 1, channels=24, h=5, w=11), Case(5, 1, "channel", "float16", 1, channels=48, h=4, w=21),
             Case(3, 2, "map", "float16", 1, channels=32, h=4, w=9), Case(3, 2, None, "float16", 1, channels=48, h=4, w=11),
             Case(3, 2, "channel", "float16", 1, channels=96, h=3, w=6), Case(3, 1, "channel", "int8", 5, channels=48, h=4, w=13),
             Case(3, 1, "map", "float16", 5, channels=8, h=4, w=13)]


@pytest.mark.parametrize("case", ASM_CASES, ids=case_id)
def test_one_image_asm_chunks(case: Case, extension: Path) -> None:
    """int8 and float16 kernels one image at a time match the float64 truth in every layout the
    AVX2 asm chunks take (elsewhere the same cases run the C++ chunk loop; test_every_kernel_variant
    then runs them on the AVX2 variant, which carries the asm)."""
    assert run_case(case, extension) < LAYER_RTOL


AVX2_VARIANT = "x86-64-v3 (AVX2, FMA, F16C)"  # OpenVinoRunner.kernel of the AVX2 object (tv_dwconv.cpp: kernel_name)


def test_every_kernel_variant(extension: Path) -> None:
    """The narrower instruction-set variants (forced by TVEXPORT_OV_KERNEL, in a fresh process: the
    choice is made when the library loads) pass part of the grid, one channel-block case, one
    batch-1 layer read in place, and stride-2 layers at one image (AVX2: its one-image chunks and
    walked strided offsets and int8 scale offsets, C = 16, 32, and 40 for the last image of a batch of 5);
    the widest one this CPU runs is
    the default, which the grid above tests. A variant the CPU lacks falls back. The AVX2 process
    also runs every ASM_CASES case: the asm is compiled into the AVX2 object only, which an AVX-512
    CPU does not run by default, so the asm is checked on every x86-64 CPU with AVX2 (where AVX2 is
    the default, test_one_image_asm_chunks ran them already)."""
    script = (
        "import json, sys, test_openvino as t\n"
        "from tvexport.openvino import OpenVinoRunner\n"
        "from pathlib import Path\n"
        "cases = [c for c in t.CASES if c.k == 5 and c.batch == 'N']\n"
        "errs = [t.run_case(c, Path(sys.argv[1])) for c in cases]\n"
        "errs.append(t.run_case(t.Case(3, 1, 'map', 'float32', 5, channels=1920, h=16, w=6), Path(sys.argv[1]), threads=2))  # channel blocks\n"
        "errs.append(t.run_case(t.Case(3, 1, 'channel', 'int8', 1, channels=48, h=5, w=9), Path(sys.argv[1])))  # batch 1 in place\n"
        "errs.append(t.run_case(t.Case(5, 2, 'map', 'int8', 1, channels=32, h=6, w=7), Path(sys.argv[1])))  # stride 2, one image\n"
        "errs.append(t.run_case(t.Case(3, 2, None, 'float16', 1, channels=16, h=5, w=9), Path(sys.argv[1])))\n"
        "errs.append(t.run_case(t.Case(3, 2, 'channel', 'int8', 5, channels=40, h=4, w=6), Path(sys.argv[1])))  # last image of 5\n"
        "asm = [t.run_case(c, Path(sys.argv[1])) for c in t.ASM_CASES] if sys.argv[2] == 'avx2' else []\n"
        "r = OpenVinoRunner(t.layer_graph(cases[0])[0], extension=Path(sys.argv[1]))\n"
        "print(json.dumps({'kernel': r.kernel, 'errs': errs, 'asm': asm}))\n"
    )
    env_base = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}
    seen, asm = {}, []
    for variant in ("generic", "avx2"):
        proc = subprocess.run([sys.executable, "-c", script, str(extension), variant], env={**env_base, "TVEXPORT_OV_KERNEL": variant},
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        got = json.loads(proc.stdout.strip().splitlines()[-1])
        assert len(got["errs"]) == 14 and all(e < LAYER_RTOL for e in got["errs"]), (variant, got)  # max() would skip a NaN
        seen[variant], asm = got["kernel"], asm + got["asm"]
    failed = {case_id(c): err for c, err in zip(ASM_CASES, asm, strict=True) if not err < LAYER_RTOL}
    assert failed == {}, (seen["avx2"], failed)
    assert seen["generic"] == "baseline", seen
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    if " avx2 " in flags and " f16c " in flags:  # this CPU runs both: each must have run, the asm in the AVX2 one
        assert seen["avx2"] == AVX2_VARIANT, seen


def test_deliberate_bugs_fail_the_layer_test(extension: Path) -> None:
    """The comparison is sharp: a graph whose constants are wrong in the ways a kernel bug would be
    (taps in the wrong order, stride-2 offset, bias dropped, int8 scale off) fails it."""
    case = Case(3, 2, "map", "int8", "N")
    model, weight, bias = layer_graph(case)
    x = np.random.default_rng(1).standard_normal((3, case.channels, 2 * case.h, 2 * case.w)).astype(np.float32)
    got = OpenVinoRunner(model, extension=extension)(x)
    truth = truth_of(x.astype(np.float64), weight, bias, 2)
    assert rel_err(got, truth) < LAYER_RTOL
    bugs = {
        "tap order": truth_of(x.astype(np.float64), weight[:, ::-1].copy(), bias, 2),
        "stride-2 offset": truth_of(np.roll(x, 1, axis=2).astype(np.float64), weight, bias, 2),
        "dropped bias": truth_of(x.astype(np.float64), weight, None, 2),
        "scale": truth_of(x.astype(np.float64), weight * 1.01, bias, 2),
    }
    for name, wrong in bugs.items():
        assert rel_err(got, wrong) > 100 * LAYER_RTOL, name


def test_float16_kernels_stay_float16(extension: Path) -> None:
    """The CPU plugin would widen float16 constants to float32 (double the bytes the op streams);
    the conversion hands them over as bytes, so the compiled op reads 2 bytes per kernel value."""
    model, _, _ = layer_graph(Case(3, 1, None, "float16", 1))
    runner = OpenVinoRunner(model, extension=extension)
    op = next(o for o in runner.compiled.get_runtime_model().get_ordered_ops() if o.get_friendly_name() == "tv")
    assert [str(i.get_element_type()) for i in op.inputs()][1] in ("<Type: 'uint8_t'>", "u8")


@pytest.mark.parametrize("case", [Case(3, 2, "map", "int8", "N"), Case(3, 1, "channel", "float32", 4, channels=48, h=5, w=10),
                                  Case(3, 1, "channel", "int8", 1, channels=48, h=5, w=10), Case(3, 1, None, "float16", 1, channels=8, h=4, w=16),
                                  Case(3, 1, "channel", "float32", 5, channels=8, h=4, w=13)],
                         ids=lambda c: f"{c.id}-c{c.channels}")
@pytest.mark.parametrize("last", [False, True], ids=["clip-relu-add", "clip-is-output"])
def test_following_clip_and_relu_fold_into_the_op(last: bool, case: Case, extension: Path) -> None:
    """Clip and Relu after a TV op fold into it (the kernel clamps before storing: no pass over
    the output); clamped bounds intersect. A Clip that is the model's output stays (its name).
    Stride 2 int8, stride 1 float32 in place with a batch tile of 4 and 48 channels, and one image
    of int8 (48 channels in place) and float16 kernels (8 through the ring): AVX2's asm chunks;
    stride 1 float32 in place with 8 channels at batch 5: AVX2's 8-float tails (Pass::half_tail)."""
    model, weight, bias = layer_graph(case)
    graph = model.graph
    graph.node[0].output[0] = "t"
    graph.initializer.extend([numpy_helper.from_array(np.array(v, np.float32), n) for n, v in (("lo", -0.5), ("hi", 0.7), ("shift", 0.25))])
    graph.node.append(helper.make_node("Clip", ["t", "lo", "hi"], ["y" if last else "c"]))
    if not last:
        graph.node.extend([helper.make_node("Relu", ["c"], ["r"]), helper.make_node("Add", ["r", "shift"], ["y"])])
    runner = OpenVinoRunner(model, extension=extension)
    n, s = 3 if case.batch == "N" else int(case.batch), case.stride
    x = np.random.default_rng(1).standard_normal((n, case.channels, s * case.h, s * case.w)).astype(np.float32)
    got = runner(x)
    truth = truth_of(x.astype(np.float64), weight, bias, s)
    expected = np.clip(truth, -0.5, 0.7) if last else np.clip(truth, 0.0, 0.7) + 0.25
    assert rel_err(got, expected) < LAYER_RTOL
    # ONNX Clip reads as Maximum + Minimum (or one Clamp): the node that writes the output stays
    assert (runner.folded <= 1) if last else (runner.folded >= 2), runner.folded
    if not last:  # a clamp dropped, or only Clip's or only Relu's bound applied, is far off
        for wrong in (truth + 0.25, np.clip(truth, -0.5, 0.7) + 0.25, np.maximum(truth, 0.0) + 0.25):
            assert rel_err(got, wrong) > 100 * LAYER_RTOL


CLAMP_PAIRS = [((0.0, 6.0), (7.0, 8.0)), ((7.0, 8.0), (0.0, 6.0)), ((-0.5, 0.7), (0.0, np.inf)), ((-1.0, 1.0), (-0.25, 0.5)),
               ((-0.25, 0.5), (-1.0, 1.0)), ((0.0, np.inf), (-np.inf, -0.5)), ((-0.5, -0.5), (-0.2, 0.3))]


@pytest.mark.parametrize(("first", "then"), CLAMP_PAIRS)
def test_compose_clamps_is_clamp_after_clamp(first: tuple[float, float], then: tuple[float, float]) -> None:
    """One clamp standing for two in a row: overlapping ranges intersect, disjoint ones give the
    endpoint of the second range nearest the first (before: always the intersection, so
    Clip(0, 6) then Clip(7, 8) became lo 7 > hi 6, which the kernel's max-then-min made 6)."""
    from tvexport.openvino.runtime import compose_clamps

    x = np.concatenate([np.linspace(-10, 10, 2001), [-np.inf, np.inf]])
    lo, hi = compose_clamps(first, then)
    assert lo <= hi
    np.testing.assert_array_equal(np.clip(x, lo, hi), np.clip(np.clip(x, *first), *then))


@pytest.mark.parametrize(("first", "then"), CLAMP_PAIRS[:3], ids=["disjoint-up", "disjoint-down", "clip-relu"])
def test_successive_clips_fold_as_composed(first: tuple[float, float], then: tuple[float, float], extension: Path) -> None:
    """tv_dwconv -> Clip(first) -> Clip(then) -> Add: both clips fold into the op, and the output
    is the second clip of the first (Clip(0, 6) then Clip(7, 8): 7 everywhere)."""
    case = Case(3, 1, "map", "float32", 1)
    model, weight, bias = layer_graph(case)
    graph = model.graph
    graph.node[0].output[0] = "t"
    bounds = {"lo1": first[0], "hi1": first[1], "lo2": then[0], "hi2": then[1], "zero": 0.0}
    graph.initializer.extend([numpy_helper.from_array(np.array(min(max(v, -3e38), 3e38), np.float32), n) for n, v in bounds.items()])
    graph.node.extend([helper.make_node("Clip", ["t", "lo1", "hi1"], ["c1"]), helper.make_node("Clip", ["c1", "lo2", "hi2"], ["c2"]),
                       helper.make_node("Add", ["c2", "zero"], ["y"])])
    runner = OpenVinoRunner(model, extension=extension)
    x = 4 * np.random.default_rng(1).standard_normal((1, case.channels, case.h, case.w)).astype(np.float32)
    got = runner(x)
    assert runner.folded >= 2, runner.folded
    truth = truth_of(x.astype(np.float64), weight, bias, 1)
    expected = np.clip(np.clip(truth, *first), *then)
    np.testing.assert_allclose(got, expected, rtol=0, atol=LAYER_RTOL * np.abs(truth).max())
    if first == (0.0, 6.0):
        assert np.all(got == 7.0)


# --------------------------------------------------------------------------------------------
# Bad nodes: one clear line at compile time
# --------------------------------------------------------------------------------------------

_HUGE = {"2**63-1": 2**63 - 1, "2**62": 2**62, "2**32+1": 2**32 + 1}


def _bad(mutate: str) -> Any:
    model, _, _ = layer_graph(Case(3, 1, "map", "float32", 2, channels=8, h=6, w=6))
    node = model.graph.node[0]
    graph = model.graph
    if mutate == "rank":
        graph.input[0].CopyFrom(helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 8, 6]))
    elif mutate == "channels":
        graph.input[0].CopyFrom(helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 5, 6, 6]))
    elif mutate == "spatial":
        graph.input[0].CopyFrom(helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 8, 9, 6]))
    elif mutate == "even_k":
        w = graph.initializer[0]
        w.CopyFrom(numpy_helper.from_array(np.zeros((8, 4, 6, 6), np.float32), w.name))
        for a in node.attribute:
            if a.name in ("k", "padding"):
                a.i = 2 if a.name == "k" else 1
    elif mutate.startswith("missing_"):
        keep = [a for a in node.attribute if a.name != mutate.removeprefix("missing_")]
        del node.attribute[:]
        node.attribute.extend(keep)
    elif mutate.startswith("extra_"):  # e.g. extra_dilation: an attribute the node does not take
        node.attribute.append(helper.make_attribute(mutate.removeprefix("extra_"), 2))
    elif mutate == "int8_no_scale":
        w = graph.initializer[0]
        w.CopyFrom(numpy_helper.from_array(np.zeros((8, 9, 6, 6), np.int8), w.name))
    elif mutate == "bias_shape":
        b = graph.initializer[1]
        b.CopyFrom(numpy_helper.from_array(np.zeros((8, 3, 6), np.float32), b.name))
    elif mutate.startswith("bias="):  # e.g. bias=3,1,1: a per-channel bias for another channel count
        b = graph.initializer[1]
        b.CopyFrom(numpy_helper.from_array(np.zeros(tuple(int(d) for d in mutate.split("=")[1].split(",")), np.float32), b.name))
    elif mutate.startswith("weight_dtype="):  # a weight of a type the op does not take, e.g. uint8
        w = graph.initializer[0]
        w.CopyFrom(numpy_helper.from_array(np.ones((8, 9, 6, 6), np.dtype(mutate.split("=")[1])), w.name))
    elif mutate == "scale_shape":  # 3 scale rows for 8 channels: the Reshape to (C, k*k) cannot divide
        w = graph.initializer[0]
        w.CopyFrom(numpy_helper.from_array(np.zeros((8, 9, 6, 6), np.int8), w.name))
        graph.initializer.append(numpy_helper.from_array(np.ones((3, 9, 1, 1), np.float32), "tv.scale"))
        node.input.append("tv.scale")
    elif mutate == "short_input":  # a 3x3 window over 2x2 unpadded: no output position (torch refuses it)
        model = layer_model(np.zeros((8, 9, 1, 1), np.float32), None, stride=2, method="plugin", batch=2)
        next(a for a in model.graph.node[0].attribute if a.name == "padding").i = 0
    elif mutate.startswith("typed_"):  # e.g. typed_k=3.7 (a FLOAT attribute), typed_k='3' (a STRING one)
        name, value = mutate.removeprefix("typed_").split("=")
        keep = [a for a in node.attribute if a.name != name]
        del node.attribute[:]
        node.attribute.extend([*keep, helper.make_attribute(name, value.strip("'") if value.startswith("'") else float(value))])
    elif mutate.startswith(("padding=", "k=")):  # e.g. padding=2**62: 2*padding wrapped in int64
        name, value = mutate.split("=")
        next(a for a in node.attribute if a.name == name).i = _HUGE.get(value) or int(value)
    elif mutate.startswith("huge_input"):  # a declared height of 2**63 - 2: height + 2*padding past 2**63 - 1
        graph.input[0].CopyFrom(helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 8, 2**63 - 2, 6]))
        next(a for a in node.attribute if a.name == "padding").i = 2 if mutate.endswith("pad2") else 1
    elif mutate.startswith(("int8_k=", "int8_3_scale_rows_k=", "int8_25_scale_taps_k=")):
        # int8 weight (8, 9, 6, 6) and a scale (8, 9, 1, 1), (3, 9, 1, 1) or (8, 25, 1, 1)
        w = graph.initializer[0]
        w.CopyFrom(numpy_helper.from_array(np.zeros((8, 9, 6, 6), np.int8), w.name))
        rows = 3 if mutate.startswith("int8_3") else 8
        taps = 25 if mutate.startswith("int8_25") else 9
        graph.initializer.append(numpy_helper.from_array(np.ones((rows, taps, 1, 1), np.float32), "tv.scale"))
        node.input.append("tv.scale")
        next(a for a in node.attribute if a.name == "k").i = int(mutate.split("=")[1])
    return model


@pytest.mark.parametrize(("mutate", "message"), [
    ("rank", "x (N, C, H, W) must be 4-D"),
    ("channels", "has 5 channels, weight (8, 9, 6, 6) has 8"),
    ("spatial", "gives height 9, but weight (8, 9, 6, 6) is for 6"),
    ("even_k", "k must be a positive odd number, got 2"),
    ("missing_k", "lacks the INT attribute 'k'"),
    ("missing_stride", "lacks the INT attribute 'stride'"),
    ("missing_padding", "lacks the INT attribute 'padding'"),
    # before: converted silently (k=3.7 ran as k=3, stride=1.9 as 1, '3' as 3), and 'abc' gave "Could not convert to: l from string"
    ("typed_k=3.7", "attribute 'k' must be INT, got FLOAT"),
    ("typed_stride=1.9", "attribute 'stride' must be INT, got FLOAT"),
    ("typed_padding=1.0", "attribute 'padding' must be INT, got FLOAT"),
    ("typed_k='3'", "attribute 'k' must be INT, got STRING"),
    ("typed_k='abc'", "attribute 'k' must be INT, got STRING"),
    # before: dropped unsaid (dilation=2 ran undilated); the conversion cannot list attributes, the runner refuses them
    ("extra_dilation", "unknown attribute 'dilation'; tv_dwconv takes k, stride, padding, plugin_namespace, plugin_version (and TensorRT's aot) only"),
    ("extra_group", "unknown attribute 'group'"),
    ("int8_no_scale", "int8 weight needs a float32 scale"),
    ("bias_shape", "bias (8, 3, 6) must be (C, h, w) or (C, 1, 1)"),
    # before: the tiled internal shape was shown ("bias (3, 1, 64) must be ..."), not the graph's
    ("bias=3,1,1", "bias (3, 1, 1) must be (C, h, w) or (C, 1, 1) for weight (8, 9, 6, 6)"),
    ("bias=1,1,1", "bias (1, 1, 1) must be (C, h, w) or (C, 1, 1) for weight (8, 9, 6, 6)"),
    # before: uint8 was read as float16 bytes: this graph was refused blaming a weight (4, 9, 6, 6)
    # it does not have, and with x of 4 channels it ran and gave NaN
    ("weight_dtype=uint8", "weight must be float32, float16 or int8, got u8"),
    ("weight_dtype=int16", "weight must be float32, float16 or int8, got i16"),
    ("scale_shape", "scale (3, 9, 1, 1) must be (8, 9, 1, 1), one value per channel and tap of weight (8, 9, 6, 6)"),
    ("short_input", "x (2, 8, 2, 2) is smaller than the k=3 window: height 2 padded by 0 on each side is 2 < 3"),
    # before: 2*padding wrapped: "gives height 2" (a 10x10 input was accepted), "height 6 + 2*padding 4611686018427387904 < 3"
    ("padding=2**63-1", "padding must be between 0 and k-1 = 2 for k=3, got 9223372036854775807"),
    ("padding=2**62", "padding must be between 0 and k-1 = 2 for k=3, got 4611686018427387904"),
    ("padding=3", "padding must be between 0 and k-1 = 2 for k=3, got 3"),
    ("padding=-1", "padding must be between 0 and k-1 = 2 for k=3, got -1"),
    ("k=2**32+1", "k must be at most 63, got 4294967297"),  # before: k*k wrapped ("must hold k*k = 8589934593 taps")
    ("huge_input", "x (2, 8, 9223372036854775806, 6) with k=3 stride=1 padding=1 gives height 9223372036854775806, but weight"),
    # 2**63 positions; before: "gives height -9223372036854775808" (wrapped)
    ("huge_input_pad2", "x (2, 8, 9223372036854775806, 6) with k=3 stride=1 padding=2 gives height of at least 9223372036854775807, but"),
    # before: the scale, which agrees with the weight, was blamed for k ("must be (C, k*k, 1, 1) = (8, 4, 1, 1)")
    ("int8_k=2", "k must be a positive odd number, got 2"),
    ("int8_k=0", "k must be a positive odd number, got 0"),
    ("int8_k=5", "weight (8, 9, 6, 6) must hold k*k = 25 taps per channel (k=5)"),
    ("int8_3_scale_rows_k=2", "k must be a positive odd number, got 2"),  # k is checked before anything else of the node
    # the scale agrees with k=5, the weight does not: before, the scale was blamed ("scale (8, 25, 1, 1) must be
    # (8, 9, 1, 1)"), and "fixing" it gave this message only then
    ("int8_25_scale_taps_k=5", "weight (8, 9, 6, 6) must hold k*k = 25 taps per channel (k=5)"),
])
def test_bad_node_refused_at_compile_time(mutate: str, message: str, extension: Path) -> None:
    with pytest.raises(TvexportError) as info:
        OpenVinoRunner(_bad(mutate), what="bad.onnx", extension=extension)
    text = str(info.value)
    assert message in text and "tv_dwconv node 'tv'" in text
    assert "\n" not in text, text


def test_aot_attribute_is_accepted(extension: Path) -> None:
    """TensorRT's aot attribute (its parser's plugin creation request) is one of the node's own: the
    unknown-attribute refusal leaves it, and the layer runs as without it."""
    case = Case(3, 1, "map", "float32", 2, channels=8, h=5, w=6)
    model, weight, bias = layer_graph(case)
    model.graph.node[0].attribute.append(helper.make_attribute("aot", 1))
    x = np.random.default_rng(3).standard_normal((2, 8, 5, 6)).astype(np.float32)
    got = OpenVinoRunner(model, what="aot.onnx", extension=extension)(x)
    assert rel_err(got, truth_of(x.astype(np.float64), weight, bias, 1)) < LAYER_RTOL


def test_node_attrs_header(tmp_path: Path) -> None:
    """tvexport/openvino/ext/node_attrs.hpp (built here with the machine compiler, no OpenVINO): its
    attribute list is tvexport._depthwise.NODE_ATTRS, and its check of an ONNX file refuses a
    tv_dwconv node with an attribute the node does not take in the Python check's words plus the
    file and the fix (before: C++ programs loading the extension had no such check; its conversion
    reads attributes by name and dropped dilation=2 unsaid). Nodes of another domain, files that
    are no ModelProto and missing files are left to read_model."""
    from tvexport._depthwise import NODE_ATTRS, check_node_attr_names

    cxx = (shutil.which(os.environ["CXX"]) if os.environ.get("CXX") else None) or shutil.which("c++") or shutil.which("g++")
    if cxx is None:
        pytest.skip("no C++ compiler ($CXX, c++ or g++)")
    harness = tmp_path / "attrs.cpp"
    harness.write_text('#include <iomanip>\n#include "node_attrs.hpp"\n#include <iostream>\n'  # <iomanip>: std::quoted beside it
                       "int main(int argc, char** argv) { if (argc == 1) { for (const auto& a : tvx::node_attrs()) std::cout << a << '\\n'; return 0; }\n"
                       "  std::cout << tvx::unknown_attributes_in_file(argv[1]); }\n")
    exe = tmp_path / "attrs"
    subprocess.run([cxx, "-O1", "-std=c++17", "-Wall", "-Wextra", "-Werror", f"-I{_build.SOURCE_DIR}", str(harness), "-o", str(exe)],
                   check=True, capture_output=True, text=True)

    def check(model: Any) -> str:
        path = tmp_path / "m.onnx"
        onnx.save(model, str(path))
        return subprocess.run([str(exe), str(path)], check=True, capture_output=True, text=True).stdout

    assert tuple(subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split()) == NODE_ATTRS
    fix = f" (in {tmp_path / 'm.onnx'}; export the model again with tvexport export --tv-op plugin)"
    names = ("features.3.conv", "it's \"odd\"\n\\\t\x01", "a'b")  # Python's repr: quotes and escapes, one line
    for extra, name in zip((["dilation"], ["group", "dilation", "group"], ["dilation"]), names):
        model = _bad("extra_dilation")
        node = model.graph.node[0]
        node.name = name
        del node.attribute[-1]
        node.attribute.extend(helper.make_attribute(a, 2) for a in extra)
        with pytest.raises(ValueError) as python:
            check_node_attr_names([a.name for a in node.attribute], node=f"tv_dwconv node {node.name!r}")
        assert check(model) == str(python.value) + fix and "\n" not in check(model)
        node.domain = "other"  # not tvexport's node
        assert check(model) == ""
    assert check(_bad("channels")) == ""  # every attribute known (the node is wrong otherwise: read_model says so)
    aot = _bad("extra_aot")
    assert [a.name for a in aot.graph.node[0].attribute][-1] == "aot" and check(aot) == ""
    (tmp_path / "m.onnx").write_bytes(_bad("extra_dilation").SerializeToString()[:200])  # cut short: no ModelProto
    assert subprocess.run([str(exe), str(tmp_path / "m.onnx")], check=True, capture_output=True, text=True).stdout == ""
    assert subprocess.run([str(exe), str(tmp_path / "missing.onnx")], check=True, capture_output=True, text=True).stdout == ""


def test_input_smaller_than_the_window_refused_at_run_time(extension: Path) -> None:
    """x with dynamic H and W compiles; run at 2x2 under a 3x3 unpadded window it has no output
    position (before mend35e: accepted, output (1, 8, 1, 1) of the bias alone)."""
    model = layer_model(np.ones((8, 9, 1, 1), np.float32), None, stride=2, method="plugin", batch=1)
    next(a for a in model.graph.node[0].attribute if a.name == "padding").i = 0
    model.graph.input[0].CopyFrom(helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 8, "H", "W"]))
    runner = OpenVinoRunner(model, what="dyn.onnx", extension=extension)
    assert runner(np.ones((1, 8, 3, 3), np.float32)).shape == (1, 8, 1, 1)  # the size it is for runs
    with pytest.raises(TvexportError) as info:
        runner(np.ones((1, 8, 2, 2), np.float32))
    text = str(info.value)
    assert text.startswith("OpenVINO failed to run dyn.onnx: tv_dwconv node 'tv': ") and "\n" not in text, text
    assert "is smaller than the k=3 window" in text or "does not fit weight" in text, text


def test_uint8_weight_is_not_read_as_float16_bytes(extension: Path) -> None:
    """A uint8 weight (8, 9, 5, 7) with x of 4 channels: before, it was read as float16 bytes of a
    (4, 9, 5, 7) weight, compiled, and ran to NaN; now refused at compile time."""
    model = layer_model(np.ones((8, 9, 5, 7), np.float32), None, stride=1, method="plugin", batch=1)
    w = model.graph.initializer[0]
    w.CopyFrom(numpy_helper.from_array(np.full((8, 9, 5, 7), 60, np.uint8), w.name))
    model.graph.input[0].CopyFrom(helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4, 5, 7]))
    with pytest.raises(TvexportError, match="weight must be float32, float16 or int8, got u8") as info:
        OpenVinoRunner(model, what="u8.onnx", extension=extension)
    assert "\n" not in str(info.value)


def _run_with_bias(model: Any, extension: Path, x: np.ndarray, bias: np.ndarray) -> np.ndarray:
    import openvino as ov

    core = ov.Core()
    core.add_extension(str(extension))
    compiled = core.compile_model(core.read_model(model.SerializeToString(), b""), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return np.asarray(compiled.create_infer_request().infer({"x": x, "b": bias})[compiled.outputs[0]])


@pytest.mark.parametrize("bias_kind", ["map", "channel"])
def test_bias_of_dynamic_shape(bias_kind: str, extension: Path) -> None:
    """A bias given as a graph input (C, "bh", "bw"): before, one with dynamic dims was always tiled
    as per-channel, so a valid (C, h, w) map was refused at run time with the tiled shape
    ("bias (8, 5, 448) must be ..."); now a map and a per-channel bias both run."""
    rng = np.random.default_rng(0)
    c, h, w = 8, 5, 7
    weight = rng.standard_normal((c, 9, h, w)).astype(np.float32)
    model = layer_model(weight, rng.standard_normal((c, h, w)).astype(np.float32), stride=1, method="plugin", batch=1)
    graph = model.graph
    b_init = next(t for t in graph.initializer if t.name.endswith("bias"))
    graph.initializer.remove(b_init)
    node = graph.node[0]
    node.input[2] = "b"
    graph.input.append(helper.make_tensor_value_info("b", onnx.TensorProto.FLOAT, [c, "bh", "bw"]))
    bias = rng.standard_normal((c, h, w) if bias_kind == "map" else (c, 1, 1)).astype(np.float32)
    x = rng.standard_normal((1, c, h, w)).astype(np.float32)
    got = _run_with_bias(model, extension, x, bias)
    truth = truth_of(x.astype(np.float64), weight.astype(np.float64), bias.astype(np.float64), 1)
    assert rel_err(got, truth) < LAYER_RTOL


def test_max_with_a_broadcasting_constant_is_not_folded(extension: Path) -> None:
    """Max(tv_dwconv(x), zeros(3, C, h, w)) -> Add with batch 1: ONNX broadcasting makes the output
    (3, C, h, w). Before, fuse_clamps folded the Max (all its values equal) and the output was
    (1, C, h, w)."""
    case = Case(3, 1, "map", "float32", 1, channels=8)
    model, weight, bias = layer_graph(case)
    graph = model.graph
    graph.node[0].output[0] = "t"
    graph.initializer.extend([numpy_helper.from_array(np.zeros((3, 8, 5, 7), np.float32), "zb"),
                              numpy_helper.from_array(np.zeros((1, 1, 1, 1, 1), np.float32), "z5"),
                              numpy_helper.from_array(np.array(0.0, np.float32), "z")])
    graph.node.extend([helper.make_node("Max", ["t", "zb"], ["mx"]), helper.make_node("Min", ["mx", "z5"], ["mn"]),
                       helper.make_node("Add", ["mn", "z"], ["y"])])
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None))
    runner = OpenVinoRunner(model, extension=extension)
    x = np.random.default_rng(1).standard_normal((1, 8, 5, 7)).astype(np.float32)
    got = runner(x)
    assert got.shape == (1, 3, 8, 5, 7), got.shape
    truth = np.minimum(np.maximum(truth_of(x.astype(np.float64), weight, bias, 1), 0.0), 0.0)
    assert np.array_equal(got[0], np.broadcast_to(truth, (3, 8, 5, 7)))
    assert runner.folded == 0, runner.folded


def test_max_with_a_shape_keeping_constant_is_folded(extension: Path) -> None:
    """Max(tv_dwconv(x), zeros(1, C, 1, 1)): equal values whose shape keeps the output's, a clamp."""
    case = Case(3, 1, "map", "float32", 1, channels=8)
    model, weight, bias = layer_graph(case)
    graph = model.graph
    graph.node[0].output[0] = "t"
    graph.initializer.extend([numpy_helper.from_array(np.zeros((1, 8, 1, 1), np.float32), "zc"),
                              numpy_helper.from_array(np.array(0.0, np.float32), "z")])
    graph.node.extend([helper.make_node("Max", ["t", "zc"], ["mx"]), helper.make_node("Add", ["mx", "z"], ["y"])])  # a clamp feeding the output stays
    runner = OpenVinoRunner(model, extension=extension)
    x = np.random.default_rng(2).standard_normal((1, 8, 5, 7)).astype(np.float32)
    got = runner(x)
    truth = np.maximum(truth_of(x.astype(np.float64), weight, bias, 1), 0.0)
    assert got.shape == truth.shape and rel_err(got, truth) < LAYER_RTOL
    assert runner.folded == 1, runner.folded


# What OpenVINO 2026.4 raised for the scale_shape graph before the conversion checked the scale
FRONTEND_FAILURE = (
    "Exception from src/inference/src/cpp/core.cpp:84:\nCheck 'false' failed at src/frontends/common_translators/src/unconverted_ops_report.cpp:151:\n"
    "FrontEnd API failed with OpConversionFailure:\nModel wasn't fully converted. Failed operations detailed log:\n"
    "-- tvexport.tv_dwconv with a message:\nWhile validating ONNX node '<Node(tv_dwconv): y>': Check '!dim::is_empty(minus_one_dim)' failed at "
    "src/core/shape_inference/include/reshape_shape_inference.hpp:345:\nWhile validating node 'opset1::Reshape Reshape_10 (opset1::Constant "
    "s[0]:f32[3,9,1,1], opset1::Constant Constant_9[0]:i64[2]) -> (dynamic[...])' with friendly_name 'Reshape_10':\n"
    "Non-'-1' output dimensions do not evenly divide the input dimensions\n\nSummary:\n-- Conversion is failed for: tvexport.tv_dwconv\n\n"
)


@pytest.mark.parametrize(("text", "line"), [
    (FRONTEND_FAILURE, "Non-'-1' output dimensions do not evenly divide the input dimensions"),
    ("Exception from src/inference/src/cpp/core.cpp:84:\nCheck 'false' failed at x.cpp:1:\nFrontEnd API failed with OpConversionFailure:\n"
     "Model wasn't fully converted.\nSummary:\n-- No conversion rule found for operations: tvexport.tv_dwconv\n\n",
     "No conversion rule found for operations: tvexport.tv_dwconv"),
    ("Exception from a.cpp:1:\n-- tvexport.tv_dwconv with a message:\ntv_dwconv node 'tv': k must be a positive odd number, got 2\n",
     "tv_dwconv node 'tv': k must be a positive odd number, got 2"),
    ("Exception from a.cpp:1:\nsomething else went wrong\n", "something else went wrong"),
    # only framing (an assertion without a message): before mend35f the bare "RuntimeError"
    ("Exception from src/core/src/node.cpp:7:\nCheck 'input_rank.is_static()' failed at src/core/shape.cpp:12:\n",
     "Check 'input_rank.is_static()' failed at src/core/shape.cpp:12"),
    ("Exception from a.cpp:1:\n-- something else went wrong\n", "something else went wrong"),
    ("Exception from a.cpp:1:\n", "RuntimeError"),
    # an empty message: before, the header "tvexport.tv_dwconv with a message", which claims one
    ("Exception from a.cpp:1:\n-- tvexport.tv_dwconv with a message:\n", "RuntimeError"),
    ("Exception from a.cpp:1:\nCheck 'ok' failed at b.cpp:2:\n-- tvexport.tv_dwconv with a message:\n", "Check 'ok' failed at b.cpp:2"),
])
def test_first_line_is_the_reason(text: str, line: str) -> None:
    """Before: a frontend failure inside the conversion was reported as OpenVINO's header line
    "tvexport.tv_dwconv with a message:", the reason left out."""
    from tvexport.openvino.runtime import _first_line

    assert _first_line(RuntimeError(text)) == line


def test_cli_validate_bad_plugin_graph_one_line(cli: Any, extension: Path, tmp_path: Path, demo_ckpt: Path) -> None:
    path = tmp_path / "bad.onnx"
    onnx.save(_bad("spatial"), str(path))
    r = cli("validate", path, "--against", demo_ckpt, "--backend", "openvino")
    assert r.exit_code == 2
    assert r.stderr.count("\n") == 1 and "tv_dwconv node 'tv'" in r.stderr, r.stderr


# --------------------------------------------------------------------------------------------
# Whole networks (plugin form) against the float64 unbaked torch model
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Network:
    unbaked: torch.nn.Module
    graph: Any  # plugin-form onnx.ModelProto

    def errors(self, runner: Any, batches: tuple[int, ...]) -> list[tuple[float, float]]:
        """(runner error, torch float32 error) against the float64 unbaked model, per batch."""
        out = []
        for n in batches:
            x = random_inputs((n, *self.unbaked.tvexport_config.input_shape), seed=7 + n)
            with torch.no_grad():
                truth = copy.deepcopy(self.unbaked).double()(x.double()).numpy()
                f32 = self.unbaked.float()(x).numpy()
            out.append((rel_err(runner(x.numpy()), truth), rel_err(f32, truth)))
        return out


def _network(name: str, *, tv: Any = SMALL_TV, seed: int = 0, batch: int | None = None, dtype: str = "float32") -> Network:
    """``name`` with random weights, its plugin graph (dynamic batch unless ``batch``)."""
    unbaked = make_model(name, tv=tv, seed=seed)
    baked = bake_model(unbaked, verify=False).model
    graph = onnx_graph(baked, tv_op="plugin", dynamic_batch=batch is None, batch=batch or 1, dtype=dtype)
    return Network(unbaked, graph)


def _within(errors: list[tuple[float, float]], floor: float = 1e-5) -> bool:
    """No worse than torch float32 by more than 2x, plus a floor (the float32 validation rule)."""
    return all(ov <= 2 * f32 + floor for ov, f32 in errors)


@pytest.fixture(scope="module")
def mnv2() -> Network:
    return _network("face_mobilenetv2_x0_1")


def test_face_mobilenetv2_dynamic_batch(mnv2: Network, extension: Path) -> None:
    runner = OpenVinoRunner(mnv2.graph, what="mnv2")
    assert runner.fused and runner.batch is None and runner.extension == extension
    errors = mnv2.errors(runner, (1, 3))
    assert _within(errors), errors


def test_shufflenet_k5_bias_maps_static_batch(extension: Path) -> None:
    net = _network("face_shufflenetv2_x0_5", tv=dataclasses.replace(SMALL_TV, k=5, bias=True), seed=2, batch=2)
    runner = OpenVinoRunner(net.graph)
    assert runner.batch == 2
    errors = net.errors(runner, (2,))
    assert _within(errors), errors


def test_exported_int8_plugin_graph(extension: Path) -> None:
    """The exporter's int8 plugin node (x, weight int8, bias, scale float32 (C, k*k, 1, 1)) runs
    fused: the same function as onnxruntime's reference op on the same graph, and within the int8
    rule of the unbaked network's float64 truth."""
    from tvexport.accuracy import Reference, Tolerance
    from tvexport.export.onnx import OrtRunner

    unbaked = make_model("face_mobilenetv2_x0_1", tv=dataclasses.replace(SMALL_TV, bias=True), seed=3)
    graph = onnx_graph(bake_model(unbaked, kernel_dtype="int8", verify=False).model, tv_op="plugin", batch=2)
    nodes = [n for n in graph.graph.node if n.op_type == "tv_dwconv"]
    inits = {t.name: t for t in graph.graph.initializer}
    assert nodes and all(len(n.input) == 4 and inits[n.input[1]].data_type == onnx.TensorProto.INT8 for n in nodes)
    runner = OpenVinoRunner(graph, what="int8 plugin graph")
    assert runner.fused
    x = random_inputs((2, 3, 96, 96), seed=4).numpy()
    got = runner(x)
    assert rel_err(got, OrtRunner(graph, what="int8 plugin graph")(x).astype(np.float64)) < 1e-5  # same stored kernels
    reference = Reference(unbaked, kernels=torch.int8)
    (comparison,) = reference.compare({"openvino": got}, x, tolerance=Tolerance.default(reference.precision()))
    assert comparison.ok, comparison.verdict()


@pytest.mark.slow
def test_float16_weights_graph(extension: Path) -> None:
    net = _network("face_mobilenetv2_x0_1", dtype="float16")
    errors = net.errors(OpenVinoRunner(net.graph), (2,))
    assert _within(errors, floor=1e-2), errors


@pytest.mark.slow
@pytest.mark.parametrize("name", list_models())
def test_every_zoo_network_plugin_form(name: str, extension: Path) -> None:
    net = _network(name)
    assert _within(net.errors(OpenVinoRunner(net.graph), (1, 2))), name


# --------------------------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------------------------

def test_build_is_cached_and_keyed_by_sources(extension: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    again = build_extension()
    assert again.cached and again.path == extension and again.seconds == 0.0
    key = again.key
    edited = tmp_path / "ext"
    shutil.copytree(_build.SOURCE_DIR, edited)
    (edited / "kernel.cpp").write_text((edited / "kernel.cpp").read_text() + "\n// edited\n")
    monkeypatch.setattr(_build, "SOURCE_DIR", edited)
    assert _build._key(again.info["openvino"], again.info["compiler"]) != key


def test_build_to_directory(cli: Any, extension: Path, tmp_path: Path) -> None:
    r = cli("extension", "build", "openvino", "-o", tmp_path, "--json")
    assert r.exit_code == 0, r.stderr
    info = json.loads(r.stdout)
    lib = tmp_path / _build.LIBRARY
    assert Path(info["path"]) == lib and lib.read_bytes() == extension.read_bytes()
    assert json.loads((tmp_path / (_build.LIBRARY + ".json")).read_text())["key"] == info["key"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([lib.name, lib.name + ".json"])  # nothing half-written
    (tmp_path / (_build.LIBRARY + ".json")).write_text("{}")  # a library from elsewhere
    r = cli("extension", "build", "openvino", "-o", tmp_path)
    assert r.exit_code == 2 and "--force" in r.stderr
    assert cli("extension", "build", "openvino", "-o", tmp_path, "--force").exit_code == 0


def test_build_to_a_link_to_a_directory_goes_into_that_directory(cli: Any, extension: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """-o LINK, a symlink to a directory: the library and its sidecar go into the directory the link
    names, as every output path follows a link to its directory (the path reported is the one
    typed); the link stays a link, and a second run finds the library up to date through it."""
    monkeypatch.setattr(_build, "_compile", lambda *a, **k: pytest.fail("compiled"))  # the cache holds it (the extension fixture)
    real, link = tmp_path / "real", tmp_path / "link"
    real.mkdir()
    link.symlink_to(real, target_is_directory=True)
    names = sorted([_build.LIBRARY, _build.LIBRARY + ".json"])
    written = []
    for _ in range(2):
        r = cli("extension", "build", "openvino", "-o", link, "--json")
        assert r.exit_code == 0, r.stderr
        info = json.loads(r.stdout)
        assert Path(info["path"]) == link / _build.LIBRARY and info["cached"], info
        assert link.is_symlink() and link.resolve() == real.resolve()
        assert sorted(p.name for p in real.iterdir()) == names, sorted(p.name for p in real.iterdir())  # nothing half-written
        assert (real / _build.LIBRARY).read_bytes() == extension.read_bytes()
        written.append((real / _build.LIBRARY).stat().st_ino)
    assert written[0] == written[1]  # the second run found it up to date through the link: nothing copied again
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]


def test_build_to_a_dangling_link_is_refused_as_such(cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: -o LINK, a symlink to a directory that does not exist, said "output directory LINK
    does not exist; create it first", and `mkdir LINK` fails (the link is there): the line names
    the link's target. The check is every output's (_io.check_output_dir): bake -o LINK/x too."""
    from tvexport._io import check_output_path

    monkeypatch.setenv(_build.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(_build, "_compile", lambda *a, **k: pytest.fail("compiled"))
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "gone", target_is_directory=True)
    line = f"output directory {link} is a symlink to {tmp_path / 'gone'}, which does not exist; create the directory it names, or give another one"
    r = cli("extension", "build", "openvino", "-o", link)
    assert r.exit_code == 2 and r.stderr.strip() == f"error: {line}", r.stderr
    with pytest.raises(TvexportError) as info:
        check_output_path(link / "x.baked.pt", force=True)
    assert str(info.value) == line
    assert link.is_symlink() and sorted(p.name for p in tmp_path.iterdir()) == ["link"]


def test_build_to_a_file_is_refused_as_such(cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: `-o some_file` said "output directory some_file does not exist; create it first"."""
    monkeypatch.setenv(_build.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(_build, "_compile", lambda *a, **k: pytest.fail("compiled"))
    target = tmp_path / "lib.so"
    target.write_bytes(b"x")
    r = cli("extension", "build", "openvino", "-o", target)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.exit_code == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith(f"error: output directory {target} is a file, not a directory; give a directory for the library with -o"), lines[0]
    assert target.read_bytes() == b"x"


def test_build_to_a_missing_or_unwritable_directory_is_refused_before_compiling(cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same checks as every other output (tvexport._io); before, an unwritable directory was
    found only after the compile, when the library was copied there."""
    import tvexport._io

    monkeypatch.setenv(_build.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(_build, "_compile", lambda *a, **k: pytest.fail("compiled"))
    r = cli("extension", "build", "openvino", "-o", tmp_path / "missing")
    assert r.exit_code == 2 and r.stderr.strip() == f"error: output directory {tmp_path / 'missing'} does not exist; create it first", r.stderr
    (tmp_path / "ro").mkdir()
    real_access = os.access
    monkeypatch.setattr(tvexport._io.os, "access", lambda path, mode: False if mode & os.W_OK and Path(path) == tmp_path / "ro" else real_access(path, mode))  # tests may run as root
    r = cli("extension", "build", "openvino", "-o", tmp_path / "ro")
    assert r.exit_code == 2 and r.stderr.strip() == f"error: output directory {tmp_path / 'ro'} is not writable; choose another output path", r.stderr
    assert list((tmp_path / "ro").iterdir()) == []


def test_build_to_a_directory_holding_a_dangling_symlink_needs_force(cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: a dangling symlink where the library goes passed the "exists" check (exists()
    follows links) and the build replaced it without --force; then it was refused as a library
    "built from other sources", which sent the user looking for a build that is not there: the
    line says it is a link to nothing."""
    monkeypatch.setenv(_build.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(_build, "_compile", lambda *a, **k: pytest.fail("compiled"))
    (tmp_path / "out").mkdir()
    link = tmp_path / "out" / _build.LIBRARY
    link.symlink_to(tmp_path / "gone.so")
    r = cli("extension", "build", "openvino", "-o", tmp_path / "out")
    assert r.exit_code == 2 and r.stderr.strip() == f"error: {link} is a symlink to {tmp_path / 'gone.so'}, which does not exist; remove the link, or pass --force to replace it", r.stderr
    assert link.is_symlink() and sorted(p.name for p in (tmp_path / "out").iterdir()) == [link.name]


@pytest.mark.parametrize("force", [[], ["--force"]], ids=["plain", "force"])
def test_build_to_a_directory_holding_a_directory_of_the_library_name_says_so(cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, force: list[str]) -> None:
    """Before: a directory where the library goes was one "built from other sources or for another
    openvino; pass --force", and --force compiled, then failed to rename the library onto it: the
    line says it is a directory, with or without --force, before any compile."""
    monkeypatch.setenv(_build.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(_build, "_compile", lambda *a, **k: pytest.fail("compiled"))
    (tmp_path / "out" / _build.LIBRARY / "inside").mkdir(parents=True)
    r = cli("extension", "build", "openvino", "-o", tmp_path / "out", *force)
    lib = tmp_path / "out" / _build.LIBRARY
    assert r.exit_code == 2 and r.stderr.strip() == f"error: {lib} is a directory, not a library file; remove it, or give another directory with -o", r.stderr
    assert sorted(p.name for p in lib.iterdir()) == ["inside"]


@pytest.mark.parametrize("where", ["file", "under-a-file"])
def test_unusable_cache_dir_one_line(where: str, cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: TVEXPORT_CACHE_DIR naming a file was an internal error (NotADirectoryError, exit 3)
    in extension build, and in every runner of a plugin graph (validate, bench -b openvino-fused)."""
    (tmp_path / "afile").write_text("x")
    cache = tmp_path / "afile" if where == "file" else tmp_path / "afile" / "sub"
    monkeypatch.setenv(_build.CACHE_ENV, str(cache))
    monkeypatch.setattr(_build, "_compile", lambda *a, **k: pytest.fail("compiled"))
    r = cli("extension", "build", "openvino")
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.exit_code == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith(f"error: cannot use {cache / 'openvino'} as the OpenVINO extension cache: ") and _build.CACHE_ENV in lines[0], lines[0]
    with pytest.raises(TvexportError, match="OpenVINO extension cache") as info:
        OpenVinoRunner(layer_graph(Case(3, 1, None, "float32", 1))[0])
    assert "\n" not in str(info.value)
    assert (tmp_path / "afile").read_text() == "x"


def test_read_only_cache_holding_the_build_is_used_as_it_is(extension: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An up-to-date entry is found without taking the lock (which writes .lock): a read-only cache
    (a shared image) holding the build serves it; only a build needs the lock."""
    key = build_extension().key
    entry = tmp_path / "openvino" / key
    entry.mkdir(parents=True)
    for name in (_build.LIBRARY, _build.LIBRARY + ".json"):
        shutil.copy2(extension.parent / name, entry / name)
    monkeypatch.setenv(_build.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(_build, "_lock", lambda *a, **k: pytest.fail("took the lock"))
    found = build_extension()
    assert found.cached and found.path == entry / _build.LIBRARY
    assert sorted(p.name for p in (tmp_path / "openvino").iterdir()) == [key]  # no .lock written


def test_build_key_names_the_build(extension: Path, tmp_path: Path) -> None:
    """``build_key`` (public, for benchmarks/openvino_ab.py: before, it read the private sidecar
    reader) is the key the build recorded beside the library; None where none is readable."""
    from tvexport.openvino import build_key

    assert build_key(extension) == build_extension().key
    lib = tmp_path / _build.LIBRARY
    lib.write_bytes(b"")
    assert build_key(lib) is None
    for record in ("[]", "{not json", '{"key": 3}'):
        (tmp_path / (_build.LIBRARY + ".json")).write_text(record)
        assert build_key(lib) is None


def test_runner_names_a_missing_directory_or_empty_model(tmp_path: Path) -> None:
    """Before: a directory given as the model was "no such file", and an empty one reached onnx.load."""
    (tmp_path / "dir.onnx").mkdir()
    (tmp_path / "empty.onnx").write_bytes(b"")
    for path, said in (("nope.onnx", ": no such file"), ("dir.onnx", " is a directory, not an ONNX model"), ("empty.onnx", " is empty (0 bytes)")):
        with pytest.raises(TvexportError) as info:
            OpenVinoRunner(tmp_path / path)
        assert info.value.message == f"{tmp_path / path}{said}" and info.value.hint, info.value.message


@pytest.mark.parametrize("what", ["openvino", "cmake", "compiler"])
def test_missing_build_tool_one_line(what: str, cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_build.CACHE_ENV, str(tmp_path))
    if what == "openvino":
        monkeypatch.setitem(sys.modules, "openvino", None)
        expected = "pip install 'tvexport[openvino]'"
    elif what == "cmake":
        monkeypatch.setattr(_build, "_tool", lambda name: None)
        expected = "apt-get install cmake"
    else:
        monkeypatch.setenv("CXX", "")
        which = shutil.which
        monkeypatch.setattr(_build.shutil, "which", lambda name: None if name in ("c++", "g++", "clang++") else which(name))
        expected = "apt-get install g++"
    with pytest.raises(MissingDependencyError, match="install"):
        build_extension()
    r = cli("extension", "build", "openvino")
    assert r.exit_code == 2 and expected in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert not list(tmp_path.glob("openvino/*/" + _build.LIBRARY))


def test_cxx_naming_no_compiler_one_line(cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: CXX naming a missing compiler fell back to c++ silently."""
    from tvexport.profile.backends import get_backend

    monkeypatch.setenv(_build.CACHE_ENV, str(tmp_path))
    monkeypatch.setenv("CXX", str(tmp_path / "nothere" / "g++"))
    expected = f"CXX={tmp_path / 'nothere' / 'g++'} not found; unset it or point it at a compiler"
    with pytest.raises(MissingDependencyError) as info:
        build_extension()
    assert str(info.value) == expected
    r = cli("extension", "build", "openvino")
    assert r.exit_code == 2 and expected in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert get_backend("openvino-fused").available(device="cpu") == expected


def test_cxx_with_arguments_is_read_as_cmake_reads_it(cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CXX="g++ -O2" is the compiler g++ with -O2 on every compile and link, as CMake reads CXX
    (before: "CXX=g++ -O2 not found"); the arguments reach CMake as its list form of
    CMAKE_CXX_COMPILER and are part of the cache key; a first word naming no compiler is one line."""
    compiler = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    assert compiler is not None  # the module is skipped without one
    monkeypatch.setenv(_build.CACHE_ENV, str(tmp_path))
    monkeypatch.setenv("CXX", compiler)
    plain = _build._key("v", _build._compiler_identity(_build.compiler_command()))
    monkeypatch.setenv("CXX", f"{Path(compiler).name} -O2 '-DNAME=a b'")
    from tvexport.openvino import compiler_command, find_compiler, missing_build_tool

    assert compiler_command() == [compiler, "-O2", "-DNAME=a b"] and find_compiler() == compiler
    assert missing_build_tool() is None
    assert _build._key("v", _build._compiler_identity(compiler_command())) != plain
    configured: list[list[str]] = []

    def stop(cmd: list[str], *, log: list[str], cwd: Path) -> None:
        configured.append(cmd)
        raise TvexportError("stop here")

    monkeypatch.setattr(_build, "_run", stop)
    with pytest.raises(TvexportError, match="stop here"):
        build_extension(force=True)
    assert f"-DCMAKE_CXX_COMPILER={compiler};-O2;-DNAME=a b" in configured[0]
    monkeypatch.setenv("CXX", "no-such-cxx -O2")
    expected = "CXX='no-such-cxx -O2': its compiler no-such-cxx was not found; unset it or point it at a compiler (arguments may follow it, e.g. CXX='g++ -O2')"
    r = cli("extension", "build", "openvino")
    assert r.exit_code == 2 and r.stderr.strip() == f"error: {expected}", r.stderr


def test_failed_or_killed_builds_leave_no_build_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A build that fails or is interrupted (Ctrl-C) removes its .build-* directory; one a killed
    build left (SIGTERM or SIGKILL run no cleanup) is removed when the next build takes the lock
    (before: it stayed in the cache for good)."""
    monkeypatch.setenv(_build.CACHE_ENV, str(tmp_path))
    root = tmp_path / "openvino"
    stale = root / ".build-killed" / "CMakeFiles"
    stale.mkdir(parents=True)
    (stale / "kernel.cpp.o").write_bytes(b"half an object file")
    seen: list[list[str]] = []

    def interrupted(cmd: list[str], *, log: list[str], cwd: Path) -> None:
        seen.append(sorted(p.name for p in root.glob(".build-*")))
        raise KeyboardInterrupt

    monkeypatch.setattr(_build, "_run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_extension(force=True)
    assert len(seen) == 1 and seen[0] != [".build-killed"] and len(seen[0]) == 1  # only this build's own directory
    assert not list(root.glob(".build-*"))

    def failing(cmd: list[str], *, log: list[str], cwd: Path) -> None:
        raise TvexportError("building the OpenVINO extension failed: x.cpp:1: error: broken", hint="the full compiler output is in LOG")

    monkeypatch.setattr(_build, "_run", failing)
    with pytest.raises(TvexportError, match="error: broken"):
        build_extension(force=True)
    assert not list(root.glob(".build-*"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; process groups are POSIX")
def test_an_interrupted_build_step_ends_the_processes_it_started(tmp_path: Path) -> None:
    """An interrupted build step (Ctrl-C, or SIGTERM raised as it by the CLI) ends what cmake
    started too (ninja, the compilers), not cmake alone (before: subprocess.run killed only its
    own child; the grandchild ran on)."""
    import signal

    pidfile = tmp_path / "pid"
    step = ["sh", "-c", f"sleep 60 & echo $! > '{pidfile}'; wait"]  # cmake, and a compiler it started

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 1.0)
        with pytest.raises(KeyboardInterrupt):
            _build._run(step, log=[], cwd=tmp_path)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    grandchild = int(pidfile.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{grandchild}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            state = "gone"
        if state in ("gone", "Z", "X"):
            break
        time.sleep(0.05)
    assert state in ("gone", "Z", "X"), f"the step's child {grandchild} still runs ({state})"


def test_openvino_fused_available_agrees_with_the_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """available() finds what the build finds: a pip-installed cmake beside the interpreter and the
    compiler CXX names (before: only cmake and c++/g++/clang++ on PATH, so it refused a working setup)."""
    from tvexport.profile.backends import get_backend

    compiler = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if compiler is None:
        pytest.skip("needs a C++ compiler")
    venv, path = tmp_path / "venv" / "bin", tmp_path / "path"
    venv.mkdir(parents=True)
    path.mkdir()
    cmake = venv / "cmake"
    cmake.write_text("#!/bin/sh\n")
    cmake.chmod(0o755)
    (path / "my-cxx").symlink_to(compiler)
    monkeypatch.setattr(sys, "executable", str(venv / "python"))
    monkeypatch.setenv("PATH", str(path))  # no cmake, c++, g++ or clang++ on it
    monkeypatch.setenv("CXX", "my-cxx")
    backend = get_backend("openvino-fused")
    assert _build._requirements()[2:4] == (str(cmake), [str(path / "my-cxx")])
    assert backend.available(device="cpu") is None
    monkeypatch.delenv("CXX")
    reason = backend.available(device="cpu")
    assert reason is not None and "needs a C++17 compiler" in reason


def test_compile_error_names_the_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_build.CACHE_ENV, str(tmp_path))
    broken = tmp_path / "ext"
    shutil.copytree(_build.SOURCE_DIR, broken)
    for source in ("kernel.cpp", "tv_dwconv.cpp"):  # every compile job fails at once
        (broken / source).write_text("#error deliberately broken\n")
    monkeypatch.setattr(_build, "SOURCE_DIR", broken)
    with pytest.raises(TvexportError, match="deliberately broken") as info:
        build_extension()
    assert "last-build.log" in str(info.value)
    assert not list((tmp_path / "openvino").glob("*/" + _build.LIBRARY))


@pytest.mark.parametrize("var", ["CXXFLAGS", "LDFLAGS", "CMAKE_TOOLCHAIN_FILE", "CMAKE_PREFIX_PATH"])
def test_build_key_includes_flags_from_the_environment(var: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """CMake reads CXXFLAGS/LDFLAGS (and CMAKE_* variables) at configure time: before, a build made
    with CXXFLAGS="-O0 -fsanitize=address" had the same key as a plain one and was reused by it."""
    for name in list(os.environ):
        if name in ("CXXFLAGS", "LDFLAGS") or name.startswith("CMAKE_"):
            monkeypatch.delenv(name)
    plain = _build._key("1.0", "g++ 12")
    monkeypatch.setenv("CMAKE_BUILD_PARALLEL_LEVEL", "7")  # the job count only: the same build
    assert _build._key("1.0", "g++ 12") == plain
    monkeypatch.setenv(var, "-O0")
    flagged = _build._key("1.0", "g++ 12")
    assert flagged != plain
    monkeypatch.setenv(var, "-O1")
    assert _build._key("1.0", "g++ 12") not in (plain, flagged)
    monkeypatch.setenv(var, "")  # set but empty: as if unset
    assert _build._key("1.0", "g++ 12") == plain


def test_failed_build_names_the_compiler_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A flag the compiler refuses fails CMake's compiler check: before, the error was CMake's
    generic "CMake Error at .../CMakeTestCXXCompiler.cmake:63 (message):", not the compiler's line."""
    monkeypatch.setenv(_build.CACHE_ENV, str(tmp_path))
    monkeypatch.setenv("CXXFLAGS", "-fthis-flag-does-not-exist")
    with pytest.raises(TvexportError) as info:
        build_extension()
    text = str(info.value)
    assert "this-flag-does-not-exist" in text and "CMake Error" not in text, text
    assert "last-build.log" in text and "\n" not in text, text


def test_import_tvexport_does_not_import_openvino() -> None:
    code = "import sys, tvexport, tvexport.cli, tvexport.openvino; tvexport.cli._register(); print('openvino' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------------------------
# examples/openvino_runner: the plugin graph and the extension from C++, without Python
# --------------------------------------------------------------------------------------------

def test_cpp_runner_matches_python(mnv2: Network, extension: Path, tmp_path: Path) -> None:
    """Build examples/openvino_runner against the wheel's OpenVINO, run the plugin graph with the
    extension on a file input, and compare with the Python runner and the float64 truth."""
    build = tmp_path / "build"
    env = {**os.environ, "PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(ROOT / "examples" / "openvino_runner" / "build.sh"), str(build)], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    exe = build / "openvino_runner"
    model = tmp_path / "mnv2_plugin.onnx"
    onnx.save(mnv2.graph, str(model))
    x = random_inputs((3, 3, 96, 96), seed=5).numpy()
    (tmp_path / "x.f32").write_bytes(x.astype("<f4").tobytes())
    run = subprocess.run([str(exe), str(model), "--shape", "3,3,96,96", "--extension", str(extension), "--input", str(tmp_path / "x.f32"),
                          "--output", str(tmp_path / "y.f32"), "--threads", "2", "--iters", "10", "--times", str(tmp_path / "times.txt")],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "output shape [3, 512]" in run.stdout and "precision f32" in run.stdout
    check_latency_line(run.stdout, tmp_path / "times.txt", runs=10)  # before: p50 the 6th of 10, p90 the 10th (the max)
    got = np.frombuffer((tmp_path / "y.f32").read_bytes(), dtype="<f4").reshape(3, 512)
    np.testing.assert_allclose(got, OpenVinoRunner(mnv2.graph)(x), rtol=0, atol=1e-5 * float(np.abs(got).max()))
    with torch.no_grad():
        truth = copy.deepcopy(mnv2.unbaked).double()(torch.from_numpy(x).double()).numpy()
    assert rel_err(got, truth) < 2e-5
    # without the extension: one line saying what is missing, and what to pass
    bare = subprocess.run([str(exe), str(model), "--shape", "3,3,96,96"], capture_output=True, text=True, timeout=300)
    assert bare.returncode == 1 and "tvexport.tv_dwconv" in bare.stderr and "--extension" in bare.stderr
    for shape in ("3,x", "3,3,96,96,", ",3,3,96,96", "3,,3,96,96", ""):  # before: a trailing comma was accepted
        bad = subprocess.run([str(exe), str(model), "--shape", shape], capture_output=True, text=True, timeout=60)
        assert bad.returncode == 2 and bad.stderr.startswith("error: --shape") and bad.stderr.count("\n") == 1, (shape, bad.stderr)
    # a graph the extension refuses: its reason in one line (before: OpenVINO's header
    # "-- tvexport.tv_dwconv with a message:", the reason left out)
    # an attribute the node does not take (before: dilation=2 dropped unsaid, the graph ran), with the file and the fix
    for mutate, reason in (("even_k", "k must be a positive odd number, got 2"), ("channels", "has 5 channels, weight (8, 9, 6, 6) has 8"),
                           ("extra_dilation", "unknown attribute 'dilation'; tv_dwconv takes k, stride, padding, plugin_namespace, "
                                              "plugin_version (and TensorRT's aot) only (in " + str(tmp_path / "bad.onnx") + "; export the model again")):
        onnx.save(_bad(mutate), str(tmp_path / "bad.onnx"))
        bad = subprocess.run([str(exe), str(tmp_path / "bad.onnx"), "--shape", "2,8,6,6", "--extension", str(extension)],
                             capture_output=True, text=True, timeout=60)
        assert bad.returncode == 1 and bad.stderr.startswith(f"error: tv_dwconv node 'tv': ") and reason in bad.stderr, bad.stderr
        assert bad.stderr.count("\n") == 1, bad.stderr
    # a count that is no non-negative integer: one usage line (before: the error, then the usage, on two lines), exit 2
    for option, value in (("--iters", "x"), ("--iters", "-3"), ("--threads", "2x")):
        bad = subprocess.run([str(exe), str(model), "--shape", "3,3,96,96", option, value], capture_output=True, text=True, timeout=60)
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1, (option, value, bad.returncode, bad.stderr)
        assert bad.stderr.startswith(f"error: {option} takes a non-negative integer, got '{value}'; usage: openvino_runner "), bad.stderr


# --------------------------------------------------------------------------------------------
# tvexport bench -b openvino-fused
# --------------------------------------------------------------------------------------------

def test_bench_openvino_fused(cli: Any, extension: Path, tmp_path: Path) -> None:
    from tvexport.bake import save_baked
    from tvexport.profile.backends import get_backend

    assert get_backend("openvino").available(device="cuda") is not None  # CPU plugin only
    baked = tmp_path / "mnv2.baked.pt"
    save_baked(bake_model(make_model("face_mobilenetv2_x0_1"), verify=False), baked)
    out, md = tmp_path / "bench.json", tmp_path / "bench.md"
    r = cli("bench", baked, "-b", "openvino-fused", "-b", "openvino", "--batch", "2", "--threads", "2", "--min-iters", "2", "--min-seconds", "0",
            "--warmup-seconds", "0", "--json", out, "--markdown", md)
    assert r.exit_code == 0, r.stderr
    report = json.loads(out.read_text())
    case, portable = report["cases"]
    assert case["backend"] == "openvino-fused" and case["batch"] == 2
    assert [res["network"] for res in case["results"]] == ["tvconv", "dwconv"] and case["ratios"][0]["median"] > 0
    # the inference precision used, read back from the compiled model, in the JSON, the Markdown and the console
    assert case["precision"] == portable["precision"] == "f32"
    assert "| openvino-fused (f32) | 2 |" in md.read_text() and "| openvino (f32) | 2 |" in md.read_text()
    assert "openvino-fused (f32)" in r.stdout


def test_portable_float16_conversion(tmp_path: Path) -> None:
    """The kernel's fallback float16 <-> float32 conversion (for compilers without _Float16)
    agrees with numpy on every float16 bit pattern, and rounds float32 like numpy."""
    cxx = shutil.which("c++") or shutil.which("g++")
    harness = tmp_path / "half.cpp"
    harness.write_text(
        '#define TVX_PORTABLE_HALF 1\n#include "kernel.cpp"\n#include <cstdio>\n'
        "int main() { for (uint32_t b = 0; b < 65536; ++b) { float f = tvx::to_float(tvx::half{uint16_t(b)}); fwrite(&f, 4, 1, stdout); }\n"
        "  for (uint32_t i = 0; i < 200000; ++i) { uint32_t u = i * 21473u + 12345u * (i & 7u); float f; std::memcpy(&f, &u, 4); uint16_t h = tvx::from_float(f).bits; fwrite(&h, 2, 1, stdout); } }\n"
    )
    exe = tmp_path / "half"
    subprocess.run([cxx, "-O1", "-std=c++17", f"-I{_build.SOURCE_DIR}", str(harness), "-o", str(exe)], check=True, capture_output=True, text=True)
    raw = subprocess.run([str(exe)], check=True, capture_output=True).stdout
    widened = np.frombuffer(raw[: 65536 * 4], dtype="<f4")
    expected = np.arange(65536, dtype=np.uint16).view(np.float16).astype(np.float32)
    assert np.array_equal(widened, expected, equal_nan=True)
    i = np.arange(200000, dtype=np.uint64)
    floats = ((i * 21473 + 12345 * (i & 7)) & 0xFFFFFFFF).astype(np.uint32).view(np.float32)
    narrowed = np.frombuffer(raw[65536 * 4 :], dtype="<u2")
    with np.errstate(over="ignore", invalid="ignore"):
        want = floats.astype(np.float16)
    nan = np.isnan(floats)
    assert np.array_equal(narrowed[~nan], want[~nan].view(np.uint16)) and np.isnan(narrowed[nan].view(np.float16)).all()
