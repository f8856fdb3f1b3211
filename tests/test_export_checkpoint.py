"""``tvexport.export_checkpoint``: ``tvexport export`` as one Python call (the CLI's own tests cover
its printing): checkpoint or baked file -> validated artefact, refusals before any work."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from conftest import make_model, write_checkpoint

import tvexport
from tvexport.accuracy import Reference
from tvexport.errors import TvexportError
from tvexport.export import onnx as tvonnx
from tvexport.export.validate import ValidationMismatch


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A face MobileNetV2 x0.1 checkpoint (random posi_map; TV layers of stride 1 and 2, with bias)."""
    return write_checkpoint(make_model(), tmp_path_factory.mktemp("ckpt") / "face.ckpt", "lightning")


@pytest.fixture
def references(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The ``Reference`` each ONNX validation actually compares against."""
    seen: list[Any] = []
    original = tvonnx.validate_graphs

    def spy(reference: Any, graphs: dict[str, Any], **kw: Any) -> Any:
        seen.append(reference)
        return original(reference, graphs, **kw)

    monkeypatch.setattr(tvonnx, "validate_graphs", spy)
    return seen


def test_checkpoint_exports_beside_it_validated_against_the_unbaked_float64_truth(ckpt: Path, references: list[Any]) -> None:
    result = tvexport.export_checkpoint(ckpt, batch=2, simplify=False)
    assert result.path == ckpt.with_suffix(".onnx") and result.path.exists()  # <stem>.onnx beside the checkpoint
    try:
        assert result.ok and [c.name for c in result.comparisons] == ["onnxruntime (raw)"]
        assert (result.truth, result.baseline, result.info["kernel_dtype"]) == ("unbaked float64", "unbaked float32", "float32")
        assert [r.kind for r in references] == ["unbaked"]  # the generators' network, not the bake it checks
        # independently of Reference: the graph against the unbaked network run in float64
        x = torch.rand(2, 3, 96, 96, generator=torch.Generator().manual_seed(1)) * 2 - 1
        truth = make_model().double()(x.double()).detach().numpy()
        got = tvonnx.load_runner(result.path)(x.numpy())
        assert got.shape == (2, 512) and np.abs(got - truth).max() / np.abs(truth).max() < 1e-5
    finally:
        result.path.unlink()


def test_kernel_dtype_stores_the_kernels_and_rounds_the_yardstick_alike(ckpt: Path, tmp_path: Path, references: list[Any]) -> None:
    result = tvexport.export_checkpoint(ckpt, tmp_path / "m8.onnx", kernel_dtype="int8", tv_op="plugin", simplify=False)
    assert result.ok and result.info["kernel_dtype"] == "int8"
    assert (result.truth, result.baseline) == ("unbaked float64", "unbaked float32 (int8 kernels)")
    assert [(r.kind, r.kernels) for r in references] == [("unbaked", torch.int8)]
    weights = {t.name: t.data_type for t in onnx.load(str(result.path)).graph.initializer}
    assert result.info["tv_layers"] > 0 and sum(d == onnx.TensorProto.INT8 for d in weights.values()) == result.info["tv_layers"]


def test_baked_file_is_checked_against_itself_in_float64(ckpt: Path, tmp_path: Path, references: list[Any]) -> None:
    baked = tvexport.bake_checkpoint(ckpt, tmp_path / "face.baked.pt", kernel_dtype="float16").output
    result = tvexport.export_checkpoint(baked, simplify=False)
    assert result.path == tmp_path / "face.onnx"  # `.baked.pt` dropped from the stem
    assert result.ok and result.info["kernel_dtype"] == "float16"
    assert (result.truth, result.baseline) == ("baked float64", "baked float32")  # its float16 kernels, exact in both
    assert [r.kind for r in references] == ["baked"]


def test_export_without_validation_builds_no_reference_for_a_baked_file(ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, references: list[Any]) -> None:
    """Before: ``load_source`` built ``Reference(model)`` (a float64 copy of the network) for a
    baked file or a baseline even when the export did not validate. With validation it still
    does; a checkpoint builds its own either way (it verifies the bake)."""
    baked = tvexport.bake_checkpoint(ckpt, tmp_path / "face.baked.pt").output
    dw = write_checkpoint(make_model(atom="dwconv"), tmp_path / "dw.ckpt", "lightning")
    checked = tvexport.export_checkpoint(baked, tmp_path / "checked.onnx", batch=2, simplify=False)
    assert checked.ok and [r.kind for r in references] == ["baked"] and checked.truth == "baked float64"
    unchecked = tvexport.export_checkpoint(ckpt, tmp_path / "unchecked_ckpt.onnx", batch=2, simplify=False, validate=False)
    assert (unchecked.truth, unchecked.baseline) == (None, None)  # its reference verified the bake; nothing was compared

    def no_reference(self: Reference, *args: object, **kwargs: object) -> None:
        raise AssertionError("a Reference was built for an export without validation")

    monkeypatch.setattr(Reference, "__init__", no_reference)
    result = tvexport.export_checkpoint(baked, tmp_path / "unchecked.onnx", batch=2, simplify=False, validate=False)
    assert result.comparisons == [] and (result.truth, result.baseline) == (None, None)
    onnx.checker.check_model(str(result.path), full_check=True)
    assert result.path.read_bytes() == checked.path.read_bytes()  # the graph the validated export checked and wrote
    onnx.checker.check_model(str(tvexport.export_checkpoint(dw, tmp_path / "dw.onnx", simplify=False, validate=False).path), full_check=True)
    with pytest.raises(AssertionError, match="a Reference was built"):
        tvexport.export_checkpoint(ckpt, tmp_path / "ckpt.onnx", validate=False)
    assert not (tmp_path / "ckpt.onnx").exists()
    assert [r.kind for r in references] == ["baked"]  # nothing validated without validation


def test_mismatch_raises_with_the_reference_labels_and_writes_nothing(ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def off(reference: Any, graphs: dict[str, Any], *, x: torch.Tensor, tolerance: Any) -> Any:
        truth = reference.truth(x)  # 1e-4 relative: far above float32 noise and the 1e-5 floor
        return reference.compare({label: truth + 1e-4 * truth.abs().max() for label in graphs}, x, tolerance=tolerance)

    monkeypatch.setattr(tvonnx, "validate_graphs", off)
    with pytest.raises(ValidationMismatch) as info:
        tvexport.export_checkpoint(ckpt, tmp_path / "m.onnx", simplify=False)
    err = info.value
    assert "nothing written" in str(err) and err.comparisons and not err.comparisons[0].ok
    assert (err.truth, err.baseline) == ("unbaked float64", "unbaked float32")
    assert list(tmp_path.iterdir()) == []


def test_existing_output_is_refused_and_kept(ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    out.write_bytes(b"mine")
    with pytest.raises(TvexportError, match="already exists; pass --force"):
        tvexport.export_checkpoint(ckpt, out)
    assert out.read_bytes() == b"mine"


def test_existing_external_data_is_refused_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: an existing <out>.data was refused only when writing, after the whole export and validation."""
    def work(*args: Any, **kwargs: Any) -> Any:
        pytest.fail("work started before the output was checked")

    for module, name in (("tvexport.export._common", "load_source"), ("tvexport.export._dispatch", "export_model"), ("tvexport.bake", "read_checkpoint")):
        monkeypatch.setattr(importlib.import_module(module), name, work)
    monkeypatch.setattr(tvonnx, "onnx_graph", work)
    source, data = tmp_path / "m.ckpt", tmp_path / "m.onnx.data"
    source.write_bytes(b"unread")
    data.write_bytes(b"mine")
    with pytest.raises(TvexportError, match=f"^output {data} already exists; pass --force to overwrite it$"):
        tvexport.export_checkpoint(source, tmp_path / "m.onnx", external_data=True)
    with pytest.raises(TvexportError, match=f"^output {data} already exists; pass --force to overwrite it$"):
        tvonnx.export_onnx(make_model(atom="dwconv"), tmp_path / "m.onnx", external_data=True)
    assert data.read_bytes() == b"mine" and sorted(tmp_path.iterdir()) == [source, data]


REFUSED = [
    ({"format": "tflite"}, "unknown export format 'tflite'"),
    ({"batch": 2, "dynamic_batch": True}, "--batch 2 and --dynamic-batch were both given"),
    ({"validate": False, "atol": 1e-6}, "--rtol/--atol do not apply with --no-validate"),
    ({"device": "cuda"}, "--device does not apply to --format onnx"),
    ({"max_batch": 8, "dynamic_batch": True}, "--max-batch does not apply to --format onnx"),
    ({"fp16_io": True}, "--fp16-io needs --dtype float16"),
    ({"tv_op": "plugin", "decomposition": "gather"}, "--decomposition applies to --tv-op portable only"),
    ({"opset": 9}, "opset 9 is not supported"),
    ({"decomposition": "fft"}, "unknown TV decomposition 'fft'"),
    ({"format": "aoti", "tv_op": "plugin", "simplify": False}, "--tv-op plugin, --no-simplify do not apply to --format aoti"),
    ({"format": "aoti", "opset": 18, "external_data": True}, "--opset, --external-data do not apply to --format aoti"),
    ({"format": "aoti", "max_batch": 8}, "--max-batch needs --dynamic-batch"),
]


@pytest.mark.parametrize(("options", "says"), REFUSED, ids=[says for _, says in REFUSED])
def test_options_are_refused_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: dict[str, Any], says: str) -> None:
    def work(*args: Any, **kwargs: Any) -> Any:
        pytest.fail("work started before the options were checked")

    for module, name in (("tvexport.export._common", "load_source"), ("tvexport.export._dispatch", "export_model"), ("tvexport.bake", "read_checkpoint")):
        monkeypatch.setattr(importlib.import_module(module), name, work)
    source = tmp_path / "m.ckpt"
    source.write_bytes(b"unread")
    with pytest.raises(TvexportError) as info:
        tvexport.export_checkpoint(source, **options)
    assert says in str(info.value) and "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == [source]


SUFFIX_REFUSED = [
    ("m.pt2", {"format": "onnx"}, "-o {out}: .pt2 names an AOTInductor package, but tvexport export --format onnx writes an ONNX model; name it {stem}.onnx, or use --format aoti"),
    ("m.onnx", {"format": "aoti"}, "-o {out}: .onnx names an ONNX model, but tvexport export --format aoti writes an AOTInductor package; name it {stem}.pt2, or drop --format aoti"),
    ("m.baked.pt", {}, "-o {out}: .baked.pt names a baked file, but tvexport export writes an ONNX model; name it {stem}.onnx, or make a baked file with: tvexport bake {src} -o {out}"),
    ("m.baked.pt", {"format": "aoti"}, "-o {out}: .baked.pt names a baked file, but tvexport export --format aoti writes an AOTInductor package; name it {stem}.pt2"),
    ("m.pth", {}, "-o {out}: .pth names a torch checkpoint, but tvexport export writes an ONNX model; name it {stem}.onnx"),
    ("m.engine", {}, "-o {out}: .engine names a TensorRT engine, but tvexport export writes an ONNX model; name it {stem}.onnx, or build an engine"),
]


@pytest.mark.parametrize(("name", "options", "says"), SUFFIX_REFUSED, ids=[f"{n}-{o.get('format')}" for n, o, _ in SUFFIX_REFUSED])
def test_output_suffix_of_another_kind_is_refused_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, options: dict[str, Any], says: str) -> None:
    """Before: `export -o x.pt2` without --format aoti wrote an ONNX graph named x.pt2 (and
    `-o x.baked.pt` one named .baked.pt), exit 0: the runners, onnxruntime and the user were misled."""
    def work(*args: Any, **kwargs: Any) -> Any:
        pytest.fail("work started before the output was checked")

    for module, attr in (("tvexport.export._common", "load_source"), ("tvexport.export._dispatch", "export_model"), ("tvexport.bake", "read_checkpoint")):
        monkeypatch.setattr(importlib.import_module(module), attr, work)
    source, out = tmp_path / "src.ckpt", tmp_path / name
    source.write_bytes(b"unread")
    with pytest.raises(TvexportError) as info:
        tvexport.export_checkpoint(source, out, **options)
    stem = tmp_path / name.split(".")[0]
    assert str(info.value).startswith(says.format(out=out, stem=stem, src=source)) and "\n" not in str(info.value), str(info.value)
    assert list(tmp_path.iterdir()) == [source]


@pytest.mark.parametrize(("name", "options", "says"), SUFFIX_REFUSED[:3], ids=[f"{n}-{o.get('format')}" for n, o, _ in SUFFIX_REFUSED[:3]])
def test_output_suffix_is_refused_before_it_is_found_to_exist(cli: Any, tmp_path: Path, name: str, options: dict[str, Any], says: str) -> None:
    """Before: an existing output with a suffix of another kind was "already exists; pass --force",
    and --force then gave the suffix error: the name is the first thing to fix."""
    source, out = tmp_path / "src.ckpt", tmp_path / name
    source.write_bytes(b"unread")
    out.write_bytes(b"kept")
    line = says.format(out=out, stem=tmp_path / name.split(".")[0], src=source)
    with pytest.raises(TvexportError) as info:
        tvexport.export_checkpoint(source, out, **options)
    assert str(info.value).startswith(line), str(info.value)
    r = cli("export", source, "-o", out, *(["--format", options["format"]] if options else []))
    assert r.exit_code == 2 and r.stderr.strip().splitlines()[0].startswith(f"error: {line}"), r.stderr
    assert out.read_bytes() == b"kept" and sorted(tmp_path.iterdir()) == sorted([source, out])


@pytest.mark.parametrize(("format", "name"), [("onnx", "m.pt2"), ("onnx", "m.baked.pt"), ("onnx", "m.engine"), ("aoti", "m.onnx"), ("aoti", "m.pth")])
def test_exporters_called_directly_refuse_a_suffix_of_another_kind(tmp_path: Path, format: str, name: str) -> None:
    """Before: ``export_onnx(model, "x.pt2")`` wrote an ONNX graph named x.pt2 (``export_aoti(model,
    "x.onnx")`` a package named .onnx); only the dispatcher checked the suffix. Now the same line as
    ``export_model(..., format=...)``, before any work and before "already exists"."""
    from tvexport.export._dispatch import export_model, exporter

    out = tmp_path / name
    with pytest.raises(TvexportError) as dispatched:
        export_model(None, out, format=format)  # type: ignore[arg-type]  # refused before the model is looked at
    for existing in (False, True):
        if existing:
            out.write_bytes(b"kept")
        with pytest.raises(TvexportError) as info:
            exporter(format)(None, out)
        assert str(info.value) == str(dispatched.value) and "\n" not in str(info.value), str(info.value)
    assert out.read_bytes() == b"kept" and list(tmp_path.iterdir()) == [out]


def test_suffix_hints_come_from_one_table(tmp_path: Path) -> None:
    """Before: bake, export and build each kept a copy of the "how to make that kind" hints, and they
    drifted: build said "make an ONNX model with", bake "export an ONNX model with", and ``export_model``
    without a source said "tvexport bake SOURCE" where build says CHECKPOINT."""
    from tvexport.artifacts import MAKE_KIND, check_output_suffix
    from tvexport.export._dispatch import export_model

    out = tmp_path / "m.baked.pt"
    with pytest.raises(TvexportError) as info:
        export_model(None, out)  # type: ignore[arg-type]  # refused before the model is looked at
    assert str(info.value).endswith(f"or make a baked file with: tvexport bake CHECKPOINT -o {out}"), str(info.value)
    for writes, by in (("baked", "tvexport bake"), ("tensorrt", "tvexport build")):
        with pytest.raises(TvexportError) as info:
            check_output_suffix(tmp_path / "m.pt2", writes=writes, by=by)  # type: ignore[arg-type]
        assert str(info.value).endswith(MAKE_KIND["aoti"].format(source="CHECKPOINT", path=tmp_path / "m.pt2")), str(info.value)


@pytest.mark.parametrize(("name", "options", "format"), [
    ("m.pt2", {}, "aoti"), ("m.onnx", {}, "onnx"), ("m.bin", {}, "onnx"), ("m", {}, "onnx"), (None, {}, "onnx"),
    ("m.pt2", {"format": "aoti"}, "aoti"), ("m.bin", {"format": "aoti"}, "aoti"),
])
def test_export_format_follows_the_output_suffix_without_format(cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str | None, options: dict[str, Any], format: str) -> None:
    """Polygraphy-style: a known suffix (.pt2, .onnx) picks the format when none is given; an
    unknown one, or no -o, gets the default onnx."""
    from types import SimpleNamespace

    class Reached(TvexportError):
        pass

    def export_model(model: Any, output: Path, *, format: str, **kwargs: Any) -> Any:
        raise Reached(f"exporting {output.name} as {format}")

    dispatch = importlib.import_module("tvexport.export._dispatch")
    monkeypatch.setattr(importlib.import_module("tvexport.export._common"), "load_source", lambda source, **kw: SimpleNamespace(model=None, reference=None, path=source))
    monkeypatch.setattr(dispatch, "export_model", export_model)
    source = tmp_path / "src.ckpt"
    source.write_bytes(b"unread")
    out = tmp_path / name if name is not None else None
    expected = f"exporting {(out or tmp_path / ('src' + ('.pt2' if format == 'aoti' else '.onnx'))).name} as {format}"
    with pytest.raises(Reached, match=f"^{expected}$"):
        tvexport.export_checkpoint(source, out, validate=False, **options)
    assert dispatch.resolve_format(options.get("format"), out) == format
    r = cli("export", source, *(["-o", out] if out else []), *(["--format", options["format"]] if options else []), "--no-validate")
    assert r.exit_code == 2 and r.stderr.strip() == f"error: {expected}", r.stderr


def test_mismatch_line_names_the_source_file(cli: Any, ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: "error: face_mobilenetv2_x0_1: onnxruntime (raw) differs ...": the architecture, not
    the file (a bake mismatch names the file)."""
    def off(reference: Any, graphs: dict[str, Any], *, x: torch.Tensor, tolerance: Any) -> Any:
        truth = reference.truth(x)
        return reference.compare({label: truth + 1e-4 * truth.abs().max() for label in graphs}, x, tolerance=tolerance)

    monkeypatch.setattr(tvonnx, "validate_graphs", off)
    with pytest.raises(ValidationMismatch, match=f"^{ckpt}: face_mobilenetv2_x0_1: onnxruntime") as info:
        tvexport.export_checkpoint(ckpt, tmp_path / "m.onnx", simplify=False)
    assert info.value.comparisons and (info.value.truth, info.value.baseline) == ("unbaked float64", "unbaked float32")
    r = cli("export", ckpt, "-o", tmp_path / "m.onnx", "--no-simplify")
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == 1 and len(lines) == 1 and lines[0].startswith(f"error: {ckpt}: face_mobilenetv2_x0_1: onnxruntime (raw) differs"), r.stderr
    assert "nothing written" in lines[0] and list(tmp_path.iterdir()) == []


def test_mismatch_under_verbose_shows_where_it_failed(cli: Any, ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--verbose adds the traceback down to the comparison that failed (before: it stopped at the
    re-raise that names the file, ``raise ... from None`` in export_checkpoint); the last line is
    the error line, as without --verbose."""
    def off(reference: Any, graphs: dict[str, Any], *, x: torch.Tensor, tolerance: Any) -> Any:
        truth = reference.truth(x)
        return reference.compare({label: truth + 1e-4 * truth.abs().max() for label in graphs}, x, tolerance=tolerance)

    monkeypatch.setattr(tvonnx, "validate_graphs", off)
    r = cli("export", ckpt, "-o", tmp_path / "m.onnx", "--no-simplify", "--verbose")
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == 1 and "Traceback" in r.stderr, r.stderr
    assert "in check_comparisons" in r.stderr and "in export_onnx" in r.stderr, r.stderr  # where it was raised, and from which exporter
    assert lines[-1].startswith(f"error: {ckpt}: face_mobilenetv2_x0_1: onnxruntime (raw) differs"), r.stderr
    assert list(tmp_path.iterdir()) == []


def test_about_file_keeps_the_traceback() -> None:
    """The file-naming re-raise (``about_file``) keeps the inner frames (what --verbose prints)."""
    import traceback

    from tvexport.errors import about_file

    def deep() -> None:
        raise TvexportError("overflows float16", hint="use float32")

    with pytest.raises(TvexportError) as info:
        with about_file("m.ckpt"):
            deep()
    assert str(info.value) == "m.ckpt: overflows float16; use float32"
    assert "in deep" in "".join(traceback.format_exception(info.value))


CLI_REFUSED = [
    (["-o", "m.baked.pt"], "-o {out}: .baked.pt names a baked file, but tvexport export writes an ONNX model; name it {stem}.onnx, or make a baked file with: tvexport bake {src} -o {out}"),
    (["-o", "m.engine"], "-o {out}: .engine names a TensorRT engine, but tvexport export writes an ONNX model; name it {stem}.onnx, or build an engine"),
    (["-o", "m.pt2", "--tv-op", "plugin"], "--tv-op plugin does not apply to --format aoti, which -o {out} picks (no --format was given); drop it, or name the output m.onnx for an ONNX model"),
    (["-o", "m.pt2", "--opset", "17", "--no-simplify"], "--opset, --no-simplify do not apply to --format aoti, which -o {out} picks (no --format was given); drop them, or name"),
]


@pytest.mark.parametrize(("args", "says"), CLI_REFUSED, ids=[" ".join(a) for a, _ in CLI_REFUSED])
def test_cli_refusals_name_no_format_the_user_did_not_give(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], says: str) -> None:
    """Before: the CLI passed the format it inferred from -o, so `export src.ckpt -o m.baked.pt` said
    "tvexport export --format onnx writes..." and `-o m.pt2 --tv-op plugin` "...does not apply to
    --format aoti", naming a --format nobody typed; the .pt2 suffix that picked aoti went unsaid."""
    def work(*args: Any, **kwargs: Any) -> Any:
        pytest.fail("work started before the output was checked")

    for module, attr in (("tvexport.export._common", "load_source"), ("tvexport.export._dispatch", "export_model")):
        monkeypatch.setattr(importlib.import_module(module), attr, work)
    source = tmp_path / "src.ckpt"
    source.write_bytes(b"unread")
    out = tmp_path / args[1]
    r = cli("export", source, "-o", out, *args[2:])
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == 2 and len(lines) == 1 and "Traceback" not in r.stderr + r.stdout, r.stderr
    assert lines[0].startswith("error: " + says.format(out=out, stem=tmp_path / "m", src=source)), lines[0]
    assert list(tmp_path.iterdir()) == [source]


@pytest.mark.parametrize("format", [None, "aoti"])
def test_baked_output_from_a_baked_file_suggests_no_bake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, format: str | None) -> None:
    """Before: exporting demo.baked.pt to other.baked.pt advised `tvexport bake demo.baked.pt -o
    other.baked.pt`, which is refused ("is already baked"). The file is a baked one already."""
    def work(*args: Any, **kwargs: Any) -> Any:
        pytest.fail("work started before the output was checked")

    monkeypatch.setattr(importlib.import_module("tvexport.export._common"), "load_source", work)
    source, out = tmp_path / "demo.baked.pt", tmp_path / "other.baked.pt"
    source.write_bytes(b"unread")
    with pytest.raises(TvexportError) as info:
        tvexport.export_checkpoint(source, out, format=format)
    right = tmp_path / ("other.pt2" if format else "other.onnx")
    assert str(info.value).endswith(f"; name it {right}, or copy {source}: it is already a baked file"), str(info.value)
    assert "tvexport bake" not in str(info.value)
