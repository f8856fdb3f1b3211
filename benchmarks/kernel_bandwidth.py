#!/usr/bin/env python
"""Achieved memory bandwidth of the fused Triton TV kernel on the face MobileNetV2 x1.0 TV layers.

For every TV layer shape of ``face_mobilenetv2_x1_0`` (from the zoo), batch 1 and 32, float32 and
float16, this times side by side, in one run, on one non-default CUDA stream:

* the Triton TV kernel (``tvexport.kernels``), and unless ``--no-legacy``, the kernel as it
  was before issue 16 (``benchmarks/_legacy_tv_kernel.py``) for a before/after in one run,
* a device-to-device copy moving the same number of bytes (read + write),
* torch's depthwise conv (``F.conv2d(groups=C)``, cuDNN autotuned) of the same shape.

Bytes are the compulsory traffic: x, the kernels (once), bias and output for the TV op; x, the
tiny k*k weights, bias and output for the depthwise conv. The L2 cache is flushed (a 256 MiB
write) before every timed call, so the numbers are DRAM bandwidth; CUDA events bracket each call;
after warm-up, many iterations give p10/p50/p90. Target: TV kernel >= 80 % of copy bandwidth.

    python benchmarks/kernel_bandwidth.py [--no-legacy] [--iters 200] [--json out.json] [--markdown out.md]
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import platform
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

TARGET = 0.80  # fraction of copy bandwidth


@dataclasses.dataclass(frozen=True)
class Shape:
    channels: int
    k: int
    stride: int
    oh: int
    ow: int
    count: int  # TV layers of the network with this geometry

    @property
    def label(self) -> str:
        return f"C{self.channels} {self.oh}x{self.ow} s{self.stride} k{self.k}"


def tv_shapes(arch: str) -> list[Shape]:
    """Distinct TV layer geometries of a zoo network, in network order, with multiplicities."""
    from tvexport.layers import TVConv
    from tvexport.models import create_model

    model = create_model(arch)
    counts: collections.OrderedDict[tuple, int] = collections.OrderedDict()
    for m in model.modules():
        if isinstance(m, TVConv):
            g = m.geometry
            key = (g.channels, g.k, g.stride, g.h, g.w)
            counts[key] = counts.get(key, 0) + 1
    return [Shape(*key, count=n) for key, n in counts.items()]


def percentiles(ms: list[float]) -> dict[str, float]:
    q = statistics.quantiles(ms, n=10, method="inclusive")
    return {"p10": q[0], "p50": statistics.median(ms), "p90": q[-1]}


def bench(fn: Callable[[], object], *, torch, stream, flush, warmup: int, iters: int) -> list[float]:  # type: ignore[no-untyped-def]
    """Per-call GPU times (ms) of ``fn`` on ``stream``, L2 flushed before each call."""
    with torch.cuda.stream(stream):
        for _ in range(warmup):
            flush.zero_()
            fn()
        stream.synchronize()
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
        for i in range(iters):
            flush.zero_()  # also keeps the GPU busy while the CPU enqueues the timed call
            starts[i].record(stream)
            fn()
            ends[i].record(stream)
        stream.synchronize()
    return [s.elapsed_time(e) for s, e in zip(starts, ends)]


def gbps(nbytes: int, ms: float) -> float:
    return nbytes / (ms * 1e-3) / 1e9


def run(args: argparse.Namespace) -> dict:
    import torch
    import torch.nn.functional as F
    import triton

    from tvexport.kernels._config import launch_config
    from tvexport.kernels._triton import tv_dwconv_triton
    from tvexport.layers import tv_depthwise

    if args.legacy:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from _legacy_tv_kernel import legacy_launch_config, tv_dwconv_legacy

    torch.set_num_threads(1)
    torch.backends.cudnn.benchmark = True
    dev = torch.device("cuda")
    props = torch.cuda.get_device_properties(dev)
    stream = torch.cuda.Stream(device=dev)
    flush = torch.empty(256 << 20, dtype=torch.uint8, device=dev)
    gen = torch.Generator(device=dev).manual_seed(0)
    rows = []
    for dtype_name in args.dtypes:
        dtype = getattr(torch, dtype_name)
        size = torch.finfo(dtype).bits // 8
        for batch in args.batches:
            for s in tv_shapes(args.arch):
                c, k, st, oh, ow = s.channels, s.k, s.stride, s.oh, s.ow
                x = torch.randn(batch, c, oh * st, ow * st, device=dev, dtype=dtype, generator=gen)
                w = torch.randn(c, k * k, oh, ow, device=dev, dtype=dtype, generator=gen)
                b = {"none": None, "channel": torch.randn(c, 1, 1, device=dev, dtype=dtype, generator=gen),
                     "map": torch.randn(c, oh, ow, device=dev, dtype=dtype, generator=gen)}[args.bias]
                w_dw = torch.randn(c, 1, k, k, device=dev, dtype=dtype, generator=gen)
                b_dw = None if b is None else b.reshape(c, -1)[:, 0].contiguous()
                # Correctness first: the kernel must match the torch form before it is timed.
                ref = tv_depthwise(x.float(), w.float(), None if b is None else b.float(), stride=st)
                got = tv_dwconv_triton(x, w, b, stride=st).float()
                err = float((got - ref).abs().max() / ref.abs().max())
                if err > (1e-5 if dtype == torch.float32 else 2e-3):
                    raise SystemExit(f"kernel_bandwidth: wrong result for {s.label} batch {batch} {dtype_name} (rel err {err:.2e})")

                out_elems = batch * c * oh * ow
                tv_bytes = (x.numel() + w.numel() + (0 if b is None else b.numel()) + out_elems) * size
                dw_bytes = (x.numel() + w_dw.numel() + (0 if b_dw is None else c) + out_elems) * size
                src = torch.empty(tv_bytes // 2, dtype=torch.uint8, device=dev)
                dst = torch.empty_like(src)
                cfg = launch_config(c, plane=oh * ow, batch=batch, sm_count=props.multi_processor_count, x_bytes=size)
                fns = {
                    "tv": lambda x=x, w=w, b=b, st=st, cfg=cfg: tv_dwconv_triton(x, w, b, stride=st, config=cfg),
                    "copy": lambda dst=dst, src=src: dst.copy_(src),
                    "dwconv": lambda x=x, w=w_dw, b=b_dw, st=st, k=k, c=c: F.conv2d(x, w, b, stride=st, padding=k // 2, groups=c),
                }
                if args.legacy:
                    lcfg = legacy_launch_config(c * oh * ow, batch, sm_count=props.multi_processor_count)
                    lerr = float((tv_dwconv_legacy(x, w, b, stride=st, config=lcfg).float() - ref).abs().max() / ref.abs().max())
                    if lerr > (1e-5 if dtype == torch.float32 else 2e-3):
                        raise SystemExit(f"kernel_bandwidth: legacy kernel wrong for {s.label} batch {batch} {dtype_name} (rel err {lerr:.2e})")
                    fns["legacy"] = lambda x=x, w=w, b=b, st=st, lcfg=lcfg: tv_dwconv_legacy(x, w, b, stride=st, config=lcfg)
                times = {name: bench(fn, torch=torch, stream=stream, flush=flush, warmup=args.warmup, iters=args.iters) for name, fn in fns.items()}
                p = {name: percentiles(t) for name, t in times.items()}
                row = {
                    "layer": s.label, "channels": c, "k": k, "stride": st, "oh": oh, "ow": ow, "count": s.count,
                    "batch": batch, "dtype": dtype_name, "bias": args.bias,
                    "config": dataclasses.asdict(cfg), "max_rel_err": err,
                    "tv_bytes": tv_bytes, "dwconv_bytes": dw_bytes, "copy_bytes": 2 * src.numel(),
                    "ms": p,
                    "tv_gbps": gbps(tv_bytes, p["tv"]["p50"]),
                    "copy_gbps": gbps(2 * src.numel(), p["copy"]["p50"]),
                    "dwconv_gbps": gbps(dw_bytes, p["dwconv"]["p50"]),
                }
                row["tv_vs_copy"] = row["tv_gbps"] / row["copy_gbps"]
                if "legacy" in p:
                    row["legacy_gbps"] = gbps(tv_bytes, p["legacy"]["p50"])
                    row["speedup_vs_legacy"] = p["legacy"]["p50"] / p["tv"]["p50"]
                row["tv_vs_dwconv_time"] = p["tv"]["p50"] / p["dwconv"]["p50"]
                rows.append(row)
                print(_row_line(row), flush=True)
    summary = _summarise(rows)
    return {
        "benchmark": "kernel_bandwidth",
        "arch": args.arch,
        "device": {"name": props.name, "sm_count": props.multi_processor_count, "memory_gib": round(props.total_memory / 2**30, 1),
                   "compute_capability": f"{props.major}.{props.minor}"},
        "versions": {"torch": torch.__version__, "cuda": torch.version.cuda, "triton": triton.__version__, "python": platform.python_version()},
        "settings": {"warmup": args.warmup, "iters": args.iters, "l2_flush_mib": 256, "stream": "non-default", "bias": args.bias},
        "target_fraction_of_copy": TARGET,
        "rows": rows,
        "summary": summary,
    }


def _row_line(r: dict) -> str:
    p = r["ms"]
    return (f"{r['dtype']:>7} b{r['batch']:<3} {r['layer']:<22} {r['tv_bytes'] / 1e6:8.2f} MB  "
            f"tv {p['tv']['p50'] * 1e3:8.1f} us {r['tv_gbps']:7.0f} GB/s | copy {r['copy_gbps']:7.0f} GB/s "
            f"({100 * r['tv_vs_copy']:5.1f} %) | dwconv {p['dwconv']['p50'] * 1e3:8.1f} us {r['dwconv_gbps']:7.0f} GB/s"
            + (f" | legacy {p['legacy']['p50'] * 1e3:8.1f} us (x{r['speedup_vs_legacy']:.2f})" if "legacy" in p else ""))


def _summarise(rows: list[dict]) -> list[dict]:
    """Per (dtype, batch): the whole network's TV layers (layer multiplicities counted)."""
    out = []
    keys = sorted({(r["dtype"], r["batch"]) for r in rows})
    for dtype, batch in keys:
        rs = [r for r in rows if r["dtype"] == dtype and r["batch"] == batch]
        t_tv = sum(r["ms"]["tv"]["p50"] * r["count"] for r in rs)
        t_copy = sum(r["ms"]["copy"]["p50"] * r["count"] for r in rs)
        t_dw = sum(r["ms"]["dwconv"]["p50"] * r["count"] for r in rs)
        by = sum(r["tv_bytes"] * r["count"] for r in rs)
        out.append({
            "dtype": dtype, "batch": batch, "tv_ms": t_tv, "copy_ms": t_copy, "dwconv_ms": t_dw,
            "tv_gbps": by / (t_tv * 1e-3) / 1e9, "tv_vs_copy": t_copy / t_tv, "tv_vs_dwconv_time": t_tv / t_dw,
            "layers_meeting_target": sum(r["count"] for r in rs if r["tv_vs_copy"] >= TARGET),
            "layers": sum(r["count"] for r in rs),
        })
        if all("legacy" in r["ms"] for r in rs):
            out[-1]["legacy_ms"] = sum(r["ms"]["legacy"]["p50"] * r["count"] for r in rs)
            out[-1]["speedup_vs_legacy"] = out[-1]["legacy_ms"] / t_tv
    return out


def markdown(result: dict) -> str:
    d = result["device"]
    lines = [
        f"### TV kernel bandwidth: {result['arch']} TV layers on {d['name']} ({d['sm_count']} SMs)",
        "",
        (f"torch {result['versions']['torch']} (CUDA {result['versions']['cuda']}), triton {result['versions']['triton']}; "
         f"{result['settings']['iters']} iterations after {result['settings']['warmup']} warm-up, L2 flushed before each call, "
         f"p50 shown; bias {result['settings']['bias']}. Target: TV >= {100 * result['target_fraction_of_copy']:.0f} % of copy bandwidth."),
        "",
        "| dtype | batch | layer (xN) | MB | TV us | TV GB/s | copy GB/s | TV/copy | dwconv us | dwconv GB/s | TV time / dwconv | legacy us | speed-up |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        p = r["ms"]
        lines.append(
            f"| {r['dtype']} | {r['batch']} | {r['layer']} (x{r['count']}) | {r['tv_bytes'] / 1e6:.2f} | {p['tv']['p50'] * 1e3:.1f} | "
            f"{r['tv_gbps']:.0f} | {r['copy_gbps']:.0f} | {100 * r['tv_vs_copy']:.0f} % | {p['dwconv']['p50'] * 1e3:.1f} | "
            f"{r['dwconv_gbps']:.0f} | {r['tv_vs_dwconv_time']:.2f} | "
            + (f"{p['legacy']['p50'] * 1e3:.1f} | {r['speedup_vs_legacy']:.2f} |" if "legacy" in p else "- | - |")
        )
    lines += ["", "| dtype | batch | all TV layers: TV ms | copy ms | dwconv ms | TV GB/s | TV/copy | TV/dwconv time | layers >= target | legacy ms | speed-up |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in result["summary"]:
        lines.append(
            f"| {s['dtype']} | {s['batch']} | {s['tv_ms']:.3f} | {s['copy_ms']:.3f} | {s['dwconv_ms']:.3f} | {s['tv_gbps']:.0f} | "
            f"{100 * s['tv_vs_copy']:.0f} % | {s['tv_vs_dwconv_time']:.2f} | {s['layers_meeting_target']}/{s['layers']} | "
            + (f"{s['legacy_ms']:.3f} | {s['speedup_vs_legacy']:.2f} |" if "legacy_ms" in s else "- | - |")
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="face_mobilenetv2_x1_0")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    ap.add_argument("--dtypes", nargs="+", default=["float32", "float16"], choices=["float32", "float16"])
    ap.add_argument("--bias", default="channel", choices=["none", "channel", "map"],
                    help="bias of the timed layers (baked face models carry a folded per-channel bias)")
    ap.add_argument("--no-legacy", dest="legacy", action="store_false",
                    help="skip the kernel as it was before issue 16 (timed side by side by default)")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--json", type=Path, help="write all figures as JSON")
    ap.add_argument("--markdown", type=Path, help="write the tables as markdown")
    args = ap.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("kernel_bandwidth: torch is not installed", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("kernel_bandwidth: no CUDA device (torch.cuda.is_available() is False); "
              "this benchmark needs an NVIDIA GPU and a CUDA build of torch", file=sys.stderr)
        return 2
    try:
        import triton  # noqa: F401
    except ImportError:
        print("kernel_bandwidth: triton is not installed; pip install 'tvexport[triton]'", file=sys.stderr)
        return 2
    result = run(args)
    md = markdown(result)
    print(md)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if args.markdown:
        args.markdown.write_text(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
