"""Scratch (issue 17, b16gap47): where face MobileNetV2 x0.1's TV network spends its time at batch 16,
2 threads, against the DW network, by OpenVINO node type and by TV-layer slot, with each node's
primitive and layout from the compiled model's runtime graph (its rt_info: layerType, primitiveType,
outputLayouts). The batch-16 twin of openvino_f16b1_46_zen3_probe_scratch.py.

    python benchmarks/results/openvino_b16gap47_zen3_nodes_scratch.py RUNS BLOCK OUT.md COPY ...
    python benchmarks/results/openvino_b16gap47_zen3_nodes_scratch.py --decompose OUT.md RUN.json ...

The second form reads runs' JSON (written beside OUT.md by the first) and tabulates, per run, each
copy's counters summed by TV-layer group (the op with its expansion and the reorders before it;
the projections; the rest) and each TV copy's excess over the DW network ('dw').

COPY is one of: tv (plugin graph, float32 kernels, the 1x1 convolutions folded as the runner does by
default), tv2 (the same again: a null test), tv_f16 (float16 kernels), tv_nofold (float32 kernels,
fuse_pointwise=False), tv_t (float32 kernels, every fold through the op's Transpose to NHWC,
also after a residual Add, where the runner folds NCHW: pre_nchw never set), tvz (a probe build that writes zeros and runs no kernel:
the .patch, TVEXPORT_OV_PROBE_ZERO=1), dw, dw2 (the DW network's portable graph; dw2 a null test); COPY=LIB after a
tv name (tv=/path/lib.so) loads that extension build instead of this checkout's cached one. A COPY
ending in '/wall' is compiled without counters (its wall time is the plain one the issue's ratio
uses; needs a copy of the same network with counters for nothing: it is timed on its own).

WAIT_QUIET=S (environment): after compiling, wait up to S seconds for the 1-minute load average to drop below
QUIET_LOAD (default 1.5). One process: every copy compiled once (INFERENCE_PRECISION_HINT f32, 2 threads, PERF_COUNT on but for
the /wall ones); 20 warm-up runs each, then RUNS // BLOCK rounds of BLOCK runs per copy, the copies'
order rotated every round. Per node: the mean of the measured runs from the counters
(openvino_fused.mean_between; whole us). Wall: median of the rounds' block means.
"""

from __future__ import annotations

import collections
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import numpy as np
from openvino_fused import graphs, mean_between, node_counters, ov_closure

from tvexport.bake import random_inputs
from tvexport.models.registry import config_of
from tvexport.openvino import OpenVinoRunner
from tvexport.profile import load_subject
from tvexport.profile.machine import load_average, machine_info

BATCH = 16


def rt(op, key: str) -> str:
    info = op.get_rt_info()
    try:
        v = info[key]
    except Exception:  # noqa: BLE001
        return "?"
    return str(v.astype(str)) if hasattr(v, "astype") else str(v)


def exec_graph(runner: OpenVinoRunner) -> dict[str, dict]:
    """Per exec-graph node: type, primitive, output layout, producers (friendly names)."""
    nodes = {}
    for op in runner.compiled.get_runtime_model().get_ordered_ops():
        t = rt(op, "layerType")
        if t in ("Const", "Input", "Output", "Reshape"):
            continue
        nodes[op.get_friendly_name()] = {
            "type": t, "prim": rt(op, "primitiveType"), "layout": rt(op, "outputLayouts"),
            "inputs": [i.get_source_output().get_node().get_friendly_name() for i in op.inputs()]}
    return nodes


def through(nodes: dict, name: str) -> str:
    """The producer behind zero-cost ('_fake') reorders."""
    while name in nodes and nodes[name]["type"] == "Reorder" and name.endswith("_fake"):
        name = nodes[name]["inputs"][0]
    return name


def classify(nodes: dict) -> dict[str, str]:
    """Each node's role: tv, dw (depthwise convolution, or OpenVINO's fused 1x1+depthwise), expand
    (the 1x1 convolution feeding a depthwise one), project (the 1x1 convolution after a TV op or a
    depthwise one), reorder (a real one), fake reorder, conv-other, other (type name)."""
    role = {}
    for n, d in nodes.items():
        if d["type"] == "Reference":
            role[n] = "tv"
        elif d["type"] == "Convolution" and "_dw" in d["prim"]:
            role[n] = "dw+expand" if "dw_1x1" in d["prim"] else "dw"
        elif d["type"] == "Reorder":
            role[n] = "fake reorder" if n.endswith("_fake") else "reorder"
        else:
            role[n] = d["type"]
    for n, d in nodes.items():
        if role[n] == "Convolution":
            src = role.get(through(nodes, d["inputs"][0]), "")
            src = role.get(through(nodes, nodes[d["inputs"][0]]["inputs"][0]), "") if src == "reorder" else src
            role[n] = "project" if src in ("tv", "dw", "dw+expand") else "conv-other"
    for n, d in nodes.items():
        if role[n] in ("dw", "tv"):  # tv: where the runner left the expansion unfolded
            p = through(nodes, d["inputs"][0])
            if role.get(p) == "reorder":
                p = through(nodes, nodes[p]["inputs"][0])
            if role.get(p) == "conv-other" and "1x1" in nodes[p]["prim"]:
                role[p] = "expand"
    return role


def slots(nodes: dict, role: dict) -> list[dict[str, list[str]]]:
    """Per TV-layer slot (the k-th TV op / depthwise convolution): the nodes between the previous
    slot's projection (exclusive) and this slot's projection (inclusive), by role."""
    out: list[dict[str, list[str]]] = [collections.defaultdict(list)]
    for n in nodes:
        r = role[n]
        if r == "fake reorder":
            continue
        out[-1][r].append(n)
        if r == "project":
            out.append(collections.defaultdict(list))
    return out


def decompose(out_path: str, paths: list[str]) -> None:
    lines = ["# Scratch: face MobileNetV2 x0.1 batch 16, where the TV network's counters exceed the DW network's (issue 17, b16gap47)", "",
             f"Command: `python benchmarks/results/openvino_b16gap47_zen3_nodes_scratch.py --decompose {' '.join(sys.argv[2:])}`. "
             "us per run (counters' means, 2 threads, profiled). Rows: groups of nodes by TV-layer slot (see the runs' md files): "
             "'op' = the TV op (its folded 1x1 expansion inside it) or the DW network's expansion + depthwise convolution "
             "(features.2: OpenVINO's fused 1x1 + depthwise node), with the real Reorders before it (TV network: the 11 "
             "residual-fed TV ops' inputs, acdb -> abcd; DW network: the fused node's aBcd8b output -> acdb; the last row "
             "repeats them as a subtotal). tvz: the probe build writing zeros, no kernel.", ""]
    for path in paths:
        d = json.load(open(path))
        res = {}
        for k in d["means"]:
            m, g, role = d["means"][k], d["graphs"][k], d["roles"][k]
            sl = slots(g, role)

            def s(i: int, roles: list[str]) -> float:
                return sum(m.get(n, 0) for r in roles for n in sl[i].get(r, []))

            op = ["tv", "dw", "dw+expand", "expand", "reorder"]
            cat = {
                "input reorder + first 3x3 convolution": s(0, ["reorder", "conv-other"]),
                "features.1 op (unfolded TV / depthwise, C 8, 96x96)": s(0, ["tv", "dw"]),
                "features.2 op (folded / fused 1x1 + depthwise, stride 2) + reorders": s(1, op),
                "features.3 op (+ expansion)": s(2, op),
                "features.4-7 ops (+ expansions) + reorders": sum(s(i, op) for i in range(3, 7)),
                "features.8-17 ops (+ expansions) + reorders": sum(s(i, op) for i in range(7, 17)),
                "projection 1x1 convolutions after features.1-3": sum(s(i, ["project"]) for i in range(0, 3)),
                "projection 1x1 convolutions after features.4-17": sum(s(i, ["project"]) for i in range(3, 17)),
                "last 1x1 convolution, pool, FC": sum(m.get(n, 0) for r in ("conv-other", "Pooling", "FullyConnected") for n in sl[17].get(r, [])),
                "Transposes (run for real)": sum(v for n, v in m.items() if d["kinds"][k].get(n) == "Transpose"),
                "all nodes": sum(m.values()),
                "(subtotal in the rows above: real Reorders before the ops)": sum(s(i, ["reorder"]) for i in range(1, 17)),
            }
            res[k] = cat
        tvs = [k for k in res if k.startswith("tv") and k != "tvz"]
        lines += [f"## {os.path.basename(path)} (load average before / after {d['load'][0]} / {d['load'][-1]})", "",
                  "| group | " + " | ".join(res) + " | " + " | ".join(f"{k} - dw" for k in tvs) + " |",
                  "|---|" + "---|" * (len(res) + len(tvs))]
        total = {k: res[k]["all nodes"] - res["dw"]["all nodes"] for k in tvs}
        for c in res["dw"]:
            exc = [res[k][c] - res["dw"][c] for k in tvs]
            cells = [f"{e:.0f} ({100 * e / total[k]:.0f} %)" if c != "all nodes" and total[k] else f"{e:.0f}" for e, k in zip(exc, tvs)]
            lines.append(f"| {c} | " + " | ".join(f"{res[k][c]:.0f}" for k in res) + " | " + " | ".join(cells) + " |")
        lines.append("| ratio to dw (all nodes) | " + " | ".join(f"{res[k]['all nodes'] / res['dw']['all nodes']:.3f}" for k in res) + " |" + " |" * len(tvs))
        lines.append("")
    tmp = out_path + ".tmp"
    with open(tmp, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    os.replace(tmp, out_path)
    print("\n".join(lines))


def main() -> None:
    if sys.argv[1] == "--decompose":
        decompose(sys.argv[2], sys.argv[3:])
        return
    runs, block, out_path, specs = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4:]
    load_before = load_average()
    subject = load_subject("face_mobilenetv2_x0_1")
    tv_model, dw_model = subject.networks[0].form("baked"), subject.networks[1].form("baked")
    x = np.ascontiguousarray(random_inputs((BATCH, *config_of(tv_model).input_shape), seed=0).numpy())
    g_tv, g_dw = graphs(tv_model, BATCH, tv=True), graphs(dw_model, BATCH, tv=False)
    copies = {}
    for spec in specs:
        name, _, lib = spec.partition("=")
        base, wall_only = name.split("/")[0], name.endswith("/wall")
        kw = {"threads": 2, "profile": not wall_only}
        if base.startswith("tv"):
            graph = g_tv["plugin_f16"] if base.startswith("tv_f16") else g_tv["plugin"]
            kw["extension"] = lib or None
            if base.startswith("tv_nofold"):
                kw["fuse_pointwise"] = False
        else:
            graph = g_dw["portable"]
        if base.startswith("tv_t"):  # the fold through the op's Transpose also after a residual Add (no pre_nchw)
            import tvexport.openvino.runtime as rt_mod
            saved, rt_mod._residual = rt_mod._residual, lambda value: False
            try:
                r = OpenVinoRunner(graph, **kw)
            finally:
                rt_mod._residual = saved
        else:
            r = OpenVinoRunner(graph, **kw)
        copies[name] = (r, ov_closure(r, x))
    profiled = [k for k in copies if not k.endswith("/wall")]
    wait, quiet = float(os.environ.get("WAIT_QUIET", "0")), float(os.environ.get("QUIET_LOAD", "1.5"))
    t0 = time.monotonic()
    while wait and (load_average() or [0])[0] > quiet and time.monotonic() - t0 < wait:
        time.sleep(5)
    load_start = load_average()
    for _, f in copies.values():
        for _ in range(20):
            f()
    before = {k: node_counters(copies[k][0])[0] for k in profiled}
    wall: dict[str, list[float]] = {k: [] for k in copies}
    names = list(copies)
    for i in range(runs // block):
        order = names[i % len(names):] + names[:i % len(names)]
        if (i // len(names)) % 2:
            order.reverse()
        for k in order:
            f = copies[k][1]
            t = time.perf_counter()
            for _ in range(block):
                f()
            wall[k].append((time.perf_counter() - t) / block * 1e3)
    load_after = load_average()
    means, kinds, execs, graphs_, roles = {}, {}, {}, {}, {}
    for k in profiled:
        r = copies[k][0]
        after, kinds[k] = node_counters(r)
        execs[k] = {i.node_name: i.exec_type for i in r.request.profiling_info}
        means[k] = mean_between(before[k], 20, after, 20 + (runs // block) * block)
        graphs_[k] = exec_graph(r)
        roles[k] = classify(graphs_[k])
    lines = [f"# Scratch: face MobileNetV2 x0.1 batch {BATCH}, TV network vs DW network by node type and TV-layer slot (issue 17, b16gap47)", "",
             f"Machine: {machine_info().get('cpu', '?')}; load average before {load_before}, at the start of the timed part {load_start} (WAIT_QUIET={wait:g} s for < {quiet:g}), after {load_after}.", "",
             f"Command: `python benchmarks/results/openvino_b16gap47_zen3_nodes_scratch.py {' '.join(sys.argv[1:])}` "
             f"({(runs // block) * block} measured runs per copy, blocks of {block}). See the script's docstring.", "",
             "## Wall (median of block means, ms; profiled copies carry the counters' overhead)", "",
             "| copy | wall ms | p10 | p90 | / dw |", "|---|---|---|---|---|"]
    dw_wall = {k: np.median(v) for k, v in wall.items()}
    for k in copies:
        ref = "dw/wall" if k.endswith("/wall") and "dw/wall" in copies else "dw"
        ratio = dw_wall[k] / dw_wall[ref] if ref in dw_wall else float("nan")
        lines.append(f"| {k} | {dw_wall[k]:.3f} | {np.percentile(wall[k], 10):.3f} | {np.percentile(wall[k], 90):.3f} | {ratio:.3f} |")
    # paired per-round ratios
    pairs = [(a, b) for a, b in (("tv", "dw"), ("tvz", "dw"), ("tvz", "tv"), ("tv2", "dw"), ("tv_f16", "dw"), ("tv_nofold", "dw"), ("dw2", "dw"), ("tv2", "tv"),
                                  ("tv/wall", "dw/wall")) if a in wall and b in wall]
    if pairs:
        lines += ["", "Paired per-round ratios (median [p10-p90]):", ""]
        for a, b in pairs:
            rr = np.array(wall[a]) / np.array(wall[b])
            lines.append(f"- {a} / {b}: {np.median(rr):.3f} [{np.percentile(rr, 10):.3f}-{np.percentile(rr, 90):.3f}]")
    lines += ["", "## By node type and role (us per run, counters' means)", "",
              "Roles: tv = the TV op (Reference; folded: holds its 1x1 expansion); dw = depthwise convolution; dw+expand = "
              "OpenVINO's fused 1x1 + depthwise convolution; expand = the 1x1 convolution feeding a depthwise one; project = "
              "the 1x1 convolution after a TV op / depthwise one (residual Add fused in); reorder = a real Reorder; conv-other = "
              "the first 3x3 and last 1x1 convolution.", "",
              "| copy | all nodes | by type | by role |", "|---|---|---|---|"]
    for k in profiled:
        by_t: dict[str, float] = collections.defaultdict(float)
        by_r: dict[str, float] = collections.defaultdict(float)
        for n, v in means[k].items():
            by_t[kinds[k][n]] += v
            by_r[roles[k].get(n, kinds[k][n])] += v
        ts = ", ".join(f"{t} {v:.0f}" for t, v in sorted(by_t.items(), key=lambda kv: -kv[1]) if v > 0)
        rs = ", ".join(f"{t} {v:.0f}" for t, v in sorted(by_r.items(), key=lambda kv: -kv[1]) if v > 0)
        lines.append(f"| {k} | {sum(means[k].values()):.0f} | {ts} | {rs} |")
    lines += ["", "## Per TV-layer slot (us per run): the nodes from after the previous slot's projection to this slot's projection", ""]
    cols = [k for k in profiled if not k.endswith("2")] or profiled  # tv2, dw2: null tests
    slot_of = {k: slots(graphs_[k], roles[k]) for k in cols}
    nslots = min(len(s) for s in slot_of.values())
    roles_shown = ["reorder", "expand", "tv", "dw", "dw+expand", "project", "conv-other", "Pooling", "FullyConnected"]
    header = "| slot | " + " | ".join(f"{k}: {r}" for k in cols for r in ("reorders", "expand", "op", "project", "sum")) + " |"
    lines += [header, "|---|" + "---|" * (5 * len(cols))]
    for s in range(nslots):
        cells = []
        for k in cols:
            d = slot_of[k][s]
            m = means[k]
            re = sum(m.get(n, 0) for n in d.get("reorder", []))
            ex = sum(m.get(n, 0) for n in d.get("expand", []))
            op = sum(m.get(n, 0) for r in ("tv", "dw", "dw+expand") for n in d.get(r, []))
            pr = sum(m.get(n, 0) for r in ("project",) for n in d.get(r, []))
            tot = sum(m.get(n, 0) for r in roles_shown for n in d.get(r, []))
            cells += [f"{re:.0f}", f"{ex:.0f}", f"{op:.0f}", f"{pr:.0f}", f"{tot:.0f}"]
        opname = (slot_of[cols[0]][s].get("tv") or slot_of[cols[0]][s].get("dw") or slot_of[cols[0]][s].get("dw+expand") or ["-"])[0]
        lines.append(f"| {s} {opname} | " + " | ".join(cells) + " |")
    lines += ["", "## Exec graph (the non-constant nodes): node | type | primitive (counters' exec_type) | output layout | us, per copy", ""]
    for k in profiled:
        lines += [f"<details><summary>{k}</summary>", "", "| node | role | type | exec_type | layout | inputs | us |", "|---|---|---|---|---|---|---|"]
        for n, d in graphs_[k].items():
            ins = ", ".join(i[:40] for i in d["inputs"] if i in graphs_[k])
            lines.append(f"| {n[:64]} | {roles[k][n]} | {d['type']} | {execs[k].get(n, d['prim'])} | {d['layout']} | {ins} | {means[k].get(n, 0):.1f} |")
        lines += ["", "</details>", ""]
    with open(out_path[:-3] + ".json" + ".tmp", "w") as fh:
        json.dump({"argv": sys.argv[1:], "load": [load_before, load_after], "wall": wall, "means": means, "kinds": kinds,
                   "execs": execs, "graphs": graphs_, "roles": roles}, fh)
    os.replace(out_path[:-3] + ".json" + ".tmp", out_path[:-3] + ".json")
    tmp = out_path + ".tmp"
    with open(tmp, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    os.replace(tmp, out_path)
    print("\n".join(lines[: lines.index("## Exec graph (the non-constant nodes): node | type | primitive (counters' exec_type) | output layout | us, per copy")]))


if __name__ == "__main__":
    main()
