#!/usr/bin/env python
"""The OpenVINO extension's TV kernel alone, one thread, no OpenVINO: hot and cold, per layer and dtype.

Inside OpenVINO networks the per-node counters move up to 2x between runs; this times the kernel
itself. ``ov_kernel_micro/main.cpp`` is linked with ``tvexport/openvino/ext/kernel.cpp`` compiled
as ``CMakeLists.txt`` compiles its AVX-512 variant, or on CPUs without AVX-512 its AVX2 one (the
variant the extension picks on such a CPU; ``--isa``; its defines and flags are read from the
``tvx_kernel(avx512|avx2 ...)`` line, plus Release's ``-O3 -DNDEBUG`` and the objects' ``-fPIC
-fvisibility=hidden``), built with the compiler the extension build uses into the cache
(``<tvexport cache>/ov_kernel_micro/<hash>``), and calls ``tvx::kernel_avx512(args, 0, out_h)`` (or ``kernel_avx2``)
on one thread (the process is pinned to one CPU) with synthetic data in kernel.hpp's layouts
(``--batch`` images, default 1, float32 activations; at batch > 1 int8 tiles are sized as the op
sizes them on this machine, twice as large on x86-64 cores with >= 2 MiB of L2, see kernel.cpp's
block_bytes; at batch 1 the kernel stream is prefetched non-temporally on AMD Zen 5 and later, as
the op does (kernel.hpp's Switches; ``TVEXPORT_OV_KERNEL_NTA=0|1`` overrides it here too); per-channel bias, output clamped to [0, 6] as in the baked face
MobileNetV2 layers). Cases: every distinct TV layer geometry of ``--arch`` (face MobileNetV2 x1.0
by default), each kernel dtype, each in two memory states:

* hot: one copy of the kernels, called again and again (they stay in L2/L3 where they fit);
* cold: rotating over copies of the kernels totalling more than ``--cold-mib`` (default 128 MiB,
  4x the L3 here), so every call streams its kernels from DRAM, as in the network.

Beside them the same run measures one thread's streaming read bandwidth (a vector sum over a
256 MiB buffer) and memcpy bandwidth, so ratios to the memory floor are made side by side.
Reported per case: median / p10 / p90 of per-call times, ns per vector of 16 multiply-adds
(C * k*k * h * w * batch / 16 of them; also in cycles, the clock estimated by a chain of dependent
adds; beside it the core's register-only peak, 12 independent chains of 512-bit (AVX2: 256-bit) multiply-adds, whose
time for the network's vectors is the compute floor of the network sums), GB/s of stored kernel bytes, and the time over the floor (the kernel bytes, plus at batch > 1
the float32 input and output bytes, over the read bandwidth). Rounds (``--rounds``) run the whole set again; with several
``--variant`` builds the rounds alternate between them (the order rotated every second round and
reversed every other one, so over 2 x builds rounds each runs first equally often) and each
variant's per-round medians are paired with the first variant's (B/A per case).

    python benchmarks/openvino_kernel_micro.py [--rounds 4] [--min-ms 150] [--batch N] [--const-offset 16] \\
        [--arch ARCH] [--variant NAME[@KERNEL_CPP][:FLAG ...]] ...

A variant is a scratch build: ``--variant pf2k:-DTVX_PREFETCH_BYTES=2048`` adds compiler flags,
``--variant direct@/tmp/kernel_direct.cpp`` compiles another copy of kernel.cpp (with the ext/
headers, or with a ``kernel.hpp`` beside the copy, which then lays out the driver's data too: a
scratch ``kSegment``, say). Without ``--variant`` one build of the sources as they are (named
``base``).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import command_line, rerender, write_results
from kernel_bandwidth import tv_shapes

from tvexport.errors import MissingDependencyError
from tvexport.openvino import compiler_command, compiler_id, find_compiler
from tvexport.profile.stats import percentile  # linear, as every tvexport percentile

HERE = Path(__file__).resolve().parent
DRIVER = HERE / "ov_kernel_micro" / "main.cpp"
EXT = HERE.parent / "tvexport" / "openvino" / "ext"
DTYPES = {"float32": ("f32", 4), "float16": ("f16", 2), "int8": ("i8", 1)}
STREAM_BYTES = 256 << 20


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    kernel: Path  # the kernel.cpp to compile
    flags: tuple[str, ...]  # extra compiler flags

    @classmethod
    def parse(cls, spec: str) -> Variant:
        head, _, flags = spec.partition(":")
        name, _, path = head.partition("@")
        if not name:
            raise SystemExit(f"--variant {spec!r}: give NAME[@KERNEL_CPP][:FLAG ...]")
        kernel = Path(path).resolve() if path else EXT / "kernel.cpp"
        if not kernel.is_file():
            raise SystemExit(f"--variant {spec!r}: no file {kernel}")
        parts = tuple(flags.split())
        joined = [f for f in parts if ":" in f]
        if joined:  # "-UX:-DX=2" reaches the compiler as one flag: it undefines X and says nothing
            raise SystemExit(f"--variant {spec!r}: flag {joined[0]!r} holds a ':'; flags are separated by spaces "
                             "(quote the whole --variant: 'NAME:-DA=1 -DB=2')")
        return cls(name, kernel, parts)


# the kernel variants this can time: the driver's -march and the CPU flags (/proc/cpuinfo) each needs
ISAS = {"avx512": ("x86-64-v4", {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}), "avx2": ("x86-64-v3", {"avx2", "fma", "f16c"})}


def kernel_flags(isa: str = "avx512") -> list[str]:
    """The compiler flags CMakeLists.txt gives the kernel variant ``isa`` (Release build)."""
    text = (EXT / "CMakeLists.txt").read_text()
    m = re.search(rf"tvx_kernel\({isa}\s+(\w+)\s+(\d+)\s+(\d+)\s+([^)]*)\)", text)
    if not m:
        raise SystemExit(f"no tvx_kernel({isa} ...) line in {EXT / 'CMakeLists.txt'}: update kernel_flags() in {Path(__file__).name}")
    name, chunk, tile, extra = m.groups()
    # CMake also builds the kernel objects position-independent with hidden visibility
    return ["-O3", "-DNDEBUG", "-std=c++17", "-fPIC", "-fvisibility=hidden", f"-DTVX_KERNEL_NAME={name}", f"-DTVX_CHUNK={chunk}",
            f"-DTVX_BATCH_TILE={tile}", *extra.split()]


def compiler() -> str | None:
    """The C++ compiler the extension build would use ($CXX, c++, g++, clang++), or None."""
    try:
        return find_compiler()
    except MissingDependencyError:
        return None


def cpu_flags() -> set[str]:
    """The CPU's flags from /proc/cpuinfo (empty where it cannot be read)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    return set(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []))


def has_avx512() -> bool:
    """x86-64-v4's AVX-512 subsets, from /proc/cpuinfo (False where it cannot be read)."""
    return ISAS["avx512"][1] <= cpu_flags()


def native_isa() -> str | None:
    """The widest kernel variant this CPU runs that this can time (the one the extension picks), or None."""
    flags = cpu_flags()
    return next((isa for isa, (_, need) in ISAS.items() if need <= flags), None)


def pin_to_one_cpu() -> int | None:
    """Pin this process (and the driver runs it starts) to one CPU, so a case cannot migrate and
    lose its core's L2 mid-run; returns the CPU (None where affinity cannot be set)."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpu = max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


def cache_root() -> Path:
    from tvexport.openvino import cache_dir

    return cache_dir().parent / "ov_kernel_micro"


ISA_NAMES = {"avx512": "AVX-512", "avx2": "AVX2"}
BASE = Variant("base", EXT / "kernel.cpp", ())


def build(variant: Variant = BASE, *, log: bool = True, isa: str | None = None) -> Path:
    """The driver linked with ``variant``'s kernel (the ``isa`` variant, default this CPU's:
    native_isa), compiled into the cache unless there already.

    The cache key covers the sources (and a ``kernel.hpp`` beside a scratch kernel, which its
    ``#include`` would pick first), the compiler's identity and every compile and link line.
    """
    cxx = compiler_command()  # MissingDependencyError with what to install; with the arguments $CXX may add
    isa = isa or native_isa() or "avx512"
    kflags = [*kernel_flags(isa), *variant.flags]
    entry = next(f.split("=", 1)[1] for f in kflags if f.startswith("-DTVX_KERNEL_NAME="))
    # a scratch copy elsewhere includes "kernel.hpp" from its own directory if there is one, else from ext/;
    # the driver then lays its data out by that header too (a scratch kSegment, say)
    # (-iquote: only for "kernel.hpp", not for <...> headers that a scratch directory might shadow)
    own_hpp = variant.kernel.parent != EXT and (variant.kernel.parent / "kernel.hpp").is_file()
    hpp_dir = ["-iquote", str(variant.kernel.parent)] if own_hpp else []
    steps = [
        [*cxx, *kflags, f"-I{EXT}", "-c", str(variant.kernel), "-o", "{tmp}/kernel.o"],
        [*cxx, "-O3", "-std=c++17", f"-march={ISAS[isa][0]}", "-DTVX_MULTI_ISA=1", f"-DTVX_MICRO_KERNEL={entry}", *hpp_dir, f"-I{EXT}", "-c", str(DRIVER), "-o", "{tmp}/main.o"],
        [*cxx, "{tmp}/main.o", "{tmp}/kernel.o", "-o", "{tmp}/bin"],
    ]
    h = hashlib.sha256()
    for path in dict.fromkeys([variant.kernel, variant.kernel.parent / "kernel.hpp", EXT / "kernel.hpp", DRIVER]):
        if path.is_file():
            h.update(path.read_bytes() + b"\0")
    h.update("\n".join([compiler_id(cxx[0]), *(" ".join(cmd) for cmd in steps)]).encode())
    out = cache_root() / h.hexdigest()[:16] / "ov_kernel_micro"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        for step in steps:
            cmd = [a.replace("{tmp}", tmp) for a in step]
            if log:
                print("  " + " ".join(cmd), file=sys.stderr)
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode:
                raise SystemExit(f"build of variant {variant.name!r} failed: {' '.join(cmd)}\n{r.stderr[-4000:]}")
        Path(tmp, "bin").rename(out)
    return out


def run_json(cmd: list[str], *, const_offset: int = 0) -> list[dict[str, Any]]:
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TVX_MICRO_CONST_OFFSET": str(const_offset)})
    if r.returncode:
        raise SystemExit(f"{' '.join(cmd[:3])} ... failed ({r.returncode}): {r.stderr[-2000:]}")
    return [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]


def summarize(samples_ns: list[int], kernel_bytes: int, floor_bytes: int, vectors: int, read_gbs: float, ghz: float) -> dict[str, float]:
    med = statistics.median(samples_ns)
    return {
        "median_ns": med, "p10_ns": percentile(samples_ns, 10), "p90_ns": percentile(samples_ns, 90), "n": len(samples_ns),
        "ns_per_vector": med / vectors, "cycles_per_vector": med / vectors * ghz, "kernel_gbs": kernel_bytes / med, "x_floor": med / (floor_bytes / read_gbs),
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from tvexport.profile.machine import load_average, machine_info

    variants = [Variant.parse(v) for v in args.variant] or [BASE]
    if len({v.name for v in variants}) != len(variants):
        raise SystemExit("--variant names must differ")
    binaries = {v.name: build(v, isa=args.isa) for v in variants}
    shapes = [s for arch in args.arch or ["face_mobilenetv2_x1_0"] for s in tv_shapes(arch)]
    # a geometry shared by several --arch is one case (its samples would otherwise merge), counted
    # as often as the networks have it together; the network sums add every --arch's layers
    merged: dict[tuple, Any] = {}
    for s in shapes:
        key = (s.channels, s.k, s.stride, s.oh, s.ow)
        merged[key] = dataclasses.replace(merged[key], count=merged[key].count + s.count) if key in merged else s
    cases = []
    for s in merged.values():
        for dtype in args.dtype or list(DTYPES):
            code, size = DTYPES[dtype]
            numel = s.channels * s.k * s.k * s.oh * s.ow
            # activations (float32 input and output) count in the floor only at batch > 1: at batch 1
            # the kernels are what streams from memory (the cold state), activations stay in cache
            acts = 0 if args.batch == 1 else args.batch * 4 * s.channels * (s.oh * s.stride * s.ow * s.stride + s.oh * s.ow)
            cases.append({"spec": f"{s.channels},{s.k},{s.stride},{s.oh},{s.ow},{code},{args.batch}", "label": s.label, "dtype": dtype,
                          "count": s.count, "kernel_bytes": numel * size, "floor_bytes": numel * size + acts,
                          "vectors": numel * args.batch // 16})
    load_before = load_average()
    raw: dict[str, dict[tuple[str, str], list[list[int]]]] = {v.name: {} for v in variants}
    streams: dict[str, list[list[int]]] = {"read": [], "copy": []}
    clocks: list[float] = []
    fmas: list[float] = []
    order = [v.name for v in variants]
    cpu = pin_to_one_cpu()
    cold_copies: dict[str, int] = {}
    t0 = time.perf_counter()
    for r in range(args.rounds):
        # each build first (and last) equally often over 2 x len(order) rounds: rotate every
        # second round, reverse every other one (the position bias openvino_ab.py measured)
        shift = (r // 2) % len(order)
        names = order[shift:] + order[:shift]
        names = names if r % 2 == 0 else names[::-1]
        if len(order) > 1 and args.rounds > 1:
            print(f"  round {r + 1}/{args.rounds}: {' '.join(names)}", file=sys.stderr)
        for name in names:
            bench = [str(binaries[name]), "bench", str(args.min_iters), str(args.min_ms), str(args.warmup), str(args.cold_mib << 20)]
            for line in run_json(bench + [c["spec"] for c in cases], const_offset=args.const_offset):
                raw[name].setdefault((line["case"], line["state"]), []).append(line["ns"])
                if "copies" in line:
                    cold_copies[line["case"]] = line["copies"]
        for line in run_json([str(binaries[order[0]]), "stream", str(STREAM_BYTES), str(args.stream_iters)]):
            streams[line["stream"]].append(line["ns"])
        clocks.append(run_json([str(binaries[order[0]]), "clock"])[0]["clock_ghz"])
        fmas.append(run_json([str(binaries[order[0]]), "fma"])[0]["fma_vectors_per_ns"])
    seconds = time.perf_counter() - t0
    stream = {}
    for what, rounds in streams.items():
        ns = [x for r in rounds for x in r]
        moved = STREAM_BYTES * (2 if what == "copy" else 1)  # copy: bytes read + bytes written
        stream[what] = {"bytes_per_iter": moved, "median_gbs": moved / statistics.median(ns), "p10_gbs": moved / percentile(ns, 90),
                        "p90_gbs": moved / percentile(ns, 10), "n": len(ns)}
    read_gbs = stream["read"]["median_gbs"]
    ghz = statistics.median(clocks)
    rows = []
    for v in variants:
        for c in cases:
            for state in ("hot", "cold"):
                rounds = raw[v.name][(c["spec"], state)]
                row = {"variant": v.name, "layer": c["label"], "dtype": c["dtype"], "state": state, "count": c["count"],
                       "kernel_bytes": c["kernel_bytes"], "floor_bytes": c["floor_bytes"], "vectors": c["vectors"], **summarize([x for r in rounds for x in r], c["kernel_bytes"], c["floor_bytes"], c["vectors"], read_gbs, ghz),
                       "round_medians_ns": [statistics.median(r) for r in rounds]}
                if state == "cold":
                    row["copies"] = cold_copies.get(c["spec"])
                rows.append(row)
    return {
        "command": command_line(), "machine": machine_info(), "load_average_before": load_before, "load_average_after": load_average(),
        "threads": 1, "batch": args.batch, "const_offset": args.const_offset, "cpu": cpu, "seconds": seconds, "rounds": args.rounds, "min_iters": args.min_iters, "min_ms": args.min_ms, "warmup": args.warmup,
        "cold_bytes": args.cold_mib << 20, "isa": args.isa, "compile_flags": kernel_flags(args.isa),
        "variants": [{"name": v.name, "kernel": os.path.relpath(v.kernel, HERE.parent), "flags": list(v.flags)} for v in variants],
        "stream": stream, "clock_ghz": ghz, "clock_ghz_rounds": clocks,
        "fma_vectors_per_ns": statistics.median(fmas), "fma_vectors_per_ns_rounds": fmas, "rows": rows,
    }


def network_totals(rows: list[dict[str, Any]], variant: str, read_gbs: float = 0.0, fma_per_ns: float = 0.0) -> dict[tuple[str, str], float]:
    """Sum over the network's TV layers (each geometry times its count) of the median, in ms; with
    ``read_gbs`` also (dtype, "floor"): each row's floor bytes (kernel bytes in results written
    before ``--batch``) at that bandwidth; with ``fma_per_ns`` (dtype, "compute"): each row's
    vectors at that register-only peak (rows written before it carry no vectors: left out)."""
    tot: dict[tuple[str, str], float] = {}
    for r in rows:
        if r["variant"] == variant:
            key = (r["dtype"], r["state"])
            tot[key] = tot.get(key, 0.0) + r["count"] * r["median_ns"] / 1e6
            if read_gbs and r["state"] == "hot":
                tot[(r["dtype"], "floor")] = tot.get((r["dtype"], "floor"), 0.0) + r["count"] * r.get("floor_bytes", r["kernel_bytes"]) / read_gbs / 1e6
            if fma_per_ns and r["state"] == "hot" and "vectors" in r:
                tot[(r["dtype"], "compute")] = tot.get((r["dtype"], "compute"), 0.0) + r["count"] * r["vectors"] / fma_per_ns / 1e6
    return tot


def render(result: dict[str, Any], out: Path, name: str) -> None:
    rows, variants = result["rows"], [v["name"] for v in result["variants"]]
    st = result["stream"]
    lines = [
        f"# The OpenVINO extension's TV kernel alone: one thread, batch {result.get('batch', 1)}, hot and cold", "",
        f"Command: `{result['command']}`  ",
        f"Machine: {result['machine'].get('cpu')}, {result['machine'].get('logical_cores', '?')} cores; 1 thread; "
        f"load average before {result['load_average_before']}, after {result['load_average_after']}; run {result['seconds']:.0f} s  ",
        f"Kernel compiled as CMakeLists.txt's {ISA_NAMES[result.get('isa', 'avx512')]} variant: `{' '.join(result['compile_flags'])}`; cold: > {result['cold_bytes'] >> 20} MiB of "
        f"kernel copies in rotation; {result['rounds']} rounds of >= {result['min_iters']} calls and {result['min_ms']} ms per case and state "
        f"after {result['warmup']} warm-up calls; " + (
            f"kernels, scales and bias {result['const_offset']} bytes past a 64-byte boundary, activations 64-byte aligned." if "const_offset" in result
            else "kernels 4 KiB aligned, scales, bias and activations where malloc put them (16-byte aligned)."), "",
        f"One thread's streaming bandwidth ({st['read']['bytes_per_iter'] >> 20} MiB): read {st['read']['median_gbs']:.1f} GB/s (p10-p90 {st['read']['p10_gbs']:.1f}-{st['read']['p90_gbs']:.1f}), "
        f"memcpy {st['copy']['median_gbs']:.1f} GB/s counting bytes read + written (p10-p90 {st['copy']['p10_gbs']:.1f}-{st['copy']['p90_gbs']:.1f}). " +
        ("x floor = time / (kernel bytes / read bandwidth). " if result.get("batch", 1) == 1 else
         "x floor = time / ((kernel bytes + float32 input and output bytes) / read bandwidth). ") +
        "A vector is 16 multiply-adds (kernel values x images). "
        f"Core clock ~{result['clock_ghz']:.2f} GHz (a chain of dependent adds), for cycles per vector." + (
            f" Register-only multiply-add peak {result['fma_vectors_per_ns']:.2f} vectors per ns "
            f"({result['fma_vectors_per_ns'] / result['clock_ghz']:.2f} per cycle, {16 * result['fma_vectors_per_ns']:.0f} GFMA/s; "
            f"12 independent chains of {256 if result.get('isa') == 'avx2' else 512}-bit multiply-adds): compute floor = vectors / peak." if "fma_vectors_per_ns" in result else ""), "",
    ]
    for v in variants:
        tot = network_totals(rows, v, st["read"]["median_gbs"], result.get("fma_vectors_per_ns", 0.0))
        lines += [f"## Variant `{v}`", "",
                  "Network sums (each geometry's median times its count, ms, one thread; floor: the x floor bytes at the read bandwidth"
                  + ("; compute: the vectors at the register-only peak" if "fma_vectors_per_ns" in result else "") + "): " + "; ".join(
                      f"{d} hot {tot[(d, 'hot')]:.3f} / cold {tot[(d, 'cold')]:.3f} / floor {tot[(d, 'floor')]:.3f} "
                      + (f"/ compute {tot[(d, 'compute')]:.3f} " if (d, "compute") in tot else "")
                      + f"(cold - hot = {(tot[(d, 'cold')] - tot[(d, 'hot')]) / tot[(d, 'floor')]:.2f} x floor)" for d in DTYPES if (d, "hot") in tot), "",
                  "| layer | n | dtype | kernel MB | hot us (p10-p90) | cold us (p10-p90) | cold/hot | hot ns/vec (cycles) | cold ns/vec (cycles) | cold GB/s | cold x floor |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        sel = {(r["layer"], r["dtype"], r["state"]): r for r in rows if r["variant"] == v}
        for (layer, dtype, state), h in sel.items():
            if state != "hot":
                continue
            c = sel[(layer, dtype, "cold")]
            lines.append(
                f"| {layer} | {h['count']} | {dtype} | {h['kernel_bytes'] / 1e6:.2f} | {h['median_ns'] / 1e3:.1f} ({h['p10_ns'] / 1e3:.1f}-{h['p90_ns'] / 1e3:.1f}) "
                f"| {c['median_ns'] / 1e3:.1f} ({c['p10_ns'] / 1e3:.1f}-{c['p90_ns'] / 1e3:.1f}) | {c['median_ns'] / h['median_ns']:.2f} "
                f"| {h['ns_per_vector']:.2f} ({h['cycles_per_vector']:.1f}) | {c['ns_per_vector']:.2f} ({c['cycles_per_vector']:.1f}) "
                f"| {c['kernel_gbs']:.1f} | {c['x_floor']:.2f} |")
        lines.append("")
    if len(variants) > 1:
        base = variants[0]
        lines += [f"## Variants against `{base}` (median over rounds of the per-round median ratio, B/A; < 1: faster)", "",
                  "| layer | dtype | state | " + " | ".join(variants[1:]) + " |", "|---|---|---|" + "---|" * (len(variants) - 1)]
        sel = {(r["variant"], r["layer"], r["dtype"], r["state"]): r for r in rows}
        for (v, layer, dtype, state), a in sel.items():
            if v != base:
                continue
            cells = []
            for b in variants[1:]:
                rb = sel[(b, layer, dtype, state)]["round_medians_ns"]
                cells.append(f"{statistics.median(x / y for x, y in zip(rb, a['round_medians_ns'], strict=True)):.3f}")
            lines.append(f"| {layer} | {dtype} | {state} | " + " | ".join(cells) + " |")
        lines += ["", "Network sums, B/A: " + "; ".join(
            f"`{b}` " + ", ".join(f"{d} {s} {network_totals(rows, b)[(d, s)] / network_totals(rows, base)[(d, s)]:.3f}"
                                  for d in DTYPES for s in ("hot", "cold") if (d, s) in network_totals(rows, base)) for b in variants[1:]), ""]
    write_results(out, name, "\n".join(lines), result)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--arch", action="append", help="zoo network whose TV layer geometries are the cases (default face_mobilenetv2_x1_0)")
    p.add_argument("--const-offset", type=int, default=16, choices=range(0, 64, 4), metavar="BYTES",
                   help="the kernels, scales and bias start this many bytes past a 64-byte boundary, as OpenVINO's CPU plugin "
                        "hands an op its constants (16-byte aligned: 0/16/32/48 mod 64 seen); activations stay 64-byte aligned")
    p.add_argument("--isa", choices=list(ISAS), help="kernel variant to time (default: the widest this CPU runs, as the extension picks)")
    p.add_argument("--batch", type=int, default=1, help="images per call (> 1: the floor counts the float32 activations too)")
    p.add_argument("--dtype", action="append", choices=list(DTYPES), help="kernel dtype (repeatable; default all)")
    p.add_argument("--variant", action="append", default=[], help="NAME[@KERNEL_CPP][:FLAG ...], repeatable; the first is the baseline")
    p.add_argument("--rounds", type=int, default=4, help="with several builds, a multiple of 2 x their number balances their order")
    p.add_argument("--min-iters", type=int, default=30, help="timed calls per case and state and round, at least")
    p.add_argument("--min-ms", type=int, default=150, help="and at least this long")
    p.add_argument("--warmup", type=int, default=10, help="untimed calls before each case and state")
    p.add_argument("--cold-mib", type=int, default=128, help="kernel copies in rotation for the cold state, at least this much")
    p.add_argument("--stream-iters", type=int, default=5, help="passes over the 256 MiB buffer per round")
    p.add_argument("--out", type=Path, default=HERE / "results")
    p.add_argument("--name", default="openvino_kernel_micro")
    p.add_argument("--render", type=Path, metavar="JSON", help="only re-render the outputs from a JSON this script wrote")
    args = p.parse_args()
    if rerender(args, args.name, render) is not None:
        return
    if args.batch < 1:
        raise SystemExit(f"--batch must be at least 1, not {args.batch}")
    if args.isa is None:
        args.isa = native_isa()
    if args.isa is None:
        raise SystemExit("this CPU has neither AVX-512 (x86-64-v4) nor AVX2 + FMA + F16C (x86-64-v3): the microbenchmark times those kernel variants only")
    if not ISAS[args.isa][1] <= cpu_flags():
        raise SystemExit(f"--isa {args.isa}: this CPU lacks {' '.join(sorted(ISAS[args.isa][1] - cpu_flags()))}; give --isa {native_isa()} or leave it out")
    try:
        find_compiler()
    except MissingDependencyError as err:  # the build's own line: none found, or a $CXX that names none
        raise SystemExit(str(err)) from None
    result = measure(args)
    render(result, args.out, args.name)
    print((args.out / f"{args.name}.md").read_text())


if __name__ == "__main__":
    main()
