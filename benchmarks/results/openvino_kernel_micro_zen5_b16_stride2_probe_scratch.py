"""Scratch probe (issue 17, stop 38): the kernel alone at batch 16 on chosen geometries.

``alias``: C = 48 stride 2 and 1 at 47/48/49 output positions a side, C = 8 stride 1 at 95/96/97:
the image strides of the 48 and 96 cases are multiples of 4 KiB (the batch tile's images then map
to the same L1 sets), the others are not. ``ablation``: face MobileNetV2 x0.1's C = 48 layers at
48x48 and its C = 8 layer, the kernel as it is against openvino_ablation_zen5_b16_scratch.patch's
builds (TVX_ABLATE 1/2/3/5: no kernel, input, output stream, none of the three), which stop 34 ran
only inside OpenVINO. Run from the repository root:

    python benchmarks/results/openvino_kernel_micro_zen5_b16_stride2_probe_scratch.py alias|ablation OUT_DIR

``ablation`` wants the patched kernel at OUT_DIR/kernel_abl.cpp (kernel.cpp with the .patch applied)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import openvino_kernel_micro as m  # noqa: E402
from kernel_bandwidth import Shape  # noqa: E402

mode, out = sys.argv[1], sys.argv[2]
if mode == "alias":
    groups = ((48, 2, (47, 48, 49)), (48, 1, (47, 48, 49)), (8, 1, (95, 96, 97)))
    variants = []
else:
    groups = ((48, 2, (48,)), (48, 1, (48,)), (8, 1, (96,)))
    abl = f"{out}/kernel_abl.cpp"
    variants = ["--variant", "base"] + [a for n in (1, 2, 3, 5) for a in ("--variant", f"abl{n}@{abl}:-DTVX_ABLATE={n}")]
shapes = [Shape(c, 3, s, w, w, count=1) for c, s, ws in groups for w in ws]
m.tv_shapes = lambda arch: shapes
sys.argv = [sys.argv[0], "--arch", "face_mobilenetv2_x0_1", "--batch", "16", "--dtype", "float32", "--rounds", "4",
            "--min-iters", "10", "--min-ms", "100", "--name", f"openvino_kernel_micro_zen5_b16_{mode if mode == 'alias' else 'ablation38'}_scratch", "--out", out, *variants]
sys.exit(m.main())
