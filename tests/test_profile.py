"""The profiling harness's logic: statistics, interleaving, stopping rules, backends, reports.

Nothing here checks how fast anything is; timings come from a fake clock wherever the numbers
matter.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import importlib
import io
import json
import math
import re
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.conftest import make_model, write_checkpoint
from tvexport.bake import bake_model, save_baked
from tvexport.errors import TvexportError
from tvexport.layers import BakedTVConv, TVConv
from tvexport.profile import (
    REPORT_SCHEMA,
    CpuTimer,
    CudaTimer,
    MeasureSettings,
    Stats,
    load_report,
    load_subject,
    measure_case,
    paired_ratio,
    parse_input_size,
    run_bench,
    select_backends,
    to_csv,
    to_json,
    to_markdown,
    validate_report,
)
from tvexport.profile import backends as backends_pkg
from tvexport.profile.backends.torch_eager import TorchBaked, TorchUnbaked
from tvexport.profile.floor import copy_bandwidth, layer_floor_bytes
from tvexport.profile.harness import round_order, torch_threads
from tvexport.profile.machine import machine_info, versions
from tvexport.profile.report import layer_rows, summary_rows
from tvexport.profile.subject import Network, Subject

_MODELS: dict[str, Any] = {}


def _model(atom: str) -> torch.nn.Module:
    """Small face MobileNetV2 x0.1 models, built once per session (calibration takes seconds)."""
    if atom not in _MODELS:
        _MODELS[atom] = make_model(atom=atom, seed=0 if atom == "tvconv" else 1)
    return copy.deepcopy(_MODELS[atom])


def _bake_result():
    if "result" not in _MODELS:
        _MODELS["result"] = bake_model(_model("tvconv"))
    return _MODELS["result"]


def _network(atom: str) -> Network:
    """A Network with its baked form cached for the session (baking verifies: seconds on 2 cores)."""
    key = f"{atom}-baked"
    if key not in _MODELS:
        _MODELS[key] = _bake_result().model if atom == "tvconv" else bake_model(_model(atom), verify=False).model
    return Network(atom, "test", _model(atom), copy.deepcopy(_MODELS[key]))


def _subject() -> Subject:
    tv = _network("tvconv")
    return Subject(tv.config, {"kind": "registry", "arch": "face_mobilenetv2_x0_1"}, [tv, _network("dwconv")])


@pytest.fixture
def ckpt(tmp_path: Path) -> Path:
    """A Lightning checkpoint of the session's small TV model."""
    return write_checkpoint(_model("tvconv"), tmp_path / "face.ckpt", "lightning")


def _weights_only(name: str, atom: str) -> torch.nn.Module:
    """Random weights without BatchNorm calibration: enough for checkpoints whose outputs are not compared."""
    from tvexport.models import create_model
    from tvexport.testing import randomize_

    return randomize_(create_model(name, atom=atom), calibrate=False)


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


# --------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------

def test_stats_of_known_samples() -> None:
    st = Stats.of([float(i) for i in range(10, 0, -1)])  # 10..1, unordered on purpose
    assert st.n == 10
    assert st.median == pytest.approx(5.5)
    assert st.mean == pytest.approx(5.5)
    assert (st.min, st.max) == (1.0, 10.0)
    assert st.p10 == pytest.approx(1.9)
    assert st.p90 == pytest.approx(9.1)
    assert st.p99 == pytest.approx(9.91)
    assert st.std == pytest.approx(math.sqrt(82.5 / 9))
    assert st.cv == pytest.approx(math.sqrt(82.5 / 9) / 5.5)
    assert st.throughput(8) == pytest.approx(8 / 5.5)
    d = st.to_dict()
    assert d["median_s"] == st.median and d["cv"] == st.cv and set(d) == set(REPORT_SCHEMA["properties"]["cases"]["items"]["properties"]["results"]["items"]["properties"]["stats"]["properties"])


def test_stats_edge_cases() -> None:
    one = Stats.of([0.25])
    assert (one.median, one.p10, one.p99, one.std, one.cv) == (0.25, 0.25, 0.25, 0.0, 0.0)
    with pytest.raises(TvexportError):
        Stats.of([])
    with pytest.raises(ValueError):
        Stats.of([1.0, -1.0])
    with pytest.raises(ValueError):
        Stats.of([1.0, float("nan")])
    zero = Stats.of([0.0, 0.0, 1e-6])  # a timer too coarse to resolve one run (a custom API timer)
    with pytest.raises(TvexportError, match="median latency is 0 s over 3 timed runs"):  # before: inf, which to_json refuses
        zero.throughput(1)


def test_paired_ratio_constant_ratio_despite_drift() -> None:
    # The machine slows down 10x half way; each round's pair is hit alike, so the paired ratio is exact.
    base = [1.0, 1.0, 10.0, 10.0, 1.0, 10.0]
    tv = [1.5 * b for b in base]
    r = paired_ratio(tv, base)
    assert (r.numerator, r.denominator, r.n) == ("tvconv", "dwconv", 6)
    assert r.median == pytest.approx(1.5)
    assert (r.p10, r.p90) == (pytest.approx(1.5), pytest.approx(1.5))
    assert (r.ci_low, r.ci_high) == (pytest.approx(1.5), pytest.approx(1.5))
    # Unpaired spreads would suggest anything between 0.15 and 15.
    assert Stats.of(tv).p90 / Stats.of(base).p10 > 10


def test_paired_ratio_spread_and_bootstrap() -> None:
    base = [2.0] * 5
    tv = [1.0, 2.0, 3.0, 4.0, 5.0]  # per-round ratios 0.5, 1, 1.5, 2, 2.5
    r = paired_ratio(tv, base, names=("tvconv", "dense"))
    assert r.denominator == "dense"
    assert r.median == pytest.approx(1.5)
    assert r.p10 == pytest.approx(0.7)
    assert r.p90 == pytest.approx(2.3)
    assert r.of_medians == pytest.approx(1.5)
    assert 0.5 <= r.ci_low <= 1.5 <= r.ci_high <= 2.5
    assert r.ci_low < r.ci_high
    assert paired_ratio(tv, base) == paired_ratio(tv, base)  # seeded bootstrap
    assert r.to_dict()["ci95"] == [r.ci_low, r.ci_high]
    with pytest.raises(ValueError):
        paired_ratio([1.0, 2.0], [1.0])


def test_paired_ratio_zero_baseline_sample_is_a_user_error() -> None:
    """A coarse custom timer gives a baseline round of 0 s: before, a plain ValueError ("internal
    error" through the CLI); now one line with what (which baseline, how many) and how to fix it."""
    with pytest.raises(TvexportError, match=r"^1 of 3 dwconv timings are 0 s: .* ratio tvconv/dwconv is undefined; time with a finer clock"):
        paired_ratio([1.0, 2.0, 3.0], [1.0, 0.0, 2.0], names=("tvconv", "dwconv"))


# --------------------------------------------------------------------------------------------
# Harness: interleaving, warm-up and stopping rules on a fake clock
# --------------------------------------------------------------------------------------------

def test_paired_ratio_bootstrap_interval_is_95_percent() -> None:
    """The bootstrap interval of the median of ratios 1..20 is close to the distribution-free 95%
    interval of a median of 20 samples, the 6th to 15th order statistics (a 50% one is ~[9, 12])."""
    q = paired_ratio(list(range(1, 21)), [1.0] * 20)
    assert q.median == 10.5
    assert 6 <= q.ci_low <= 7 and 14 <= q.ci_high <= 15, (q.ci_low, q.ci_high)


def test_round_order_rotates() -> None:
    labels = ["a", "b", "c"]
    assert [round_order(labels, r) for r in range(4)] == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"], ["a", "b", "c"]]


def _fake_variants(clock: FakeClock, durations: dict[str, float], log: list[str]) -> dict[str, object]:
    def make(label: str, dt: float):
        def run() -> None:
            log.append(label)
            clock.advance(dt)

        return run

    return {label: make(label, dt) for label, dt in durations.items()}


def test_measure_case_warmup_interleaving_and_minimums() -> None:
    clock, log, events = FakeClock(), [], []
    variants = _fake_variants(clock, {"tv": 1.0, "dw": 2.0}, log)
    settings = MeasureSettings(warmup_seconds=5.0, min_iters=3, min_seconds=10.0)
    timing = measure_case(variants, settings, clock=clock, on_round=lambda phase, r: events.append((phase, r)))
    # warm-up: rounds of 3 s until >= 5 s -> 2 rounds; measuring: 3 rounds give 9 s < 10 s -> 4 rounds
    assert (timing.warmup_rounds, timing.warmup_seconds) == (2, 6.0)
    assert (timing.rounds, timing.measure_seconds, timing.truncated) == (4, 12.0, False)
    assert timing.samples == {"tv": [1.0] * 4, "dw": [2.0] * 4}
    assert log == ["tv", "dw", "dw", "tv"] + ["tv", "dw", "dw", "tv"] * 2
    assert events == [("warmup", 1), ("warmup", 2), ("measure", 1), ("measure", 2), ("measure", 3), ("measure", 4)]


def test_measure_case_min_iters_dominates_and_max_seconds_truncates() -> None:
    clock = FakeClock()
    timing = measure_case(_fake_variants(clock, {"a": 1.0}, []), MeasureSettings(warmup_seconds=0, min_iters=7, min_seconds=0), clock=clock)
    assert (timing.warmup_rounds, timing.rounds, timing.truncated) == (1, 7, False)  # one warm-up round at least

    clock = FakeClock()
    timing = measure_case(
        _fake_variants(clock, {"a": 1.0, "b": 1.0}, []),
        MeasureSettings(warmup_seconds=0, min_iters=100, min_seconds=0, max_seconds=5.0, min_warmup_rounds=0),
        clock=clock,
    )
    assert timing.warmup_rounds == 0
    assert (timing.rounds, timing.truncated) == (3, True)  # 2 s per round: stops once 6 s >= 5 s

    clock = FakeClock()
    timing = measure_case(_fake_variants(clock, {"slow": 50.0}, []), MeasureSettings(warmup_seconds=0, min_iters=5, min_seconds=0, max_seconds=1.0), clock=clock)
    assert (timing.rounds, timing.truncated) == (1, True)  # at least one round even past the cap


@pytest.mark.parametrize("kwargs", [{"min_iters": 0}, {"min_seconds": -1.0}, {"warmup_seconds": -0.1}, {"max_seconds": 0.0}])
def test_measure_settings_reject_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(TvexportError):
        MeasureSettings(**kwargs)  # type: ignore[arg-type]


def test_measure_settings_are_keyword_only() -> None:
    """House standard: options are keyword-only (before: ``MeasureSettings(0.5, 20, 2.0)`` was accepted)."""
    with pytest.raises(TypeError):
        MeasureSettings(0.5, 20, 2.0)  # type: ignore[misc]


def test_measure_settings_infinite_max_seconds_is_no_limit() -> None:
    assert MeasureSettings(max_seconds=math.inf).max_seconds is None
    assert MeasureSettings(max_seconds=math.inf) == MeasureSettings()


def test_to_json_refuses_non_finite_numbers(fake_report: dict) -> None:
    """A non-finite number would be written as `Infinity`/`NaN`, which JSON readers refuse."""
    bad = copy.deepcopy(fake_report)
    bad["settings"]["cv_warn"] = math.inf
    with pytest.raises(ValueError, match="not JSON compliant"):
        to_json(bad)
    with pytest.raises(TvexportError, match="--cv-warn must be a finite number > 0"):
        run_bench(_subject(), backends=["torch-baked"], cv_warn=math.inf)


def test_cpu_timer_uses_its_clock() -> None:
    clock = FakeClock()
    assert CpuTimer(clock).measure(lambda: clock.advance(0.25)) == 0.25


def test_cuda_timer_records_events_on_its_stream() -> None:
    clock, trace = FakeClock(), []
    inside = {"now": False}

    class Event:
        def __init__(self) -> None:
            self.t: float | None = None

        def record(self, stream: object) -> None:
            assert inside["now"], "events must be recorded inside the stream context"
            trace.append(("record", stream))
            self.t = clock()

        def synchronize(self) -> None:
            trace.append(("sync", None))

        def elapsed_time(self, end: Event) -> float:
            return (end.t - self.t) * 1e3  # milliseconds, like torch.cuda.Event

    @contextlib.contextmanager
    def stream_context(stream: object):
        trace.append(("enter", stream))
        inside["now"] = True
        yield
        inside["now"] = False

    def work() -> None:
        assert inside["now"], "the closure must run on the timing stream"
        clock.advance(0.004)

    timer = CudaTimer(stream="S", event_factory=Event, stream_context=stream_context)
    assert timer.measure(work) == pytest.approx(0.004)
    assert trace == [("enter", "S"), ("record", "S"), ("record", "S"), ("sync", None)]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
def test_cuda_timer_without_cuda_is_a_clear_error() -> None:
    with pytest.raises(TvexportError, match="CUDA"):
        CudaTimer()


def test_torch_threads_sets_and_restores() -> None:
    before = torch.get_num_threads()
    with torch_threads(1) as n:
        assert n == 1 == torch.get_num_threads()
    assert torch.get_num_threads() == before
    with pytest.raises(TvexportError), torch_threads(0):
        pass


# --------------------------------------------------------------------------------------------
# Backends
# --------------------------------------------------------------------------------------------

class _Unavailable:
    name = "fake-missing"
    form = "baked"
    per_layer = False

    def available(self, *, device: str) -> str | None:
        return "fakeruntime is not installed"

    def prepare(self, model, **kw):  # pragma: no cover - never prepared
        raise AssertionError


@pytest.fixture
def fake_registry(monkeypatch: pytest.MonkeyPatch):
    """Register adapters from a throw-away module; yields (module, registry)."""
    module = types.ModuleType("tvexport.profile.backends._fake")
    module.Unavailable = _Unavailable  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    # Only the torch backends plus the fakes: the rules under test must not depend on which
    # optional runtimes (onnxruntime, tensorrt, ...) this machine has.
    registry = {name: backends_pkg.REGISTRY[name] for name in ("torch-unbaked", "torch-baked")}
    registry["fake-missing"] = "_fake:Unavailable"
    monkeypatch.setattr(backends_pkg, "REGISTRY", registry)
    return module, registry


def test_select_backends_rules(fake_registry) -> None:
    chosen, skipped = select_backends(None, device="cpu")
    assert [b.name for b in chosen] == ["torch-unbaked", "torch-baked"]
    assert skipped == [("fake-missing", "fakeruntime is not installed")]
    chosen, skipped = select_backends(["torch-baked", "torch-baked"], device="cpu")
    assert [b.name for b in chosen] == ["torch-baked"] and skipped == []
    with pytest.raises(TvexportError, match="fake-missing is not available on cpu: fakeruntime is not installed"):
        select_backends(["torch-baked", "fake-missing"], device="cpu")
    with pytest.raises(TvexportError, match="unknown backend 'tensorrtt'"):
        select_backends(["tensorrtt"], device="cpu")


def test_torch_backends_conform_and_check_devices() -> None:
    for backend in (TorchUnbaked(), TorchBaked()):
        assert isinstance(backend, backends_pkg.Backend)
        assert backend.available(device="cpu") is None
        assert backend.available(device="tpu")
        if not torch.cuda.is_available():
            assert "CUDA" in backend.available(device="cuda")


def test_torch_backends_run_the_right_network() -> None:
    from tvexport.bake import random_inputs

    model = _model("tvconv")
    baked = _network("tvconv").baked_model
    x = random_inputs((2, 3, 96, 96), seed=0)  # what prepare() allocates
    with torch.no_grad():
        ref = model(x)
    before = torch.get_num_threads()
    try:
        run_unbaked = TorchUnbaked().prepare(model, batch=2, threads=1, device="cpu", dtype=torch.float32)
        assert torch.get_num_threads() == 1
        run_baked = TorchBaked().prepare(baked, batch=2, threads=1, device="cpu", dtype=torch.float32)
        out_unbaked, out_baked = run_unbaked(), run_baked()
    finally:
        torch.set_num_threads(before)
    assert out_unbaked.shape == (2, 512)
    scale = float(ref.abs().max())
    torch.testing.assert_close(out_unbaked, ref, rtol=0, atol=1e-5 * scale)  # same network, other thread count
    torch.testing.assert_close(out_baked, ref, rtol=0, atol=1e-4 * scale)
    # prepare works on a copy: the caller's model is untouched by dtype changes
    TorchBaked().prepare(baked, batch=1, threads=before, device="cpu", dtype=torch.float16)
    assert next(iter(baked.buffers())).dtype == torch.float32


# --------------------------------------------------------------------------------------------
# Subject: what is compared
# --------------------------------------------------------------------------------------------

def test_load_subject_from_checkpoint_builds_matching_baselines(ckpt: Path) -> None:
    subject = load_subject(ckpt)
    assert [n.label for n in subject.networks] == ["tvconv", "dwconv"]
    assert subject.source["kind"] == "checkpoint"
    assert subject.baselines[0].config.name == subject.config.name == "face_mobilenetv2_x0_1"
    tv_baked = subject.tv.form("baked")
    assert not any(isinstance(m, TVConv) for m in tv_baked.modules())
    assert any(isinstance(m, BakedTVConv) for m in tv_baked.modules())
    assert any(isinstance(m, TVConv) for m in subject.tv.form("unbaked").modules())
    dw_baked = subject.baselines[0].form("baked")  # deployment form: BatchNorm folded
    def bns(m: torch.nn.Module) -> int:
        return sum(isinstance(x, torch.nn.BatchNorm2d) for x in m.modules())

    assert bns(subject.baselines[0].form("unbaked")) > 40
    assert bns(dw_baked) == bns(tv_baked) == 1  # the output layer's BatchNorm has no conv before it
    assert subject.tv.form("baked") is tv_baked  # baked once


def test_load_subject_errors(tmp_path: Path, ckpt: Path) -> None:
    with pytest.raises(TvexportError, match="runs only at its trained input size 96x96, not 112x112"):
        load_subject(ckpt, input_size=(112, 112))
    with pytest.raises(TvexportError, match="no dense baseline for face_mobilenetv2"):
        load_subject(ckpt, dense=True)
    with pytest.raises(TvexportError, match="neither an existing file nor a known architecture"):
        load_subject(tmp_path / "missing.ckpt")
    dw_ckpt = write_checkpoint(_weights_only("face_mobilenetv2_x0_1", "dwconv"), tmp_path / "dw.pth.tar", "pth.tar")
    with pytest.raises(TvexportError, match="baseline without TVConv layers"):
        load_subject(dw_ckpt)
    other = write_checkpoint(_weights_only("face_mobilenetv2_x0_2", "dwconv"), tmp_path / "dw2.pth.tar", "pth.tar")
    with pytest.raises(TvexportError, match="is a face_mobilenetv2_x0_2, but the TV network is a face_mobilenetv2_x0_1"):
        load_subject(ckpt, baseline=other)
    with pytest.raises(TvexportError, match="is a TVConv network"):
        load_subject(ckpt, baseline=ckpt)
    subject = load_subject(ckpt, baseline=dw_ckpt)
    assert subject.baselines[0].origin == "checkpoint dw.pth.tar"


def test_load_subject_from_baked_file(tmp_path: Path) -> None:
    path = tmp_path / "m.baked.pt"
    save_baked(_bake_result(), path)
    subject = load_subject(path)
    assert subject.source["kind"] == "baked" and subject.tv.unbaked is None and subject.tv.form("unbaked") is None
    assert subject.tv.origin == "baked file m.baked.pt" and subject.tv.config.name == "face_mobilenetv2_x0_1"
    # (a registry name as SRC is exercised end to end in test_bench_cli)


def test_load_subject_runs_a_trained_size_baseline_at_the_rebaked_size(tmp_path: Path) -> None:
    """A TV file re-baked for 112x112 against a --baseline trained at 96x96: the baseline is
    rebuilt for 112x112 (the comparison is at one size), its weights unchanged."""
    rebaked = tmp_path / "m112.baked.pt"
    save_baked(bake_model(_model("tvconv"), verify=False, input_size=(112, 112)), rebaked)
    dw = _weights_only("face_mobilenetv2_x0_1", "dwconv")
    path = write_checkpoint(dw, tmp_path / "dw.pth.tar", "pth.tar")
    subject = load_subject(rebaked, baseline=path)
    (baseline,) = subject.baselines
    assert subject.config.input_size == baseline.config.input_size == (112, 112)
    assert baseline.origin == "checkpoint dw.pth.tar"
    model = baseline.form("baked")
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 112, 112)).shape[0] == 1


@pytest.mark.parametrize(("text", "size"), [("96", (96, 96)), ("96x80", (96, 80)), ("256,256", (256, 256))])
def test_parse_input_size(text: str, size: tuple[int, int]) -> None:
    assert parse_input_size(text) == size


@pytest.mark.parametrize("text", ["", "axb", "1x2x3", "0x5"])
def test_parse_input_size_rejects(text: str) -> None:
    with pytest.raises(TvexportError):
        parse_input_size(text)


# --------------------------------------------------------------------------------------------
# Memory floor
# --------------------------------------------------------------------------------------------

def test_layer_floor_bytes_counts_kernels_and_activations() -> None:
    layer = BakedTVConv(4, k=3, stride=2, h=5, w=5, bias="channel")
    # kernels 4*9*25 + bias 4, input 2*4*10*10, output 2*4*5*5
    assert layer_floor_bytes(layer, input_shape=(2, 4, 10, 10), output_shape=(2, 4, 5, 5), dtype=torch.float32) == 4 * (900 + 4 + 800 + 200)
    dw = torch.nn.Conv2d(4, 4, 3, groups=4, bias=True)
    assert layer_floor_bytes(dw, input_shape=(1, 4, 5, 5), output_shape=(1, 4, 5, 5), dtype=torch.float16) == 2 * (36 + 4 + 100 + 100)
    assert dw.weight.dtype == torch.float32  # the layer itself is not cast


@pytest.mark.parametrize("run", [torch.float32, torch.float16])
def test_layer_floor_bytes_counts_compressed_kernels_as_stored(run: torch.dtype) -> None:
    """Before: int8 kernels were left out (only floating tensors counted) and float16 kernels
    counted at the run dtype's 4 bytes. Compressed kernels run as stored (``cast_model_``):
    int8 1 byte + float32 scales and bias; float16 2 bytes + float16 bias; activations at the run dtype."""
    act = (2 * 4 * 10 * 10 + 2 * 4 * 5 * 5) * (4 if run == torch.float32 else 2)
    shapes = {"input_shape": (2, 4, 10, 10), "output_shape": (2, 4, 5, 5), "dtype": run}
    int8 = BakedTVConv(4, k=3, stride=2, h=5, w=5, bias="channel", dtype=torch.int8)
    assert layer_floor_bytes(int8, **shapes) == 900 * 1 + 4 * 36 + 4 * 4 + act  # kernels, scales (C, k*k), bias
    half = BakedTVConv(4, k=3, stride=2, h=5, w=5, bias="channel", dtype=torch.float16)
    assert layer_floor_bytes(half, **shapes) == 900 * 2 + 4 * 2 + act


def test_copy_bandwidth_is_positive() -> None:
    bw = copy_bandwidth(nbytes=1 << 20, settings=MeasureSettings(warmup_seconds=0, min_iters=3, min_seconds=0))
    assert bw["bytes_per_s"] > 0 and bw["buffer_bytes"] == 1 << 20 and bw["stats"]["n"] == 3


def test_copy_bandwidth_counts_the_read_and_the_write() -> None:
    """A copy of N bytes reads N and writes N: 2 N bytes per call."""

    class Fixed:
        def measure(self, fn) -> float:
            fn()
            return 0.01

    bw = copy_bandwidth(nbytes=1 << 20, settings=MeasureSettings(warmup_seconds=0, min_iters=3, min_seconds=0), timer=Fixed())
    assert bw["bytes_per_s"] == pytest.approx(2 * (1 << 20) / 0.01)


def test_aoti_dtype_refusal_names_the_dtype_as_the_cli_does() -> None:
    from tvexport.profile.backends.compiled import torch_dtype_error

    assert str(torch_dtype_error(torch.float16)).startswith("the aoti backend exports float32 packages, not float16;")


def test_machine_and_versions() -> None:
    m = machine_info()
    assert m["logical_cores"] >= 1 and isinstance(m["cpu"], str) and m["cpu"]
    v = versions()
    assert v["torch"] == str(torch.__version__) and v["python"].count(".") == 2


# --------------------------------------------------------------------------------------------
# run_bench with fake backends on a fake clock: exact numbers through to every report format
# --------------------------------------------------------------------------------------------

class _FakeTimed:
    """A backend whose TV network 'takes' 3 s, its baselines 2 s (per image: x batch)."""

    name = "fake-timed"
    form = "baked"
    per_layer = True
    clock: FakeClock

    def available(self, *, device: str) -> str | None:
        return None

    def _run(self, model: torch.nn.Module, batch: int):
        is_tv = any(isinstance(m, (TVConv, BakedTVConv)) for m in model.modules())
        dt = (3.0 if is_tv else 2.0) * batch
        return lambda: type(self).clock.advance(dt)

    def prepare(self, model, *, batch, threads, device, dtype):
        return self._run(model, batch)

    def prepare_layer(self, layer, *, input_shape, threads, device, dtype):
        return self._run(layer, input_shape[0])


@pytest.fixture
def fake_bench(fake_registry):
    module, registry = fake_registry
    clock = FakeClock()
    _FakeTimed.clock = clock
    module.FakeTimed = _FakeTimed  # type: ignore[attr-defined]
    registry["fake-timed"] = "_fake:FakeTimed"
    return clock


def test_run_bench_zero_baseline_round_names_the_case(fake_bench: FakeClock) -> None:
    """Every third depthwise run reads 0 s (a coarse custom timer; the median stays 2 s): the error
    is the zero-sample one, prefixed with the backend and batch."""

    class Coarse:
        dw_calls = 0

        def measure(self, fn) -> float:
            dt = CpuTimer(fake_bench).measure(fn)
            if abs(dt - 2.0) < 1e-9:  # a depthwise run at batch 1
                Coarse.dw_calls += 1
                return 0.0 if Coarse.dw_calls % 3 == 0 else dt
            return dt

    with pytest.raises(TvexportError, match=r"^fake-timed batch 1: [12] of 5 dwconv timings are 0 s: .*; time with a finer clock"):
        run_bench(_subject(), backends=["fake-timed"], batches=[1], threads=1, dtype="float32",
                  settings=MeasureSettings(warmup_seconds=0, min_iters=5, min_seconds=0), clock=fake_bench, timer=Coarse())


class _ZeroTVLayer(_FakeTimed):
    """``_FakeTimed`` whose TV layers, timed alone, take 0 s (a timer too coarse to resolve them)."""

    name = "fake-zero-layer"

    def prepare_layer(self, layer, *, input_shape, threads, device, dtype):
        if isinstance(layer, (TVConv, BakedTVConv)):
            return lambda: type(self).clock.advance(0.0)
        return self._run(layer, input_shape[0])


def test_run_bench_per_layer_takes_a_zero_median_tv_layer(fake_bench: FakeClock, fake_registry) -> None:
    """Before: the per-layer summary computed a throughput it never reported, and failed on a TV
    layer's 0 s median ("throughput is undefined"). Its row is reported now (median 0 s, ratio 0);
    a 0 s baseline is still refused by the ratio."""
    module, registry = fake_registry
    module.ZeroTVLayer = _ZeroTVLayer  # type: ignore[attr-defined]
    registry["fake-zero-layer"] = "_fake:ZeroTVLayer"
    report = run_bench(_subject(), backends=["fake-zero-layer"], batches=[1], threads=1, dtype="float32",
                       settings=MeasureSettings(warmup_seconds=0, min_iters=3, min_seconds=0), per_layer=True, layer_seconds=0,
                       clock=fake_bench, timer=CpuTimer(fake_bench))
    assert validate_report(report) == []
    layers = report["layers"]
    assert len(layers) == 17 and all(r["tv"]["stats"]["median_s"] == 0.0 and r["dw"]["stats"]["median_s"] == 2.0 for r in layers)
    assert all(r["ratio"]["median"] == 0.0 for r in layers)


def test_run_bench_report_with_fake_timings(fake_bench: FakeClock, tmp_path: Path) -> None:
    calls = []
    report = run_bench(
        _subject(), backends=["fake-timed"], batches=[1, 4], threads=1, dtype="float32",
        settings=MeasureSettings(warmup_seconds=0, min_iters=5, min_seconds=0), per_layer=True, layer_seconds=0,
        clock=fake_bench, timer=CpuTimer(fake_bench), command="tvexport bench x", progress=lambda d, a, b: calls.append((a, b)),
    )
    assert validate_report(report) == []
    assert report["settings"]["threads"] == 1 and report["settings"]["batches"] == [1, 4]
    assert report["skipped"] == []  # named backends only
    assert report["settings"]["backends"] == ["fake-timed"]
    assert [(c["backend"], c["batch"], c["rounds"]) for c in report["cases"]] == [("fake-timed", 1, 5), ("fake-timed", 4, 5)]
    case = report["cases"][1]
    tv, dw = case["results"]
    assert (tv["network"], tv["stats"]["median_s"], tv["throughput_ips"]) == ("tvconv", 12.0, pytest.approx(4 / 12))
    assert (dw["network"], dw["stats"]["median_s"], dw["stats"]["cv"]) == ("dwconv", 8.0, 0.0)
    assert case["ratios"][0]["median"] == pytest.approx(1.5) and case["ratios"][0]["ci95"] == [pytest.approx(1.5)] * 2
    assert case["warnings"] == []
    # per-layer: 17 TV layers per batch, each with its depthwise twin, floors from a real copy bandwidth
    assert len(report["layers"]) == 34
    layer = report["layers"][0]
    assert layer["name"] == "features.1.conv.0.0" and layer["input_shape"] == [1, 8, 96, 96]
    assert layer["tv"]["stats"]["median_s"] == 3.0 and layer["dw"]["stats"]["median_s"] == 2.0
    assert layer["tv"]["floor_bytes"] == 4 * (8 * 9 * 96 * 96 + 8 + 2 * 8 * 96 * 96)  # kernels + folded BN bias + in + out
    assert layer["tv"]["floor_s"] == pytest.approx(layer["tv"]["floor_bytes"] / report["bandwidth"]["bytes_per_s"])
    assert layer["tv"]["x_floor"] == pytest.approx(3.0 / layer["tv"]["floor_s"])
    assert calls[-1] == (2 + 34, 2 + 34)
    # the report round-trips through every format
    md = to_markdown(report)
    assert "| fake-timed | 4 | 12000 (0%) | 0.3333 | 8000 (0%) | 0.5 | 1.50 [1.50-1.50] |" in md
    assert "features.17.conv.1.0" in md and "`tvexport bench x`" in md and report["machine"]["cpu"] in md
    rows = list(csv.DictReader(io.StringIO(to_csv(report))))
    assert [r["kind"] for r in rows] == ["latency", "latency", "ratio"] * 2
    assert float(rows[3]["median_s"]) == 12.0 and rows[5]["network"] == "tvconv/dwconv" and float(rows[5]["ratio_median"]) == 1.5
    path = tmp_path / "r.json"
    path.write_text(to_json(report))
    assert load_report(path) == json.loads(json.dumps(report))


def test_run_bench_warns_on_noise_and_truncation(fake_bench: FakeClock) -> None:
    durations = iter([1.0, 1.0, 5.0, 1.0] * 10)

    class Noisy(_FakeTimed):
        name = "fake-timed"

        def prepare(self, model, *, batch, threads, device, dtype):
            return lambda: fake_bench.advance(next(durations))

    sys.modules["tvexport.profile.backends._fake"].FakeTimed = Noisy  # type: ignore[attr-defined]
    report = run_bench(
        _subject(), backends=["fake-timed"], settings=MeasureSettings(warmup_seconds=0, min_iters=10, min_seconds=0, max_seconds=3.0, min_warmup_rounds=0),
        clock=fake_bench, timer=CpuTimer(fake_bench),
    )
    warnings = report["cases"][0]["warnings"]
    assert report["cases"][0]["truncated"] is True
    assert any("CV" in w and "> 10%" in w for w in warnings)
    assert any("stopped by --max-seconds after 2 rounds" in w for w in warnings)
    assert validate_report(report) == []


def test_cv_warnings_print_small_thresholds() -> None:
    """Before: thresholds were printed with no decimals: `--cv-warn 0.004` read "CV tvconv 1% > 0%"."""
    from tvexport.profile.bench import _case_warnings
    from tvexport.profile.harness import CaseTiming

    timing = CaseTiming(["tvconv"], {"tvconv": [1.0]}, 1, 0, 0.0, 1.0, False)
    results = [{"network": "tvconv", "stats": {"cv": 0.005}}]
    (warning,) = _case_warnings(timing, results, cv_warn=0.004, where="torch-baked batch 1")
    assert warning.startswith("torch-baked batch 1: CV tvconv 0.5% > 0.4%: noisy timings")
    results = [{"network": "tvconv", "stats": {"cv": 0.1234}}]
    assert "CV tvconv 12.3% > 10%" in _case_warnings(timing, results, cv_warn=0.1, where="x")[0]


def test_run_bench_errors_and_skips(fake_registry, tmp_path: Path) -> None:
    path = tmp_path / "m.baked.pt"
    save_baked(_bake_result(), path)
    baked_subject = load_subject(path)
    with pytest.raises(TvexportError, match="torch-unbaked cannot run: SRC is a baked file"):
        run_bench(baked_subject, backends=["torch-unbaked"])
    with pytest.raises(TvexportError, match="batch sizes must be >= 1"):
        run_bench(baked_subject, backends=["torch-baked"], batches=[0])
    for odd in (1.9, True, "2"):  # before: 1.9 ran as batch 1
        with pytest.raises(TvexportError, match=f"batch sizes must be integers, got {re.escape(repr(odd))}"):
            run_bench(baked_subject, backends=["torch-baked"], batches=[odd, 2])  # type: ignore[list-item]
    with pytest.raises(TvexportError, match="unsupported dtype 'int8'"):
        run_bench(baked_subject, backends=["torch-baked"], dtype="int8")
    report = run_bench(baked_subject, settings=MeasureSettings(warmup_seconds=0, min_iters=1, min_seconds=0), threads=1)
    skipped = {s["backend"]: s["reason"] for s in report["skipped"]}
    assert set(skipped) == {"torch-unbaked", "fake-missing"} and "baked file" in skipped["torch-unbaked"]
    assert [c["backend"] for c in report["cases"]] == ["torch-baked"]
    assert "fake-missing (fakeruntime is not installed)" in to_markdown(report)


def test_run_bench_real_torch_backends_per_layer() -> None:
    """Both torch backends, both networks, per layer, end to end (tiny settings; numbers unchecked)."""
    report = run_bench(
        _subject(), backends=["torch-unbaked", "torch-baked"], batches=[2], threads=1,
        settings=MeasureSettings(warmup_seconds=0, min_iters=2, min_seconds=0), per_layer=True, layer_seconds=0,
    )
    assert validate_report(report) == []
    assert [c["backend"] for c in report["cases"]] == ["torch-unbaked", "torch-baked"]
    assert all(r["stats"]["n"] == 2 and r["stats"]["median_s"] > 0 for c in report["cases"] for r in c["results"])
    assert len(report["layers"]) == 2 * 17
    assert all(row["dw"] is not None and row["tv"]["x_floor"] > 0 and row["ratio"]["n"] == 2 for row in report["layers"])
    assert "speed-up vs unbaked (unpaired)" in to_markdown(report)


def test_run_bench_deeplab_dense_baseline() -> None:
    from tests.conftest import SMALL_TV
    from tvexport.models import create_model
    from tvexport.testing import randomize_

    subject = Subject(
        create_model("deeplabv3plus_mobilenetv2", tv=SMALL_TV).tvexport_config, {"kind": "registry", "arch": "deeplabv3plus_mobilenetv2"},
        [Network(a, "test", m, bake_model(m, verify=False).model) for a in ("tvconv", "dwconv", "dense")
         for m in [randomize_(create_model("deeplabv3plus_mobilenetv2", atom=a, tv=SMALL_TV), calibrate=False)]],
    )
    report = run_bench(subject, backends=["torch-baked"], settings=MeasureSettings(warmup_seconds=0, min_iters=1, min_seconds=0), threads=1)
    assert [r["denominator"] for r in report["cases"][0]["ratios"]] == ["dwconv", "dense"]
    assert "tvconv/dense" in to_markdown(report)
    assert validate_report(report) == []


# --------------------------------------------------------------------------------------------
# Schema and plot
# --------------------------------------------------------------------------------------------

@pytest.fixture
def fake_report(fake_bench: FakeClock) -> dict:
    return run_bench(_subject(), backends=["fake-timed"], batches=[1, 2],
                     settings=MeasureSettings(warmup_seconds=0, min_iters=3, min_seconds=0), clock=fake_bench, timer=CpuTimer(fake_bench))


def test_csv_records_the_inference_precision(fake_report: dict) -> None:
    """Before: the precision an OpenVINO case computed in (``precision``, read back from the compiled
    model) was in the JSON and Markdown only. The CSV has it in a last column (earlier columns keep
    their order); cases of runtimes that do not record one leave it empty."""
    from tvexport.profile.report import CSV_COLUMNS

    report = copy.deepcopy(fake_report)
    report["cases"][0]["precision"] = "bf16"
    text = to_csv(report)
    assert text.splitlines()[0].split(",") == CSV_COLUMNS and CSV_COLUMNS[-1] == "precision"
    assert CSV_COLUMNS[:3] == ["kind", "backend", "batch"] and CSV_COLUMNS[-2] == "ratio_of_medians"
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["batch"], r["kind"], r["precision"]) for r in rows] == [("1", "latency", "bf16")] * 2 + [("1", "ratio", "bf16")] + [
        ("2", "latency", ""), ("2", "latency", ""), ("2", "ratio", "")]


def test_report_records_the_openvino_and_onnxsim_versions(fake_report: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: a saved report could not say which OpenVINO (or onnxsim, which simplifies the graphs
    the onnxruntime and openvino backends run) produced its numbers. Versions are read from
    installed metadata (None where not installed), and the machine line names them where such a
    case ran."""
    import importlib.metadata

    from tvexport.profile import machine
    from tvexport.profile.report import describe_machine

    real = importlib.metadata.version
    fake = {"openvino": "2099.1.0", "onnxsim": "9.8.7", "onnxruntime": "1.2.3"}
    monkeypatch.setattr(machine.importlib.metadata, "version", lambda name: fake[name] if name in fake else real(name))
    v = machine.versions()
    assert (v["openvino"], v["onnxsim"]) == ("2099.1.0", "9.8.7")
    report = {**copy.deepcopy(fake_report), "versions": {**fake_report["versions"], **fake}}
    assert validate_report(report) == []
    line = describe_machine(report)  # fake-timed cases only: neither ran
    assert "onnxruntime 1.2.3" in line and "openvino" not in line and "onnxsim" not in line
    report["cases"][0]["backend"] = "openvino-fused"
    assert "onnxruntime 1.2.3, openvino 2099.1.0, onnxsim 9.8.7" in describe_machine(report)
    report["cases"][0]["backend"] = "onnxruntime"
    assert "onnxsim 9.8.7" in describe_machine(report) and "openvino" not in describe_machine(report)
    report["versions"]["onnxsim"] = None  # not installed: not named
    assert "onnxsim" not in describe_machine(report)


def test_validate_report_catches_departures(fake_report: dict) -> None:
    assert validate_report(fake_report) == []
    bad = copy.deepcopy(fake_report)
    del bad["machine"]["cpu"]
    bad["cases"][0]["results"][0]["stats"]["median_s"] = "fast"
    bad["settings"]["dtype"] = "int8"
    bad["surprise"] = 1
    bad["cases"][1]["ratios"][0]["ci95"] = [1.0]
    problems = validate_report(bad)
    assert any("machine: missing key 'cpu'" in p for p in problems)
    assert any("median_s: expected number, got str" in p for p in problems)
    assert any("dtype: 'int8' is not one of" in p for p in problems)
    assert any("unexpected key 'surprise'" in p for p in problems)
    assert any("ci95: 1 items < 2" in p for p in problems)
    assert validate_report({**fake_report, "schema_version": 2})


def test_schema_is_valid_json_schema(fake_report: dict) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.Draft202012Validator.check_schema(REPORT_SCHEMA)
    jsonschema.validate(json.loads(to_json(fake_report)), REPORT_SCHEMA)


def test_load_report_rejects_other_json(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"schema": "something else"}')
    with pytest.raises(TvexportError, match="is not a tvexport bench report"):
        load_report(path)
    path.write_text("{not json")
    with pytest.raises(TvexportError, match="cannot read bench report"):
        load_report(path)


def test_write_reports_honours_force_and_refuses_one_file_twice(fake_report: dict, tmp_path: Path) -> None:
    """The API contract (the CLI checks before running, which hid it): an existing file is kept
    without ``force``; two reports naming one file are refused before either is written."""
    from tvexport.profile.report import write_reports

    existing = tmp_path / "r.json"
    existing.write_text("keep me")
    with pytest.raises(TvexportError, match="already exists"):
        write_reports(fake_report, json_path=existing)
    assert existing.read_text() == "keep me"
    assert write_reports(fake_report, json_path=existing, force=True) == [existing]
    assert load_report(existing) == json.loads(to_json(fake_report))
    with pytest.raises(TvexportError, match="csv_path and markdown_path both name "):
        write_reports(fake_report, csv_path=tmp_path / "same.out", markdown_path=tmp_path / "." / "same.out")
    assert not (tmp_path / "same.out").exists()


def test_write_reports_writes_nothing_unless_every_report_can_be_written(fake_report: dict, tmp_path: Path) -> None:
    """An existing later report (the CSV) refuses the whole set before the earlier one (the JSON) is
    written; a report that fails to render (here the Markdown of a report without settings) leaves
    no file either. Before: the JSON was written, then the Markdown raised."""
    from tvexport.profile.report import write_reports

    (tmp_path / "r.csv").write_text("keep me")
    with pytest.raises(TvexportError, match="r.csv already exists"):
        write_reports(fake_report, json_path=tmp_path / "r.json", csv_path=tmp_path / "r.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv"] and (tmp_path / "r.csv").read_text() == "keep me"
    broken = {k: v for k, v in fake_report.items() if k != "settings"}
    with pytest.raises(KeyError, match="settings"):
        write_reports(broken, json_path=tmp_path / "r.json", csv_path=tmp_path / "r.csv", markdown_path=tmp_path / "r.md", force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv"] and (tmp_path / "r.csv").read_text() == "keep me"


def test_reports_never_overwrite_an_input(fake_report: dict, tmp_path: Path) -> None:
    """Before: only the CLI kept reports off SRC and --baseline; `write_reports(..., force=True)`
    (and `plot_report`) replaced the benchmarked checkpoint by the report. Every spelling of an
    input is refused (a symlink, a hard link, a detour), before any report is written."""
    from tvexport.profile import check_report_paths, write_reports
    from tvexport.profile.plot import plot_report

    src, base = tmp_path / "tv.pt", tmp_path / "dw.pt"
    src.write_bytes(b"checkpoint")
    base.write_bytes(b"baseline")
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.pt").symlink_to(src)
    (tmp_path / "hard.pt").hardlink_to(src)
    for spelling in (src, tmp_path / "link.pt", tmp_path / "hard.pt", tmp_path / "sub" / ".." / "tv.pt"):
        with pytest.raises(TvexportError) as err:
            write_reports(fake_report, json_path=tmp_path / "r.json", markdown_path=spelling, force=True, inputs={"SRC": src, "--baseline": base})
        assert err.value.message == f"markdown_path {spelling} is the input file (SRC)", err.value.message
        with pytest.raises(TvexportError, match=f"path {spelling} is the input file"):
            plot_report(fake_report, spelling, force=True, inputs={"--baseline": base, "SRC": src})
    with pytest.raises(TvexportError) as err:
        check_report_paths({"--json": None, "--csv": tmp_path / "." / "dw.pt"}, inputs={"SRC": src, "--baseline": base}, force=True)
    assert err.value.message == f"--csv {tmp_path / '.' / 'dw.pt'} is the input file (--baseline)", err.value.message
    assert src.read_bytes() == b"checkpoint" and base.read_bytes() == b"baseline"
    assert not (tmp_path / "r.json").exists()
    assert write_reports(fake_report, json_path=tmp_path / "r.json", inputs={"SRC": src, "--baseline": base}) == [tmp_path / "r.json"]


def test_plots_are_written(fake_report: dict, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from tvexport.profile.plot import plot_ratio_grid, plot_report

    out = plot_report(fake_report, tmp_path / "r.png")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    grid = plot_ratio_grid([fake_report, fake_report], tmp_path / "g.png", title="t")
    assert grid.read_bytes()[:4] == b"\x89PNG"
    # like every other writer, the plots keep an existing file unless forced
    with pytest.raises(TvexportError, match="already exists"):
        plot_report(fake_report, out)
    with pytest.raises(TvexportError, match="already exists"):
        plot_ratio_grid([fake_report], grid)
    assert plot_report(fake_report, out, force=True) == out and plot_ratio_grid([fake_report], grid, force=True) == grid
    assert not list(tmp_path.glob(".*.tmp"))
    # the grid takes inputs= as plot_report does: never written over a report it plots, even forced
    saved = tmp_path / "r.json"
    saved.write_text(to_json(fake_report))
    with pytest.raises(TvexportError, match=f"path {saved} is the input file \\(--report\\)"):
        plot_ratio_grid([load_report(saved)], saved, force=True, inputs={"--report": saved})
    assert load_report(saved) == json.loads(to_json(fake_report))
    # a PNG under another format's name is refused, before anything is drawn (before: PNG bytes in r.svg)
    for plot in (plot_report, lambda report, path: plot_ratio_grid([report], path)):
        with pytest.raises(TvexportError, match=r"r.svg: the plot is a PNG image, and .svg names another format; name it r.png"):
            plot(fake_report, tmp_path / "r.svg")
    assert not (tmp_path / "r.svg").exists()


def test_plot_writers_refuse_an_empty_name_with_a_fix_they_take(fake_report: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: plot_report(report, "") and plot_ratio_grid(..., "") said "give a file name with path,
    or leave path out" (check_report_paths' hint for an optional report), and path is required."""
    from tvexport.profile.plot import plot_ratio_grid, plot_report

    monkeypatch.chdir(tmp_path)
    for plot in (plot_report, lambda report, path: plot_ratio_grid([report], path)):
        with pytest.raises(TvexportError) as info:
            plot(fake_report, "")
        assert str(info.value) == "path '' is an empty name (an unset variable?); name it plot.png", str(info.value)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(("name", "line"), [
    ("", "--plot '' is an empty name (an unset variable?); name it plot.png"),
    (".", "--plot . names a directory, not a file; name a file in it: plot.png"),
    ("..", "--plot .. names a directory, not a file; name a file in it: ../plot.png"),
    (".png.svg", "--plot .png.svg: the plot is a PNG image, and .svg names another format; name it plot.png"),
    ("x.png.svg", "--plot x.png.svg: the plot is a PNG image, and .svg names another format; name it x.png"),
    ("x.svg", "--plot x.svg: the plot is a PNG image, and .svg names another format; name it x.png"),
])
def test_plot_name_hint_is_a_name_the_check_takes(name: str, line: str) -> None:
    """Before: "", "." and ".." were told to "name it .png" (or "...png") and ".png.svg" to "name it
    .png.png", hidden names that the same check refuses as a suffix alone; the hint is now a name
    it takes. Only the API reaches these (the CLI's check_report_paths refuses --plot "" first, and
    "." or ".." as a directory)."""
    from tvexport.profile.plot import check_plot_path

    with pytest.raises(TvexportError) as info:
        check_plot_path(name, what="--plot")
    assert str(info.value) == line
    fixed = line.rsplit("name it ", 1)[-1].rsplit("name a file in it: ", 1)[-1]
    check_plot_path(fixed, what="--plot")  # the hint passes the check


def test_latency_panel_is_linear_with_labelled_bars(fake_report: dict) -> None:
    """Bars on a log axis have meaningless lengths (and its ticks hid the values): linear from 0,
    every bar labelled with its median; the ratio points carry their value too."""
    plt = pytest.importorskip("matplotlib.pyplot")
    from tvexport.profile.plot import report_figure

    fig = report_figure(fake_report)
    try:
        latency, ratio = fig.axes[0], fig.axes[1]
        medians = [r["stats"]["median_s"] * 1e3 for c in fake_report["cases"] for r in c["results"]]
        assert latency.get_yscale() == "linear" and latency.get_ylim()[0] == 0
        assert sorted(p.get_height() for p in latency.patches) == pytest.approx(sorted(medians))
        assert sorted(t.get_text() for t in latency.texts) == sorted(f"{m:.3g}" for m in medians)
        ratios = [q["median"] for c in fake_report["cases"] for q in c["ratios"]]
        assert sorted(t.get_text() for t in ratio.texts) == sorted(f"{q:.2f}" for q in ratios)
    finally:
        plt.close(fig)


@pytest.fixture
def spread_report(fake_bench: FakeClock) -> dict:
    """A report whose paired ratios spread unevenly (TV 1, 1, 1, 2, 5 s against DW 1 s per round):
    median 1, p10 1, p90 3.8, so p10 and p90 (and the whiskers below and above) differ."""

    class Spread(_FakeTimed):
        def prepare(self, model, *, batch, threads, device, dtype):
            if not any(isinstance(m, (TVConv, BakedTVConv)) for m in model.modules()):
                return lambda: fake_bench.advance(1.0)
            durations = iter([1.0, 1.0, 1.0, 2.0, 5.0])
            return lambda: fake_bench.advance(next(durations))

    sys.modules["tvexport.profile.backends._fake"].FakeTimed = Spread  # type: ignore[attr-defined]
    report = run_bench(_subject(), backends=["fake-timed"], settings=MeasureSettings(warmup_seconds=0, min_iters=5, min_seconds=0, min_warmup_rounds=0),
                       clock=fake_bench, timer=CpuTimer(fake_bench))
    q = report["cases"][0]["ratios"][0]
    assert (q["median"], q["p10"], q["p90"]) == (1.0, 1.0, pytest.approx(3.8))
    return report


def test_ratio_spread_in_csv_markdown_and_plot(spread_report: dict) -> None:
    rows = list(csv.DictReader(io.StringIO(to_csv(spread_report))))
    ratio = next(r for r in rows if r["kind"] == "ratio")
    assert (float(ratio["ratio_p10"]), float(ratio["ratio_p90"])) == (1.0, pytest.approx(3.8))
    assert "| 1.00 [1.00-3.80] |" in to_markdown(spread_report)
    plt = pytest.importorskip("matplotlib.pyplot")
    from tvexport.profile.plot import report_figure

    fig = report_figure(spread_report)
    try:
        (segment,) = fig.axes[1].collections[0].get_segments()  # the whisker of the one case: p10 to p90
        assert segment[:, 1].tolist() == [1.0, pytest.approx(3.8)]
    finally:
        plt.close(fig)


def test_speed_up_over_unbaked(fake_report: dict) -> None:
    """The TV speed-up over torch-unbaked at the same batch: unbaked median / this median."""
    report = copy.deepcopy(fake_report)
    unbaked, baked = report["cases"][0], copy.deepcopy(report["cases"][0])
    unbaked["backend"], baked["backend"] = "torch-unbaked", "torch-baked"
    unbaked["results"][0]["stats"]["median_s"], baked["results"][0]["stats"]["median_s"] = 6.0, 1.5
    report["cases"] = [unbaked, baked]
    header, rows = summary_rows(report)
    col = header.index("speed-up vs unbaked (unpaired)")
    assert [row[col] for row in rows] == ["-", "4.00x"]


def test_speed_up_over_unbaked_is_labelled_unpaired(fake_report: dict) -> None:
    """torch-unbaked is timed in a case of its own, not in the rounds of the case it is compared
    with: before, its column sat under a method line calling every ratio paired. The column and
    the method line say it is a ratio of medians of separate cases; without it, nothing is said."""
    assert "unpaired" not in to_markdown(fake_report)
    report = copy.deepcopy(fake_report)
    report["cases"][0]["backend"] = "torch-unbaked"
    header, _ = summary_rows(report)
    assert header[-1] == "speed-up vs unbaked (unpaired)"
    method = next(line for line in to_markdown(report).splitlines() if line.startswith("- method:"))
    assert "ratios are per-round paired ratios" in method and "two cases timed one after the other (unpaired)" in method


def test_layer_rows_are_in_microseconds(fake_bench: FakeClock) -> None:
    report = run_bench(_subject(), backends=["fake-timed"], settings=MeasureSettings(warmup_seconds=0, min_iters=1, min_seconds=0),
                       per_layer=True, layer_seconds=0, clock=fake_bench, timer=CpuTimer(fake_bench))
    report["layers"] = report["layers"][:1]
    layer = report["layers"][0]
    layer["tv"]["stats"]["median_s"], layer["tv"]["floor_s"], layer["tv"]["x_floor"] = 12.3e-6, 4.56e-6, 2.7
    layer["dw"]["stats"]["median_s"], layer["dw"]["floor_s"] = 20e-6, 5e-6
    header, (row,) = layer_rows(report)
    cells = dict(zip(header, row))
    assert (cells["TV us"], cells["TV floor us"], cells["TV x floor"], cells["DW us"], cells["DW floor us"]) == ("12.3", "4.56", "2.7", "20", "5")
    assert cells["TV/DW"] == "1.50 [1.50-1.50]"


def test_run_bench_float16_floors_and_settings(fake_bench: FakeClock) -> None:
    report = run_bench(_subject(), backends=["fake-timed"], dtype=torch.float16, settings=MeasureSettings(warmup_seconds=0, min_iters=1, min_seconds=0),
                       per_layer=True, layer_seconds=0, clock=fake_bench, timer=CpuTimer(fake_bench))
    assert report["settings"]["dtype"] == "float16"
    assert report["layers"][0]["tv"]["floor_bytes"] == 2 * (8 * 9 * 96 * 96 + 8 + 2 * 8 * 96 * 96)  # 2-byte elements


def test_run_bench_per_layer_input_is_the_real_one_after_odd_maps(fake_bench: FakeClock) -> None:
    """Before: a stride-2 layer was timed on its output size times 2; at 100x100 the maps go
    100 -> 50 -> 25 -> 13 -> 7, so the layers making 13x13 and 7x7 were given 26x26 and 14x14."""
    subject = load_subject("face_mobilenetv2_x0_1", input_size=(100, 100))
    model = subject.tv.form("baked")
    seen = {}
    hooks = [m.register_forward_pre_hook(lambda m, args, n=n: seen.update({n: list(args[0].shape[1:])}))
             for n, m in model.named_modules() if isinstance(m, BakedTVConv)]
    with torch.no_grad():
        model(torch.zeros(1, 3, 100, 100))
    for h in hooks:
        h.remove()
    report = run_bench(subject, backends=["fake-timed"], batches=[2], settings=MeasureSettings(warmup_seconds=0, min_iters=1, min_seconds=0),
                       per_layer=True, layer_seconds=0, clock=fake_bench, timer=CpuTimer(fake_bench))
    assert {row["name"]: row["input_shape"] for row in report["layers"]} == {n: [2, *shape] for n, shape in seen.items()}
    odd = [row for row in report["layers"] if row["stride"] == 2 and row["h"] in (13, 7)]
    assert [row["input_shape"][2:] for row in odd] == [[25, 25], [13, 13]]
    row = odd[0]  # the floor is that of the real input
    assert row["tv"]["floor_bytes"] == 4 * (row["channels"] * 9 * 13 * 13 + row["channels"] + 2 * row["channels"] * (25 * 25 + 13 * 13))


def test_run_bench_per_layer_floor_of_int8_kernels(fake_bench: FakeClock) -> None:
    """Before: the int8 kernels, the dominant traffic of a TV layer, were missing from the floor."""
    from tvexport.quantize import compress_model

    subject = _subject()
    compress_model(subject.tv.form("baked"), torch.int8)
    report = run_bench(subject, backends=["fake-timed"], settings=MeasureSettings(warmup_seconds=0, min_iters=1, min_seconds=0),
                       per_layer=True, layer_seconds=0, clock=fake_bench, timer=CpuTimer(fake_bench))
    # int8 kernels + float32 scales (C, k*k) + float32 bias, float32 input and output
    assert report["layers"][0]["tv"]["floor_bytes"] == 8 * 9 * 96 * 96 + 4 * (8 * 9 + 8) + 4 * 2 * 8 * 96 * 96


def test_run_bench_default_backend_that_fails_to_prepare_is_skipped(fake_bench: FakeClock, fake_registry) -> None:
    module, registry = fake_registry

    class Broken(_FakeTimed):
        name = "fake-broken"

        def prepare(self, model, *, batch, threads, device, dtype):
            raise TvexportError("exporter says no")

    module.Broken = Broken  # type: ignore[attr-defined]
    registry["fake-broken"] = "_fake:Broken"
    registry.pop("torch-unbaked"), registry.pop("torch-baked")
    report = run_bench(_subject(), batches=[1, 2], settings=MeasureSettings(warmup_seconds=0, min_iters=1, min_seconds=0),
                       clock=fake_bench, timer=CpuTimer(fake_bench))
    assert [c["backend"] for c in report["cases"]] == ["fake-timed", "fake-timed"]
    assert {"backend": "fake-broken", "reason": "failed to prepare at batch 1: exporter says no"} in report["skipped"]
    assert report["settings"]["backends"] == ["fake-timed"]  # the backends that ran, not the skipped one
    with pytest.raises(TvexportError, match="exporter says no"):
        run_bench(_subject(), backends=["fake-broken"], clock=fake_bench, timer=CpuTimer(fake_bench))


def test_onnxruntime_backend_runs_the_exported_graph(monkeypatch: pytest.MonkeyPatch) -> None:
    """The adapter times the real portable graph: its output equals the baked torch model's. Its
    session's threads do not spin after a run (they would slow the case's other session)."""
    pytest.importorskip("onnxruntime")
    import numpy as np

    import tvexport.export.onnx as tvonnx
    from tvexport.bake import random_inputs
    from tvexport.profile.backends import get_backend

    sessions = []

    class Spy(tvonnx.OrtRunner):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            sessions.append(self.session)

    monkeypatch.setattr(tvonnx, "OrtRunner", Spy)
    baked = bake_model(make_model(), verify=False).model
    backend = get_backend("onnxruntime")
    assert backend.available(device="cpu") is None and backend.available(device="cuda") is not None
    run = backend.prepare(baked, batch=2, threads=1, device="cpu", dtype=torch.float32)
    [session] = sessions
    assert session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "0"
    out = run()[0]
    with torch.no_grad():
        ref = baked(random_inputs((2, 3, 96, 96), seed=0))
    np.testing.assert_allclose(out, ref.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["triton", "tensorrt"])
def test_gpu_backends_say_why_they_are_unavailable(name: str) -> None:
    from tvexport.profile.backends import get_backend

    reason = get_backend(name).available(device="cpu")
    assert reason and ("CUDA" in reason or "needs" in reason)


def test_aoti_backend_needs_the_compiler_on_cuda_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """An AOTInductor package builds a C++ wrapper on every device (``export --format aoti --device
    cuda`` checks the compiler too); torch.compile on CUDA generates Triton code only. Before:
    ``bench -b aoti`` on a CUDA host without the compiler compiled, then failed inside Inductor."""
    import shutil

    from tvexport.profile.backends import compiled, get_backend

    monkeypatch.setattr(compiled, "torch_device_reason", lambda device: None)  # as on a CUDA host
    for var in ("CXX", "TORCH_INDUCTOR_INSTALL_GXX"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(shutil, "which", lambda cmd, *a, **k: None)
    assert get_backend("aoti").available(device="cuda") == "AOTInductor needs a C++ compiler, and 'g++' was not found; install g++ (e.g. apt-get install g++) or point the CXX environment variable at one"
    assert get_backend("torch-compile").available(device="cuda") is None


@pytest.mark.parametrize("name", ["torch-compile", "aoti"])
def test_compiled_backends_need_the_compiler_inductor_calls(name: str, monkeypatch: pytest.MonkeyPatch, cli, face_ckpt: Path) -> None:
    """Before: the Inductor backends counted any of g++, c++ or clang++ on PATH, while Inductor calls
    one ($CXX, default g++): with only c++, ``tvexport bench -b torch-compile`` compiled for ~50 s
    and ended "internal error: InductorError: InvalidCxxCompiler ... report it". Now the backend is
    unavailable, named in one line before any work (and skipped, with that reason, by default)."""
    import shutil

    from tvexport import compile as tvcompile
    from tvexport.profile.backends import get_backend, select_backends

    for var in ("CXX", "TORCH_INDUCTOR_INSTALL_GXX"):  # the default compiler, none installed by Inductor
        monkeypatch.delenv(var, raising=False)
    cxx = tvcompile.inductor_cxx()
    monkeypatch.setattr(shutil, "which", lambda cmd, *a, **k: None if cmd == cxx else f"/usr/bin/{cmd}")  # every compiler but Inductor's

    def never(*_args: Any, **_kwargs: Any) -> None:
        pytest.fail("the backend compiled without the compiler Inductor calls")

    monkeypatch.setattr(tvcompile, "compile_model", never)
    monkeypatch.setattr(importlib.import_module("tvexport.export.aoti"), "export_aoti", never)
    reason = get_backend(name).available(device="cpu")
    what = "AOTInductor" if name == "aoti" else "torch.compile (Inductor) on the CPU"  # compile_model's and export's own lines
    assert reason == f"{what} needs a C++ compiler, and {cxx!r} was not found; install g++ (e.g. apt-get install g++) or point the CXX environment variable at one"
    assert (name, reason) in select_backends(None, device="cpu")[1]
    r = cli("bench", face_ckpt, "-b", name, "--batch", "1")
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.exit_code == 2 and lines == [f"error: backend {name} is not available on cpu: {reason}"], r


@pytest.mark.parametrize("name", ["torch-compile", "aoti"])
def test_compiled_backends_run_the_compiled_network(name: str) -> None:
    """torch.compile / AOTInductor adapters: compiled once in prepare, output equals eager."""
    from tests.tinynet import tiny_tvnet
    from tvexport.bake import random_inputs
    from tvexport.profile.backends import get_backend

    backend = get_backend(name)
    if backend.available(device="cpu"):
        pytest.skip(backend.available(device="cpu"))
    baked = bake_model(tiny_tvnet(), verify=False).model
    run = backend.prepare(baked, batch=2, threads=1, device="cpu", dtype=torch.float32)
    out = run()
    out = out[0] if isinstance(out, (list, tuple)) else out
    with torch.no_grad():
        ref = baked(random_inputs((2, 3, 96, 96), seed=0))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_torch_compile_prepare_leaves_the_shared_model_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: prepare cast and moved the model in place, and the model is shared with the
    backends that run after it (they would get it at whatever dtype torch-compile asked for)."""
    import tvexport.compile
    from tests.tinynet import tiny_tvnet
    from tvexport.profile.backends.compiled import TorchCompile

    monkeypatch.setattr(tvexport.compile, "compile_model", lambda model, **kw: model)  # no Inductor: the cast is under test
    baked = bake_model(tiny_tvnet(), verify=False).model
    before = {k: v.clone() for k, v in baked.state_dict().items()}
    run = TorchCompile().prepare(baked, batch=1, threads=1, device="cpu", dtype=torch.float64)
    assert run().dtype == torch.float64
    after = baked.state_dict()
    assert {k: v.dtype for k, v in after.items()} == {k: v.dtype for k, v in before.items()}
    assert all(torch.equal(after[k], v) for k, v in before.items())


def test_layer_inputs_are_recorded_and_the_hooks_removed() -> None:
    """bench --per-layer's input shapes come from one forward pass: the stride-2 layers after an odd
    map see 2*h - 1 rows; no pre-hook is left on the model afterwards."""
    from tvexport.bake import tv_layer_names
    from tvexport.profile.bench import _layer_inputs

    model = bake_model(make_model(), input_size=(100, 100), verify=False).model
    shapes = _layer_inputs(model, (3, 100, 100))
    assert set(shapes) == set(tv_layer_names(model))
    assert any(s[1] % 2 == 1 for s in shapes.values())  # 25x25 before a stride-2 layer
    assert all(not m._forward_pre_hooks for m in model.modules())


def test_l3_cache_bytes_from_sysfs(tmp_path: Path) -> None:
    from tvexport.profile.machine import l3_cache_bytes

    for i, (level, size) in enumerate([("1", "48K"), ("2", "1024K"), ("3", "32768K")]):
        (tmp_path / f"index{i}").mkdir()
        (tmp_path / f"index{i}" / "level").write_text(level + "\n")
        (tmp_path / f"index{i}" / "size").write_text(size + "\n")
    assert l3_cache_bytes(cache_dir=tmp_path) == 32 * 2**20
    assert l3_cache_bytes(cache_dir=tmp_path / "missing") is None


def test_benchmark_percentiles_are_the_profiling_ones() -> None:
    """benchmarks/_timing's percentiles (p90 of every interleaved benchmark, openvino_kernel_micro's
    p10/p90) are tvexport.profile.stats.percentile: linear interpolation, as ``tvexport bench``
    reports (before: nearest rank, 4.0 here)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    try:
        import _timing
    finally:
        sys.path.pop(0)
    from tvexport.profile.stats import percentile

    timing = _timing.Timing("a", [4.0, 1.0, 3.0, 2.0])
    assert timing.pct(90) == pytest.approx(3.7) == percentile(timing.samples_us, 90)
    assert timing.to_dict()["p90_us"] == pytest.approx(3.7) and timing.to_dict()["p50_us"] == percentile(timing.samples_us, 50)


def test_benchmark_rerender_refusal_writes_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """benchmarks/_common.rerender: a result that lacks a field only a late step of ``render`` reads
    (bake_speedup, compressed_kernels, headline, openvino_fused and resize_accuracy write the .md and
    .json, then plot) is refused in one line with the outputs in ``--out`` untouched (before: the .md
    and .json were already rewritten), and another error in ``render`` (a bug of the script) keeps
    its traceback instead of a line that blames the file (before: any TypeError or IndexError)."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "benchmarks"))
    _common = importlib.import_module("_common")
    src, out = tmp_path / "old.json", tmp_path / "out"
    src.write_text('{"rows": []}')
    out.mkdir()
    (out / "r.md").write_text("kept")
    args = types.SimpleNamespace(render=src, out=out)

    def render(error: Exception) -> Any:
        def write_then_fail(result: dict[str, Any], where: Path, name: str) -> None:
            (where / f"{name}.md").write_text("new")
            (where / f"{name}.json").write_text("{}")
            raise error
        return write_then_fail

    with pytest.raises(SystemExit) as stop:
        _common.rerender(args, "r", render(KeyError("speedup")))
    lines = capsys.readouterr().err.splitlines()
    assert stop.value.code == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"error: --render {src}: the result lacks what this script's report reads (KeyError: 'speedup')"), lines[0]
    assert sorted(p.name for p in out.iterdir()) == ["r.md"] and (out / "r.md").read_text() == "kept"
    with pytest.raises(TypeError, match="a bug"):
        _common.rerender(args, "r", render(TypeError("a bug")))
    assert sorted(p.name for p in out.iterdir()) == ["r.md"] and (out / "r.md").read_text() == "kept"

    def fine(result: dict[str, Any], where: Path, name: str) -> None:
        (where / f"{name}.md").write_text("new")

    assert _common.rerender(args, "r", fine) == {"rows": []}
    assert sorted(p.name for p in out.iterdir()) == ["r.md"] and (out / "r.md").read_text() == "new"


def test_benchmark_interleaved_drops_dirty_rounds_as_documented(monkeypatch: pytest.MonkeyPatch) -> None:
    """benchmarks/_timing.interleaved: with at least max(3, rounds // 2) clean rounds the dirty ones
    are dropped even below ``rounds``; with fewer they are kept; every candidate keeps the same rounds."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    try:
        import _timing
    finally:
        sys.path.pop(0)

    def run(dirty_every: int, *, rounds: int, max_rounds: int) -> dict[str, Any]:
        calls = iter(range(10**6))

        class Probe:
            def start(self) -> None:
                self.r = next(calls)

            def stop(self) -> float:
                return 1.0 if self.r % dirty_every == dirty_every - 1 else 0.0

        monkeypatch.setattr(_timing, "Foreign", Probe)
        return _timing.interleaved({"a": lambda: None, "b": lambda: None}, rounds=rounds, warmup=0, block_s=1e-5, max_rounds=max_rounds)

    out = run(3, rounds=15, max_rounds=12)  # 8 clean rounds: fewer than 15, at least 7
    assert [(len(t.samples_us), t.dropped) for t in out.values()] == [(8, 4), (8, 4)]
    out = run(2, rounds=15, max_rounds=12)  # 6 clean rounds, fewer than 7: the dirty ones are kept
    assert [(len(t.samples_us), t.dropped) for t in out.values()] == [(12, 0), (12, 0)]
