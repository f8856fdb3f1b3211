"""The fused Triton TV kernel: launch geometry (pure), the torch op (CPU), the kernel itself run by
Triton's interpreter on CPU against the torch references, its ahead-of-time PTX build, and (on a
CUDA machine only) the compiled kernel.

Interpreter and compile runs happen in a subprocess (this file run as a script): TRITON_INTERPRET
must be set before triton decorates the kernel, and the pytest process stays free of triton.
"""

from __future__ import annotations

import importlib.util
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
    MAX_TILE,
    WAVES,
    LaunchConfig,
    aot_launch_config,
    bias_mode,
    cdiv,
    launch_config,
)

HAS_TRITON = importlib.util.find_spec("triton") is not None
needs_triton = pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed (pip install 'tvexport[triton]')")
needs_cuda = pytest.mark.skipif(not (HAS_TRITON and torch.cuda.is_available()), reason="needs a CUDA GPU and triton")

# Output geometry (C, OH, OW) of every TV layer of face_mobilenetv2_x1_0 (96x96 input, k=3).
FACE_X1_0 = [(32, 96, 96, 1), (96, 48, 48, 2), (144, 48, 48, 1), (144, 24, 24, 2), (192, 24, 24, 1), (192, 12, 12, 2),
             (384, 12, 12, 1), (576, 12, 12, 1), (576, 6, 6, 2), (960, 6, 6, 1)]


# --------------------------------------------------------------------------- launch geometry


@pytest.mark.parametrize("positions", [1, 7, 64, 1000, 34560, 294912, 5_000_000])
@pytest.mark.parametrize("batch", [1, 2, 3, 17, 32, 100])
@pytest.mark.parametrize("sm_count", [1, 8, 132])
def test_launch_config_covers_every_output_exactly(positions: int, batch: int, sm_count: int) -> None:
    cfg = launch_config(positions, batch, sm_count=sm_count)
    tiles, groups = cfg.grid(positions, batch)
    assert cfg.block & (cfg.block - 1) == 0 and cfg.batch_tile & (cfg.batch_tile - 1) == 0
    assert cfg.block * cfg.batch_tile <= MAX_TILE
    assert cfg.batch_per_program % cfg.batch_tile == 0
    assert (tiles - 1) * cfg.block < positions <= tiles * cfg.block  # every position, no empty tile
    assert (groups - 1) * cfg.batch_per_program < batch <= groups * cfg.batch_per_program
    assert cfg.batch_tile <= max(1, 2 * batch)  # no batch lanes wasted beyond the next power of two


@pytest.mark.parametrize("batch", [1, 32])
def test_face_layers_read_kernel_values_at_most_twice(batch: int) -> None:
    """On an H100-sized GPU (132 SMs) a program keeps the whole batch of its tile for the large face
    layers (each kernel value is read by one program); small layers split the batch at most in two
    to get enough programs in flight."""
    for c, oh, ow, _ in FACE_X1_0:
        positions = c * oh * ow
        cfg = launch_config(positions, batch, sm_count=132)
        assert cfg.weight_reads(batch) <= 2, (c, oh, ow, cfg)
        if batch == 1 or positions >= WAVES * 132 * 64:
            assert cfg.weight_reads(batch) == 1, (c, oh, ow, cfg)


def test_few_tiles_split_the_batch() -> None:
    cfg = launch_config(64, 256, sm_count=132)  # one output tile: spread the batch over programs
    assert cfg.grid(64, 256)[1] > 1


def test_aot_config_is_batch_independent() -> None:
    cfg = aot_launch_config(96 * 48 * 48)
    assert cfg.batch_tile == 2 and cfg.batch_per_program == 8
    assert cfg.grid(96 * 48 * 48, 1)[1] == 1 and cfg.grid(96 * 48 * 48, 33)[1] == 5


def test_launch_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        launch_config(0, 1)
    with pytest.raises(ValueError):
        LaunchConfig(block=96, batch_tile=1, batch_per_program=1, num_warps=4)
    with pytest.raises(ValueError):
        LaunchConfig(block=64, batch_tile=4, batch_per_program=6, num_warps=4)


def test_bias_modes() -> None:
    assert bias_mode(None, 4, 3, 5) == BIAS_NONE
    assert bias_mode((4, 3, 5), 4, 3, 5) == BIAS_MAP
    assert bias_mode((1, 4, 3, 5), 4, 3, 5) == BIAS_MAP
    assert bias_mode((4, 1, 1), 4, 3, 5) == BIAS_CHANNEL
    assert bias_mode((4,), 4, 3, 5) == BIAS_CHANNEL
    for bad in [(3, 3, 5), (4, 5, 3), (4, 3), (60,)]:
        with pytest.raises(ValueError):
            bias_mode(bad, 4, 3, 5)


# --------------------------------------------------------------------------- the torch op (CPU)


def test_op_on_cpu_is_the_torch_implementation() -> None:
    from tvexport.kernels import tv_dwconv
    from tvexport.layers import tv_depthwise_unfold

    torch.manual_seed(0)
    x, w, b = torch.randn(2, 3, 8, 10), torch.randn(3, 9, 4, 5), torch.randn(3, 4, 5)
    torch.testing.assert_close(tv_dwconv(x, w, b, 2), tv_depthwise_unfold(x, w, b, stride=2), rtol=1e-5, atol=1e-5)
    assert torch.ops.tvexport.tv_dwconv.default(x, w, None, 2).shape == (2, 3, 4, 5)


def test_op_passes_opcheck() -> None:
    """Schema, fake (meta) implementation and dispatch registrations are consistent."""
    from tvexport.kernels import tv_dwconv  # noqa: F401  (registers the op)

    torch.manual_seed(0)
    for args in [(torch.randn(2, 3, 6, 6), torch.randn(3, 9, 6, 6), None, 1),
                 (torch.randn(1, 2, 8, 6), torch.randn(2, 25, 4, 3), torch.randn(2, 1, 1), 2)]:
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
        "layer = BakedTVConv(3, 3, 1, 4, 4)\n"
        "layer(torch.randn(1, 3, 4, 4))\n"
        "print(sorted(m for m in ('triton', 'tensorrt', 'onnx', 'onnxruntime') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- interpreter (CPU)


def _interp_cases() -> list[dict]:
    """Every (k, stride, bias, dtype) with channels, size and batch varied across them."""
    shapes = itertools.cycle([(3, 5, 6, 3), (1, 4, 4, 1), (5, 7, 3, 5), (2, 6, 5, 2)])  # C, OH, OW, N
    cases = []
    for k, stride, bias, dtype in itertools.product((3, 5, 7), (1, 2), ("none", "map", "channel"), ("float32", "float16")):
        c, oh, ow, n = next(shapes)
        cases.append({"kind": "ref", "c": c, "oh": oh, "ow": ow, "n": n, "k": k, "stride": stride, "bias": bias, "dtype": dtype})
    # Forced tiles: several output tiles and batch ranges, partial last chunk (masks at every edge).
    for cfg in ([64, 2, 2, 1], [64, 4, 4, 2], [128, 1, 3, 1]):
        cases.append({"kind": "ref", "c": 6, "oh": 5, "ow": 7, "n": 5, "k": 3, "stride": 2, "bias": "map", "dtype": "float32", "config": cfg})
    # The unbaked TVConv (generator + unfold, random posi_map) as reference.
    for k, stride, bias in itertools.product((3, 5), (1, 2), (False, True)):
        cases.append({"kind": "tvconv", "c": 4, "oh": 6, "ow": 5, "n": 3, "k": k, "stride": stride, "bias": bias, "dtype": "float32"})
    # Exactly the launch a TensorRT engine makes: AOT tile sizes, (inputs, int32 args, output) order.
    for stride, bias, n in ((1, "channel", 1), (2, "map", 11)):
        cases.append({"kind": "aot", "c": 5, "oh": 6, "ow": 4, "n": n, "k": 3, "stride": stride, "bias": bias, "dtype": "float32"})
    return cases


INTERP_CASES = _interp_cases()


def _case_id(case: dict) -> str:
    extra = f"-cfg{'x'.join(map(str, case['config']))}" if "config" in case else ""
    return f"{case['kind']}-c{case['c']}-{case['oh']}x{case['ow']}-n{case['n']}-k{case['k']}-s{case['stride']}-{case['bias']}-{case['dtype']}{extra}"


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


@needs_triton
@pytest.mark.parametrize("case", INTERP_CASES, ids=_case_id)
def test_interpreted_kernel_matches_reference(case: dict, interp_results: dict) -> None:
    r = interp_results[_case_id(case)]
    assert r["ref_max"] > 0.1  # a real signal, not zeros
    assert r["spread"] > 1e-3  # kernels differ across positions (random posi_map / random W)
    rtol = 1e-5 if case["dtype"] == "float32" else 6e-4  # fp16: output rounding (2**-11) only
    assert r["max_abs"] <= rtol * r["ref_max"] + 1e-6, r


# --------------------------------------------------------------------------- AOT build (CPU)


@pytest.fixture(scope="module")
def aot_results() -> dict:
    if not HAS_TRITON:
        pytest.skip("triton is not installed (pip install 'tvexport[triton]')")
    return _run_worker("aot", interpret=False)


@needs_triton
def test_aot_ptx_matches_the_plugin_calling_convention(aot_results: dict) -> None:
    """TensorRT passes (x, weight, bias, 7 int32 scalars, out); any further parameter triton adds
    must be one the kernel never reads (scratch buffers of size 0)."""
    for key, r in aot_results.items():
        params = r["params"]
        assert params[:3] == ["u64"] * 3 and params[3:10] == ["u32"] * 7 and params[10] == "u64", (key, params)
        assert all(p == "u64" for p in params[11:]), (key, params)
        assert r["block_threads"] == 32 * r["num_warps"] and r["shared_mem"] == 0
        assert r["target"].startswith(f"sm_{r['arch']}")


@needs_triton
def test_aot_ptx_isa_can_be_capped_for_older_drivers(aot_results: dict) -> None:
    assert aot_results["fp32-k3-s1-b0-sm90-ptx84"]["version"] == "8.4"


# --------------------------------------------------------------------------- CUDA (GPU machines)


@needs_cuda
@pytest.mark.parametrize("case", [c for c in INTERP_CASES if c["kind"] == "ref"], ids=_case_id)
def test_cuda_kernel_matches_reference(case: dict) -> None:
    if os.environ.get("TRITON_INTERPRET"):
        pytest.skip("TRITON_INTERPRET is set in this process")
    r = _check_case(case, device="cuda")
    rtol = 1e-5 if case["dtype"] == "float32" else 6e-4  # fp16: output rounding (2**-11) only
    assert r["max_abs"] <= rtol * r["ref_max"] + 1e-6, r


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
    layer = BakedTVConv(8, 3, 2, 6, 6, bias="channel")
    layer.weight.normal_()
    layer.bias.normal_()  # type: ignore[union-attr]
    x = torch.randn(4, 8, 12, 12).to(dtype)
    ref = layer(x)  # CPU: float32 accumulation, output in x's dtype
    got = layer.cuda()(x.cuda()).cpu()
    assert calls, "BakedTVConv.forward did not use the Triton kernel on CUDA"
    assert got.dtype == dtype
    tol = 1e-5 if dtype == torch.float32 else 2 * 2**-11 * float(ref.float().abs().max())
    torch.testing.assert_close(got.float(), ref.float(), rtol=0, atol=tol)


# --------------------------------------------------------------------------- worker side


def _seed(case: dict) -> int:
    return zlib.crc32(_case_id(case).encode())  # stable across processes, unlike hash()


def _make_inputs(case: dict, device: str) -> tuple:
    g = torch.Generator().manual_seed(_seed(case))
    c, oh, ow, n, k, s = case["c"], case["oh"], case["ow"], case["n"], case["k"], case["stride"]
    dtype = getattr(torch, case["dtype"])
    x = torch.randn(n, c, oh * s, ow * s, generator=g)
    w = torch.randn(c, k * k, oh, ow, generator=g)
    b = {"none": None, "map": torch.randn(c, oh, ow, generator=g), "channel": torch.randn(c, 1, 1, generator=g)}[case["bias"]]
    return tuple(None if t is None else t.to(dtype).to(device) for t in (x, w, b))


def _stats(got: torch.Tensor, ref: torch.Tensor, w: torch.Tensor) -> dict:
    spread = float((w.double()[..., 0, 0] - w.double()[..., -1, -1]).abs().max()) if w.shape[-1] * w.shape[-2] > 1 else 1.0
    return {"max_abs": float((got.double().cpu() - ref.double().cpu()).abs().max()), "ref_max": float(ref.abs().max()), "spread": spread}


def _check_case(case: dict, device: str) -> dict:
    from tvexport.kernels._config import aot_launch_config, bias_mode, constexprs, scalar_args
    from tvexport.kernels._triton import tv_dwconv_kernel, tv_dwconv_triton
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

    x, w, b = _make_inputs(case, device)
    ref = tv_depthwise_unfold(x.double().cpu(), w.double().cpu(), None if b is None else b.double().cpu(), stride=case["stride"])
    if case["kind"] == "aot":  # the launch TensorRT makes from the plugin's aot_impl
        n, c, h, wd = x.shape
        oh, ow = w.shape[-2:]
        cfg = aot_launch_config(c * oh * ow, sm_count=4)
        if b is None:
            b = torch.zeros(c, 1, 1, dtype=x.dtype, device=device)  # what tvexport build adds
        out = torch.empty(n, c, oh, ow, dtype=x.dtype, device=device)
        grid = (cdiv(c * oh * ow, cfg.block), cdiv(n, cfg.batch_per_program))
        meta = constexprs(k=case["k"], stride=case["stride"], bias=bias_mode(tuple(b.shape), c, oh, ow), config=cfg)
        tv_dwconv_kernel[grid](x, w, b, *scalar_args(n, c, h, wd, oh, ow, cfg), out, **meta, num_warps=cfg.num_warps)
        return _stats(out, ref, w)
    config = LaunchConfig(*case["config"]) if "config" in case else None
    got = tv_dwconv_triton(x, w, b, stride=case["stride"], config=config)
    assert got.dtype == x.dtype and got.shape == ref.shape
    return _stats(got, ref, w)


def _aot_worker() -> dict:
    import re

    from triton.backends.compiler import GPUTarget

    from tvexport.kernels._config import aot_launch_config
    from tvexport.kernels._triton import compile_tv_kernel

    results = {}
    combos = [("fp32", 3, 1, BIAS_NONE, 90, None), ("fp16", 5, 2, BIAS_MAP, 90, None), ("fp16", 7, 1, BIAS_CHANNEL, 80, None),
              ("fp32", 3, 1, BIAS_NONE, 90, 84)]
    for dtype, k, stride, bias, arch, ptx in combos:
        cfg = aot_launch_config(96 * 48 * 48)
        ak = compile_tv_kernel(dtype=dtype, k=k, stride=stride, bias=bias, config=cfg, target=GPUTarget("cuda", arch, 32), ptx_version=ptx)
        entry = ak.ptx[ak.ptx.index(".entry"):]
        entry = entry[: entry.index(")")]
        results[f"{dtype}-k{k}-s{stride}-b{bias}-sm{arch}" + (f"-ptx{ptx}" if ptx else "")] = {
            "params": re.findall(r"\.param\s+\.(\w+)", entry),
            "version": re.search(r"\.version\s+(\S+)", ak.ptx).group(1),  # type: ignore[union-attr]
            "target": re.search(r"\.target\s+(\S+)", ak.ptx).group(1),  # type: ignore[union-attr]
            "arch": arch,
            "num_warps": ak.num_warps,
            "block_threads": ak.block_threads,
            "shared_mem": ak.shared_mem,
        }
    return results


if __name__ == "__main__":  # worker: python tests/test_kernels.py interp|aot
    mode = sys.argv[1]
    if mode == "interp":
        assert os.environ.get("TRITON_INTERPRET") == "1"
        out = {_case_id(c): _check_case(c, device="cpu") for c in INTERP_CASES}
    else:
        out = _aot_worker()
    print(json.dumps(out))
