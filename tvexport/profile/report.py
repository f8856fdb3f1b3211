"""The benchmark report: its JSON schema, and its Markdown, CSV and table renderings.

A report is a plain JSON-compatible dict (``BenchReport.to_dict()``); every renderer reads that
dict, so a saved ``--json`` file can be rendered or plotted again later. ``REPORT_SCHEMA`` is
its JSON Schema (draft 2020-12) and ``validate_report`` checks a dict against it. Times are in
seconds (keys end in ``_s``), throughput in images per second.

Top level (schema ``tvexport.bench``, version 1)::

    schema, schema_version, created (UTC ISO-8601), command (str | null)
    source     {kind: checkpoint | baked | registry, path?, arch?, format?}
    arch       {name, family, width, atom, input_shape [C, H, W], tv {k, posi_chans, ...}}
    networks   [{label: tvconv | dwconv | dense, atom, origin}]      networks[0] is the TV one
    settings   {backends, batches, threads, device, dtype, warmup_seconds, min_iters,
                min_seconds, max_seconds, min_warmup_rounds, cv_warn, per_layer, layer_seconds, seed}
    machine    {cpu, logical_cores, physical_cores, memory_bytes, os, machine, gpu,
                load_average, load_average_end}
    versions   {python, torch, tvexport, numpy, onnxruntime, onnx, onnxsim, openvino, tensorrt, triton, matplotlib, cuda}
    skipped    [{backend, reason}]                    backends not run and why
    cases      [{backend, batch, precision?, rounds, warmup_rounds, warmup_s, measure_s, truncated,
                 results [{network, stats, throughput_ips}],
                 ratios  [{numerator, denominator, n, median, p10, p90, ci95 [lo, hi], of_medians}],
                 warnings [str]}]
    bandwidth  null | {bytes_per_s, buffer_bytes, stats}
    layers     [{backend, batch, name, channels, k, stride, h, w, input_shape,
                 tv {stats, floor_bytes, floor_s, x_floor}, dw null | {...same}, ratio null | {...}}]
    warnings   [str]

``precision`` (OpenVINO backends only) is the inference precision the runtime used, read back
from the compiled model (``f32``, ``bf16``); tables show it as ``openvino-fused (f32)``.
``stats`` is ``{n, median_s, mean_s, min_s, max_s, p10_s, p90_s, p99_s, std_s, cv}``. A ratio is
numerator latency / denominator latency from samples paired by round: below 1 the TV network is
faster. ``x_floor`` is median latency / memory floor (see ``floor``).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from .._io import check_output_path, refuse_empty, same_file, write_text_atomic
from ..errors import TvexportError

__all__ = [
    "REPORT_SCHEMA",
    "SCHEMA_NAME",
    "SCHEMA_VERSION",
    "check_report_paths",
    "load_report",
    "summary_rows",
    "to_csv",
    "to_json",
    "to_markdown",
    "validate_report",
    "write_reports",
]

SCHEMA_NAME = "tvexport.bench"
SCHEMA_VERSION = 1

_NUM = {"type": "number"}
_INT = {"type": "integer", "minimum": 0}
_STR = {"type": "string"}
_STRS = {"type": "array", "items": _STR}


def _obj(props: Mapping[str, Any], *, optional: Sequence[str] = (), closed: bool = True) -> dict[str, Any]:
    d: dict[str, Any] = {"type": "object", "properties": dict(props), "required": [k for k in props if k not in optional]}
    if closed:
        d["additionalProperties"] = False
    return d


_STATS = _obj({k: _NUM for k in ("median_s", "mean_s", "min_s", "max_s", "p10_s", "p90_s", "p99_s", "std_s", "cv")} | {"n": _INT})
_RATIO = _obj({
    "numerator": _STR, "denominator": _STR, "n": _INT, "median": _NUM, "p10": _NUM, "p90": _NUM,
    "ci95": {"type": "array", "items": _NUM, "minItems": 2, "maxItems": 2}, "of_medians": _NUM,
})
_FLOOR = _obj({"stats": _STATS, "floor_bytes": _INT, "floor_s": {"type": ["number", "null"]}, "x_floor": {"type": ["number", "null"]}})
_NULLSTR = {"type": ["string", "null"]}

REPORT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "tvexport bench report",
    **_obj({
        "schema": {"const": SCHEMA_NAME},
        "schema_version": {"const": SCHEMA_VERSION},
        "created": _STR,
        "command": _NULLSTR,
        "source": _obj({"kind": {"enum": ["checkpoint", "baked", "registry"]}, "path": _STR, "arch": _STR, "format": _STR},
                       optional=("path", "arch", "format")),
        "arch": _obj({"name": _STR, "family": _STR, "width": _NUM, "atom": _STR,
                      "input_shape": {"type": "array", "items": _INT, "minItems": 3, "maxItems": 3},
                      "tv": {"type": "object"}}),
        "networks": {"type": "array", "minItems": 1, "items": _obj({"label": {"enum": ["tvconv", "dwconv", "dense"]}, "atom": _STR, "origin": _STR})},
        "settings": _obj({
            "backends": _STRS, "batches": {"type": "array", "items": {"type": "integer", "minimum": 1}},
            "threads": {"type": "integer", "minimum": 1}, "device": _STR, "dtype": {"enum": ["float32", "float16"]},
            "warmup_seconds": _NUM, "min_iters": {"type": "integer", "minimum": 1}, "min_seconds": _NUM,
            "max_seconds": {"type": ["number", "null"]}, "min_warmup_rounds": _INT, "cv_warn": _NUM,
            "per_layer": {"type": "boolean"}, "layer_seconds": _NUM, "seed": {"type": "integer"},
        }),
        "machine": _obj({
            "cpu": _STR, "logical_cores": {"type": ["integer", "null"]}, "physical_cores": {"type": ["integer", "null"]},
            "memory_bytes": {"type": ["integer", "null"]}, "os": _STR, "machine": _STR, "gpu": _NULLSTR,
            "load_average": {"type": ["array", "null"], "items": _NUM},
            "load_average_end": {"type": ["array", "null"], "items": _NUM},
        }, optional=("load_average_end",)),
        "versions": {"type": "object", "required": ["python", "torch", "tvexport"],
                     "additionalProperties": _NULLSTR, "properties": {"python": _STR, "torch": _STR, "tvexport": _STR}},
        "skipped": {"type": "array", "items": _obj({"backend": _STR, "reason": _STR})},
        "cases": {"type": "array", "items": _obj({
            "backend": _STR, "batch": {"type": "integer", "minimum": 1}, "precision": _STR, "rounds": _INT, "warmup_rounds": _INT,
            "warmup_s": _NUM, "measure_s": _NUM, "truncated": {"type": "boolean"},
            "results": {"type": "array", "minItems": 1, "items": _obj({"network": _STR, "stats": _STATS, "throughput_ips": _NUM})},
            "ratios": {"type": "array", "items": _RATIO},
            "warnings": _STRS,
        }, optional=("precision",))},
        "bandwidth": {"oneOf": [{"type": "null"}, _obj({"bytes_per_s": _NUM, "buffer_bytes": _INT, "stats": _STATS})]},
        "layers": {"type": "array", "items": _obj({
            "backend": _STR, "batch": {"type": "integer", "minimum": 1}, "name": _STR, "channels": _INT, "k": _INT,
            "stride": _INT, "h": _INT, "w": _INT, "input_shape": {"type": "array", "items": _INT},
            "tv": _FLOOR, "dw": {"oneOf": [{"type": "null"}, _FLOOR]}, "ratio": {"oneOf": [{"type": "null"}, _RATIO]},
        })},
        "warnings": _STRS,
    }),
}

# --------------------------------------------------------------------------------------------
# Validation (the subset of JSON Schema REPORT_SCHEMA uses)
# --------------------------------------------------------------------------------------------

_TYPES: dict[str, Any] = {
    "object": dict, "array": list, "string": str, "boolean": bool, "null": type(None),
    "integer": int, "number": (int, float),
}


def _is(value: Any, type_name: str) -> bool:
    if type_name in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _TYPES[type_name])


def _errors(schema: Mapping[str, Any], value: Any, where: str) -> Iterator[str]:
    if "oneOf" in schema:
        matches = sum(1 for s in schema["oneOf"] if next(_errors(s, value, where), None) is None)
        if matches != 1:
            yield f"{where}: matches {matches} of the allowed forms, expected exactly 1"
        return
    if "const" in schema and value != schema["const"]:
        yield f"{where}: expected {schema['const']!r}, got {value!r}"
    if "enum" in schema and value not in schema["enum"]:
        yield f"{where}: {value!r} is not one of {schema['enum']}"
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else types
        if not any(_is(value, t) for t in names):
            yield f"{where}: expected {' or '.join(names)}, got {type(value).__name__}"
            return
    if "minimum" in schema and isinstance(value, (int, float)) and value < schema["minimum"]:
        yield f"{where}: {value} < minimum {schema['minimum']}"
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                yield f"{where}: missing key {key!r}"
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in props:
                yield from _errors(props[key], item, f"{where}.{key}")
            elif extra is False:
                yield f"{where}: unexpected key {key!r}"
            elif isinstance(extra, Mapping):
                yield from _errors(extra, item, f"{where}.{key}")
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            yield f"{where}: {len(value)} items < {schema['minItems']}"
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            yield f"{where}: {len(value)} items > {schema['maxItems']}"
        if "items" in schema:
            for i, item in enumerate(value):
                yield from _errors(schema["items"], item, f"{where}[{i}]")


def validate_report(report: Mapping[str, Any]) -> list[str]:
    """Every way ``report`` departs from ``REPORT_SCHEMA`` (empty when it conforms)."""
    return list(_errors(REPORT_SCHEMA, report, "report"))


def load_report(path: str | Path) -> dict[str, Any]:
    """Read and validate a ``--json`` report file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise TvexportError(f"cannot read bench report {path}: {err}") from None
    problems = validate_report(data)
    if problems:
        raise TvexportError(f"{path} is not a tvexport bench report: {problems[0]}", hint=f"{len(problems)} problem(s) in all")
    return data


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------

def _ms(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def _ratio_text(r: Mapping[str, Any]) -> str:
    return f"{r['median']:.2f} [{r['p10']:.2f}-{r['p90']:.2f}]"


# torch-unbaked is a case of its own, not a network timed in every case's rounds: its speed-up
# cannot be paired, and says so
SPEEDUP_COLUMN = "speed-up vs unbaked (unpaired)"


def _unbaked_medians(report: Mapping[str, Any]) -> dict[int, float]:
    return {c["batch"]: c["results"][0]["stats"]["median_s"] for c in report["cases"] if c["backend"] == "torch-unbaked"}


def _backend_text(case: Mapping[str, Any]) -> str:
    """The backend's name, with the inference precision it used when the case records one."""
    return f"{case['backend']} ({case['precision']})" if case.get("precision") else str(case["backend"])


def summary_rows(report: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the main table: one row per backend and batch.

    Per network: median latency in ms with its CV, and images/s; per baseline: the paired
    ratio TV/baseline as median [p10-p90]; and the TV speed-up over ``torch-unbaked`` at the
    same batch when that backend ran (``SPEEDUP_COLUMN``: a ratio of medians of separate cases,
    measured one after the other, so unpaired: drift between the cases enters it).
    """
    labels = [n["label"] for n in report["networks"]]
    tv = labels[0]
    unbaked = _unbaked_medians(report)
    header = ["backend", "batch"]
    for label in labels:
        header += [f"{label} ms (CV)", f"{label} img/s"]
    header += [f"{tv}/{b} [p10-p90]" for b in labels[1:]]
    show_speedup = bool(unbaked) and any(c["backend"] != "torch-unbaked" for c in report["cases"])
    if show_speedup:
        header.append(SPEEDUP_COLUMN)
    rows = []
    for case in report["cases"]:
        by_net = {r["network"]: r for r in case["results"]}
        row = [_backend_text(case), str(case["batch"])]
        for label in labels:
            r = by_net.get(label)
            row += [f"{_ms(r['stats']['median_s'])} ({r['stats']['cv']:.0%})", f"{r['throughput_ips']:.4g}"] if r else ["-", "-"]
        ratios = {r["denominator"]: r for r in case["ratios"]}
        row += [_ratio_text(ratios[b]) if b in ratios else "-" for b in labels[1:]]
        if show_speedup:
            ref = unbaked.get(case["batch"])
            mine = by_net.get(tv)
            row.append(f"{ref / mine['stats']['median_s']:.2f}x" if ref and mine and case["backend"] != "torch-unbaked" else "-")
        rows.append(row)
    return header, rows


def layer_rows(report: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the per-layer table."""
    header = ["backend", "batch", "layer", "C k s hxw", "TV us", "TV floor us", "TV x floor", "DW us", "DW floor us", "TV/DW"]
    rows = []
    for lay in report["layers"]:
        tv, dw, ratio = lay["tv"], lay["dw"], lay["ratio"]

        def us(v: float | None) -> str:
            return "-" if v is None else f"{v * 1e6:.3g}"

        rows.append([
            lay["backend"], str(lay["batch"]), lay["name"], f"{lay['channels']} {lay['k']} {lay['stride']} {lay['h']}x{lay['w']}",
            us(tv["stats"]["median_s"]), us(tv["floor_s"]), "-" if tv["x_floor"] is None else f"{tv['x_floor']:.1f}",
            us(dw["stats"]["median_s"]) if dw else "-", us(dw["floor_s"]) if dw else "-",
            _ratio_text(ratio) if ratio else "-",
        ])
    return header, rows


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    def esc(s: str) -> str:
        return s.replace("|", "\\|")

    lines = ["| " + " | ".join(map(esc, header)) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(map(esc, row)) + " |" for row in rows]
    return "\n".join(lines)


def _runtimes(report: Mapping[str, Any]) -> list[str]:
    """The packages whose versions shape the report's numbers, beyond torch: onnxruntime (as
    always), and OpenVINO and onnxsim (which simplifies the graphs both run) where their cases ran;
    a report without cases (a benchmark script's header) names every one it records."""
    if "cases" not in report:
        return ["onnxruntime", "openvino", "onnxsim"]
    backends = {c["backend"] for c in report["cases"]}
    openvino = any(b.startswith("openvino") for b in backends)
    return ["onnxruntime"] + ["openvino"] * openvino + ["onnxsim"] * (openvino or "onnxruntime" in backends)


def describe_machine(report: Mapping[str, Any]) -> str:
    m, v, s = report["machine"], report["versions"], report["settings"]
    cores = f"{m['logical_cores']} logical" + (f" / {m['physical_cores']} physical" if m.get("physical_cores") else "") + " cores"
    load = m.get("load_average")
    parts = [f"{m['cpu']} ({cores})", m["os"]]
    if m.get("gpu"):
        parts.append(m["gpu"])
    parts.append(f"python {v['python']}, torch {v['torch']}, tvexport {v['tvexport']}" + "".join(f", {name} {v[name]}" for name in _runtimes(report) if v.get(name)))
    parts.append(f"{s['threads']} thread{'s' * (s['threads'] > 1)}, {s['device']}, {s['dtype']}")
    if load:
        parts.append("load average " + "/".join(f"{x:g}" for x in load) + (" -> " + "/".join(f"{x:g}" for x in m["load_average_end"]) if m.get("load_average_end") else ""))
    return "; ".join(parts)


def to_markdown(report: Mapping[str, Any], *, title: str | None = None) -> str:
    """The report as a Markdown section: context, the main table, per-layer table, notes."""
    s = report["settings"]
    arch = report["arch"]
    nets = ", ".join(f"{n['label']} ({n['origin']})" for n in report["networks"])
    out = [f"## {title or arch['name']}", ""]
    out.append(f"- input {'x'.join(map(str, arch['input_shape']))}; networks: {nets}")
    out.append(f"- machine: {describe_machine(report)}")
    summary = summary_rows(report)
    max_s = f", at most {s['max_seconds']:g} s" if s["max_seconds"] is not None else ""
    out.append(
        f"- method: {s['warmup_seconds']:g} s warm-up, then >= {s['min_iters']} rounds and >= {s['min_seconds']:g} s per case{max_s}; "
        "networks interleaved (order rotated every round); ratios are per-round paired ratios, median [p10-p90]; "
        "latency is the median, CV = std/mean; img/s = batch / median"
        + ("; speed-up vs unbaked is median torch-unbaked / median of the case, two cases timed one after the other (unpaired)"
           if SPEEDUP_COLUMN in summary[0] else "")
    )
    if report.get("command"):
        out.append(f"- command: `{report['command']}`")
    out.append(f"- created {report['created']}")
    out += ["", _md_table(*summary)]
    if report["skipped"]:
        out += ["", "Skipped backends: " + "; ".join(f"{x['backend']} ({x['reason']})" for x in report["skipped"])]
    if report["layers"]:
        bw = report["bandwidth"]
        out += ["", f"### Per layer (in isolation, real input shapes; floor = bytes moved / copy bandwidth {bw['bytes_per_s'] / 1e9:.2f} GB/s)" if bw else "### Per layer", ""]
        out.append(_md_table(*layer_rows(report)))
    warnings = list(report["warnings"]) + [w for c in report["cases"] for w in c["warnings"]]
    if warnings:
        out += ["", "Warnings:", ""] + [f"- {w}" for w in warnings]
    return "\n".join(out) + "\n"


CSV_COLUMNS = [
    "kind", "backend", "batch", "network", "n", "median_s", "mean_s", "p10_s", "p90_s", "p99_s", "min_s", "max_s",
    "std_s", "cv", "throughput_ips", "ratio_median", "ratio_p10", "ratio_p90", "ratio_ci_low", "ratio_ci_high", "ratio_of_medians",
    "precision",  # appended: readers of the earlier columns by position keep working
]


def to_csv(report: Mapping[str, Any]) -> str:
    """Long format: a ``latency`` row per backend, batch and network, then a ``ratio`` row per
    baseline (network ``tvconv/dwconv``); ``precision`` is the case's inference precision where the
    runtime reports one (OpenVINO), else empty. Per-layer results are in the JSON and Markdown only."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for case in report["cases"]:
        base = {"backend": case["backend"], "batch": case["batch"], "precision": case.get("precision", "")}
        for r in case["results"]:
            writer.writerow({**base, "kind": "latency", "network": r["network"], **r["stats"], "throughput_ips": r["throughput_ips"]})
        for q in case["ratios"]:
            writer.writerow({
                **base, "kind": "ratio", "network": f"{q['numerator']}/{q['denominator']}", "n": q["n"],
                "ratio_median": q["median"], "ratio_p10": q["p10"], "ratio_p90": q["p90"],
                "ratio_ci_low": q["ci95"][0], "ratio_ci_high": q["ci95"][1], "ratio_of_medians": q["of_medians"],
            })
    return buf.getvalue()


def to_json(report: Mapping[str, Any]) -> str:
    """The report as JSON (RFC 8259: a NaN or infinity is a bug, refused rather than written as ``Infinity``)."""
    return json.dumps(report, indent=2, allow_nan=False) + "\n"


def check_report_paths(
    paths: Mapping[str, str | Path | None], *, inputs: Mapping[str, str | Path | None] | None = None, force: bool = False,
) -> None:
    """Refuse, before any work, report files that cannot be written: ``paths`` maps what each report
    is called in messages (e.g. ``"--json"``) to its file (``None``: not written), ``inputs`` the same
    for the files the report is made from. A report must not be an input (``force`` overwrites
    reports, never an input), nor share its file with another report, nor exist without ``force``;
    an empty name (Path would read it as ``.``) is refused too."""
    seen: dict[Path, str] = {}
    for name, path in paths.items():
        if path is None:
            continue
        refuse_empty(path, what=name, hint=f"give a file name with {name}, or leave {name} out")
        path = Path(path)
        for what, source in (inputs or {}).items():
            if source is not None and same_file(path, source):
                raise TvexportError(f"{name} {path} is the input file ({what})", hint=f"give {name} another file name: a report never overwrites an input, even when forced")
        where = path.resolve()
        if where in seen:
            raise TvexportError(f"{seen[where]} and {name} both name {path}", hint="give each report its own file")
        seen[where] = name
        check_output_path(path, force=force)


def write_reports(
    report: Mapping[str, Any], *, json_path: str | Path | None = None, csv_path: str | Path | None = None,
    markdown_path: str | Path | None = None, force: bool = False, inputs: Mapping[str, str | Path | None] | None = None,
) -> list[Path]:
    """Write the requested report files atomically; returns the paths written. Refused before
    anything is written (``check_report_paths``): two reports naming one file, a report that is one
    of ``inputs`` (name in messages -> file, e.g. the benchmarked checkpoint and its baseline), and
    without ``force`` a file that exists. Every report is rendered before the first is written: one
    that cannot be rendered leaves no file behind."""
    check_report_paths({"json_path": json_path, "csv_path": csv_path, "markdown_path": markdown_path}, inputs=inputs, force=force)
    texts = [(Path(path), render(report)) for path, render in ((json_path, to_json), (csv_path, to_csv), (markdown_path, to_markdown)) if path is not None]
    for path, text in texts:
        write_text_atomic(path, text, force=force)
    return [path for path, _ in texts]
