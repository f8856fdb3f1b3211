"""``tvexport validate`` / ``validate_artifact``: artefact vs torch, backend dispatch, input checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")

from conftest import make_model, write_checkpoint  # noqa: E402

from tvexport.accuracy import DEFAULT_RTOL, Tolerance, compare_outputs  # noqa: E402
from tvexport.bake import random_inputs  # noqa: E402
from tvexport.errors import TvexportError  # noqa: E402
from tvexport.export import _common  # noqa: E402
from tvexport.export.onnx import export_onnx  # noqa: E402
from tvexport.export.validate import validate_artifact  # noqa: E402


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A DWConv-baseline checkpoint (cheap to build), its ONNX export (dynamic batch), and a
    second checkpoint with other weights."""
    tmp = tmp_path_factory.mktemp("validate")
    model = make_model("face_mobilenetv2_x0_1", atom="dwconv", seed=21)
    ckpt = write_checkpoint(model, tmp / "face_dw.ckpt", "lightning")
    other = write_checkpoint(make_model("face_mobilenetv2_x0_1", atom="dwconv", seed=22), tmp / "other.ckpt", "lightning")
    onnx_path = export_onnx(model, tmp / "face_dw.onnx", dynamic_batch=True, simplify=False).path
    return {"ckpt": ckpt, "other": other, "onnx": onnx_path}


def test_validate_api_random_and_file_inputs(artefacts: dict[str, Path], tmp_path: Path) -> None:
    report = validate_artifact(artefacts["onnx"], artefacts["ckpt"])
    assert report.ok and report.input_shape == (2, 3, 96, 96) and report.comparisons[0].name == "onnxruntime"
    c = report.comparisons[0]
    assert c.tolerance == Tolerance(rtol=1e-5) and c.max_rel < 1e-5 and c.baseline_max_rel is not None and c.baseline_max_rel < 1e-5
    assert (report.truth, report.baseline) == ("dwconv float64", "dwconv float32")
    x = random_inputs((3, 3, 96, 96), seed=5).numpy()
    np.save(tmp_path / "x.npy", x)
    report = validate_artifact(artefacts["onnx"], artefacts["ckpt"], input_path=tmp_path / "x.npy")
    assert report.ok and report.input_shape == (3, 3, 96, 96) and report.input_source.endswith("x.npy")
    np.save(tmp_path / "one.npy", x[0])  # a single CHW image is accepted as batch 1
    assert validate_artifact(artefacts["onnx"], artefacts["ckpt"], input_path=tmp_path / "one.npy").input_shape == (1, 3, 96, 96)


def test_validate_parses_the_onnx_file_once_before_the_runner(artefacts: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: validate parsed the graph for its precision, again for its recorded network, and
    the runner a third time (a fourth with the weights for a plugin graph), each a protobuf decode
    of the whole file. The precision and network now share one read; the runner makes its own."""
    import onnx

    reads: list[Path] = []
    real = onnx.load

    def counting(f: Any, *args: Any, **kwargs: Any) -> Any:
        reads.append(Path(f))
        return real(f, *args, **kwargs)

    monkeypatch.setattr(onnx, "load", counting)
    assert validate_artifact(artefacts["onnx"], artefacts["ckpt"]).ok
    assert reads == [artefacts["onnx"]] * 2, reads


def test_validate_reports_mismatch(artefacts: dict[str, Path]) -> None:
    report = validate_artifact(artefacts["onnx"], artefacts["other"])
    assert not report.ok and report.comparisons[0].cosine < 0.999


def test_small_mismatch_hint_does_not_question_against() -> None:
    """Below GROSS_MAX_REL the hint stays the tolerance one, and export (no --against) never asks."""
    import torch

    from tvexport.export.validate import GROSS_MAX_REL, ValidationMismatch, check_comparisons

    truth = torch.linspace(-1, 1, 100, dtype=torch.float64)
    for rel, against, questioned in ((0.05, "a.ckpt", False), (0.5, "a.ckpt", True), (0.5, None, False)):
        c = compare_outputs("onnxruntime", truth + rel, truth, tolerance=Tolerance(rtol=1e-5))
        assert (c.max_rel > GROSS_MAX_REL) == (rel > GROSS_MAX_REL)
        with pytest.raises(ValidationMismatch) as err:
            check_comparisons([c], against=against)
        assert (err.value.hint or "").startswith("is a.ckpt the file it was exported from?") == questioned
        assert (err.value.hint or "").endswith("if this precision is expected, raise the floor with --rtol/--atol")


def test_openvino_bf16_is_judged_by_the_bfloat16_floor(cli: Any, artefacts: dict[str, Path]) -> None:
    """Before: openvino-bf16 was judged by the artefact's float32 floor (1e-5), which bfloat16
    arithmetic (eps 2**-7) never meets on a CPU that has it; its own floor is float16's times 4
    (about 5 bfloat16 eps), and the output says which precision was used."""
    pytest.importorskip("openvino")
    from tvexport.export.validate import BFLOAT16_RTOL

    assert BFLOAT16_RTOL == pytest.approx(4e-2) and 4 < BFLOAT16_RTOL / torch.finfo(torch.bfloat16).eps < 6
    report = validate_artifact(artefacts["onnx"], artefacts["ckpt"], backend="openvino-bf16")
    assert report.precision == "bfloat16" and report.to_dict()["precision"] == "bfloat16"
    assert report.comparisons[0].tolerance == Tolerance(rtol=BFLOAT16_RTOL) and report.ok, report.comparisons[0].verdict()
    assert validate_artifact(artefacts["onnx"], artefacts["ckpt"], backend="openvino").precision == "float32"
    assert validate_artifact(artefacts["onnx"], artefacts["ckpt"], backend="openvino-bf16", rtol=1e-3).comparisons[0].tolerance == Tolerance(rtol=1e-3)
    r = cli("validate", artefacts["onnx"], "--against", artefacts["ckpt"], "--backend", "openvino-bf16")
    assert r.exit_code == 0 and "openvino-bf16, bfloat16 tolerance" in r.stdout.replace("\n", " "), r.stdout + r.stderr


def test_validate_dispatches_through_backends(artefacts: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Other backends (aoti, tensorrt) are someone else's: validate only goes through load_runner."""
    seen: list[Any] = []

    def fake_load_runner(backend: str, path: Path) -> Any:
        seen.append((backend, Path(path).name))
        real = _common.load_runner("onnxruntime", path)
        return lambda x: real(x) * 1.5 if backend == "tensorrt" else real(x)

    monkeypatch.setattr("tvexport.export.validate.load_runner", fake_load_runner)
    monkeypatch.setattr("tvexport.export.validate.identify", lambda path: None)  # a file of unknown kind: --backend decides
    assert validate_artifact(artefacts["onnx"], artefacts["ckpt"], backend="aoti").ok
    bad = validate_artifact(artefacts["onnx"], artefacts["ckpt"], backend="tensorrt")
    assert not bad.ok and bad.comparisons[0].name == "tensorrt"
    assert seen == [("aoti", "face_dw.onnx"), ("tensorrt", "face_dw.onnx")]
    with pytest.raises(TvexportError, match="unknown backend"):
        _common.load_runner("tflite", artefacts["onnx"])


def test_cli_validate_json_and_exit_codes(cli: Any, artefacts: dict[str, Path]) -> None:
    r = cli("validate", artefacts["onnx"], "--against", artefacts["ckpt"], "--json", "--batch", "4")
    assert r.exit_code == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["ok"] and report["input_shape"] == [4, 3, 96, 96]
    assert set(report["comparisons"][0]) >= {"max_abs", "max_rel", "p99_abs", "cosine", "baseline_max_rel", "allowed", "tolerance", "ok"}
    assert report["truth"] == "dwconv float64"
    r = cli("validate", artefacts["onnx"], "--against", artefacts["other"])
    assert r.exit_code == 1 and "FAIL" in r.stdout and "differs" in r.stderr
    # other weights are no rounding: before, the only hint was to raise --rtol/--atol
    assert f"; is {artefacts['other']} the file it was exported from? An error over 10% of the output's peak is not rounding; if this" in r.stderr, r.stderr
    r = cli("validate", artefacts["onnx"], "--against", artefacts["other"], "--rtol", "10")
    assert r.exit_code == 0 and "ok" in r.stdout


def test_cli_validate_bad_inputs(cli: Any, artefacts: dict[str, Path], tmp_path: Path) -> None:
    bad = tmp_path / "x.npy"
    np.save(bad, np.zeros((1, 3, 64, 64), np.float32))
    r = cli("validate", artefacts["onnx"], "--against", artefacts["ckpt"], "--input", bad)
    assert r.exit_code == 2 and "x.npy" in r.stderr and "(N, 3, 96, 96)" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr + r.stdout
    (tmp_path / "junk.npy").write_text("not numpy")
    r = cli("validate", artefacts["onnx"], "--against", artefacts["ckpt"], "--input", tmp_path / "junk.npy")
    assert r.exit_code == 2 and "not a .npy array" in r.stderr
    r = cli("validate", tmp_path / "missing.onnx", "--against", artefacts["ckpt"])
    assert r.exit_code == 2 and "no such file" in r.stderr
    (tmp_path / "inputs.npy").mkdir()  # before: "no such file", though it exists
    r = cli("validate", artefacts["onnx"], "--against", artefacts["ckpt"], "--input", tmp_path / "inputs.npy")
    assert r.exit_code == 2 and "inputs.npy is a directory, not a .npy array" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = cli("validate", artefacts["ckpt"], "--against", artefacts["ckpt"])  # a checkpoint, not an artefact
    assert r.exit_code == 2 and "looks like a checkpoint" in r.stderr and "tvexport export" in r.stderr
    r = cli("validate", artefacts["ckpt"], "--against", artefacts["ckpt"], "--backend", "onnxruntime")
    assert r.exit_code == 2 and "not a readable ONNX file" in r.stderr
    r = cli("validate", artefacts["onnx"], "--against", artefacts["ckpt"], "--backend", "tflite")
    assert r.exit_code == 2 and "unknown backend" in r.stderr


def test_cli_validate_names_a_torchscript_model_as_such(cli: Any, artefacts: dict[str, Path], tmp_path: Path) -> None:
    """Before: a torch.jit.save file given as the artefact 'looks like a checkpoint' (export it first);
    it is TorchScript, which no backend runs: say so and what validate takes, with or without --backend."""
    import warnings

    import torch

    ts = tmp_path / "ts_model.pt"
    with warnings.catch_warnings():  # torch.jit is deprecated: what users still have, not what we do
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3))), ts)
    for extra in ([], ["--backend", "aoti"], ["--backend", "onnxruntime"]):
        r = cli("validate", ts, "--against", artefacts["ckpt"], *extra)
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        assert r.exit_code == 2 and len(lines) == 1 and "Traceback" not in r.stderr + r.stdout, r.stderr
        assert lines[0].startswith(f"error: {ts} is a TorchScript model (torch.jit.save), not an exported model"), lines[0]
        assert "looks like a checkpoint" not in lines[0] and "ONNX model" in lines[0] and "AOTInductor package" in lines[0], lines[0]


@pytest.mark.parametrize("name", ["model.ckpt", "model.onnx", "model.pt2"])
def test_cli_validate_names_a_directory_or_empty_model_as_such(cli: Any, artefacts: dict[str, Path], tmp_path: Path, name: str) -> None:
    """Before: a directory or empty file named *.ckpt was called "a checkpoint" (export it first), and
    one named *.onnx "not an ONNX model ... pass --backend": neither helps; say what the file is."""
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / name).mkdir()
    (tmp_path / name).write_bytes(b"")
    for path, what in ((tmp_path / "dir" / name, "is a directory, not an exported model"), (tmp_path / name, "is empty (0 bytes)")):
        r = cli("validate", path, "--against", artefacts["ckpt"])
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        assert r.exit_code == 2 and len(lines) == 1 and "Traceback" not in r.stderr + r.stdout, r.stderr
        assert lines[0].startswith(f"error: {path} {what}"), lines[0]


@pytest.mark.parametrize("name", ["text.pt2", "zip.pt2", "zip.onnx", "json.onnx", "json.pt2"])
def test_cli_validate_names_a_model_file_holding_something_else(cli: Any, artefacts: dict[str, Path], tmp_path: Path, name: str) -> None:
    """Before: a .pt2 or .onnx holding something else got "cannot tell which runtime ...; pass
    --backend", which only led to a second error; its name says what it should be: not one, export it again."""
    import zipfile

    path = tmp_path / name
    if name.startswith("zip"):
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("foo/bar.txt", "hello")
    elif name.startswith("json"):  # before, as .onnx: "is not a readable ONNX model (it looks like an ONNX model or other protobuf file)"
        path.write_text('{"model": "face", "opset": 17}\n')
    else:
        path.write_text("hello\n")
    kind, command, other = {"text.pt2": ("AOTInductor package", " --format aoti", "a text file"), "zip.pt2": ("AOTInductor package", " --format aoti", "a zip archive"),
                            "zip.onnx": ("ONNX model", "", "a zip archive"), "json.onnx": ("ONNX model", "", "a JSON file"),
                            "json.pt2": ("AOTInductor package", " --format aoti", "a JSON file")}[name]
    r = cli("validate", path, "--against", artefacts["ckpt"])
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.exit_code == 2 and len(lines) == 1 and "--backend" not in lines[0], r.stderr
    assert lines[0] == f"error: {path} is not a readable {kind} (it looks like {other}); export it again with tvexport export CHECKPOINT{command}", lines[0]


@pytest.mark.parametrize("option", ["--against", "--input"])
def test_cli_validate_names_a_directory_or_empty_against_or_input_as_such(cli: Any, artefacts: dict[str, Path], tmp_path: Path, option: str) -> None:
    """The same checks (one shared helper) on the other two files validate reads: one line each,
    saying what the file is, and what it should have been; before, an empty --input was "not a .npy array"."""
    name, what = {"--against": ("model.ckpt", "a checkpoint file"), "--input": ("x.npy", "a .npy array")}[option]
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / name).mkdir()
    (tmp_path / name).write_bytes(b"")
    for path, said in ((tmp_path / "dir" / name, f"is a directory, not {what}"), (tmp_path / name, "is empty (0 bytes)")):
        against, input_ = (path, []) if option == "--against" else (artefacts["ckpt"], ["--input", path])
        r = cli("validate", artefacts["onnx"], "--against", against, *input_)
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        assert r.exit_code == 2 and len(lines) == 1 and "Traceback" not in r.stderr + r.stdout, r.stderr
        assert lines[0].startswith(f"error: {path} {said}; "), lines[0]


def test_cli_validate_refuses_random_input_options_with_input(cli: Any, artefacts: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: `--input x.npy --seed 3` was accepted and the seed silently ignored."""
    monkeypatch.setattr("tvexport.export.validate.load_runner", lambda *a: pytest.fail("the artefact was loaded"))
    x = tmp_path / "x.npy"
    np.save(x, random_inputs((2, 3, 96, 96), seed=5).numpy())
    for option, value in (("--seed", "3"), ("--seed", "0"), ("--batch", "2")):
        r = cli("validate", artefacts["onnx"], "--against", artefacts["ckpt"], "--input", x, option, value)
        lines = r.stderr.strip().splitlines()
        assert r.exit_code == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
        assert lines[0].startswith(f"error: {option} ") and "with --input" in lines[0] and f"drop {option}" in lines[0]


def test_validate_seed_chooses_the_random_input(artefacts: dict[str, Path]) -> None:
    report = validate_artifact(artefacts["onnx"], artefacts["ckpt"], seed=7, batch=1)
    assert report.ok and report.input_source == "random (seed 7)"
    assert validate_artifact(artefacts["onnx"], artefacts["ckpt"], batch=1).input_source == "random (seed 0)"

def test_cli_validate_fixed_batch_mismatch(cli: Any, artefacts: dict[str, Path], tmp_path: Path) -> None:
    fixed = export_onnx(make_model("face_mobilenetv2_x0_1", atom="dwconv", seed=21), tmp_path / "b2.onnx", batch=2, simplify=False, validate=False).path
    np.save(tmp_path / "x.npy", np.zeros((3, 3, 96, 96), np.float32))
    r = cli("validate", fixed, "--against", artefacts["ckpt"], "--input", tmp_path / "x.npy")
    assert r.exit_code == 2 and "batch 2" in r.stderr and "--dynamic-batch" in r.stderr
    r = cli("validate", fixed, "--against", artefacts["ckpt"])
    assert r.exit_code == 0 and "[2, 3, 96, 96]" in r.stdout


@pytest.mark.parametrize("precision", ["float32", "float16_kernels", "float16"])
def test_tolerance_rule_boundary(precision: str) -> None:
    """Pass iff max|got - truth| <= factor * max|float32 - truth| + atol + rtol * max|truth|."""
    tol = Tolerance.default(precision)  # type: ignore[arg-type]
    assert (tol.rtol, tol.atol, tol.factor) == ({"float32": 1e-5, "float16_kernels": 5e-3, "float16": 1e-2}[precision], 0.0, 2.0)
    assert DEFAULT_RTOL[precision] == tol.rtol
    truth = np.random.default_rng(0).standard_normal((3, 512)).astype(np.float64)
    scale = float(np.abs(truth).max())
    for base_rel in (0.0, 3 * tol.rtol):  # float32 exact, or float32 noise above the floor
        baseline = truth.copy()
        baseline[0, 3] += base_rel * scale
        allowed_rel = 2 * base_rel + tol.rtol
        for frac, ok in ((0.5, True), (0.99, True), (1.01, False), (3.0, False)):
            got = truth.copy()
            got[1, 7] += frac * allowed_rel * scale
            c = compare_outputs("out", got, truth, tolerance=tol, baseline=baseline)
            assert c.ok is ok, (base_rel, frac, c)
            assert c.max_rel == pytest.approx(frac * allowed_rel, rel=1e-6) and c.allowed_rel == pytest.approx(allowed_rel)
    assert not compare_outputs("nan", truth * np.nan, truth, tolerance=tol).ok


def test_comparison_statistics_computed_independently() -> None:
    """p99_abs is the 99th percentile of |got - truth| (linear interpolation between sorted values
    at index 0.99 * (n - 1), as the profiling statistics), cosine and max rel as defined; here the
    differences are a shuffled 0, 1, ..., 999 thousandths, so p99 is 0.98901 and the max 0.999."""
    rng = np.random.default_rng(3)
    truth = rng.standard_normal((4, 250)) + 5.0
    diffs = rng.permutation(1000).reshape(4, 250) / 1000.0
    got = truth + diffs * np.where(rng.random((4, 250)) < 0.5, -1.0, 1.0)
    c = compare_outputs("out", got, truth, tolerance=Tolerance(rtol=1e-5))
    assert c.p99_abs == pytest.approx(0.98901, abs=1e-12) and c.max_abs == pytest.approx(0.999, abs=1e-12)
    assert c.max_rel == pytest.approx(0.999 / np.abs(truth).max(), rel=1e-12)
    g, t = got.ravel(), truth.ravel()
    assert c.cosine == pytest.approx(float(g @ t / np.sqrt((g @ g) * (t @ t))), rel=1e-12)


def test_tolerance_refuses_bad_floors() -> None:
    with pytest.raises(TvexportError, match="rtol must be a finite number >= 0"):
        Tolerance.default(rtol=-1)
    with pytest.raises(TvexportError, match="atol must be"):
        Tolerance(rtol=1e-5, atol=float("nan"))
    with pytest.raises(TvexportError, match="unknown precision"):
        Tolerance.default("int4")  # type: ignore[arg-type]


def test_precision_and_architecture_options_are_keyword_only(artefacts: dict[str, Path]) -> None:
    """Before: ``Reference.precision``, ``arch_config_for``, ``artifact_precision`` and
    ``TVGeometry.macs`` took their options positionally; only the subject may be positional.
    ``TVGeometry`` itself, a record of a layer's shape with no subject, took all six fields
    positionally (``TVGeometry(4, 3, 1, 5, 5, False)``), and ``BakedTVConv`` its shape after the
    channels (``BakedTVConv(4, 3, 2, 5, 5)``); now by keyword only."""
    import inspect

    import torch

    from tvexport.accuracy import Reference
    from tvexport.checkpoint import read_checkpoint
    from tvexport.export.validate import artifact_precision
    from tvexport.layers import BakedTVConv, TVConv, TVGeometry
    from tvexport.models.loading import arch_config_for

    for f in (Reference.precision, arch_config_for, artifact_precision, TVGeometry.macs):
        params = list(inspect.signature(f).parameters.values())
        assert [p.name for p in params if p.kind != p.KEYWORD_ONLY] == [params[0].name], f.__qualname__
    reference = Reference(make_model("face_mobilenetv2_x0_1", atom="dwconv"), kernels=torch.float16)
    assert reference.precision(dtype="float32") == "float16_kernels" and reference.precision(dtype="float16") == "float16"
    ckpt = read_checkpoint(artefacts["ckpt"])
    assert arch_config_for(ckpt, arch="face_mobilenetv2_x0_1").name == arch_config_for(ckpt).name == "face_mobilenetv2_x0_1"
    assert artifact_precision(artefacts["onnx"], found=None) == ("float32", None)
    assert TVGeometry(channels=4, k=3, stride=1, h=5, w=5, bias=False).macs(batch=2) == 2 * 4 * 9 * 25
    with pytest.raises(TypeError):
        TVGeometry(channels=4, k=3, stride=1, h=5, w=5, bias=False).macs(2)  # type: ignore[misc]
    assert all(p.kind == p.KEYWORD_ONLY for p in inspect.signature(TVGeometry).parameters.values())
    with pytest.raises(TypeError):
        TVGeometry(4, 3, 1, 5, 5, False)  # type: ignore[misc]
    layer = TVConv(6, TVConv_k=5, stride=2, TVConv_Bias=True, h=4, w=3)  # the callers, with the fields in their places
    assert layer.geometry == TVGeometry(channels=6, k=5, stride=2, h=4, w=3, bias=True)
    assert BakedTVConv.from_tvconv(layer).geometry == layer.geometry
    with pytest.raises(TypeError):
        BakedTVConv(6, 5, 2, 4, 3)  # type: ignore[misc]
    assert BakedTVConv(6, k=5, stride=2, h=4, w=3, bias="map").geometry == layer.geometry


def test_validate_refuses_an_onnx_of_another_architecture(cli: Any, artefacts: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ONNX metadata names the network (``tvexport.arch``, ``tvexport.atom``): another width,
    or the TV network of a DWConv-baseline graph, is refused by name before anything runs."""
    from tvexport.export import validate

    monkeypatch.setattr(validate, "load_source", lambda *a, **k: pytest.fail("the checkpoint was baked"))
    monkeypatch.setattr(validate, "load_runner", lambda *a: pytest.fail("the graph was loaded"))
    wider = write_checkpoint(make_model("face_mobilenetv2_x0_2", atom="dwconv", seed=3), tmp_path / "x0_2.ckpt", "lightning")
    tv = write_checkpoint(make_model("face_mobilenetv2_x0_1", seed=3), tmp_path / "tv.ckpt", "lightning")
    for against, names in ((wider, "is a face_mobilenetv2_x0_2 (dwconv)"), (tv, "is a face_mobilenetv2_x0_1 (tvconv)")):
        r = cli("validate", artefacts["onnx"], "--against", against)
        assert r.exit_code == 2 and "exported from a face_mobilenetv2_x0_1 (dwconv) network" in r.stderr and names in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and r.stdout == ""


@pytest.mark.parametrize("bad,said", [(np.nan, "1 NaN/Inf value"), (np.inf, "1 NaN/Inf value"), (1e300, "1 value beyond float32's range")])
def test_cli_validate_refuses_a_nonfinite_input(cli: Any, artefacts: dict[str, Path], tmp_path: Path, bad: float, said: str) -> None:
    """Before: the comparison failed (exit 1) and suggested raising --rtol, which cannot help."""
    x = random_inputs((2, 3, 96, 96), seed=5).numpy().astype(np.float64)
    x[1, 2, 3, 4] = bad
    np.save(tmp_path / "x.npy", x)
    r = cli("validate", artefacts["onnx"], "--against", artefacts["ckpt"], "--input", tmp_path / "x.npy")
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == 2 and len(lines) == 1 and "Traceback" not in r.stderr + r.stdout, r.stderr
    assert lines[0] == f"error: {tmp_path / 'x.npy'}: input holds {said}; give finite input values"


def test_validate_names_a_re_baked_input_size(cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An export of a network re-baked for another input size, validated against its trained-size
    checkpoint (or the other way round), is refused by size before anything runs; before, the hint
    was "give an input of that shape", which the checkpoint's network refuses."""
    from tvexport.export import validate

    ckpt = write_checkpoint(make_model(seed=4), tmp_path / "tv.ckpt", "lightning")
    fast = ("--no-simplify", "--no-validate", "--batch", "2")
    assert cli("bake", ckpt, "--input-size", "32x48", "--resample", "generator", "--no-verify", "-o", tmp_path / "s.pt").exit_code == 0
    assert cli("export", tmp_path / "s.pt", "-o", tmp_path / "s.onnx", *fast).exit_code == 0
    assert cli("export", ckpt, "-o", tmp_path / "t.onnx", *fast).exit_code == 0
    assert cli("validate", tmp_path / "s.onnx", "--against", tmp_path / "s.pt").exit_code == 0  # its own source
    monkeypatch.setattr(validate, "load_source", lambda *a, **k: pytest.fail("the checkpoint was baked"))
    monkeypatch.setattr(validate, "load_runner", lambda *a: pytest.fail("the graph was loaded"))
    cases = [
        ("s.onnx", "tv.ckpt", "32x48", "96x96", "the re-baked (32x48) file it was exported from"),
        ("t.onnx", "s.pt", "96x96", "32x48", "the checkpoint or baked file it was exported from (at 96x96)"),
    ]
    for artefact, against, hw, want, hint in cases:
        r = cli("validate", tmp_path / artefact, "--against", tmp_path / against)
        lines = r.stderr.strip().splitlines()
        assert r.exit_code == 2 and len(lines) == 1 and r.stdout == "", r.stderr
        assert f"{artefact} was exported for input {hw}, but {tmp_path / against} is the face_mobilenetv2_x0_1 network at {want}" in lines[0]
        assert f"validate it against {hint}" in lines[0] and "give an input of that shape" not in lines[0]


@pytest.mark.parametrize("seed", [2**64, 2**63, -(2**63) - 1])
def test_validate_seed_outside_64_bits_is_one_line(cli, tmp_path: Path, seed: int) -> None:
    """Before: torch's generator raised "Overflow when unpacking long long": internal error, exit 3."""
    r = cli("validate", tmp_path / "m.onnx", "--against", tmp_path / "m.baked.pt", "--seed", seed)
    assert r.exit_code == 2, r.stderr
    assert r.stderr.strip() == f"error: --seed {seed} is out of range; give an integer from -2**63 to 2**63 - 1, e.g. --seed 0"


def test_cli_validate_refuses_an_input_of_no_rows(cli: Any, artefacts: dict[str, Path], tmp_path: Path) -> None:
    """Before: a (0, 3, 96, 96) .npy passed ("ok", exit 0) on a dynamic-batch graph, having compared nothing."""
    np.save(tmp_path / "x.npy", np.zeros((0, 3, 96, 96), np.float32))
    for extra in ([], ["--json"]):
        r = cli("validate", artefacts["onnx"], "--against", artefacts["ckpt"], "--input", tmp_path / "x.npy", *extra)
        lines = r.stderr.strip().splitlines()
        assert r.exit_code == 2 and len(lines) == 1 and r.stdout == "" and "Traceback" not in r.stderr, r.stderr
        assert lines[0] == f"error: {tmp_path / 'x.npy'}: input holds no rows (shape (0, 3, 96, 96)); save at least one (3, 96, 96) image"


def test_compare_outputs_refuses_outputs_without_values() -> None:
    """Before: empty outputs scored max_abs 0 and cosine 1, a perfect match (ok) of nothing."""
    empty = np.zeros((0, 512))
    with pytest.raises(TvexportError, match="^net: the output holds no values, so nothing can be compared; give an input of at least one row$"):
        compare_outputs("net", empty, empty, tolerance=Tolerance(rtol=1e-5), baseline=empty)


@pytest.mark.parametrize("option,said", [
    ({"batch": 0}, "--batch 0 is not a number of input rows"),
    ({"batch": -2}, "--batch -2 is not a number of input rows"),
    ({"seed": 2**70}, f"--seed {2**70} is out of range"),
])
def test_validate_api_refuses_a_bad_batch_or_seed_before_any_work(artefacts: dict[str, Path], monkeypatch: pytest.MonkeyPatch, option: dict[str, int], said: str) -> None:
    """Before: batch=0 quietly became the artefact's batch; batch=-2 and seed=2**70 raised torch's errors."""
    from tvexport.export import validate

    monkeypatch.setattr(validate, "load_runner", lambda *a: pytest.fail("the artefact was loaded"))
    monkeypatch.setattr(validate, "load_source", lambda *a, **k: pytest.fail("the checkpoint was baked"))
    with pytest.raises(TvexportError, match="^" + said):
        validate_artifact(artefacts["onnx"], artefacts["ckpt"], **option)  # type: ignore[arg-type]


def test_cli_validate_of_a_text_file_named_as_a_checkpoint_does_not_say_export_it(cli: Any, artefacts: dict[str, Path], tmp_path: Path) -> None:
    """Before: any .ckpt "looks like a checkpoint, not an exported model; export it first", judged
    from the suffix: following that hint then failed with "not a PyTorch checkpoint"."""
    text = tmp_path / "text.ckpt"
    text.write_text("not a model\n")
    r = cli("validate", text, "--against", artefacts["ckpt"])
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == 2 and lines == [f"error: {text} is neither an exported model nor a checkpoint (it looks like a text file); "
                                          "give the .onnx, .pt2 or TensorRT engine that tvexport export or build wrote"], r.stderr
    r = cli("validate", artefacts["ckpt"], "--against", artefacts["ckpt"])  # a real checkpoint keeps its hint
    assert r.exit_code == 2 and "looks like a checkpoint, not an exported model; export it first" in r.stderr, r.stderr


def test_validate_without_onnx_names_the_run_not_an_export(cli: Any, artefacts: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Before (base install): "ONNX export needs onnx, which is not installed" during a validation."""
    import sys

    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx raises ImportError
    r = cli("validate", artefacts["onnx"], "--against", artefacts["ckpt"])
    assert r.exit_code == 2 and r.stderr.strip() == "error: running an ONNX model needs onnx, which is not installed; install it with: pip install 'tvexport[onnx]'", r.stderr
