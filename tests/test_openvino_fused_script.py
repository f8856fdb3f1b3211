"""benchmarks/openvino_fused.py: a width sweep merged into a results file keeps the paired rows'
machine line and bandwidth, and records its own machine line and build."""

from __future__ import annotations

import copy
import importlib
import json
import statistics
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

pytest.importorskip("openvino")

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
RESULTS = BENCHMARKS / "results" / "openvino_fused_zen4.json"


@pytest.fixture(scope="module")
def fused() -> ModuleType:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return importlib.import_module("openvino_fused")
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_sweep_only_keeps_the_paired_rows_machine(fused: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    previous = json.loads(RESULTS.read_text())
    previous["machine_text"] = "paired rows' machine; load average 0.1/0.1/0.1"
    sweep = {k: v for k, v in previous["sweep"].items() if k not in ("command", "machine_text", "kernel", "extension")}
    (tmp_path / "merged.json").write_text(json.dumps(previous))

    def no_bandwidth() -> None:
        raise AssertionError("a sweep merged into paired rows must not re-measure their bandwidth")

    monkeypatch.setattr(fused, "copy_bandwidth", no_bandwidth)
    monkeypatch.setattr(fused, "width_sweep", lambda args: {**copy.deepcopy(sweep), "kernel": "K", "extension": "E"})
    monkeypatch.setattr(sys, "argv", ["openvino_fused.py", "--sweep-only", "--name", "merged", "--out", str(tmp_path)])
    assert fused.main() == 0
    merged = json.loads((tmp_path / "merged.json").read_text())
    assert merged["machine_text"] == previous["machine_text"] and merged["bandwidth"] == previous["bandwidth"]
    assert merged["cases"] == previous["cases"]
    assert merged["sweep"]["machine_text"] != previous["machine_text"] and merged["sweep"]["extension"] == "E"
    text = (tmp_path / "merged.md").read_text()
    assert f"Machine: {previous['machine_text']}." in text
    assert "Sweep machine: " in text and "TV kernel, extension build: K E." in text
    # the two tables run onnxruntime with different settings, and both say so
    assert "onnxruntime with its intra-op threads' spinning off" in text.split("## Per TV layer")[0]
    assert "intra-op threads spinning between runs" in text.split("## Width sweep")[1] and "spinning off" in text.split("## Width sweep")[1]
    assert (tmp_path / "merged_width_sweep.png").stat().st_size > 0


@pytest.mark.parametrize("arch", ["face_shufflenetv2_x1_0", pytest.param("deeplabv3plus_mobilenetv2", marks=pytest.mark.slow)])
def test_dw_layers_stand_where_the_tv_layers_do(fused: ModuleType, arch: str) -> None:
    """Each TV layer gets the DW network's depthwise convolution of its geometry, in network order,
    whose floor moves the same activation bytes; depthwise convolutions the TV network keeps
    (DeepLabV3+'s backbone) are left out."""
    from onnx import numpy_helper

    from tvexport.profile import load_subject

    subject = load_subject(arch)
    tv, dw = subject.networks[0].form("baked"), subject.networks[1].form("baked")
    # graphs(tv=True)["plugin"], without the portable and compressed TV graphs it also exports (not used here)
    g_tv, g_dw = fused.plugin_graph(tv, 2), fused.graphs(dw, 2, tv=False)["portable"]
    tv_floors, dw_floors = fused.floor_bytes(g_tv, 2), fused.dw_layers(g_dw, g_tv, 2)
    depthwise = [n for n in g_dw.graph.node if n.op_type == "Conv" and any(a.name == "group" and a.i > 1 for a in n.attribute)]
    assert len(dw_floors) == len(tv_floors) == len(fused.tv_nodes(g_tv))
    if arch.startswith("deeplab"):
        assert len(depthwise) > len(dw_floors)  # the backbone's stay depthwise in both networks
    # the two graphs' node and initializer names overlap: one table each
    inits = [{t.name: numpy_helper.to_array(t) for t in g.graph.initializer} for g in (g_tv, g_dw)]
    nodes = [{n.name: n for n in g.graph.node} for g in (g_tv, g_dw)]
    order = [n.name for n in depthwise]
    assert [order.index(n) for n in dw_floors] == sorted(order.index(n) for n in dw_floors)  # network order
    for (tv_name, tv_bytes), (dw_name, dw_bytes) in zip(tv_floors.items(), dw_floors.items()):
        tv_node, dw_node = nodes[0][tv_name], nodes[1][dw_name]
        c = inits[0][tv_node.input[1]].shape[0]
        assert inits[1][dw_node.input[1]].shape[:2] == (c, 1)
        stored_tv = sum(inits[0][i].nbytes for i in tv_node.input[1:] if i)
        stored_dw = sum(inits[1][i].nbytes for i in dw_node.input[1:] if i)
        assert tv_bytes - stored_tv == dw_bytes - stored_dw > 0  # the same input and output bytes


def _merge_run(fused: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, previous: dict, *args: str) -> list[str]:
    """Run main() merging face_mobilenetv2_x0_1 batch 1 into ``previous`` (saved as merged.json) on
    the file's own machine and versions, nothing timed; returns the cases' (arch, batch) asked for."""
    import openvino

    previous["versions"] = {**previous["versions"], "openvino": openvino.__version__}
    (tmp_path / "merged.json").write_text(json.dumps(previous))
    row = next(c for c in previous["cases"] if (c["arch"], c["batch"]) == ("face_mobilenetv2_x0_1", 1))
    ran: list[str] = []

    def network_case(arch: str, batch: int, args: object, bandwidth: float) -> dict:
        ran.append(f"{arch} {batch}")
        return {k: v for k, v in copy.deepcopy(row).items() if k != "command"}

    monkeypatch.setattr(fused, "network_case", network_case)
    monkeypatch.setattr(fused, "bandwidth_with", lambda threads: {**previous["bandwidth"], "threads": threads})
    monkeypatch.setattr(fused, "machine_info", lambda device: copy.deepcopy(previous["machine"]))
    monkeypatch.setattr(fused, "versions", lambda: {k: v for k, v in previous["versions"].items() if k != "openvino"})
    monkeypatch.setattr(sys, "argv", ["openvino_fused.py", "--arch", "face_mobilenetv2_x0_1", "--batch", "1", "--no-sweep",
                                      "--name", "merged", "--out", str(tmp_path), *args])
    fused.main()
    return ran


def test_full_run_sweeps_in_a_process_of_its_own(fused: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --no-sweep, the paired rows are written, then the sweep runs in a child process
    (--sweep-only, merged into the same file), never after the paired cases in their process (there
    its small-width TV times were ~2x their paired rows')."""
    import subprocess

    previous = json.loads(RESULTS.read_text())
    calls: list[list[str]] = []

    def child(cmd: list[str], **kw: object) -> subprocess.CompletedProcess:
        calls.append(list(cmd))
        assert json.loads((tmp_path / "merged.json").read_text())["cases"], "paired rows written before the sweep"
        return subprocess.CompletedProcess(cmd, 0)

    def no_sweep_here(args: object) -> None:
        raise AssertionError("the sweep must not run in the paired cases' process")

    monkeypatch.setattr(fused, "width_sweep", no_sweep_here)
    monkeypatch.setattr(fused.subprocess, "run", child)
    monkeypatch.setattr(fused, "fma_peak", lambda threads: {"error": "not measured in this test"})
    monkeypatch.setattr(fused, "network_case", lambda arch, batch, args, bw: {k: v for k, v in copy.deepcopy(
        next(c for c in previous["cases"] if (c["arch"], c["batch"]) == ("face_mobilenetv2_x0_1", 1))).items() if k != "command"})
    monkeypatch.setattr(fused, "bandwidth_with", lambda threads: {**previous["bandwidth"], "threads": threads})
    monkeypatch.setattr(sys, "argv", ["openvino_fused.py", "--arch", "face_mobilenetv2_x0_1", "--batch", "1",
                                      "--name", "merged", "--out", str(tmp_path)])
    assert fused.main() == 0
    assert len(calls) == 1 and calls[0][0] == sys.executable and calls[0][-1] == "--sweep-only"
    assert calls[0][1].endswith("openvino_fused.py") and "--name" in calls[0] and str(tmp_path) in calls[0]


def test_merge_with_other_settings_refused(fused: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run whose threads (or machine, or versions) differ from the file's would relabel the rows it
    keeps under the file's one header: refused in one line before anything is timed, file untouched."""
    previous = json.loads(RESULTS.read_text())
    with pytest.raises(SystemExit) as exc:
        _merge_run(fused, tmp_path, monkeypatch, previous, "--threads", "1")
    message = str(exc.value.code)
    assert message.startswith("error: ") and "\n" not in message
    assert "threads: 2 -> 1" in message and "7 rows" in message and "--name" in message
    assert json.loads((tmp_path / "merged.json").read_text()) == previous and not (tmp_path / "merged.md").exists()
    # another openvino version is refused the same way
    previous["versions"]["openvino"] = "0.0"
    monkeypatch.setattr(fused, "versions", lambda: {k: v for k, v in previous["versions"].items() if k != "openvino"})
    (tmp_path / "other.json").write_text(json.dumps(previous))
    monkeypatch.setattr(sys, "argv", ["openvino_fused.py", "--arch", "face_mobilenetv2_x0_1", "--batch", "1", "--no-sweep",
                                      "--name", "other", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match=r"openvino 0\.0 -> "):
        fused.main()


def test_merge_with_the_same_settings_or_replacing_every_row(fused: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    previous = json.loads(RESULTS.read_text())
    assert _merge_run(fused, tmp_path, monkeypatch, copy.deepcopy(previous), "--threads", str(previous["threads"])) == ["face_mobilenetv2_x0_1 1"]
    merged = json.loads((tmp_path / "merged.json").read_text())
    assert len(merged["cases"]) == len(previous["cases"]) and merged["threads"] == previous["threads"]
    # other settings are fine when the run replaces every row the file holds
    only = {**copy.deepcopy(previous), "cases": [c for c in previous["cases"] if (c["arch"], c["batch"]) == ("face_mobilenetv2_x0_1", 1)]}
    assert _merge_run(fused, tmp_path, monkeypatch, only, "--threads", "1") == ["face_mobilenetv2_x0_1 1"]
    merged = json.loads((tmp_path / "merged.json").read_text())
    assert merged["threads"] == 1 and len(merged["cases"]) == 1


def _layer_table(md: str) -> dict[tuple[str, ...], str]:
    """(network, batch, kernels) -> the 'layer data MiB, TV / DW' cell of the per-layer table."""
    table = md.split("## Per TV layer")[1].split("## Width sweep")[0]
    return {tuple(c.strip() for c in line.split("|")[1:4]): line.split("|")[-2].strip()
            for line in table.splitlines() if line.startswith(("| face", "| deeplab"))}


def test_rows_whose_layer_data_fits_l3_are_marked(fused: ModuleType, tmp_path: Path) -> None:
    """The per-layer table marks rows whose layers' data (kernels + inputs + outputs) fits in the
    recorded L3 (there the DRAM floor is not binding) and says so under the table; rows recorded
    without the L3 size are not marked, and the note says why."""
    result = json.loads((BENCHMARKS / "results" / "openvino_fused_zen5_17ae.json").read_text())
    result.pop("l3_bytes", None)
    fused.render(copy.deepcopy(result), tmp_path, "old")
    old = (tmp_path / "old.md").read_text()
    cells = _layer_table(old)
    assert cells[("face_mobilenetv2_x0_1", "1", "f32")] == "20.8 / 5.2" and not any("*" in c for c in cells.values())
    assert "No row is marked: these rows did not record the L3 size" in old
    fused.render({**result, "l3_bytes": 32 * 2**20}, tmp_path, "new")
    new = (tmp_path / "new.md").read_text()
    cells = _layer_table(new)
    assert cells[("face_mobilenetv2_x0_1", "1", "f32")] == "20.8* / 5.2*"  # 16 MB of float32 kernels stay in the 32 MiB L3
    assert cells[("face_mobilenetv2_x0_1", "16", "f32")] == "98.2 / 82.7"
    assert cells[("face_mobilenetv2_x1_0", "1", "f32")] == "75.0 / 17.2*"
    assert "Rows marked \\*: the layers' data" in new and "fits in the 32 MiB L3 (unmarked rows' data does not)" in new and "not binding" in new


def test_main_table_shows_the_inference_precision(fused: ModuleType, tmp_path: Path) -> None:
    """Before: the precision OpenVINO computed in (read back from the compiled models) was not in the
    results. Each row records it and the main table shows it in a last column (earlier columns keep
    their order); rows recorded without it show '-'."""
    result = json.loads((BENCHMARKS / "results" / "openvino_fused_zen5_17ae.json").read_text())
    first, second = result["cases"][:2]
    first["precision"] = {"ov-fused": "f32", "ov-fused-f16": "f32", "ov-fused-int8": "f32", "ov-portable": "f32", "ov-dw": "f32"}
    second["precision"] = {**first["precision"], "ov-dw": "bf16"}
    fused.render(result, tmp_path, "p")
    table = (tmp_path / "p.md").read_text().split("## Per TV layer")[0]
    header = next(line for line in table.splitlines() if line.startswith("| network"))
    cells = [c.strip() for c in header.split("|")[1:-1]]
    assert cells[0] == "network" and cells[-2:] == ["kernel, extension build", "OpenVINO precision"]
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in table.splitlines() if line.startswith(("| face", "| deeplab"))]
    assert all(len(r) == len(cells) for r in rows)
    assert [r[-1] for r in rows] == ["f32", "ov-fused f32, ov-fused-f16 f32, ov-fused-int8 f32, ov-portable f32, ov-dw bf16"] + ["-"] * (len(rows) - 2)


def test_folded_layers_floor_counts_what_they_move(fused: ModuleType, tmp_path: Path) -> None:
    """Before: a TV layer the runner folded its 1x1 convolution into (timed with the convolution's
    work, reading its narrow input) kept the floor of the expanded input it no longer reads, and the
    table did not say which layers were folded. Now layer_profile records them, their floor is the
    narrow input + the convolution's weight and bias + stored kernels + output, and the per-layer
    table says how many were folded ('-' for rows recorded before)."""
    from onnx import numpy_helper

    from tvexport.bake import random_inputs
    from tvexport.models.registry import config_of
    from tvexport.profile import load_subject

    model = load_subject("face_mobilenetv2_x0_1").networks[0].form("baked")
    graph = fused.plugin_graph(model, 2)
    x = np.ascontiguousarray(random_inputs((2, *config_of(model).input_shape), seed=0).numpy())
    prof = fused.layer_profile(graph, x, threads=1, runs=1)
    tv = fused.tv_nodes(graph)
    assert 0 < len(prof["folded"]) < len(tv)  # face MobileNetV2's first TV layer has no expand convolution
    plain, folded = fused.floor_bytes(graph, 2), fused.floor_bytes(graph, 2, folded=prof["folded"])
    inits = {t.name: numpy_helper.to_array(t) for t in graph.graph.initializer}
    nodes = {n.name: n for n in graph.graph.node}
    for name in tv:
        if name not in prof["folded"]:
            assert folded[name] == plain[name]
            continue
        node, conv = nodes[name], fused.pointwise_conv(graph, nodes[name])
        c, _, h, w = inits[node.input[1]].shape
        cout, cin, _, _ = inits[conv.input[1]].shape
        s = next(a.i for a in node.attribute if a.name == "stride")
        stored = sum(inits[i].nbytes for i in [*node.input[1:], *conv.input[1:]] if i)
        assert cout == c and folded[name] == stored + 4 * 2 * (cin * h * s * w * s + c * h * w) < plain[name]
    result = json.loads((BENCHMARKS / "results" / "openvino_fused_zen5_17ae.json").read_text())
    layers = result["cases"][0]["layers"]["ov-fused"]
    fused.render(copy.deepcopy(result), tmp_path, "old")
    layers["folded"] = [row["name"] for row in layers["layers"][1:4]]
    fused.render(result, tmp_path, "new")
    for md, cell in (("old", "-"), ("new", f"3 of {len(layers['layers'])}")):
        table = (tmp_path / f"{md}.md").read_text().split("## Per TV layer")[1]
        header = next(line for line in table.splitlines() if line.startswith("| network"))
        row = next(line for line in table.splitlines() if line.startswith("| face"))
        assert dict(zip(header.split("|"), row.split("|")))[" folded "].strip() == cell
    assert "'folded': the TV layers the runner folded their 1x1 convolution into" in table


def test_floors_count_the_real_input_size(fused: ModuleType) -> None:
    """A stride-2 layer on an odd input (7x7 -> 4x4 at k=3, padding 1): the memory floor counts the
    7x7 input it reads, and a folded layer's floor and multiply-adds the 7x7 positions of its 1x1
    convolution's input (before: h*s x w*s = 8x8 in both, 31 % more input than there is). Where
    the graph does not declare the input's shape, 8x8 from the output size is all there is."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from tvexport.export._onnx_tv import layer_model

    rng = np.random.default_rng(0)
    c, cin, batch = 8, 3, 2
    weight, bias = rng.standard_normal((c, 9, 4, 4)).astype(np.float32), rng.standard_normal((c, 4, 4)).astype(np.float32)
    plain = layer_model(weight, bias, stride=2, method="plugin", batch=batch)
    plain.graph.input[0].CopyFrom(helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, c, 7, 7]))
    stored = weight.nbytes + bias.nbytes
    assert fused.floor_bytes(plain, batch) == {"tv": stored + 4 * batch * (c * 7 * 7 + c * 4 * 4)}
    assert fused.multiply_adds(plain, batch) == {"tv": batch * c * 9 * 4 * 4}
    # the same layer behind a 1x1 convolution from cin channels (what the runner folds into it)
    folded = onnx.ModelProto()
    folded.CopyFrom(plain)
    pw = rng.standard_normal((c, cin, 1, 1)).astype(np.float32)
    folded.graph.initializer.append(numpy_helper.from_array(pw, "pw.weight"))
    folded.graph.node.insert(0, helper.make_node("Conv", ["x_in", "pw.weight"], ["x"], name="pw"))
    folded.graph.input[0].CopyFrom(helper.make_tensor_value_info("x_in", TensorProto.FLOAT, [batch, cin, 7, 7]))
    folded.graph.value_info.append(helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, c, 7, 7]))
    assert fused.floor_bytes(folded, batch, folded=["tv"]) == {"tv": stored + pw.nbytes + 4 * batch * (cin * 7 * 7 + c * 4 * 4)}
    assert fused.multiply_adds(folded, batch, folded=["tv"]) == {"tv": batch * c * 9 * 4 * 4 + batch * cin * c * 7 * 7}
    del folded.graph.value_info[:]  # the TV input's size unknown: estimated from the output
    assert fused.floor_bytes(folded, batch, folded=["tv"]) == {"tv": stored + pw.nbytes + 4 * batch * (cin * 8 * 8 + c * 4 * 4)}


def _layer_cells(md: str) -> list[dict[str, str]]:
    """The per-layer table's rows, each as {header: cell}."""
    table = md.split("## Per TV layer")[1].split("## Width sweep")[0]
    header = next(line for line in table.splitlines() if line.startswith("| network"))
    names = [c.strip() for c in header.split("|")[1:-1]]
    return [dict(zip(names, (c.strip() for c in line.split("|")[1:-1]))) for line in table.splitlines() if line.startswith(("| face", "| deeplab"))]


def test_compute_floor_and_roofline_on_a_tiny_run(fused: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: the per-layer table set each TV layer only against its memory floor, though a layer
    with a folded 1x1 convolution also does that convolution's multiply-adds (on AVX2 bound by
    them). A tiny run records each layer's multiply-adds (k*k per output element, + cin x C per
    input position where folded: counted here from the ONNX shapes), the multiply-add peak measured
    in the run, and the table shows the compute floor and time / max(memory floor, compute floor)
    (worst and median layer) beside the memory-floor columns, which keep their values."""
    import onnx
    from onnx import numpy_helper

    made: dict[str, object] = {}  # the plugin graphs the run made (by kernel dtype): the ones its counters profiled
    plugin_graph = fused.plugin_graph

    def keep(model: object, batch: int, kernel_dtype: str = "float32") -> object:
        made[kernel_dtype] = graph = plugin_graph(model, batch, kernel_dtype)
        return graph

    monkeypatch.setattr(fused, "plugin_graph", keep)
    monkeypatch.setattr(sys, "argv", ["openvino_fused.py", "--arch", "face_mobilenetv2_x0_1", "--batch", "2", "--no-sweep", "--quick",
                                      "--threads", "1", "--layer-runs", "2", "--name", "tiny", "--out", str(tmp_path)])
    assert fused.main() == 0
    result = json.loads((tmp_path / "tiny.json").read_text())
    (case,) = result["cases"]
    peak = case["fma_peak"]
    assert peak == result["fma_peak"] and peak["threads"] == 1 and peak["gfma_per_s"] > 0
    # multiply-adds from the graph's shapes (the folded convolutions' inputs from shape inference), of
    # the float32 plugin graph the run exported for face_mobilenetv2_x0_1 batch 2 (not exported again)
    graph = made["float32"]
    inferred = onnx.shape_inference.infer_shapes(graph)
    shapes = {vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim] for vi in [*inferred.graph.value_info, *inferred.graph.input]}
    inits = {t.name: numpy_helper.to_array(t) for t in graph.graph.initializer}
    nodes = {n.name: n for n in graph.graph.node}
    prof = case["layers"]["ov-fused"]
    assert prof["folded"]
    for row in prof["layers"]:
        c, kk, h, w = inits[nodes[row["name"]].input[1]].shape
        expect = 2 * c * kk * h * w
        if row["folded"]:
            conv = fused.pointwise_conv(graph, nodes[row["name"]])
            n, cin, ih, iw = shapes[conv.input[0]]
            expect += n * ih * iw * cin * inits[conv.input[1]].shape[0]
        assert row["macs"] == expect
    md = (tmp_path / "tiny.md").read_text()
    assert "'x roofline' = time / max(memory floor, compute floor)" in md and "No compute floor" not in md
    for kind, cells in zip(case["layers"], _layer_cells(md)):
        rows = case["layers"][kind]["layers"]
        compute_ms = sum(r["macs"] for r in rows) / (peak["gfma_per_s"] * 1e9) * 1e3
        roof = sorted(r["us"] / max(r["floor_us"], r["macs"] / (peak["gfma_per_s"] * 1e3)) for r in rows)
        floor = sorted(r["us"] / r["floor_us"] for r in rows)
        assert cells["TV compute floor ms"] == f"{compute_ms:.3g}" and cells["peak GFMA/s"] == f"{peak['gfma_per_s']:.0f}"
        assert cells["worst layer x roofline"] == f"{roof[-1]:.2f}" and cells["median layer x roofline"] == f"{statistics.median(roof):.2f}"
        assert cells["worst layer x floor"] == f"{floor[-1]:.2f}"  # the memory-floor columns as before


def test_no_compute_floor_where_the_helper_cannot_be_built(fused: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the multiply-add helper cannot be built, the run goes on: its rows show '-' in the
    compute columns and one line says why; rows of older files show '-' too, and say so."""
    def broken(**kwargs: object) -> None:
        raise SystemExit("build of variant 'base' failed: c++ -O3 ...\nerror: something long\nmore")

    monkeypatch.setattr(fused.kernel_micro, "build", broken)
    peak = fused.fma_peak(1)
    assert peak["error"].endswith("could not be built or run: build of variant 'base' failed: c++ -O3 ...")
    result = json.loads(RESULTS.read_text())
    old = copy.deepcopy(result)
    result["cases"][0] = fused.add_compute_floor(result["cases"][0], peak)
    fused.render(result, tmp_path, "broken")
    md = (tmp_path / "broken.md").read_text()
    cells = _layer_cells(md)
    assert all(r["worst layer x roofline"] == r["TV compute floor ms"] == r["peak GFMA/s"] == "-" for r in cells)
    assert md.count("No compute floor") == 1 and f"could not measure the multiply-add peak ({peak['error']})" in md
    assert f"in {len(result['cases']) - 1} rows recorded before the compute floor" in md
    fused.render(old, tmp_path, "old")
    old_cells = _layer_cells((tmp_path / "old.md").read_text())
    assert [r["worst layer x floor"] for r in old_cells] == [r["worst layer x floor"] for r in cells]


def test_dw_layers_fused_away_are_not_zero_times(fused: ModuleType) -> None:
    """A DW layer OpenVINO ran inside another node reads NaN or 0 us: left out of the DW columns and
    counted, never shown as 0.00x its floor (DeepLabV3+ at batch 16, stop 42)."""
    row = {"us": 0.0, "floor_us": 10.0, "x_floor": 0.0}
    ran = [{"us": 30.0, "floor_us": 10.0, "x_floor": 3.0}, {"us": 20.0, "floor_us": 10.0, "x_floor": 2.0}]
    assert fused._dw_columns({"dw_layers": [row, row]}) == "- (2 fused away) | -"
    assert fused._dw_columns({"dw_layers": [*ran, row, {**row, "us": float("nan")}]}) == "2.50 (2 fused away) | 3.00 / 2.50"
    assert fused._dw_columns({}) == "- | -"


def test_several_cases_each_in_a_process_of_its_own(fused: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: every (network, batch) of a run was timed in the run's one process, after the earlier
    cases' models had been compiled, run and released there (such a process timed TV / DW 2-7 %
    above a fresh one: benchmarks/openvino_process_state.py). Now a run of several cases measures
    the header (bandwidth, multiply-add peak) once and times each case in a child process
    (--case-of: the header, the run's command and its cases), whose row is merged into the file."""
    import subprocess

    previous = json.loads(RESULTS.read_text())
    row = {k: v for k, v in next(c for c in previous["cases"] if (c["arch"], c["batch"]) == ("face_mobilenetv2_x0_1", 1)).items() if k != "command"}
    ran: list[tuple[str, int]] = []
    calls: list[list[str]] = []
    measured: list[str] = []
    in_child = [False]

    def network_case(arch: str, batch: int, args: object, bandwidth: float) -> dict:
        assert in_child[0], "a case of a run of several must be timed in a child process"
        assert bandwidth == previous["bandwidth"]["bytes_per_s"]  # the parent's measurement
        ran.append((arch, batch))
        return {**copy.deepcopy(row), "arch": arch, "batch": batch}

    real_run = subprocess.run

    def child(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess:
        if not (cmd[0] == sys.executable and str(cmd[1]).endswith("openvino_fused.py")):
            return real_run(cmd, **kw)  # not ours (machine_info's uname)
        calls.append(list(cmd))
        shared = json.loads(Path(cmd[cmd.index("--case-of") + 1]).read_text())
        assert shared["planned"] == [["face_mobilenetv2_x0_1", 1], ["face_mobilenetv2_x0_1", 16]]
        assert shared["bandwidth"]["bytes_per_s"] == previous["bandwidth"]["bytes_per_s"] and shared["fma_peak"] == {"error": "E"}
        argv = sys.argv
        monkeypatch.setattr(sys, "argv", ["openvino_fused.py", *cmd[2:]])
        in_child[0] = True
        try:
            return subprocess.CompletedProcess(cmd, fused.main())
        finally:
            in_child[0] = False
            monkeypatch.setattr(sys, "argv", argv)

    monkeypatch.setattr(fused, "network_case", network_case)
    monkeypatch.setattr(fused.subprocess, "run", child)
    monkeypatch.setattr(fused, "bandwidth_with", lambda threads: measured.append("bandwidth") or {**previous["bandwidth"], "threads": threads})
    monkeypatch.setattr(fused, "fma_peak", lambda threads: measured.append("peak") or {"error": "E"})
    argv = ["openvino_fused.py", "--arch", "face_mobilenetv2_x0_1", "--batch", "1", "--batch=16", "--no-sweep", "--name", "multi", "--out", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", argv)
    assert fused.main() == 0
    assert ran == [("face_mobilenetv2_x0_1", 1), ("face_mobilenetv2_x0_1", 16)] and measured == ["bandwidth", "peak"]
    for cmd, batch in zip(calls, (1, 16)):  # the run's options, its cases replaced by the child's one
        assert [a for a in cmd if a.startswith(("--arch", "--batch"))] == ["--arch", "--batch"]
        assert cmd[cmd.index("--batch") + 1] == str(batch) and "--no-sweep" in cmd and "multi" in cmd
    result = json.loads((tmp_path / "multi.json").read_text())
    assert [(c["arch"], c["batch"]) for c in result["cases"]] == ran
    assert len(result["commands"]) == 1 and all(c["command"] == result["commands"][0] for c in result["cases"])
    assert "--batch 1 --batch=16" in result["commands"][0] and "--case-of" not in result["commands"][0]
    assert result["bandwidth"]["bytes_per_s"] == previous["bandwidth"]["bytes_per_s"] and result["fma_peak"] == {"error": "E"}
    assert (tmp_path / "multi.md").exists()


@pytest.mark.parametrize("argv", [["--arc", "face_mobilenetv2_x0_1", "--no-sweep"],
                                  ["--case-of", "h.json", "--arch", "face_mobilenetv2_x0_1", "--batch", "1", "--batch", "16"]],
                         ids=["abbreviated", "case-of-several"])
def test_a_case_child_never_gets_several_cases(argv: list[str], fused: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """A case's child gets the run's argv less --arch/--batch: an abbreviated '--arc' (argparse took
    prefixes) would have stayed in it and given the child several cases, which started children of
    their own without end. Abbreviations are refused, and so is --case-of with more than one case,
    before anything is measured or started."""
    monkeypatch.setattr(fused, "machine_info", lambda **kw: pytest.fail("measured before the refusal"))
    monkeypatch.setattr(fused.subprocess, "run", lambda *a, **kw: pytest.fail("a child started"))
    monkeypatch.setattr(sys, "argv", ["openvino_fused.py", *argv, "--out", str(tmp_path)])
    with pytest.raises(SystemExit) as info:
        fused.main()
    assert info.value.code != 0
    said = str(info.value.code) + capsys.readouterr().err
    assert ("unrecognized arguments: --arc" in said) if argv[0] == "--arc" else ("--case-of is one case of a run" in said), said
