"""``run_bench``: every backend and batch, TV network against its baselines, into one report."""

from __future__ import annotations

import datetime
import gc
import math
import numbers
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

import torch
from torch import nn

from ..bake import tv_layer_names
from ..errors import TvexportError, about_file, refuse_oversized_input, sized_by_user
from ..layers import BakedTVConv, TVConv
from .backends import Backend, LayerBackend, select_backends
from .floor import copy_bandwidth, layer_floor_bytes
from .harness import CaseTiming, Clock, MeasureSettings, Timer, make_timer, measure_case, torch_threads
from .machine import load_average, machine_info, versions
from .report import SCHEMA_NAME, SCHEMA_VERSION, validate_report
from .stats import Stats, paired_ratio
from .subject import Subject

__all__ = ["DTYPES", "Progress", "refuse_oversized_batch", "run_bench"]

DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float16": torch.float16}
Progress = Callable[[str, int, int], None]
"""``progress(description, cases_done, cases_total)``, called as cases start and finish."""


def _dtype_name(dtype: torch.dtype | str) -> str:
    name = dtype if isinstance(dtype, str) else str(dtype).removeprefix("torch.")
    if name not in DTYPES:
        raise TvexportError(f"unsupported dtype {name!r}", hint=f"choose one of {', '.join(DTYPES)}")
    return name


def _summarize(timing: CaseTiming, *, batch: int | None, where: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Stats per network (with its throughput at ``batch``; None: none, as for layers, whose rows
    report none), and paired ratios of the first label (the TV network) against the others; a
    ``TvexportError`` (timings of 0 s) says ``where`` (backend, batch, layer) it happened."""
    with about_file(where):  # the prefix is the case here, not a file
        results = []
        for label in timing.labels:
            st = Stats.of(timing.samples[label])
            results.append({"network": label, "stats": st.to_dict()} | ({} if batch is None else {"throughput_ips": st.throughput(batch)}))
        first = timing.labels[0]
        ratios = [paired_ratio(timing.samples[first], timing.samples[label], names=(first, label)).to_dict() for label in timing.labels[1:]]
    return results, ratios


def _percent(x: float) -> str:
    """A fraction as a percentage with 3 significant digits: 0.004 is "0.4%", not "0%"."""
    return f"{x * 100:.3g}%"


def _noisy(results: list[dict[str, Any]], cv_warn: float) -> list[str]:
    """``"label CV%"`` for every network whose coefficient of variation exceeds ``cv_warn``."""
    return [f"{r['network']} {_percent(r['stats']['cv'])}" for r in results if r["stats"]["cv"] > cv_warn]


def _case_warnings(timing: CaseTiming, results: list[dict[str, Any]], *, cv_warn: float, where: str) -> list[str]:
    warnings = []
    noisy = _noisy(results, cv_warn)
    if noisy:
        warnings.append(
            f"{where}: CV {', '.join(noisy)} > {_percent(cv_warn)}: noisy timings (other load, frequency scaling?); "
            "the paired ratio is more robust than single latencies; raise --min-seconds or quiet the machine"
        )
    if timing.truncated:
        warnings.append(f"{where}: stopped by --max-seconds after {timing.rounds} rounds ({timing.measure_seconds:.1f} s), before the minimum iterations/seconds")
    return warnings


def _resolve(requested: Sequence[str] | None, device: str, *, unbaked: bool) -> tuple[list[Backend], list[tuple[str, str]]]:
    """The backends that run and the (name, reason) of those skipped (``unbaked``: whether the TV
    network has its unbaked form, which a baked file has not)."""
    chosen, skipped = select_backends(requested, device=device)
    usable = []
    for backend in chosen:
        if backend.form == "unbaked" and not unbaked:
            reason = "SRC is a baked file; the unbaked network needs the checkpoint with its generators"
            if requested:
                raise TvexportError(f"backend {backend.name} cannot run: {reason}", hint="pass the original checkpoint, or choose another --backend")
            skipped.append((backend.name, reason))
        else:
            usable.append(backend)
    if not usable:
        why = "; ".join(f"{n}: {r}" for n, r in skipped) or "none registered"
        raise TvexportError(f"no backend can run on {device} ({why})")
    return usable, skipped


def _depthwise_twin(model: nn.Module, name: str, channels: int) -> nn.Module | None:
    """The baseline's module at the TV layer's path, if it is the depthwise conv it replaced."""
    try:
        mod = model.get_submodule(name)
    except AttributeError:
        return None
    if isinstance(mod, nn.Conv2d) and mod.groups == mod.in_channels == mod.out_channels == channels:
        return mod
    return None


def _layer_inputs(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """(C, H, W) of the input each TV layer of ``model`` sees, recorded in one forward pass at batch 1:
    a stride-2 layer after an odd map sees 2*h - 1 rows, not 2*h (its output size times its stride)."""
    shapes: dict[str, tuple[int, ...]] = {}

    def record(name: str) -> Callable[..., None]:
        return lambda _module, args: shapes.__setitem__(name, tuple(args[0].shape[1:]))

    hooks = [model.get_submodule(name).register_forward_pre_hook(record(name)) for name in tv_layer_names(model)]
    try:
        with torch.inference_mode():
            model(torch.zeros(1, *input_shape))
    finally:
        for hook in hooks:
            hook.remove()
    return shapes


def _layer_cases(
    subject: Subject, backend: Backend, batch: int, *, threads: int, device: str, dtype: torch.dtype,
    settings: MeasureSettings, bandwidth: float, timer: Timer, clock: Clock, cv_warn: float,
    inputs: dict[str, tuple[int, ...]],
) -> tuple[list[dict[str, Any]], list[str]]:
    tv_model = subject.tv.form(backend.form)
    tv_baked = subject.tv.form("baked")
    assert tv_model is not None and tv_baked is not None
    dw_net = next((n for n in subject.baselines if n.label == "dwconv"), None)
    dw_model = dw_net.form(backend.form) if dw_net is not None else None
    dw_baked = dw_net.form("baked") if dw_net is not None else None
    prepare_layer = cast(LayerBackend, backend).prepare_layer
    rows: list[dict[str, Any]] = []
    warnings: list[str] = []
    noisy: list[str] = []
    for name in tv_layer_names(tv_model):
        layer = tv_model.get_submodule(name)
        assert isinstance(layer, (TVConv, BakedTVConv))
        g = layer.geometry
        in_shape = (batch, *inputs[name])
        out_shape = (batch, g.channels, g.h, g.w)
        variants = {"tvconv": prepare_layer(layer, input_shape=in_shape, threads=threads, device=device, dtype=dtype)}
        dw = _depthwise_twin(dw_model, name, g.channels) if dw_model is not None else None
        if dw is not None:
            variants["dwconv"] = prepare_layer(dw, input_shape=in_shape, threads=threads, device=device, dtype=dtype)
        timing = measure_case(variants, settings, timer=timer, clock=clock)
        results, ratios = _summarize(timing, batch=None, where=f"{backend.name} batch {batch} layer {name}")
        if _noisy(results, cv_warn):
            noisy.append(name)
        if timing.truncated:
            warnings.append(f"{backend.name} batch {batch} layer {name}: stopped by --max-seconds after {timing.rounds} rounds")

        def floor(module: nn.Module, stats: dict[str, Any], in_shape: tuple[int, ...] = in_shape, out_shape: tuple[int, ...] = out_shape) -> dict[str, Any]:
            nbytes = layer_floor_bytes(module, input_shape=in_shape, output_shape=out_shape, dtype=dtype)
            floor_s = nbytes / bandwidth if bandwidth > 0 else None
            return {"stats": stats, "floor_bytes": nbytes, "floor_s": floor_s, "x_floor": stats["median_s"] / floor_s if floor_s else None}

        dw_floor = None
        if dw is not None:
            assert dw_baked is not None
            dw_floor = floor(dw_baked.get_submodule(name), results[1]["stats"])
        rows.append({
            "backend": backend.name, "batch": batch, "name": name, "channels": g.channels, "k": g.k, "stride": g.stride,
            "h": g.h, "w": g.w, "input_shape": list(in_shape),
            "tv": floor(tv_baked.get_submodule(name), results[0]["stats"]), "dw": dw_floor, "ratio": ratios[0] if ratios else None,
        })
    if noisy:
        warnings.append(
            f"{backend.name} batch {batch} per-layer: {len(noisy)} of {len(rows)} layers have CV > {_percent(cv_warn)} "
            f"({', '.join(noisy[:3])}{', ...' if len(noisy) > 3 else ''}); raise --layer-seconds or quiet the machine"
        )
    return rows, warnings


_SMALLER = "choose a smaller --batch or --input-size"  # what to change when an allocation is refused


def _checked(*, unbaked: bool, backends: Sequence[str] | None, batches: Sequence[int], device: str, dtype: torch.dtype | str,
             cv_warn: float, layer_seconds: float) -> tuple[list[int], str, list[Backend], list[tuple[str, str]]]:
    """``run_bench``'s refusals of its options, in order: the batches (deduplicated), the dtype's
    name, and the backends that run and those skipped (``_resolve``)."""
    odd = [b for b in batches if isinstance(b, bool) or not isinstance(b, numbers.Integral)]
    if odd:  # int() would truncate 1.9 to 1: time what was asked or nothing
        raise TvexportError(f"batch sizes must be integers, got {odd[0]!r}", hint="e.g. batches=[1, 8]")
    batches = list(dict.fromkeys(int(b) for b in batches))
    if not batches or min(batches) < 1:
        raise TvexportError(f"batch sizes must be >= 1, got {batches}")
    dtype_name = _dtype_name(dtype)
    if not (math.isfinite(cv_warn) and cv_warn > 0) or not (math.isfinite(layer_seconds) and layer_seconds >= 0):  # isfinite refuses NaN and inf
        raise TvexportError(f"--cv-warn {cv_warn:g}, --layer-seconds {layer_seconds:g}: --cv-warn must be a finite number > 0 and --layer-seconds a finite number >= 0",
                            hint="e.g. --cv-warn 0.1 --layer-seconds 0.2")
    chosen, skipped = _resolve(backends, device, unbaked=unbaked)
    return batches, dtype_name, chosen, skipped


def _refuse_oversized(input_shape: tuple[int, ...], *, batches: list[int], dtype_name: str, chosen: list[Backend], device: str) -> None:
    if device == "cpu":  # an input past memory at the largest batch: refused before any network is baked or prepared
        top = max(batches)
        refuse_oversized_input((top, *input_shape), itemsize=DTYPES[dtype_name].itemsize,
                               what=f"bench {chosen[0].name if len(chosen) == 1 else 'the backends'} at batch {top}", hint=_SMALLER)


def refuse_oversized_batch(
    input_shape: tuple[int, ...],
    *,
    unbaked: bool,
    backends: Sequence[str] | None = None,
    batches: Sequence[int] = (1,),
    device: str = "cpu",
    dtype: torch.dtype | str = torch.float32,
    cv_warn: float = 0.10,
    layer_seconds: float = 0.2,
) -> None:
    """The refusal ``run_bench`` (same options) makes of a batch whose input alone cannot fit in
    memory, for a caller that knows the network's ``input_shape`` before it is built
    (``load_subject``'s ``before_build``; ``unbaked``: whether SRC has its unbaked network): the
    same error, without building the networks first. A refusal of these options that ``run_bench``
    makes before that one is left to it, in its usual place: this raises only that one."""
    try:
        batches, dtype_name, chosen, _ = _checked(unbaked=unbaked, backends=backends, batches=batches, device=device, dtype=dtype,
                                                  cv_warn=cv_warn, layer_seconds=layer_seconds)
    except TvexportError:
        return
    _refuse_oversized(input_shape, batches=batches, dtype_name=dtype_name, chosen=chosen, device=device)


def run_bench(
    subject: Subject,
    *,
    backends: Sequence[str] | None = None,
    batches: Sequence[int] = (1,),
    threads: int | None = None,
    device: str = "cpu",
    dtype: torch.dtype | str = torch.float32,
    settings: MeasureSettings | None = None,
    per_layer: bool = False,
    layer_seconds: float = 0.2,
    cv_warn: float = 0.10,
    seed: int = 0,
    command: str | None = None,
    progress: Progress | None = None,
    timer: Timer | None = None,
    clock: Clock = time.perf_counter,
) -> dict[str, Any]:
    """Time the TV network of ``subject`` against its baselines on each backend and batch.

    ``backends`` None runs every available backend (the others are listed under ``skipped``);
    named backends must be available. ``threads`` None keeps torch's current count (recorded).
    Returns the report dict described in ``tvexport.profile.report``.
    """
    settings = settings if settings is not None else MeasureSettings()
    batches, dtype_name, chosen, skipped = _checked(unbaked=subject.tv.unbaked is not None, backends=backends, batches=batches, device=device,
                                                    dtype=dtype, cv_warn=cv_warn, layer_seconds=layer_seconds)
    tdtype = DTYPES[dtype_name]
    _refuse_oversized(subject.input_shape, batches=batches, dtype_name=dtype_name, chosen=chosen, device=device)
    timer = timer if timer is not None else make_timer(device)
    machine = machine_info(device=device)
    warnings: list[str] = []
    load = machine["load_average"]
    if load and machine["logical_cores"] and load[0] > machine["logical_cores"]:
        warnings.append(f"load average {load[0]:g} exceeds the {machine['logical_cores']} cores: other processes compete for the CPU, expect noisy latencies")
    layer_backends = [b for b in chosen if getattr(b, "per_layer", False)] if per_layer else []
    if per_layer:
        warnings += [f"{b.name} has no per-layer timing" for b in chosen if b not in layer_backends]
    n_layers = len(tv_layer_names(subject.tv.form(layer_backends[0].form))) if layer_backends else 0  # type: ignore[arg-type]
    total = len(chosen) * len(batches) + len(layer_backends) * len(batches) * n_layers
    done = 0
    cases: list[dict[str, Any]] = []
    layers: list[dict[str, Any]] = []
    bandwidth = None

    with torch_threads(threads) as n_threads:
        for backend in chosen:
            for batch in batches:
                where = f"{backend.name} batch {batch}"
                if progress:
                    progress(f"{where}: preparing", done, total)
                variants = {}
                try:
                    with sized_by_user(f"bench {backend.name} at batch {batch}", hint=_SMALLER):
                        for net in subject.networks:
                            model = net.form(backend.form)
                            assert model is not None
                            variants[net.label] = backend.prepare(model, batch=batch, threads=n_threads, device=device, dtype=tdtype)
                except TvexportError as err:
                    if backends:  # asked for by name: its failure is the answer
                        raise
                    skipped.append((backend.name, f"failed to prepare at batch {batch}: {err}"))
                    done += len(batches) - batches.index(batch)
                    break

                def on_round(phase: str, r: int, where: str = where, done: int = done) -> None:
                    if progress:
                        progress(f"{where}: {phase} round {r}", done, total)

                with sized_by_user(f"bench {backend.name} at batch {batch}", hint=_SMALLER):
                    timing = measure_case(variants, settings, timer=timer, clock=clock, on_round=on_round)
                results, ratios = _summarize(timing, batch=batch, where=where)
                warns = _case_warnings(timing, results, cv_warn=cv_warn, where=where)
                case: dict[str, Any] = {
                    "backend": backend.name, "batch": batch, "rounds": timing.rounds, "warmup_rounds": timing.warmup_rounds,
                    "warmup_s": timing.warmup_seconds, "measure_s": timing.measure_seconds, "truncated": timing.truncated,
                    "results": results, "ratios": ratios, "warnings": warns,
                }
                if (precision := getattr(backend, "inference_precision", None)) is not None:
                    case["precision"] = str(precision)  # what the runtime computes in, read back from it
                cases.append(case)
                del variants
                gc.collect()
                done += 1
                if progress:
                    progress(f"{where}: done", done, total)

        if layer_backends:
            if progress:
                progress("measuring copy bandwidth", done, total)
            bandwidth = copy_bandwidth(device=device)  # always a real timer: the floor is physical
            inputs = _layer_inputs(cast(nn.Module, subject.tv.form("baked")), subject.input_shape)
            layer_settings = MeasureSettings(
                warmup_seconds=min(settings.warmup_seconds, 0.1), min_iters=settings.min_iters,
                min_seconds=layer_seconds, max_seconds=settings.max_seconds,
            )
            for backend in layer_backends:
                for batch in batches:
                    if progress:
                        progress(f"{backend.name} batch {batch}: per-layer", done, total)
                    with sized_by_user(f"bench {backend.name} per layer at batch {batch}", hint=_SMALLER):
                        rows, warns = _layer_cases(
                            subject, backend, batch, threads=n_threads, device=device, dtype=tdtype, settings=layer_settings,
                            bandwidth=bandwidth["bytes_per_s"], timer=timer, clock=clock, cv_warn=cv_warn, inputs=inputs,
                        )
                    layers += rows
                    warnings += warns
                    done += len(rows)
                    if progress:
                        progress(f"{backend.name} batch {batch}: per-layer done", done, total)

    machine["load_average_end"] = load_average()
    cfg = subject.config
    report: dict[str, Any] = {
        "schema": SCHEMA_NAME,
        "schema_version": SCHEMA_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "source": subject.source,
        "arch": {"name": cfg.name, "family": cfg.family, "width": cfg.width, "atom": cfg.atom,
                 "input_shape": list(cfg.input_shape), "tv": cfg.to_dict()["tv"]},
        "networks": [n.to_dict() for n in subject.networks],
        "settings": {
            "backends": list(dict.fromkeys(c["backend"] for c in cases)), "batches": batches, "threads": n_threads, "device": device, "dtype": dtype_name,
            **settings.to_dict(), "cv_warn": cv_warn, "per_layer": per_layer, "layer_seconds": layer_seconds, "seed": seed,
        },
        "machine": machine,
        "versions": versions(),
        "skipped": [{"backend": n, "reason": r} for n, r in skipped],
        "cases": cases,
        "bandwidth": bandwidth,
        "layers": layers,
        "warnings": warnings,
    }
    problems = validate_report(report)
    assert not problems, problems[:3]
    return report
