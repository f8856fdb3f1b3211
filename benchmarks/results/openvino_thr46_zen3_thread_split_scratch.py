"""Scratch (issue 17, thr46): are the two threads' shares of each TV op balanced? Face
MobileNetV2 x0.1, batch 1, 2 threads, float16 and int8 kernels, with a probe build of the
extension that times each thread's kernel call per op
(benchmarks/results/openvino_thr46_zen3_thread_split_scratch.patch, built with
CXXFLAGS=-DTVX_THR_PROBE; its outputs are main's, only the timing is added).

    python benchmarks/results/openvino_thr46_zen3_thread_split_scratch.py PROBE_LIB RUNS PROCS OUT.md

PROCS child processes one after the other; each compiles the float16 and int8 plugin graphs
(with PROBE_LIB) and the DW network on OpenVINO (2 threads, no counters), runs each 50 times
(not counted: TVX_THR_PROBE_SKIP=50), then RUNS runs of each in blocks of 20, the order reversed
every other block, and dumps the probe's sums at exit. Per op and call: fork -> join (the
calling thread's clock), each thread's kernel call, the gap between the two threads' ends (the
earlier one's wait at the join), the calling thread's and the other thread's kernel time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))


def child(lib: str, runs: int, wall_out: str) -> None:
    import numpy as np
    from openvino_fused import graphs, ov_closure

    from tvexport.bake import random_inputs
    from tvexport.models.registry import config_of
    from tvexport.openvino import OpenVinoRunner
    from tvexport.profile import load_subject

    subject = load_subject("face_mobilenetv2_x0_1")
    tv_model, dw_model = subject.networks[0].form("baked"), subject.networks[1].form("baked")
    x = np.ascontiguousarray(random_inputs((1, *config_of(tv_model).input_shape), seed=0).numpy())
    g_tv, g_dw = graphs(tv_model, 1, tv=True), graphs(dw_model, 1, tv=False)
    fns = {}
    for dt in ("f16", "int8"):
        r = OpenVinoRunner(g_tv[f"plugin_{dt}"], threads=2, extension=lib)
        fns[dt] = (r, ov_closure(r, x))
    r = OpenVinoRunner(g_dw["portable"], threads=2)
    fns["dw"] = (r, ov_closure(r, x))
    for _, f in fns.values():
        for _ in range(50):
            f()
    wall: dict[str, list[float]] = {k: [] for k in fns}
    for i in range(runs // 20):
        items = list(fns.items())
        if i % 2:
            items.reverse()
        for k, (_, f) in items:
            t = time.perf_counter()
            for _ in range(20):
                f()
            wall[k].append((time.perf_counter() - t) / 20 * 1e3)
    with open(wall_out, "w") as fh:
        json.dump({k: float(np.median(v)) for k, v in wall.items()}, fh)


def main() -> None:
    if sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), sys.argv[4])
        return
    from tvexport.profile.machine import load_average, machine_info

    lib, runs, procs, out_path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    load_before = load_average()
    results = []
    for p in range(procs):
        probe, wall = f"{out_path}.p{p}.jsonl", f"{out_path}.p{p}.wall.json"
        env = dict(os.environ, TVX_THR_PROBE=probe, TVX_THR_PROBE_SKIP="50")
        subprocess.run([sys.executable, __file__, "--child", lib, str(runs), wall], env=env, check=True)
        with open(probe) as fh:
            ops = [json.loads(line) for line in fh if line.strip()]
        with open(wall) as fh:
            results.append((ops, json.load(fh)))
        os.remove(probe)
        os.remove(wall)
    dtypes = {1: "float16", 2: "int8"}
    lines = ["# Scratch: the two threads' shares of each TV op, face MobileNetV2 x0.1 batch 1, 2 threads (issue 17, thr46)", "",
             f"Machine: {machine_info().get('cpu', '?')}; load average before {load_before}, after {load_average()}.", "",
             f"Command: `python benchmarks/results/openvino_thr46_zen3_thread_split_scratch.py {' '.join(sys.argv[1:])}` "
             f"({runs} counted runs per network and process, {procs} processes). See the script's docstring.", "",
             "Per process, summed over the 17 TV ops (us per run): fork->join, thread 0 / thread 1 kernel, calling / other "
             "thread kernel, the earlier thread's wait at the join; calls with the caller >1.1x the other / the other >1.1x "
             "the caller; calls with both threads on one CPU; which ithr the calling thread ran (0 / 1); wall ms (median of block means).", "",
             "| proc | dtype | fork->join | t0 | t1 | caller | other | caller/other | join wait | caller slow % | other slow % | same cpu % | caller ran ithr0 % | wall ms (tv / dw) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for p, (ops, wall) in enumerate(results):
        for wt, name in dtypes.items():
            sel = [o for o in ops if o["w_type"] == wt]
            sel = [o for o in sel if o["calls"]]
            if not sel:
                continue
            n = sel[0]["calls"]
            s = {k: sum(o[k] for o in sel) / n for k in ("total", "kern0", "kern1", "caller_kern", "other_kern", "join_wait")}
            calls = sum(o["calls"] for o in sel)
            pct = {k: 100 * sum(o[k] for o in sel) / calls for k in ("caller_slow", "other_slow", "same_cpu", "caller_is0")}
            wk = "f16" if wt == 1 else "int8"
            lines.append(f"| {p} | {name} | {s['total']:.1f} | {s['kern0']:.1f} | {s['kern1']:.1f} | {s['caller_kern']:.1f} | "
                         f"{s['other_kern']:.1f} | {s['caller_kern'] / s['other_kern']:.3f} | {s['join_wait']:.1f} | "
                         f"{pct['caller_slow']:.0f} | {pct['other_slow']:.0f} | {pct['same_cpu']:.0f} | {pct['caller_is0']:.0f} | "
                         f"{wall[wk]:.3f} / {wall['dw']:.3f} |")
    lines += ["", "Per TV op, means over the processes of the per-call means (us): rows per thread (ithr 0 / 1), kernel bytes, "
              "fork->join, thread 0 / 1 kernel, their ratio, calling / other thread kernel, their ratio (min-max over the "
              "processes), the earlier thread's wait at the join, each thread's start after the fork, the join's tail after the later end.", ""]
    for wt, name in dtypes.items():
        lines += [f"## {name}", "",
                  "| op | rows | stride | kernel KiB | fork->join | t0 | t1 | t0/t1 | caller | other | caller/other (min-max) | join wait | start t0 / t1 | tail |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        per = [[o for o in ops if o["w_type"] == wt and o["calls"]] for ops, _ in results]
        for i in range(len(per[0])):
            os_ = [pp[i] for pp in per]
            o0 = os_[0]

            def m(k: str) -> float:
                return sum(o[k] / o["calls"] for o in os_) / len(os_)
            ratios = [o["caller_kern"] / o["other_kern"] for o in os_]
            lines.append(f"| {o0['name']} | {o0['rows0']} / {o0['rows1']} | {o0['stride']} | {o0['wbytes'] / 1024:.0f} | "
                         f"{m('total'):.1f} | {m('kern0'):.1f} | {m('kern1'):.1f} | {m('kern0') / m('kern1'):.3f} | "
                         f"{m('caller_kern'):.1f} | {m('other_kern'):.1f} | {m('caller_kern') / m('other_kern'):.3f} "
                         f"({min(ratios):.2f}-{max(ratios):.2f}) | {m('join_wait'):.1f} | {m('start0'):.1f} / {m('start1'):.1f} | {m('tail'):.1f} |")
        lines.append("")
    tmp = out_path + ".tmp"
    with open(tmp, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    os.replace(tmp, out_path)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
