import sys
sys.path.insert(0, "/work/main/benchmarks")
import openvino_kernel_micro as m
from kernel_bandwidth import Shape
SH = [Shape(c, 3, 1, 16, 16, count=1) for c in (1920, 1936, 1856, 1904)]
m.tv_shapes = lambda arch: SH
sys.argv = ["x", "--arch", "deeplabv3plus_mobilenetv2", "--batch", "16", "--dtype", "float32", "--dtype", "int8",
            "--cold-mib", "1024", "--rounds", "2", "--name", "alias_probe", "--out", "/tmp/scratch"]
sys.exit(m.main())
