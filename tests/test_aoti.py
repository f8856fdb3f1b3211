"""AOTInductor export (.pt2 package + JSON sidecar), its Python runner, and the C++ runner.

Packages are checked against the unbaked network in float64 (``accuracy.Reference``), by the same
rule as export validation: no worse than the unbaked float32 network.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import check_latency_line, make_model, write_checkpoint
from tinynet import tiny_tvnet
from tvexport import MismatchError, Reference, Tolerance, TvexportError, bake
from tvexport.export import load_runner, load_source
from tvexport.export import aoti
from tvexport.export.aoti import export_aoti, read_sidecar, sidecar_path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "aoti_runner"


def _inputs(batch: int, seed: int) -> np.ndarray:
    gen = np.random.default_rng(seed)
    return (gen.random((batch, 3, 96, 96), dtype=np.float32) * 2 - 1).astype(np.float32)


def _matches(got: np.ndarray, unbaked: torch.nn.Module, x: np.ndarray) -> bool:
    """``got`` is no worse than ``unbaked`` in float32, against ``unbaked`` in float64."""
    return Reference(unbaked).compare({"aoti": got}, x, tolerance=Tolerance.default())[0].ok


@pytest.fixture(scope="module")
def tiny_package(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module, object]:
    """A dynamic-batch (1..6) package of a baked tiny TV network with a TV bias map; the unbaked network."""
    unbaked = tiny_tvnet(k=3, bias=True)
    baked = bake(unbaked).model
    path = tmp_path_factory.mktemp("aoti") / "tiny.pt2"
    result = export_aoti(baked, path, dynamic_batch=True, batch=2, max_batch=6)
    return path, unbaked, result


def test_export_writes_package_and_sidecar(tiny_package) -> None:
    path, _, result = tiny_package
    side = sidecar_path(path)
    assert result.path == path and result.format == "aoti" and result.extra_files == [side]
    assert sorted(p.name for p in path.parent.iterdir()) == ["tiny.pt2", "tiny.pt2.json"]  # no temporaries left
    info = json.loads(side.read_text())
    assert info == read_sidecar(path) == result.info
    assert info["device"] == "cpu" and info["dynamic_batch"] == {"min": 1, "max": 6} and info["batch"] is None
    assert info["inductor_configs"] == {"freezing": True, "cpp.dynamic_threads": True}
    assert info["input_shape"] == [2, 3, 96, 96] and info["output_shape"] == [2, 5]
    assert info["package_bytes"] == path.stat().st_size > 0 and isinstance(info["compile_seconds"], float)
    assert info["torch_version"] == str(torch.__version__)
    # validated at the smallest, the example and one more batch, all within float32 tolerance
    assert [c.name.rsplit(" ", 1)[-1] for c in result.comparisons] == ["1", "2", "3"]
    assert result.ok and all(c["ok"] for c in info["validation"])


def test_package_is_recognised_where_a_checkpoint_belongs(tiny_package) -> None:
    """A real package (not only the zip layout the fast tests fake) is named as what it is."""
    from tvexport.artifacts import identify
    from tvexport.checkpoint import read_checkpoint

    path, _, _ = tiny_package
    found = identify(path)
    assert found is not None and found.kind == "aoti" and found.backend == "aoti" and found.arch == "face_mobilenetv2_x0_1"
    with pytest.raises(TvexportError, match="is an AOTInductor package .*not a checkpoint"):
        read_checkpoint(path)


@pytest.mark.parametrize("batch", [1, 4, 6])
def test_runner_matches_unbaked_network(tiny_package, batch: int) -> None:
    path, unbaked, _ = tiny_package
    run = load_runner("aoti", path)  # through the backend registry, as `tvexport validate` does
    x = _inputs(batch, seed=batch)
    got = run(x)
    assert got.shape == (batch, 5) and got.dtype == np.float32
    assert _matches(got, unbaked, x)


def test_package_k5_stride1_without_bias(tmp_path: Path) -> None:
    """The other corner of the grid: k=5, stride 1, a TV layer with no bias at all (BN kept)."""
    unbaked = tiny_tvnet(k=5, stride=1, bias=False, seed=2)
    baked = bake(unbaked, fold_bn=False).model
    assert [m.bias for m in baked.modules() if type(m).__name__ == "BakedTVConv"] == [None]
    result = export_aoti(baked, tmp_path / "k5.pt2", batch=3)
    assert result.ok and result.info["batch"] == 3
    x = _inputs(3, seed=5)
    assert _matches(load_runner("aoti", result.path)(x), unbaked, x)


def test_runner_without_its_sidecar_refuses_another_batch(tiny_package, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """Before: a package copied without ``<pkg>.json`` ran any batch unchecked (a fixed-batch one
    reading past the input buffer). AOTInductor's own input check now says it, in one line."""
    path, _, _ = tiny_package  # dynamic batch 1..6
    bare = tmp_path / "bare.pt2"
    shutil.copyfile(path, bare)
    run = aoti.load_runner(bare)
    assert run.info is None and run(_inputs(6, seed=1)).shape == (6, 5)
    assert "AOTI_RUNTIME_CHECK_INPUTS" not in os.environ  # set only around the call: packages with a sidecar keep batch 1
    capfd.readouterr()
    with pytest.raises(TvexportError) as err:
        run(_inputs(7, seed=0))
    assert err.value.message.startswith(f"{bare} cannot run input (7, 3, 96, 96): input_handles[0]: dim value is too large"), err.value.message
    assert f"its sidecar {bare}.json is missing" in str(err.value)
    assert "; validate with --batch N, N the batch it was exported for, or export it again" in str(err.value)  # before: "give the batch" named no option
    assert capfd.readouterr().err == ""  # the C++ runtime's own copy of the message is not printed
    run.compiled = lambda t: torch.zeros(4, 5)  # a package that skipped its check (AOTI_RUNTIME_CHECK_INPUTS=0 at its first call)
    with pytest.raises(TvexportError, match=r"ran batch 4 for an input of batch 2.*is missing"):
        run(_inputs(2, seed=0))


def test_package_reads_its_check_inputs_variable_at_its_first_call(tiny_package, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Why the runner sets AOTI_RUNTIME_CHECK_INPUTS around each call of a package without its
    sidecar, not around loading it: the package reads it at its first call (torch's generated
    ``_check_aoti_runtime_check_inputs_env``: a function-local static), and keeps that answer."""
    path, _, _ = tiny_package  # dynamic batch 1..6: batch 7 runs unchecked without reading past anything
    bare = tmp_path / "bare.pt2"
    shutil.copyfile(path, bare)
    monkeypatch.setenv(aoti.CHECK_INPUTS_ENV, "1")
    loaded_with_it = aoti.load_runner(bare).compiled
    monkeypatch.delenv(aoti.CHECK_INPUTS_ENV)
    with torch.no_grad():
        assert loaded_with_it(torch.from_numpy(_inputs(7, seed=0))).shape == (7, 5)  # first call without it: no check
        monkeypatch.setenv(aoti.CHECK_INPUTS_ENV, "1")
        assert loaded_with_it(torch.from_numpy(_inputs(7, seed=0))).shape == (7, 5)  # and none later either
    monkeypatch.delenv(aoti.CHECK_INPUTS_ENV)
    run = aoti.load_runner(bare)  # a fresh load: its first call, the runner's, has it
    with pytest.raises(TvexportError, match="dim value is too large"):
        run(_inputs(7, seed=0))


def test_runner_refuses_wrong_inputs(tiny_package) -> None:
    path, _, _ = tiny_package
    run = aoti.load_runner(path)
    assert run.batch is None  # dynamic: `tvexport validate` picks its own batch
    with pytest.raises(TvexportError, match=r"accepts batch 1\.\.6, got batch 7") as err:
        run(_inputs(7, seed=0))
    assert err.value.hint == "validate with --batch 1 to 6, or export it again with --dynamic-batch --max-batch 7"  # export refuses --max-batch alone
    with pytest.raises(TvexportError, match=r"takes input \(N, 3, 96, 96\)"):
        run(np.zeros((1, 3, 64, 64), np.float32))


def test_runner_refuses_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(TvexportError, match="nope.pt2: no such file"):
        aoti.load_runner(tmp_path / "nope.pt2")
    (tmp_path / "dir.pt2").mkdir()
    with pytest.raises(TvexportError, match=r"dir.pt2 is a directory, not an AOTInductor package"):  # before: "does not exist"
        aoti.load_runner(tmp_path / "dir.pt2")
    (tmp_path / "empty.pt2").write_bytes(b"")
    with pytest.raises(TvexportError, match=r"empty.pt2 is empty \(0 bytes\)"):  # before: "could not be loaded as an AOTInductor package"
        aoti.load_runner(tmp_path / "empty.pt2")
    junk = tmp_path / "junk.pt2"
    junk.write_bytes(b"not a zip archive")
    with pytest.raises(TvexportError, match="could not be loaded as an AOTInductor package"):
        aoti.load_runner(junk)
    sidecar_path(junk).write_text("{broken")
    with pytest.raises(TvexportError, match="cannot read the package description"):
        aoti.load_runner(junk)


_GOOD_SIDECAR = {"format": aoti.SIDECAR_FORMAT, "device": "cpu", "input_shape": [2, 3, 96, 96], "dynamic_batch": {"min": 1, "max": 6}}


@pytest.mark.parametrize(("change", "said"), [
    ({"input_shape": None}, "it has no 'input_shape'"),
    ({"input_shape": "2x3x96x96"}, "'input_shape' \"2x3x96x96\" is not a list of positive integers"),
    ({"input_shape": [0, 3, 96, 96]}, "'input_shape' [0, 3, 96, 96] is not a list of positive integers"),
    ({"dynamic_batch": True}, "'dynamic_batch' true is neither null nor"),
    ({"dynamic_batch": {"min": 1}}, "'dynamic_batch' {\"min\": 1} is neither null nor"),
    ({"dynamic_batch": {"min": 5, "max": 2}}, "'dynamic_batch' {\"min\": 5, \"max\": 2} is neither null nor"),
    ({"device": "tpu"}, "'device' \"tpu\" is not one of cpu, cuda"),
    ({"package_bytes": "41"}, "'package_bytes' \"41\" is not a whole number of bytes"),
], ids=["no-input-shape", "shape-text", "shape-zero", "dynamic-true", "dynamic-no-max", "dynamic-min-above-max", "device", "bytes-text"])
def test_runner_refuses_a_sidecar_without_what_it_needs(change: dict, said: str, tmp_path: Path) -> None:
    """Before: a hand-edited or foreign sidecar without input_shape (or with dynamic_batch: true)
    was an internal error (KeyError, TypeError) when the runner checked an input."""
    package = tmp_path / "m.pt2"
    package.write_bytes(b"PK not read: the sidecar is checked first")
    info = {k: v for k, v in {**_GOOD_SIDECAR, **change}.items() if v is not None}
    sidecar_path(package).write_text(json.dumps(info))
    with pytest.raises(TvexportError) as err:
        aoti.load_runner(package)
    assert err.value.message.startswith(f"{sidecar_path(package)} is not a usable tvexport AOTInductor description: {said}"), err.value.message
    assert "\n" not in str(err.value)


def test_runner_refuses_a_sidecar_of_another_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An export interrupted between its two renames leaves the new package beside the old
    sidecar; the sidecar's package_bytes catches a new package of another size (one of the same
    size, e.g. other weights, still passes; before: the runner trusted the sidecar)."""
    model = bake(tiny_tvnet()).model
    out = tmp_path / "m.pt2"
    monkeypatch.setattr(torch._inductor, "aoti_compile_and_package", _fake_compile({}))
    export_aoti(model, out, validate=False)
    assert read_sidecar(out)["package_bytes"] == len(b"compiled")  # a pair from one export is accepted
    real_replace = os.replace

    def interrupted(src: object, dst: object) -> None:
        if Path(dst) == sidecar_path(out):
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(torch._inductor, "aoti_compile_and_package", lambda program, package_path, inductor_configs: Path(package_path).write_bytes(b"compiled again"))
    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export_aoti(model, out, validate=False, force=True)
    monkeypatch.setattr(os, "replace", real_replace)
    assert out.read_bytes() == b"compiled again" and json.loads(sidecar_path(out).read_text())["package_bytes"] == len(b"compiled")
    with pytest.raises(TvexportError) as err:
        aoti.load_runner(out)
    assert err.value.message == f"{sidecar_path(out)} describes another package than {out}: it records 8 bytes, m.pt2 has 14", err.value.message
    assert "re-export" in str(err.value) and "\n" not in str(err.value)


def test_validate_with_a_sidecar_without_input_shape_one_line(tiny_package, cli, demo_ckpt: Path, tmp_path: Path) -> None:
    path, _, _ = tiny_package
    bad = tmp_path / "bad.pt2"
    shutil.copy2(path, bad)
    info = json.loads(sidecar_path(path).read_text())
    del info["input_shape"]
    sidecar_path(bad).write_text(json.dumps(info))
    r = cli("validate", bad, "--against", demo_ckpt)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.exit_code == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith(f"error: {sidecar_path(bad)} is not a usable tvexport AOTInductor description: it has no 'input_shape'"), lines[0]


def _fake_compile(seen: dict) -> object:
    def compile_(program, package_path, inductor_configs):  # noqa: ANN001, ANN202
        seen.update(inductor_configs)
        Path(package_path).write_bytes(b"compiled")
        return package_path
    return compile_


def test_package_renamed_first_then_its_sidecar_with_the_inductor_configs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The compiler gets (and the sidecar records) freezing and, on CPU, cpp.dynamic_threads (the
    package then runs with the OMP_NUM_THREADS of the process that loads it); the package is in
    place before its sidecar (before: the sidecar was renamed first, so a failed or interrupted
    package rename left a new sidecar beside an old package)."""
    model = bake(tiny_tvnet()).model
    seen: dict = {}
    monkeypatch.setattr(torch._inductor, "aoti_compile_and_package", _fake_compile(seen))
    renamed: list[Path] = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (renamed.append(Path(dst)), real_replace(src, dst))[1])
    out = tmp_path / "m.pt2"
    result = export_aoti(model, out, validate=False)
    expected = {"freezing": True, "cpp.dynamic_threads": True}
    assert seen == expected and result.info["inductor_configs"] == expected and json.loads(sidecar_path(out).read_text())["inductor_configs"] == expected
    assert renamed.index(out) < renamed.index(sidecar_path(out)), renamed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt2", "m.pt2.json"]


def test_failed_package_rename_leaves_the_old_pair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = bake(tiny_tvnet()).model
    monkeypatch.setattr(torch._inductor, "aoti_compile_and_package", _fake_compile({}))
    out = tmp_path / "m.pt2"
    out.write_bytes(b"old package")
    sidecar_path(out).write_text("old sidecar")
    real_replace = os.replace

    def replace(src: object, dst: object) -> None:
        if Path(dst) == out:
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(TvexportError, match="could not write"):
        export_aoti(model, out, validate=False, force=True)
    assert out.read_bytes() == b"old package" and sidecar_path(out).read_text() == "old sidecar"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt2", "m.pt2.json"]  # no temporaries


def test_export_checks_arguments_before_work(tmp_path: Path) -> None:
    model = tiny_tvnet()
    existing = tmp_path / "m.pt2"
    existing.write_bytes(b"keep")
    with pytest.raises(TvexportError, match="already exists"):
        export_aoti(model, existing)
    assert existing.read_bytes() == b"keep"
    sidecar_path(tmp_path / "n.pt2").write_text("{}")
    with pytest.raises(TvexportError, match=r"n\.pt2\.json already exists"):
        export_aoti(model, tmp_path / "n.pt2")
    with pytest.raises(TvexportError, match="larger than --max-batch"):
        export_aoti(model, tmp_path / "o.pt2", dynamic_batch=True, batch=8, max_batch=4)
    with pytest.raises(TvexportError, match="unknown device"):
        export_aoti(model, tmp_path / "o.pt2", device="tpu")
    with pytest.raises(TvexportError, match="no tvexport_config"):
        export_aoti(torch.nn.Identity(), tmp_path / "o.pt2")
    if not torch.cuda.is_available():
        with pytest.raises(TvexportError, match="no CUDA device") as err:
            export_aoti(model, tmp_path / "o.pt2", device="cuda")
        assert "\n" not in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt2", "n.pt2.json"]


def test_mismatch_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Validation failure: MismatchError, and neither package, sidecar nor temporary file remains.

    The compiler is replaced by a stub and the loaded package by a perturbed model, so this
    checks the validation and atomic-write logic only (real packages are compiled elsewhere)."""
    model = bake(tiny_tvnet()).model

    def fake_compile(program, package_path, inductor_configs):  # noqa: ANN001
        Path(package_path).write_bytes(b"compiled")
        return package_path

    def perturbed(path: Path, device: str):  # noqa: ANN202
        return lambda x: model(x) * (1 + 1e-3)

    monkeypatch.setattr(torch._inductor, "aoti_compile_and_package", fake_compile)
    monkeypatch.setattr(aoti, "_load_package", perturbed)
    out = tmp_path / "m.pt2"
    with pytest.raises(MismatchError, match="differs from the torch model") as err:
        export_aoti(model, out)
    assert list(tmp_path.iterdir()) == []
    assert [c.ok for c in err.value.comparisons] == [False]  # type: ignore[attr-defined]  (the CLI prints them)


def test_export_keeps_the_callers_training_modes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: export_aoti built ``Reference(model)``, which left the caller's model in eval mode
    (bake promises, and keeps, the caller's modes). Compiler and package loader stubbed as above."""
    model = bake(tiny_tvnet()).model
    reference = bake(tiny_tvnet()).model.eval()  # the same weights (tiny_tvnet is seeded), loaded as the package

    def fake_compile(program, package_path, inductor_configs):  # noqa: ANN001
        Path(package_path).write_bytes(b"compiled")
        return package_path

    monkeypatch.setattr(torch._inductor, "aoti_compile_and_package", fake_compile)
    monkeypatch.setattr(aoti, "_load_package", lambda path, device: reference)
    model.train()
    next(iter(model.children())).eval()  # a mixed mode comes back as it was
    modes = {name: m.training for name, m in model.named_modules()}
    assert export_aoti(model, tmp_path / "m.pt2").ok
    assert {name: m.training for name, m in model.named_modules()} == modes


def test_dwconv_baseline_exports_the_same_way(tmp_path: Path) -> None:
    model = tiny_tvnet(atom="dwconv")
    result = export_aoti(model, tmp_path / "dw.pt2", batch=2)
    assert result.ok and result.info["atom"] == "dwconv" and result.info["batch"] == 2 and result.info["dynamic_batch"] is None
    x = _inputs(2, seed=5)
    run = aoti.load_runner(result.path)
    assert run.batch == 2
    assert _matches(run(x), model, x)


# --------------------------------------------------------------------------------------------
# Slow: zoo networks and the C++ runner
# --------------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("atom", ["tvconv", "dwconv"])
def test_zoo_network_packages(tmp_path: Path, atom: str) -> None:
    """A face MobileNetV2 x0.1 checkpoint (TV: baked on the fly; DWConv baseline: as is)."""
    unbaked = make_model("face_mobilenetv2_x0_1", atom=atom, seed=2)
    ckpt = write_checkpoint(unbaked, tmp_path / f"{atom}.ckpt", "lightning" if atom == "tvconv" else "pth.tar")
    source = load_source(ckpt)
    model = source.model
    result = export_aoti(model, tmp_path / f"{atom}.pt2", dynamic_batch=True, batch=2, max_batch=16, reference=source.reference)
    assert result.ok
    # the weights are stored once: folded per-tap kernel layouts must not each keep a full copy
    weight_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    assert result.info["package_bytes"] < 1.2 * weight_bytes + 5e6
    x = _inputs(16, seed=1)
    assert _matches(aoti.load_runner(result.path)(x), unbaked, x)


def _cxx_available() -> bool:
    return shutil.which("cmake") is not None and shutil.which(os.environ.get("CXX", "c++")) is not None


@pytest.mark.skipif(not _cxx_available(), reason="needs cmake and a C++ compiler")
def test_cpp_runner_matches_python(tiny_package, tmp_path: Path) -> None:
    """Build examples/aoti_runner with its build.sh (the README's one command) against the torch
    wheel's libtorch; run the package without Python."""
    path, unbaked, _ = tiny_package
    build = tmp_path / "build"
    proc = subprocess.run(["bash", str(EXAMPLE / "build.sh"), str(build)], env={**os.environ, "PYTHON": sys.executable},
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    exe = build / "aoti_runner"
    ldd = subprocess.run(["ldd", str(exe)], capture_output=True, text=True).stdout
    assert "libtorch" in ldd and "libpython" not in ldd

    x = _inputs(3, seed=7)
    (tmp_path / "x.f32").write_bytes(x.astype("<f4").tobytes())
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    proc = subprocess.run([str(exe), str(path), "--shape", "3,3,96,96", "--input", str(tmp_path / "x.f32"), "--output", str(tmp_path / "y.f32"),
                           "--iters", "10", "--times", str(tmp_path / "times.txt")], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "output shape [3, 5]" in proc.stdout
    check_latency_line(proc.stdout, tmp_path / "times.txt", runs=10)  # before: p50 the 6th of 10, p90 the 10th (the max)
    got = np.fromfile(tmp_path / "y.f32", dtype="<f4").reshape(3, 5)
    np.testing.assert_allclose(got, aoti.load_runner(path)(x), rtol=1e-6, atol=1e-7)
    assert _matches(got, unbaked, x)

    bad = subprocess.run([str(exe), str(path), "--shape", "3,3,96,96", "--input", str(tmp_path / "y.f32")], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "bytes" in bad.stderr
    # a count that is no non-negative integer: one usage line, exit 2 (before: "x" an uncaught
    # std::invalid_argument, an abort; "-3" and "2x" taken as -3 and 2)
    for option, value in (("--iters", "x"), ("--iters", "-3"), ("--warmup", "2x"), ("--threads", "99999999999")):
        bad = subprocess.run([str(exe), str(path), "--shape", "3,3,96,96", option, value], capture_output=True, text=True, env=env, timeout=60)
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1, (option, value, bad.returncode, bad.stderr)
        assert bad.stderr.startswith(f"error: {option} takes a non-negative integer, got '{value}'; usage: aoti_runner "), bad.stderr


@pytest.mark.slow
def test_cli_export_and_validate_aoti(cli, face_ckpt: Path, tmp_path: Path) -> None:
    """`tvexport export --format aoti` and `tvexport validate --backend aoti` with the real exporter."""
    out = tmp_path / "face.pt2"
    r = cli("export", face_ckpt, "--format", "aoti", "-o", out, "--dynamic-batch", "--max-batch", "8")
    assert r.exit_code == 0, r.stderr
    assert out.is_file() and sidecar_path(out).is_file()
    r = cli("validate", out, "--against", face_ckpt, "--backend", "aoti", "--batch", "5")
    assert r.exit_code == 0, r.stderr
    r = cli("validate", out, "--against", face_ckpt, "--backend", "aoti", "--batch", "9")
    assert r.exit_code == 2 and "accepts batch 1..8" in r.stderr


def test_truncated_package_is_reported_as_damaged(cli, demo_ckpt: Path, tmp_path: Path) -> None:
    """Before: a .pt2 cut short (a zip archive without its central directory) was "cannot tell which
    runtime runs it", and with --backend aoti "export it again with this torch version". The hint
    said "tvexport export SOURCE --format aoti": it now names the file to write again (and --force)."""
    import zipfile

    from tvexport.artifacts import identify

    whole = tmp_path / "whole.pt2"
    with zipfile.ZipFile(whole, "w") as zf:  # the layout of a package, as torch writes it
        zf.writestr("model/archive_format", "pt2")
        zf.writestr("model/data/aotinductor/model/abc.wrapper.so", os.urandom(20000))
    sidecar = {"format": aoti.SIDECAR_FORMAT, "device": "cpu", "input_shape": [1, 3, 96, 96], "dynamic_batch": None,
               "package_bytes": whole.stat().st_size}
    cut = whole.read_bytes()[:12000]
    cases = {"cut.pt2": False, "cut_with_sidecar.pt2": True, "cut_with_sidecar.bin": True}
    for name, with_sidecar in cases.items():
        path = tmp_path / name
        path.write_bytes(cut)
        if with_sidecar:
            sidecar_path(path).write_text(json.dumps(sidecar))
        said = f"{path} is a damaged AOTInductor package, truncated or corrupt ("
        fix = f"; copy the whole file again, or export it again with: tvexport export CHECKPOINT --format aoti -o {path} --force"
        for backend in ([], ["--backend", "aoti"]):
            r = cli("validate", path, "--against", demo_ckpt, *backend)
            lines = r.stderr.strip().splitlines()
            assert r.exit_code == 2 and len(lines) == 1 and "Traceback" not in r.stderr + r.stdout, r.stderr
            assert lines[0].startswith(f"error: {said}") and lines[0].endswith(fix) and "torch version" not in lines[0], lines[0]
        with pytest.raises(TvexportError, match="damaged AOTInductor package, truncated or corrupt"):
            aoti.load_runner(path)
        with pytest.raises(TvexportError, match="damaged AOTInductor package, truncated or corrupt"):
            identify(path)
    (tmp_path / "cut.ckpt").write_bytes(cut)  # a zip cut short named as a checkpoint: the checkpoint reader's to report
    assert identify(tmp_path / "cut.ckpt") is None
    r = cli("inspect", tmp_path / "cut.ckpt")
    assert r.exit_code == 2 and "truncated or corrupt" in r.stderr and "AOTInductor" not in r.stderr, r.stderr


def test_export_refuses_options_it_would_ignore(tmp_path: Path) -> None:
    """Before: ``export_aoti(max_batch=8)`` without ``dynamic_batch`` built a fixed-batch package
    (the largest batch ignored), and ``validate=False`` with ``rtol``/``atol`` wrote an unvalidated
    package as if the floor applied; ``export_checkpoint`` refuses both. Refused before any work."""
    model = tiny_tvnet()
    with pytest.raises(TvexportError, match=r"^--max-batch needs --dynamic-batch"):
        export_aoti(model, tmp_path / "m.pt2", max_batch=8)
    with pytest.raises(TvexportError, match=r"^--rtol/--atol do not apply with --no-validate"):
        export_aoti(model, tmp_path / "m.pt2", validate=False, rtol=1e-3)
    assert list(tmp_path.iterdir()) == []
