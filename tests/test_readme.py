"""The README's commands are real: the quick-start lines match CI, and every example runs."""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
import re
import shlex
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(lang: str) -> list[tuple[str, str]]:
    """(preceding text, body) of every fenced block of ``lang``."""
    found = []
    for m in re.finditer(rf"```{lang}\n(.*?)```", README, re.S):
        found.append((README[: m.start()], m.group(1)))
    return found


def _quick_start() -> tuple[str, str]:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    bash = re.findall(r"```bash\n(.*?)\n```", section, re.S)
    assert len(bash) == 2, "Quick start must hold exactly two commands: bake the demo, run the tests"
    return bash[0].strip(), bash[1].strip()


def test_quick_start_test_command_is_what_ci_runs() -> None:
    _, test_cmd = _quick_start()
    tail = test_cmd.split("&& ", 2)[-1]  # after creating and activating the venv
    assert tail == "pip install '.[test]' && python -m pytest -q -n auto --maxprocesses=4 --dist loadgroup"
    assert tail in (ROOT / ".ci" / "run").read_text()


def test_quick_start_bake_command_runs(tmp_path: Path, cli, demo_ckpt: Path) -> None:
    bake_cmd, _ = _quick_start()
    tvexport_part = bake_cmd.split("&& ")[-1]
    assert tvexport_part.startswith("tvexport bake models/")
    args = shlex.split(tvexport_part)[1:]
    out = tmp_path / "demo.baked.pt"
    args[args.index("-o") + 1] = str(out)
    args[1] = str(ROOT / args[1])
    for run in ("first", "again"):  # rerunning the quick start must work too
        r = cli(*args)
        assert r.exit_code == 0, f"{run}: {r.stderr}"
        assert out.exists() and "network" in r.stdout


def test_cpu_torch_note_precedes_the_quick_start_commands() -> None:
    """Read after the commands, the note comes when CUDA torch is already downloading; and it
    must install into the venv the commands then use."""
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    note = section.find("download.pytorch.org/whl/cpu")
    assert 0 <= note < section.find("```bash"), "the CPU-torch note must come before the commands"
    line = next(line for line in section.splitlines() if "download.pytorch.org/whl/cpu" in line)
    assert line.index(". .venv/bin/activate") < line.index("pip install torch"), "install CPU torch inside the activated venv"


def test_readme_says_why_test_extra_has_triton() -> None:
    """`.[test]` pulls triton (1 GB) on CPU machines too: the README says so, and why, with the
    number of tests that need it there (the interpreted kernel cases and the ahead-of-time builds)."""
    import test_kernels

    test_extra = re.search(r"^test = \[(.*?)\]", (ROOT / "pyproject.toml").read_text(), re.S | re.M)
    assert test_extra is not None and "triton" in test_extra.group(1)
    on_cpu = 0  # tests that skip without triton and run without a GPU, parametrizations counted
    for name, func in vars(test_kernels).items():
        marks = getattr(func, "pytestmark", []) if name.startswith("test_") else []
        if any(m.name == "skipif" and str(m.kwargs.get("reason", "")).startswith("triton is not installed") for m in marks):
            on_cpu += math.prod(len(m.args[1]) for m in marks if m.name == "parametrize")
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert "'.[test]'` includes" in section and "triton" in section.split("'.[test]'` includes", 1)[1]
    assert f"{on_cpu} tests" in " ".join(section.split()), f"say how many tests run triton on a CPU machine ({on_cpu})"


def _requirements(preceding: str) -> list[str]:
    m = re.search(r"<!-- requires: ([\w, -]+) -->\s*$", preceding)
    return [r.strip() for r in m.group(1).split(",")] if m else []


@dataclasses.dataclass(frozen=True)
class ConsoleLine:
    lineno: int  # in README.md
    args: list[str]  # after "$ tvexport"
    missing: list[str]  # the block's <!-- requires: --> modules that are not installed


_WRITES = ("-o", "--output", "--json", "--plot")  # the options whose value is a file the command writes


def _writes(args: list[str]) -> set[str]:
    return {args[i + 1] for i, arg in enumerate(args[:-1]) if arg in _WRITES}


def _console_lines() -> list[ConsoleLine]:
    lines = []
    for m in re.finditer(r"```console\n(.*?)```", README, re.S):
        missing = [r for r in _requirements(README[: m.start()]) if importlib.util.find_spec(r) is None]
        first = README.count("\n", 0, m.start(1)) + 1
        for offset, line in enumerate(m.group(1).splitlines()):
            if line.startswith("$ tvexport "):
                lines.append(ConsoleLine(first + offset, shlex.split(line[len("$ tvexport "):]), missing))
    return lines


def _quick_bake_args() -> list[str]:
    return shlex.split(_quick_start()[0].split("&& ")[-1])[1:]


def _console_chains() -> list[list[ConsoleLine]]:
    """The ``$ tvexport`` lines in chains, each in README order: a line that reads a file an earlier
    line writes is in that line's chain (the quick start's bake, which every chain runs first, makes
    its own files), so chains do not depend on each other and run as tests of their own."""
    lines = _console_lines()
    chain = list(range(len(lines)))  # union-find: each line's representative

    def root(i: int) -> int:
        while chain[i] != i:
            i = chain[i]
        return i

    quick = _writes(_quick_bake_args())
    last_writer: dict[str, int] = {}
    for i, line in enumerate(lines):
        for arg in line.args:
            if arg in last_writer and arg not in quick:
                chain[root(i)] = root(last_writer[arg])
        for path in _writes(line.args):
            last_writer[path] = i
    chains: dict[int, list[ConsoleLine]] = {}
    for i, line in enumerate(lines):
        chains.setdefault(root(i), []).append(line)
    return list(chains.values())


def test_console_lines_are_found_and_chained() -> None:
    """Every ``$ tvexport`` line is in exactly one chain, in README order; at least four run here,
    and the TensorRT lines (two or more) are parsed where TensorRT is missing."""
    lines = _console_lines()
    chains = _console_chains()
    assert sorted((line.lineno for c in chains for line in c)) == [line.lineno for line in lines]
    assert all([line.lineno for line in c] == sorted(line.lineno for line in c) for c in chains)
    assert sum(not line.missing for line in lines) >= 4
    assert sum(line.missing == ["tensorrt"] for line in lines) >= 2 or importlib.util.find_spec("tensorrt") is not None
    export = next(c for c in chains if any(line.args[:2] == ["export", "demo.baked.pt"] and "aoti" in line.args for line in c))
    assert any(line.args[:2] == ["validate", "demo.pt2"] for line in export), "a validate line must follow the export it reads"
    assert len(chains) >= 4, "independent examples run as tests of their own"


@pytest.fixture(scope="session")
def quick_started(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch directory with ``models/`` where the quick start's bake ran (once per worker:
    test_quick_start_bake_command_runs checks the command itself)."""
    from tvexport.cli import main

    where = tmp_path_factory.mktemp("quick_started")
    shutil.copytree(ROOT / "models", where / "models", ignore=shutil.ignore_patterns("*.py", "*.json", "*.md"))
    before = Path.cwd()
    os.chdir(where)
    try:
        assert main(_quick_bake_args()) == 0
    finally:
        os.chdir(before)
    return where


@pytest.mark.parametrize("chain", _console_chains(), ids=lambda c: f"README.md:{c[0].lineno}")
def test_console_examples_run(chain: list[ConsoleLine], quick_started: Path, tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ``$ tvexport ...`` line, in README order within its chain (the lines it reads the
    files of), in a scratch directory with ``models/``, after the quick start's bake (as a
    newcomer reads it: its output must not block them)."""
    shutil.copytree(quick_started, tmp_path / "readme")
    monkeypatch.chdir(tmp_path / "readme")
    for line in chain:
        text = f"README.md:{line.lineno}: $ tvexport {shlex.join(line.args)}"
        if line.missing == ["tensorrt"]:
            # parsed all the same: the options must exist, and the command get as far as TensorRT
            # (validate's engine stands in for the build's; build checks TensorRT before reading)
            with monkeypatch.context() as m:
                m.setitem(sys.modules, "tensorrt", None)
                for arg in line.args:
                    if arg.endswith(".engine") and line.args[0] == "validate":
                        Path(arg).write_bytes(b"stand-in for the engine the build line writes")
                r = cli(*line.args)
            lines = r.stderr.strip().splitlines()
            assert r.exit_code == 2 and len(lines) == 1 and "tensorrt is not installed" in lines[0], f"{text}\n{r.stderr}"
            continue
        if line.missing:
            continue
        r = cli(*line.args)
        assert r.exit_code == 0, f"{text}\n{r.stderr}"


def _said_printed(comment: str, line: str) -> bool:
    """``line`` is what a ``print(...)  # comment`` says it prints: the comment with its measured
    numbers (``2.46e-07``) free, or a single value with a note (``17 (TV layers)``): the value."""
    for said in (comment, re.sub(r"^(\S+) \([^()]*\)$", r"\1", comment)):
        pattern = r"[0-9.]+e[-+][0-9]+".join(re.escape(part) for part in re.split(r"[0-9.]+e[-+][0-9]+", said))
        if re.fullmatch(pattern, line):
            return True
    return False


def test_python_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The block runs, and prints what its comments say (before: only demo.baked.pt was checked)."""
    shutil.copytree(ROOT / "models", tmp_path / "models", ignore=shutil.ignore_patterns("*.py"))
    monkeypatch.chdir(tmp_path)
    blocks = _blocks("python")
    assert blocks
    for _, body in blocks:
        names: dict = {"__name__": "readme"}
        capsys.readouterr()
        exec(compile(body, "README.md", "exec"), names)
        printed = capsys.readouterr().out.splitlines()
        said = [line.split("#", 1)[1].strip() for line in body.splitlines() if line.startswith("print(") and "#" in line]
        assert len(printed) == len(said) and said, (printed, said)
        for comment, line in zip(said, printed):
            assert _said_printed(comment, line), f"README says {comment!r}, the example printed {line!r}"
        for line in body.splitlines():  # a shape in a comment, as `embedding = baked(...)  # (4, 512)`
            m = re.match(r"(\w+) = .*#\s*(\([\d, ]+\))$", line)
            if m:
                assert tuple(names[m.group(1)].shape) == eval(m.group(2)), line
    assert os.path.exists("demo.baked.pt")


def test_python_example_calls_each_core_command() -> None:
    """bake, export, validate and inspect each have one Python call, shown in the Python API block
    (before: validate and inspect had none)."""
    body = "".join(body for _, body in _blocks("python"))
    for call in ("bake_checkpoint", "export_checkpoint", "validate_artifact", "inspect_checkpoint"):
        assert f"tvexport.{call}(" in body, call
        assert call in __import__("tvexport").__all__, call


def test_api_names_the_readme_gives_are_importable_from_tvexport() -> None:
    """Before: the README's Python API says export_checkpoint "raises ValidationMismatch", and only
    tvexport.export.ValidationMismatch existed (BakeMismatch is at the top level)."""
    import tvexport
    from tvexport.export import ValidationMismatch

    text = README
    named = set(re.findall(r"\btvexport\.([A-Za-z_]\w*)\b(?!\.\w)", text))  # not tvexport.openvino.X: test_dotted_api_names_resolve
    named |= {n for n in ("ValidationMismatch", "BakeMismatch", "MismatchError") if n in text}
    missing = sorted(n for n in named if n not in tvexport.__all__)
    assert not missing, missing
    assert tvexport.ValidationMismatch is ValidationMismatch and issubclass(ValidationMismatch, tvexport.MismatchError)


def test_public_functions_and_classes_have_docstrings() -> None:
    """Every function and class that a public module's ``__all__`` names says what it is
    (``help()``; a dataclass's generated ``Name(fields)`` does not count), and so does every
    public method and property such a class defines itself (its own ``__dict__``: what it
    inherits from torch, typing or the dataclass machinery is not its to document; an override
    such as ``forward`` is, and does not borrow its base's text), in every non-private module of
    the package that has an ``__all__`` (walked, not listed: a new module is covered). Before:
    tvexport.models.config_of and tvexport.trt.plan_build had none, nor 55 methods and properties
    (``to_dict``, ``ok``, ``forward``, ...)."""
    import functools
    import importlib
    import inspect
    import pkgutil

    import tvexport

    public = ["tvexport"] + [m.name for m in pkgutil.walk_packages(tvexport.__path__, "tvexport.")
                             if not any(part.startswith("_") for part in m.name.split("."))]
    undocumented, checked = [], []
    for module_name in public:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:  # a module of an optional runtime that is not installed here
            assert exc.name in OPTIONAL_RUNTIMES, (module_name, exc)
            continue
        if not hasattr(module, "__all__"):
            continue
        checked.append(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isfunction(obj) or inspect.isclass(obj):
                doc = obj.__doc__ if inspect.isfunction(obj) else obj.__dict__.get("__doc__")
                if not doc or not doc.strip() or doc.startswith(f"{obj.__name__}("):
                    undocumented.append(f"{module_name}.{name}")
            if inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    if attr.startswith("_"):
                        continue
                    if isinstance(member, (staticmethod, classmethod)):
                        member = member.__func__
                    if inspect.isfunction(member) or isinstance(member, (property, functools.cached_property)):
                        if not (member.__doc__ or "").strip():
                            undocumented.append(f"{module_name}.{name}.{attr}")
    assert {"tvexport", "tvexport.bake", "tvexport.compile", "tvexport.openvino", "tvexport.trt"} <= set(checked), checked
    assert undocumented == []


OPTIONAL_RUNTIMES = {"tensorrt", "triton", "onnx", "onnxruntime", "openvino", "onnxsim", "onnxscript", "matplotlib"}


def _resolve(dotted: str) -> object:
    """``tvexport.openvino.build_extension`` -> the function: the longest importable module, then attributes."""
    import importlib

    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name)
        return obj
    raise AssertionError(dotted)


def test_dotted_api_names_resolve_and_the_builds_are_documented() -> None:
    """Every ``tvexport.<subpackage>.<name>`` the README or tvexport's docstring gives exists, and
    the public build functions, which live in subpackages, are named where the other public
    functions are (before: neither build_extension nor build_engine was in the Python API docs)."""
    import tvexport

    api = README.split("## Python API", 1)[1]
    for text in (api, tvexport.__doc__ or ""):
        for call in ("tvexport.openvino.build_extension(", "tvexport.trt.build.build_engine("):
            assert call in text, call
    dotted = set(re.findall(r"\btvexport(?:\.[A-Za-z_]\w*){2,}", README + (tvexport.__doc__ or "")))
    assert {"tvexport.openvino.build_extension", "tvexport.trt.build.build_engine"} <= dotted
    for name in sorted(dotted):
        assert callable(_resolve(name)), name


def test_console_examples_that_write_can_run_again() -> None:
    """Before: six examples without --force exited 2 ("already exists") on a newcomer's second run."""
    writes = {"bake", "export", "build"}
    for _, body in _blocks("console"):
        for line in body.splitlines():
            if not line.startswith("$ tvexport "):
                continue
            args = shlex.split(line[len("$ tvexport "):])
            if args[0] in writes or (args[0] == "bench" and {"--json", "--csv", "--markdown", "--plot"} & set(args)):
                assert "--force" in args, line


def test_outputs_of_readme_commands_in_the_repository_root_are_ignored() -> None:
    """Before: bench.json and bench.png showed in `git status` after the README's bench example."""
    import fnmatch

    ignored = [p.strip() for p in (ROOT / ".gitignore").read_text().splitlines() if p.strip() and not p.startswith(("#", "!"))]
    for _, body in _blocks("console"):
        for line in body.splitlines():
            if not line.startswith("$ tvexport "):
                continue
            args = shlex.split(line[len("$ tvexport "):])
            outputs = [args[i + 1] for i, a in enumerate(args[:-1]) if a in ("-o", "--json", "--csv", "--markdown", "--plot")]
            for out in outputs:
                assert "/" not in out and any(fnmatch.fnmatch(out, p.lstrip("/")) for p in ignored), f"{out} (from {line}) is not in .gitignore"


def test_exit_code_table_names_every_command_that_exits_1(cli) -> None:
    """Before: the exit-1 row named bake verification and export validation, not ``validate``,
    whose help says "exit 1 on mismatch"; with no command, help is printed and the exit is 2."""
    row = re.search(r"^\| 1 \| (.*) \|$", README, re.M)
    assert row is not None and "`tvexport validate`" in row.group(1)
    assert "exit 1 on mismatch" in " ".join(cli("validate", "--help").stdout.split())
    usage = re.search(r"^\| 2 \| (.*) \|$", README, re.M)
    assert usage is not None and "no command given" in usage.group(1) and cli().exit_code == 2


def test_pointwise_fold_limits_the_readme_gives_are_the_runners() -> None:
    """The README's OpenVINO section states the fold's limits; they are the runner's constants (a
    change of either would leave the README saying another rule)."""
    pytest.importorskip("openvino")
    from tvexport.openvino import runtime

    text = " ".join(README.split())
    assert f"convolutions of at most {runtime.POINTWISE_MAX_CIN} input channels" in text
    assert runtime.POINTWISE_MIN_BATCH == 2 and runtime.POINTWISE_MIN_BATCH_AVX512 == 1
    assert "at a static batch of 1 only with the AVX-512 kernel" in text and "not with the AVX2 or baseline one" in text
    assert f"{runtime.POINTWISE_ENV}=0" in text
