"""Bad inputs of every kind, through every command: one line, non-zero exit, no traceback,
no code executed, no output file. Plus interrupted writes leave the previous output intact."""

from __future__ import annotations

import copy
import gzip
import io
import json
import os
import pickle
import random
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from conftest import make_model, write_checkpoint
from tvexport.models import TVSettings

ROOT = Path(__file__).resolve().parents[1]


def _noise(name: str, n: int) -> bytes:
    """n random bytes for the corpus file `name`, the same on every run and in any test order
    (os.urandom made each run refuse other files)."""
    return random.Random(name).randbytes(n)


MARKER_NAME = "CODE_WAS_EXECUTED"


class _Evil:
    """Unpickling this runs a shell command that creates a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


def _flip(data: bytes, offset: int) -> bytes:
    b = bytearray(data)
    b[offset] ^= 0xFF
    return bytes(b)


def _pickle_region(data: bytes) -> tuple[int, int]:
    """Byte range of data.pkl inside a torch zip checkpoint (from its local file header)."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        info = next(i for i in zf.infolist() if i.filename.endswith("data.pkl"))
    h = info.header_offset
    name_len = int.from_bytes(data[h + 26 : h + 28], "little")
    extra_len = int.from_bytes(data[h + 28 : h + 30], "little")
    start = h + 30 + name_len + extra_len
    return start, start + info.compress_size


def _central_directory(data: bytes) -> int:
    eocd = data.rfind(b"PK\x05\x06")
    return int.from_bytes(data[eocd + 16 : eocd + 20], "little")


def build_corpus(root: Path) -> dict[str, Path]:
    """At least 30 bad inputs, each a path (some do not exist or are directories)."""
    root.mkdir(parents=True, exist_ok=True)
    marker = root / MARKER_NAME
    corpus: dict[str, Path] = {}

    def put(name: str, data: bytes) -> None:
        corpus[name] = root / name
        corpus[name].write_bytes(data)

    good = write_checkpoint(make_model(tv=TVSettings(inter_chans=4, inter_layers=0)), root / "good.ckpt.src", "lightning").read_bytes()
    (root / "good.ckpt.src").unlink()
    n = len(good)
    corpus["missing"] = root / "does_not_exist.ckpt"
    corpus["directory"] = root / "a_directory"
    corpus["directory"].mkdir()
    put("empty.ckpt", b"")
    for frac in (0.0001, 0.01, 0.1, 0.5, 0.9):
        put(f"truncated_{frac}.ckpt", good[: max(1, int(n * frac))])
    put("truncated_last_byte.ckpt", good[:-1])
    put("truncated_22.ckpt", good[:-22])  # loses the end-of-central-directory record
    lo, hi = _pickle_region(good)
    for k, off in enumerate((lo, lo + 1, lo + (hi - lo) // 2, hi - 1)):
        put(f"flipped_pickle_{k}.ckpt", _flip(good, off))
    put("flipped_zip_magic.ckpt", _flip(good, 0))
    put("flipped_central_dir.ckpt", _flip(good, _central_directory(good)))
    buf = io.BytesIO()
    torch.save({"state_dict": {"model.x": torch.zeros(1)}, "evil": _Evil(marker)}, buf)
    put("malicious_torch.ckpt", buf.getvalue())
    put("malicious_plain.pkl", pickle.dumps(_Evil(marker)))
    put("malicious_protocol0.pkl", pickle.dumps(_Evil(marker), protocol=0))
    put("malicious_protocol4.pkl", pickle.dumps(_Evil(marker), protocol=4))  # FRAME opcode: torch's unpickler stops early
    put("image.png", b"\x89PNG\r\n\x1a\n" + _noise("image.png", 200))
    put("image.jpg", b"\xff\xd8\xff\xe0" + _noise("image.jpg", 200))
    put("notes.txt", b"this is not a checkpoint\n" * 10)
    put("config.json", json.dumps({"state_dict": {"a": 1}}).encode())
    put("model.onnx", b"\x08\x08\x12\x07pytorch" + _noise("model.onnx", 100))
    put("random.bin", _noise("random.bin", 4096))
    put("data.gz", gzip.compress(b"x" * 1000))
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as zf:
        zf.writestr("readme.txt", "a zip that is not a torch file")
    put("plain.zip", zbuf.getvalue())
    import numpy as np

    nbuf = io.BytesIO()
    np.save(nbuf, np.zeros((3, 3), dtype=np.float32))
    put("array.npy", nbuf.getvalue())

    def save(name: str, obj: object) -> None:
        b = io.BytesIO()
        torch.save(obj, b)
        put(name, b.getvalue())

    save("a_tensor.pt", torch.zeros(3))
    save("a_list.pt", [torch.zeros(3)])
    save("empty_dict.pt", {})
    save("empty_state_dict.ckpt", {"state_dict": {}})
    save("non_tensor_values.ckpt", {"state_dict": {"model.a": 1, "model.b": "x"}})
    save("unknown_arch.pt", {"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.weight": torch.zeros(1000, 512)})
    model = make_model(tv=TVSettings(inter_chans=4, inter_layers=0))
    sd = model.state_dict()
    save("missing_keys.pt", {k: v for k, v in sd.items() if "features.5." not in k})
    save("extra_keys.pt", {**sd, "bogus.weight": torch.zeros(2)})
    save("misshaped.pt", {**sd, "features.0.0.weight": torch.zeros(8, 3, 5, 5)})
    save("nan_weights.pt", {**sd, "features.2.conv.1.0.posi_map": torch.full_like(sd["features.2.conv.1.0.posi_map"], float("nan"))})
    save("inf_weights.pt", {**sd, "features.3.conv.0.0.weight": torch.full_like(sd["features.3.conv.0.0.weight"], float("inf"))})
    huge = {k: (v * 1e6 if k.endswith("weight_layers.1.weight") else v) for k, v in sd.items()}
    huge = {k: (v * 1e6 if k.endswith("weight_layers.2.weight") else v) for k, v in huge.items()}
    corpus["fp16_overflow.pt"] = root / "fp16_overflow.pt"
    torch.save(huge, corpus["fp16_overflow.pt"])
    # baked files whose description is damaged (what a hand-edited or foreign file might hold)
    from tvexport.bake import bake_model, save_baked

    baked = torch.load(save_baked(bake_model(model, verify=False), root / "good.baked.src"), weights_only=True)
    (root / "good.baked.src").unlink()
    first = next(iter(baked["bake"]["tv_layers"]))
    damage: dict[str, Callable[[dict], None]] = {
        "baked_unknown_family.pt": lambda b: b["arch"].update(family="resnet"),
        "baked_bad_width.pt": lambda b: b["arch"].update(width="abc"),
        "baked_layer_without_k.pt": lambda b: b["bake"]["tv_layers"][first].pop("k"),
        "baked_bad_dtype.pt": lambda b: b["bake"].update(dtype="int8"),
        "baked_bad_folded.pt": lambda b: b["bake"].update(folded=[["nope.x", "nope.y"]]),
        "baked_tv_not_a_dict.pt": lambda b: b["arch"].update(tv="zzz"),
        "baked_bake_not_a_dict.pt": lambda b: b.update(bake=5),  # before: "internal error" (TypeError) from every command
        "baked_kernels_not_a_dict.pt": lambda b: b["bake"]["tv_layers"][first].update(kernels="x"),  # read by inspect only
    }
    for name, hurt in damage.items():
        b = copy.deepcopy(baked)
        hurt(b)
        save(name, b)
    return corpus


FAST_BENCH = ["-b", "torch-baked", "--min-iters", "1", "--min-seconds", "0", "--warmup-seconds", "0"]

# command -> argv for a bad checkpoint ``src`` (outputs go to ``out``; ``good`` holds valid artefacts).
COMMANDS: dict[str, Callable[[Path, Path, dict[str, Path]], list[str]]] = {
    "inspect": lambda src, out, good: ["inspect", str(src)],
    "inspect --json": lambda src, out, good: ["inspect", str(src), "--json"],
    "bake": lambda src, out, good: ["bake", str(src), "-o", str(out / "out.baked.pt")],
    "bake float16": lambda src, out, good: ["bake", str(src), "-o", str(out / "out16.baked.pt"), "--dtype", "float16"],
    "export onnx": lambda src, out, good: ["export", str(src), "-o", str(out / "m.onnx")],
    "export plugin": lambda src, out, good: ["export", str(src), "-o", str(out / "p.onnx"), "--tv-op", "plugin"],
    "validate --against": lambda src, out, good: ["validate", str(good["onnx"]), "--against", str(src)],
    "bench": lambda src, out, good: ["bench", str(src), *FAST_BENCH, "--json", str(out / "r.json")],
}
# Inputs that are well-formed checkpoints whose weights are the problem: only commands that use
# the weights must refuse them (inspect reports them instead).
ONLY_FOR = {
    "fp16_overflow.pt": {"bake float16"},
    "nan_weights.pt": {"bake", "bake float16", "export onnx", "export plugin", "validate --against"},
    "inf_weights.pt": {"bake", "bake float16", "export onnx", "export plugin", "validate --against"},
    "baked_kernels_not_a_dict.pt": {"inspect", "inspect --json"},  # the record of how kernels are stored: what inspect shows
}

# command -> argv for a bad artefact (ONNX file or engine) ``model``.
ARTEFACT_COMMANDS: dict[str, Callable[[Path, Path, dict[str, Path]], list[str]]] = {
    "validate onnxruntime": lambda model, out, good: ["validate", str(model), "--against", str(good["ckpt"])],
    "validate aoti": lambda model, out, good: ["validate", str(model), "--against", str(good["ckpt"]), "--backend", "aoti"],
    "build": lambda model, out, good: ["build", str(model), "-o", str(out / "e.engine")],
}


def build_artefact_corpus(root: Path, good_onnx: Path, good_ckpt: Path) -> dict[str, Path]:
    """Bad exported artefacts: damaged ONNX graphs and files that are not graphs at all."""
    root.mkdir(parents=True, exist_ok=True)
    data = good_onnx.read_bytes()
    corpus: dict[str, Path] = {"missing": root / "missing.onnx", "directory": root / "dir.onnx"}
    corpus["directory"].mkdir()

    def put(name: str, content: bytes) -> None:
        corpus[name] = root / name
        corpus[name].write_bytes(content)

    put("empty.onnx", b"")
    for frac in (0.01, 0.5, 0.99):
        put(f"truncated_{frac}.onnx", data[: int(len(data) * frac)])
    put("text.onnx", b"not a graph\n" * 20)
    put("image.onnx", b"\x89PNG\r\n\x1a\n" + _noise("image.onnx", 300))
    put("checkpoint.onnx", good_ckpt.read_bytes())
    put("random.onnx", _noise("random.onnx", 2048))
    return corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A valid checkpoint and its exported ONNX graph (for commands that take two files)."""
    from tvexport.export import load_source
    from tvexport.export.onnx import export_onnx

    root = tmp_path_factory.mktemp("good")
    ckpt = write_checkpoint(make_model(tv=TVSettings(inter_chans=4, inter_layers=0)), root / "good.ckpt", "lightning")
    onnx_path = root / "good.onnx"
    export_onnx(load_source(ckpt).model, onnx_path, simplify=False)
    return {"ckpt": ckpt, "onnx": onnx_path}


def _check_refusals(cli, cases: list[tuple[str, list[str], Path]], marker: Path) -> list[str]:
    """Run each (name, argv, output dir); collect every way a refusal was not clean."""
    failures = []
    for name, argv, out in cases:
        r = cli(*argv)
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        problems = []
        if r.exit_code == 0:
            problems.append("exit 0")
        if len(lines) != 1 or not lines[0].startswith("error:"):
            problems.append(f"stderr not one 'error:' line: {r.stderr!r}")
        if "Traceback" in r.stderr + r.stdout:
            problems.append("traceback")
        if any(out.iterdir()):
            problems.append(f"left files {[p.name for p in out.iterdir()]}")
        if marker.exists():
            problems.append("CODE EXECUTED")
        if problems:
            failures.append(f"{name}: {'; '.join(problems)}")
    return failures


def test_corpus_is_large_enough(corpus: dict[str, Path]) -> None:
    assert len(corpus) >= 30


def test_malicious_pickles_are_named_as_such(corpus: dict[str, Path], cli) -> None:
    """Every malicious file is refused *as code*, whatever protocol hides the global."""
    for name, path in corpus.items():
        if name.startswith("malicious"):
            r = cli("inspect", path)
            assert r.exit_code == 2 and "would execute pickled code (posix.system)" in r.stderr, (name, r.stderr)
    assert not (next(iter(corpus.values())).parent / MARKER_NAME).exists()


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_bad_input_is_refused_cleanly(command: str, corpus: dict[str, Path], good: dict[str, Path], tmp_path: Path, cli) -> None:
    marker = next(iter(corpus.values())).parent / MARKER_NAME
    cases = []
    for name, path in corpus.items():
        if name in ONLY_FOR and command not in ONLY_FOR[name]:
            continue
        out = tmp_path / name.replace(".", "_")
        out.mkdir()
        cases.append((name, COMMANDS[command](path, out, good), out))
    failures = _check_refusals(cli, cases, marker)
    assert not failures, "\n".join(failures)
    assert not marker.exists()


@pytest.mark.parametrize("command", list(ARTEFACT_COMMANDS))
def test_every_bad_artefact_is_refused_cleanly(command: str, good: dict[str, Path], tmp_path: Path, cli) -> None:
    artefacts = build_artefact_corpus(tmp_path / "artefacts", good["onnx"], good["ckpt"])
    cases = []
    for name, path in artefacts.items():
        out = tmp_path / f"out_{name.replace('.', '_')}"
        out.mkdir()
        cases.append((name, ARTEFACT_COMMANDS[command](path, out, good), out))
    failures = _check_refusals(cli, cases, tmp_path / MARKER_NAME)
    assert not failures, "\n".join(failures)


def test_export_float16_refuses_overflowing_weights(corpus: dict[str, Path], tmp_path: Path, cli) -> None:
    """Kernels beyond float16's range: one line naming the tensor, before any graph is written."""
    from tvexport import load_checkpoint
    from tvexport.bake import bake_model, save_baked

    model = load_checkpoint(corpus["fp16_overflow.pt"])
    baked = save_baked(bake_model(model, rtol=1e-2), tmp_path / "big.baked.pt")  # fine in float32
    for extra in ([], ["--no-validate"], ["--tv-op", "plugin"]):
        r = cli("export", baked, "-o", tmp_path / "h.onnx", "--dtype", "float16", *extra)
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        assert r.exit_code == 2 and len(lines) == 1 and "overflows float16" in lines[0] and "--dtype float32" in lines[0], r.stderr
        assert sorted(p.name for p in tmp_path.iterdir()) == ["big.baked.pt"]


def test_interrupted_save_keeps_previous_output(tmp_path: Path, face_ckpt: Path, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "model.baked.pt"
    assert cli("bake", face_ckpt, "-o", out).exit_code == 0
    before = out.read_bytes()
    real_save = torch.save

    def dying_save(obj, f, *args, **kwargs):  # type: ignore[no-untyped-def]
        real_save({"partial": torch.zeros(10)}, f)
        raise KeyboardInterrupt  # as if Ctrl-C arrived mid-write

    monkeypatch.setattr(torch, "save", dying_save)
    r = cli("bake", face_ckpt, "-o", out, "--force")
    assert r.exit_code == 130 and r.stderr.strip().startswith("interrupted")
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["face.ckpt", "model.baked.pt"])


@pytest.mark.parametrize("where", ["before", "after"])
def test_verbose_shows_the_traceback(tmp_path: Path, cli, where: str) -> None:
    """Accepted before or after the command (the error line says "run with --verbose")."""
    argv = ["inspect", tmp_path / "nope.ckpt"]
    r = cli("--verbose", *argv) if where == "before" else cli(*argv, "--verbose")
    assert r.exit_code == 2 and "Traceback" in r.stderr and "no such file" in r.stderr


def test_output_directory_problems(face_ckpt: Path, tmp_path: Path, cli) -> None:
    r = cli("bake", face_ckpt, "-o", tmp_path / "missing_dir" / "x.pt")
    assert r.exit_code == 2 and "does not exist" in r.stderr
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = cli("bake", face_ckpt, "-o", blocker / "x.pt")  # before: "output directory .../file does not exist"
    assert r.exit_code == 2 and r.stderr.startswith(f"error: output directory {blocker} is a file, not a directory; ")
    assert len(r.stderr.strip().splitlines()) == 1 and blocker.read_text() == "x"
    r = cli("bake", face_ckpt, "-o", tmp_path)
    assert r.exit_code == 2 and "is a directory" in r.stderr


def test_missing_optional_backends_are_one_line(cli, good: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What to install is said in one line, for every optional piece."""
    import importlib.util

    def one_line(r) -> str:  # type: ignore[no-untyped-def]
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        assert r.exit_code == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
        return lines[0]

    if importlib.util.find_spec("tensorrt") is None:
        assert "tensorrt" in one_line(cli("build", good["onnx"], "-o", tmp_path / "e.engine"))
        (tmp_path / "some.engine").write_bytes(b"engine bytes")
        assert "tensorrt" in one_line(cli("validate", tmp_path / "some.engine", "--against", good["ckpt"], "--backend", "tensorrt"))
        assert "pip install 'tvexport[trt" in one_line(cli("build", good["onnx"]))  # the extra survives the terminal markup
    if not torch.cuda.is_available():
        assert "CUDA" in one_line(cli("export", good["ckpt"], "--format", "aoti", "--device", "cuda", "-o", tmp_path / "m.pt2"))
        assert "CUDA" in one_line(cli("bench", good["ckpt"], "-b", "triton", "--device", "cuda", *FAST_BENCH[2:]))
        assert "cuda" in one_line(cli("bench", good["ckpt"], "-b", "triton", *FAST_BENCH[2:])).lower()
    plugin = tmp_path / "plugin.onnx"
    assert cli("export", good["ckpt"], "--tv-op", "plugin", "-o", plugin, "--no-validate").exit_code == 0
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime_extensions", None)  # as if not installed
    assert "onnxruntime-extensions" in one_line(cli("validate", plugin, "--against", good["ckpt"]))
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", None)
    assert "onnxruntime" in one_line(cli("export", good["ckpt"], "-o", tmp_path / "x.onnx"))
    assert not (tmp_path / "x.onnx").exists() and not (tmp_path / "m.pt2").exists() and not (tmp_path / "e.engine").exists()


def test_interrupted_onnx_write_keeps_previous_file(cli, good: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import onnx

    out = tmp_path / "m.onnx"
    out.write_bytes(b"previous")
    real_save = onnx.save

    def dying_save(proto, f, *args, **kwargs):  # type: ignore[no-untyped-def]
        Path(f).write_bytes(proto.SerializeToString()[:100])
        raise KeyboardInterrupt

    monkeypatch.setattr(onnx, "save", dying_save)
    r = cli("export", good["ckpt"], "-o", out, "--force", "--no-validate")
    assert r.exit_code == 130
    assert out.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]
    monkeypatch.setattr(onnx, "save", real_save)


_SIGNALLED_SAVE = """
import os, signal, sys, torch
from tvexport import cli
name, ignored = sys.argv[1], sys.argv[2] == "ignored"
if ignored:
    signal.signal(getattr(signal, name), signal.SIG_IGN)  # as nohup leaves SIGHUP
real_save = torch.save
def signalled_save(obj, f, *args, **kwargs):
    real_save({"partial": torch.zeros(10)}, f)
    os.kill(os.getpid(), getattr(signal, name))  # as if `kill`, `timeout` or a closed terminal arrived mid-write
    real_save(obj, f, *args, **kwargs)
torch.save = signalled_save
sys.argv = ["tvexport", *sys.argv[3:]]
cli.run()
"""


def _signalled_bake(tmp_path: Path, ckpt: Path, name: str, *, ignored: bool = False) -> subprocess.CompletedProcess:
    out = tmp_path / "model.baked.pt"
    out.write_bytes(b"previous output")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(Path(__file__).parent)])}
    return subprocess.run([sys.executable, "-c", _SIGNALLED_SAVE, name, "ignored" if ignored else "default",
                           "bake", str(ckpt), "-o", str(out), "--force"], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])
def test_terminated_save_leaves_no_partial_file(tmp_path: Path, face_ckpt: Path, name: str) -> None:
    """SIGTERM (``kill``, ``timeout``, a CI job cancelled, ``docker stop``) and SIGHUP (the terminal
    closed) mid-write clean up as Ctrl-C does: the previous output stays, no temporary file is left,
    one line; then the process ends by that signal, as a shell's 128 + its number. Before: Python's
    default action killed the process at once, leaving ``.model.baked.pt.*.tmp`` beside the output."""
    import signal

    r = _signalled_bake(tmp_path, face_ckpt, name)
    assert r.returncode == -getattr(signal, name), (r.returncode, r.stderr)
    assert r.stderr.strip() == f"terminated by {name} (no partial output was written)", r.stderr
    assert (tmp_path / "model.baked.pt").read_bytes() == b"previous output"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["face.ckpt", "model.baked.pt"]


def test_an_ignored_hangup_stays_ignored(tmp_path: Path, face_ckpt: Path) -> None:
    """Under ``nohup`` (SIGHUP ignored) a closed terminal does not stop the bake."""
    r = _signalled_bake(tmp_path, face_ckpt, "SIGHUP", ignored=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "model.baked.pt").read_bytes() != b"previous output"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["face.ckpt", "model.baked.pt"]


@pytest.mark.skipif(not hasattr(__import__("signal"), "SIGHUP"), reason="no SIGHUP here (Windows)")
def test_the_signal_line_to_a_closed_terminal_does_not_change_the_ending(cli, tmp_path: Path, face_ckpt: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGHUP from a closed terminal: writing the "terminated by" line to it fails with EIO, and that
    OSError must not replace the clean-up's exit (129, the process then ending by the signal) with
    an error (exit 1). No real signal: the save records SIGHUP as run()'s handler does and raises
    KeyboardInterrupt as it, mid-write."""
    import errno
    import signal

    from tvexport import cli as tv_cli
    from tvexport.cli import _console

    out = tmp_path / "model.baked.pt"
    out.write_bytes(b"previous output")
    real_save = torch.save

    def hung_up_save(obj: object, f: object, *args: object, **kwargs: object) -> None:
        real_save({"partial": torch.zeros(10)}, f)
        tv_cli._state["signal"] = signal.SIGHUP  # what run()'s handler records
        raise KeyboardInterrupt

    real_print = _console.err_console.print
    tried = []

    def closed_terminal(*args: object, **kwargs: object) -> None:  # only the signal line fails: other lines are not what this tests
        if any("terminated by" in str(a) for a in args):
            tried.append(args)
            raise OSError(errno.EIO, "Input/output error")
        real_print(*args, **kwargs)

    monkeypatch.setitem(tv_cli._state, "signal", None)
    monkeypatch.setattr(torch, "save", hung_up_save)
    monkeypatch.setattr(_console.err_console, "print", closed_terminal)
    r = cli("bake", face_ckpt, "-o", out, "--force")
    assert r.exit_code == 128 + signal.SIGHUP and len(tried) == 1, (r.exit_code, tried)
    assert out.read_bytes() == b"previous output"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["face.ckpt", "model.baked.pt"]


def test_main_in_process_leaves_the_callers_signals_alone(cli, tmp_path: Path) -> None:
    """main() called from Python sets no signal handler: a SIGTERM to a program that runs commands
    in-process (such as these tests) must still end that program, not one command (the `tvexport`
    script, cli.run, sets them)."""
    import signal

    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    seen = {}
    real = signal.signal

    def spy(signum, handler):  # type: ignore[no-untyped-def]
        seen[signum] = handler
        return real(signum, handler)

    signal.signal = spy  # type: ignore[assignment]
    try:
        assert cli("inspect", tmp_path / "nope.ckpt").exit_code == 2
    finally:
        signal.signal = real  # type: ignore[assignment]
    assert seen == {}
    assert {s: signal.getsignal(s) for s in before} == before
