"""The fused Triton TV kernel: launch geometry (pure), the torch op (CPU), the kernel itself run by
Triton's interpreter on CPU against the torch references, its ahead-of-time PTX build, and (on a
CUDA machine only) the compiled kernel.

Interpreter and compile runs happen in a subprocess (this file run as a script): TRITON_INTERPRET
must be set before triton decorates the kernel, and the pytest process stays free of triton.
"""

from __future__ import annotations

import importlib.util
import inspect
import itertools
import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import torch

from tvexport.kernels._config import (
    BIAS_CHANNEL,
    BIAS_MAP,
    BIAS_NONE,
    KERNEL_NAME_MAX,
    MAX_TILE,
    LaunchConfig,
    aot_configs,
    bias_mode,
    cdiv,
    launch_config,
)

HAS_TRITON = importlib.util.find_spec("triton") is not None
needs_triton = pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed (pip install 'tvexport[triton]')")
needs_cuda = pytest.mark.skipif(not (HAS_TRITON and torch.cuda.is_available()), reason="needs a CUDA GPU and triton")

# Output geometry (C, OH, OW, stride) of every TV layer of face_mobilenetv2_x1_0 (96x96 input, k=3).
FACE_X1_0 = [(32, 96, 96, 1), (96, 48, 48, 2), (144, 48, 48, 1), (144, 24, 24, 2), (192, 24, 24, 1), (192, 12, 12, 2),
             (384, 12, 12, 1), (576, 12, 12, 1), (576, 6, 6, 2), (960, 6, 6, 1)]


# --------------------------------------------------------------------------- launch geometry


@pytest.mark.parametrize("channels, plane", [(1, 1), (3, 7), (1, 64), (32, 9216), (960, 36), (7, 5_000_000)])
@pytest.mark.parametrize("batch", [1, 2, 3, 17, 32, 100])
@pytest.mark.parametrize("sm_count", [1, 8, 132])
def test_launch_config_covers_every_output_exactly(channels: int, plane: int, batch: int, sm_count: int) -> None:
    cfg = launch_config(channels, plane=plane, batch=batch, sm_count=sm_count)
    assert cfg.block & (cfg.block - 1) == 0 and cfg.batch_tile & (cfg.batch_tile - 1) == 0
    assert cfg.block * cfg.batch_tile <= MAX_TILE
    tiles = cfg.tiles(plane)
    assert (tiles - 1) * cfg.block < plane <= tiles * cfg.block  # every position, no empty tile
    groups = cdiv(batch, cfg.batch_tile)
    assert (groups - 1) * cfg.batch_tile < batch <= groups * cfg.batch_tile
    assert cfg.grid(channels, plane, batch) == (channels * tiles * groups,)
    assert cfg.batch_tile <= max(1, 2 * batch - 1)  # no batch lanes beyond the next power of two
    assert cfg.block // (32 * cfg.num_warps) >= min(4, cfg.block // 32)  # 4 consecutive positions per thread: 128-bit fp32 rows
    half = launch_config(channels, plane=plane, batch=batch, sm_count=sm_count, x_bytes=2)
    assert half.block // (32 * half.num_warps) >= min(8, half.block // 32)  # 8 per thread: 128-bit fp16 rows


def test_batch_one_is_one_sample_per_program_and_large_layers_share_kernel_tiles() -> None:
    for c, oh, ow, _ in FACE_X1_0:
        assert launch_config(c, plane=oh * ow, batch=1, sm_count=132).batch_tile == 1
        cfg = launch_config(c, plane=oh * ow, batch=32, sm_count=132)
        if c * oh * ow >= 4 * 132 * 256:  # big layers: 8 samples per kernel read, 4 adjacent programs per kernel tile
            assert cfg.batch_tile == 8 and cfg.weight_reads(32) == 4, (c, oh, ow, cfg)


def test_small_layers_trade_batch_tile_for_programs() -> None:
    cfg = launch_config(4, plane=36, batch=256, sm_count=132)  # tiny planes: smaller batch tiles until the GPU is busy
    assert cfg.block == 64 and cfg.batch_tile == 1 and cfg.grid(4, 36, 256)[0] >= 4 * 132


def test_aot_configs_follow_the_profile() -> None:
    one = aot_configs(96, plane=48 * 48, opt_batch=1)
    assert all(c.batch_tile == 1 for c in one)  # batch-1 latency profile
    big = aot_configs(96, plane=48 * 48, opt_batch=32)
    assert all(c.batch_tile == 8 for c in big)
    assert len({c.block for c in big}) == len(big) >= 2  # distinct tactics for TensorRT to time


def test_launch_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        launch_config(0, plane=1, batch=1)
    with pytest.raises(ValueError):
        LaunchConfig(block=96, batch_tile=1, num_warps=4)
    with pytest.raises(ValueError):
        LaunchConfig(block=64, batch_tile=3, num_warps=4)


def test_launch_options_are_keyword_only() -> None:
    """House standard: only the subject may be positional. Before: ``launch_config(c, plane, batch)``,
    ``aot_configs(c, plane, opt_batch)`` and ``bias_mode(shape, c, oh, ow)`` took their shape facts
    positionally (two swapped ints were read silently), and ``LaunchConfig``, a record with no
    subject, its three fields (``LaunchConfig(64, 1, 2)``)."""
    import inspect

    for f in (launch_config, aot_configs, bias_mode):
        params = list(inspect.signature(f).parameters.values())
        assert [p.name for p in params if p.kind != p.KEYWORD_ONLY] == [params[0].name], f.__name__
    with pytest.raises(TypeError):
        LaunchConfig(64, 1, 2)  # type: ignore[misc]
    assert launch_config(48, plane=24 * 24, batch=2) == launch_config(48, batch=2, plane=24 * 24)


def test_index_range_is_the_kernels_32_bit_arithmetic() -> None:
    """The kernel's channel offsets (c * H*W, c * k*k*OH*OW), N and the program id are int32: the
    largest layer and batch that fit pass, one element or one program more is refused."""
    from tvexport.kernels._config import INT32_MAX, check_index_range

    one = LaunchConfig(block=32, batch_tile=1, num_warps=1)
    check_index_range(geometry=(1, INT32_MAX, 1, 1, 1), k=1, batch=1, config=one, batch_fix="fix", layer_fix="layer fix")
    with pytest.raises(ValueError, match=r"one sample of its input \(C\*H\*W\) has 2147483648 elements, over 2\*\*31 - 1; layer fix$"):
        check_index_range(geometry=(2, 2**30, 1, 1, 1), k=1, batch=1, config=one, batch_fix="fix", layer_fix="layer fix")
    with pytest.raises(ValueError, match=r"its kernel tensor \(C\*k\*k\*OH\*OW\) has 2147483656 elements, over 2\*\*31 - 1; layer fix$"):
        check_index_range(geometry=(8, 1, 1, 2**28 + 1, 1), k=1, batch=1, config=one, batch_fix="fix", layer_fix="layer fix")
    check_index_range(geometry=(1, 1, 1, 1, 1), k=1, batch=INT32_MAX, config=one, batch_fix="fix", layer_fix="layer fix")  # one program per sample
    with pytest.raises(ValueError, match=r"^batch 2147483648 is too large .*; fix$"):
        check_index_range(geometry=(1, 1, 1, 1, 1), k=1, batch=2**31, config=one, batch_fix="fix", layer_fix="layer fix")
    eight = LaunchConfig(block=32, batch_tile=8, num_warps=1)
    with pytest.raises(ValueError, match="32-bit integer"):  # N + BATCH_TILE - 1 (tl.cdiv) must fit too
        check_index_range(geometry=(1, 1, 1, 1, 1), k=1, batch=INT32_MAX, config=eight, batch_fix="fix", layer_fix="layer fix")
    with pytest.raises(ValueError, match=r"^batch 65536 needs 2147549184 programs .*; fix$"):
        check_index_range(geometry=(2**15 + 1, 1, 1, 1, 1), k=1, batch=2**16, config=one, batch_fix="fix", layer_fix="layer fix")


@needs_triton
def test_launcher_refuses_a_batch_beyond_int32_before_allocating() -> None:
    """Before: only the layer's size was checked, so N = 2**31 went on to the launch (meta tensors
    here: nothing is allocated, and the refusal comes first)."""
    from tvexport.kernels._triton import tv_dwconv_triton

    x = torch.empty((2**31, 1, 3, 3), device="meta")
    w = torch.empty((1, 9, 3, 3), device="meta")
    with pytest.raises(ValueError, match=r"^batch 2147483648 is too large .*; run it in smaller batches$"):
        tv_dwconv_triton(x, w, None, stride=1)


def test_bias_modes() -> None:
    assert bias_mode(None, channels=4, oh=3, ow=5) == BIAS_NONE
    assert bias_mode((4, 3, 5), channels=4, oh=3, ow=5) == BIAS_MAP
    assert bias_mode((1, 4, 3, 5), channels=4, oh=3, ow=5) == BIAS_MAP
    assert bias_mode((4, 1, 1), channels=4, oh=3, ow=5) == BIAS_CHANNEL
    for bad in [(3, 3, 5), (4, 5, 3), (4, 3), (60,), (4,)]:
        with pytest.raises(ValueError):
            bias_mode(bad, channels=4, oh=3, ow=5)


# --------------------------------------------------------------------------- the torch op (CPU)


def test_op_on_cpu_is_the_torch_implementation() -> None:
    from tvexport.kernels import tv_dwconv
    from tvexport.layers import tv_depthwise_unfold

    torch.manual_seed(0)
    x, w, b = torch.randn(2, 3, 8, 10), torch.randn(3, 9, 4, 5), torch.randn(3, 4, 5)
    torch.testing.assert_close(tv_dwconv(x, w, b, 2), tv_depthwise_unfold(x, w, b, stride=2), rtol=1e-5, atol=1e-5)
    assert torch.ops.tvexport.tv_dwconv.default(x, w, None, 2).shape == (2, 3, 4, 5)
    q, scale = torch.randint(-127, 128, (3, 9, 4, 5), dtype=torch.int8), torch.rand(3, 9, 1, 1) / 64
    ref = tv_depthwise_unfold(x.double(), q.double() * scale.double(), b.double(), stride=2)
    got = tv_dwconv(x.half(), q, b, 2, scale)  # int8 kernels, float16 activations: output float16
    assert got.dtype == torch.float16
    torch.testing.assert_close(got.double(), ref, rtol=0, atol=2 * 2**-11 * float(ref.abs().max()))
    with pytest.raises(ValueError, match="scale"):
        tv_dwconv(x, q, b, 2)


def test_one_dimensional_bias_is_refused_on_every_path() -> None:
    """A (C,) bias would be added along W by torch and per channel by the kernels, so every path
    refuses it with one ValueError, here where C == OW and torch's broadcast would pass silently;
    the per-channel bias is (C, 1, 1)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    from tvexport.kernels import tv_dwconv
    from tvexport.layers import tv_depthwise, tv_depthwise_unfold

    torch.manual_seed(0)
    c, oh, ow = 4, 5, 4
    x, w, b = torch.randn(2, c, oh, ow), torch.randn(c, 9, oh, ow), torch.randn(c)
    ref = tv_depthwise_unfold(x.double(), w.double(), b.double().view(c, 1, 1))
    torch.testing.assert_close(tv_dwconv(x, w, b.view(c, 1, 1), 1).double(), ref, rtol=1e-6, atol=1e-6)
    refused = r"\(4,\) fits neither \(4, 5, 4\) nor \(4, 1, 1\); a per-channel bias is \(C, 1, 1\), not \(C,\)"
    for run in (lambda: tv_dwconv(x, w, b, 1),  # the op on CPU
                lambda: torch.ops.tvexport.tv_dwconv.default(x.half(), w.half(), b.half(), 1),
                lambda: tv_depthwise(x, w, b), lambda: tv_depthwise_unfold(x, w, b),
                lambda: bias_mode((c,), channels=c, oh=oh, ow=ow)):  # what the Triton launcher and the TensorRT plugin read
        with pytest.raises(ValueError, match=refused):
            run()
    with FakeTensorMode(), pytest.raises(ValueError, match=refused):  # traced: torch.compile / torch.export
        tv_dwconv(torch.empty(2, c, oh, ow), torch.empty(c, 9, oh, ow), torch.empty(c), 1)
    if importlib.util.find_spec("onnx") is not None:  # the ONNX node's numpy reference (validate)
        from tvexport.export._plugin_ref import tv_dwconv_reference

        with pytest.raises(ValueError, match=r"bias must be .* or \(C, 1, 1\), got \(4,\)"):
            tv_dwconv_reference(x.numpy(), w.numpy(), b.numpy(), k=3, stride=1, padding=1)


def test_cuda_op_runs_triton_only_for_the_dtypes_it_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """The op's CUDA registration, called directly (no GPU here) with a stub Triton launcher: bfloat16
    and float64 activations, which the CPU registration takes, get the same torch form on CUDA
    instead of the kernel's TypeError; float32/float16 (int8 kernels too) still go to Triton."""
    import types

    from tvexport.kernels import _op

    calls = []
    stub = types.ModuleType("tvexport.kernels._triton")
    stub.tv_dwconv_triton = lambda x, w, b, **kw: calls.append((x.dtype, w.dtype)) or x.new_zeros(())  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tvexport.kernels._triton", stub)
    torch.manual_seed(0)
    x, w, b = torch.randn(2, 3, 8, 10), torch.randn(3, 9, 4, 5), torch.randn(3, 4, 5)
    cases = []
    for xdt, wdt in ((torch.bfloat16, torch.bfloat16), (torch.bfloat16, torch.float32), (torch.float64, torch.float64),
                     (torch.float32, torch.bfloat16), (torch.float32, torch.float64)):
        args = (x.to(xdt), w.to(wdt), b.to(wdt), 2)
        cases.append(args)
    # a bias the kernel does not read, beside activations and kernels it does
    cases += [(x, w, b.bfloat16(), 2), (x.half(), w.half(), b.double(), 2)]
    for args in cases:
        got = _op._tv_dwconv_cuda(*args)
        assert not calls, f"{[t.dtype for t in args[:3]]} (x, kernels, bias) went to the Triton kernel"
        assert got.dtype == args[0].dtype
        torch.testing.assert_close(got, torch.ops.tvexport.tv_dwconv(*args), rtol=0, atol=0)  # the CPU registration
    assert calls == []
    q, scale = torch.randint(-127, 128, w.shape, dtype=torch.int8), torch.rand(3, 9, 1, 1)
    _op._tv_dwconv_cuda(x, w, b, 2)
    _op._tv_dwconv_cuda(x.half(), w.half(), b.half(), 2)
    _op._tv_dwconv_cuda(x.half(), q, b, 2, scale)
    assert calls == [(torch.float32, torch.float32), (torch.float16, torch.float16), (torch.float16, torch.int8)]


def test_op_passes_opcheck() -> None:
    """Schema, fake (meta) implementation and dispatch registrations are consistent."""
    from tvexport.kernels import tv_dwconv  # noqa: F401  (registers the op)

    torch.manual_seed(0)
    for args in [(torch.randn(2, 3, 6, 6), torch.randn(3, 9, 6, 6), None, 1),
                 (torch.randn(1, 2, 8, 6), torch.randn(2, 25, 4, 3), torch.randn(2, 1, 1), 2),
                 (torch.randn(1, 2, 8, 6), torch.randint(-9, 9, (2, 9, 4, 3), dtype=torch.int8), None, 2, torch.rand(2, 9, 1, 1))]:
        torch.library.opcheck(torch.ops.tvexport.tv_dwconv.default, args)


def test_fake_tensor_shapes() -> None:
    from torch._subclasses.fake_tensor import FakeTensorMode

    from tvexport.kernels import tv_dwconv

    with FakeTensorMode():
        out = tv_dwconv(torch.empty(5, 4, 12, 12), torch.empty(4, 9, 6, 6), torch.empty(4, 6, 6), 2)
    assert out.shape == (5, 4, 6, 6)
    with pytest.raises(ValueError, match="trained"):
        tv_dwconv(torch.randn(1, 4, 10, 10), torch.randn(4, 9, 6, 6), None, 2)


def test_import_tvexport_stays_free_of_triton() -> None:
    code = (
        "import sys, torch, tvexport, tvexport.kernels, tvexport.trt\n"
        "from tvexport.layers import BakedTVConv\n"
        "layer = BakedTVConv(3, k=3, stride=1, h=4, w=4)\n"
        "layer(torch.randn(1, 3, 4, 4))\n"
        "print(sorted(m for m in ('triton', 'tensorrt', 'onnx', 'onnxruntime') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_depthwise_math_is_a_leaf_below_layers_and_kernels() -> None:
    """Data flows one way: _depthwise <- kernels <- layers (no module-level import back)."""
    import ast

    root = Path(__file__).resolve().parents[1] / "tvexport"

    def imports(path: Path) -> set[str]:
        tree = ast.parse(path.read_text())
        return {f"{'.' * n.level}{n.module or ''}" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}

    assert not any(m.lstrip(".").startswith(("layers", "kernels")) for m in imports(root / "_depthwise.py"))
    for f in (root / "kernels").glob("*.py"):
        assert not any(m in ("..layers", "...layers") for m in imports(f)), f


# --------------------------------------------------------------------------- interpreter (CPU)


def _interp_cases() -> list[dict]:
    """Every (k, stride, bias, activation dtype) with channels, size and batch varied across them,
    then the compressed kernels (float16, int8 + scale) under both activation dtypes."""
    shapes = itertools.cycle([(3, 5, 6, 3), (1, 4, 4, 1), (5, 7, 3, 5), (2, 6, 5, 2)])  # C, OH, OW, N
    cases = []
    for k, stride, bias, dtype in itertools.product((3, 5, 7), (1, 2), ("none", "map", "channel"), ("float32", "float16")):
        c, oh, ow, n = next(shapes)
        cases.append({"kind": "ref", "c": c, "oh": oh, "ow": ow, "n": n, "k": k, "stride": stride, "bias": bias, "dtype": dtype, "weight": dtype})
    for (k, stride, bias), weight, dtype in itertools.product(((3, 1, "map"), (5, 2, "channel"), (7, 2, "none")), ("float16", "int8"), ("float32", "float16")):
        c, oh, ow, n = next(shapes)
        cases.append({"kind": "ref", "c": c, "oh": oh, "ow": ow, "n": n, "k": k, "stride": stride, "bias": bias, "dtype": dtype, "weight": weight})
    # Forced tiles: several plane tiles, batch tiles and a partial last batch tile (masks at every edge).
    for cfg in ([32, 2, 1], [64, 4, 1], [32, 8, 1]):
        cases.append({"kind": "ref", "c": 6, "oh": 5, "ow": 7, "n": 5, "k": 3, "stride": 2, "bias": "map", "dtype": "float32", "weight": "float32", "config": cfg})
    # Input sizes the stride does not divide (7x9 at stride 2 -> 4x5, as a re-bake to another size gives).
    for k, bias in itertools.product((3, 5), ("map", "none")):
        cases.append({"kind": "ref", "c": 3, "oh": 4, "ow": 5, "n": 2, "k": k, "stride": 2, "bias": bias, "dtype": "float32", "weight": "float32", "in": [7, 9]})
    # The unbaked TVConv (generator + unfold, random posi_map) as reference.
    for k, stride, bias in itertools.product((3, 5), (1, 2), (False, True)):
        cases.append({"kind": "tvconv", "c": 4, "oh": 6, "ow": 5, "n": 3, "k": k, "stride": stride, "bias": bias, "dtype": "float32", "weight": "float32"})
    # Exactly the launch a TensorRT engine makes: each AOT tactic's tiles, (inputs, N, output) order.
    for stride, bias, n, weight in ((1, "channel", 1, "float32"), (2, "map", 11, "float32"), (2, "channel", 7, "int8")):
        cases.append({"kind": "aot", "c": 5, "oh": 6, "ow": 4, "n": n, "k": 3, "stride": stride, "bias": bias, "dtype": "float32", "weight": weight})
    return cases


INTERP_CASES = _interp_cases()


def _case_id(case: dict) -> str:
    extra = f"-cfg{'x'.join(map(str, case['config']))}" if "config" in case else ""
    extra += f"-in{case['in'][0]}x{case['in'][1]}" if "in" in case else ""
    w = "" if case["weight"] == case["dtype"] else f"-w{case['weight']}"
    return f"{case['kind']}-c{case['c']}-{case['oh']}x{case['ow']}-n{case['n']}-k{case['k']}-s{case['stride']}-{case['bias']}-{case['dtype']}{w}{extra}"


def _run_worker(mode: str, interpret: bool, timeout: float = 600) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    if interpret:
        env["TRITON_INTERPRET"] = "1"
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), mode], capture_output=True, text=True, env=env,
                          timeout=timeout, check=False)
    if proc.returncode != 0:
        pytest.fail(f"{mode} worker failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def interp_results() -> dict:
    if not HAS_TRITON:
        pytest.skip("triton is not installed (pip install 'tvexport[triton]')")
    return _run_worker("interp", interpret=True)


def _rtol(case: dict) -> float:
    return 1e-5 if case["dtype"] == "float32" else 6e-4  # fp16 activations: output rounding (2**-11) only


@needs_triton
@pytest.mark.parametrize("case", INTERP_CASES, ids=_case_id)
def test_interpreted_kernel_matches_reference(case: dict, interp_results: dict) -> None:
    r = interp_results[_case_id(case)]
    assert r["ref_max"] > 0.1  # a real signal, not zeros
    assert r["spread"] > 1e-3  # kernels differ across positions (random posi_map / random W)
    assert r["max_abs"] <= _rtol(case) * r["ref_max"] + 1e-6, r


# --------------------------------------------------------------------------- AOT build (CPU)


@pytest.fixture(scope="module")
def aot_results() -> dict:
    if not HAS_TRITON:
        pytest.skip("triton is not installed (pip install 'tvexport[triton]')")
    return _run_worker("aot", interpret=False)


@needs_triton
def test_aot_ptx_entry_is_exactly_what_tensorrt_passes(aot_results: dict) -> None:
    """TensorRT launches with (inputs..., int32 N, output): the PTX .entry declares exactly these,
    with triton's hidden scratch pointers (triton >= 3.3) removed."""
    for key, r in aot_results["kernels"].items():
        inputs = ["u64"] * (4 if "int8" in key else 3)
        assert r["params"] == [*inputs, "u32", "u64"], (key, r)
        assert len(r["dropped"]) == aot_results["hidden_params"], (key, r)  # what this triton appends
        assert r["block_threads"] == 32 * r["num_warps"] and r["shared_mem"] <= 4096  # 0 on triton 3.9; older ones shuffle a little
        assert r["target"].startswith(f"sm_{r['arch']}")
        assert len(r["name"]) <= KERNEL_NAME_MAX and r["ptxas_ok"], r


@needs_triton
def test_aot_weight_stream_is_vector_loads(aot_results: dict) -> None:
    """Stride 2 with a per-channel bias: x loads are strided gathers, so every 128-bit (fp32) or
    64/128-bit (fp16) global load is a kernel row; one per tap, each serving the whole batch tile."""
    for key, r in aot_results["kernels"].items():
        if "-s2-" in key and "int8" not in key:
            vec = r["ld_v4"] if "-fp32-" in key else r["ld_v2"] + r["ld_v4"]
            assert vec == r["k"] ** 2, (key, r)
        if "int8" in key:  # four int8 per thread and row: one 32-bit load, never bytewise
            assert r["ld_b8"] == 0 and r["ld_b32"] >= r["k"] ** 2, (key, r)
    s1 = aot_results["kernels"]["fp32-fp32-k3-s1-b0-sm90"]
    assert s1["ld_v4"] >= 9 + 3  # stride 1: the centre-column taps of x vectorise too


@needs_triton
def test_aot_ptx_isa_follows_the_driver(aot_results: dict) -> None:
    """driver_ptx_version against the installed triton, for real: its default ISA is the one the
    PTX carries, and an older driver caps it."""
    d = aot_results["driver"]
    assert d["default_isa"] == d["compiled_isa"] and d["default_isa"] >= 80
    assert d["cap_12_4"] == min(84, d["default_isa"]) and d["capped_ptx_version"] == "8.4"
    assert d["cap_99_0"] == d["default_isa"]  # a driver newer than triton knows takes triton's ISA
    assert d["cap_none"] is None and d["this_machine"] == d["expected_this_machine"]


_PTX = """.visible .entry k(
	.param .u64 .ptr .global .align 1 k_param_0,
	.param .u32 k_param_1,
	.param .u64 .ptr .global .align 1 k_param_2,
	.param .u64 .ptr .global .align 1 k_param_3
)
{
	ld.param.u64 	%rd1, [k_param_0];
	ld.param.u32 	%r1, [k_param_1];
	ld.param.u64 	%rd2, [k_param_2];
}"""


def test_strip_drops_only_unread_trailing_params() -> None:
    from tvexport.kernels._ptx import entry_params, strip_unused_params

    ptx, dropped = strip_unused_params(_PTX, 3)
    assert dropped == ("k_param_3",) and [n for _, n in entry_params(ptx)] == ["k_param_0", "k_param_1", "k_param_2"]
    assert strip_unused_params(ptx, 3) == (ptx, ())
    with pytest.raises(RuntimeError, match="k_param_2"):  # read by the body: never dropped
        strip_unused_params(_PTX, 2)


# --------------------------------------------------------------------------- CUDA (GPU machines)


@needs_cuda
@pytest.mark.parametrize("case", [c for c in INTERP_CASES if c["kind"] == "ref"], ids=_case_id)
def test_cuda_kernel_matches_reference(case: dict) -> None:
    if os.environ.get("TRITON_INTERPRET"):
        pytest.skip("TRITON_INTERPRET is set in this process")
    r = _check_case(case, device="cuda")
    assert r["max_abs"] <= _rtol(case) * r["ref_max"] + 1e-6, r


@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
def test_baked_layer_on_cuda_runs_the_triton_kernel(monkeypatch: pytest.MonkeyPatch, dtype: torch.dtype) -> None:
    if os.environ.get("TRITON_INTERPRET"):
        pytest.skip("TRITON_INTERPRET is set in this process")
    from tvexport.kernels import _triton
    from tvexport.layers import BakedTVConv

    calls = []
    real = _triton.tv_dwconv_triton
    monkeypatch.setattr(_triton, "tv_dwconv_triton", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    torch.manual_seed(0)
    layer = BakedTVConv(8, k=3, stride=2, h=6, w=6, bias="channel")
    layer.weight.normal_()
    layer.bias.normal_()  # type: ignore[union-attr]
    x = torch.randn(4, 8, 12, 12).to(dtype)
    ref = layer(x)  # CPU: float32 accumulation, output in x's dtype
    got = layer.cuda()(x.cuda()).cpu()
    assert calls, "BakedTVConv.forward did not use the Triton kernel on CUDA"
    assert got.dtype == dtype
    tol = 1e-5 if dtype == torch.float32 else 2 * 2**-11 * float(ref.float().abs().max())
    torch.testing.assert_close(got.float(), ref.float(), rtol=0, atol=tol)


@needs_cuda
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float64], ids=["bf16", "fp64"])
def test_baked_layer_on_cuda_takes_dtypes_the_kernel_lacks(dtype: torch.dtype) -> None:
    """bfloat16 and float64 activations run on CUDA (the torch form) as they do on CPU."""
    if os.environ.get("TRITON_INTERPRET"):
        pytest.skip("TRITON_INTERPRET is set in this process")
    from tvexport.layers import BakedTVConv

    torch.manual_seed(0)
    layer = BakedTVConv(8, k=3, stride=2, h=6, w=6, bias="map", dtype=torch.float64 if dtype == torch.float64 else torch.float32)
    layer.weight.normal_()
    layer.bias.normal_()  # type: ignore[union-attr]
    x = torch.randn(4, 8, 12, 12).to(dtype)
    ref = layer(x)
    got = layer.cuda()(x.cuda()).cpu()
    assert got.dtype == dtype
    torch.testing.assert_close(got.double(), ref.double(), rtol=0, atol=1e-12 if dtype == torch.float64 else 2 * 2**-8 * float(ref.double().abs().max()))


# --------------------------------------------------------------------------- worker side


def _seed(case: dict) -> int:
    return zlib.crc32(_case_id(case).encode())  # stable across processes, unlike hash()


def _make_inputs(case: dict, device: str) -> tuple:
    """x, weight, bias, scale in the case's dtypes, and the float64 kernels the reference uses."""
    g = torch.Generator().manual_seed(_seed(case))
    c, oh, ow, n, k, s = case["c"], case["oh"], case["ow"], case["n"], case["k"], case["stride"]
    dtype = getattr(torch, case["dtype"])
    h, wd = case.get("in", (oh * s, ow * s))
    x = torch.randn(n, c, h, wd, generator=g).to(dtype)
    w = torch.randn(c, k * k, oh, ow, generator=g)
    scale = None
    if case["weight"] == "int8":
        scale = torch.rand(c, k * k, 1, 1, generator=g) / 64 + 1e-3
        w = torch.randint(-127, 128, w.shape, generator=g, dtype=torch.int8)
        w64 = w.double() * scale.double()
    else:
        w = w.to(getattr(torch, case["weight"]))
        w64 = w.double()
    b = {"none": None, "map": torch.randn(c, oh, ow, generator=g), "channel": torch.randn(c, 1, 1, generator=g)}[case["bias"]]
    b = None if b is None else b.to(dtype)
    return tuple(None if t is None else t.to(device) for t in (x, w, b, scale)), w64


def _stats(got: torch.Tensor, ref: torch.Tensor, w: torch.Tensor) -> dict:
    spread = float((w.double()[..., 0, 0] - w.double()[..., -1, -1]).abs().max()) if w.shape[-1] * w.shape[-2] > 1 else 1.0
    return {"max_abs": float((got.double().cpu() - ref.double().cpu()).abs().max()), "ref_max": float(ref.abs().max()), "spread": spread}


def _check_case(case: dict, device: str) -> dict:
    from tvexport.kernels._config import bias_mode, constexprs, scalar_args
    from tvexport.kernels._triton import tv_dw_kernel, tv_dwconv_triton
    from tvexport.layers import TVConv, tv_depthwise_unfold

    if case["kind"] == "tvconv":
        torch.manual_seed(_seed(case))
        layer = TVConv(case["c"], TVConv_k=case["k"], stride=case["stride"], TVConv_inter_chans=8, TVConv_inter_layers=1,
                       TVConv_Bias=case["bias"], h=case["oh"], w=case["ow"]).eval()
        with torch.no_grad():
            layer.posi_map.normal_()
            x = torch.randn(case["n"], case["c"], case["oh"] * case["stride"], case["ow"] * case["stride"])
            ref = layer(x)  # the unbaked reference forward: generator + unfold
            w, b = layer.generate()
            got = tv_dwconv_triton(x.to(device), w.to(device), None if b is None else b.to(device), stride=case["stride"])
        return _stats(got, ref, w)

    (x, w, b, scale), w64 = _make_inputs(case, device)
    ref = tv_depthwise_unfold(x.double().cpu(), w64, None if b is None else b.double().cpu(), stride=case["stride"])
    if case["kind"] == "aot":  # the launches TensorRT makes from the plugin's aot_impl, one per tactic
        from tvexport.kernels._config import aot_configs

        n, c, h, wd = x.shape
        oh, ow = w.shape[-2:]
        worst = None
        for cfg in aot_configs(c, plane=oh * ow, opt_batch=n, sm_count=4):
            out = torch.empty(n, c, oh, ow, dtype=x.dtype, device=device)
            meta = constexprs(geometry=(c, h, wd, oh, ow), k=case["k"], stride=case["stride"], bias=bias_mode(tuple(b.shape), channels=c, oh=oh, ow=ow), config=cfg)
            tv_dw_kernel[cfg.grid(c, oh * ow, n)](x, w, b, scale, *scalar_args(n), out, **meta, num_warps=cfg.num_warps)
            r = _stats(out, ref, w64)
            worst = r if worst is None or r["max_abs"] > worst["max_abs"] else worst
        return worst  # type: ignore[return-value]
    config = None
    if "config" in case:
        block, batch_tile, num_warps = case["config"]
        config = LaunchConfig(block=block, batch_tile=batch_tile, num_warps=num_warps)
    got = tv_dwconv_triton(x, w, b, stride=case["stride"], scale=scale, config=config)
    assert got.dtype == x.dtype and got.shape == ref.shape
    return _stats(got, ref, w64)


def _aot_worker() -> dict:
    import re
    import tempfile

    from triton.backends.nvidia import compiler as nv

    from tvexport.kernels import _triton as kt
    from tvexport.kernels._config import launch_config
    from tvexport.kernels._ptx import entry_params

    kernels = {}
    combos = [("fp32", "fp32", 3, 1, BIAS_NONE, 90), ("fp32", "fp32", 3, 2, BIAS_CHANNEL, 90), ("fp16", "fp16", 5, 2, BIAS_CHANNEL, 90),
              ("fp32", "fp16", 7, 2, BIAS_CHANNEL, 90), ("fp16", "fp16", 7, 1, BIAS_MAP, 80), ("fp32", "int8", 3, 2, BIAS_CHANNEL, 90)]
    c, h, w = 96, 48, 48
    for x, wt, k, stride, bias, arch in combos:
        oh, ow = h // stride, w // stride
        cfg = launch_config(c, plane=oh * ow, batch=8, x_bytes=2 if x == "fp16" else 4)
        ak = kt.compile_tv_kernel(x=x, weight=wt, bias=x, geometry=(c, h, w, oh, ow), k=k, stride=stride, bias_mode=bias, config=cfg,
                                  target=kt.gpu_target(arch))
        with tempfile.TemporaryDirectory() as tmp:  # the stripped PTX still assembles
            src = Path(tmp) / "k.ptx"
            src.write_text(ak.ptx)
            get = getattr(nv, "get_ptxas", None)  # triton 3.2: _path_to_binary; 3.3: (path, version); 3.4+: a tool
            ptxas = nv._path_to_binary("ptxas") if get is None else get(arch) if inspect.signature(get).parameters else get()
            path = ptxas[0] if isinstance(ptxas, tuple) else ptxas.path
            ok = subprocess.run([path, f"-arch=sm_{arch}{'a' if arch >= 90 else ''}", str(src), "-o", str(Path(tmp) / "k.o")],
                                capture_output=True, text=True).returncode == 0
        kernels[f"{x}-{wt}-k{k}-s{stride}-b{bias}-sm{arch}"] = {
            "params": [t for t, _ in entry_params(ak.ptx)],
            "dropped": list(ak.dropped_params),
            "ld_v4": len(re.findall(r"ld\.global(?:\.\w+)*\.v4", ak.ptx)),
            "ld_v2": len(re.findall(r"ld\.global(?:\.\w+)*\.v2", ak.ptx)),
            "ld_b8": len(re.findall(r"ld\.global(?:\.\w+)*\.[bsu]8\b", ak.ptx)),
            "ld_b32": len(re.findall(r"ld\.global(?:\.L1::\w+)?\.b32", ak.ptx)),
            "k": k, "name": ak.name, "ptxas_ok": ok,
            "target": re.search(r"\.target\s+(\S+)", ak.ptx).group(1),  # type: ignore[union-attr]
            "arch": arch, "num_warps": ak.num_warps, "block_threads": ak.block_threads, "shared_mem": ak.shared_mem,
        }
    cfg = launch_config(c, plane=h * w, batch=1)
    args = {"x": "fp32", "weight": "fp32", "bias": "fp32", "geometry": (c, h, w, h, w), "k": 3, "stride": 1, "bias_mode": BIAS_NONE,
            "config": cfg, "target": kt.gpu_target(90)}
    default = kt.compile_tv_kernel(**args)
    capped = kt.compile_tv_kernel(**args, ptx_version=kt.ptx_version_for_driver((12, 4), 90))
    isa = kt.triton_ptx_version(90)
    driver = kt.driver_cuda_version()
    driver_out = {
        "default_isa": isa,
        "compiled_isa": int(re.search(r"\.version\s+(\d+)\.(\d)", default.ptx).expand(r"\1\2")),  # type: ignore[union-attr]
        "cap_12_4": kt.ptx_version_for_driver((12, 4), 90),
        "capped_ptx_version": re.search(r"\.version\s+(\S+)", capped.ptx).group(1),  # type: ignore[union-attr]
        "cap_99_0": kt.ptx_version_for_driver((99, 0), 90),
        "cap_none": kt.ptx_version_for_driver(None, 90),
        "this_machine": kt.driver_ptx_version(90),
        "expected_this_machine": None if driver is None else min(nv.ptx_get_version(f"{driver[0]}.{driver[1]}"), isa),
    }
    import triton

    version = tuple(int(v) for v in re.findall(r"\d+", triton.__version__)[:2])
    hidden = 0 if version < (3, 3) else 1 if version < (3, 5) else 2  # global_scratch, then profile_scratch
    return {"kernels": kernels, "driver": driver_out, "hidden_params": hidden}


if __name__ == "__main__":  # worker: python tests/test_kernels.py interp|aot
    mode = sys.argv[1]
    if mode == "interp":
        assert os.environ.get("TRITON_INTERPRET") == "1"
        out = {_case_id(c): _check_case(c, device="cpu") for c in INTERP_CASES}
    else:
        out = _aot_worker()
    print(json.dumps(out))


def test_bias_with_leading_ones_means_the_same_on_both_torch_forms() -> None:
    """bias_is_map lets (1, C, h, w) and (1, C, 1, 1) through as a map / per channel: both torch
    forms (eager and traced) read them like (C, h, w) / (C, 1, 1), not broadcast into a 5-D output."""
    from tvexport._depthwise import tv_depthwise, tv_depthwise_unfold

    torch.manual_seed(0)
    x, w = torch.randn(2, 4, 5, 4), torch.randn(4, 9, 5, 4)
    for b in (torch.randn(4, 5, 4), torch.randn(4, 1, 1)):
        want = tv_depthwise(x, w, b)
        for lead in (b[None], b[None, None]):
            torch.testing.assert_close(tv_depthwise(x, w, lead), want)
            torch.testing.assert_close(tv_depthwise_unfold(x, w, lead), want)

            class M(torch.nn.Module):
                def forward(self, x: torch.Tensor, bias: torch.Tensor = lead) -> torch.Tensor:
                    return tv_depthwise(x, w, bias)

            torch.testing.assert_close(torch.export.export(M(), (x,)).module()(x), want)
