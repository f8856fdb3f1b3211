"""CPU speed of the TV op: eager forms, fused (torch.compile / AOTInductor) layers against their
memory floor, and whole networks against their DWConv baselines.

    python benchmarks/cpu_fusion.py                         # everything, 2 threads (~15-25 min)
    python benchmarks/cpu_fusion.py --sections eager,forms  # one part
    python benchmarks/cpu_fusion.py --json out.json

Sections:
  eager    eager TV forms (in-place shift-accumulate = BakedTVConv eager, functional shift,
           unfold = the reference) and eager DWConv of the same shape.
  forms    compiled TV layer: the form BakedTVConv uses under tracing (one (h, w, C) kernel
           tensor per tap, bias first) against the plain (C, k*k, h, w) slices (addcmul, bias
           last); channels-last input as in networks.
  layers   every TV layer of face MobileNetV2 x1.0, compiled, against its memory floor:
           (kernel + bias + input + output bytes) / copy bandwidth of a large tensor (256 MiB,
           STREAM convention: 2 x bytes / time) measured in the same run; also against the
           "hot" floor (a copy of the layer's own byte count, cache-resident like the layer).
  network  whole face MobileNetV2 (x0.1 by default) baked TV net vs DWConv net, eager and
           torch.compile'd (tvexport.compile_model), batch 1 and 16.
  aoti     AOTInductor packages (tvexport.export.aoti.export_aoti) of both nets: compile
           seconds, package bytes, latency at batch 1 and 16.

Timing: candidates of one comparison run round-robin in one process (benchmarks/_timing.py);
each sample is the mean of a block of calls (>= ~20 ms); reported min and p50 over blocks. The
machine's load average is recorded: on a shared box, min is the stable statistic.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import Foreign, Timing, interleaved, wait_quiet  # noqa: E402

from tvexport import bake, compile_model, create_model  # noqa: E402
from tvexport.layers import BakedTVConv, TVConv, tv_depthwise_unfold  # noqa: E402
from tvexport.testing import randomize_  # noqa: E402

SECTIONS = ("eager", "forms", "layers", "network", "aoti")
RESULTS: dict[str, Any] = {}


def log(msg: str) -> None:
    print(msg, flush=True)


def fmt_us(t: float) -> str:
    return f"{t / 1e3:.2f} ms" if t >= 1e3 else f"{t:.0f} us"


def cell(t: Timing) -> str:
    return f"{fmt_us(t.min)} / {fmt_us(t.median)}"


# --------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------

def tv_shift_functional(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int) -> torch.Tensor:
    """The previous eager form: out-of-place addcmul per tap (a new tensor each tap)."""
    c, kk, h, w = weight.shape
    k = int(round(kk**0.5))
    p = k // 2
    xp = F.pad(x, (p, p, p, p))
    sh, sw = stride * (h - 1) + 1, stride * (w - 1) + 1
    out = None
    for ky in range(k):
        for kx in range(k):
            tap = xp[:, :, ky : ky + sh : stride, kx : kx + sw : stride]
            out = tap * weight[:, ky * k + kx] if out is None else torch.addcmul(out, tap, weight[:, ky * k + kx])
    assert out is not None
    return out + bias if bias is not None else out


class PlainTV(nn.Module):
    """The shift-accumulate form reading kernels as (C, k*k, h, w) slices, bias last (for 'forms')."""

    def __init__(self, layer: BakedTVConv) -> None:
        super().__init__()
        self.register_buffer("weight", layer.weight.clone())
        self.register_buffer("bias", layer.bias.clone() if layer.bias is not None else None)
        self.stride = layer.stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return tv_shift_functional(x, self.weight, self.bias, self.stride)


def random_layer(c: int, h: int, stride: int, *, k: int = 3, seed: int = 0) -> BakedTVConv:
    gen = torch.Generator().manual_seed(seed)
    layer = BakedTVConv(c, k=k, stride=stride, h=h, w=h, bias="channel")
    layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen) * 0.3)
    assert layer.bias is not None
    layer.bias.copy_(torch.randn(layer.bias.shape, generator=gen))
    return layer.eval()


def dw_layer(c: int, stride: int, k: int = 3) -> nn.Conv2d:
    return nn.Conv2d(c, c, k, stride, k // 2, groups=c, bias=True).eval()


def copy_bandwidth(nbytes: int, rounds: int) -> tuple[float, Timing]:
    """STREAM-style copy bandwidth (2 x bytes / time) for a tensor of ``nbytes``, bytes/s (min)."""
    src = torch.rand(max(1, nbytes // 4))
    dst = torch.empty_like(src)
    t = timed({"copy": lambda: dst.copy_(src)}, rounds)["copy"]
    return 2 * src.numel() * 4 / (t.min * 1e-6), t


ARGS: argparse.Namespace | None = None
FOREIGN: list[float] = []


def timed(candidates: dict[str, Any], rounds: int) -> dict[str, Timing]:
    """Wait (bounded by --wait-quiet) for the other processes to calm down, then time."""
    assert ARGS is not None
    if ARGS.wait_quiet > 0:
        wait_quiet(timeout_s=ARGS.wait_quiet, max_foreign=ARGS.max_foreign)
    probe = Foreign()
    probe.start()
    out = interleaved(candidates, rounds=rounds, max_foreign=ARGS.max_foreign)
    FOREIGN.append(probe.stop())
    return out


def reset_dynamo() -> None:
    torch._dynamo.reset()


# --------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------

EAGER_CASES = [  # (C, h = w (output), batch, stride)
    (48, 48, 1, 1),
    (48, 48, 16, 1),
    (1920, 16, 1, 1),
    (144, 48, 16, 1),
    (96, 48, 16, 2),
    (960, 6, 16, 1),
]


def section_eager(args: argparse.Namespace) -> None:
    log("\n== eager: TV forms vs DWConv (min / p50 per call) ==")
    log(f"{'C':>5} {'h':>3} {'N':>3} {'s':>2} | {'in-place shift':>22} | {'functional shift':>22} | {'unfold':>22} | {'DWConv':>22} | unfold/in-place")
    rows = []
    for c, h, n, s in EAGER_CASES:
        layer = random_layer(c, h, s)
        conv = dw_layer(c, s)
        x = torch.randn(n, c, h * s, h * s)
        w, b = layer.weight, layer.bias
        with torch.no_grad():
            torch.testing.assert_close(layer(x), tv_depthwise_unfold(x, w, b, stride=s), rtol=1e-5, atol=1e-4)
            t = timed(
                {
                    "inplace": lambda: layer(x),
                    "functional": lambda: tv_shift_functional(x, w, b, s),
                    "unfold": lambda: tv_depthwise_unfold(x, w, b, stride=s),
                    "dwconv": lambda: conv(x),
                },
                args.rounds,
            )
        ratio = t["unfold"].min / t["inplace"].min
        log(f"{c:>5} {h:>3} {n:>3} {s:>2} | {cell(t['inplace']):>22} | {cell(t['functional']):>22} | {cell(t['unfold']):>22} | {cell(t['dwconv']):>22} | {ratio:.1f}x")
        rows.append({"C": c, "h": h, "batch": n, "stride": s, **{k: v.to_dict() for k, v in t.items()}})
    RESULTS["eager"] = rows


FORM_CASES = [(48, 48, 1, 1), (48, 48, 16, 1), (144, 48, 16, 1), (96, 48, 16, 2), (960, 6, 16, 1), (1920, 16, 1, 1)]


def section_forms(args: argparse.Namespace) -> None:
    log("\n== forms: compiled TV layer, channels-last input (min / p50 per call) ==")
    log(f"{'C':>5} {'h':>3} {'N':>3} {'s':>2} | {'per-tap (h,w,C), bias 1st':>24} | {'plain (C,k*k,h,w)':>22} | {'compiled DWConv':>22} | plain/used")
    rows = []
    for c, h, n, s in FORM_CASES:
        reset_dynamo()
        layer = random_layer(c, h, s)
        x = torch.randn(n, c, h * s, h * s).contiguous(memory_format=torch.channels_last)
        used, plain, conv = compile_model(layer), compile_model(PlainTV(layer)), compile_model(dw_layer(c, s))
        ref = tv_depthwise_unfold(x, layer.weight, layer.bias, stride=s)
        torch.testing.assert_close(used(x), ref, rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(plain(x), ref, rtol=1e-5, atol=1e-4)
        conv(x)
        t = timed({"used": lambda: used(x), "plain": lambda: plain(x), "dwconv": lambda: conv(x)}, args.rounds)
        log(f"{c:>5} {h:>3} {n:>3} {s:>2} | {cell(t['used']):>24} | {cell(t['plain']):>22} | {cell(t['dwconv']):>22} | {t['plain'].min / t['used'].min:.2f}x")
        rows.append({"C": c, "h": h, "batch": n, "stride": s, **{k: v.to_dict() for k, v in t.items()}})
    RESULTS["forms"] = rows


def tv_geometries(name: str) -> list[tuple[str, Any]]:
    model = create_model(name)
    return [(n, m.geometry) for n, m in model.named_modules() if isinstance(m, TVConv)]


def section_layers(args: argparse.Namespace) -> None:
    bw, bw_t = copy_bandwidth(256 << 20, args.rounds)
    log(f"\n== layers: {args.layers_model} TV layers compiled vs memory floor ==")
    log(f"copy bandwidth (256 MiB tensor, 2 x bytes / min time): {bw / 1e9:.1f} GB/s (copy min {fmt_us(bw_t.min)}, p50 {fmt_us(bw_t.median)})")
    log(f"{'layer':<22} {'C':>4} {'h':>3} {'s':>2} {'N':>3} | {'MB':>6} | {'TV compiled':>22} | {'floor':>8} | {'TV/floor':>8} | {'hot copy':>8} | {'TV/hot':>6} | {'DWConv compiled':>22} | others")
    rows = []
    worst: dict[int, float] = {}
    for name, g in tv_geometries(args.layers_model):
        reset_dynamo()
        layer = random_layer(g.channels, g.h, g.stride, k=g.k)
        tv, conv = compile_model(layer), compile_model(dw_layer(g.channels, g.stride, g.k))
        for n in args.batches:
            # the layer alone: an input of output size x stride gives its h x w (padding k // 2)
            x = torch.randn(n, g.channels, g.h * g.stride, g.w * g.stride).contiguous(memory_format=torch.channels_last)
            out = tv(x)
            torch.testing.assert_close(out, tv_depthwise_unfold(x, layer.weight, layer.bias, stride=g.stride), rtol=1e-5, atol=1e-4)
            conv(x)
            nbytes = 4 * (layer.weight.numel() + g.channels + x.numel() + out.numel())
            hot_src = torch.rand(nbytes // 8)
            hot_dst = torch.empty_like(hot_src)
            t = timed({"tv": lambda: tv(x), "dwconv": lambda: conv(x), "hot": lambda: hot_dst.copy_(hot_src)}, args.rounds)
            floor = nbytes / bw * 1e6
            r = t["tv"].min / floor
            worst[n] = max(worst.get(n, 0.0), r)
            log(f"{name:<22} {g.channels:>4} {g.h:>3} {g.stride:>2} {n:>3} | {nbytes / 1e6:6.2f} | {cell(t['tv']):>22} | {fmt_us(floor):>8} | {r:8.2f} | {fmt_us(t['hot'].min):>8} | {t['tv'].min / t['hot'].min:6.2f} | {cell(t['dwconv']):>22} | {FOREIGN[-1]:.2f}")
            rows.append({"foreign_cpu_share": FOREIGN[-1], "layer": name, "C": g.channels, "h": g.h, "stride": g.stride, "batch": n, "bytes": nbytes, "floor_us": floor,
                         "tv": t["tv"].to_dict(), "dwconv": t["dwconv"].to_dict(), "hot_copy": t["hot"].to_dict(), "tv_over_floor": r})
    for n, r in worst.items():
        log(f"worst TV/floor at batch {n}: {r:.2f} (target <= 1.5)")
    RESULTS["layers"] = {"model": args.layers_model, "copy_bandwidth_GBps": bw / 1e9, "copy": bw_t.to_dict(), "rows": rows, "worst_ratio": worst}


def _nets(name: str) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    tv = bake(randomize_(create_model(name), seed=0), verify=False).model.eval()
    torch.manual_seed(0)
    dw = randomize_(create_model(name, atom="dwconv"), seed=0).eval()
    return tv, dw


def section_network(args: argparse.Namespace) -> None:
    log(f"\n== network: {args.net} baked TV vs DWConv (min / p50 per call) ==")
    reset_dynamo()
    tv, dw = _nets(args.net)
    ctv, cdw = compile_model(tv), compile_model(dw)
    rows = []
    compile_s: dict[str, float] = {}
    for n in args.batches:
        x = torch.randn(n, 3, 96, 96)
        for label, c in (("tv", ctv), ("dw", cdw)):
            t0 = time.perf_counter()
            c(x)
            compile_s[f"{label}_batch{n}"] = time.perf_counter() - t0
        with torch.no_grad():
            torch.testing.assert_close(ctv(x), tv(x), rtol=1e-4, atol=1e-4)
            t = timed(
                {"tv_compiled": lambda: ctv(x), "dw_compiled": lambda: cdw(x), "tv_eager": lambda: tv(x), "dw_eager": lambda: dw(x)},
                args.rounds,
            )
        rmin = t["tv_compiled"].min / t["dw_compiled"].min
        rp50 = t["tv_compiled"].median / t["dw_compiled"].median
        log(f"batch {n:>2}: compiled TV {cell(t['tv_compiled'])}, compiled DW {cell(t['dw_compiled'])} -> TV/DW {rmin:.2f} (min) {rp50:.2f} (p50); "
            f"eager TV {cell(t['tv_eager'])}, eager DW {cell(t['dw_eager'])}")
        rows.append({"batch": n, **{k: v.to_dict() for k, v in t.items()}, "ratio_min": rmin, "ratio_p50": rp50})
    log("first-call (compile) seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in compile_s.items()))
    RESULTS["network"] = {"model": args.net, "rows": rows, "compile_seconds": compile_s}


def section_aoti(args: argparse.Namespace) -> None:
    from tvexport.export.aoti import export_aoti, load_runner

    log(f"\n== aoti: {args.net} AOTInductor packages (dynamic batch 1..64) ==")
    tv, dw = _nets(args.net)
    rows = {}
    with tempfile.TemporaryDirectory() as d:
        runners = {}
        for label, model in (("tv", tv), ("dw", dw)):
            res = export_aoti(model, Path(d) / f"{label}.pt2", dynamic_batch=True, batch=4, max_batch=64)
            info = res.info
            log(f"{label}: export {info['export_seconds']:.1f} s, compile {info['compile_seconds']:.1f} s, package {info['package_bytes'] / 1e6:.1f} MB, "
                f"validation max rel {max(c.max_rel for c in res.comparisons):.2g}")
            rows[label] = {k: info[k] for k in ("export_seconds", "compile_seconds", "package_bytes")}
            runners[label] = load_runner(res.path).compiled  # tensors in/out: no numpy conversion in the timed call
        timings = []
        for n in args.batches:
            x = torch.randn(n, 3, 96, 96)
            with torch.no_grad():
                t = timed({"tv": lambda: runners["tv"](x), "dw": lambda: runners["dw"](x)}, args.rounds)
            log(f"batch {n:>2}: TV package {cell(t['tv'])}, DW package {cell(t['dw'])} -> TV/DW {t['tv'].min / t['dw'].min:.2f} (min) {t['tv'].median / t['dw'].median:.2f} (p50)")
            timings.append({"batch": n, "tv": t["tv"].to_dict(), "dw": t["dw"].to_dict()})
    RESULTS["aoti"] = {"model": args.net, "packages": rows, "timings": timings}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--sections", default=",".join(SECTIONS))
    ap.add_argument("--net", default="face_mobilenetv2_x0_1", help="network for the network/aoti sections")
    ap.add_argument("--layers-model", default="face_mobilenetv2_x1_0")
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--wait-quiet", type=float, default=60.0, help="before each comparison, wait up to this many seconds for other processes to leave the CPUs")
    ap.add_argument("--max-foreign", type=float, default=0.1, help="CPU share of other processes that counts as quiet (rounds above it are dropped)")
    args = ap.parse_args()
    global ARGS
    ARGS = args
    args.batches = [int(b) for b in args.batches.split(",")]
    torch.set_num_threads(args.threads)
    RESULTS["meta"] = {
        "torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(), "loadavg_start": os.getloadavg(), "argv": sys.argv[1:],
    }
    log(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.2f}")
    for s in args.sections.split(","):
        if s not in SECTIONS:
            raise SystemExit(f"unknown section {s!r}; choose from {', '.join(SECTIONS)}")
        start = time.perf_counter()
        globals()[f"section_{s}"](args)
        log(f"({s}: {time.perf_counter() - start:.0f} s, load average {os.getloadavg()[0]:.2f})")
    RESULTS["meta"]["loadavg_end"] = os.getloadavg()
    RESULTS["meta"]["foreign_cpu_share"] = FOREIGN
    if FOREIGN:
        log(f"other processes' CPU share during the timed comparisons: median {sorted(FOREIGN)[len(FOREIGN) // 2]:.2f}, max {max(FOREIGN):.2f}")
    if args.json:
        args.json.write_text(json.dumps(RESULTS, indent=2))


if __name__ == "__main__":
    main()
