"""Shared fixtures: small zoo models with random weights, checkpoints in every reference layout,
and an in-process CLI runner."""

from __future__ import annotations

import copy
import dataclasses
import functools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

# Inductor (torch.compile, AOTInductor) compiles in the process that asks, not in a pool of compile
# worker processes: the pool (a sidecar and one worker per core, each importing torch) is started
# for every test process that compiles, and costs CPU seconds on a suite that is CPU-bound (the
# CPU kernels it compiles are the same either way). Set before torch reads it; children inherit it.
os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from tvexport.models import TVSettings, create_model  # noqa: E402
from tvexport.testing import lightning_checkpoint, randomize_, save_lightning, save_pth_tar  # noqa: E402

# Small generators keep the suite fast; geometry (channels, k, stride, h, w) is the real one.
SMALL_TV = TVSettings(inter_chans=8, inter_layers=1)


@functools.lru_cache(maxsize=16)
def _cached_model(name: str, atom: str, tv: TVSettings, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return randomize_(create_model(name, atom=atom, tv=tv), seed=seed)  # type: ignore[arg-type]


def make_model(name: str = "face_mobilenetv2_x0_1", *, atom: str = "tvconv", tv: TVSettings = SMALL_TV, seed: int = 0) -> torch.nn.Module:
    """A zoo model with random posi_map, LayerNorm and (calibrated) BatchNorm values (a fresh copy)."""
    return copy.deepcopy(_cached_model(name, atom, tv, seed))


def check_latency_line(stdout: str, times: Path, *, runs: int) -> None:
    """An example runner's "latency_ms min A p50 B p90 C" line (4 decimals) against the per-run
    latencies it wrote with --times: min and numpy's (linear) percentiles, as tvexport/profile/stats.py."""
    ms = np.loadtxt(times, ndmin=1)
    assert ms.shape == (runs,), ms
    found = re.search(r"latency_ms min (\S+) p50 (\S+) p90 (\S+) \((\d+) runs", stdout)
    assert found and int(found.group(4)) == runs, stdout
    printed = [float(v) for v in found.groups()[:3]]
    np.testing.assert_allclose(printed, [ms.min(), *np.percentile(ms, [50, 90])], rtol=0, atol=6e-5)


def run_script(script: Path, *args: str, python_options: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """Run a benchmarks/ script in a child interpreter with this checkout first on PYTHONPATH
    (its output captured as text, at most 10 minutes)."""
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, *python_options, str(script), *args], capture_output=True, text=True, env=env, timeout=600)


def count_reads(monkeypatch: pytest.MonkeyPatch, path: Path) -> list[Path]:
    """The list each Path.read_text of ``path`` appends to, for the rest of the test (the
    --render scripts' read-once tests)."""
    reads: list[Path] = []
    real = Path.read_text

    def counted(self: Path, *args: object, **kwargs: object) -> str:
        reads.extend([self] if self == path else [])
        return real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_text", counted)
    return reads


def check_render_reads_once(script: ModuleType, saved_json: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A benchmark script module's ``--render`` of a copy of ``saved_json`` reads it once (parse_args
    checks it, main re-renders what it read) and writes the rendered .json and .md."""
    saved = tmp_path / "saved.json"
    shutil.copyfile(saved_json, saved)
    reads = count_reads(monkeypatch, saved)
    assert script.main(script.parse_args(["--render", str(saved), "--out", str(tmp_path / "out"), "--name", "r"])) == 0
    assert reads == [saved]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["r.json", "r.md"]


def split_importtime(stderr: str) -> tuple[set[str], list[str]]:
    """The stderr of a child run with ``-X importtime``: the modules it imported, and its other
    non-blank lines (what it said itself)."""
    imported, said = set(), []
    for line in stderr.splitlines():
        if line.startswith("import time:"):  # import time: self [us] | cumulative | module
            fields = line.removeprefix("import time:").split("|")
            if fields[0].strip().isdigit():  # not the header line ("self [us] | ... | imported package")
                imported.add(fields[-1].strip())
        elif line.strip():
            said.append(line)
    return imported, said


def heavy_imports(script: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """``run_script`` with ``-X importtime``: the run, and which of torch and tvexport it imported
    (a refusal of bad options must come before those imports: seconds each)."""
    run = run_script(script, *args, python_options=("-X", "importtime"))
    return run, split_importtime(run.stderr)[0] & {"torch", "tvexport"}


def check_render_refusals(script: Path, tmp_path: Path) -> None:
    """``--render`` of a file a benchmarks/ script cannot re-render (missing, not JSON, a JSON list,
    another script's result): one line naming the file and what to give instead, exit status 2,
    before torch or tvexport is imported, nothing written."""
    other = '{"schema": "tvexport.bench.headline", "reports": []}'
    for name, text in {"missing.json": None, "text.json": "not JSON", "list.json": "[1, 2]", "other.json": other}.items():
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
        run, heavy = heavy_imports(script, "--render", str(path), "--out", str(tmp_path / "out"))
        lines = split_importtime(run.stderr)[1]
        assert run.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"error: --render {path}: "), (name, run.stderr[-2000:])
        assert "give a .json that this script wrote" in lines[0], lines[0]
        assert not heavy, f"{sorted(heavy)} imported before --render {name} was refused: read it before the imports"
        assert not (tmp_path / "out").exists()


def check_tables_and_render(script: Path, out: Path, name: str) -> str:
    """A benchmarks/ script's report ``out/name.md``: every table's separator and rows have its
    header's cells, and ``--render`` rewrites the same report from ``out/name.json``. Returns it."""
    md = (out / f"{name}.md").read_text()
    for block in md.split("\n\n"):
        rows = [r for r in block.splitlines() if r.startswith("|")]
        assert len({r.count("|") for r in rows}) <= 1, rows[:2]
    (out / f"{name}.md").unlink()
    again = run_script(script, "--render", str(out / f"{name}.json"), "--out", str(out), "--name", name)
    assert again.returncode == 0, again.stderr[-2000:]
    assert (out / f"{name}.md").read_text() == md
    return md


@pytest.fixture(scope="module")
def extension() -> Path:
    """The OpenVINO extension library for these sources (built into the cache if needed); skips
    where it cannot be built (no compiler or cmake), while a failing build still fails. Every test
    file's: tests/test_openvino.py and test_openvino_pointwise.py also skip as a whole where the
    build tools are missing (``HAVE_TOOLS``)."""
    from tvexport.errors import MissingDependencyError
    from tvexport.openvino import extension_path

    try:
        return extension_path()
    except MissingDependencyError as err:
        pytest.skip(f"the extension cannot be built here: {err}")


def write_checkpoint(model: torch.nn.Module, path: Path, fmt: str) -> Path:
    """Save ``model`` the way the reference training code would (fmt: lightning, pth.tar,
    pth.tar-dp (DataParallel keys), state_dict)."""
    if fmt == "lightning":
        cfg = model.tvexport_config
        save_lightning(lightning_checkpoint(model, hparams={"model_name": cfg.name, "atom": "TVConv", "drop_ratio": cfg.drop_ratio}), path)
    elif fmt in ("pth.tar", "pth.tar-dp"):
        save_pth_tar(model, path, data_parallel=fmt.endswith("-dp"))
    elif fmt == "state_dict":
        torch.save(model.state_dict(), path)
    else:
        raise ValueError(fmt)
    return path


@pytest.fixture
def face_ckpt(tmp_path: Path) -> Path:
    """A Lightning-layout face MobileNetV2 x0.1 checkpoint with small generators."""
    return write_checkpoint(make_model(), tmp_path / "face.ckpt", "lightning")


@pytest.fixture(scope="session")
def demo_ckpt() -> Path:
    path = Path(__file__).resolve().parents[1] / "models" / "demo_face_mobilenetv2_x0_1.ckpt"
    if not path.exists():
        pytest.fail(f"shipped demo checkpoint missing: {path}")
    return path


@dataclasses.dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """Run ``tvexport ARGS...`` in-process; returns exit code and captured output."""
    from tvexport.cli import main

    def run(*args: object) -> CliResult:
        capsys.readouterr()
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return CliResult(code, out.out, out.err)

    return run


def pytest_configure(config: pytest.Config) -> None:
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
    # Under pytest-xdist (README: -n auto) each worker's torch takes its share of the cores, so
    # that N workers do not each spin all of them (2 workers x 2 threads on 2 cores ran the suite
    # slower than it should). Tests that set threads themselves (bench --threads, OpenVINO's
    # INFERENCE_NUM_THREADS) still do.
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
    if workers > 1:
        torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) // workers) if hasattr(os, "sched_getaffinity") else 1)


# Module- or session-scoped fixtures of a test file that are cheap to make again on each worker:
# builds cached on disk by source hash, module imports, a property of the extension, the README's
# quick start bake (seconds, for console examples that are worth spreading over the workers).
_CHEAP_SHARED_FIXTURES = frozenset({"extension", "kernel_variant", "micro", "fused", "ab", "quick_started"})


def _shared_fixture_group(item: pytest.Item) -> str | None:
    """The xdist group of a test that uses a module- or session-scoped fixture of its own test file
    (an export, a compiled package, a kernel run), so that the fixture is made once: the test file,
    with the params of those fixtures (each param is a fixture of its own)."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return None
    module = item.nodeid.split("::", 1)[0]
    shared = [name for name, defs in info.name2fixturedefs.items()
              if defs and defs[-1].scope in ("module", "session") and defs[-1].baseid == module and name not in _CHEAP_SHARED_FIXTURES]
    if not shared:
        return None
    params = getattr(getattr(item, "callspec", None), "params", {})
    # no brackets: pytest-xdist takes what follows the last "@" after the last "]" as the group
    return module + "".join(f" {name}={params[name]!r}".replace("[", "(").replace("]", ")") for name in sorted(shared) if name in params)


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]):
    """``slow`` tests (whole zoo networks through a compiler: minutes on 2 cores) run only with
    TVEXPORT_SLOW=1; the default suite covers the same code paths on small networks.

    Under ``--dist loadgroup`` (the README's test command) the tests that share an expensive fixture
    of their file run on one worker, so that it is made once, not once per worker."""
    for item in items:
        group = _shared_fixture_group(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
        if "slow" in item.keywords and os.environ.get("TVEXPORT_SLOW") != "1":
            item.add_marker(pytest.mark.skip(reason="slow: set TVEXPORT_SLOW=1 to run"))
    yield  # pytest-xdist's worker names each grouped item NODEID@GROUP here, for its scheduler ...
    if not getattr(config.option, "loadgroup", False):  # ... by setting item._nodeid, which pytest 9 no longer reads
        return
    try:  # pytest internals: where they moved, the groups are dropped (every test its own), never the run
        from _pytest.nodeid import NodeId
    except ImportError:
        return
    for item in items:
        groups = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in item.iter_markers("xdist_group")})
        if groups and "@" not in item.nodeid and hasattr(item, "_id"):
            item._id = NodeId.parse(f"{item.nodeid}@{'_'.join(groups)}")
