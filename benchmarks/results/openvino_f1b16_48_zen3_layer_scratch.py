"""Scratch (issue 17, f1b16_48): face MobileNetV2 x0.1's features.1 alone (C 8, k 3, stride 1,
96x96, batch 16, float32 kernels), one thread, pinned, several kernel.cpp copies interleaved.

    python openvino_f1b16_48_zen3_layer_scratch.py ROUNDS NAME=KERNEL_CPP[:FLAGS] ...

Builds each copy with benchmarks/openvino_kernel_micro.py's build() (the AVX2 variant's flags),
runs its driver's `bench` on the one case per round (order rotated), prints per copy the median
over rounds of the per-round median hot / cold ns, cycles per vector of 16 multiply-adds, and
the ratio to the first copy.
"""
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import openvino_kernel_micro as m  # noqa: E402

CASE = os.environ.get("CASE", "8,3,1,96,96,f32,16")
GHZ = float(os.environ.get("GHZ", "0") or 0)


def main() -> None:
    rounds = int(sys.argv[1])
    specs = []
    for arg in sys.argv[2:]:
        name, rest = arg.split("=", 1)
        path, _, flags = rest.partition(":")
        specs.append((name, m.Variant(name, Path(path).resolve(), tuple(flags.split()))))
    m.pin_to_one_cpu()
    bins = {n: m.build(v, isa="avx2", log=False) for n, v in specs}
    ghz = GHZ or m.run_json([str(bins[specs[0][0]]), "clock"])[0]["clock_ghz"]
    c, k, s, oh, ow, _, n = CASE.split(",")
    vectors = int(c) * int(k) ** 2 * int(oh) * int(ow) * int(n) // 16
    med = {(nm, st): [] for nm, _ in specs for st in ("hot", "cold")}
    names = [nm for nm, _ in specs]
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        if r % 2:
            order = order[::-1]
        for nm in order:
            for line in m.run_json([str(bins[nm]), "bench", "15", "100", "5", str(64 << 20), CASE], const_offset=16):
                med[(nm, line["state"])].append(statistics.median(line["ns"]))
    print(f"case {CASE}, {rounds} rounds, {ghz:.2f} GHz, load {open('/proc/loadavg').read().split()[:3]}")
    for st in ("hot", "cold"):
        base = statistics.median(med[(names[0], st)])
        for nm in names:
            v = med[(nm, st)]
            mm = statistics.median(v)
            print(f"{st:4} {nm:12} {mm / 1e3:8.1f} us  [{min(v) / 1e3:.1f}-{max(v) / 1e3:.1f}]  {mm / vectors * ghz:5.2f} cyc/vec  x{mm / base:.3f}")
    print(json.dumps({"case": CASE, "ghz": ghz, "medians": {f"{a}/{b}": v for (a, b), v in med.items()}}))


if __name__ == "__main__":
    main()
