"""OpenVINO: is a network timed slower in a process that holds (and has run) other compiled models?

    python benchmarks/openvino_process_state.py                       # face MobileNetV2 x0.1, batch 1
    python benchmarks/openvino_process_state.py --state clean --state layers --state 'layers@ENABLE_CPU_PINNING=NO'
    python benchmarks/openvino_process_state.py --render benchmarks/results/openvino_process_state_zen3_x0_1_b1.json --name openvino_process_state_zen3_x0_1_b1

One child process per state, all alive at once; each compiles the fused TV network (plugin graph,
float32 kernels) and its DWConv network on OpenVINO (as benchmarks/openvino_fused.py does), and
before them, according to its state, the other models a benchmark process holds:
  clean    nothing else (the reference: the first state given is the one the others divide by)
  paired   the other models of openvino_fused.py's (network, batch) row, which it held while timing
           each pair until issue 17 (procstate43): the TV network with float16 and int8 kernels and
           the portable graph on OpenVINO, the portable TV and the DW graph on onnxruntime
           (intra-op spinning off, as there), each compiled and run
  layers   paired + the per-layer counter copies (PERF_COUNT, --layer-threads threads) of the
           three TV variants and of the DW network, each compiled and run, as layer_profile does
  many     layers, built once more at --many-batch: two (network, batch) cases' worth of models
  freed    the layers set of --freed-arch at --freed-batch compiled, run and deleted (garbage
           collected) before TV and DW are compiled: what a case leaves behind for the next one
A state may carry OpenVINO properties for every model its child compiles ('STATE@KEY=VALUE,...',
e.g. 'clean@ENABLE_CPU_PINNING=NO'). The parent runs rounds: each child in turn (order rotated,
reversed every other round) runs --runs inferences of TV and of DW, alternating, while the others
wait on their pipe; a round's sample is the median of each network's runs. Per state: medians
[p10-p90] of the rounds' samples, the per-round paired ratio against the first state, and what the
processes' threads did (from /proc: each thread's CPU time and allowed CPUs): threads busy in the
child's own block, CPU its threads used while the other children ran (a thread that spins after a
run would show here), threads in the process, and the distinct CPU sets its threads were pinned to
after its last block. Each round also records the other processes' share of the CPUs
(_timing.Foreign).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common
from _timing import _HZ, _NCPU, _cpu_seconds, _own_seconds

# tvexport (and torch) are imported where used: bad options are refused in a fraction of a second

STATES = ("clean", "paired", "layers", "many", "freed")
SCHEMA = "tvexport.bench.openvino_process_state"  # of the results JSON


# --------------------------------------------------------------------------------------------
# /proc
# --------------------------------------------------------------------------------------------

def thread_cpu(pid: int | str = "self") -> dict[int, float]:
    """CPU seconds of each thread of process ``pid``: /proc/<pid>/task/*/schedstat (time on a CPU,
    nanoseconds), else the stat file's user + system ticks."""
    out = {}
    root = Path(f"/proc/{pid}/task")
    for task in root.iterdir() if root.exists() else ():
        try:
            out[int(task.name)] = int((task / "schedstat").read_text().split()[0]) / 1e9
            continue
        except (OSError, ValueError, IndexError):
            pass
        try:
            text = (task / "stat").read_text()
        except OSError:
            continue  # the thread ended
        fields = text[text.rindex(")") + 2:].split()
        out[int(task.name)] = (int(fields[11]) + int(fields[12])) / _HZ
    return out


def thread_affinities(pid: int | str = "self") -> dict[int, str]:
    """Each thread's allowed CPUs as a list string ('0-1', '1'), from /proc/<pid>/task/*/status."""
    out = {}
    root = Path(f"/proc/{pid}/task")
    for task in root.iterdir() if root.exists() else ():
        try:
            status = (task / "status").read_text()
        except OSError:
            continue
        out[int(task.name)] = next((ln.split(":", 1)[1].strip() for ln in status.splitlines() if ln.startswith("Cpus_allowed_list")), "?")
    return out


def rss_mib(pid: int | str = "self") -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(ln.split()[1] for ln in status.splitlines() if ln.startswith("VmRSS"))) / 1024


# --------------------------------------------------------------------------------------------
# Child: one state
# --------------------------------------------------------------------------------------------

def parse_state(spec: str) -> tuple[str, dict[str, str]]:
    """'layers@ENABLE_CPU_PINNING=NO,NUM_STREAMS=1' -> ('layers', {'ENABLE_CPU_PINNING': 'NO', ...})."""
    state, _, props = spec.partition("@")
    if state not in STATES:
        raise SystemExit(f"error: --state {spec!r}: unknown state {state!r}; choose one of {', '.join(STATES)} (optionally @KEY=VALUE,...)")
    items = [p for p in props.split(",") if p]
    if any("=" not in p for p in items):
        raise SystemExit(f"error: --state {spec!r}: properties are KEY=VALUE, comma-separated")
    return state, dict(p.split("=", 1) for p in items)


def _with_properties(props: dict[str, str]) -> None:
    """Add ``props`` to the config of every compile_model call in this process."""
    if not props:
        return
    import openvino as ov

    compile_model = ov.Core.compile_model

    def patched(self: Any, model: Any, device: Any = None, config: Any = None, **kw: Any) -> Any:
        return compile_model(self, model, device, {**(config or {}), **props}, **kw)

    ov.Core.compile_model = patched  # type: ignore[method-assign]
    import openvino.opset13 as ops

    x = ops.parameter([1], ov.Type.f32)  # a property OpenVINO refuses fails here, before any export
    ov.Core().compile_model(ov.Model([ops.relu(x)], [x]), "CPU")


def child(spec: str, *, arch: str, batch: int, many_batch: int, freed: tuple[str, int], threads: int, layer_threads: int) -> int:
    """Build ``spec``'s state, then serve 'run N' lines on stdin with one JSON line each."""
    import numpy as np
    from openvino_fused import graphs, ort_closure, ov_closure

    from tvexport.bake import random_inputs
    from tvexport.export.onnx import OrtRunner
    from tvexport.models.registry import config_of
    from tvexport.openvino import OpenVinoRunner
    from tvexport.profile import load_subject

    state, props = parse_state(spec)
    _with_properties(props)
    held: list[Any] = []  # every runner stays alive until the child exits

    @functools.lru_cache(maxsize=None)  # the held models and the timed pair share one export
    def build(name: str, b: int) -> tuple[Any, Any, Any]:
        subject = load_subject(name)
        tv_model, dw_model = subject.networks[0].form("baked"), subject.networks[1].form("baked")
        assert tv_model is not None and dw_model is not None
        x = np.ascontiguousarray(random_inputs((b, *config_of(tv_model).input_shape), seed=0).numpy())
        return x, graphs(tv_model, b, tv=True), graphs(dw_model, b, tv=False)

    def others(name: str, b: int, *, layers: bool) -> None:
        x, g_tv, g_dw = build(name, b)
        fns = []
        for key in ("plugin_f16", "plugin_int8", "portable"):
            held.append(r := OpenVinoRunner(g_tv[key], threads=threads))
            fns.append(ov_closure(r, x))
        for what, g in (("tv", g_tv["portable"]), ("dw", g_dw["portable"])):
            held.append(o := OrtRunner(g, what=what, threads=threads, spin=False))
            fns.append(ort_closure(o, x))
        if layers:
            for g in (g_tv["plugin"], g_tv["plugin_f16"], g_tv["plugin_int8"], g_dw["portable"]):
                held.append(r := OpenVinoRunner(g, threads=layer_threads, profile=True))
                fns.append(ov_closure(r, x))
        for fn in fns:
            for _ in range(30):
                fn()

    if state == "freed":
        others(*freed, layers=True)
        held.clear()
        gc.collect()
    if state == "many":
        others(arch, many_batch, layers=True)
    if state in ("paired", "layers", "many"):
        others(arch, batch, layers=state != "paired")
    x, g_tv, g_dw = build(arch, batch)
    nets = {"tv": ov_closure(tv := OpenVinoRunner(g_tv["plugin"], threads=threads), x),
            "dw": ov_closure(OpenVinoRunner(g_dw["portable"], threads=threads), x)}
    for fn in nets.values():
        for _ in range(10):
            fn()
    print(json.dumps({"ready": True, "kernel": tv.kernel, "models": len(held) + 2, "threads": len(thread_cpu())}), flush=True)
    flip = 0
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] != "run":
            break
        runs = int(cmd[1])
        times: dict[str, list[float]] = {name: [] for name in nets}
        before = thread_cpu()
        for i in range(runs):
            for name in (("tv", "dw") if (i + flip) % 2 == 0 else ("dw", "tv")):
                t = time.perf_counter()
                nets[name]()
                times[name].append(time.perf_counter() - t)
        flip += 1
        after = thread_cpu()
        busy = sorted((after[k] - before.get(k, 0.0) for k in after), reverse=True)
        print(json.dumps({"times": times, "busy_s": [b for b in busy if b > 0], "threads": len(after),
                          "affinities": sorted(set(thread_affinities().values())), "rss_mib": rss_mib()}), flush=True)
    return 0


# --------------------------------------------------------------------------------------------
# Parent
# --------------------------------------------------------------------------------------------

def _summary(values: list[float]) -> dict[str, float]:
    from tvexport.profile.stats import percentile

    return {"median": statistics.median(values), "p10": percentile(values, 10), "p90": percentile(values, 90), "n": len(values)}


def _reply(spec: str, p: subprocess.Popen[str], log: Any) -> dict[str, Any]:
    """A child's JSON line for its block, or one line saying why it has none (it exited)."""
    assert p.stdout is not None
    line = p.stdout.readline()
    if line:
        return json.loads(line)
    code = p.wait()
    log.seek(0)
    why = [ln for ln in log.read().splitlines() if ln.strip()]
    raise SystemExit(f"error: the child for state {spec!r} exited ({code}) during the rounds: {why[-1] if why else 'no message'}")


def measure(args: Any, specs: list[str]) -> dict[str, Any]:
    procs: dict[str, subprocess.Popen[str]] = {}
    logs: dict[str, Any] = {}  # each child's stderr
    ready: dict[str, Any] = {}
    try:
        for spec in specs:  # the children build their states at once (not timed)
            print(f"  building {spec}", file=sys.stderr, flush=True)
            cmd = [sys.executable, __file__, "--child", spec, "--arch", args.arch[0], "--threads", str(args.threads),
                   "--batch", str(args.batch), "--many-batch", str(args.many_batch),
                   "--freed-arch", args.freed_arch, "--freed-batch", str(args.freed_batch),
                   "--layer-threads", str(args.layer_threads)]
            logs[spec] = log = tempfile.TemporaryFile("w+")
            procs[spec] = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, bufsize=1)
        for spec, p in procs.items():
            assert p.stdout is not None
            line = p.stdout.readline()
            if not line:
                code = p.wait()
                logs[spec].seek(0)
                why = [ln for ln in logs[spec].read().splitlines() if ln.strip()]
                raise SystemExit(f"error: the child for state {spec!r} exited ({code}) before it was ready: {why[-1] if why else 'no message'}")
            ready[spec] = json.loads(line)
        samples: dict[str, dict[str, list[float]]] = {s: {"tv": [], "dw": [], "tv_over_dw": []} for s in specs}
        own: dict[str, list[dict[str, Any]]] = {s: [] for s in specs}
        idle: dict[str, list[float]] = {s: [] for s in specs}  # CPU s of each child while the others ran, per round
        foreign, steal = [], []
        for rnd in range(args.rounds):
            order = specs[rnd % len(specs):] + specs[:rnd % len(specs)]
            if rnd % 2:
                order.reverse()
            idle_round = dict.fromkeys(specs, 0.0)
            machine0, t0 = _cpu_seconds(), time.perf_counter()
            mine0 = _own_seconds() + sum(sum(thread_cpu(q.pid).values()) for q in procs.values())
            for spec in order:
                p = procs[spec]
                assert p.stdin is not None and p.stdout is not None
                cpu0 = {s: sum(thread_cpu(q.pid).values()) for s, q in procs.items() if s != spec}
                p.stdin.write(f"run {args.runs}\n")
                reply = _reply(spec, p, logs[spec])
                for s, c in cpu0.items():
                    idle_round[s] += sum(thread_cpu(procs[s].pid).values()) - c
                tv, dw = (statistics.median(reply["times"][n]) for n in ("tv", "dw"))
                samples[spec]["tv"].append(tv)
                samples[spec]["dw"].append(dw)
                samples[spec]["tv_over_dw"].append(statistics.median(a / b for a, b in zip(reply["times"]["tv"], reply["times"]["dw"])))
                own[spec].append({k: reply[k] for k in ("busy_s", "threads", "affinities", "rss_mib")})
            machine1, wall = _cpu_seconds(), time.perf_counter() - t0
            busy, stolen = machine1[0] - machine0[0], machine1[1] - machine0[1]
            mine = _own_seconds() + sum(sum(thread_cpu(q.pid).values()) for q in procs.values()) - mine0
            foreign.append(max(0.0, busy - mine) / (wall * _NCPU))
            steal.append(stolen / (wall * _NCPU))
            for s in specs:
                idle[s].append(idle_round[s])
    finally:
        for p in procs.values():
            if p.poll() is None and p.stdin is not None:
                with contextlib.suppress(OSError):  # it may die meanwhile: keep the first error
                    p.stdin.write("quit\n")
                    p.stdin.close()
        for p in procs.values():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        for log in logs.values():
            log.close()
    ref = specs[0]
    states = {}
    for spec in specs:
        s = samples[spec]
        last = own[spec][-1]
        states[spec] = {
            "models": ready[spec]["models"], "kernel": ready[spec]["kernel"],
            "tv_s": _summary(s["tv"]), "dw_s": _summary(s["dw"]), "tv_over_dw": _summary(s["tv_over_dw"]),
            "tv_vs_ref": _summary([a / b for a, b in zip(s["tv"], samples[ref]["tv"])]),
            "dw_vs_ref": _summary([a / b for a, b in zip(s["dw"], samples[ref]["dw"])]),
            # threads that used > 5 % of the block's wall time, per round
            "busy_threads": _summary([sum(b > 0.05 * (x * args.runs) for b in o["busy_s"])
                                      for o, x in zip(own[spec], (a + b for a, b in zip(s["tv"], s["dw"])))]),
            "own_cpu_per_wall": _summary([sum(o["busy_s"]) / (args.runs * (a + b)) for o, a, b in zip(own[spec], s["tv"], s["dw"])]),
            "idle_cpu_s": _summary(idle[spec]), "threads": last["threads"], "affinities": last["affinities"], "rss_mib": last["rss_mib"],
        }
    return {"reference": ref, "states": states, "foreign": _summary(foreign), "steal": _summary(steal)}


def render(result: dict[str, Any], out: Path, name: str) -> None:
    def ms(d: dict[str, float]) -> str:
        return f"{d['median'] * 1e3:.3f} [{d['p10'] * 1e3:.3f}-{d['p90'] * 1e3:.3f}]"

    def r(d: dict[str, float]) -> str:
        return f"{d['median']:.2f} [{d['p10']:.2f}-{d['p90']:.2f}]"

    m = result["measure"]
    md = ["# OpenVINO: a network timed in processes that hold other compiled models", "",
          f"Machine: {result['machine_text']}.", "",
          f"Command: `{result['command']}`. OpenVINO {result['versions'].get('openvino', '?')}, CPU plugin, INFERENCE_PRECISION_HINT "
          f"f32, {result['threads']} threads ({result['layer_threads']} for the counter copies); {result['arch']} at batch "
          f"{result['batch']}, TV = fused plugin graph (float32 kernels), DW = the DWConv network on OpenVINO. One child process per "
          f"state, all alive at once; {result['rounds']} rounds, each child in turn runs {result['runs']} x (TV, DW) alternating while "
          "the others wait; a round's sample is the median of its runs. Ratios 'vs reference' are per-round paired against the first "
          f"state. States (benchmarks/openvino_process_state.py's docstring): {_states_text(result)}. Per round, other processes' share of the CPUs (busy less this script's processes): median {m['foreign']['median']:.2f} "
          f"[{m['foreign']['p10']:.2f}-{m['foreign']['p90']:.2f}]; stolen by the hypervisor: {m['steal']['median']:.3f} "
          f"[{m['steal']['p10']:.3f}-{m['steal']['p90']:.3f}].", "",
          "| state | models held | TV ms | DW ms | TV / DW | TV vs reference | DW vs reference | busy threads in its block | own CPU / wall in its block | "
          "CPU s while others ran (per round) | threads | CPU sets of its threads after its last block | RSS MiB |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for spec, s in m["states"].items():
        md.append(f"| {spec} | {s['models']} | {ms(s['tv_s'])} | {ms(s['dw_s'])} | {r(s['tv_over_dw'])} | {r(s['tv_vs_ref'])} | "
                  f"{r(s['dw_vs_ref'])} | {s['busy_threads']['median']:g} | {s['own_cpu_per_wall']['median']:.2f} | "
                  f"{s['idle_cpu_s']['median']:.3f} | {s['threads']} | {' / '.join(s['affinities'])} | {s['rss_mib']:.0f} |")
    md.append("")
    _common.write_results(out, name, "\n".join(md) + "\n", result)


def _states_text(result: dict[str, Any]) -> str:
    specs = {spec.partition("@")[0] for spec in result["measure"]["states"]}
    texts = {"clean": "clean = TV and DW only",
             "paired": "paired = + openvino_fused.py's other models of the row (3 OpenVINO, 2 onnxruntime), run",
             "layers": f"layers = paired + the 4 counter copies ({result['layer_threads']} thread), run",
             "many": f"many = layers + the same set at batch {result.get('many_batch', '?')}",
             "freed": "freed = the layers set of {} at batch {} compiled, run and released first".format(
                 result.get("freed", {}).get("arch", "?"), result.get("freed", {}).get("batch", "?"))}
    return "; ".join(texts[s] for s in STATES if s in specs) + "; @KEY=VALUE: OpenVINO properties of every model of the child"


def main() -> int:
    p = _common.parser(__doc__.splitlines()[0], render=True, timing=False)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--many-batch", type=int, default=16, help="the second batch of the 'many' state")
    p.add_argument("--freed-arch", default="face_mobilenetv2_x1_0", help="the network of the 'freed' state")
    p.add_argument("--freed-batch", type=int, default=16, help="the batch of the 'freed' state")
    p.add_argument("--layer-threads", type=int, default=1, help="threads of the counter copies (openvino_fused.py --layer-threads)")
    p.add_argument("--state", action="append", help="STATE[@KEY=VALUE,...] (repeatable; the first is the reference); default: each state once")
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--runs", type=int, default=20, help="(TV, DW) pairs per child per round")
    p.add_argument("--child", help=argparse_hidden())
    args = p.parse_args()
    if args.child:
        from tvexport.errors import TvexportError

        try:
            return child(args.child, arch=args.arch[0], batch=args.batch, many_batch=args.many_batch, freed=(args.freed_arch, args.freed_batch),
                         threads=args.threads, layer_threads=args.layer_threads)
        except TvexportError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
    name = args.name or "openvino_process_state"
    if _common.rerender(args, name, render, schema=SCHEMA) is not None:
        return 0
    specs = args.state or list(STATES)
    for spec in specs:
        parse_state(spec)
    if len(set(specs)) != len(specs):
        raise SystemExit(f"error: --state given twice: {specs}")
    if args.quick:
        args.rounds, args.runs = 2, 2
    if args.rounds < 2 or args.runs < 1:
        raise SystemExit("error: --rounds must be >= 2 and --runs >= 1")
    arch = (args.arch or ["face_mobilenetv2_x0_1"])[0]
    args.arch = [arch]
    from tvexport.profile.machine import load_average, machine_info, versions
    from tvexport.profile.report import describe_machine

    machine = machine_info(device="cpu")
    vers = {**versions(), "openvino": __import__("openvino").__version__}
    result: dict[str, Any] = {"schema": SCHEMA, "arch": arch, "batch": args.batch, "threads": args.threads,
                              "layer_threads": args.layer_threads, "many_batch": args.many_batch,
                              "freed": {"arch": args.freed_arch, "batch": args.freed_batch}, "rounds": args.rounds, "runs": args.runs, "machine": machine,
                              "versions": vers, "command": _common.command_line(),
                              "machine_text": describe_machine({"machine": machine, "versions": vers,
                                                                "settings": {"threads": args.threads, "device": "cpu", "dtype": "float32"}})}
    _common.wait_quiet(args)
    load = load_average()
    t0 = time.perf_counter()
    result["measure"] = measure(args, specs)
    result["load_average"] = [load, load_average()]
    result["elapsed_s"] = time.perf_counter() - t0
    render(result, args.out, name)
    print(f"wrote {args.out / name}.md/.json", file=sys.stderr)
    return 0


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    raise SystemExit(main())
