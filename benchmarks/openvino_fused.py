"""OpenVINO: the fused tv_dwconv extension against the DWConv network, beside portable OpenVINO,
onnxruntime and compressed kernels; per TV layer against its memory floor; a width sweep.

    python benchmarks/openvino_fused.py                              # everything (about 4-5 min on 2 cores; 12 on the Zen 3)
    python benchmarks/openvino_fused.py --arch face_mobilenetv2_x0_1 --no-sweep   # one network, merged into the results
    python benchmarks/openvino_fused.py --sweep-only                 # only the width sweep
    python benchmarks/openvino_fused.py --render benchmarks/results/openvino_fused.json

Per network and batch, back to back in one process, one interleaved case (rounds, order rotated,
paired ratios) per TV variant and the DWConv network of its runtime, as `tvexport bench` does:
  ov-fused        plugin graph + tvexport extension (float32 kernels)
  ov-fused-f16    the same network with its TV kernels compressed by tvexport.quantize, as
  ov-fused-int8   `export --kernel-dtype float16|int8` stores them (int8: one float32 scale per (channel, tap))
  ov-portable     the portable (standard-op) graph on OpenVINO
  ort-portable    the portable graph on onnxruntime
  ov-dw, ort-dw   the DWConv baseline network on each runtime
Ratios are paired per round against ov-dw (ort-portable against ort-dw). All OpenVINO runs
use INFERENCE_PRECISION_HINT f32. Per TV layer: OpenVINO's per-node counters (PERF_COUNT) in
the fused network, mean of the warm runs, against the layer's memory floor (stored kernel bytes +
input + output bytes; a TV op the runner folded its 1x1 convolution into, whose time holds that
convolution's work, reads the convolution's narrow input and weights instead) / copy bandwidth measured in the same run with as many threads as the
counters (--layer-threads, default --threads; on the Zen 4 VM two threads' counters swung 2.4x
within minutes while one thread's held within ~10 %); the reorders around TV ops are summed
separately. Beside them the DW network's depthwise convolutions in the TV layers' places, timed
the same way against the same kind of floor (weights + input + output bytes): how close OpenVINO's
own depthwise kernel comes to its floor on those geometries. Each TV layer also has a compute
floor: its multiply-adds (see multiply_adds) at the multiply-add peak measured in the same run
(openvino_kernel_micro's helper, 'fma' mode: register-only chains at the widest vector width the
CPU runs, one copy per counter thread at once; '-' where the helper cannot be built), and 'x
roofline' = time / max(memory floor, compute floor). Rows whose layers' data (kernels +
inputs + outputs) fits in the L3 (read from sysfs, recorded as l3_bytes) are marked: warm runs
read it from cache, so the DRAM floor is not binding there. Width sweep: face MobileNetV2 at each registry width, TV (ov-fused) and DW
(best of ov-dw and ort-dw per width) at batch 1, TV and ov-dw interleaved, ort-dw in a case
of its own (a runtime's spinning threads slow the other's next run; onnxruntime keeps its default
spinning there, while the paired cases above turn it off); the matrix gives
TV(width a) / DW(width b) for every pair. It does not say which pairs match in accuracy.
A run merged into an existing results file replaces the rows it measures and keeps the others;
their one header (threads, machine, versions) must then still hold, so a run with other settings
is refused unless it replaces every row (or writes a file of its own with --name).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

import _common
import numpy as np
import openvino_kernel_micro as kernel_micro
import torch

from tvexport.bake import random_inputs
from tvexport.errors import MissingDependencyError
from tvexport.export._onnx_tv import PLUGIN_OP
from tvexport.export.onnx import OrtRunner, onnx_graph, simplify_graph
from tvexport.models.registry import config_of
from tvexport.openvino import OpenVinoRunner
from tvexport.profile import load_subject, measure_case
from tvexport.profile.floor import copy_bandwidth
from tvexport.profile.machine import l3_cache_bytes, load_average, machine_info, versions
from tvexport.profile.stats import Stats, paired_ratio
from tvexport.quantize import compress_model

BATCHES = [1, 16]
WIDTHS = ["face_mobilenetv2_x0_1", "face_mobilenetv2_x0_2", "face_mobilenetv2_x0_3", "face_mobilenetv2_x0_5", "face_mobilenetv2_x1_0"]
TARGETS = {"b16": 1.2, "b1_f32": 2.0, "b1_compressed": 1.3, "layer_floor": 1.5}


# --------------------------------------------------------------------------------------------
# Graphs
# --------------------------------------------------------------------------------------------

def graphs(model: torch.nn.Module, batch: int, *, tv: bool) -> dict[str, Any]:
    """The portable graph, and for a TV network the plugin graph with its kernels as baked
    (float32) and compressed by tvexport.quantize as `export --kernel-dtype` stores them."""
    portable = simplify_graph(onnx_graph(model, batch=batch))
    if not tv:
        return {"portable": portable}
    return {"portable": portable, "plugin": plugin_graph(model, batch), "plugin_f16": plugin_graph(model, batch, "float16"),
            "plugin_int8": plugin_graph(model, batch, "int8")}


def plugin_graph(model: torch.nn.Module, batch: int, kernel_dtype: str = "float32") -> Any:
    """The plugin graph of a baked TV network, its kernels compressed to ``kernel_dtype`` by
    tvexport.quantize as `export --kernel-dtype` stores them (float32: as baked)."""
    if kernel_dtype != "float32":
        model = copy.deepcopy(model)
        compress_model(model, kernel_dtype)
    return simplify_graph(onnx_graph(model, tv_op="plugin", batch=batch))


def ov_closure(runner: OpenVinoRunner, x: np.ndarray) -> Any:
    runner.request.set_input_tensor(0, runner.input_tensor(x))
    return runner.request.infer


def ort_closure(runner: OrtRunner, x: np.ndarray) -> Any:
    feed = {runner.input_name: x}
    session = runner.session
    return lambda: session.run(None, feed)


# --------------------------------------------------------------------------------------------
# Per TV layer, from OpenVINO's counters
# --------------------------------------------------------------------------------------------

def layer_threads(args: Any) -> int:
    """Threads of the per-layer counters and of their floor's copy bandwidth."""
    return args.layer_threads or args.threads


def bandwidth_with(threads: int) -> dict[str, Any]:
    """copy_bandwidth with ``threads`` torch threads (restored after)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return {**copy_bandwidth(), "threads": threads}
    finally:
        torch.set_num_threads(before)


def layer_profile(graph: Any, x: np.ndarray, *, threads: int, runs: int, nodes: list[str] | None = None) -> dict[str, Any]:
    """Mean per-node time (us) of the fused network's TV ops (or of ``nodes``: ONNX node names,
    each the sum of the counters named after it, see node_time) over ``runs`` warm runs, the
    reorders' total, and the TV ops the runner folded a 1x1 convolution into (``folded``: their
    time holds the convolution's, see floor_bytes). The CPU plugin reports each node's mean since the model was compiled, not the
    last run's time (total / count, in whole microseconds): the mean of the measured runs is taken
    from the counters before and after them, so the warm-up runs (the first one several times a
    warm run, and the next few still slower) are left out. The counters are whole microseconds
    (each run's time truncated, the mean rounded down), so a node's figure can be 1-2 us off."""
    runner = OpenVinoRunner(graph, threads=threads, profile=True)
    infer = ov_closure(runner, x)
    warm = 10
    for _ in range(warm):
        infer()
    before, _ = node_counters(runner)
    for _ in range(runs):
        infer()
    after, kinds = node_counters(runner)
    mean = mean_between(before, warm, after, warm + runs)
    names = tv_nodes(graph) if nodes is None else nodes
    reorders = sum(v for name, v in mean.items() if kinds[name] in ("Reorder", "Transpose"))
    return {"tv_us": {name: node_time(mean, name) for name in names}, "reorders_us": reorders, "kernel": runner.kernel,
            "folded": list(runner.pointwise_ops)}


def node_time(mean: dict[str, float], onnx_name: str) -> float:
    """An ONNX node's time (us) from the per-node means: the counters named after it (the CPU plugin
    names a Conv with bias ``<name>/WithoutBiases``); NaN where none is (fused into another node)."""
    times = [us for name, us in mean.items() if name == onnx_name or name.startswith(onnx_name + "/")]
    return sum(times) if times else float("nan")


def node_counters(runner: OpenVinoRunner) -> tuple[dict[str, float], dict[str, str]]:
    """Each node's counter (us: its mean over every run since the model was compiled, see
    layer_profile) and its type, from a runner compiled with ``profile=True``."""
    infos = runner.request.profiling_info
    return {i.node_name: i.real_time.total_seconds() * 1e6 for i in infos}, {i.node_name: i.node_type for i in infos}


def mean_between(before: dict[str, float], runs_before: int, after: dict[str, float], runs_after: int) -> dict[str, float]:
    """Per-node mean (us) of the runs between two node_counters snapshots, taken after
    ``runs_before`` and ``runs_after`` runs since the model was compiled."""
    return {name: max(0.0, (us * runs_after - before.get(name, 0.0) * runs_before) / (runs_after - runs_before)) for name, us in after.items()}


def tv_nodes(graph: Any) -> list[str]:
    """Names of the graph's tv_dwconv nodes (their counters' names)."""
    return [n.name for n in graph.graph.node if n.op_type == PLUGIN_OP]


def pointwise_conv(graph: Any, node: Any) -> Any | None:
    """The ONNX Conv that feeds ``node`` (a TV node) through Clip/Relu nodes only, if any (the
    convolution tvexport.openvino.runtime.fuse_pointwise_convs folds into the op where its
    conditions hold); else None."""
    producer = {out: n for n in graph.graph.node for out in n.output}
    src = producer.get(node.input[0])
    while src is not None and src.op_type in ("Clip", "Relu"):
        src = producer.get(src.input[0])
    return src if src is not None and src.op_type == "Conv" else None


def input_size(graph: Any, node: Any, h: int, w: int, stride: int) -> tuple[int, int]:
    """(H, W) of a TV node's input as the graph declares it (graph input or value_info, as tvexport
    exports them); where it is not declared, (h * stride, w * stride) from the output size, which
    over-counts an odd input at stride 2 (7 -> 4 at k=3, stride 2, padding 1: 8)."""
    for vi in [*graph.graph.input, *graph.graph.value_info]:
        dims = vi.type.tensor_type.shape.dim
        if vi.name == node.input[0] and len(dims) == 4 and dims[2].dim_value > 0 and dims[3].dim_value > 0:
            return dims[2].dim_value, dims[3].dim_value
    return h * stride, w * stride


def floor_bytes(graph: Any, batch: int, *, folded: Collection[str] = ()) -> dict[str, int]:
    """Bytes each TV node must move once: stored kernels (+ bias, scale) + input (its real H x W,
    input_size) + output (float32). A node in ``folded`` (a 1x1 convolution folded into it,
    layer_profile) reads the convolution's narrow input (the same H x W) instead of the expanded
    one, and the convolution's weight and bias: those are its bytes (its time holds the
    convolution's work)."""
    from onnx import numpy_helper

    inits = {t.name: t for t in graph.graph.initializer}
    out = {}
    for node in graph.graph.node:
        if node.op_type != PLUGIN_OP:
            continue
        w = numpy_helper.to_array(inits[node.input[1]])
        stored = sum(numpy_helper.to_array(inits[i]).nbytes for i in node.input[1:] if i)
        c, kk, h, wd = w.shape
        attrs = {a.name: a.i for a in node.attribute}
        s = attrs["stride"]
        cin = c
        if node.name in folded:
            conv = pointwise_conv(graph, node)
            if conv is None:
                raise SystemExit(f"TV layer {node.name}: recorded as folded, but no Conv feeds it in the ONNX graph")
            cin = inits[conv.input[1]].dims[1]
            stored += sum(numpy_helper.to_array(inits[i]).nbytes for i in conv.input[1:] if i)
        ih, iw = input_size(graph, node, h, wd, s)
        out[node.name] = stored + 4 * batch * (cin * ih * iw + c * h * wd)
    return out


def multiply_adds(graph: Any, batch: int, *, folded: Collection[str] = ()) -> dict[str, int]:
    """Multiply-adds each TV node does: k*k taps per output element (C x h x w x batch elements). A
    node in ``folded`` (layer_profile) also computes its ring's rows from the 1x1 convolution's
    narrow input (kernel.cpp's pointwise prologue): cin x C per input position, each of the H x W
    positions per image once (input_size), as floor_bytes counts that input. Not counted: the rows and
    columns the prologue computes again in each tile that shares them (kernel.cpp: ~6 % at stride 2
    with 8-row tiles; it depends on the tiling, hence on batch, threads and kernel dtype), bias,
    scales and clamps."""
    from onnx import numpy_helper

    inits = {t.name: t for t in graph.graph.initializer}
    out = {}
    for node in graph.graph.node:
        if node.op_type != PLUGIN_OP:
            continue
        c, kk, h, wd = numpy_helper.to_array(inits[node.input[1]]).shape
        s = {a.name: a.i for a in node.attribute}["stride"]
        macs = batch * c * kk * h * wd
        if node.name in folded:
            conv = pointwise_conv(graph, node)
            if conv is None:
                raise SystemExit(f"TV layer {node.name}: recorded as folded, but no Conv feeds it in the ONNX graph")
            ih, iw = input_size(graph, node, h, wd, s)
            macs += batch * inits[conv.input[1]].dims[1] * c * ih * iw
        out[node.name] = int(macs)
    return out


def fma_peak(threads: int, *, rounds: int = 3) -> dict[str, Any]:
    """The multiply-add peak of ``threads`` threads: openvino_kernel_micro's helper (built as that
    script builds it, into its cache) in its 'fma' mode (register-only chains at the widest vector
    width this CPU runs), ``threads`` copies at once, their rates summed; the median of ``rounds``.
    ``{"error": why}`` (one line) where the helper cannot be built or run."""
    try:
        isa = kernel_micro.native_isa()
        if isa is None:
            return {"error": "this CPU runs neither AVX-512 (x86-64-v4) nor AVX2 + FMA + F16C (x86-64-v3), the helper's builds"}
        binary = kernel_micro.build(isa=isa, log=False)
        sums = []
        for _ in range(rounds):
            procs = [subprocess.Popen([str(binary), "fma"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(threads)]
            rates = []
            for proc in procs:
                out, err = proc.communicate()
                if proc.returncode:
                    return {"error": f"{binary} fma failed ({proc.returncode}): {(err.strip().splitlines() or [''])[-1]}"}
                rates.append(next(json.loads(line) for line in out.splitlines() if line.startswith("{"))["fma_vectors_per_ns"])
            sums.append(sum(rates))
    except (MissingDependencyError, SystemExit, OSError, StopIteration, ValueError, KeyError) as err:
        why = str(err.code if isinstance(err, SystemExit) else err).strip().splitlines() or [type(err).__name__]
        return {"error": f"the multiply-add helper (benchmarks/ov_kernel_micro) could not be built or run: {why[0]}"}
    # vectors of 16 multiply-adds per ns
    return {"gfma_per_s": 16 * statistics.median(sums), "gfma_per_s_rounds": [16 * v for v in sums], "threads": threads,
            "isa": isa, "vector_bits": 512 if isa == "avx512" else 256}


def add_compute_floor(case: dict[str, Any], peak: dict[str, Any]) -> dict[str, Any]:
    """``case`` with the run's ``peak`` (fma_peak) and, on every TV layer row that counts its
    multiply-adds, the compute floor (us) and time / max(memory floor, compute floor)."""
    case = {**case, "fma_peak": peak}
    if "gfma_per_s" not in peak:
        return case
    for prof in case["layers"].values():
        for row in prof["layers"]:
            if "macs" in row:
                row["compute_us"] = row["macs"] / (peak["gfma_per_s"] * 1e3)
                row["x_roofline"] = row["us"] / max(row["floor_us"], row["compute_us"])
    return case


def dw_layers(g_dw: Any, g_tv: Any, batch: int) -> dict[str, int]:
    """The DW network's depthwise convolutions that stand where the TV network has its TV layers,
    each with its floor bytes (weights + bias + input + output, float32, as floor_bytes counts a TV
    layer's): matched in network order by (channels, k, stride, output size), so DeepLabV3+'s
    backbone depthwise convolutions, depthwise in both networks, are left out."""
    import onnx
    from onnx import numpy_helper

    def dims(vi: Any) -> list[int]:
        return [d.dim_value for d in vi.type.tensor_type.shape.dim]

    inferred = onnx.shape_inference.infer_shapes(g_dw)
    shapes = {vi.name: dims(vi) for vi in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]}
    inits = {t.name: t for t in g_dw.graph.initializer}
    candidates = []
    for node in g_dw.graph.node:
        attrs = {a.name: a for a in node.attribute}
        if node.op_type != "Conv" or "group" not in attrs or attrs["group"].i == 1 or inits[node.input[1]].dims[1] != 1:
            continue  # not depthwise (grouped convolutions with several channels per group are not)
        c, (k, _), s = attrs["group"].i, attrs["kernel_shape"].ints, attrs["strides"].ints[0] if "strides" in attrs else 1
        _, _, oh, ow = shapes[node.output[0]]
        _, _, ih, iw = shapes[node.input[0]]
        stored = sum(numpy_helper.to_array(inits[i]).nbytes for i in node.input[1:] if i)
        candidates.append(((c, k, s, oh, ow), node.name, stored + 4 * batch * c * (ih * iw + oh * ow)))
    inits_tv = {t.name: t for t in g_tv.graph.initializer}
    out: dict[str, int] = {}
    for node in g_tv.graph.node:
        if node.op_type != PLUGIN_OP:
            continue
        c, kk, h, w = numpy_helper.to_array(inits_tv[node.input[1]]).shape
        key = (c, round(kk ** 0.5), {a.name: a.i for a in node.attribute}["stride"], h, w)
        i = next((i for i, cand in enumerate(candidates) if cand[0] == key), None)  # the first unmatched one
        if i is None:
            raise SystemExit(f"TV layer {node.name} {key}: no depthwise convolution of that (channels, k, stride, h, w) left in the DW network")
        _, name, floor = candidates.pop(i)
        out[name] = floor
    return out


# --------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------

def network_case(arch: str, batch: int, args: Any, bandwidth: float) -> dict[str, Any]:
    """One (network, batch): paired TV/DW timings of every variant, errors against torch, and the
    per-TV-layer counters (with ``args.layer_threads`` threads) against ``bandwidth``."""
    subject = load_subject(arch)
    tv_model, dw_model = subject.networks[0].form("baked"), subject.networks[1].form("baked")
    assert tv_model is not None and dw_model is not None
    x = np.ascontiguousarray(random_inputs((batch, *config_of(tv_model).input_shape), seed=0).numpy())
    g_tv, g_dw = graphs(tv_model, batch, tv=True), graphs(dw_model, batch, tv=False)
    dw_floors = dw_layers(g_dw["portable"], g_tv["plugin"], batch)  # before any timing: a mismatch stops at once
    t, lt = args.threads, layer_threads(args)
    # each pair's models are compiled for its case and released after it: while a pair is timed the
    # process holds only its two models, never the row's other variants (a process holding those
    # timed TV / DW 2-6 % above one holding only the pair, identical processes up to 4 %;
    # benchmarks/openvino_process_state.py)
    sources = {"ov-fused": g_tv["plugin"], "ov-fused-f16": g_tv["plugin_f16"], "ov-fused-int8": g_tv["plugin_int8"],
               "ov-portable": g_tv["portable"], "ov-dw": g_dw["portable"], "ort-portable": g_tv["portable"], "ort-dw": g_dw["portable"]}

    def compile_one(name: str) -> Any:
        if name.startswith("ort-"):
            return OrtRunner(sources[name], what={"ort-portable": "tv", "ort-dw": "dw"}[name], threads=t, spin=False)
        return OpenVinoRunner(sources[name], threads=t)

    # error of each TV variant against the float32 torch model (what compressing the kernels costs)
    with torch.no_grad():
        ref = tv_model(torch.from_numpy(x)).double().numpy()
    scale = float(np.abs(ref).max())
    # one interleaved case per (TV variant, its runtime's DW network), like `tvexport bench`:
    # all cases of a (network, batch) run back to back in one process
    pairs = [("ov-fused", "ov-dw"), ("ov-fused-f16", "ov-dw"), ("ov-fused-int8", "ov-dw"), ("ov-portable", "ov-dw"), ("ort-portable", "ort-dw")]
    _common.wait_quiet(args)
    load_before = load_average()
    stats, ratios, rounds, truncated, errors, precision, build = {}, {}, {}, False, {}, {}, {}
    for tv_name, dw_name in pairs:
        runners = {tv_name: compile_one(tv_name), dw_name: compile_one(dw_name)}
        errors[tv_name] = float(np.abs(runners[tv_name](x) - ref).max() / scale)
        precision |= {name: r.inference_precision for name, r in runners.items() if isinstance(r, OpenVinoRunner)}  # read back from each model
        if tv_name == "ov-fused":
            build = {"kernel": runners[tv_name].kernel, "extension": runners[tv_name].extension.parent.name}  # its cache key
        closures = {name: ov_closure(r, x) if isinstance(r, OpenVinoRunner) else ort_closure(r, x) for name, r in runners.items()}
        timing = measure_case(closures, _common.settings(args))
        del closures, runners  # released before the next pair compiles
        stats[tv_name] = Stats.of(timing.samples[tv_name]).to_dict()
        stats.setdefault(dw_name, Stats.of(timing.samples[dw_name]).to_dict())
        ratios[tv_name if dw_name == "ov-dw" else f"{tv_name}/{dw_name}"] = paired_ratio(timing.samples[tv_name], timing.samples[dw_name], names=(tv_name, dw_name)).to_dict()
        rounds[tv_name] = timing.rounds
        truncated |= timing.truncated
    layers = {}
    for name, key in (("ov-fused", "plugin"), ("ov-fused-f16", "plugin_f16"), ("ov-fused-int8", "plugin_int8")):
        prof = layer_profile(g_tv[key], x, threads=lt, runs=args.layer_runs)
        floors = floor_bytes(g_tv[key], batch, folded=prof["folded"])
        macs = multiply_adds(g_tv[key], batch, folded=prof["folded"])
        prof["layers"] = [{"name": n, "us": us, "floor_bytes": floors[n], "floor_us": floors[n] / bandwidth * 1e6,
                           "x_floor": us / (floors[n] / bandwidth * 1e6), "folded": n in prof["folded"], "macs": macs[n]}
                          for n, us in prof["tv_us"].items()]
        del prof["tv_us"]
        layers[name] = prof
    dw_prof = layer_profile(g_dw["portable"], x, threads=lt, runs=args.layer_runs, nodes=list(dw_floors))
    # the DW network's depthwise convolutions in the TV layers' places, against the same kind of floor:
    # what OpenVINO's own kernel reaches on those geometries on this machine
    dw_layer_rows = [{"name": n, "us": us, "floor_bytes": dw_floors[n], "floor_us": dw_floors[n] / bandwidth * 1e6,
                      "x_floor": us / (dw_floors[n] / bandwidth * 1e6)} for n, us in dw_prof["tv_us"].items()]
    return {"arch": arch, "batch": batch, "rounds": rounds, "truncated": truncated, "stats": stats, "ratios": ratios,
            "errors_vs_torch": errors, "layers": layers, "dw_reorders_us": dw_prof["reorders_us"], "dw_layers": dw_layer_rows,
            "layer_threads": lt, **build, "precision": precision,
            "load_average": [load_before, load_average()]}


def width_sweep(args: Any) -> dict[str, Any]:
    """Per width at batch 1, one interleaved case of TV (ov-fused) and DW on OpenVINO, then one of
    DW on onnxruntime alone: a runtime's threads may spin after its run and slow the other's
    next run (one mixed case, onnxruntime spinning: both OpenVINO networks ran ~2.5x their
    paired-row times). The matrix divides medians of different cases (one process, back to
    back), not paired rounds: a drift of the machine's speed between cases (up to ~2x over tens
    of seconds on the shared VMs, with no other process busy: benchmarks/README.md) moves its
    cells, and only a cell's own width's TV / DW on OpenVINO is paired."""
    med: dict[str, float] = {}
    rounds = {}
    build: dict[str, str] = {}
    for arch in WIDTHS:
        subject = load_subject(arch)
        tv_model, dw_model = subject.networks[0].form("baked"), subject.networks[1].form("baked")
        x = np.ascontiguousarray(random_inputs((1, *config_of(tv_model).input_shape), seed=0).numpy())
        plugin = simplify_graph(onnx_graph(tv_model, tv_op="plugin", batch=1))
        dw = simplify_graph(onnx_graph(dw_model, batch=1))
        tv_runner = OpenVinoRunner(plugin, threads=args.threads)
        build = {"kernel": tv_runner.kernel, "extension": tv_runner.extension.parent.name}  # its cache key
        cases = (
            {f"tv {arch}": ov_closure(tv_runner, x),
             f"dw-ov {arch}": ov_closure(OpenVinoRunner(dw, threads=args.threads), x)},
            {f"dw-ort {arch}": ort_closure(OrtRunner(dw, what=arch, threads=args.threads, spin=True), x)},  # alone: its default spinning
        )
        _common.wait_quiet(args)
        for variants in cases:
            timing = measure_case(variants, _common.settings(args))
            med |= {name: statistics.median(v) for name, v in timing.samples.items()}
            rounds.setdefault(arch, timing.rounds)
    tv = {arch: med[f"tv {arch}"] for arch in WIDTHS}
    dw_best = {arch: min((med[f"dw-ov {arch}"], "openvino"), (med[f"dw-ort {arch}"], "onnxruntime")) for arch in WIDTHS}
    matrix = [[tv[a] / dw_best[b][0] for b in WIDTHS] for a in WIDTHS]
    return {"batch": 1, "rounds": rounds, "tv_s": tv, "dw_best_s": {a: v[0] for a, v in dw_best.items()},
            "dw_best_backend": {a: v[1] for a, v in dw_best.items()}, "medians_s": med, "matrix_tv_over_dw": matrix, **build}


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------

def _width(arch: str) -> str:
    return arch.rsplit("_x", 1)[1].replace("_", ".")


def render(result: dict[str, Any], out: Path, name: str) -> None:
    md = ["# OpenVINO: fused tv_dwconv extension vs DWConv, portable graphs, compressed kernels", "",
          f"Machine: {result['machine_text']}.", "",
          f"Command(s): {'; '.join('`' + c + '`' for c in result['commands'])}. Random weights (registry, reference TV settings); "
          "TV = baked TVConv network, DW = its DWConv baseline, BatchNorm folded. OpenVINO "
          f"{result['versions'].get('openvino', '?')}, CPU plugin, INFERENCE_PRECISION_HINT f32, {result['threads']} threads; "
          "per (network, batch), one interleaved case per TV variant with the DW network of the same runtime, one after another "
          "(since issue 17 procstate43 with only the timed pair's models compiled, and each (network, batch) of a run in a process "
          "of its own; rows before it: all cases of a run in one process, holding the row's models) "
          "(onnxruntime with its intra-op threads' spinning off); "
          "ratios are medians of per-round paired ratios "
          "[p10-p90]. float16/int8 kernels are compressed by tvexport.quantize as `export --kernel-dtype` stores them "
          "(float16: kernels and bias; int8: symmetric, one float32 scale per (channel, tap)); "
          "their error is max|out - torch| / max|torch| against the float32 network.", ""]
    md += ["| network | batch | ov-fused / ov-dw | f16 kernels | int8 kernels | ov-portable / ov-dw | ort-portable / ort-dw | ov-dw ms | ov-fused ms | ort-dw ms | err f32 | err f16 | err int8 | kernel, extension build | OpenVINO precision |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in result["cases"]:
        r, s, e = c["ratios"], c["stats"], c["errors_vs_torch"]

        def q(key: str) -> str:
            return f"{r[key]['median']:.2f} [{r[key]['p10']:.2f}-{r[key]['p90']:.2f}]"
        md.append(f"| {c['arch']} | {c['batch']} | {q('ov-fused')} | {q('ov-fused-f16')} | {q('ov-fused-int8')} | {q('ov-portable')} | "
                  f"{q('ort-portable/ort-dw')} | {s['ov-dw']['median_s'] * 1e3:.3g} | {s['ov-fused']['median_s'] * 1e3:.3g} | "
                  f"{s['ort-dw']['median_s'] * 1e3:.3g} | {e['ov-fused']:.1e} | {e['ov-fused-f16']:.1e} | {e['ov-fused-int8']:.1e} | {c['kernel']} "
                  f"{c.get('extension', '(first kernel)')} | {_precision(c)} |")
    md += ["", f"Targets (issue 17): fused/DW <= {TARGETS['b16']} at batch 16; batch 1 <= {TARGETS['b1_f32']} (float32 kernels), "
           f"<= {TARGETS['b1_compressed']} (compressed); per TV layer <= {TARGETS['layer_floor']}x its memory floor.", ""]
    md += ["## Per TV layer (OpenVINO per-node counters, mean of warm runs; floor at the copy bandwidth measured in the run of the row with the counters' threads)", "",
           "The DW columns: the DW network's depthwise convolutions in the TV layers' places (OpenVINO's own kernel), timed the same "
           "way against the same kind of floor (their weights + input + output bytes), where the run recorded them: how close the "
           "runtime's own depthwise kernel comes to its floor on these geometries on this machine. 'folded': the TV layers "
           "the runner folded their 1x1 convolution into (runtime.fuse_pointwise_convs; '-': not recorded, the rows before it): "
           "their time holds that convolution's work, which the DW columns' layers do not, and their floor counts what they "
           "move (the convolution's narrow input, its weight and bias, the stored kernels, the output).", "",
           "Compute floor: each TV layer's multiply-adds at the multiply-add peak measured in the run of the row (openvino_kernel_micro's "
           "helper in its 'fma' mode: register-only chains at the widest vector width the CPU runs, one copy per counter thread at "
           "once; 'peak GFMA/s'). Counted: k*k per output element (C x h x w x batch), and for a folded layer also its 1x1 "
           "convolution's cin x C per input position (H x W per image, each once: the rows and columns the prologue computes "
           "again per tile, ~6 % at stride 2 with 8-row tiles, are not counted, nor bias, scales and clamps). 'x roofline' = time / "
           "max(memory floor, compute floor): where a layer is bound by multiply-add throughput rather than memory (folded layers "
           "on AVX2), 'x floor' overstates how far it is from what the machine allows, 'x roofline' does not. The memory-floor "
           "columns are as before: the target is stated against them." + _peak_note(result), "",
           "| network | batch | kernels | counter threads | folded | TV ops total ms | TV floor ms | total / floor | worst layer x floor | median layer x floor | "
           "TV compute floor ms | worst layer x roofline | median layer x roofline | "
           "DW ops total / floor | DW worst / median layer x floor | reorders ms (fused / DW net) | copy GB/s | peak GFMA/s | layer data MiB, TV / DW |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    l3 = result.get("l3_bytes")
    for c in result["cases"]:
        for kind, prof in c["layers"].items():
            ls = prof["layers"]
            tot, fl = sum(x["us"] for x in ls) / 1e3, sum(x["floor_us"] for x in ls) / 1e3
            xs = sorted(x["x_floor"] for x in ls)
            md.append(f"| {c['arch']} | {c['batch']} | {kind.removeprefix('ov-fused').strip('-') or 'f32'} | {c.get('layer_threads', result['threads'])} | "
                      f"{_folded(prof)} | {tot:.3g} | {fl:.3g} | {tot / fl:.2f} | "
                      f"{xs[-1]:.2f} | {statistics.median(xs):.2f} | {_roofline_columns(ls)} | {_dw_columns(c)} | "
                      f"{prof['reorders_us'] / 1e3:.3g} / {c['dw_reorders_us'] / 1e3:.3g} | "
                      f"{ls[0]['floor_bytes'] / ls[0]['floor_us'] / 1e3:.1f} | {_peak(c)} | {_layer_data(ls, l3)} / {_layer_data(c.get('dw_layers', []), l3)} |")
    md += ["", _l3_note(l3)]
    if result.get("sweep"):
        sw = result["sweep"]
        md += ["", "## Width sweep: TV(width a) / best DW(width b), face MobileNetV2, batch 1", "",
               "TV runs fused on OpenVINO; DW on the faster of OpenVINO and onnxruntime for its width; per width one interleaved case "
               "of TV and DW on OpenVINO, then DW on onnxruntime in a case of its own, medians; cells divide medians of different cases "
               "run back to back. onnxruntime runs here with its default settings, intra-op threads spinning between runs (its case "
               "is its own), while the paired table's ort columns run with spinning off (their cases interleave with OpenVINO's), "
               "so their onnxruntime times differ (spinning on was about 2x faster for x0.1 on the Zen 5 VM). The sweep is its own "
               "run (its command is listed above; it may be older than the paired rows) and divides by the faster DW runtime, so its "
               f"ratios differ from the paired table's{_sweep_vs_paired(result)}. "
               "Read the row of a TV width against the column of the DWConv width matched in accuracy: the paper's per-width accuracy "
               "tables are not reachable here, so no pair is marked." + _sweep_run(sw), "",
               "| TV \\ DW | " + " | ".join(f"x{_width(b)} ({sw['dw_best_s'][b] * 1e3:.3g} ms, {sw['dw_best_backend'][b]})" for b in WIDTHS) + " |",
               "|---|" + "---|" * len(WIDTHS)]
        for a, row in zip(WIDTHS, sw["matrix_tv_over_dw"]):
            md.append(f"| x{_width(a)} ({sw['tv_s'][a] * 1e3:.3g} ms) | " + " | ".join(f"{v:.2f}" for v in row) + " |")
    _common.write_results(out, name, "\n".join(md) + "\n", result)
    if result.get("sweep"):
        plot_sweep(result["sweep"], out / f"{name}_width_sweep.png")


def _precision(case: dict[str, Any]) -> str:
    """The inference precision the row's OpenVINO models computed in, read back from them ('f32'; one
    value per model where they differ), '-' for results recorded without it."""
    found = case.get("precision")
    if not found:
        return "-"
    values = set(found.values())
    return values.pop() if len(values) == 1 else ", ".join(f"{name} {p}" for name, p in found.items())


def _folded(prof: dict[str, Any]) -> str:
    """'3 of 17' TV layers with a folded 1x1 convolution, '-' for rows recorded without it."""
    return "-" if "folded" not in prof else f"{len(prof['folded'])} of {len(prof['layers'])}"


def fits_l3(rows: list[dict[str, Any]], l3_bytes: int | None) -> bool | None:
    """Whether the layers' data (their floor bytes summed: stored kernels + inputs + outputs) fits in
    the L3; None when the L3 size or the layers are unknown."""
    return None if not l3_bytes or not rows else sum(x["floor_bytes"] for x in rows) <= l3_bytes


def _layer_data(rows: list[dict[str, Any]], l3_bytes: int | None) -> str:
    """'20.8*' (MiB, * = fits in L3: floor not binding), '-' without layers."""
    if not rows:
        return "-"
    return f"{sum(x['floor_bytes'] for x in rows) / 2**20:.1f}" + ("*" if fits_l3(rows, l3_bytes) else "")


def _l3_note(l3_bytes: int | None) -> str:
    where = (f"Rows marked \\*: the layers' data (stored kernels + inputs + outputs, summed over the row's layers) fits in the "
             f"{l3_bytes / 2**20:.0f} MiB L3 (unmarked rows' data does not)"
             if l3_bytes else "No row is marked: these rows did not record the L3 size. Where the layers' data fits in the L3")
    return (f"{where}: the counters average warm runs, which then read it from cache rather than DRAM, so the floor at the DRAM "
            f"copy bandwidth is not binding there, values below 1.0x can occur, and the <= {TARGETS['layer_floor']}x target says "
            "nothing for such rows.")


def _roofline_columns(rows: list[dict[str, Any]]) -> str:
    """'compute floor ms | worst | median' layer x roofline, '- | - | -' where a row has no compute floor."""
    if not rows or any("x_roofline" not in x for x in rows):
        return "- | - | -"
    xs = sorted(x["x_roofline"] for x in rows)
    return f"{sum(x['compute_us'] for x in rows) / 1e3:.3g} | {xs[-1]:.2f} | {statistics.median(xs):.2f}"


def _peak(case: dict[str, Any]) -> str:
    """The multiply-add peak the row's compute floor used (GFMA/s), '-' without one."""
    peak = case.get("fma_peak", {})
    return f"{peak['gfma_per_s']:.0f}" if "gfma_per_s" in peak else "-"


def _peak_note(result: dict[str, Any]) -> str:
    """' No compute floor ('-') in rows ...: why' for the rows without one: the errors their runs
    recorded (fma_peak), or that they were recorded before it; '' where every row has one."""
    errors = list(dict.fromkeys(c["fma_peak"]["error"] for c in result["cases"] if "error" in c.get("fma_peak", {})))
    old = sum("fma_peak" not in c for c in result["cases"])
    notes = ([f"in rows whose run could not measure the multiply-add peak ({'; '.join(errors)})"] if errors else []) + (
        [f"in {old} rows recorded before the compute floor"] if old else [])
    return f" No compute floor ('-') {' and '.join(notes)}." if notes else ""


def _dw_columns(case: dict[str, Any]) -> str:
    """'total / floor | worst / median' of the DW layers, '- | -' for results recorded without them.
    A layer whose counter is NaN or 0 ran inside another node (OpenVINO fused it away: DeepLabV3+'s
    ASPP depthwise convolutions at batch 16 read 0 us) and is left out, counted in the cell."""
    ls = [x for x in case.get("dw_layers", []) if not math.isnan(x["us"]) and x["us"] > 0]
    missing = len(case.get("dw_layers", [])) - len(ls)
    note = f" ({missing} fused away)" if missing else ""
    if not ls:
        return f"-{note} | -"
    xs = sorted(x["x_floor"] for x in ls)
    return f"{sum(x['us'] for x in ls) / sum(x['floor_us'] for x in ls):.2f}{note} | {xs[-1]:.2f} / {statistics.median(xs):.2f}"


def _sweep_run(sw: dict[str, Any]) -> str:
    """The sweep's own machine line and build, where it recorded them (sweeps before issue 17q did not)."""
    parts = ([f"Sweep machine: {sw['machine_text']}."] if sw.get("machine_text") else []) + (
        [f"TV kernel, extension build: {sw['kernel']} {sw['extension']}."] if sw.get("extension") else [])
    return "".join(" " + p for p in parts)


def _sweep_vs_paired(result: dict[str, Any]) -> str:
    """' (x0.1: TV/DW a here, b there)' when the paired table has x0.1 at batch 1."""
    case = next((c for c in result["cases"] if c["arch"] == WIDTHS[0] and c["batch"] == 1), None)
    if case is None:
        return ""
    return f" (x0.1: TV/DW {result['sweep']['matrix_tv_over_dw'][0][0]:.2f} here, {case['ratios']['ov-fused']['median']:.2f} there)"


def plot_sweep(sw: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    widths = [float(_width(a)) for a in WIDTHS]
    ax1.plot(widths, [sw["tv_s"][a] * 1e3 for a in WIDTHS], "o-", label="TV (OpenVINO fused)")
    ax1.plot(widths, [sw["dw_best_s"][a] * 1e3 for a in WIDTHS], "s-", label="DW (best backend)")
    ax1.set(xlabel="width multiplier", ylabel="latency, ms (batch 1)", title="latency by width")
    ax1.legend()
    m = np.array(sw["matrix_tv_over_dw"])
    im = ax2.imshow(m, cmap="RdYlGn_r", vmin=0, vmax=max(2.0, float(m.max())))
    ax2.set_xticks(range(len(WIDTHS)), [f"x{_width(a)}" for a in WIDTHS])
    ax2.set_yticks(range(len(WIDTHS)), [f"x{_width(a)}" for a in WIDTHS])
    ax2.set(xlabel="DW width", ylabel="TV width", title="TV / DW latency")
    for i in range(len(WIDTHS)):
        for j in range(len(WIDTHS)):
            ax2.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=8)
    fig.colorbar(im, ax=ax2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _commands(result: dict[str, Any]) -> list[str]:
    """The commands that made the rows now in ``result`` (each case and the sweep keep theirs)."""
    rows = [*result["cases"], *([result["sweep"]] if "sweep" in result else [])]
    return list(dict.fromkeys(r["command"] for r in rows))


def _settings_differ(result: dict[str, Any], *, threads: int, machine: dict[str, Any], vers: dict[str, Any]) -> list[str]:
    """What differs between the settings in the file's header (threads, machine, library versions,
    the openvino one included) and this run's, as 'what: file -> run' items; the load is left out."""
    def still(m: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in m.items() if not k.startswith("load_average")}

    old_m, new_m = still(result.get("machine", {})), still(machine)
    old_v, new_v = result.get("versions", {}), vers
    items = [f"threads: {result.get('threads')} -> {threads}"] if result.get("threads") != threads else []
    items += [f"{k}: {old_m.get(k)} -> {new_m.get(k)}" for k in dict.fromkeys([*old_m, *new_m]) if old_m.get(k) != new_m.get(k)]
    items += [f"{k} {old_v.get(k)} -> {new_v.get(k)}" for k in dict.fromkeys([*old_v, *new_v]) if old_v.get(k) != new_v.get(k)]
    return items


def _without_cases(argv: list[str]) -> list[str]:
    """``argv`` less its --arch/--batch options (each with its value, separate or after '=')."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in ("--arch", "--batch"):
            skip = True
        elif not a.startswith(("--arch=", "--batch=")):
            out.append(a)
    return out


def main() -> int:
    p = _common.parser(__doc__.splitlines()[0], render=True)
    p.add_argument("--batch", type=int, action="append", help="batch sizes (repeatable); default 1 and 16")
    p.add_argument("--layer-runs", type=int, default=20, help="profiled runs per network for the per-layer table")
    p.add_argument("--layer-threads", type=int, help="threads of the per-layer counters and their floor's copy bandwidth (default --threads)")
    p.add_argument("--no-sweep", action="store_true", help="skip the width sweep")
    p.add_argument("--sweep-only", action="store_true", help="only the width sweep")
    p.add_argument("--case-of", type=Path, help=argparse.SUPPRESS)  # internal: one case of the run whose header this JSON holds (see below)
    # no abbreviations: a case's child gets the run's argv less --arch/--batch (_without_cases), and
    # an abbreviated '--arc' it kept would give the child several cases again
    p.allow_abbrev = False
    args = p.parse_args()
    name = args.name or "openvino_fused"
    if _common.rerender(args, name, render) is not None:
        return 0
    cases = list(dict.fromkeys((a, b) for a in args.arch or _common.ARCHS for b in args.batch or BATCHES))
    if args.case_of and len(cases) != 1:
        raise SystemExit(f"error: --case-of is one case of a run (one --arch, one --batch), got {len(cases)}")
    previous = args.out / f"{name}.json"
    result: dict[str, Any] = json.loads(previous.read_text()) if previous.exists() else {"cases": [], "commands": []}
    elapsed_before = result.get("elapsed_s", 0.0)
    machine = machine_info(device="cpu")
    from tvexport.profile.report import describe_machine

    machine_text = describe_machine({"machine": machine, "versions": versions(), "settings": {"threads": args.threads, "device": "cpu", "dtype": "float32"}})
    command = _common.command_line()
    vers = {**versions(), "openvino": __import__("openvino").__version__}
    shared: dict[str, Any] = json.loads(args.case_of.read_text()) if args.case_of else {}
    planned = {tuple(c) for c in shared.pop("planned", cases)}  # a case of a run: that run's cases
    command = shared.pop("command", command)
    if not args.sweep_only:
        # the rows share one header (threads, machine, versions): a run whose settings differ may
        # only replace all of the file's rows, never relabel those it keeps
        kept = [c for c in result["cases"] if (c["arch"], c["batch"]) not in planned]
        if kept and (diff := _settings_differ(result, threads=args.threads, machine=machine, vers=vers)):
            raise SystemExit(f"error: {previous} holds {len(kept)} rows measured with other settings ({'; '.join(diff)}), "
                             "which this run would relabel; pass --name NEW to write a file of its own, or re-run all of its rows")
    t0 = time.perf_counter()
    if args.case_of:  # one case of a run of several: that run's header (machine, bandwidth, peak)
        result.update(shared)
    # a sweep merged into a file that has paired rows keeps their machine, load and bandwidth (the
    # sweep records its own machine line and build)
    elif not (args.sweep_only and result["cases"]):
        result.update({"schema": "tvexport.bench.openvino", "threads": args.threads, "machine": machine,
                       "versions": vers, "machine_text": machine_text, "l3_bytes": l3_cache_bytes()})
        result["bandwidth"] = bandwidth_with(layer_threads(args))
    if not args.sweep_only and not args.case_of:
        result["fma_peak"] = fma_peak(layer_threads(args))
        if "error" in result["fma_peak"]:
            print(f"no compute floor: {result['fma_peak']['error']}", file=sys.stderr)
    if not args.sweep_only and not args.case_of and len(cases) > 1:
        # each (network, batch) in a process of its own, merged into this file: a process that had
        # compiled, run and released an earlier case's models timed TV / DW 2-7 % above a fresh one
        # (identical fresh processes: up to 4 %; benchmarks/openvino_process_state.py, issue 17)
        header = {k: result[k] for k in ("schema", "threads", "machine", "versions", "machine_text", "l3_bytes", "bandwidth", "fma_peak")}
        with tempfile.TemporaryDirectory() as tmp:
            shared_path = Path(tmp) / "header.json"
            shared_path.write_text(json.dumps({**header, "command": command, "planned": cases}))
            for arch, batch in cases:
                print(f"{arch} batch {batch} (a process of its own)", file=sys.stderr, flush=True)
                code = subprocess.run([sys.executable, __file__, *_without_cases(sys.argv[1:]), "--arch", arch, "--batch", str(batch),
                                       "--no-sweep", "--case-of", str(shared_path)], check=False).returncode
                if code:
                    return code
        result = json.loads(previous.read_text())
        result["elapsed_s"] = elapsed_before  # this process's time is added below (the cases' is within it)
    elif not args.sweep_only:
        for arch, batch in cases:
            print(f"{arch} batch {batch}", file=sys.stderr, flush=True)
            case = {**add_compute_floor(network_case(arch, batch, args, result["bandwidth"]["bytes_per_s"]), result["fma_peak"]), "command": command}
            result["cases"] = [c for c in result["cases"] if (c["arch"], c["batch"]) != (arch, batch)] + [case]
            result["commands"] = _commands(result)
            render(result, args.out, name)  # keep what is done if a later case fails
    if not args.no_sweep and not args.sweep_only:
        # the sweep runs in a process of its own, merged into this file. Run after the paired cases
        # in their process, its x0.1 TV network took ~2x its paired-row time (2.32 ms against 1.08;
        # alone, run after them: 1.05 ms; issue 17 stop 42, Zen 3); not the process's state, though:
        # DW on both runtimes was slower there too, the excess fading over the sweep, and a process
        # holding or having released other models times TV / DW only 2-7 % above a clean one
        # (benchmarks/openvino_process_state.py): the VM's speed drifts, and the sweep's cells divide
        # medians of cases run one after another (see width_sweep)
        render(result, args.out, name)
        print("width sweep (a process of its own)", file=sys.stderr, flush=True)
        return subprocess.run([sys.executable, __file__, *sys.argv[1:], "--sweep-only"], check=False).returncode
    if not args.no_sweep:
        print("width sweep", file=sys.stderr, flush=True)
        result["sweep"] = {**width_sweep(args), "command": command, "machine_text": machine_text}
    result["cases"].sort(key=lambda c: (_common.ARCHS.index(c["arch"]) if c["arch"] in _common.ARCHS else 99, c["batch"]))
    result["commands"] = _commands(result)
    result["elapsed_s"] = result.get("elapsed_s", 0.0) + time.perf_counter() - t0
    render(result, args.out, name)
    print(f"wrote {args.out / name}.md/.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
