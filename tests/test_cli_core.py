"""``tvexport inspect`` and ``tvexport bake`` end to end (in-process)."""

from __future__ import annotations

import builtins
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from conftest import make_model, split_importtime, write_checkpoint
from tvexport.errors import TvexportError
from tvexport.layers import BakedTVConv


def test_inspect_table_and_json(cli, face_ckpt: Path) -> None:
    r = cli("inspect", face_ckpt)
    assert r.exit_code == 0, r.stderr
    assert "face_mobilenetv2_x0_1" in r.stdout and "17 TV layers" in r.stdout
    assert "features.2.conv.1.0" in r.stdout and "head.weight 512x10" in r.stdout
    r = cli("inspect", face_ckpt, "--json")
    data = json.loads(r.stdout)
    assert data["format"] == "lightning" and data["arch"] == "face_mobilenetv2_x0_1"
    assert len(data["tv_layers"]) == 17 and sum(layer["stride"] == 2 for layer in data["tv_layers"]) == 4
    first = data["tv_layers"][0]
    assert (first["channels"], first["k"], first["h"], first["w"]) == (8, 3, 96, 96)
    assert data["baked_params"] == 4_084_992 and data["baked_bytes"] == 4 * 4_084_992
    assert data["generator_params"] > 0 and data["total_params"] > data["generator_params"]
    assert first["flops"] == 2 * 8 * 9 * 96 * 96


def test_summary_flops_hand_counted(tmp_path: Path) -> None:
    """One TV layer (C 4, k 3, 48x48 output) of the tiny network, counted by hand: the TV op is
    2 * C*k*k*h*w plus C*h*w bias adds (a bias map, or a folded BatchNorm's shift, added at
    every position); the generators are their 3x3 convs, 2 * in * out * 9 per position (posi 4
    -> 8 -> 8 -> 36 kernels, 4 -> 8 -> 8 -> 4 bias map)."""
    from tinynet import tiny_tvnet
    from tvexport.bake import bake_model
    from tvexport.checkpoint import Checkpoint
    from tvexport.summary import summarize_model

    path = tmp_path / "t.pt"
    path.touch()
    c, hw = 4, 48 * 48
    tv = 2 * c * 9 * hw
    generator = 2 * 9 * hw * ((4 * 8 + 8 * 8 + 8 * 36) + (4 * 8 + 8 * 8 + 8 * 4))
    for bias, fold_bn in ((True, None), (False, None), (False, True), (False, False)):
        model = tiny_tvnet(k=3, stride=1, bias=bias)
        if fold_bn is not None:
            model = bake_model(model, fold_bn=fold_bn, verify=False).model
        (layer,) = summarize_model(model, Checkpoint(path, "baked" if fold_bn is not None else "state_dict", model.state_dict())).tv_layers
        assert (layer.channels, layer.k, layer.h * layer.w) == (c, 3, hw)
        with_bias = bias or bool(fold_bn)
        assert layer.bias == ("map" if bias else "channel" if fold_bn else "none")
        assert layer.flops == tv + (c * hw if with_bias else 0), (bias, fold_bn)
        assert layer.generator_flops == (0 if fold_bn is not None else generator if bias else 2 * 9 * hw * (4 * 8 + 8 * 8 + 8 * 36))


def test_bake_default_output_and_force(cli, face_ckpt: Path) -> None:
    r = cli("bake", face_ckpt)
    out = face_ckpt.with_name("face.baked.pt")
    assert r.exit_code == 0, r.stderr
    assert out.exists() and "wrote" in r.stdout and "network" in r.stdout
    assert "dropped training-only keys: head.weight 512x10" in r.stdout  # the Lightning training head
    again = cli("bake", face_ckpt)
    assert again.exit_code == 2 and "already exists" in again.stderr and "--force" in again.stderr
    assert cli("bake", face_ckpt, "--force").exit_code == 0
    inspected = json.loads(cli("inspect", out, "--json").stdout)
    assert inspected["format"] == "baked" and inspected["generator_params"] == 0
    # what the checkpoint would deploy as is what the baked file holds (BN folding removes a few)
    source = json.loads(cli("inspect", face_ckpt, "--json").stdout)
    assert inspected["deployable_params"] == inspected["total_params"]
    assert 0 <= source["deployable_params"] - inspected["deployable_params"] < 0.01 * source["deployable_params"]


def test_dropped_scalar_is_named_without_a_trailing_space(cli, tmp_path: Path) -> None:
    """An SWA state dict's 0-d ``n_averaged`` is dropped; inspect and bake name it as a scalar
    (the shape join gave "n_averaged " with a trailing space)."""
    model = make_model()
    src = tmp_path / "swa.pt"
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()} | {"n_averaged": torch.tensor(3)}, src)
    for argv in (["inspect", src], ["bake", src, "--no-verify", "-o", tmp_path / "swa.baked.pt"]):
        r = cli(*argv)
        assert r.exit_code == 0, r.stderr
        (note,) = [line for line in r.stdout.splitlines() if "dropped training-only keys" in line]
        assert note == "note: dropped training-only keys: n_averaged scalar", repr(note)


def test_output_may_not_be_the_source(cli, face_ckpt: Path) -> None:
    """Before: `bake CKPT -o CKPT --force` replaced the checkpoint by its baked file."""
    before = face_ckpt.read_bytes()
    for command in (["bake"], ["export", "--no-validate"]):
        r = cli(*command, face_ckpt, "-o", face_ckpt, "--force")
        assert r.exit_code == 2 and "is the input file" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert face_ckpt.read_bytes() == before


def test_output_path_may_not_be_a_hard_link_to_the_source(tmp_path: Path) -> None:
    """Before: the source was compared by resolved path, which a hard link to it passes."""
    from tvexport._io import check_output_path

    src = tmp_path / "m.pt"
    src.write_bytes(b"checkpoint")
    (tmp_path / "hard.pt").hardlink_to(src)
    with pytest.raises(TvexportError, match="is the input file"):
        check_output_path(tmp_path / "hard.pt", force=True, source=src)
    assert check_output_path(tmp_path / "other.pt", force=True, source=src) == tmp_path / "other.pt"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_input_that_is_not_a_regular_file_is_not_called_empty(tmp_path: Path) -> None:
    """Before: a pipe or a device (0 bytes to stat, whatever it holds) was "empty (0 bytes)"; it is
    refused by what it is, before anything opens it (a pipe with no writer would block)."""
    from tvexport._io import check_input_file
    from tvexport.checkpoint import read_checkpoint

    fifo = tmp_path / "pipe.ckpt"
    os.mkfifo(fifo)
    for path in (fifo, Path(os.devnull)):
        with pytest.raises(TvexportError) as err:
            read_checkpoint(path)
        assert str(err.value) == f"{path} is not a regular file (a pipe, socket or device?); copy what it holds into a file and give that path"
        with pytest.raises(TvexportError, match="is not a regular file"):
            check_input_file(path, what="an ONNX model", dir_hint="-", empty_hint="-")


def test_output_with_a_trailing_slash_is_refused(cli, tmp_path: Path, face_ckpt: Path) -> None:
    """Before: ``-o dir.onnx/`` (no such directory) silently wrote a file named dir.onnx: the slash
    says a directory was meant. Refused in one line, before any work, by the CLI and the API."""
    from tvexport import bake_checkpoint, export_checkpoint

    for args, name in ((["export"], "dir.onnx/"), (["bake"], "dir.baked.pt/")):
        out = f"{tmp_path / name.rstrip('/')}/"
        r = cli(*args, face_ckpt, "-o", out)
        assert r.exit_code == 2 and r.stderr.startswith(f"error: output {out} ends with a slash, which names a directory, but the output is a file; "), r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    for call in (export_checkpoint, bake_checkpoint):
        with pytest.raises(TvexportError, match="ends with a slash"):
            call(face_ckpt, f"{tmp_path}/api.onnx/")
    assert sorted(p.name for p in tmp_path.iterdir()) == [face_ckpt.name]
    r = cli("export", face_ckpt, "-o", f"{tmp_path}/")  # an existing directory: -o without the slash would be refused too
    assert r.exit_code == 2 and r.stderr.endswith("; give a file inside that directory\n"), r.stderr


def _deny_reading(monkeypatch: pytest.MonkeyPatch, *paths: Path) -> None:
    """``os.access`` says ``paths`` are unreadable (as for a non-root user on a chmod 000 file; root's override makes the real thing pass)."""
    denied, real = {str(p) for p in paths}, os.access

    def access(path: Any, mode: int, *args: Any, **kwargs: Any) -> bool:
        return False if mode & os.R_OK and str(path) in denied else real(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)


def test_unreadable_input_is_one_error_line(cli, tmp_path: Path, face_ckpt: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: the CLI printed typer's usage error ("Invalid value for 'CHECKPOINT': path ... is not
    readable"), and the API raised a raw PermissionError (exit 3 as an internal error). Now every
    input is refused by tvexport's own check: one line, exit 2, saying how to fix it."""
    from tvexport import export_checkpoint, inspect_checkpoint, validate_artifact

    model, npy = tmp_path / "m.onnx", tmp_path / "x.npy"
    model.write_text("not read")
    npy.write_bytes(b"\x93NUMPY")
    _deny_reading(monkeypatch, face_ckpt, model, npy)
    expected = "is not readable (permission denied); make it readable (chmod u+r) or copy it somewhere you can read it"
    for args, path in [
        (["export", face_ckpt, "-o", tmp_path / "x.onnx"], face_ckpt),
        (["bake", face_ckpt, "-o", tmp_path / "x.baked.pt"], face_ckpt),
        (["inspect", face_ckpt], face_ckpt),
        (["validate", model, "--against", tmp_path / "other.ckpt"], model),
        (["validate", tmp_path / "ok.onnx", "--against", face_ckpt], face_ckpt),
        (["validate", tmp_path / "ok.onnx", "--against", face_ckpt, "--input", npy], npy),
        (["bench", "face_mobilenetv2_x0_1", "--baseline", face_ckpt, "-b", "torch-baked"], face_ckpt),
    ]:
        (tmp_path / "ok.onnx").write_text("not read either")
        r = cli(*args)
        assert r.exit_code == 2 and r.stderr == f"error: {path} {expected}\n", (args, r.stderr)
    r = cli("build", model)  # the TensorRT check comes first here; only typer's usage error is gone
    assert r.exit_code == 2 and r.stderr.startswith("error: ") and "Usage" not in r.stderr
    for call in (lambda: export_checkpoint(face_ckpt, tmp_path / "y.onnx"), lambda: inspect_checkpoint(face_ckpt),
                 lambda: validate_artifact(model, face_ckpt), lambda: validate_artifact(tmp_path / "ok.onnx", face_ckpt)):
        with pytest.raises(TvexportError, match="is not readable"):
            call()
    assert not (tmp_path / "x.onnx").exists() and not (tmp_path / "y.onnx").exists()


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX permissions")
def test_unreadable_input_for_real(tmp_path: Path, face_ckpt: Path) -> None:
    """The same with a real chmod 000 file: as root, run with root's override dropped (setpriv)."""
    import shutil

    face_ckpt.chmod(0)
    command = [sys.executable, "-m", "tvexport", "inspect", str(face_ckpt)]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("root without setpriv: cannot drop the read override")
        caps = "-dac_override,-dac_read_search"
        drop = ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}"]
        if subprocess.run([*drop, "true"], capture_output=True).returncode != 0:  # e.g. a container without CAP_SETPCAP
            pytest.skip("setpriv cannot drop root's read override here")
        command = [*drop, *command]
    r = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}, timeout=300)
    assert r.returncode == 2 and r.stderr.startswith(f"error: {face_ckpt} is not readable (permission denied); "), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("command", [
    ["bake"], ["export"], ["export", "--format", "aoti"], ["export", "--tv-op", "plugin"], ["build"], ["extension", "build", "openvino"],
])
def test_output_dash_is_refused_before_any_work(cli, tmp_path: Path, face_ckpt: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]) -> None:
    """Before: `-o -` wrote the artefact to a file named '-' (extension build: 'create directory - first')."""
    import tvexport.openvino._build as ov_build
    import tvexport.trt.build as trt_build
    from tvexport.export import _common

    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("work started before -o - was refused")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(importlib.import_module("tvexport.bake"), "bake_model", no_work)
    monkeypatch.setattr(_common, "load_source", no_work)
    monkeypatch.setattr(trt_build, "require_tensorrt", lambda what: object())  # as if TensorRT were installed
    monkeypatch.setattr(trt_build, "require_cuda", no_work)
    monkeypatch.setattr(ov_build, "_requirements", no_work)
    source = [] if command[0] == "extension" else [face_ckpt]
    r = cli(*command, *source, "-o", "-")
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith("error: -o -: the output is a ") and "cannot go to stdout" in lines[0] and "give a path" in lines[0]
    assert not (tmp_path / "-").exists() and not (tmp_path / "-.json").exists()


def test_extension_build_to_an_empty_name_is_refused_before_any_work(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: `extension build openvino -o ""` (an unset variable) built into the current directory:
    typer read "" as Path(".")."""
    import tvexport.openvino._build as ov_build
    from tvexport.openvino import build_extension

    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("work started before -o '' was refused")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(ov_build, "_requirements", no_work)
    r = cli("extension", "build", "openvino", "-o", "")
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0] == "error: output directory '' is an empty name (an unset variable?); give a directory for the library with -o (. for the current one)", lines[0]
    with pytest.raises(TvexportError, match="empty name"):
        build_extension(output_dir="")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["bake"], ["export"], ["export", "--format", "aoti"]])
def test_an_empty_output_name_is_refused_before_any_work(cli, face_ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]) -> None:
    """Before: `-o ""` (an unset variable) was refused as `output . is a directory; give a file name`,
    which names a directory the user never typed and says nothing of an empty name. One check in
    _io.output_file covers bake, export and trt build (which cannot run here: TensorRT comes first)."""
    from tvexport._io import output_file
    from tvexport.export import _common

    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("work started before -o '' was refused")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(importlib.import_module("tvexport.bake"), "bake_model", no_work)
    monkeypatch.setattr(_common, "load_source", no_work)
    r = cli(*command, face_ckpt, "-o", "")
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == 2 and len(lines) == 1 and "Traceback" not in r.stderr + r.stdout, r.stderr
    assert lines[0] == "error: output '' is an empty name (an unset variable?); give a file name with -o, or leave -o out for the default", lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == [face_ckpt.name]
    with pytest.raises(TvexportError, match=r"^output '' is an empty name"):
        output_file("")  # trt build's -o goes through it too


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="no /proc here")
@pytest.mark.parametrize(("command", "output"), [
    (["bake"], "/proc/a.baked.pt"), (["export"], "/proc/a.onnx"), (["export", "--format", "aoti"], "/proc/a.pt2"),
])
def test_output_where_nothing_can_be_created_is_refused_before_any_work(cli, face_ckpt: Path, monkeypatch: pytest.MonkeyPatch, command: list[str], output: str) -> None:
    """Before: the early check asked os.access, which root always passes, so as root `-o /proc/a.onnx`
    ran the whole bake and export before "cannot write in /proc". os.access is made to pass here
    (as for root) and the directory is probed by creating a file there."""
    import tvexport._io
    from tvexport.export import _common

    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("work started before the output was refused")

    monkeypatch.setattr(tvexport._io.os, "access", lambda path, mode: True)
    monkeypatch.setattr(importlib.import_module("tvexport.bake"), "bake_model", no_work)
    monkeypatch.setattr(_common, "load_source", no_work)
    r = cli(*command, face_ckpt, "-o", output)
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == 2 and len(lines) == 1 and "Traceback" not in r.stderr + r.stdout, r.stderr
    assert lines[0].startswith("error: cannot write in /proc (") and lines[0].endswith("; choose another output path"), lines[0]


@pytest.mark.parametrize("command", [["bake"], ["export"], ["export", "--format", "aoti"]])
def test_a_dangling_symlink_as_output_counts_as_existing(cli, face_ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]) -> None:
    """Before: `-o link` where link points at nothing passed the "already exists" check (exists()
    follows links) and the written file replaced the link without --force; then it was refused as
    "already exists", which sent the user looking for a file that is not there: the line (the one
    shared check, tvexport._io) says it is a link to nothing."""
    from tvexport._io import check_output_path
    from tvexport.export import _common

    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("work started before the existing output was refused")

    monkeypatch.setattr(importlib.import_module("tvexport.bake"), "bake_model", no_work)
    monkeypatch.setattr(_common, "load_source", no_work)
    link = tmp_path / {"bake": "a.baked.pt", "export": "a.onnx"}[command[0]]
    if "aoti" in command:
        link = link.with_suffix(".pt2")
    link.symlink_to(tmp_path / "gone" / link.name)
    r = cli(*command, face_ckpt, "-o", link)
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    target = tmp_path / "gone" / link.name
    assert lines[0] == f"error: output {link} is a symlink to {target}, which does not exist; remove the link, or pass --force to replace it", lines[0]
    assert link.is_symlink() and not link.exists()
    with pytest.raises(TvexportError, match="is a symlink to .*, which does not exist") as info:
        check_output_path(link, force=False)
    assert "already exists" not in str(info.value)
    assert check_output_path(link, force=True) == link


def test_output_directory_probe_leaves_nothing_behind(tmp_path: Path) -> None:
    from tvexport._io import check_output_dir, check_output_path

    check_output_dir(tmp_path)
    check_output_path(tmp_path / "a.onnx", force=False)
    assert list(tmp_path.iterdir()) == []


def test_atomic_writer_makes_one_temporary_file_not_a_probe_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: atomic_output ran the early check's directory probe and then made its own temporary
    file in the same directory (a create and an unlink more per written file, metadata round trips
    on NFS/SMB); its own mkstemp is the probe. The early check still probes."""
    import tempfile

    from tvexport._io import check_output_path, write_text_atomic

    made: list[str] = []
    real = tempfile.mkstemp

    def counting(*args: Any, **kwargs: Any) -> tuple[int, str]:
        fd, name = real(*args, **kwargs)
        made.append(Path(name).name)
        return fd, name

    monkeypatch.setattr(tempfile, "mkstemp", counting)
    write_text_atomic(tmp_path / "r.json", "{}")
    assert len(made) == 1 and made[0].startswith(".r.json."), made
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]
    check_output_path(tmp_path / "a.onnx", force=False)
    assert len(made) == 2 and made[1].startswith(".tvexport-probe-"), made


@pytest.mark.parametrize("fails", ["close", "chmod"])
def test_atomic_writer_removes_its_temporary_file_when_preparing_it_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fails: str) -> None:
    """Before: the temporary file's descriptor was closed (and its mode set) outside the try that
    removes it, so an OSError there left ``.r.json.*.tmp`` behind and escaped as a raw OSError."""
    from tvexport import _io

    real = getattr(os, fails)

    def failing(first: Any, *args: Any) -> None:
        real(first, *args)  # the descriptor is closed, the mode set: then the error
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(_io.os, fails, failing)
    with pytest.raises(TvexportError, match=r"^could not write .*r\.json \(Input/output error\)") as info:
        _io.write_text_atomic(tmp_path / "r.json", "{}")
    assert "\n" not in str(info.value)
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [
    ["inspect", "-"],
    ["bake", "-", "-o", "out.baked.pt"],
    ["export", "-", "-o", "out.onnx"],
    ["validate", "-", "--against", "face.ckpt"],
    ["validate", "out.onnx", "--against", "-"],
    ["validate", "out.onnx", "--against", "face.ckpt", "--input", "-"],
    ["bench", "-"],
    ["bench", "face.ckpt", "--baseline", "-"],
    ["build", "-", "-o", "out.engine"],
], ids=lambda c: " ".join(c))
def test_input_dash_is_refused_before_any_work(cli, tmp_path: Path, face_ckpt: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]) -> None:
    """Before: an input '-' was read as a file named '-' (here a valid checkpoint: `inspect -` showed it) or reported
    missing; stdin is not read anywhere, so '-' is refused like `-o -`, in one line."""
    import tvexport.profile.subject as subject
    import tvexport.trt.build as trt_build

    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("work started before the input - was refused")

    monkeypatch.chdir(tmp_path)
    (tmp_path / "-").write_bytes(face_ckpt.read_bytes())
    monkeypatch.setattr(importlib.import_module("tvexport.bake"), "bake_model", no_work)
    monkeypatch.setattr(subject, "_load_tv", no_work)
    monkeypatch.setattr(trt_build, "require_tensorrt", lambda what: object())  # as if TensorRT were installed
    monkeypatch.setattr(trt_build, "require_cuda", no_work)
    files = sorted(tmp_path.iterdir())
    r = cli(*command)
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith("error: ") and lines[0].endswith(" -: reading from stdin is not supported; give a path instead of -"), lines[0]
    assert sorted(tmp_path.iterdir()) == files


def test_bake_options(cli, tmp_path: Path, face_ckpt: Path) -> None:
    out = tmp_path / "half.pt"
    r = cli("bake", face_ckpt, "-o", out, "--dtype", "float16", "--no-fold-bn", "--json")
    assert r.exit_code == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["dtype"] == "float16" and report["folded_batchnorms"] == 0 and report["report"]["ok"]
    assert report["report"]["tolerance"] == {"rtol": 5e-3, "atol": 0.0, "factor": 2.0}
    assert report["report"]["baseline"] == "unbaked float32 (float16 kernels)" and report["report"]["float64_bake_max_rel"] < 1e-12
    sd = torch.load(out, weights_only=True)["state_dict"]
    assert sd["features.1.conv.0.0.weight"].dtype == torch.float16
    assert "features.1.conv.0.1.running_mean" in sd  # BatchNorm kept



def test_bake_refuses_verification_options_without_verification(cli, tmp_path: Path, face_ckpt: Path) -> None:
    """Before: `--no-verify --batch 4` was accepted and the batch silently ignored."""
    out = tmp_path / "b.baked.pt"
    for options, given in ((["--batch", "4"], "--batch"), (["--rtol", "1e-3"], "--rtol/--atol")):
        r = cli("bake", face_ckpt, "-o", out, "--no-verify", *options)
        lines = r.stderr.strip().splitlines()
        assert r.exit_code == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
        assert lines[0].startswith(f"error: {given}") and "does not apply with --no-verify" in lines[0].replace("do not", "does not")
    assert not out.exists()
    r = cli("bake", face_ckpt, "-o", out, "--batch", "3", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["report"]["batch"] == 3, r.stderr


def test_bake_refusals_name_the_command_line_options(cli, tmp_path: Path, face_ckpt: Path) -> None:
    """Before: `bake --kernel-dtype int8 --dtype float16` said "kernel_dtype int8 and dtype
    torch.float16 disagree; give kernel_dtype only", and `bake --resample kernels` without
    --input-size "resample and interpolation choose how ..." after reading the checkpoint: Python
    keywords shown to a command-line user (tvexport.errors.TvexportError says how options are named)."""
    out = tmp_path / "b.baked.pt"
    cases = (
        (["--kernel-dtype", "int8", "--dtype", "float16"],
         "error: --kernel-dtype int8 and --dtype float16 disagree; give --kernel-dtype only (--dtype is its older name)"),
        (["--resample", "kernels"],
         "error: --resample and --interpolation choose how to re-bake for another input size, and no --input-size was given; add --input-size HxW, or drop them"),
        (["--interpolation", "bilinear"],
         "error: --resample and --interpolation choose how to re-bake for another input size, and no --input-size was given; add --input-size HxW, or drop them"),
    )
    for options, said in cases:
        r = cli("bake", face_ckpt, "-o", out, *options)
        assert r.exit_code == 2 and r.stderr.strip().splitlines() == [said], r.stderr  # no file prefix: refused before the checkpoint is read
    assert not out.exists()
    from tvexport.bake import bake_checkpoint, bake_model

    api_cases = (  # the API: refused before the (missing) file is read
        ({"kernel_dtype": "int8", "dtype": torch.float16}, "^--kernel-dtype int8 and --dtype float16 disagree"),
        ({"resample": "kernels"}, "^--resample and --interpolation choose how"),
    )
    for options, match in api_cases:
        with pytest.raises(TvexportError, match=match):
            bake_checkpoint(tmp_path / "missing.ckpt", out, **options)  # type: ignore[arg-type]
        with pytest.raises(TvexportError, match=match):
            bake_model(make_model(), verify=False, **options)  # type: ignore[arg-type]


def test_bake_mismatch_exits_1_and_writes_nothing(cli, tmp_path: Path, face_ckpt: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = BakedTVConv.from_tvconv.__func__

    def broken(cls, layer, **kw):  # type: ignore[no-untyped-def]
        baked = original(cls, layer, **kw)
        baked.weight.mul_(1.01)
        return baked

    monkeypatch.setattr(BakedTVConv, "from_tvconv", classmethod(broken))
    out = tmp_path / "bad.baked.pt"
    r = cli("bake", face_ckpt, "-o", out)
    assert r.exit_code == 1
    assert "FAIL" in r.stdout and r.stderr.strip().startswith(f"error: {face_ckpt}: baked model differs")
    assert "vs float64 (float32 original" in r.stderr and "--rtol" in r.stderr and "--no-fold-bn" not in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["face.ckpt"]  # no output, no temp file
    r = cli("bake", face_ckpt, "-o", out, "--json")  # --json still reports, as JSON on stdout
    assert r.exit_code == 1 and not out.exists()
    data = json.loads(r.stdout)
    assert data["ok"] is False and data["output"] is None and not data["report"]["ok"]


def test_bake_refuses_baselines_and_baked_files(cli, tmp_path: Path) -> None:
    dw = write_checkpoint(make_model(atom="dwconv"), tmp_path / "dw.ckpt", "lightning")
    r = cli("bake", dw)
    assert r.exit_code == 2 and "nothing to bake" in r.stderr
    tv = write_checkpoint(make_model(), tmp_path / "tv.ckpt", "lightning")
    assert cli("bake", tv).exit_code == 0
    r = cli("bake", tmp_path / "tv.baked.pt")
    assert r.exit_code == 2 and "already baked" in r.stderr


def test_bake_nonfinite(cli, tmp_path: Path) -> None:
    model = make_model()
    with torch.no_grad():
        model.features[1].conv[0][0].posi_map[0, 0, 0, 0] = float("nan")
    src = write_checkpoint(model, tmp_path / "nan.ckpt", "lightning")
    r = cli("bake", src)
    assert r.exit_code == 2 and "1 weight tensor holds NaN/Inf" in r.stderr and str(src) in r.stderr and "pass --allow-nonfinite" in r.stderr
    assert not (tmp_path / "nan.baked.pt").exists()
    # commands without the flag name the file and point to `tvexport bake --allow-nonfinite`
    for argv in (["export", src, "-o", tmp_path / "m.onnx"], ["bench", src, "-b", "torch-baked", "--min-iters", "1", "--min-seconds", "0"]):
        r = cli(*argv)
        assert r.exit_code == 2 and str(src) in r.stderr and "NaN/Inf" in r.stderr, r.stderr
        assert "pass --allow-nonfinite" not in r.stderr and "tvexport bake --allow-nonfinite" in r.stderr


def test_bake_table_and_json_report_the_float64_truth(cli, tmp_path: Path, face_ckpt: Path) -> None:
    """Both numbers per row (baked and float32 original, vs float64), the allowance, the float64
    bake's own error; --rtol/--atol set the rule's floors."""
    r = cli("bake", face_ckpt, "-o", tmp_path / "a.baked.pt")
    assert r.exit_code == 0, r.stderr
    assert "baked vs unbaked float64" in r.stdout and "pass: 2 x float32 + 1e-05 rel" in r.stdout
    for column in ("float64 bake", "unbaked float32 max rel", "allowed rel"):
        assert column in r.stdout
    r = cli("bake", face_ckpt, "-o", tmp_path / "b.baked.pt", "--rtol", "2e-5", "--atol", "1e-9", "--json")
    report = json.loads(r.stdout)["report"]
    assert report["tolerance"] == {"rtol": 2e-5, "atol": 1e-9, "factor": 2.0}
    net = report["network"]
    assert net["max_rel"] < 1e-5 and 0 < net["baseline_max_rel"] < 1e-5 and net["float64_bake_max_rel"] < 1e-12
    assert net["allowed"] == pytest.approx(2 * net["baseline_max_abs"] + 1e-9 + 2e-5 * net["ref_max"])
    r = cli("bake", face_ckpt, "-o", tmp_path / "c.baked.pt", "--rtol", "-1")
    assert r.exit_code == 2 and "--rtol" in r.stderr and "not a tolerance" in r.stderr and not (tmp_path / "c.baked.pt").exists()


def test_inspect_says_what_the_bias_is(cli, tmp_path: Path) -> None:
    """A TV bias map, a folded BatchNorm's per-channel shift, or none."""
    from tvexport.models import TVSettings

    src = write_checkpoint(make_model(tv=TVSettings(bias=True, inter_chans=8, inter_layers=1)), tmp_path / "b.ckpt", "lightning")
    plain = write_checkpoint(make_model(), tmp_path / "p.ckpt", "lightning")
    cases = [
        (src, [], "map"),  # unbaked, with a TV bias generator
        (plain, [], "none"),
        (tmp_path / "map.baked.pt", [src, "-o", tmp_path / "map.baked.pt"], "map"),  # TV bias map (+ BN folded in)
        (tmp_path / "chan.baked.pt", [plain, "-o", tmp_path / "chan.baked.pt"], "channel"),  # BN shift only
        (tmp_path / "none.baked.pt", [plain, "-o", tmp_path / "none.baked.pt", "--no-fold-bn"], "none"),
    ]
    for path, bake_args, kind in cases:
        if bake_args:
            assert cli("bake", *bake_args).exit_code == 0
        data = json.loads(cli("inspect", path, "--json").stdout)
        assert {layer["bias"] for layer in data["tv_layers"]} == {kind}, path
        row = next(line for line in cli("inspect", path).stdout.splitlines() if "features.2.conv.1.0" in line)
        assert f" {kind} " in row, row


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="caps the address space with RLIMIT_AS")
@pytest.mark.parametrize(("command", "options", "expected"), [
    ("bake", ["--input-size", "100000x100000"], "bake {src} at input size 100000x100000 with a verification batch of 2"),
    ("bake", ["--batch", "1000000"], "bake {src} at input size 96x96 with a verification batch of 1000000"),
    ("export", ["--batch", "1000000000", "--no-simplify"], "export {src} with a batch of 1000000000"),
    ("bench", ["--batch", "1000000000", "-b", "torch-baked"], "bench torch-baked at batch 1000000000"),
])
def test_sizes_too_large_for_memory_are_a_user_error(tmp_path: Path, face_ckpt: Path, command: str, options: list[str], expected: str) -> None:
    """Before: `bake --input-size 100000x100000`, `bake --batch 1000000`, `export --batch 1000000000`
    and `bench --batch 1000000000` died as "internal error: RuntimeError ... can't allocate memory" (exit 3, "report it"); the user
    chose the size, so say so in one line, exit 2, and write nothing."""
    import resource

    def cap() -> None:  # 8 GB of address space: the 100+ GB request fails at once, whatever the machine has
        resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))

    out = tmp_path / {"bake": "huge.baked.pt", "export": "huge.onnx", "bench": "huge.json"}[command]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-m", "tvexport", command, str(face_ckpt), "--json" if command == "bench" else "-o", str(out), *options],
                       capture_output=True, text=True, env=env, preexec_fn=cap, timeout=300)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr + r.stdout, r.stderr
    assert lines[0].startswith("error: not enough memory to " + expected.format(src=face_ckpt)), lines[0]
    assert "GB was refused" in lines[0] and "smaller --" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["face.ckpt"]  # no output, no temp file


def no_onnx_import(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test at any ``import onnx`` / ``import onnxruntime`` statement (a second's work, even
    where another test imported them already: the statement still runs through ``__import__``).
    ``importlib.import_module`` bypasses it: ``test_export_size_refusals_import_neither_inductor_nor_onnx``
    checks a fresh process's every import instead."""
    real = builtins.__import__

    def guarded(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
        if level == 0 and name.split(".")[0] in ("onnx", "onnxruntime"):
            pytest.fail(f"{name} was imported before the refusal")
        return real(name, globals, locals, fromlist, level)

    monkeypatch.setattr(builtins, "__import__", guarded)


@pytest.mark.parametrize(("command", "options", "expected"), [
    ("bake", {"input_size": (100000, 100000)}, "bake {src} at input size 100000x100000 with a verification batch of 2 (an input of 240.0 GB"),
    ("bake", {"batch": 1000000}, "bake {src} at input size 96x96 with a verification batch of 1000000 (an input of 110.6 GB"),
    ("export", {"batch": 1000000000, "simplify": False}, "export {src} with a batch of 1000000000 (an input of 110592.0 GB"),
    ("bench", {"batches": [1, 1000000000], "backends": ["torch-baked"]}, "bench torch-baked at batch 1000000000 (an input of 110592.0 GB"),
])
def test_sizes_too_large_for_memory_are_refused_before_any_work(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, face_ckpt: Path,
                                                                command: str, options: dict[str, Any], expected: str) -> None:
    """Before: the API built, baked and verified the whole checkpoint (bench: baked it and prepared the
    backend) at its usual size, and only the allocation of the oversized input failed, seconds later.
    An input that alone exceeds what the process may allocate is refused before that work."""
    import tvexport
    from tvexport import errors
    from tvexport.profile import load_subject, run_bench

    subject = load_subject(face_ckpt) if command == "bench" else None  # builds the networks: run_bench gets the batches
    monkeypatch.setattr(errors, "memory_limit", lambda: 8 << 30, raising=False)  # whatever the machine has

    def never(*args: Any, **kwargs: Any) -> None:
        pytest.fail("the expensive work ran before the oversized size was refused")

    for module, name in [("tvexport.bake", "build_from_state_dict"), ("tvexport.bake", "bake_model"), ("tvexport.export._common", "build_from_state_dict"),
                         ("tvexport.export._common", "bake_model"), ("tvexport.profile.subject", "bake_model")]:
        monkeypatch.setattr(importlib.import_module(module), name, never)  # tvexport.bake is also a function: by module, not by dotted name
    no_onnx_import(monkeypatch)
    with pytest.raises(TvexportError) as err:
        if command == "bake":
            tvexport.bake_checkpoint(face_ckpt, tmp_path / "huge.baked.pt", **options)
        elif command == "export":
            tvexport.export_checkpoint(face_ckpt, tmp_path / "huge.onnx", **options)
        else:
            assert subject is not None
            run_bench(subject, **options)  # torch-baked would bake the TV network first
    assert str(err.value).startswith("not enough memory to " + expected.format(src=face_ckpt)), err.value
    assert "GB was refused: this process can allocate at most 8.6 GB" in str(err.value) and "smaller --" in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["face.ckpt"]  # no output, no temp file


@pytest.mark.parametrize(("args", "expected"), [
    (["export", "--batch", "1000000000", "--no-simplify"], "export {src} with a batch of 1000000000 (an input of 110592.0 GB"),
    (["export", "--format", "aoti", "--batch", "1000000000"], "export {src} with a batch of 1000000000 (an input of 110592.0 GB"),
    (["bench", "--batch", "1,1000000000", "--backend", "torch-baked"], "bench torch-baked at batch 1000000000 (an input of 110592.0 GB"),
    (["bench", "--batch", "1000000000", "--dtype", "float16"], "bench the backends at batch 1000000000 (an input of 55296.0 GB"),
])
def test_cli_refuses_sizes_too_large_for_memory_before_onnx_or_the_networks(monkeypatch: pytest.MonkeyPatch, cli, face_ckpt: Path,
                                                                            args: list[str], expected: str) -> None:
    """Before: ``tvexport export --batch 1000000000`` imported onnx and onnxruntime to check its
    options (a second), ``tvexport bench`` built the TV network and its baselines (seconds), and only
    then refused the size; ``--format aoti`` imported Inductor's config (~2 s) to find the C++
    compiler first. Now the same line comes before that work (that no Inductor module is imported:
    ``test_export_size_refusals_import_neither_inductor_nor_onnx``, in a fresh process)."""
    from tvexport import errors

    monkeypatch.setattr(errors, "memory_limit", lambda: 8 << 30, raising=False)  # whatever the machine has

    def never(*_args: Any, **_kwargs: Any) -> None:
        pytest.fail("a network was built before the oversized size was refused")

    for module, name in [("tvexport.export._common", "build_from_state_dict"), ("tvexport.profile.subject", "build_from_state_dict"),
                         ("tvexport.profile.subject", "_random"), ("tvexport.profile.subject", "load_checkpoint")]:
        monkeypatch.setattr(importlib.import_module(module), name, never)
    if args[0] == "export":
        no_onnx_import(monkeypatch)
    r = cli(args[0], face_ckpt, *args[1:])
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.exit_code == 2 and len(lines) == 1, r
    assert lines[0].startswith("error: not enough memory to " + expected.format(src=face_ckpt)), lines[0]
    assert "this process can allocate at most 8.6 GB" in lines[0] and "smaller --" in lines[0]
    assert sorted(p.name for p in face_ckpt.parent.iterdir()) == ["face.ckpt"]  # no output, no temp file


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="caps the address space with RLIMIT_AS")
@pytest.mark.parametrize(("options", "compiler", "expected"), [
    (["--format", "aoti"], "found", "error: not enough memory to export {src} with a batch of 1000000000 (an input of 110592.0 GB"),
    (["--format", "aoti"], "missing", "error: AOTInductor needs a C++ compiler, and 'g++' was not found"),
    (["--no-simplify"], "found", "error: not enough memory to export {src} with a batch of 1000000000 (an input of 110592.0 GB"),
], ids=["aoti-found", "aoti-missing", "onnx"])
def test_export_size_refusals_import_neither_inductor_nor_onnx(tmp_path: Path, face_ckpt: Path, options: list[str], compiler: str,
                                                               expected: str) -> None:
    """``export --batch 1000000000`` (ONNX, or ``--format aoti`` with g++ on PATH, a stand-in, or
    none) in a fresh process: one line, exit 2, before any import of ``torch._inductor`` (its config:
    ~2 s) or onnx, by any route (``-X importtime`` lists them all; the in-process ``__import__`` guard
    misses ``importlib.import_module`` and torch's lazy submodules). Without a compiler, the
    compiler's line comes first, though the size is too large too: the compiler is known from the
    machine alone (``check_options``, before the checkpoint is opened), the size only from the
    file's architecture (its input shape), and every refusal that needs no file comes before those
    that read it; whoever installs g++ is then told about the batch."""
    import resource

    def cap() -> None:  # 8 GB of address space: the 100+ GB request fails at once, whatever the machine has
        resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))

    bin_dir = tmp_path / "bin"  # the whole PATH: g++ (a stand-in, never run) or no compiler at all
    bin_dir.mkdir()
    if compiler == "found":
        (bin_dir / "g++").write_text("#!/bin/sh\nexit 1\n")
        (bin_dir / "g++").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("CXX", "TORCH_INDUCTOR_INSTALL_GXX")}
    env |= {"PATH": str(bin_dir), "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")])}
    out = tmp_path / ("huge.pt2" if "aoti" in options else "huge.onnx")
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "tvexport", "export", str(face_ckpt), *options,
                        "--batch", "1000000000", "-o", str(out)],
                       capture_output=True, text=True, env=env, preexec_fn=cap, timeout=300)
    imported, lines = split_importtime(r.stderr)
    heavy = sorted(m for m in imported if m.split(".")[0] in ("onnx", "onnxruntime") or m.startswith("torch._inductor"))
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr + r.stdout, lines
    assert lines[0].startswith(expected.format(src=face_ckpt)) and ("install g++" in lines[0]) == (compiler == "missing"), lines[0]
    assert not heavy, f"{heavy[:5]} imported before the refusal (seconds): refuse first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin", "face.ckpt"]  # no output, no temp file


GiB = 1 << 30


def fake_cgroup(monkeypatch: pytest.MonkeyPatch, root: Path, *, cgroup: str, files: dict[str, str], ram: int = 64 * GiB, swap: int = 0) -> None:
    """Point tvexport.errors at a fake /proc/self/cgroup (``cgroup``), /sys/fs/cgroup (``files``:
    path under it -> text) and /proc/meminfo (``ram``, ``swap``) under ``root``, with no
    address-space limit (the runner's own ``ulimit -v`` must not decide the expected values)."""
    from tvexport import errors

    try:
        import resource
    except ImportError:  # no address-space limits here (Windows)
        pass
    else:
        monkeypatch.setattr(resource, "getrlimit", lambda which: (resource.RLIM_INFINITY, resource.RLIM_INFINITY))

    (root / "proc").mkdir(parents=True)
    (root / "proc" / "cgroup").write_text(cgroup)
    (root / "proc" / "meminfo").write_text(f"MemTotal:       {ram // 1024} kB\nMemFree:        1024 kB\nSwapTotal:      {swap // 1024} kB\n")
    for name, text in files.items():
        (root / "sys" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "sys" / name).write_text(text)
    (root / "sys").mkdir(exist_ok=True)
    for constant, path in [("_PROC_CGROUP", root / "proc" / "cgroup"), ("_CGROUP_MOUNT", root / "sys"), ("_MEMINFO", root / "proc" / "meminfo")]:
        monkeypatch.setattr(errors, constant, str(path), raising=False)


@pytest.mark.parametrize(("cgroup", "files", "swap", "expected"), [
    # cgroup v2: the process's own memory.max; "max" means no limit
    ("0::/user.slice/app\n", {"user.slice/app/memory.max": "2147483648\n", "user.slice/memory.max": "max\n"}, 0, 2 * GiB),
    # a parent's smaller limit applies to its children
    ("0::/user.slice/app\n", {"user.slice/app/memory.max": "max\n", "user.slice/memory.max": f"{GiB}\n"}, 0, GiB),
    # a container whose cgroup is the mount's root (its path in /proc/self/cgroup not under the mount)
    ("0::/docker/0123abcd\n", {"memory.max": f"{3 * GiB}\n"}, 0, 3 * GiB),
    # swap counts, as far as memory.swap.max and the machine's swap allow
    ("0::/app\n", {"app/memory.max": f"{2 * GiB}\n", "app/memory.swap.max": "max\n"}, 4 * GiB, 6 * GiB),
    ("0::/app\n", {"app/memory.max": f"{2 * GiB}\n", "app/memory.swap.max": f"{GiB}\n"}, 4 * GiB, 3 * GiB),
    # cgroup v1 (a hybrid host: the v2 hierarchy has no memory controller)
    ("4:memory:/docker/0123abcd\n1:cpu,cpuacct:/\n0::/\n", {"memory/docker/0123abcd/memory.limit_in_bytes": f"{3 * GiB}\n",
                                                                "memory/memory.limit_in_bytes": "9223372036854771712\n"}, 0, 3 * GiB),
    ("4:memory:/app\n", {"memory/app/memory.limit_in_bytes": f"{2 * GiB}\n", "memory/app/memory.memsw.limit_in_bytes": f"{3 * GiB}\n"}, 4 * GiB, 3 * GiB),
])
def test_memory_limit_counts_the_cgroup(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cgroup: str, files: dict[str, str], swap: int, expected: int) -> None:
    """Before: only ``ulimit -v`` and the machine's RAM plus swap counted: in a container whose
    cgroup allows less than the machine has, an input that cannot fit was not refused (the kernel
    then kills the process once the pages are touched)."""
    from tvexport.errors import memory_limit, refuse_oversized_input

    fake_cgroup(monkeypatch, tmp_path, cgroup=cgroup, files=files, swap=swap)
    assert memory_limit() == expected
    with pytest.raises(TvexportError, match=f"at most {expected / 1e9:.1f} GB"):
        refuse_oversized_input((expected // 4 + 1,), itemsize=4, what="run it", hint="use a smaller --batch")
    refuse_oversized_input((expected // 4,), itemsize=4, what="run it", hint="use a smaller --batch")  # fits: no refusal


@pytest.mark.parametrize(("cgroup", "files"), [
    (None, {"memory.max": f"{GiB}\n"}),  # no /proc/self/cgroup
    ("0::/app\n", {}),  # no memory.max (no memory controller there)
    ("0::/app\n", {"app/memory.max/x": "1\n"}),  # memory.max unreadable (a directory)
    ("0::/app\n", {"app/memory.max": "garbage\n"}),
    ("0::/app\n", {"app/memory.max": "max\n"}),
    ("4:memory:/app\n", {"memory/app/memory.limit_in_bytes": "9223372036854771712\n"}),  # v1's "no limit"
    ("not a cgroup line\n\n", {}),
])
def test_memory_limit_without_a_cgroup_limit_is_ram_plus_swap(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cgroup: str | None, files: dict[str, str]) -> None:
    from tvexport.errors import memory_limit

    fake_cgroup(monkeypatch, tmp_path, cgroup=cgroup or "", files=files, swap=GiB)
    if cgroup is None:
        (tmp_path / "proc" / "cgroup").unlink()
    assert memory_limit() == 65 * GiB


def test_memory_limit_reads_this_machine() -> None:
    """Whatever this machine's cgroups look like (v1, v2, hybrid, none): a number of bytes, never an
    exception (the refusal runs before every bake, export and bench)."""
    from tvexport.errors import memory_limit

    limit = memory_limit()
    assert limit is None or (isinstance(limit, int) and limit > 0)


def test_only_allocation_failures_count_as_out_of_memory() -> None:
    from tvexport.errors import is_out_of_memory

    assert is_out_of_memory(MemoryError())
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8 bytes."))
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA error: an illegal request"))  # by its type, whatever it says
    assert not is_out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))  # a bug stays an internal error
    assert not is_out_of_memory(ValueError("out of memory"))


def test_version_option_prints_the_version(cli) -> None:
    """Before: "No such option: --version" (exit 2), although tvexport.__version__ exists."""
    import tvexport

    r = cli("--version")
    assert r.exit_code == 0 and r.stdout == f"tvexport {tvexport.__version__}\n" and r.stderr == "", r


def test_extension_build_force_help_says_what_it_does(cli) -> None:
    """Before: the shared "Overwrite an existing output file."; without -o it rebuilds the cache entry."""
    r = cli("extension", "build", "--help")
    text = " ".join(r.stdout.split())
    assert r.exit_code == 0 and "Compile again even when the cached library is up to date" in text and "Overwrite an existing output file" not in text, r.stdout


@pytest.mark.parametrize(("command", "shown"), [
    (["extension", "build"], "-o, --output-dir DIR "), (["bake"], "-o, --output FILE "), (["export"], "-o, --output FILE "), (["build"], "-o, --output FILE "),
])
def test_output_option_help_names_what_it_takes(cli, command: list[str], shown: str) -> None:
    """Before: `-o, --output-dir <str>` and `-o, --output <str>`, typer's placeholder for a str option
    (-o is a str so that "" and a trailing slash reach the checks), which says less than a name."""
    r = cli(*command, "--help")
    assert r.exit_code == 0 and shown in r.stdout, r.stdout


@pytest.mark.parametrize("command", ["bake", "export"])
@pytest.mark.parametrize("source", [".", "./", "", "/"], ids=["dot", "dot-slash", "empty", "root"])
def test_a_directory_without_a_name_as_input_is_one_line(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str, source: str) -> None:
    """``tvexport bake .`` (or ``"$CKPT"`` with CKPT unset, which typer reads as ``.``): the default
    output is named after the input, and a directory such as ``.`` or ``/`` has no name to take.
    Before: ``internal error: ValueError: PosixPath('.') has an empty name``, exit 3."""
    monkeypatch.chdir(tmp_path)
    r = cli(command, source)
    shown = "/" if source == "/" else "."
    assert r.exit_code == 2, r.stderr
    assert r.stderr.strip() == f"error: {shown} is a directory, not a checkpoint file; give the checkpoint file inside it"
    assert not list(tmp_path.iterdir()), "nothing may be written"


@pytest.mark.parametrize("source", [".", "", "/"])
def test_api_bake_and_export_of_a_directory_without_a_name_raise_the_input_error(source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The API says what the CLI says (before: ValueError from pathlib)."""
    from tvexport import bake_checkpoint, export_checkpoint

    monkeypatch.chdir(tmp_path)
    for call in (bake_checkpoint, export_checkpoint):
        with pytest.raises(TvexportError, match=r"is a directory, not a checkpoint file"):
            call(source)
