"""Which standard-ONNX decomposition of a TV layer runs fastest on onnxruntime CPU?

Measures, in one run and with a fixed thread count (default 2; onnxruntime sessions without
spinning threads, as everywhere in the project: interleaved sessions' spinning threads slow each
other, benchmarks/results/ort_spinning.md):

1. streaming bandwidth: numpy copy (1 thread) and an onnxruntime ``Add(x, 0)`` graph at several
   sizes ((read + write bytes) / time): the memory floor of a layer is
   (kernel + bias + input + output bytes) / bandwidth at that working-set size;
2. every TV layer geometry of the chosen networks as a one-layer graph, for each decomposition
   in ``tvexport.export._onnx_tv.DECOMPOSITIONS``, batch 1 and 16: median and p90 latency of
   interleaved rounds (methods alternate, so machine noise hits them alike), against the floor;
3. whole networks exported with each decomposition (portable graph, onnxsim not needed: it leaves
   these graphs unchanged), batch 1 and 16, interleaved the same way.

Weights are random (latency does not depend on values); the generators are small because only
the baked kernels' geometry matters. Usage::

    python benchmarks/onnx_decompositions.py                    # full run, writes results/onnx_decompositions.md
    python benchmarks/onnx_decompositions.py --quick            # a few layers, short budgets
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402
from onnx import helper, numpy_helper  # noqa: E402

from tvexport.bake import bake_model, random_inputs  # noqa: E402
from tvexport.export._onnx_tv import DECOMPOSITIONS, layer_model  # noqa: E402
from tvexport.export.onnx import _session  # noqa: E402
from tvexport.models import TVSettings, create_model  # noqa: E402
from tvexport.testing import randomize_  # noqa: E402

BENCH_TV = TVSettings(inter_chans=8, inter_layers=1)  # baked kernel shapes do not depend on the generator size
DEFAULT_ARCHS = ("face_mobilenetv2_x1_0", "face_shufflenetv2_x1_0", "deeplabv3plus_mobilenetv2")


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Stats:
    median_ms: float
    p10_ms: float
    p90_ms: float
    n: int

    @classmethod
    def of(cls, seconds: list[float]) -> Stats:
        ms = np.asarray(seconds) * 1e3
        return cls(float(np.median(ms)), float(np.percentile(ms, 10)), float(np.percentile(ms, 90)), len(ms))


def session(model: onnx.ModelProto | str, threads: int) -> ort.InferenceSession:
    """A timing session from the project's helper: ``threads`` intra-op threads, one inter-op,
    spinning off (sessions timed side by side otherwise slow each other: benchmarks/results/ort_spinning.md)."""
    return _session(model, threads=threads, spin=False, what="the benchmark graph")


def interleaved(calls: dict[str, Callable[[], Any]], *, budget_s: float, min_rounds: int = 5, warmup: int = 2, block_s: float = 0.05, seed: int = 0) -> dict[str, Stats]:
    """Time the calls side by side: rounds in shuffled order, each call a block of back-to-back
    runs (~``block_s``), until the budget is spent. The first run of a block is not counted (it
    follows another session's runs; each session owns a thread pool)."""
    per_call = {}
    for k, fn in calls.items():
        t0 = time.perf_counter()
        for _ in range(warmup):
            fn()
        per_call[k] = (time.perf_counter() - t0) / warmup
    block = {k: 1 + max(1, min(20, round(block_s / max(t, 1e-6)))) for k, t in per_call.items()}
    rng = random.Random(seed)
    times: dict[str, list[float]] = {k: [] for k in calls}
    order = list(calls)
    deadline = time.perf_counter() + budget_s
    rounds = 0
    while (rounds < min_rounds or time.perf_counter() < deadline) and rounds < 100:
        rng.shuffle(order)
        for k in order:
            for i in range(block[k]):
                t0 = time.perf_counter()
                calls[k]()
                if i:
                    times[k].append(time.perf_counter() - t0)
        rounds += 1
    return {k: Stats.of(v) for k, v in times.items()}


# --------------------------------------------------------------------------------------------
# Bandwidth
# --------------------------------------------------------------------------------------------

def _add_zero_graph(numel: int) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "zero"], ["y"])], "stream",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [numel])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [numel])],
        [numpy_helper.from_array(np.zeros((1,), np.float32), "zero")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def measure_bandwidth(sizes_mib: Iterable[float], threads: int, budget_s: float) -> list[dict[str, float]]:
    """GB/s of (read + write) for numpy copy (1 thread) and onnxruntime Add(x, 0) (``threads``)."""
    rows = []
    for mib in sizes_mib:
        numel = int(mib * (1 << 20)) // 4
        a = np.random.default_rng(0).random(numel, dtype=np.float32)
        b = np.empty_like(a)
        sess = session(_add_zero_graph(numel), threads)
        stats = interleaved({"numpy": lambda: np.copyto(b, a), "ort": lambda: sess.run(None, {"x": a})}, budget_s=budget_s)
        traffic = 2 * a.nbytes
        rows.append({"mib": mib, "numpy_gbs": traffic / stats["numpy"].median_ms / 1e6, "ort_gbs": traffic / stats["ort"].median_ms / 1e6})
    return rows


def bandwidth_at(rows: list[dict[str, float]], nbytes: int, key: str = "ort_gbs") -> float:
    """Bandwidth measured at the size closest (log scale) to a working set of ``nbytes`` (traffic)."""
    target = np.log(max(nbytes / 2, 1) / (1 << 20))  # traffic of a copy of X MiB is 2X
    best = min(rows, key=lambda r: abs(np.log(r["mib"]) - target))
    return best[key]


# --------------------------------------------------------------------------------------------
# Networks and layers
# --------------------------------------------------------------------------------------------

def baked_network(name: str, *, atom: str = "tvconv", seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = randomize_(create_model(name, atom=atom, tv=BENCH_TV if atom == "tvconv" else None), seed=seed, calibrate=False)  # type: ignore[arg-type]
    return bake_model(model, verify=False).model if atom == "tvconv" else model


@dataclasses.dataclass(frozen=True)
class Geometry:
    channels: int
    k: int
    stride: int
    h: int
    w: int

    @property
    def label(self) -> str:
        return f"C{self.channels} k{self.k} s{self.stride} {self.h}x{self.w}"

    def nbytes(self, batch: int) -> int:
        """Least traffic of one call: kernels + per-channel bias + input + output (float32)."""
        c, kk, hw = self.channels, self.k * self.k, self.h * self.w
        return 4 * (c * kk * hw + c + batch * c * hw * self.stride**2 + batch * c * hw)


def tv_geometries(archs: Iterable[str]) -> dict[Geometry, list[str]]:
    found: dict[Geometry, list[str]] = {}
    for name in archs:
        with torch.device("meta"):
            model = create_model(name, tv=BENCH_TV)
        for layer_name, m in model.named_modules():
            if hasattr(m, "geometry") and type(m).__name__ == "TVConv":
                g = m.geometry
                found.setdefault(Geometry(g.channels, g.k, g.stride, g.h, g.w), []).append(f"{name}:{layer_name}")
    return found


def bench_layers(geoms: dict[Geometry, list[str]], *, batches: list[int], methods: list[str], threads: int, budget_s: float, bw: list[dict[str, float]]) -> list[dict[str, Any]]:
    rows = []
    rng = np.random.default_rng(0)
    for g in sorted(geoms, key=lambda g: -g.channels * g.h * g.w * g.k * g.k):
        weight = rng.standard_normal((g.channels, g.k * g.k, g.h, g.w), dtype=np.float32)
        bias = rng.standard_normal((g.channels, 1, 1), dtype=np.float32)  # the folded BN shift every layer has
        for n in batches:
            x = rng.standard_normal((n, g.channels, g.h * g.stride, g.w * g.stride), dtype=np.float32)
            sessions = {m: session(layer_model(weight, bias, stride=g.stride, method=m, batch=n), threads) for m in methods}
            ref = sessions[methods[0]].run(None, {"x": x})[0]
            for m, s in sessions.items():  # same numbers from every decomposition
                assert np.abs(s.run(None, {"x": x})[0] - ref).max() <= 1e-4 * np.abs(ref).max(), (g, m)
            stats = interleaved({m: (lambda s=s: s.run(None, {"x": x})) for m, s in sessions.items()}, budget_s=budget_s)
            nbytes = g.nbytes(n)
            floor_ms = nbytes / bandwidth_at(bw, nbytes) / 1e6
            best = min(stats, key=lambda m: stats[m].median_ms)
            rows.append({"geometry": g, "uses": len(geoms[g]), "batch": n, "bytes": nbytes, "floor_ms": floor_ms, "stats": stats, "best": best})
            print(f"  {g.label:>22} N={n:<3} floor {floor_ms:7.3f} ms  " + "  ".join(f"{m}={stats[m].median_ms:.3f}" for m in methods) + f"  -> {best}", flush=True)
    return rows


def bench_networks(archs: list[str], *, batches: list[int], methods: list[str], threads: int, budget_s: float, tmp: Path) -> list[dict[str, Any]]:
    from tvexport.export.onnx import onnx_graph

    rows = []
    for name in archs:
        baked = baked_network(name)
        for n in batches:
            paths = {}
            for m in methods:  # fixed-batch graphs: "auto" picks per layer knowing the batch
                paths[m] = tmp / f"{name}_{m}_{n}.onnx"
                onnx.save(onnx_graph(baked, batch=n, decomposition=m), str(paths[m]))
            x = random_inputs((n, *baked.tvexport_config.input_shape), seed=0).numpy()
            sessions = {m: session(str(p), threads) for m, p in paths.items()}
            with torch.no_grad():
                ref = baked(torch.from_numpy(x)).numpy()
            errs = {m: float(np.abs(s.run(None, {"input": x})[0] - ref).max() / np.abs(ref).max()) for m, s in sessions.items()}
            stats = interleaved({m: (lambda s=s: s.run(None, {"input": x})) for m, s in sessions.items()}, budget_s=budget_s, min_rounds=3)
            best = min(stats, key=lambda m: stats[m].median_ms)
            rows.append({"arch": name, "batch": n, "stats": stats, "errors": errs, "best": best})
            print(f"  {name:>28} N={n:<3} " + "  ".join(f"{m}={stats[m].median_ms:.2f}" for m in methods) + f"  -> {best}", flush=True)
    return rows


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------

def environment(threads: int) -> list[str]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    return [
        f"- machine: {cpu}, {os.cpu_count()} logical CPUs; load average at start {os.getloadavg()[0]:.1f}",
        f"- onnxruntime {ort.__version__} (CPUExecutionProvider, intra-op threads {threads}, inter-op 1, sequential, ORT_ENABLE_ALL, spinning off), onnx {onnx.__version__}, torch {torch.__version__}, numpy {np.__version__}",
    ]


def markdown(env: list[str], bw: list[dict[str, float]], layers: list[dict[str, Any]], nets: list[dict[str, Any]], methods: list[str], command: str) -> str:
    out = ["# TV-layer decompositions on onnxruntime CPU", "", f"Command: `{command}`", "", *env, f"- load average at end {os.getloadavg()[0]:.1f}", ""]
    out += ["## Streaming bandwidth (read + write bytes / time, median)", "", "| buffer | numpy copy, 1 thread | onnxruntime Add(x, 0) |", "|---:|---:|---:|"]
    out += [f"| {r['mib']:g} MiB | {r['numpy_gbs']:.1f} GB/s | {r['ort_gbs']:.1f} GB/s |" for r in bw]
    out += ["", "The floor of a layer is its least traffic (kernels + bias + input + output) divided by the onnxruntime bandwidth measured at the closest working-set size.", ""]
    if layers:
        out += ["## One TV layer (median ms of interleaved rounds; p90 in the last column for the best)", ""]
        out += ["| layer | uses | N | least bytes | floor ms | " + " | ".join(methods) + " | best | best / floor | best p90 |", "|---|---:|---:|---:|---:|" + "---:|" * len(methods) + "---|---:|---:|"]
        for r in layers:
            s = r["stats"]
            cells = [f"**{s[m].median_ms:.3f}**" if m == r["best"] else f"{s[m].median_ms:.3f}" for m in methods]
            out.append(f"| {r['geometry'].label} | {r['uses']} | {r['batch']} | {r['bytes'] / 1e6:.2f} MB | {r['floor_ms']:.3f} | " + " | ".join(cells) + f" | {r['best']} | {s[r['best']].median_ms / r['floor_ms']:.1f}x | {s[r['best']].p90_ms:.3f} |")
        out += ["", "Wins per method (layer x batch): " + ", ".join(f"{m} {sum(r['best'] == m for r in layers)}" for m in methods), ""]
        for n in sorted({r["batch"] for r in layers}):
            sub = [r for r in layers if r["batch"] == n]
            total = {m: sum(r["stats"][m].median_ms * r["uses"] for r in sub) for m in methods}
            out.append(f"- batch {n}: sum over layers weighted by uses: " + ", ".join(f"{m} {total[m]:.1f} ms" for m in methods))
        out.append("")
    if nets:
        out += ["## Whole networks, portable graph per decomposition (median ms (p10)); `auto` = per layer, see `auto_decomposition`", ""]
        net_methods = list(nets[0]["stats"])
        out += ["| network | N | " + " | ".join(net_methods) + " | best |", "|---|---:|" + "---:|" * len(net_methods) + "---|"]
        for r in nets:
            s = r["stats"]
            cells = [f"**{s[m].median_ms:.2f}** ({s[m].p10_ms:.2f})" if m == r["best"] else f"{s[m].median_ms:.2f} ({s[m].p10_ms:.2f})" for m in net_methods]
            out.append(f"| {r['arch']} | {r['batch']} | " + " | ".join(cells) + f" | {r['best']} |")
        worst = max(e for r in nets for e in r["errors"].values())
        out += ["", f"Largest max-rel error of any graph against torch: {worst:.2e}.", ""]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--archs", nargs="+", default=list(DEFAULT_ARCHS))
    parser.add_argument("--methods", nargs="+", default=list(DECOMPOSITIONS), choices=list(DECOMPOSITIONS))
    parser.add_argument("--layer-budget", type=float, default=2.0, help="seconds of timing per layer and batch")
    parser.add_argument("--net-budget", type=float, default=8.0, help="seconds of timing per network and batch")
    parser.add_argument("--no-layers", action="store_true")
    parser.add_argument("--no-networks", action="store_true")
    parser.add_argument("--quick", action="store_true", help="three layers, one network, short budgets")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "onnx_decompositions.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    command = "python benchmarks/onnx_decompositions.py " + " ".join(argv if argv is not None else sys.argv[1:])
    env = environment(args.threads)
    print("\n".join(env))
    print("bandwidth...", flush=True)
    bw = measure_bandwidth([0.25, 1, 4, 16, 64, 256], args.threads, budget_s=0.5 if args.quick else 1.5)
    for r in bw:
        print(f"  {r['mib']:g} MiB: numpy {r['numpy_gbs']:.1f} GB/s, ort {r['ort_gbs']:.1f} GB/s")
    geoms = tv_geometries(args.archs)
    if args.quick:
        keep = sorted(geoms, key=lambda g: -g.channels * g.h * g.w)[::max(1, len(geoms) // 3)][:3]
        geoms = {g: geoms[g] for g in keep}
    layers = [] if args.no_layers else bench_layers(geoms, batches=args.batches, methods=args.methods, threads=args.threads, budget_s=0.5 if args.quick else args.layer_budget, bw=bw)
    nets: list[dict[str, Any]] = []
    if not args.no_networks:
        with tempfile.TemporaryDirectory() as tmp:
            archs = args.archs[:1] if args.quick else args.archs
            nets = bench_networks(archs, batches=args.batches, methods=[*args.methods, "auto"], threads=args.threads, budget_s=2.0 if args.quick else args.net_budget, tmp=Path(tmp))
    report = markdown(env, bw, layers, nets, args.methods, command)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
