"""``tvexport bench`` end to end on tiny settings: outputs, one-line errors, nothing half-written.

The numbers are not checked (see benchmarks/ for measurements); the report structure is.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import torch

from tests.conftest import write_checkpoint
from tests.test_profile import _bake_result, _model, _weights_only
from tvexport.bake import save_baked
from tvexport.profile import validate_report

FAST = ["--min-iters", "2", "--min-seconds", "0", "--warmup-seconds", "0", "--threads", "1"]


@pytest.fixture
def ckpt(tmp_path: Path) -> Path:
    return write_checkpoint(_model("tvconv"), tmp_path / "face.ckpt", "lightning")


@pytest.fixture
def baked(tmp_path: Path) -> Path:
    """A baked file: loads without re-baking (and re-verifying), which keeps these tests fast."""
    path = tmp_path / "face.baked.pt"
    save_baked(_bake_result(), path)
    return path


def _one_line_error(result, exit_code: int = 2) -> str:
    assert result.exit_code == exit_code, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_bench_checkpoint_writes_every_report(cli, ckpt: Path, tmp_path: Path) -> None:
    out = {ext: tmp_path / f"r.{ext}" for ext in ("json", "csv", "md", "png")}
    threads = torch.get_num_threads()
    r = cli("bench", ckpt, "--batch", "1,2", *FAST, "-b", "torch-unbaked", "-b", "torch-baked", "--json", out["json"], "--csv", out["csv"], "--markdown", out["md"], "--plot", out["png"])
    assert r.exit_code == 0, r.stderr
    assert torch.get_num_threads() == threads  # --threads applies to the run only
    assert "torch-unbaked" in r.stdout and "torch-baked" in r.stdout and "tvconv/dwconv" in r.stdout
    report = json.loads(out["json"].read_text())
    assert validate_report(report) == []
    assert [(c["backend"], c["batch"]) for c in report["cases"]] == [("torch-unbaked", 1), ("torch-unbaked", 2), ("torch-baked", 1), ("torch-baked", 2)]
    assert report["settings"]["threads"] == 1 and report["settings"]["min_iters"] == 2
    assert report["source"]["kind"] == "checkpoint" and report["source"]["path"] == str(ckpt)
    assert report["command"].startswith("tvexport bench ") and "--batch 1,2" in report["command"] and "--threads 1" in report["command"]
    assert all(r["stats"]["n"] == 2 for c in report["cases"] for r in c["results"])
    rows = list(csv.DictReader(out["csv"].open()))
    assert len(rows) == 4 * 3
    md = out["md"].read_text()
    assert md.startswith("## face_mobilenetv2_x0_1") and "| torch-baked | 2 |" in md
    assert out["png"].read_bytes()[:4] == b"\x89PNG"
    for path in out.values():
        assert f"wrote {path}" in r.stderr.replace("\n", "")


def test_bench_registry_name_json_to_stdout(cli) -> None:
    r = cli("bench", "face_mobilenetv2_x0_1", "-b", "torch-baked", *FAST, "--json", "-")
    assert r.exit_code == 0, r.stderr
    report = json.loads(r.stdout)  # stdout holds only the JSON; the table went to stderr
    assert validate_report(report) == []
    assert report["source"] == {"kind": "registry", "arch": "face_mobilenetv2_x0_1"}
    assert report["arch"]["tv"]["inter_chans"] == 64 and report["arch"]["tv"]["inter_layers"] == 3  # reference TV settings
    assert [n["origin"] for n in report["networks"]] == ["random weights, reference TV settings", "random weights"]
    # "arch input 3x96x96: tvconv (origin), dwconv (origin)", without brackets within brackets
    header = next(line for line in r.stderr.splitlines() if line.startswith("face_mobilenetv2_x0_1 input"))
    depth = [header[: i + 1].count("(") - header[: i + 1].count(")") for i in range(len(header))]
    assert max(depth) == 1 and depth[-1] == 0, header
    assert "torch-baked" in r.stderr



@pytest.mark.parametrize("option", ["--csv", "--markdown"])
def test_bench_dash_writes_the_report_to_stdout(cli, baked: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, option: str) -> None:
    """Before: `--csv -` and `--markdown -` wrote a file named '-' (only `--json -` meant stdout)."""
    monkeypatch.chdir(tmp_path)
    r = cli("bench", baked, "-b", "torch-baked", *FAST, option, "-")
    assert r.exit_code == 0, r.stderr
    assert not (tmp_path / "-").exists()
    if option == "--csv":  # stdout holds only the report; the table went to stderr
        rows = list(csv.DictReader(io.StringIO(r.stdout)))
        assert [(row["kind"], row["network"]) for row in rows] == [("latency", "tvconv"), ("latency", "dwconv"), ("ratio", "tvconv/dwconv")]
    else:
        assert r.stdout.startswith("## face_mobilenetv2_x0_1") and "| torch-baked | 1 |" in r.stdout
    assert "torch-baked" in r.stderr and "wrote" not in r.stderr


def test_bench_dash_is_refused_where_stdout_cannot_take_it(cli, baked: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    line = _one_line_error(cli("bench", baked, "--json", "-", "--csv", "-"))
    assert line == "error: --json and --csv are both '-': only one report can go to stdout; keep '-' for --json and write the other to a file, e.g. --csv bench.csv"
    line = _one_line_error(cli("bench", baked, "--json", "-", "--csv", "-", "--markdown", "-"))
    assert line.startswith("error: --json, --csv and --markdown are all '-': ") and line.endswith("write the others to files, e.g. --csv bench.csv --markdown bench.md")
    assert "--plot -: a PNG is not written to stdout" in _one_line_error(cli("bench", baked, "--plot", "-"))
    assert not (tmp_path / "-").exists()

def test_bench_per_layer(cli, baked: Path, tmp_path: Path) -> None:
    md = tmp_path / "r.md"
    r = cli("bench", baked, "-b", "torch-baked", *FAST, "--per-layer", "--layer-seconds", "0", "--markdown", md)
    assert r.exit_code == 0, r.stderr
    assert "per TV layer" in r.stdout and "features.17.conv.1.0" in r.stdout
    assert "### Per layer" in md.read_text() and "GB/s" in md.read_text()


def test_bench_baked_file_skips_unbaked(cli, baked: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tvexport.profile import backends

    # the default run (every registered backend), without the compiling ones that take minutes
    monkeypatch.setattr(backends, "REGISTRY", {k: backends.REGISTRY[k] for k in ("torch-unbaked", "torch-baked")})
    path = baked
    r = cli("bench", path, *FAST)
    assert r.exit_code == 0, r.stderr
    assert "skipped torch-unbaked: SRC is a baked file" in r.stderr
    line = _one_line_error(cli("bench", path, "-b", "torch-unbaked", *FAST))
    assert "torch-unbaked cannot run: SRC is a baked file" in line


def test_bench_user_errors_are_one_line(cli, ckpt: Path, tmp_path: Path) -> None:
    assert "unknown backend 'tensorflow'" in _one_line_error(cli("bench", ckpt, "-b", "tensorflow"))
    assert "runs only at its trained input size 96x96, not 112x112" in _one_line_error(cli("bench", ckpt, "--input-size", "112x112"))
    assert "cannot read input size" in _one_line_error(cli("bench", ckpt, "--input-size", "big"))
    assert "no dense baseline for face_mobilenetv2" in _one_line_error(cli("bench", ckpt, "--dense"))
    assert "neither an existing file nor a known architecture" in _one_line_error(cli("bench", tmp_path / "nope.ckpt"))
    assert "batch sizes are positive integers" in _one_line_error(cli("bench", ckpt, "--batch", "1,0"))
    assert "batch sizes are positive integers" in _one_line_error(cli("bench", ckpt, "--batch", "eight"))
    other = write_checkpoint(_weights_only("face_mobilenetv2_x0_2", "dwconv"), tmp_path / "dw.pth.tar", "pth.tar")
    assert "is a face_mobilenetv2_x0_2, but the TV network is a face_mobilenetv2_x0_1" in _one_line_error(cli("bench", ckpt, "--baseline", other))
    if not torch.cuda.is_available():
        assert "--device cuda: CUDA is not available" in _one_line_error(cli("bench", ckpt, "--device", "cuda"))


@pytest.mark.parametrize(("option", "value"), [("--max-seconds", "nan"), ("--cv-warn", "nan"), ("--cv-warn", "inf"), ("--min-seconds", "inf"), ("--max-seconds", "-1")])
def test_bench_refuses_nan_and_nonsense_seconds(cli, baked: Path, tmp_path: Path, no_run, option: str, value: str) -> None:
    """Before: NaN passed every `x <= 0` check, so `--max-seconds nan` (no limit) and `--cv-warn nan`
    (never warns) ran and exited 0, and `--min-seconds inf` timed its first case forever."""
    report = tmp_path / "r.json"
    args = ["-b", "torch-baked", *FAST]
    if option in args:  # FAST sets --min-seconds and --warmup-seconds: the value under test replaces it
        i = args.index(option)
        del args[i : i + 2]
    line = _one_line_error(cli("bench", baked, *args, option, value, "--json", report))
    assert line.startswith(f"error: {option} {value}"), line
    assert not report.exists()


def test_bench_refuses_to_overwrite_before_running(cli, baked: Path, tmp_path: Path) -> None:
    ckpt = baked
    existing = tmp_path / "r.json"
    existing.write_text("keep me")
    line = _one_line_error(cli("bench", ckpt, "--json", existing))
    assert "already exists" in line and "--force" in line
    assert existing.read_text() == "keep me"
    assert "does not exist" in _one_line_error(cli("bench", ckpt, "--csv", tmp_path / "missing-dir" / "r.csv"))
    r = cli("bench", ckpt, "-b", "torch-baked", *FAST, "--json", existing, "--force")
    assert r.exit_code == 0 and validate_report(json.loads(existing.read_text())) == []
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.fixture
def no_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refusals must come before any work: loading or timing fails the test."""
    import tvexport.profile as profile

    def never(*args, **kwargs):
        raise AssertionError("the benchmark started")

    monkeypatch.setattr(profile, "load_subject", never)
    monkeypatch.setattr(profile, "run_bench", never)


@pytest.mark.parametrize("option", ["--json", "--csv", "--markdown", "--plot"])
@pytest.mark.parametrize("force", [False, True])
def test_bench_empty_report_name_is_refused(cli, baked: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_run, option: str, force: bool) -> None:
    """Before: `--json ""` (an unset variable) was read by typer as '.', refused as `--json . is a
    directory`, a name never typed; now one line about the empty name, as `-o ""` (_io.refuse_empty)."""
    monkeypatch.chdir(tmp_path)
    line = _one_line_error(cli("bench", baked, "-b", "torch-baked", *FAST, option, "", *(["--force"] if force else [])))
    assert line == f"error: {option} '' is an empty name (an unset variable?); give a file name with {option}, or leave {option} out", line
    assert sorted(p.name for p in tmp_path.iterdir()) == [baked.name]


@pytest.mark.parametrize("option", ["--json", "--csv", "--markdown", "--plot"])
def test_bench_never_overwrites_src_or_baseline(cli, baked: Path, tmp_path: Path, no_run, option: str) -> None:
    """Before: `bench X.baked.pt --markdown X.baked.pt --force` ran, then replaced the benchmarked
    file by the report (same for --baseline)."""
    before = baked.read_bytes()
    line = _one_line_error(cli("bench", baked, "-b", "torch-baked", *FAST, option, baked, "--force"))
    assert line.startswith(f"error: {option} {baked} is the input file (SRC)"), line
    assert baked.read_bytes() == before
    dw = write_checkpoint(_weights_only("face_mobilenetv2_x0_1", "dwconv"), tmp_path / "dw.pth.tar", "pth.tar")
    before = dw.read_bytes()
    line = _one_line_error(cli("bench", baked, "--baseline", dw, option, tmp_path / "." / "dw.pth.tar", "--force"))
    assert "is the input file (--baseline)" in line
    assert dw.read_bytes() == before
    # other spellings of the same file: a symlink to it, a detour through a folder
    (tmp_path / "sub").mkdir(exist_ok=True)
    link, src_bytes = tmp_path / "link.pt", baked.read_bytes()
    link.symlink_to(baked)
    for spelling in (link, tmp_path / "sub" / ".." / baked.name):
        line = _one_line_error(cli("bench", baked, "-b", "torch-baked", *FAST, option, spelling, "--force"))
        assert "is the input file (SRC)" in line, line
    assert baked.read_bytes() == src_bytes


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_bench_refuses_two_reports_in_one_file(cli, baked: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_run, force: list[str]) -> None:
    """Before: `--json same.out --csv same.out` ran the whole benchmark, wrote the JSON, then failed
    on the CSV ("already exists"); with --force the later report silently replaced the earlier one."""
    monkeypatch.chdir(tmp_path)
    line = _one_line_error(cli("bench", baked, "--json", "same.out", "--csv", tmp_path / "same.out", *force))
    assert line.startswith("error: --json and --csv both name ") and "give each report its own file" in line, line
    line = _one_line_error(cli("bench", baked, "--plot", "p.png", "--markdown", "x.md", "--json", "./p.png", *force))
    assert line.startswith("error: --json and --plot both name p.png"), line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["face.baked.pt"]


def test_bench_max_seconds_inf_writes_valid_json(cli, baked: Path) -> None:
    """Before: `--max-seconds inf` (no limit) put `Infinity`, which is not JSON, in the report."""
    r = cli("bench", baked, "-b", "torch-baked", *FAST, "--max-seconds", "inf", "--json", "-")
    assert r.exit_code == 0, r.stderr
    report = json.loads(r.stdout, parse_constant=lambda c: pytest.fail(f"{c} in the JSON report"))
    assert report["settings"]["max_seconds"] is None and validate_report(report) == []


def test_bench_zero_median_is_one_line(cli, baked: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A timer that does not resolve a run (median 0 s): before, the throughput was infinite and the
    run ended in "internal error: ValueError" (here from the paired ratio; with a baseline that the
    timer resolved, from --json refusing the infinity)."""
    import tvexport.profile.bench as bench
    from tvexport.profile import CpuTimer

    monkeypatch.setattr(bench, "make_timer", lambda device: CpuTimer(lambda: 0.0))
    report = tmp_path / "r.json"
    line = _one_line_error(cli("bench", baked, "-b", "torch-baked", *FAST, "--json", report))
    assert line.startswith("error: torch-baked batch 1: median latency is 0 s over 2 timed runs: the timer does not resolve one run"), line
    assert not report.exists()


def test_bench_seed_outside_64_bits_is_one_line(cli, baked: Path) -> None:
    """Before: `--seed 2**70` reached torch.manual_seed: internal error (exit 3) after loading SRC."""
    for seed in (2**70, 2**63, -(2**63) - 1):
        line = _one_line_error(cli("bench", "face_mobilenetv2_x0_1", *FAST, "--seed", seed))
        assert line.startswith(f"error: --seed {seed} is out of range"), line
    for seed in (2**63 - 1, -(2**63)):  # the ends of the range work (baselines use seed + 1, seed + 2)
        r = cli("bench", baked, "-b", "torch-baked", *FAST, "--seed", seed)
        assert r.exit_code == 0, r.stderr


def test_bench_help_describes_bench_options(cli) -> None:
    """Before: bench's --input-size help was bake's ("re-bake every TV layer"), and --max-seconds
    claimed to stop a case, while the warm-up it does not bound can take longer."""
    r = cli("bench", "--help")
    assert r.exit_code == 0
    text = " ".join(r.stdout.replace("│", " ").split())
    assert "re-bake every TV layer" not in text
    assert "checked against the size SRC was trained or re-baked for" in text
    assert "the warm-up (--warmup-seconds) is not counted" in text
    text = " ".join(cli("bake", "--help").stdout.replace("│", " ").split())
    assert "Input size to re-bake every TV layer for" in text and "bench:" not in text


@pytest.mark.parametrize(("name", "fixed"), [("bench.svg", "bench.png"), ("bench.JPG", "bench.png"), ("bench.pdf", "bench.png"), ("bench", "bench.png"),
                                            ("bench_x0.1", "bench_x0.1.png"), (".png", "plot.png"), (".svg", "plot.png")])
def test_bench_plot_of_another_format_is_refused_before_the_run(cli, baked: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_run,
                                                                 name: str, fixed: str) -> None:
    """--plot writes a PNG whatever the name says. Before: `--plot bench.svg` ran the benchmark and
    wrote PNG bytes into bench.svg (a browser or viewer shows a broken file); `--plot .png` (a
    suffix alone, e.g. "$NAME.png" with NAME unset) was told to "name it .png.png"."""
    monkeypatch.chdir(tmp_path)
    line = _one_line_error(cli("bench", baked, "-b", "torch-baked", *FAST, "--plot", name))
    said = f"{name} is a suffix alone, a hidden file with no name" if fixed == "plot.png" else "the plot is a PNG image"
    assert line.startswith(f"error: --plot {name}: {said}") and line.endswith(f"name it {fixed}"), line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["face.baked.pt"]
    r = cli("bench", baked, "-b", "torch-baked", *FAST, "--plot", "BENCH.PNG")  # .PNG is a PNG: past the checks, into the (stubbed) run
    assert r.exit_code == 3 and "the benchmark started" in r.stderr, r.stderr
