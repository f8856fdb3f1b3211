"""OpenVINO extension: one of the op's switches on one side, off on the other, A/B in one process.

    python benchmarks/openvino_ab.py                                 # channel blocks: DeepLabV3+ batch 16, float32 kernels
    python benchmarks/openvino_ab.py --kernel-dtype float32 --kernel-dtype float16 --kernel-dtype int8 --rounds 6 --block 5
    python benchmarks/openvino_ab.py --switch serial --arch face_shufflenetv2_x1_0 --batch 16 --name openvino_serial_shufflenetv2_b16
    python benchmarks/openvino_ab.py --switch blocks-outer --kernel-dtype float32 --rounds 6 --block 5
    python benchmarks/openvino_ab.py --switch scale-registers --kernel-dtype int8 --rounds 36 --block 20
    python benchmarks/openvino_ab.py --switch int8-wide-tiles --kernel-dtype int8
    python benchmarks/openvino_ab.py --switch pointwise --arch face_mobilenetv2_x0_1 --batch 16 --rounds 24 --block 10
    python benchmarks/openvino_ab.py --switch build --extension-b /tmp/other/libtvexport_openvino.so --kernel-dtype int8
    python benchmarks/openvino_ab.py --render benchmarks/results/openvino_channel_blocks.json

--switch picks what differs between the copies (see SWITCHES; each is an environment variable
that the extension reads when an op is constructed, as the model is read, so each copy keeps its
setting):
  channel-blocks  TVEXPORT_OV_CHANNEL_BLOCKS: A channel blocks on (the default), B off (those
                  layers take the tile path)
  serial          TVEXPORT_OV_SERIAL_BYTES: A every TV layer's rows split over the thread pool (the
                  default), B every layer run on the calling thread (per layer: whether one that
                  moves few bytes is faster without the pool's fork and join)
  blocks-outer    TVEXPORT_OV_BLOCKS_OUTER: A the channel-block path walks each channel block
                  through all of a thread's row tiles (the default), B each row tile through all
                  the blocks (the order before)
  scale-registers TVEXPORT_OV_SCALE_REGISTERS: A int8 kernels one image at a time (batch 1, or a
                  batch's last single-image tile) with each layer's scales held in registers where
                  they fit (the default: k = 3, C dividing 16, 32 or 48; AVX-512), B each scale
                  vector loaded beside its kernel vector (the loop before)
  nta             TVEXPORT_OV_KERNEL_NTA: A the kernel stream prefetched with locality (locality
                  3 until issue 17q, L2 only since; the default but on AMD Zen 5 and later), B with
                  the non-temporal hint (prefetchnta; batch 1 only; the default on AMD Zen 5 and
                  later since issue 17ae)
  kernel-l2       TVEXPORT_OV_KERNEL_L2: A the kernel stream prefetched into L1 too (prefetcht0,
                  the default until issue 17q), B into L2 only (prefetcht1, the default since);
                  TVEXPORT_OV_KERNEL_NTA=0 in every copy
  kernel-rows     TVEXPORT_OV_KERNEL_ROWS: A the next row's kernel runs fetched on demand at their
                  heads (the default until issue 17aa), B the head of each tap's run in the next row
                  prefetched while a row runs (the default since; batch 1 only)
  int8-wide-tiles TVEXPORT_OV_INT8_WIDE_TILES: A int8 kernel tiles of TVX_BLOCK_BYTES at batch > 1
                  (the default elsewhere, and everywhere before issue 17ac), B twice that (the
                  default on x86-64 cores with >= 2 MiB of L2; int8 kernels, batch > 1 only)
  block-bytes     TVEXPORT_OV_BLOCK_BYTES: A tiles of 384 KiB of stored kernels at batch > 1 (the
                  compile-time TVX_BLOCK_BYTES), B 192 KiB (batch > 1 only)
  block-bytes-wide  the same, B 768 KiB
  pointwise       TVEXPORT_OV_FUSE_POINTWISE: A the 1x1 convolution (+ bias, + ReLU6/ReLU) before
                  each TV op runs as OpenVINO's own node, B it is folded into the TV op
                  (tvexport.openvino.runtime.fuse_pointwise_convs: computed on the fly from its
                  narrow input). B's TV ops include the folded convolutions' work, A's other ops
                  do: compare the wall times and the sum of both
  build           no variable: A this checkout's extension (built from its ext/), B the library
                  --extension-b names, built from other sources (a compile-time change: run
                  `tvexport extension build openvino -o DIR` in the other checkout and pass
                  DIR/libtvexport_openvino.so); B must compute what A does (checked before timing;
                  the report gives max |B - A| / max |A|: 0 where B computes A's bits)
Per kernel dtype, the same plugin graph (kernels compressed by tvexport.quantize for float16/int8,
as `export --kernel-dtype` stores them) is compiled three times in this process, each with
OpenVINO's per-node counters on (PERF_COUNT), INFERENCE_PRECISION_HINT f32 and --threads threads:
A, B, and A' (the same setting as A: the null test, so A'/A shows what noise alone gives).
Each copy runs 10 warm-up runs, then every round runs a block of --block runs of
each copy, the rounds cycling through the 6 orders of A, B, A' (so each copy runs first, in the
middle and last equally often when --rounds is a multiple of 6: with A, B, A' and its reverse
only, as until issue 17i, B always ran in the middle, where identical code measured 4-17 % slower
on face MobileNetV2 x0.1 at batch 1, a bias the null test A'/A does not show). Reported per copy: the median
wall time of single runs; per round, the block means' ratios B/A and A'/A (median [p10-p90]); per
TV layer, the mean time of the measured runs from the counters (openvino_fused.layer_profile's
method: whole microseconds) and its ratio to A's; beside the TV ops' sum, the other ops' sum (every
other node of the network: what a switch changes outside the TV ops, e.g. through the caches).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import _common

SCHEMA = "tvexport.bench.openvino_ab"  # of the results JSON
SEGMENT = 512  # kernel.hpp kSegment: channel blocks need C >= this (and stride 1, batch > 1)

# The switches come before parse_args, which takes its choices from SWITCHES, and so before the
# imports of tvexport, torch and onnx: the reach functions use those only when called.


def channel_block_candidates(graph: Any) -> list[str]:
    """TV nodes the channel-block switch can reach: stride 1 and at least kSegment channels (run()
    also needs tiles narrower than k positions; the per-layer table shows which changed)."""
    inits = {t.name: t for t in graph.graph.initializer}
    tv = set(tv_nodes(graph))
    return [node.name for node in graph.graph.node if node.name in tv
            and next(a.i for a in node.attribute if a.name == "stride") == 1 and inits[node.input[1]].dims[0] >= SEGMENT]


def int8_candidates(graph: Any) -> list[str]:
    """TV nodes with int8 kernels (what the int8-wide-tiles switch can reach, at batch > 1 and only
    where the wider budget changes a layer's tiles); none in a graph with float kernels."""
    inits = {t.name: t for t in graph.graph.initializer}
    tv = set(tv_nodes(graph))
    return [node.name for node in graph.graph.node if node.name in tv and inits[node.input[1]].data_type == onnx.TensorProto.INT8]


def scale_register_candidates(graph: Any) -> list[str]:
    """TV nodes the scale-register switch can reach (one image at a time): int8 kernels, k = 3 and a
    scale row that repeats every 1, 2 or 3 vectors of 16 floats (C divides 16, 32 or 48); none in a
    graph with float kernels, where A and B run the same code."""
    inits = {t.name: t for t in graph.graph.initializer}
    int8 = set(int8_candidates(graph))
    return [node.name for node in graph.graph.node if node.name in int8
            and next(a.i for a in node.attribute if a.name == "k") == 3 and any(m % inits[node.input[1]].dims[0] == 0 for m in (16, 32, 48))]


def pointwise_candidates(graph: Any) -> list[str]:
    """TV nodes whose 1x1 convolution B folds (TVEXPORT_OV_FUSE_POINTWISE=1): the runner's own pick
    (runtime.fuse_pointwise_convs: its pattern, the input-channel and batch limits), not every TV
    node a Conv feeds (face MobileNetV2 x1.0 at batch 16: 3 of its 16 such layers)."""
    return list(OpenVinoRunner(graph, what="the graph (pointwise candidates)", fuse_pointwise=True).pointwise_ops)


@dataclasses.dataclass(frozen=True)
class Switch:
    env: str
    a: str  # the variable's value in copies A and A'
    b: str  # and in copy B
    title: str  # what A and B are
    b_means: str  # the B copy, for the text
    reach: Callable[[Any], list[str]] | None  # the TV layers the switch can change (None: every one)
    reach_means: str
    name: str  # default file stem
    arch: str  # default --arch
    batch: int  # default --batch
    fixed: tuple[tuple[str, str], ...] = ()  # variables set alike in every copy (so that a default elsewhere cannot mask the switch)

    def value(self, copy: str) -> str:
        return self.b if copy == "B" else self.a


def block_bytes_switch(kib_b: int, name: str) -> Switch:
    """TVEXPORT_OV_BLOCK_BYTES: A tiles of 384 KiB of stored kernels at batch > 1, B ``kib_b`` KiB."""
    return Switch(
        "TVEXPORT_OV_BLOCK_BYTES", str(384 * 1024), str(kib_b * 1024),
        f"tiles of 384 KiB (A) vs {kib_b} KiB (B) of stored kernels at batch > 1",
        f"A tiles (and channel blocks) of 384 KiB of stored kernels at batch > 1 (`TVEXPORT_OV_BLOCK_BYTES={384 * 1024}`: "
        f"TVX_BLOCK_BYTES, the kernel's budget before issue 17's stop 42), B {kib_b} KiB "
        f"(`TVEXPORT_OV_BLOCK_BYTES={kib_b * 1024}`), A' as A; int8 kernels: doubled in every copy where int8 wide tiles are on",
        None, "(all of them; batch > 1, where the budget changes a layer's tiles)", name, "face_mobilenetv2_x0_1", 16)


CHANNEL_BLOCK_REACH = (f"with stride 1 and C >= {SEGMENT} (the only ones the switch can change; they take the channel-block path "
                       "only where L2-sized tiles would be narrower than min(k, out_w) positions, which the per-layer table shows)")
SWITCHES = {
    "channel-blocks": Switch(
        "TVEXPORT_OV_CHANNEL_BLOCKS", "1", "0", "channel blocks on (A) vs off (B)",
        "A channel blocks on, B off (`TVEXPORT_OV_CHANNEL_BLOCKS=0` while it was read: those layers take the tile path), A' on",
        channel_block_candidates, CHANNEL_BLOCK_REACH,
        "openvino_channel_blocks", "deeplabv3plus_mobilenetv2", 16),
    "serial": Switch(
        "TVEXPORT_OV_SERIAL_BYTES", "0", str(2**62), "every TV layer on the thread pool (A) vs on the calling thread (B)",
        "A every TV layer split over the pool (`TVEXPORT_OV_SERIAL_BYTES=0`), B every one on the calling thread "
        f"(`TVEXPORT_OV_SERIAL_BYTES={2**62}`), A' as A",
        None, "(all of them)", "openvino_serial", "face_mobilenetv2_x0_1", 1),
    "blocks-outer": Switch(
        "TVEXPORT_OV_BLOCKS_OUTER", "1", "0",
        "channel blocks outermost (A) vs row tiles outermost (B) in the channel-block path",
        "A each channel block walks all of a thread's row tiles (the default), B each row tile walks all the blocks "
        "(`TVEXPORT_OV_BLOCKS_OUTER=0` while it was read), A' as A",
        channel_block_candidates, CHANNEL_BLOCK_REACH,
        "openvino_blocks_outer", "deeplabv3plus_mobilenetv2", 16),
    "scale-registers": Switch(
        "TVEXPORT_OV_SCALE_REGISTERS", "1", "0", "int8 scales in registers (A) vs loaded beside each kernel vector (B) at batch 1",
        "A int8 scales held in registers where they fit (the default), B each scale vector loaded beside its kernel vector "
        "(`TVEXPORT_OV_SCALE_REGISTERS=0` while it was read), A' as A",
        scale_register_candidates, "with k = 3 and C dividing 16, 32 or 48 (the only ones the switch can change, int8 kernels only)",
        "openvino_scale_registers", "face_mobilenetv2_x0_1", 1),
    "nta": Switch(
        "TVEXPORT_OV_KERNEL_NTA", "0", "1", "kernel stream prefetched with locality (A) vs non-temporally (B)",
        "A each tap's kernel run prefetched with locality (`TVEXPORT_OV_KERNEL_NTA=0` while it was read: prefetcht0 "
        "until issue 17q, when openvino_nta_mnv2_* were measured, prefetcht1 since; the default but on AMD Zen 5 and later), "
        "B with the non-temporal hint (prefetchnta; `TVEXPORT_OV_KERNEL_NTA=1`; the default on AMD Zen 5 and later "
        "since issue 17ae; batch 1 only), A' as A",
        None, "(all of them)", "openvino_nta", "face_mobilenetv2_x0_1", 1),
    "kernel-l2": Switch(
        "TVEXPORT_OV_KERNEL_L2", "0", "1", "kernel stream prefetched into L1 too (A) vs into L2 only (B)",
        "A each tap's kernel run prefetched into every cache level (prefetcht0, `TVEXPORT_OV_KERNEL_L2=0` while it "
        "was read; the default until issue 17q), B into L2 only (prefetcht1, `TVEXPORT_OV_KERNEL_L2=1`; the default "
        "since), A' as A; `TVEXPORT_OV_KERNEL_NTA=0` in every copy (at batch 1 the non-temporal hint, the default on "
        "AMD Zen 5 and later, would take precedence over both)",
        None, "(all of them)", "openvino_kernel_l2", "face_mobilenetv2_x1_0", 1, (("TVEXPORT_OV_KERNEL_NTA", "0"),)),
    "kernel-rows": Switch(
        "TVEXPORT_OV_KERNEL_ROWS", "0", "1", "next row's kernel-run heads on demand (A) vs prefetched (B)",
        "A the next row's kernel runs fetched on demand at their heads (`TVEXPORT_OV_KERNEL_ROWS=0` while it was "
        "read; the kernel before issue 17aa), B the head of each tap's run in the next row prefetched while a row runs "
        "(`TVEXPORT_OV_KERNEL_ROWS=1`; the default since; batch 1 only), A' as A",
        None, "(all of them)", "openvino_kernel_rows", "face_mobilenetv2_x0_1", 1),
    "int8-wide-tiles": Switch(
        "TVEXPORT_OV_INT8_WIDE_TILES", "0", "1", "int8 kernel tiles of TVX_BLOCK_BYTES (A) vs twice that (B) at batch > 1",
        "A int8 kernel tiles of TVX_BLOCK_BYTES (`TVEXPORT_OV_INT8_WIDE_TILES=0` while it was read; the kernel before issue 17ac, "
        "and the default elsewhere), B twice that (`TVEXPORT_OV_INT8_WIDE_TILES=1`; the default on x86-64 "
        "cores with >= 2 MiB of L2), A' as A",
        int8_candidates, "with int8 kernels (at batch > 1, where the wider budget changes their tiles)", "openvino_int8_wide_tiles",
        "deeplabv3plus_mobilenetv2", 16),
    "block-bytes": block_bytes_switch(192, "openvino_block_bytes"),
    "block-bytes-wide": block_bytes_switch(768, "openvino_block_bytes_wide"),
    "pointwise": Switch(
        "TVEXPORT_OV_FUSE_POINTWISE", "0", "1", "1x1 convolutions before the TV ops separate (A) vs folded into them (B)",
        "A the 1x1 convolution (+ bias, + ReLU6/ReLU) before each TV op run by OpenVINO (`TVEXPORT_OV_FUSE_POINTWISE=0`), "
        "B folded into the TV op (`TVEXPORT_OV_FUSE_POINTWISE=1`: computed from its narrow input as the op fills its rows; "
        "B's TV ops include that work, A's other ops do), A' as A",
        pointwise_candidates, "fed by a 1x1 convolution (the ones B folds its convolution into)",
        "openvino_pointwise", "face_mobilenetv2_x0_1", 16),
    "build": Switch(
        "", "", "", "this checkout's extension build (A) vs another build (B)",
        "A this checkout's extension (built from its ext/), B the library given by --extension-b (built from other sources), "
        "A' as A",
        None, "(all of them)", "openvino_build_ab", "face_mobilenetv2_x1_0", 1),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The options, those a run cannot use refused (defined above the imports of tvexport, torch and
    onnx, which take seconds, so that run as a script it refuses them first)."""
    p = _common.parser(__doc__.splitlines()[0], render=True, timing=False)  # --rounds and --block set the work
    p.add_argument("--switch", choices=list(SWITCHES), default="channel-blocks", help="what differs between A and B")
    p.add_argument("--batch", type=int, help="batch size (default: the switch's; channel blocks need batch > 1)")
    p.add_argument("--kernel-dtype", action="append", choices=("float32", "float16", "int8"),
                   help="stored TV kernels (repeatable); default float32")
    p.add_argument("--rounds", type=int, default=12, help="rounds of one block per copy (a multiple of 6 balances the orders)")
    p.add_argument("--block", type=int, default=5, help="runs per copy and round")
    p.add_argument("--extension-b", type=Path, metavar="LIB", help="--switch build: copy B's extension library")
    args = p.parse_args(argv)
    if args.quick:  # smoke run: numbers meaningless
        args.rounds, args.block = 2, 1
    args.rendered = _common.read_render(args, schema=SCHEMA)  # read once: main re-renders it
    if args.rendered is not None:  # its switch (not --switch) names its outputs
        measured = args.rendered.get("switch", "channel-blocks")
        if not isinstance(measured, str) or measured not in SWITCHES:  # a list would be unhashable: one line too
            _common.refuse(f"--render {args.render}: measured with --switch {measured}, which this checkout no longer has; "
                           "re-render it from the commit its results row in benchmarks/results/README.md names")
        return args
    if (args.switch == "build") != (args.extension_b is not None):
        p.error("--switch build takes --extension-b LIB (another checkout's `tvexport extension build openvino -o DIR`), "
                "and --extension-b goes with --switch build only")
    if args.extension_b is not None:
        if not args.extension_b.is_file():
            p.error(f"--extension-b {args.extension_b}: no such file; build it with `tvexport extension build openvino -o DIR` "
                    "in the other checkout")
        try:
            __import__("openvino").Core().add_extension(str(args.extension_b))
        except Exception as err:  # noqa: BLE001 - OpenVINO raises RuntimeError subclasses
            p.error(f"--extension-b {args.extension_b}: OpenVINO cannot load it ({str(err).strip().splitlines()[0]}); "
                    "build it with `tvexport extension build openvino -o DIR`")
    if args.arch and len(args.arch) > 1:
        p.error("one --arch per run")
    return args


if __name__ == "__main__":
    ARGS = parse_args()

import numpy as np  # noqa: E402
import onnx  # noqa: E402
from openvino_fused import mean_between, node_counters, ov_closure, plugin_graph, tv_nodes  # noqa: E402

from tvexport.bake import random_inputs  # noqa: E402
from tvexport.models.registry import config_of  # noqa: E402
from tvexport.openvino import OpenVinoRunner, build_key  # noqa: E402
from tvexport.profile import load_subject  # noqa: E402
from tvexport.profile.machine import load_average, machine_info, versions  # noqa: E402
from tvexport.profile.report import describe_machine  # noqa: E402
from tvexport.profile.stats import Stats, paired_ratio  # noqa: E402

ALT, NULL = "A'", "A'/A"  # the null-test copy and its ratio
WARM = 10
COPIES = ("A", "B", ALT)
ORDERS = list(itertools.permutations(COPIES))  # round r runs the copies in ORDERS[r % 6]


def ab_case(model: Any, x: np.ndarray, kernel_dtype: str, args: Any) -> dict[str, Any]:
    graph = plugin_graph(model, x.shape[0], kernel_dtype)
    switch = SWITCHES[args.switch]
    runners = {}
    for name in COPIES:
        env = dict(switch.fixed) | ({switch.env: switch.value(name)} if switch.env else {})
        extension = args.extension_b if args.switch == "build" and name == "B" else None  # None: this checkout's build
        with mock.patch.dict(os.environ, env):  # read as the model is read
            runners[name] = OpenVinoRunner(graph, what=f"{kernel_dtype} copy {name}", threads=args.threads, profile=True,
                                           extension=extension)
    # one checked run per copy, counted with the warm-up (the counters are running means since compile)
    outputs = {name: r(x) for name, r in runners.items()}
    if differs := [n for n in ("B", ALT) if not same_result(outputs["A"], outputs[n])]:
        hint = "; check the --extension-b build" if args.switch == "build" else ""
        raise SystemExit(f"copy {differs[0]} computes something else than copy A ({kernel_dtype} kernels): "
                         f"not a timing comparison{hint}")
    infer = {name: ov_closure(r, x) for name, r in runners.items()}
    for fn in infer.values():
        for _ in range(WARM - 1):
            fn()
    before = {name: node_counters(r)[0] for name, r in runners.items()}
    _common.wait_quiet(args)
    load_before = load_average()
    runs: dict[str, list[float]] = {name: [] for name in COPIES}
    blocks: dict[str, list[float]] = {name: [] for name in COPIES}
    for r in range(args.rounds):
        for name in ORDERS[r % len(ORDERS)]:
            fn, times = infer[name], []
            for _ in range(args.block):
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
            runs[name] += times
            blocks[name].append(statistics.fmean(times))
    load_after = load_average()
    measured = args.rounds * args.block
    tv = tv_nodes(graph)
    layers: dict[str, dict[str, float]] = {}
    other: dict[str, float] = {}
    for name, r in runners.items():
        mean = mean_between(before[name], WARM, node_counters(r)[0], WARM + measured)
        layers[name] = {n: mean.get(n, float("nan")) for n in tv}
        other[name] = sum(v for n, v in mean.items() if n not in layers[name])
    reach = tv if switch.reach is None else switch.reach(graph)
    return {
        "kernel_dtype": kernel_dtype, "kernel": runners["A"].kernel, "extension": runners["A"].extension.parent.name,
        **({"extension_b": str(runners["B"].extension), "kernel_b": runners["B"].kernel,
            "extension_b_key": build_key(runners["B"].extension)} if args.switch == "build" else {}),
        "max_diff": {n: max_diff(outputs[n], outputs["A"]) for n in ("B", ALT)},
        "wall": {name: Stats.of(v).to_dict() for name, v in runs.items()},
        "ratios": {f"{n}/A": paired_ratio(blocks[n], blocks["A"], names=(n, "A")).to_dict() for n in ("B", ALT)},
        "tv_us": layers, "candidates": reach,
        "tv_sum_us": {name: sum(v.values()) for name, v in layers.items()}, "other_sum_us": other,
        "candidates_sum_us": {name: sum(v[n] for n in reach) for name, v in layers.items()},
        "load_average": [load_before, load_after],
    }


def max_diff(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max |b|: 0 where a copy computes the same bits as A (A' must: one code, one
    graph), above 0 where its arithmetic differs (a build that rounds otherwise)."""
    ya, yb = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(ya - yb).max()) / max(float(np.abs(yb).max()), 1e-30)


def same_result(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two copies' outputs agree (float32 summation order aside)."""
    return np.shape(a) == np.shape(b) and max_diff(b, a) <= 1e-4


ORDER_TEXT = {
    "permutations": "the rounds cycling through the 6 orders of A, B, A' (each copy first, in the middle and last equally often "
                    "when the rounds are a multiple of 6).",
    "reversed": "order A, B, A' reversed every other round (B always in the middle: in issue 17i's runs identical code measured "
                "4-17 % slower there, on face MobileNetV2 x0.1 at batch 1, a bias the null test A'/A does not show; "
                "the script now cycles through all 6 orders).",
}


def _ratio(num: float, den: float, digits: int = 3) -> str:
    return f"{num / den:.{digits}f}" if den > 0 else "-"


def render(result: dict[str, Any], out: Path, name: str) -> None:
    switch = SWITCHES[result.get("switch", "channel-blocks")]  # results before --switch: channel blocks
    other = all("other_sum_us" in c for c in result["cases"])  # results before the other ops' sum: no such columns
    md = [f"# OpenVINO extension: {switch.title}, with a null test (A')", "",
          f"Machine: {result['machine_text']}.", "",
          f"Command: `{result['command']}`. {result['arch']} (random weights, reference TV settings, BatchNorm folded), plugin graph, "
          f"batch {result['batch']}; OpenVINO {result['versions'].get('openvino', '?')}, CPU plugin, INFERENCE_PRECISION_HINT f32, "
          f"{result['threads']} threads, PERF_COUNT on in every copy. Per kernel dtype three copies of one graph compiled in one process: "
          f"{switch.b_means} (null test). "
          f"{WARM} warm-up runs each, then {result['rounds']} rounds of a {result['block']}-run block per copy, "
          f"{ORDER_TEXT[result.get('order', 'reversed')]} Wall: median of single runs; B/A and A'/A: per-round ratios of block means, median "
          "[p10-p90]. TV ops: mean of the measured runs from OpenVINO's counters (whole us); 'reachable' sums the TV layers "
          f"{switch.reach_means}.", "",
          "| kernels | wall A ms | wall B ms | wall A' ms | wall B/A | wall A'/A | TV ops A / B / A' ms | TV B/A | TV A'/A | "
          "reachable A / B / A' ms | reachable B/A | reachable A'/A | " + ("other ops A / B / A' ms | other B/A | other A'/A | " if other else "")
          + "load before -> after |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|" + ("---|---|---|" if other else "")]
    for c in result["cases"]:
        w, r, s, cs = c["wall"], c["ratios"], c["tv_sum_us"], c["candidates_sum_us"]

        def q(key: str) -> str:
            return f"{r[key]['median']:.3f} [{r[key]['p10']:.3f}-{r[key]['p90']:.3f}]"

        def ms(d: dict[str, float]) -> str:
            return " / ".join(f"{d[n] / 1e3:.2f}" for n in COPIES)
        lb, la = c["load_average"]
        wa, wb, wn = (w[n]["median_s"] * 1e3 for n in COPIES)
        o = c.get("other_sum_us")
        others = f"{ms(o)} | {_ratio(o['B'], o['A'])} | {_ratio(o[ALT], o['A'])} | " if other else ""
        md.append(f"| {c['kernel_dtype']} | {wa:.4g} | {wb:.4g} | {wn:.4g} | {q('B/A')} | {q(NULL)} | {ms(s)} | "
                  f"{_ratio(s['B'], s['A'])} | {_ratio(s[ALT], s['A'])} | {ms(cs)} | {_ratio(cs['B'], cs['A'])} | {_ratio(cs[ALT], cs['A'])} | "
                  f"{others}{lb[0] if lb else '?'} -> {la[0] if la else '?'} |")
    md += ["", "## Per TV layer: mean us of the measured runs (B/A, A'/A)", "",
           "| layer | " + " | ".join(c["kernel_dtype"] for c in result["cases"]) + " |",
           "|---|" + "---|" * len(result["cases"])]
    for layer in result["cases"][0]["tv_us"]["A"]:
        cells = []
        for c in result["cases"]:
            t = c["tv_us"]
            mark = " (reachable)" if layer in c["candidates"] else ""
            a, b, n = (t[k][layer] for k in COPIES)
            cells.append(f"{a:.0f} / {b:.0f} / {n:.0f} ({_ratio(b, a, 2)}, {_ratio(n, a, 2)}){mark}")
        md.append(f"| {layer} | " + " | ".join(cells) + " |")
    first = result["cases"][0]
    md += ["", f"Kernel variant, extension build: {first['kernel']} {first['extension']}."]
    if result.get("switch") == "build":
        key = f" (build key {first['extension_b_key']})" if first.get("extension_b_key") else ""
        md[-1] += f" B: {first['kernel_b']} {first['extension_b']}{key}."
        if "max_diff" in first:  # results before it: not recorded
            md[-1] += " B's output vs A's, max |B - A| / max |A|: " + ", ".join(
                f"{c['kernel_dtype']} {c['max_diff']['B']:.2g}" for c in result["cases"]) + " (0: the same bits; A' vs A: " + ", ".join(
                f"{c['max_diff'][ALT]:.2g}" for c in result["cases"]) + ")."
    _common.write_results(out, name, "\n".join(md) + "\n", result)


def main(args: argparse.Namespace | None = None) -> int:
    args = args or parse_args()
    if args.rendered is not None:  # the --render file, as parse_args read and checked it
        _common.rerender(args, args.name or SWITCHES[args.rendered.get("switch", "channel-blocks")].name, render, result=args.rendered)
        return 0
    switch = SWITCHES[args.switch]
    name = args.name or switch.name
    arch = args.arch[0] if args.arch else switch.arch
    args.batch = args.batch or switch.batch
    model = load_subject(arch).networks[0].form("baked")
    assert model is not None
    x = np.ascontiguousarray(random_inputs((args.batch, *config_of(model).input_shape), seed=0).numpy())
    machine = machine_info(device="cpu")
    result: dict[str, Any] = {
        "schema": SCHEMA, "command": _common.command_line(), "switch": args.switch, "order": "permutations", "arch": arch, "batch": args.batch,
        "threads": args.threads, "rounds": args.rounds, "block": args.block, "machine": machine,
        "versions": {**versions(), "openvino": __import__("openvino").__version__},
        "machine_text": describe_machine({"machine": machine, "versions": versions(), "settings": {"threads": args.threads, "device": "cpu", "dtype": "float32"}}),
        "cases": [],
    }
    t0 = time.perf_counter()
    for dtype in args.kernel_dtype or ["float32"]:
        print(f"{arch} batch {args.batch} {dtype} kernels", file=sys.stderr, flush=True)
        result["cases"].append(ab_case(model, x, dtype, args))
        result["elapsed_s"] = time.perf_counter() - t0
        render(result, args.out, name)  # keep what is done if a later case fails
    print(f"wrote {args.out / name}.md/.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(ARGS))
