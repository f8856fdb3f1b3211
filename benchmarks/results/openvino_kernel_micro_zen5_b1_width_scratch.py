import sys
sys.path.insert(0, "/work/main/benchmarks")
import openvino_kernel_micro as m
from kernel_bandwidth import Shape
SH = [Shape(c, 3, 1, 16, w, count=1) for c in (1920, 1024) for w in (15, 16, 17)]
m.tv_shapes = lambda arch: SH
sys.argv = ["x", "--arch", "deeplabv3plus_mobilenetv2", "--batch", "1", "--rounds", "4", "--name", "alias_w_b1", "--out", "/tmp/km"]
sys.exit(m.main())
