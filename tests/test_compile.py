"""torch.compile of baked models (tvexport.compile_model) and the traced form of the TV op.

References are independent of the code under test: the unbaked TVConv (generator + unfold, run
on every call) with random posi_map, stride 1 and 2, k 3 and 5, with and without bias, batch > 1.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from conftest import make_model
from tinynet import tiny_tvnet
from tvexport import CompiledModel, TvexportError, bake, compile_model
from tvexport.layers import BakedTVConv, TVConv

# Inductor's FMA contraction and summation order differ from eager by a few float32 ulps.
RTOL, ATOL = 1e-5, 1e-5


def _tvconv(channels: int, k: int, stride: int, h: int, w: int, bias: bool, seed: int = 0) -> TVConv:
    torch.manual_seed(seed)
    layer = TVConv(channels, TVConv_k=k, stride=stride, TVConv_inter_chans=8, TVConv_inter_layers=1, TVConv_Bias=bias, h=h, w=w)
    with torch.no_grad():
        layer.posi_map.normal_()
        for m in layer.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.normal_(1.0, 0.2)
                m.bias.normal_(0.0, 0.1)
    return layer.eval()


def _close(got: torch.Tensor, ref: torch.Tensor) -> None:
    torch.testing.assert_close(got, ref, rtol=RTOL, atol=ATOL * float(ref.abs().max()))


@pytest.mark.parametrize("k", [3, 5])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("bias", [None, "map", "channel"])
def test_traced_form_equals_unbaked(k: int, stride: int, bias: str | None) -> None:
    """The branch BakedTVConv takes under torch.export / torch.compile ((k*k, h, w, C) kernels,
    bias first), run as an exported graph, against the unbaked layer."""
    layer = _tvconv(6, k, stride, 5, 7, bias == "map")
    baked = BakedTVConv.from_tvconv(layer)
    if bias == "channel":
        baked.bias = torch.randn(6, 1, 1)
    x = torch.randn(3, 6, 5 * stride, 7 * stride)
    with torch.no_grad():
        ref = layer(x) + (baked.bias if bias == "channel" else 0)
        program = torch.export.export(baked, (x,))
        targets = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
        assert not any("im2col" in t or "unfold" in t for t in targets), targets  # shift form, nothing unfolded
        _close(program.module()(x), ref)
        _close(program.module()(x.contiguous(memory_format=torch.channels_last)), ref)
        _close(baked(x), ref)  # the eager (in-place) branch


@pytest.mark.parametrize(("k", "stride", "bias", "channels_last"), [(3, 2, "map", True), (5, 1, "channel", False)])
def test_compiled_layer_equals_unbaked(k: int, stride: int, bias: str, channels_last: bool) -> None:
    layer = _tvconv(16, k, stride, 6, 8, bias == "map", seed=1)
    baked = BakedTVConv.from_tvconv(layer)
    if bias == "channel":
        baked.bias = torch.randn(16, 1, 1)
    x = torch.randn(2, 16, 6 * stride, 8 * stride)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        ref = layer(x) + (baked.bias if bias == "channel" else 0)
    fast = compile_model(baked)
    _close(fast(x), ref)
    assert not fast(x).requires_grad


@pytest.mark.parametrize(
    ("k", "stride", "bias", "fold_bn"),
    [(5, 2, True, True), (3, 1, False, True), (5, 1, False, False), (3, 2, True, False)],
    ids=["k5s2-map", "k3s1-channel", "k5s1-none", "k3s2-map-bn"],
)
def test_compiled_small_network_equals_unbaked(k: int, stride: int, bias: bool, fold_bn: bool) -> None:
    """Bias kinds reaching the compiler: TV map (+ folded BN), folded BN only, none (BN kept)."""
    model = tiny_tvnet(k=k, stride=stride, bias=bias)
    baked = bake(model, fold_bn=fold_bn).model
    (tv,) = [m for m in baked.modules() if isinstance(m, BakedTVConv)]
    assert tv.bias_kind == ("map" if bias else "channel" if fold_bn else None)
    fast = compile_model(baked)
    assert isinstance(fast, CompiledModel) and fast.tvexport_config == baked.tvexport_config
    x = torch.rand((3, 3, 96, 96), generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        _close(fast(x), model(x))  # against the unbaked network (generator, unfold)


@pytest.mark.slow
def test_compiled_network_equals_eager_dynamic_batch() -> None:
    """A zoo network (BN folded into TV layers, residuals) compiled once for any batch."""
    model = make_model("face_mobilenetv2_x0_1", seed=3)
    baked = bake(model).model
    fast = compile_model(baked, dynamic=True)
    gen = torch.Generator().manual_seed(0)
    for batch in (2, 3):
        x = torch.rand((batch, 3, 96, 96), generator=gen) * 2 - 1
        with torch.no_grad():
            _close(fast(x), model(x))  # against the unbaked network (generators, unfold)
            _close(fast(x), baked(x))


def test_compile_model_leaves_model_alone() -> None:
    baked = BakedTVConv.from_tvconv(_tvconv(4, 3, 1, 4, 4, False))
    before = baked.weight.clone()
    fast = compile_model(baked)
    assert fast.original is not baked
    fast(torch.randn(2, 4, 4, 4))
    assert torch.equal(baked.weight, before)


def test_compile_model_rejects_bad_options() -> None:
    layer = nn.Identity()
    with pytest.raises(TvexportError, match="unknown torch.compile mode"):
        compile_model(layer, mode="fastest")  # type: ignore[arg-type]
    with pytest.raises(TvexportError, match="unknown Inductor option"):
        compile_model(layer, options={"no_such_option": 1})
    assert compile_model(layer, mode="max-autotune-no-cudagraphs").options["max_autotune"] is True


_ROOT = Path(__file__).resolve().parents[1]
_NO_CXX = "tvexport-test-no-such-cxx"  # as $CXX: the compiler Inductor would call is absent
_NO_CXX_LINE = (f"torch.compile (Inductor) on the CPU needs a C++ compiler, and CXX={_NO_CXX!r} names no program on PATH; "
                "point CXX at a C++ compiler (one program, no arguments: Inductor runs it as one name) or unset it")


def _without_cxx(*args: str) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` in a fresh process (Inductor's config reads $CXX once, when imported) whose
    $CXX names a compiler that does not exist."""
    env = {**os.environ, "CXX": _NO_CXX, "PYTHONPATH": os.pathsep.join([str(_ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=_ROOT, timeout=300)


def test_compile_model_without_the_compiler_is_refused_at_once() -> None:
    """Before: ``compile_model`` returned, and the first call traced, generated code and then
    failed deep in Inductor (InductorError: InvalidCxxCompiler). Now a model on the CPU is refused
    in one line by ``compile_model`` itself, before Inductor is imported; a model on another device
    (meta here, as CUDA would be: Triton code, no C++ compiler) is not."""
    code = "\n".join([
        "import sys, torch",
        "from torch import nn",
        "from tvexport import TvexportError, compile_model",
        "try:",
        "    compile_model(nn.Conv2d(2, 2, 3))(torch.randn(1, 2, 5, 5))",
        "except TvexportError as err:",
        "    print('refused:', err)",
        "    print('inductor imported:', 'torch._inductor.config' in sys.modules)",
        "except Exception as err:",
        "    print('failed late:', type(err).__name__, str(err).strip().splitlines()[0])",
        "else:",
        "    print('ran')",
        "print('meta:', type(compile_model(nn.Conv2d(2, 2, 3, device='meta'))).__name__)",
    ])
    r = _without_cxx("-c", code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [f"refused: {_NO_CXX_LINE}", "inductor imported: False", "meta: CompiledModel"], r.stdout


def test_bench_torch_compile_without_the_compiler_says_so_in_one_line(face_ckpt: Path) -> None:
    """The CLI path to ``compile_model`` (``tvexport bench -b torch-compile``): the same line, exit 2,
    no traceback, with the compiler really absent (not a patched ``shutil.which``)."""
    r = _without_cxx("-m", "tvexport", "bench", str(face_ckpt), "-b", "torch-compile", "--batch", "1")
    assert r.returncode == 2, r
    assert r.stderr.strip().splitlines() == [f"error: backend torch-compile is not available on cpu: {_NO_CXX_LINE}"], r.stderr


@pytest.mark.parametrize(("cxx_env", "config_cxx", "installs", "says"), [
    ("", None, False, "the CXX environment variable is set but empty; unset CXX"),  # Inductor would run "" (PermissionError, uncaught)
    ("tvexport-no-such", None, False, "CXX='tvexport-no-such' names no program on PATH; point CXX at"),
    ("g++ -O2", None, False, "CXX='g++ -O2' names no program on PATH"),  # Inductor runs the whole value as one name
    (None, None, False, "'g++' was not found; install g++"),
    (None, "clang++", False, None),  # a caller's config as one name (read as 'l' before)
    (None, (None, "tvexport-no-such", "g++"), False, None),  # a search list: Inductor tries each
    (None, (None, "tvexport-no-such"), False, "'tvexport-no-such' was not found"),
    (None, (None, ""), False, "the CXX environment variable is set but empty"),  # the config read CXX='' when imported
    ("tvexport-no-such", None, True, None),  # TORCH_INDUCTOR_INSTALL_GXX: Inductor installs g++ itself (Linux)
], ids=["empty-env", "missing-env", "env-with-arguments", "missing-default", "config-string", "config-search", "config-missing", "config-empty", "installs-gxx"])
def test_check_inductor_cxx_mirrors_inductors_search(cxx_env: str | None, config_cxx: Any, installs: bool, says: str | None,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """What Inductor's ``cpp_compiler_search`` would find, without importing Inductor: before, an empty
    $CXX passed as g++ (then Inductor failed after the compile), a compiler set by $CXX got the hint
    "install g++", and a caller's ``cpp.cxx`` given as one string was read as its second letter."""
    import shutil
    import types

    from tvexport import compile as tvcompile

    on_path = {"g++": None if cxx_env is None and config_cxx is None else "/usr/bin/g++", "clang++": "/usr/bin/clang++"}
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: on_path.get(name))
    monkeypatch.setattr(sys, "platform", "linux")
    for name, value in (("CXX", cxx_env), ("TORCH_INDUCTOR_INSTALL_GXX", "1" if installs else None)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    if config_cxx is None:
        monkeypatch.delitem(sys.modules, "torch._inductor.config", raising=False)
    else:
        monkeypatch.setitem(sys.modules, "torch._inductor.config", types.SimpleNamespace(cpp=types.SimpleNamespace(cxx=config_cxx)))
    if says is None:
        tvcompile.check_inductor_cxx()
    else:
        with pytest.raises(TvexportError) as err:
            tvcompile.check_inductor_cxx()
        assert says in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_compile_model_freezing_option_reaches_inductor() -> None:
    """``freezing`` (default True) is among the options, and is what Inductor's config holds while
    the compiled wrapper runs (when Dynamo traces and Inductor compiles); ``freezing=False`` too."""
    from torch._inductor import config as inductor_config

    seen = []
    for freezing in (True, False):
        fast = compile_model(nn.Identity(), freezing=freezing)
        assert fast.options["freezing"] is freezing
        object.__setattr__(fast, "_compiled", lambda x: (seen.append(inductor_config.freezing), x)[1])
        fast(torch.zeros(1))
    assert seen == [True, False]
    assert compile_model(nn.Identity()).options["freezing"] is True


def test_compiled_model_lists_each_tensor_once() -> None:
    """Before: the torch.compile wrapper was a submodule too, so state_dict held every tensor
    twice (original.0.weight and _compiled._orig_mod.0.weight)."""
    model = nn.Sequential(nn.Linear(2, 3))
    fast = compile_model(model)
    assert list(fast.state_dict()) == ["original.0.weight", "original.0.bias"]
    assert [name for name, _ in fast.named_modules()] == ["", "original", "original.0"]
    assert fast.compiled._orig_mod is fast.original
    x = torch.randn(4, 2)
    _close(fast(x), model(x))
