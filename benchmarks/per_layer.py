"""Per-layer view: each TV layer of a network timed in isolation against its memory floor.

Kernels (C*k*k*h*w values: one k x k kernel per output position) + input + output bytes,
divided by the copy bandwidth measured in the same run, give the time no implementation can
beat once the data come from memory; "x floor" says how far each layer is from it. The DWConv
layer it replaces is timed beside it (paired rounds).

    python benchmarks/per_layer.py                # face_mobilenetv2_x1_0, torch-baked, batch 1 and 8
"""

from __future__ import annotations

import sys

import _common

from tvexport._io import write_text_atomic
from tvexport.profile import load_subject, run_bench, to_json, to_markdown
from tvexport.profile.plot import plot_report


def main() -> int:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--backend", action="append", help="backend (repeatable); default torch-baked")
    p.add_argument("--batch", type=int, action="append", help="batch sizes (repeatable); default 1, 8")
    p.add_argument("--layer-seconds", type=float, default=0.5, help="minimum timed seconds per layer")
    p.set_defaults(min_seconds=1.0)
    args = p.parse_args()
    arch = (args.arch or ["face_mobilenetv2_x1_0"])[0]
    name = args.name or "per_layer"
    _common.wait_quiet(args)
    report = run_bench(
        load_subject(arch), backends=args.backend or ["torch-baked"], batches=args.batch or [1, 8], threads=args.threads,
        settings=_common.settings(args), per_layer=True, layer_seconds=0 if args.quick else args.layer_seconds,
        command=_common.command_line(), progress=_common.progress,
    )
    md = to_markdown(report, title=f"Per-layer latency vs memory floor: {arch}")
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / f"{name}.md", md)
    write_text_atomic(args.out / f"{name}.json", to_json(report))
    plot_report(report, args.out / f"{name}.png", force=True)
    print(md)
    print(f"wrote {args.out / name}.md/.json/.png", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
