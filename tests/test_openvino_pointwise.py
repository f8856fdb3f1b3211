"""OpenVINO extension: the 1x1 convolution before a TV op folded into it (runtime.fuse_pointwise_convs,
the kernel's pointwise prologue), against the float64 torch truth with random TV kernels."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

pytest.importorskip("openvino")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from test_openvino import HAVE_TOOLS, Case, _network, _within, layer_graph, rel_err, truth_of  # noqa: E402
from tvexport.openvino import OpenVinoRunner  # noqa: E402

pytestmark = pytest.mark.skipif(not HAVE_TOOLS, reason="needs cmake and a C++ compiler to build the OpenVINO extension")

# float32 sums of cin products, then of <= 25 taps, against float64
RTOL = 5e-6


@dataclasses.dataclass(frozen=True)
class PwCase:
    tv: Case
    cin: int = 8
    clamp: str | None = "relu6"  # "relu6" (Clip 0..6), "relu", None
    conv_bias: bool = True
    residual: bool = False  # the convolution reads Add(x, x): the op reads it NCHW (pre_nchw)

    @property
    def id(self) -> str:
        return (f"{self.tv.id}-c{self.tv.channels}-cin{self.cin}-{self.clamp or 'noclamp'}-{'cb' if self.conv_bias else 'nocb'}"
                + ("-nchw" if self.residual else ""))


def pointwise_graph(case: PwCase, seed: int = 0, *, kernel: int = 1, stride: int = 1,
                    second_reader: bool = False) -> tuple[Any, Any]:
    """The layer graph of ``case.tv`` fed by Conv(kernel x kernel, stride) of ``case.cin`` channels
    (+ bias) and the clamp; ``second_reader``: the clamp's output is a second graph output too.
    Returns (model, f(x float64) -> the float64 truth)."""
    model, weight, bias = layer_graph(case.tv, seed)
    rng = np.random.default_rng(seed + 7)
    c, s = case.tv.channels, case.tv.stride
    pw = (rng.standard_normal((c, case.cin, kernel, kernel)) / np.sqrt(case.cin * kernel * kernel)).astype(np.float32)
    pb = rng.standard_normal(c).astype(np.float32)
    g = model.graph
    tv_input = g.input[0]
    batch = tv_input.type.tensor_type.shape.dim[0]
    g.node[0].input[0] = "e"
    conv_in = ["xr" if case.residual else "x", "pw.weight"] + (["pw.bias"] if case.conv_bias else [])
    pad = kernel // 2
    nodes = [helper.make_node("Add", ["x", "x"], ["xr"])] if case.residual else []
    nodes += [helper.make_node("Conv", conv_in, ["e" if case.clamp is None else "a"], kernel_shape=[kernel, kernel],
                              strides=[stride, stride], pads=[pad] * 4)]
    g.initializer.extend([numpy_helper.from_array(pw, "pw.weight"), numpy_helper.from_array(pb, "pw.bias")])
    if case.clamp == "relu6":
        g.initializer.extend([numpy_helper.from_array(np.array(0.0, np.float32), "zero"), numpy_helper.from_array(np.array(6.0, np.float32), "six")])
        nodes.append(helper.make_node("Clip", ["a", "zero", "six"], ["e"]))
    elif case.clamp == "relu":
        nodes.append(helper.make_node("Relu", ["a"], ["e"]))
    for n in reversed(nodes):
        g.node.insert(0, n)
    h_in, w_in = s * case.tv.h * stride, s * case.tv.w * stride
    del g.input[:]
    shape = [batch.dim_value if batch.HasField("dim_value") else batch.dim_param, case.cin, h_in, w_in]
    g.input.append(helper.make_tensor_value_info("x", TensorProto.FLOAT, shape))
    if second_reader:
        g.output.append(helper.make_tensor_value_info("e", TensorProto.FLOAT, None))

    def truth(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            e = torch.nn.functional.conv2d(torch.from_numpy(2 * x if case.residual else x), torch.from_numpy(pw.astype(np.float64)),
                                           torch.from_numpy(pb.astype(np.float64)) if case.conv_bias else None, stride=stride, padding=pad)
            if case.clamp == "relu6":
                e = e.clamp(0.0, 6.0)
            elif case.clamp == "relu":
                e = e.clamp(min=0.0)
        return truth_of(e.numpy(), weight, bias, s)

    return model, truth


def _x(case: PwCase, n: int, scale: int = 1) -> np.ndarray:
    s = case.tv.stride
    # 3 sigma: the conv's outputs reach past the ReLU6's 6 and below 0, so the clamp is exercised
    return 3 * np.random.default_rng(1).standard_normal((n, case.cin, s * case.tv.h * scale, s * case.tv.w * scale)).astype(np.float32)


CASES = [
    PwCase(Case(3, 2, "channel", "float32", 1, channels=48, h=6, w=9), cin=8),  # face MobileNetV2 x0.1's stride-2 layer
    PwCase(Case(3, 2, "channel", "float32", 3, channels=48, h=6, w=9), cin=8),
    PwCase(Case(3, 2, "channel", "float32", 3, channels=48, h=6, w=9), cin=8, residual=True),
    PwCase(Case(3, 1, "map", "float32", 1, channels=58, h=5, w=6), cin=24, clamp="relu", residual=True),
    PwCase(Case(5, 2, None, "float16", 3, channels=70, h=4, w=5), cin=13, clamp=None, conv_bias=False, residual=True),
    PwCase(Case(3, 1, "channel", "int8", 2, channels=96, h=4, w=7), cin=16, residual=True),
    PwCase(Case(3, 1, "map", "float32", 3, channels=48, h=5, w=11), cin=8),
    PwCase(Case(3, 1, None, "float32", 1, channels=58, h=5, w=7), cin=58, clamp="relu"),  # ShuffleNetV2's 58
    PwCase(Case(3, 2, "map", "float32", 3, channels=58, h=4, w=6), cin=24, clamp="relu", conv_bias=False),
    PwCase(Case(5, 1, "channel", "float32", 3, channels=70, h=5, w=7), cin=24, clamp=None),
    PwCase(Case(5, 2, None, "float32", 1, channels=70, h=4, w=5), cin=13, clamp="relu6", conv_bias=False),
    PwCase(Case(3, 1, "channel", "float16", 3, channels=48, h=5, w=10), cin=8),
    PwCase(Case(3, 2, "map", "float16", 1, channels=58, h=4, w=7), cin=24, clamp="relu"),
    PwCase(Case(5, 2, "channel", "float16", 3, channels=96, h=3, w=5), cin=16, clamp=None),
    PwCase(Case(3, 1, "channel", "int8", 1, channels=48, h=6, w=8), cin=8),
    PwCase(Case(3, 2, None, "int8", 3, channels=58, h=5, w=6), cin=58, clamp="relu", conv_bias=False),
    PwCase(Case(5, 1, "map", "int8", 3, channels=24, h=4, w=9), cin=8, clamp=None),
    PwCase(Case(3, 1, "map", "float32", "N", channels=144, h=4, w=6), cin=24),  # dynamic batch, run at 3; 9 vectors
    PwCase(Case(3, 1, "channel", "float32", 2, channels=240, h=3, w=4), cin=40, clamp="relu"),  # 4 chunks of vectors
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_folded_pointwise_matches_float64_truth(case: PwCase, extension: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Folded (and, for reference, not folded) against the float64 truth; one convolution folded
    (any cin and batch: the default limits lifted), read NHWC or, after a residual Add, NCHW."""
    from tvexport.openvino import runtime

    monkeypatch.setattr(runtime, "POINTWISE_MAX_CIN", 4096)
    monkeypatch.setattr(runtime, "POINTWISE_MIN_BATCH", 1)
    model, truth = pointwise_graph(case)
    n = 3 if case.tv.batch == "N" else int(case.tv.batch)
    x = _x(case, n)
    expected = truth(x.astype(np.float64))
    fused = OpenVinoRunner(model, what=case.id, extension=extension, fuse_pointwise=True)
    assert fused.folded_pointwise == 1
    op = next(o for o in fused.compiled.get_runtime_model().get_ordered_ops() if o.get_friendly_name() == "tv")
    assert op.get_input_partial_shape(0)[1].get_length() == (case.cin if case.residual else x.shape[2])  # NCHW / NHWC
    assert rel_err(fused(x), expected) < RTOL
    plain = OpenVinoRunner(model, what=case.id, extension=extension, fuse_pointwise=False)
    assert plain.folded_pointwise == 0
    assert rel_err(plain(x), expected) < RTOL


def test_wrong_prologue_is_far_off(extension: Path) -> None:
    """The test can fail: a missing clamp or bias before the TV op is far from the truth."""
    case = PwCase(Case(3, 2, "channel", "float32", 2, channels=48, h=6, w=9), cin=8)
    model, truth = pointwise_graph(case)
    x = _x(case, 2)
    runner = OpenVinoRunner(model, extension=extension, fuse_pointwise=True)
    assert runner.folded_pointwise == 1
    got = runner(x)
    for wrong in (dataclasses.replace(case, clamp=None), dataclasses.replace(case, conv_bias=False)):
        _, wrong_truth = pointwise_graph(wrong)
        assert rel_err(got, wrong_truth(x.astype(np.float64))) > 100 * RTOL
    assert rel_err(got, truth(x.astype(np.float64))) < RTOL


@pytest.mark.parametrize("how", ["two-readers", "3x3-conv", "stride-2-conv"])
def test_not_folded_where_the_pattern_fails(how: str, extension: Path) -> None:
    """A convolution with another reader, a 3x3 one or a stride-2 one stays (graph unchanged) and
    the result is right."""
    case = PwCase(Case(3, 1, "channel", "float32", 2, channels=48, h=5, w=6), cin=8)
    kwargs: dict[str, Any] = {"two-readers": {"second_reader": True}, "3x3-conv": {"kernel": 3}, "stride-2-conv": {"stride": 2}}[how]
    model, truth = pointwise_graph(case, **kwargs)
    x = _x(case, 2, scale=kwargs.get("stride", 1))
    runner = OpenVinoRunner(model, extension=extension, fuse_pointwise=True)
    assert runner.folded_pointwise == 0
    outs = runner.request.infer({0: x})
    got = np.asarray(outs[runner.compiled.outputs[0]])
    assert rel_err(got, truth(x.astype(np.float64))) < RTOL


def test_environment_switch(extension: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TVEXPORT_OV_FUSE_POINTWISE=0|1 when the runner is not told; the keyword wins; other values refused."""
    from tvexport.errors import TvexportError

    model, _ = pointwise_graph(PwCase(Case(3, 1, "channel", "float32", 2, channels=48, h=5, w=6)))
    monkeypatch.setenv("TVEXPORT_OV_FUSE_POINTWISE", "0")
    assert OpenVinoRunner(model, extension=extension).folded_pointwise == 0
    assert OpenVinoRunner(model, extension=extension, fuse_pointwise=True).folded_pointwise == 1
    monkeypatch.setenv("TVEXPORT_OV_FUSE_POINTWISE", "1")
    assert OpenVinoRunner(model, extension=extension).folded_pointwise == 1
    monkeypatch.setenv("TVEXPORT_OV_FUSE_POINTWISE", "yes")
    with pytest.raises(TvexportError, match="TVEXPORT_OV_FUSE_POINTWISE='yes' is neither 0 nor 1"):
        OpenVinoRunner(model, extension=extension)


TILED_CASES = [
    PwCase(Case(3, 1, "map", "float32", 5, channels=48, h=20, w=21), cin=8),
    PwCase(Case(3, 2, "channel", "int8", 5, channels=48, h=16, w=18), cin=8),
    PwCase(Case(7, 2, "map", "float32", 5, channels=48, h=10, w=13), cin=8),
    PwCase(Case(5, 2, None, "float16", 3, channels=96, h=17, w=16), cin=16, clamp="relu", residual=True),
    PwCase(Case(7, 1, "channel", "float32", 5, channels=24, h=18, w=19), cin=24, clamp=None, conv_bias=False),
]


@pytest.mark.parametrize("budget", ["4096", "16384"], ids=["4k", "16k"])
@pytest.mark.parametrize("case", TILED_CASES, ids=lambda c: c.id)
def test_folded_pointwise_across_tiles(case: PwCase, budget: str, extension: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Small tiles (TVEXPORT_OV_BLOCK_BYTES 4 / 16 KiB of stored kernels: a few positions each), so
    the prologue runs for row and column tiles that share input rows and columns at their edges,
    at stride 1 and 2, k 3/5/7, every dtype, a narrower last batch tile, two threads: against the
    float64 truth (CASES' spatial sizes fit one tile)."""
    from tvexport.openvino import runtime

    monkeypatch.setenv("TVEXPORT_OV_BLOCK_BYTES", budget)
    monkeypatch.setenv("TVEXPORT_OV_INT8_WIDE_TILES", "0")
    monkeypatch.setattr(runtime, "POINTWISE_MAX_CIN", 4096)
    monkeypatch.setattr(runtime, "POINTWISE_MIN_BATCH", 1)
    model, truth = pointwise_graph(case)
    x = _x(case, int(case.tv.batch))
    fused = OpenVinoRunner(model, what=case.id, extension=extension, fuse_pointwise=True, threads=2)
    assert fused.folded_pointwise == 1
    assert rel_err(fused(x), truth(x.astype(np.float64))) < RTOL


@pytest.mark.parametrize(("name", "folds"), [("face_mobilenetv2_x0_1", 16), ("face_shufflenetv2_x1_0", 1)])
def test_zoo_network_folded(name: str, folds: int, extension: Path) -> None:
    """A whole zoo network (random weights and posi_map, dynamic batch) with every 1x1 convolution
    before a TV op folded, against the float64 unbaked torch model at batch 1 and 3 (the float32
    validation rule, as tests/test_openvino.py's network tests)."""
    net = _network(name)
    runner = OpenVinoRunner(net.graph, extension=extension, fuse_pointwise=True)
    assert runner.folded_pointwise == folds
    errors = net.errors(runner, (1, 3))
    assert _within(errors), errors


BATCH1_SCRIPT = """
import sys
import numpy as np
import test_openvino_pointwise as tp
from pathlib import Path
from tvexport.openvino import OpenVinoRunner
case = tp.PwCase(tp.Case(3, 2, "channel", "float32", 1, channels=48, h=6, w=9), cin=8)
model, truth = tp.pointwise_graph(case)
r = OpenVinoRunner(model, extension=Path(sys.argv[1]), fuse_pointwise=True)
x = tp._x(case, 1)
print(r.kernel, "|", r.folded_pointwise, "|", tp.rel_err(r(x), truth(x.astype(np.float64))))
"""


def in_each_variant(script: str, extension: Path) -> list[tuple[str, str]]:
    """(variant, stdout) of ``script`` run with the extension's path as its argument in a fresh
    process per kernel variant, each forced by TVEXPORT_OV_KERNEL (read once, as the library loads;
    a variant the CPU lacks falls back to a narrower one); a failed run fails the test."""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(root / "tests"), os.environ.get("PYTHONPATH", "")])}
    runs = []
    for variant in ("generic", "avx2", "avx512"):
        proc = subprocess.run([sys.executable, "-c", script, str(extension)], env={**env, "TVEXPORT_OV_KERNEL": variant},
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, (variant, proc.stderr[-2000:])
        runs.append((variant, proc.stdout))
    return runs


def test_static_batch_1_folds_with_avx512_only(extension: Path) -> None:
    """A static batch 1 folds with the AVX-512 kernel variant, not with the others
    (runtime.pointwise_min_batch): each variant the CPU runs, forced by TVEXPORT_OV_KERNEL in a
    fresh process (one it lacks falls back), against the float64 truth either way."""
    from tvexport.openvino import runtime

    assert runtime.pointwise_min_batch(runtime.AVX512_KERNEL) == 1
    assert runtime.pointwise_min_batch("x86-64-v3 (AVX2, FMA, F16C)") == runtime.pointwise_min_batch(None) == 2
    seen = set()
    for variant, stdout in in_each_variant(BATCH1_SCRIPT, extension):
        kernel, folded, err = (part.strip() for part in stdout.strip().rsplit("|", 2))
        seen.add(kernel)
        assert int(folded) == (1 if kernel == runtime.AVX512_KERNEL else 0), (variant, stdout)
        assert float(err) < RTOL, (variant, stdout)
    assert len(seen) >= 2, seen  # x86-64 builds have at least the baseline and AVX2 variants


def test_float16_activations_not_folded(extension: Path) -> None:
    """A float16 graph (float16 activations into the TV ops) keeps its convolutions: the prologue
    reads float32 only; the result stays within the float16 network rule."""
    net = _network("face_mobilenetv2_x0_1", dtype="float16")
    runner = OpenVinoRunner(net.graph, extension=extension, fuse_pointwise=True)
    assert runner.folded_pointwise == 0
    errors = net.errors(runner, (2,))
    assert _within(errors, floor=1e-2), errors


def test_wide_convolutions_stay(extension: Path) -> None:
    """By default a convolution of more than POINTWISE_MAX_CIN input channels is not folded."""
    from tvexport.openvino.runtime import POINTWISE_MAX_CIN

    case = PwCase(Case(3, 1, "channel", "float32", 2, channels=48, h=5, w=6), cin=POINTWISE_MAX_CIN + 1)
    model, truth = pointwise_graph(case)
    runner = OpenVinoRunner(model, extension=extension, fuse_pointwise=True)
    assert runner.folded_pointwise == 0
    x = _x(case, 2)
    assert rel_err(runner(x), truth(x.astype(np.float64))) < RTOL
    model, _ = pointwise_graph(dataclasses.replace(case, cin=POINTWISE_MAX_CIN))
    assert OpenVinoRunner(model, extension=extension, fuse_pointwise=True).folded_pointwise == 1


@pytest.mark.parametrize("how", ["channel-add", "position-add", "grouped"])
def test_bias_add_and_groups(how: str, extension: Path) -> None:
    """The rewrite's conditions on the graph's own nodes: an explicit Add of a (1, C, 1, 1) constant
    after the convolution folds as its bias (and the result is the float64 truth); an Add of a
    constant that varies over the positions (1, C, h, w) is no bias and nothing folds; a grouped 1x1
    convolution (OpenVINO's GroupConvolution) is not a Convolution and stays. Not folded: the same
    result as the runner without the fold."""
    case = PwCase(Case(3, 1, "channel", "float32", 2, channels=48, h=5, w=6), cin=8)
    model, truth = pointwise_graph(case)
    g = model.graph
    conv = next(n for n in g.node if n.op_type == "Conv")
    inits = {t.name: t for t in g.initializer}
    pb = numpy_helper.to_array(inits["pw.bias"])
    if how == "grouped":
        w = numpy_helper.to_array(inits["pw.weight"])
        inits["pw.weight"].CopyFrom(numpy_helper.from_array(np.ascontiguousarray(w[:, : case.cin // 2]), "pw.weight"))
        conv.attribute.append(helper.make_attribute("group", 2))
    else:
        h_in, w_in = case.tv.h, case.tv.w  # stride 1
        value = pb.reshape(1, -1, 1, 1)
        if how == "position-add":
            value = value + np.linspace(-1.0, 1.0, h_in * w_in, dtype=np.float32).reshape(1, 1, h_in, w_in)
        g.initializer.append(numpy_helper.from_array(np.ascontiguousarray(value, dtype=np.float32), "add.bias"))
        del conv.input[2]
        out = conv.output[0]
        conv.output[0] = "conv_raw"
        g.node.insert(list(g.node).index(conv) + 1, helper.make_node("Add", ["conv_raw", "add.bias"], [out]))
    x = _x(case, 2)
    runner = OpenVinoRunner(model, extension=extension, fuse_pointwise=True)
    assert runner.folded_pointwise == (1 if how == "channel-add" else 0)
    if how == "channel-add":
        assert rel_err(runner(x), truth(x.astype(np.float64))) < RTOL
    else:
        plain = OpenVinoRunner(model, extension=extension, fuse_pointwise=False)
        assert rel_err(runner(x), plain(x)) < RTOL


# Positions per load_row call at stride 1 (pad 1, one tile per row): the input width. Widths 1-9
# leave every remainder of every block shape (kernel.cpp: pw_positions, NP 4, 6 or 8) and a full
# block; channels 24, 64 and 70 give blocks of 1-4 vectors in both vector widths (AVX2: 8 floats,
# 4 / 8 / 10 vectors in chunks of <= 3; elsewhere 16 floats, 2 / 4 / 5 in chunks of <= 4).
REMAINDER_SCRIPT = """
import sys
import numpy as np
import test_openvino_pointwise as tp
from pathlib import Path
from tvexport.openvino import OpenVinoRunner
worst, n, kernel = 0.0, 0, None
for c in (24, 64, 70):
    for w in range(1, 10):
        case = tp.PwCase(tp.Case(3, 1, "channel", "float32", 2, channels=c, h=2, w=w), cin=8, residual=w % 2 == 0)
        model, truth = tp.pointwise_graph(case, seed=w)
        r = OpenVinoRunner(model, extension=Path(sys.argv[1]), fuse_pointwise=True)
        assert r.folded_pointwise == 1, case.id
        x = tp._x(case, 2)
        worst, n, kernel = max(worst, tp.rel_err(r(x), truth(x.astype(np.float64)))), n + 1, r.kernel
print(kernel, worst, n)
"""


def test_prologue_blocks_every_variant(extension: Path) -> None:
    """Every register block shape of the prologue, its remainders included, in every kernel variant
    the CPU runs (forced by TVEXPORT_OV_KERNEL in a fresh process; one it lacks falls back): the
    AVX2 variant's blocks differ from the others' (8-float vectors)."""
    for variant, stdout in in_each_variant(REMAINDER_SCRIPT, extension):
        kernel, err, n = stdout.strip().rsplit(" ", 2)
        assert float(err) < RTOL and int(n) == 27, (variant, stdout)


# Every input channel count the default limit folds takes one of two routes in the AVX2 and AVX-512
# variants (kernel.cpp: pointwise): 8, 16 and 24 with cin at compile time (AVX2's 3-vector chunks
# as pointwise_chunk_asm), any other at run time; the baseline runs them all at run time. Each
# route with every kernel dtype, stride 1 and 2, NHWC and NCHW, a static batch 1 (the one-image
# kernels) and a dynamic batch run at 1 and 2, in every variant the CPU runs. AVX2's asm route
# needs 3-vector chunks: C 48, 96 and 144 (6, 12, 18 vectors of 8; C 24 pads to 32: 2 + 2).
CIN_SCRIPT = """
import sys
import numpy as np
import test_openvino_pointwise as tp
from pathlib import Path
from tvexport.openvino import OpenVinoRunner, runtime
runtime.POINTWISE_MIN_BATCH = 1  # a static batch 1 folds in every variant here
cases = [
    tp.PwCase(tp.Case(3, 1, "channel", "float32", 1, channels=48, h=5, w=7), cin=1),
    tp.PwCase(tp.Case(5, 2, None, "float16", 2, channels=70, h=4, w=5), cin=5, clamp=None, residual=True),
    tp.PwCase(tp.Case(3, 2, "channel", "int8", 1, channels=48, h=6, w=9), cin=8),
    tp.PwCase(tp.Case(3, 2, "map", "float32", 2, channels=58, h=4, w=6), cin=13, clamp="relu", conv_bias=False),
    tp.PwCase(tp.Case(3, 1, "channel", "float16", 1, channels=96, h=4, w=7), cin=16, residual=True),
    tp.PwCase(tp.Case(5, 1, "map", "int8", "N", channels=24, h=4, w=9), cin=16, clamp=None),
    tp.PwCase(tp.Case(3, 1, None, "int8", 2, channels=58, h=5, w=6), cin=23, clamp=None, residual=True),
    tp.PwCase(tp.Case(3, 2, "map", "float32", 1, channels=144, h=4, w=5), cin=24),
    tp.PwCase(tp.Case(3, 1, "channel", "float16", "N", channels=48, h=5, w=6), cin=24, clamp="relu"),
]
for case in cases:
    model, truth = tp.pointwise_graph(case, seed=case.cin)
    r = OpenVinoRunner(model, what=case.id, extension=Path(sys.argv[1]), fuse_pointwise=True)
    assert r.folded_pointwise == 1, case.id
    for n in ((1, 2) if case.tv.batch == "N" else (int(case.tv.batch),)):
        x = tp._x(case, n)
        print(r.kernel, "|", case.id, n, "|", tp.rel_err(r(x), truth(x.astype(np.float64))))
"""


def test_prologue_every_cin_route_every_variant(extension: Path) -> None:
    """The prologue's compile-time (8, 16, 24) and run-time (1, 5, 13, 23) input channel counts
    against the float64 truth in every kernel variant the CPU runs (forced by TVEXPORT_OV_KERNEL in
    a fresh process; one it lacks falls back): the default variant's runs (CASES) leave the others'
    routes untested on a CPU that has AVX-512."""
    seen = set()
    for variant, stdout in in_each_variant(CIN_SCRIPT, extension):
        rows = [line.rsplit("|", 2) for line in stdout.strip().splitlines()]
        assert len(rows) == 11, (variant, stdout)
        seen |= {kernel.strip() for kernel, _, _ in rows}
        bad = [(what.strip(), err.strip()) for _, what, err in rows if not float(err) < RTOL]
        assert not bad, (variant, bad)
    assert len(seen) >= 2, seen  # x86-64 builds have at least the baseline and AVX2 variants


@pytest.mark.parametrize("residual", [True, False], ids=["nchw", "nhwc"])
def test_other_transpose_orders_stay(residual: bool, extension: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A TV op whose Transpose has another order than NCHW to NHWC (here (0, 3, 2, 1): H and W
    swapped, a square layer) keeps its convolution, and the result is the float64 truth of that
    graph: the TV layer over the expanded activation with H and W swapped. Folded, the prologue read
    the convolution's input as if the order were NCHW to NHWC (after a residual Add: the unswapped
    result)."""
    import tempfile

    import onnx
    import openvino as ov
    from openvino import opset13 as ops

    import test_openvino_pointwise as tp
    from tvexport.openvino import runtime

    case = PwCase(Case(3, 1, "map", "float32", 2, channels=48, h=6, w=6), cin=8, residual=residual)
    model, _ = pointwise_graph(case)
    core = ov.Core()
    core.add_extension(str(extension))
    with tempfile.TemporaryDirectory() as tmp:
        onnx.save(model, f"{tmp}/m.onnx")
        graph = core.read_model(f"{tmp}/m.onnx")
    op = next(o for o in graph.get_ordered_ops() if o.get_type_name() == "TVDWConvNHWC")
    transpose = op.input_value(0).get_node()
    assert list(transpose.input_value(1).get_node().get_data()) == [0, 2, 3, 1]
    transpose.input(1).replace_source_output(ops.constant(np.array([0, 3, 2, 1], np.int64)).output(0))
    transpose.validate_and_infer_types()
    op.validate_and_infer_types()
    folded = runtime.fuse_pointwise_convs(graph)
    x = _x(case, 2)
    got = np.asarray(core.compile_model(graph, "CPU", {"INFERENCE_PRECISION_HINT": "f32"}).create_infer_request().infer({0: x})[0])
    truth_of = tp.truth_of
    monkeypatch.setattr(tp, "truth_of", lambda e, w, b, s: truth_of(np.ascontiguousarray(e.transpose(0, 1, 3, 2)), w, b, s))
    _, swapped = tp.pointwise_graph(case)
    assert (folded, rel_err(got, swapped(x.astype(np.float64))) < RTOL) == ((), True)
