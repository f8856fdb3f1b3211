"""Why a compiled TV layer at batch 16 sits ~2.5x above its memory floor: the batch loop.

Inductor runs CPU networks channels-last (N, H, W, C) and puts the batch outermost in every
pointwise loop, so a TV layer streams its whole kernel tensor (C*k*k*h*w floats) once per image.
This probe times the same compiled TV layer (+ bias + ReLU6) on the same data in two layouts:

  nhwc   input and output (N, H, W, C), as in a compiled network
  hwnc   input and output (H, W, N, C): Inductor then loops (i, j, n, c) and every kernel vector
         is reused for the whole batch from L1
  copy   the cost of converting an NHWC activation to HWNC (what a network would pay per layer)

    python benchmarks/cpu_layout_probe.py [--threads 1] [--clock cpu]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch._inductor.inductor_prims  # noqa: F401  (registers prims.inductor_force_stride_order)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _timing  # noqa: E402

from tvexport import compile_model  # noqa: E402
from tvexport.layers import BakedTVConv  # noqa: E402

force = torch.ops.prims.inductor_force_stride_order


class Layer(torch.nn.Module):
    def __init__(self, layer: BakedTVConv, hwnc_out: bool) -> None:
        super().__init__()
        self.tv, self.hwnc_out = layer, hwnc_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.tv(x).clamp(0, 6)
        n, c, h, w = y.shape
        return force(y, [c, 1, w * n * c, n * c] if self.hwnc_out else [h * w * c, 1, w * c, c])


class ToHWNC(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        return force(x, [c, 1, w * n * c, n * c])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu", help="cpu: process CPU time (robust on a shared machine; 1 thread only)")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.clock == "cpu":
        if args.threads != 1:
            raise SystemExit("--clock cpu needs --threads 1")
        _timing.time.perf_counter = time.process_time  # type: ignore[attr-defined]
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.clock} clock; times are min over rounds")
    print(f"{'C':>4} {'h':>3} {'s':>2} {'N':>3} | {'floor':>8} | {'nhwc':>15} | {'hwnc':>15} | {'copy NHWC->HWNC':>15}")
    for c, h, s, n in [(144, 48, 1, 16), (32, 96, 1, 16), (96, 48, 2, 16), (384, 12, 1, 16), (960, 6, 1, 16)]:
        torch._dynamo.reset()
        gen = torch.Generator().manual_seed(0)
        layer = BakedTVConv(c, k=3, stride=s, h=h, w=h, bias="channel")
        layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen))
        x = torch.randn(n, c, h * s, h * s, generator=gen).contiguous(memory_format=torch.channels_last)
        xh = torch.empty_strided(x.shape, (c, 1, h * s * n * c, n * c)).copy_(x)
        nhwc, hwnc, conv = compile_model(Layer(layer, False)), compile_model(Layer(layer, True)), compile_model(ToHWNC())
        torch.testing.assert_close(hwnc(xh), nhwc(x), rtol=1e-5, atol=1e-5)
        big = torch.rand(64 << 20)
        big_out = torch.empty_like(big)
        t = _timing.interleaved({"nhwc": lambda: nhwc(x), "hwnc": lambda: hwnc(xh), "convert": lambda: conv(x), "copy": lambda: big_out.copy_(big)},
                                rounds=args.rounds, max_foreign=2.0)
        bw = 2 * big.numel() * 4 / (t["copy"].min * 1e-6)
        floor = 4 * (layer.weight.numel() + x.numel() + n * c * h * h) / bw * 1e6

        def cell(name: str) -> str:
            return f"{t[name].min / 1e3:6.2f} ms {t[name].min / floor:4.2f}x"

        print(f"{c:>4} {h:>3} {s:>2} {n:>3} | {floor / 1e3:5.2f} ms | {cell('nhwc'):>15} | {cell('hwnc'):>15} | {t['convert'].min / 1e3:6.2f} ms", flush=True)


if __name__ == "__main__":
    main()
