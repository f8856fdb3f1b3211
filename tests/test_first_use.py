"""What a newcomer meets first (issue 18): tvexport's own artefacts where a checkpoint belongs,
validate inferring its backend and refusing another architecture, options refused before any
work, help text, inspect's JSON, the AOTInductor progress, and the files tvexport writes."""

from __future__ import annotations

import importlib
import fnmatch
import json
import logging
import math
import os
import subprocess
import sys
import types
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch

from conftest import make_model, write_checkpoint
from tinynet import tiny_tvnet
from tvexport.artifacts import AOTI_SIDECAR_FORMAT, ENGINE_SIDECAR_FORMAT, external_data_path, identify, sidecar_path
from tvexport.checkpoint import read_checkpoint
from tvexport.errors import TvexportError

ROOT = Path(__file__).resolve().parents[1]


def _one_line(r: Any, code: int = 2) -> str:
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.exit_code == code and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


def _fake_package(path: Path, *, arch: str | None = None, atom: str = "tvconv") -> Path:
    """The layout of an AOTInductor package (what torch writes), without compiling one."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("model/archive_format", "pt2")
        zf.writestr("model/data/aotinductor/model/abc.wrapper.so", b"\x7fELF")
        zf.writestr("model/data/aotinductor/model/abc.wrapper_metadata.json", "{}")
    if arch is not None:
        sidecar_path(path).write_text(json.dumps({"format": AOTI_SIDECAR_FORMAT, "arch": arch, "atom": atom, "device": "cpu"}))
    return path


def _fake_engine(path: Path, *, arch: str, precision: str | None = None) -> Path:
    path.write_bytes(b"serialized engine")
    sidecar_path(path).write_text(json.dumps({"format": ENGINE_SIDECAR_FORMAT, "arch": arch, "atom": "tvconv", "precision": precision}))
    return path


@pytest.fixture(scope="module")
def face_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A TV checkpoint of face_mobilenetv2_x0_1 and one of x0_2 (small generators)."""
    tmp = tmp_path_factory.mktemp("first_use")
    return {
        "x0_1": write_checkpoint(make_model("face_mobilenetv2_x0_1"), tmp / "x0_1.ckpt", "lightning"),
        "x0_2": write_checkpoint(make_model("face_mobilenetv2_x0_2"), tmp / "x0_2.ckpt", "lightning"),
    }


# --------------------------------------------------------------------------- artefacts given as checkpoints


@pytest.mark.parametrize("command", ["inspect", "bake", "export"])
def test_artefacts_where_a_checkpoint_belongs_say_what_they_are(cli, tmp_path: Path, command: str) -> None:
    """Before: a valid .pt2 was 'truncated or corrupt', an ONNX 'not a PyTorch checkpoint'."""
    package = _fake_package(tmp_path / "demo.pt2", arch="face_mobilenetv2_x0_1")
    onnx_file = tmp_path / "demo.onnx"
    onnx_file.write_bytes(b"\x08\x0a\x12\x08tvexport\x1a\x050.1.0")  # how tvexport's ModelProto opens
    engine = _fake_engine(tmp_path / "demo.engine", arch="face_mobilenetv2_x0_1")
    cases = {
        package: ("is an AOTInductor package", "tvexport validate"),
        onnx_file: ("is an ONNX model (made by tvexport export)", "tvexport build"),
        engine: ("is a TensorRT engine (made by tvexport build)", "tvexport validate"),
        sidecar_path(package): ("JSON description of an AOTInductor package (demo.pt2)", "tvexport validate"),
        sidecar_path(engine): ("JSON description of a TensorRT engine (demo.engine)", "tvexport validate"),
    }
    for path, (what, usage) in cases.items():
        line = _one_line(cli(command, path, "-o", tmp_path / "out.x") if command != "inspect" else cli(command, path))
        assert what in line and "not a checkpoint" in line and usage in line and "corrupt" not in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.engine", "demo.engine.json", "demo.onnx", "demo.pt2", "demo.pt2.json"]


def test_checkpoints_are_not_taken_for_artefacts(tmp_path: Path, face_files: dict[str, Path]) -> None:
    assert identify(face_files["x0_1"]) is None
    assert read_checkpoint(face_files["x0_1"]).format == "lightning"
    (tmp_path / "notes.json").write_text('{"format": "something else"}')
    assert identify(tmp_path / "notes.json") is None


# --------------------------------------------------------------------------- validate: backend and architecture


def test_validate_infers_the_backend_or_names_the_flag(tmp_path: Path, face_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: `validate demo.pt2` without --backend said 'not a readable ONNX file'."""
    from tvexport.export import validate

    seen: list[str] = []

    def fake_runner(backend: str, path: Path) -> Any:
        seen.append(backend)
        raise TvexportError("stop here")

    monkeypatch.setattr(validate, "load_runner", fake_runner)
    package = _fake_package(tmp_path / "demo.pt2", arch="face_mobilenetv2_x0_1")
    engine = _fake_engine(tmp_path / "demo.engine", arch="face_mobilenetv2_x0_1")
    for path in (package, engine):
        with pytest.raises(TvexportError, match="stop here"):
            validate.validate_artifact(path, face_files["x0_1"])
    assert seen == ["aoti", "tensorrt"]
    unknown = tmp_path / "model.bin"
    unknown.write_bytes(b"\x00" * 64)
    with pytest.raises(TvexportError, match=r"cannot tell which runtime runs .*pass --backend \(onnxruntime, aoti, tensorrt"):
        validate.validate_artifact(unknown, face_files["x0_1"])
    with pytest.raises(TvexportError, match=r"AOTInductor package.*--backend onnxruntime does not run; use --backend aoti"):
        validate.validate_artifact(package, face_files["x0_1"], backend="onnxruntime")
    with pytest.raises(TvexportError, match=r"AOTInductor package.*--backend openvino does not run; use --backend aoti"):
        validate.validate_artifact(package, face_files["x0_1"], backend="openvino")
    with pytest.raises(TvexportError, match=r"JSON description .*validate .*demo\.pt2 instead"):
        validate.validate_artifact(sidecar_path(package), face_files["x0_1"])
    assert seen == ["aoti", "tensorrt"]


@pytest.mark.parametrize("kind", ["aoti", "tensorrt"])
def test_validate_refuses_another_architecture_before_running(cli, tmp_path: Path, face_files: dict[str, Path], kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: 'max abs 33.1 ... loosen with --rtol' after running both networks."""
    from tvexport.export import validate

    monkeypatch.setattr(validate, "load_runner", lambda *a: pytest.fail("the artefact was loaded"))
    monkeypatch.setattr(validate, "load_source", lambda *a, **k: pytest.fail("the checkpoint was baked"))
    artefact = _fake_package(tmp_path / "m.pt2", arch="face_mobilenetv2_x0_2") if kind == "aoti" else _fake_engine(tmp_path / "m.engine", arch="face_mobilenetv2_x0_2")
    line = _one_line(cli("validate", artefact, "--against", face_files["x0_1"]))
    assert "exported from a face_mobilenetv2_x0_2 (tvconv) network" in line and "is a face_mobilenetv2_x0_1 (tvconv)" in line



@pytest.mark.parametrize(("precision", "rtol"), [("float32", 1e-5), ("float16", 1e-2), ("mixed-fp16", 1e-2), (None, 1e-5)])
def test_validate_holds_a_float16_engine_to_the_float16_floor(tmp_path: Path, face_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch, precision: str | None, rtol: float) -> None:
    """Before: every engine was held to the float32 floor (1e-5), the sidecar's precision unread, so a
    correct engine built from a float16 ONNX or with --fp16 failed validate. TensorRT is stubbed: the
    runner is the float32 network plus an error of 1e-3 x max|y|, which float16 arithmetic may make."""
    import numpy as np

    from tvexport import load_checkpoint
    from tvexport.export import validate

    model = load_checkpoint(face_files["x0_1"])

    def fake_runner(backend: str, path: Path) -> Any:
        def run(x: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                y = model(torch.from_numpy(x)).numpy()
            return y + 1e-3 * np.abs(y).max()
        return run

    monkeypatch.setattr(validate, "load_runner", fake_runner)
    engine = _fake_engine(tmp_path / "m.engine", arch="face_mobilenetv2_x0_1", precision=precision)
    report = validate.validate_artifact(engine, face_files["x0_1"], batch=1)
    assert report.backend == "tensorrt" and report.comparisons[0].tolerance.rtol == rtol
    assert report.ok == (rtol == 1e-2)


def test_an_arch_that_contradicts_a_baked_file_is_refused(cli, tmp_path: Path, face_files: dict[str, Path]) -> None:
    """Before: --arch was silently ignored for a baked file (inspect, export, validate --against, bench)."""
    from tvexport import bake_checkpoint, load_checkpoint

    baked = bake_checkpoint(face_files["x0_1"], tmp_path / "x.baked.pt").output
    package = _fake_package(tmp_path / "m.pt2", arch="face_mobilenetv2_x0_1")
    wrong = ["--arch", "deeplabv3plus_mobilenetv2"]
    for args in (["inspect", baked], ["export", baked, "-o", tmp_path / "m.onnx"], ["validate", package, "--against", baked], ["bench", baked, "-b", "torch-baked"]):
        line = _one_line(cli(*args, *wrong))
        assert f"--arch deeplabv3plus_mobilenetv2 contradicts {baked}, a baked face_mobilenetv2_x0_1" in line and "drop --arch" in line, line
    assert not (tmp_path / "m.onnx").exists()
    assert cli("inspect", baked, "--arch", "face_mobilenetv2_x0_1").exit_code == 0  # the architecture it records
    with pytest.raises(TvexportError, match="contradicts"):
        load_checkpoint(baked, arch="face_mobilenetv2_x0_2")

def test_aoti_loader_logs_are_silenced_at_their_source(tmp_path: Path) -> None:
    """Before: `validate x.onnx --backend aoti` printed two torch `W...` lines above the error."""
    from tvexport.export import aoti

    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    names = ("torch.export.pt2_archive._package", "torch._inductor.package.package")
    for name in names:
        logging.getLogger(name).addHandler(handler)
    try:
        for junk in (tmp_path / "junk.pt2", tmp_path / "junk.onnx"):
            junk.write_bytes(b"\x08\x0a\x12\x04junk")
            with pytest.raises(TvexportError, match="could not be loaded as an AOTInductor package"):
                aoti.load_runner(junk)
    finally:
        for name in names:
            logging.getLogger(name).removeHandler(handler)
    assert [r.getMessage() for r in records if r.levelno < logging.ERROR] == []
    assert all(logging.getLogger(n).level == logging.NOTSET for n in names)  # restored: silenced for that call only


def test_input_that_is_not_npy_is_one_clean_line(tmp_path: Path) -> None:
    """Before: numpy's 'Cannot load file containing pickled data when allow_pickle=False'."""
    import numpy as np

    from tvexport.export.validate import load_input

    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    objects = tmp_path / "objects.npy"
    np.save(objects, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    archive = tmp_path / "x.npz"
    np.savez(archive, x=np.zeros(3))
    for path, what in ((notes, "it looks like a text file"), (objects, "holds Python objects"), (archive, "a .npz archive")):
        with pytest.raises(TvexportError) as err:
            load_input(path, expected=(3, 96, 96), arch="face_mobilenetv2_x0_1")
        assert what in str(err.value) and "pickle" not in str(err.value) and "\n" not in str(err.value)


# --------------------------------------------------------------------------- options refused before any work


def _no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any step that reads or bakes a model fails the test: the options must be refused first."""

    def work(*args: Any, **kwargs: Any) -> Any:
        pytest.fail("work started before the options were checked")

    for target in ("tvexport.bake.read_checkpoint", "tvexport.export._common.load_source", "tvexport.export.validate.load_source",
                   "tvexport.export.validate.read_checkpoint", "tvexport.export.validate.load_runner", "tvexport.profile.load_subject"):
        module, name = target.rsplit(".", 1)
        monkeypatch.setattr(importlib.import_module(module), name, work)  # tvexport.bake the module, not the function


BAD_OPTIONS = [
    (["bake", "{ckpt}", "-o", "{out}", "--rtol", "-1"], "--rtol"),
    (["bake", "{ckpt}", "-o", "{out}", "--rtol", "nan"], "--rtol"),
    (["bake", "{ckpt}", "-o", "{out}", "--rtol", "1e-3", "--no-verify"], "--no-verify"),
    (["export", "{ckpt}", "-o", "{out}", "--format", "aoti", "--batch", "2", "--dynamic-batch"], "--batch 2 and --dynamic-batch"),
    (["export", "{ckpt}", "-o", "{out}", "--batch", "2", "--dynamic-batch"], "--batch 2 and --dynamic-batch"),
    (["export", "{ckpt}", "-o", "{out}", "--format", "aoti", "--max-batch", "8"], "--max-batch needs --dynamic-batch"),
    (["export", "{ckpt}", "-o", "{out}", "--no-validate", "--rtol", "1e-3"], "--no-validate"),
    (["export", "{ckpt}", "-o", "{out}", "--atol", "-0.5"], "--atol"),
    (["export", "{ckpt}", "-o", "{out}", "--tv-op", "plugin", "--decomposition", "gather"], "--tv-op portable only"),
    (["validate", "{onnx}", "--against", "{ckpt}", "--input", "{npy}", "--batch", "2"], "drop --batch"),
    (["validate", "{onnx}", "--against", "{ckpt}", "--rtol", "-1e-5"], "--rtol"),
    (["bench", "{ckpt}", "--cv-warn", "0"], "--cv-warn"),
    (["bench", "{ckpt}", "--layer-seconds", "1"], "--per-layer"),
]


@pytest.mark.parametrize(("args", "says"), BAD_OPTIONS, ids=[" ".join(a for a in args if "{" not in a) for args, _ in BAD_OPTIONS])
def test_options_are_refused_before_any_work(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], says: str) -> None:
    """Before: each of these read (and baked) the model first, some ran a whole export or bake."""
    paths = {"ckpt": tmp_path / "m.ckpt", "onnx": tmp_path / "m.onnx", "npy": tmp_path / "x.npy"}
    for p in paths.values():
        p.write_bytes(b"unread")
    _no_work(monkeypatch)
    r = cli(*[a.format(out=tmp_path / "out.x", **paths) for a in args])
    assert r.exit_code == 2 and says in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.ckpt", "m.onnx", "x.npy"]


def test_aoti_without_compiler_is_refused_before_work(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    ckpt = tmp_path / "m.ckpt"
    ckpt.write_bytes(b"unread")
    _no_work(monkeypatch)
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)  # no g++ on this machine
    line = _one_line(cli("export", ckpt, "--format", "aoti", "-o", tmp_path / "m.pt2"))
    assert "C++ compiler" in line


def test_aoti_compiler_name_is_inductors_without_importing_it(tmp_path: Path) -> None:
    """The compiler that ``--format aoti`` looks for before any work is the one Inductor's config
    then calls ($CXX here), found without importing Inductor (~2 s; before, the check imported it)."""
    code = ("import sys; from tvexport.compile import inductor_cxx; name = inductor_cxx(); imported = 'torch._inductor.config' in sys.modules; "
            "from torch._inductor import config; print(name, config.cpp.cxx[1], imported)")
    env = {**os.environ, "CXX": "tvexport-test-cxx", "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["tvexport-test-cxx", "tvexport-test-cxx", "False"]


# --------------------------------------------------------------------------- help, inspect --json, build, progress


def test_help_says_each_default_once(cli) -> None:
    """Before: '--verify / --no-verify  Compare ... (default on).  [default: verify]'."""
    import re

    twice = []
    for command in ("inspect", "bake", "export", "validate", "build", "bench"):
        r = cli(command, "--help")
        assert r.exit_code == 0
        entries = re.split(r"\n(?=  -)", r.stdout)  # one entry per option, continuation lines included
        twice += [f"{command} {e.split()[0]}" for e in entries if "[default:" in e and "default" in e.split("[default:")[0].lower()]
    assert twice == []


def test_inspect_json_states_only_settings_the_network_has(cli, tmp_path: Path) -> None:
    """Before: face networks had num_classes 2, DWConv baselines the TV generator settings."""
    checks = {
        "face_mobilenetv2_x0_1": ("tvconv", lambda cfg: "num_classes" not in cfg and cfg["tv"]["k"] == 3),
        "face_shufflenetv2_x0_5": ("dwconv", lambda cfg: "num_classes" not in cfg and cfg["tv"] is None),
        "deeplabv3plus_mobilenetv2": ("dwconv", lambda cfg: cfg["num_classes"] == 2 and cfg["tv"] is None),
    }
    for name, (atom, ok) in checks.items():
        path = write_checkpoint(make_model(name, atom=atom), tmp_path / f"{name}.pt", "state_dict")
        r = cli("inspect", path, "--json")
        assert r.exit_code == 0, r.stderr
        cfg = json.loads(r.stdout)["config"]
        assert cfg["atom"] == atom and ok(cfg), (name, cfg)


def test_build_without_tensorrt_says_it_needs_an_nvidia_gpu(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    line = _one_line(cli("build", tmp_path / "m.onnx"))
    assert "pip install 'tvexport[trt]'" in line and "NVIDIA GPU" in line and "CUDA" in line


def test_engine_sidecar_records_the_architecture() -> None:
    from tvexport.trt import plan_build, profile_shapes, sidecar_contents

    info = sidecar_contents(
        tensorrt_version="10.13.0", gpu={"name": "GPU"}, plan=plan_build("10.13.0", fp16=False), precision="float32",
        profile=profile_shapes("input", (-1, 3, 96, 96)), inputs=[], outputs=[], source="m.onnx", source_sha256="0" * 64,
        tv_layers=[], plugin_layers=17, workspace_mb=None, build_seconds=1.0, tvexport_version="0.1.0",
        arch="face_mobilenetv2_x0_1", atom="tvconv",
    )
    assert (info["arch"], info["atom"]) == ("face_mobilenetv2_x0_1", "tvconv")


def test_aoti_export_reports_its_phases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: one spinner label for the whole minute. The compiler is stubbed (phases only)."""
    from tvexport import bake
    from tvexport.export import aoti

    model = bake(tiny_tvnet()).model

    def fake_compile(program: Any, package_path: str, inductor_configs: Any) -> str:
        Path(package_path).write_bytes(b"compiled")
        return package_path

    monkeypatch.setattr(torch._inductor, "aoti_compile_and_package", fake_compile)
    monkeypatch.setattr(aoti, "_load_package", lambda path, device: model)
    phases: list[str] = []
    aoti.export_aoti(model, tmp_path / "m.pt2", dynamic_batch=True, max_batch=4, progress=phases.append)
    assert [p.split()[0] for p in phases] == ["exporting", "compiling", "validating", "writing"]
    assert "torch.export" in phases[0] and "AOTInductor" in phases[1] and "batch 1, 2, 3" in phases[2]


def test_gitignore_covers_what_tvexport_writes() -> None:
    """Before: `*.pt2.json` sidecars showed up as untracked files."""
    from tvexport.export._dispatch import default_output
    from tvexport.trt._spec import default_engine_path

    patterns = [p.strip() for p in (ROOT / ".gitignore").read_text().splitlines() if p.strip() and not p.startswith(("#", "!"))]
    onnx_file, package = default_output(Path("net.ckpt"), "onnx"), default_output(Path("net.ckpt"), "aoti")
    engine = default_engine_path(onnx_file)
    written = [Path("net.baked.pt"), onnx_file, external_data_path(onnx_file), package, sidecar_path(package), engine, sidecar_path(engine)]
    assert [p.name for p in written if not any(fnmatch.fnmatch(p.name, pat) for pat in patterns)] == []


def test_tolerance_callback_accepts_zero_and_refuses_the_rest() -> None:
    import typer

    from tvexport.cli._options import tolerance

    assert tolerance(None) is None and tolerance(0.0) == 0.0 and tolerance(1e-5) == 1e-5
    for bad in (-1e-9, math.nan, math.inf):
        with pytest.raises(typer.BadParameter):
            tolerance(bad)


def test_export_cli_passes_the_phases_to_its_spinner(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_export(model: Any, output: Path, *, format: str, **options: Any) -> Any:
        seen.update(options, format=format)
        options["progress"]("compiling C++ kernels and packaging (AOTInductor)")
        raise TvexportError("stopped after the first phase")

    source = types.SimpleNamespace(model=object(), reference=object())  # an ExportSource stand-in
    monkeypatch.setattr("tvexport.export._common.load_source", lambda *a, **k: source)
    monkeypatch.setattr("tvexport.export.aoti.check_options", lambda **k: None)
    monkeypatch.setattr("tvexport.export._dispatch.export_model", fake_export)
    ckpt = tmp_path / "m.ckpt"
    ckpt.write_bytes(b"unread")
    assert "stopped after the first phase" in _one_line(cli("export", ckpt, "--format", "aoti", "-o", tmp_path / "m.pt2"))
    assert seen["format"] == "aoti" and callable(seen["progress"])


def test_input_of_the_wrong_layout_or_channels_gets_the_right_hint(tmp_path: Path) -> None:
    """Only a wrong H x W is about the baked input size. Before: an image saved channels-last
    (N, H, W, 3), as PIL/OpenCV give it, or a grayscale one was told to re-bake with --input-size."""
    import numpy as np

    from tvexport.export.validate import load_input

    def refusal(shape: tuple[int, ...]) -> str:
        path = tmp_path / "x.npy"
        np.save(path, np.zeros(shape, dtype=np.float32))
        with pytest.raises(TvexportError) as err:
            load_input(path, expected=(3, 96, 112), arch="face_mobilenetv2_x0_1")
        said = str(err.value)
        assert said.startswith(f"{path}: input has shape {shape}, but face_mobilenetv2_x0_1 expects (N, 3, 96, 112)") and "\n" not in said, said
        return said

    for shape, transpose in (((2, 96, 112, 3), "x.transpose(0, 3, 1, 2)"), ((96, 112, 3), "x.transpose(2, 0, 1)")):
        said = refusal(shape)
        assert "channels-last" in said and transpose in said and "--input-size" not in said, said
    for shape in ((2, 1, 96, 112), (2, 96, 112), (2, 4, 96, 112), (1, 2, 3, 96, 112)):
        said = refusal(shape)
        assert "save an array of shape (N, 3, 96, 112)" in said and "--input-size" not in said, said
    # another size, either layout: one fix (before: channels-first was told only that `bake --input-size` re-bakes,
    # channels-last to "re-bake", neither that the export must be made again from the re-baked file and validated against it)
    fix = ("resize it to 96x112 (a TVConv network runs only at the input size it was baked for), or re-bake the original checkpoint "
           "for 64x80 (tvexport bake --input-size 64x80), export that again and validate the new export against it")
    assert refusal((2, 3, 64, 80)).endswith(f"; it is 64x80, not 96x112: {fix}")
    assert refusal((3, 64, 80)).endswith(f"; it is 64x80, not 96x112: {fix}")
    # channels-last and of another size (before: only "save an array of shape (N, 3, 96, 112)", nothing on the layout)
    assert refusal((2, 64, 80, 3)).endswith(f"; it is channels-last (N, H, W, 3) and 64x80, not 96x112: transpose it (x.transpose(0, 3, 1, 2)) and {fix}")
    assert "channels-last (H, W, 3) and 64x80" in refusal((64, 80, 3)) and "x.transpose(2, 0, 1)" in refusal((64, 80, 3))
