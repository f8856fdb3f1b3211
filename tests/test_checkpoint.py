"""Checkpoint formats of the reference, safe loading, and one-line errors."""

from __future__ import annotations

import argparse
import dataclasses
import pickle
import re
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pytest
import torch

from conftest import SMALL_TV, make_model, write_checkpoint
from tvexport.bake import load_checkpoint
from tvexport.checkpoint import Checkpoint, read_checkpoint
from tvexport.errors import TvexportError
from tvexport.models import TVSettings, create_model, list_models, resolve_arch
from tvexport.testing import lightning_checkpoint, randomize_, save_lightning

FACE = [n for n in list_models() if n.startswith("face_")]


def _same_outputs(a: torch.nn.Module, b: torch.nn.Module) -> None:
    x = torch.rand(2, *a.tvexport_config.input_shape) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(a(x), b(x), rtol=0, atol=0)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


@pytest.mark.parametrize("name", FACE)
@pytest.mark.parametrize("atom", ["tvconv", "dwconv"])
def test_face_lightning_round_trip(tmp_path: Path, name: str, atom: str) -> None:
    model = randomize_(create_model(name, atom=atom, tv=TVSettings(inter_chans=4, inter_layers=0)), calibrate=False)  # type: ignore[arg-type]
    ckpt = read_checkpoint(write_checkpoint(model, tmp_path / "m.ckpt", "lightning"))
    assert ckpt.format == "lightning" and ckpt.dropped == {"head.weight": (512, 10)}
    loaded = load_checkpoint(ckpt.path)
    assert loaded.tvexport_config == model.tvexport_config
    _same_weights(model, loaded)
    _same_outputs(model, loaded)


@pytest.mark.parametrize(
    "fmt,atom",
    [("pth.tar", "tvconv"), ("pth.tar-dp", "tvconv"), ("state_dict", "tvconv"), ("pth.tar-dp", "dwconv"), ("pth.tar", "dense")],
)
def test_segmentation_round_trip(tmp_path: Path, fmt: str, atom: str) -> None:
    model = create_model("deeplabv3plus_mobilenetv2", atom=atom, tv=TVSettings(inter_chans=4, inter_layers=0))  # type: ignore[arg-type]
    randomize_(model, calibrate=False)
    path = write_checkpoint(model, tmp_path / "checkpoint_best.pth.tar", fmt)
    assert read_checkpoint(path).format == ("state_dict" if fmt == "state_dict" else "pth.tar")
    loaded = load_checkpoint(path)
    assert loaded.tvexport_config == model.tvexport_config
    _same_weights(model, loaded)
    if fmt == "pth.tar-dp" and atom == "tvconv":
        _same_outputs(model, loaded)


def test_reference_tv_settings_and_other_formats(tmp_path: Path) -> None:
    """Full-size generators (4/64/3) and the remaining format/family pairs."""
    model = make_model("face_shufflenetv2_x0_5", tv=TVSettings())
    for fmt in ("pth.tar-dp", "state_dict"):
        _same_outputs(model, load_checkpoint(write_checkpoint(model, tmp_path / f"m.{fmt}", fmt)))


@pytest.mark.parametrize("hparams_type", ["AttributeDict", "Namespace"])
def test_lightning_file_as_written_by_lightning_1_4(tmp_path: Path, hparams_type: str) -> None:
    """CUDA tensors, the ModelCheckpoint class as a dict key, AttributeDict or Namespace
    hyper_parameters, numpy metrics: all load with weights_only=True and without Lightning installed."""
    model = make_model()
    attr_cls = type("AttributeDict", (dict,), {"__module__": "pytorch_lightning.utilities.parsing"})
    ckpt = lightning_checkpoint(model, hparams={"model_name": "mobilenet_v2_x0_1"})
    hparams = {"model_name": "mobilenet_v2_x0_1", "lr": 0.1, "input_size": [96, 96]}
    ckpt["hyper_parameters"] = attr_cls(**hparams) if hparams_type == "AttributeDict" else argparse.Namespace(**hparams)
    ckpt["args"] = argparse.Namespace(atom="TVConv")
    ckpt["best_metric"] = np.float64(91.25)
    from tvexport.testing import _importable

    path = tmp_path / "last.ckpt"
    with mock.patch("torch.serialization.location_tag", lambda storage: "cuda:0"), _importable("pytorch_lightning.utilities.parsing", "AttributeDict", attr_cls):
        save_lightning(ckpt, path)
    assert b"cuda:0" in path.read_bytes()  # really recorded as CUDA storage
    assert "pytorch_lightning" not in __import__("sys").modules
    loaded = read_checkpoint(path)
    assert loaded.hparams == hparams
    _same_outputs(model, load_checkpoint(path))


@pytest.mark.parametrize("hparams", ["lr=0.1", [1, 2], 3, None, {"drop_ratio": "abc"}, {"drop_ratio": [0.2]}, {"drop_ratio": float("nan")}, {"drop_ratio": 2.0}, {"drop_ratio": -1}])
def test_unusable_hyper_parameters_are_ignored(cli: Any, tmp_path: Path, hparams: object) -> None:
    """Hyper-parameters are hints (the keys decide): before, a string or list crashed ``vars()``
    and a non-numeric drop_ratio ``float()`` (exit 3); a drop_ratio outside (0, 1] built a wrong head."""
    cfg = dataclasses.replace(make_model().tvexport_config, drop_ratio=0.2)  # a head with dropout
    model = randomize_(create_model(cfg), calibrate=False)
    ckpt = lightning_checkpoint(model)
    ckpt["hyper_parameters"] = hparams
    save_lightning(ckpt, tmp_path / "m.ckpt")
    r = cli("inspect", tmp_path / "m.ckpt")
    assert r.exit_code == 0 and r.stderr == "", r.stderr
    assert load_checkpoint(tmp_path / "m.ckpt").tvexport_config.drop_ratio == 0.5  # the key rule's stand-in value
    ckpt["hyper_parameters"] = {"drop_ratio": "0.2"}  # a usable value is still read
    save_lightning(ckpt, tmp_path / "m.ckpt")
    _same_outputs(model, loaded := load_checkpoint(tmp_path / "m.ckpt"))
    assert loaded.tvexport_config.drop_ratio == 0.2


def test_malicious_pickle_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (__import__("os").system, (f"touch {marker}",))

    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"model.x": torch.zeros(1)}, "payload": Evil()}, path)
    with pytest.raises(TvexportError, match="refused to load .*never runs code"):
        read_checkpoint(path)
    assert not marker.exists()
    raw = tmp_path / "evil.pkl"
    raw.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(TvexportError):
        read_checkpoint(raw)
    assert not marker.exists()


def test_key_and_shape_errors(tmp_path: Path) -> None:
    model = make_model()
    sd = model.state_dict()
    missing = dict(sd)
    del missing["features.1.conv.0.0.posi_map"]
    torch.save(missing, tmp_path / "missing.pt")
    with pytest.raises(TvexportError, match=r"1 missing key \(features\.1\.conv\.0\.0\.posi_map\)"):
        load_checkpoint(tmp_path / "missing.pt")
    extra = dict(sd, **{"extra.weight": torch.zeros(1)})
    torch.save(extra, tmp_path / "extra.pt")
    with pytest.raises(TvexportError, match=r"unexpected key \(extra\.weight\)"):
        load_checkpoint(tmp_path / "extra.pt")
    bad = dict(sd)
    bad["features.18.0.weight"] = torch.zeros(512, 3, 1, 1)
    torch.save(bad, tmp_path / "shape.pt")
    with pytest.raises(TvexportError, match=r"shape mismatch for features\.18\.0\.weight"):
        load_checkpoint(tmp_path / "shape.pt")


def test_explicit_arch(tmp_path: Path) -> None:
    model = make_model("face_mobilenetv2_x0_5")
    path = write_checkpoint(model, tmp_path / "m.ckpt", "lightning")
    _same_outputs(model, load_checkpoint(path, arch="mobilenet_v2_x0_5"))
    with pytest.raises(TvexportError, match="does not match face_mobilenetv2_x1_0|shape mismatch"):
        load_checkpoint(path, arch="face_mobilenetv2_x1_0")


@pytest.mark.parametrize(
    "content,match",
    [
        (b"", "empty"),
        (b"hello, I am a text file\n", "not a PyTorch checkpoint"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "PNG image"),
    ],
)
def test_not_a_checkpoint(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "x.ckpt"
    path.write_bytes(content)
    with pytest.raises(TvexportError, match=match):
        read_checkpoint(path)


def test_truncated_and_missing(tmp_path: Path, face_ckpt: Path) -> None:
    data = face_ckpt.read_bytes()
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(TvexportError, match="truncated or corrupt"):
        read_checkpoint(cut)
    with pytest.raises(TvexportError, match="no such file"):
        read_checkpoint(tmp_path / "nope.ckpt")
    with pytest.raises(TvexportError, match="is a directory, not a checkpoint file"):
        read_checkpoint(tmp_path)
    (tmp_path / "empty.ckpt").write_bytes(b"")
    with pytest.raises(TvexportError, match=r"empty\.ckpt is empty \(0 bytes\); the copy or download did not finish"):
        read_checkpoint(tmp_path / "empty.ckpt")


def test_nonfinite_weights_are_reported(tmp_path: Path) -> None:
    model = make_model()
    with torch.no_grad():
        model.features[2].conv[1][0].posi_map[0, 0, 0, 0] = float("nan")
    ckpt = read_checkpoint(write_checkpoint(model, tmp_path / "nan.ckpt", "lightning"))
    assert ckpt.nonfinite == ["features.2.conv.1.0.posi_map"]


def test_all_registry_names_resolve() -> None:
    for name in list_models():
        assert resolve_arch(name).name == name


_LAYER = "features.1.conv.0.0."
_GEOMETRY = ("TVConv_k", "TVConv_k_square", "stride", "channels", "h", "w")


@pytest.mark.parametrize(
    "removed",
    [
        [_LAYER + "weight_layers.0.0.weight"],  # the generator's first conv
        [_LAYER + "weight_layers.2.weight"],  # its final conv (the C*k*k outputs)
        [_LAYER + "weight_layers.1.0.weight", _LAYER + "weight_layers.1.1.weight", _LAYER + "weight_layers.1.1.bias"],  # a whole block
        [_LAYER + "TVConv_k", _LAYER + "channels"],  # k then comes from the bias generator's C
        [k for k in make_model(tv=dataclasses.replace(SMALL_TV, k=5, bias=True)).state_dict() if k.endswith(_GEOMETRY)],  # every geometry buffer
    ],
    ids=["first-conv", "final-conv", "block", "k-and-channels", "all-geometry"],
)
@pytest.mark.parametrize("arch", [None, "face_mobilenetv2_x0_1"])
def test_partly_missing_tv_layer_names_the_missing_keys(cli: Any, tmp_path: Path, removed: list[str], arch: str | None) -> None:
    """Before: detection indexed the layer's keys directly (exit 3, KeyError) or guessed k from a
    missing ``channels`` ("TVConv_k must be odd"); now the state-dict check lists what is missing."""
    sd = make_model(tv=dataclasses.replace(SMALL_TV, k=5, bias=True)).state_dict()
    path = tmp_path / "partial.pt"
    torch.save({k: v for k, v in sd.items() if k not in removed}, path)
    r = cli("inspect", path, *(["--arch", arch] if arch else []))
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == 2 and len(lines) == 1 and "Traceback" not in r.stderr + r.stdout, r.stderr
    n = len(removed)
    assert f"partial.pt: state dict does not match face_mobilenetv2_x0_1: {n} missing key{'s' * (n > 1)} ({removed[0]}" in lines[0], lines[0]
    assert "unexpected" not in lines[0] and "shape mismatch" not in lines[0]


def test_even_tv_kernel_size_is_refused(cli: Any, tmp_path: Path) -> None:
    sd = make_model().state_dict()
    sd[_LAYER + "TVConv_k"] = torch.tensor(4)
    torch.save(sd, tmp_path / "k4.pt")
    for arch in ([], ["--arch", "face_mobilenetv2_x0_1"]):
        r = cli("inspect", tmp_path / "k4.pt", *arch)
        assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert f"k4.pt: TV layer {_LAYER[:-1]} records kernel size TVConv_k=4, not a positive odd number" in r.stderr


@pytest.mark.parametrize(
    ("layer", "buffer", "stored", "expected"),
    [
        ("features.1.conv.0.0", "stride", 3, 1),  # the audit's file: the demo's first TV layer with stride 3
        ("features.1.conv.0.0", "h", 50, 96),  # h contradicting its 96x96 posi_map
        ("features.14.conv.1.0", "stride", 1, 2),  # a stride-2 layer recorded as stride 1
        ("features.14.conv.1.0", "w", 12, 6),
        ("features.14.conv.1.0", "channels", 48, 96),
        ("features.14.conv.1.0", "TVConv_k", 5, 3),  # a later layer than the one k is detected from
        ("features.14.conv.1.0", "TVConv_k_square", 4, 9),
    ],
)
def test_tv_geometry_buffers_contradicting_the_architecture_are_refused(cli: Any, tmp_path: Path, layer: str, buffer: str, stored: int, expected: int) -> None:
    """Before: a checkpoint whose recorded stride/h/w/channels/k contradicted the architecture was
    baked (from the architecture's geometry) and every verification row read "ok"."""
    model = make_model()  # random posi_map, the reference's buffers
    with torch.no_grad():
        getattr(model.get_submodule(layer), buffer).fill_(stored)
    line = f"TV layer {layer} records {buffer}={stored}, but face_mobilenetv2_x0_1 has {buffer}={expected} there"
    for fmt, name in (("lightning", "bad.ckpt"), ("state_dict", "bad.pt")):
        path = write_checkpoint(model, tmp_path / name, fmt)
        r = cli("bake", path, "-o", tmp_path / "bad.baked.pt")
        lines = r.stderr.strip().splitlines()
        assert r.exit_code == 2 and len(lines) == 1 and "Traceback" not in r.stderr + r.stdout, r.stderr
        assert lines[0].startswith(f"error: {path}: {line}") and "check --arch" in lines[0], lines[0]
        assert not (tmp_path / "bad.baked.pt").exists()
        with pytest.raises(TvexportError, match=re.escape(line)):
            load_checkpoint(path)


def test_tv_geometry_buffers_of_every_zoo_model_agree_with_it(tmp_path: Path) -> None:
    """Checkpoints saved from the zoo's own networks (the reference's buffers) still load."""
    for name in list_models():
        model = make_model(name)
        path = write_checkpoint(model, tmp_path / f"{name}.pt", "state_dict")
        load_checkpoint(path)


_HEAD = torch.zeros(512, 10)
_PREFIX_CASES = {
    # name: (how the saved keys are made from the network's, extra entries, what is dropped)
    "dataparallel": (lambda k: f"module.{k}", {}, {}),
    "lightning-module": (lambda k: f"model.{k}", {"head.weight": _HEAD}, {"head.weight": (512, 10)}),
    "lightning-module-no-head": (lambda k: f"model.{k}", {}, {}),
    "swa": (lambda k: f"module.{k}", {"n_averaged": torch.tensor(3)}, {"n_averaged": ()}),
    "swa-of-lightning-module": (lambda k: f"module.model.{k}", {"module.head.weight": _HEAD, "n_averaged": torch.tensor(3)},
                                {"n_averaged": (), "head.weight": (512, 10)}),
    "lightning-module-with-dataparallel": (lambda k: f"model.module.{k}", {"head.weight": _HEAD}, {"head.weight": (512, 10)}),
    "dataparallel-twice": (lambda k: f"module.module.{k}", {}, {}),
    "torch-compile": (lambda k: f"_orig_mod.{k}", {}, {}),
    "compiled-dataparallel": (lambda k: f"_orig_mod.module.{k}", {}, {}),
    "lightning-module-compiled": (lambda k: f"model._orig_mod.{k}", {"head.weight": _HEAD}, {"head.weight": (512, 10)}),
    "swa-of-compiled": (lambda k: f"module._orig_mod.{k}", {"n_averaged": torch.tensor(3)}, {"n_averaged": ()}),
    # the network under module. beside the training head (a LightningModule holding it as ``module``)
    "module-beside-head": (lambda k: f"module.{k}", {"head.weight": _HEAD}, {"head.weight": (512, 10)}),
    "no-prefix-beside-head": (lambda k: k, {"head.weight": _HEAD}, {"head.weight": (512, 10)}),
}


def _save_as(fmt: str, model: torch.nn.Module, saved: dict[str, torch.Tensor], path: Path) -> None:
    if fmt == "lightning":
        ckpt = lightning_checkpoint(model)
        ckpt["state_dict"] = saved
        save_lightning(ckpt, path)
    elif fmt == "pth.tar":  # the reference segmentation trainer's layout
        torch.save({"epoch": 39, "iteration": 12000, "arch": "DataParallel", "model_state_dict": saved, "best_mean_dice": 0.9}, path)
    else:
        torch.save(saved, path)


@pytest.mark.parametrize("fmt", ["state_dict", "lightning", "pth.tar"])
@pytest.mark.parametrize("case", list(_PREFIX_CASES))
def test_wrapper_prefixes_are_stripped_as_in_a_ckpt(tmp_path: Path, case: str, fmt: str) -> None:
    """A plain state dict or a .pth.tar's ``model_state_dict`` saved from a LightningModule
    (``model.*`` + ``head.weight``), an SWA AveragedModel (``module.*`` + ``n_averaged``),
    DataParallel (nested too) or torch.compile (``_orig_mod.*``) loads like the same keys inside a .ckpt."""
    model = make_model()
    rename, extra, dropped = _PREFIX_CASES[case]
    saved = {rename(k): v for k, v in model.state_dict().items()} | extra
    path = tmp_path / f"m.{fmt}"
    _save_as(fmt, model, saved, path)
    loaded = read_checkpoint(path)
    assert loaded.format == fmt and loaded.state_dict.keys() == model.state_dict().keys() and loaded.dropped == dropped
    _same_outputs(model, load_checkpoint(path))


def test_segmentation_pth_tar_is_unwrapped_as_a_state_dict(tmp_path: Path) -> None:
    """The DeepLabV3+ ``.pth.tar`` (random posi_map) saved through SWA of a compiled DataParallel model."""
    model = randomize_(create_model("deeplabv3plus_mobilenetv2", tv=TVSettings(inter_chans=4, inter_layers=0)), calibrate=False)
    saved = {f"module._orig_mod.module.{k}": v for k, v in model.state_dict().items()} | {"n_averaged": torch.tensor(7)}
    _save_as("pth.tar", model, saved, tmp_path / "checkpoint_best.pth.tar")
    loaded = read_checkpoint(tmp_path / "checkpoint_best.pth.tar")
    assert loaded.format == "pth.tar" and loaded.dropped == {"n_averaged": ()} and loaded.meta["best_mean_dice"] == 0.9
    _same_weights(model, load_checkpoint(loaded.path))


def test_a_wrapper_prefix_with_unknown_entries_beside_it_is_kept(tmp_path: Path) -> None:
    """Only known bookkeeping (SWA's n_averaged) may sit beside ``module.*``: anything else keeps the keys as saved."""
    saved = {f"module.{k}": v for k, v in make_model().state_dict().items()} | {"step": torch.tensor(3)}
    torch.save(saved, tmp_path / "m.pt")
    assert read_checkpoint(tmp_path / "m.pt").state_dict.keys() == saved.keys()
    with pytest.raises(TvexportError, match="unknown architecture"):
        load_checkpoint(tmp_path / "m.pt")


def _safetensors_bytes(tensors: dict[str, torch.Tensor]) -> bytes:
    """A safetensors file written by hand (the package is not a dependency): JSON header, then data."""
    import json

    header, data = {}, b""
    for name, t in tensors.items():
        raw = t.contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + data


@pytest.mark.parametrize("kind", ["torchscript", "safetensors"])
def test_other_model_formats_are_named_with_what_tvexport_needs(cli: Any, tmp_path: Path, kind: str) -> None:
    """Before: a TorchScript archive was "truncated or corrupt ... fetch it again" (torch refuses it
    for weights_only), and a safetensors file an unreadable checkpoint with torch's text cut mid-word."""
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3))
    path = tmp_path / ("model.pt" if kind == "torchscript" else "model.safetensors")
    if kind == "torchscript":
        torch.jit.save(torch.jit.script(net), path)
    else:
        path.write_bytes(_safetensors_bytes({k: v.detach() for k, v in net.state_dict().items()}))
    what = {"torchscript": "is a TorchScript model (torch.jit.save), not a checkpoint", "safetensors": "is a safetensors file, not a PyTorch checkpoint"}[kind]
    with mock.patch("torch.jit.load", side_effect=AssertionError("loaded")), mock.patch("torch.load", side_effect=AssertionError("loaded")):
        with pytest.raises(TvexportError, match=re.escape(f"{path.name} {what}; tvexport reads training checkpoints")):
            read_checkpoint(path)
    r = cli("inspect", path)
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert what in lines[0] and "corrupt" not in lines[0] and "fetch it again" not in lines[0] and "state_dict()" in lines[0]


@pytest.mark.parametrize("kind", ["npz", "zip"])
def test_intact_zip_of_something_else_is_not_called_corrupt(cli: Any, tmp_path: Path, kind: str) -> None:
    """Before: an intact zip that is not a torch checkpoint was "truncated or corrupt ... fetch it
    again" (a NumPy .npz), or passed on torch's internal "please report" text (another zip)."""
    import zipfile

    import numpy as np

    path = tmp_path / f"{kind}.ckpt"
    if kind == "npz":
        with path.open("wb") as f:
            np.savez(f, a=np.zeros(3), b=np.ones(2))
        what = "it looks like a NumPy .npz archive"
    else:
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("foo/bar.txt", "hello")
        what = "it holds foo/bar.txt"
    with pytest.raises(TvexportError) as err:
        read_checkpoint(path)
    assert str(err.value).startswith(f"{path} is a zip archive but not a PyTorch checkpoint ({what}); tvexport reads training checkpoints")
    r = cli("export", path, "-o", tmp_path / "x.onnx")
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == 2 and len(lines) == 1 and "corrupt" not in lines[0] and "fetch it again" not in lines[0] and "report" not in lines[0], r.stderr
    assert lines[0].endswith("; give the file torch.save wrote")


def test_the_zip_directory_is_read_once_before_torch_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The format check (TorchScript?) and the CRC check share one read of the zip directory."""
    import sys
    import zipfile

    path = write_checkpoint(make_model(), tmp_path / "m.ckpt", "lightning")
    opened: list[object] = []

    class Counting(zipfile.ZipFile):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            if Path(sys._getframe(1).f_code.co_filename).name == "checkpoint.py":  # opened by tvexport/checkpoint.py
                opened.append(args[0])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(zipfile, "ZipFile", Counting)
    assert read_checkpoint(path).format == "lightning"
    assert opened == [path]


@pytest.mark.parametrize("bake", [5, [1, 2], "x"])
def test_baked_file_whose_bake_record_is_not_a_dict_is_damaged_metadata(tmp_path: Path, bake: object) -> None:
    """Before: ``dict(obj.get("bake", {}))`` raised TypeError/ValueError (internal error, exit 3) in every command."""
    from tvexport.checkpoint import BAKED_FORMAT

    path = tmp_path / "m.baked.pt"
    torch.save({"format": BAKED_FORMAT, "format_version": 1, "state_dict": {"a": torch.zeros(1)}, "bake": bake}, path)
    said = f"{path}: baked file metadata is damaged (its bake record is of type {type(bake).__name__}, not a dict); re-bake it from the original checkpoint"
    with pytest.raises(TvexportError) as info:
        read_checkpoint(path)
    assert str(info.value) == said


def test_describe_file_closes_the_file(tmp_path: Path) -> None:
    """Before: a file of 64 KiB or more was opened for its first bytes and never closed (ResourceWarning)."""
    import gc
    import warnings

    from tvexport.checkpoint import describe_file

    for size in (100, 1 << 17):
        path = tmp_path / f"notes{size}.txt"
        path.write_bytes(b"hello world\n" * (size // 12))
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            assert describe_file(path) == "a text file"
            gc.collect()
        assert not [w for w in seen if issubclass(w.category, ResourceWarning)], size


@pytest.mark.parametrize("name, data, said", [
    ("report.onnx", b'{"model": "face.onnx", "ok": true}\n', "a JSON file"),
    ("list.onnx", b"[1, 2, 3]\n", "a JSON file"),
    ("notes.onnx", b"exported with onnx 1.17\n", "a text file"),
    ("cut.onnx", b'{"note": "' + b"x" * 53 + "\u00e9t\u00e9 onnx".encode() + b'"}\n', "a JSON file"),  # 'é' cut at byte 64
    ("model.bin", b"\x08\x08\x12\x07pytorch\x1a\x032.1", "an ONNX model or other protobuf file"),
])
def test_describe_file_text_named_onnx(tmp_path: Path, name: str, data: bytes, said: str) -> None:
    """Before: any file named .onnx, or whose first bytes mention "onnx", was 'an ONNX model or other
    protobuf file', so `inspect` and `export` misnamed a JSON report saved as .onnx."""
    from tvexport.checkpoint import describe_file

    path = tmp_path / name
    path.write_bytes(data)
    assert describe_file(path) == said


def _odd_tensor(kind: str, sd: dict[str, torch.Tensor]) -> tuple[str, torch.Tensor]:
    """(key, tensor) for a state dict entry of ``kind`` that no trained network holds."""
    w = sd["features.0.0.weight"]
    return {
        "sparse": ("features.0.0.weight", w.to_sparse()),
        "quantized": ("features.0.0.weight", torch.quantize_per_tensor(w, 0.1, 0, torch.qint8)),
        "complex": ("features.0.0.weight", w.to(torch.complex64)),
        "int64-weight": ("features.0.0.weight", w.long()),
        "int64-posi_map": (_LAYER + "posi_map", sd[_LAYER + "posi_map"].long()),
        "bool-bn": ("features.0.1.weight", sd["features.0.1.weight"] > 0),
        "bool-k": (_LAYER + "TVConv_k", torch.tensor(True)),
    }[kind]


_ODD_SAID = {
    "sparse": "features.0.0.weight is a sparse tensor (sparse_coo); tvexport reads dense, real-valued weights",
    "quantized": "features.0.0.weight is a quantized tensor (qint8); tvexport reads dense, real-valued weights",
    "complex": "features.0.0.weight is a complex tensor (complex64); tvexport reads dense, real-valued weights",
    "int64-weight": "features.0.0.weight holds int64 values, but face_mobilenetv2_x0_1 has floating-point weights there",
    "int64-posi_map": f"{_LAYER}posi_map holds int64 values, but face_mobilenetv2_x0_1 has floating-point weights there",
    "bool-bn": "features.0.1.weight holds bool values, but face_mobilenetv2_x0_1 has floating-point weights there",
    "bool-k": f"TV layer {_LAYER[:-1]} records TVConv_k=True, but face_mobilenetv2_x0_1 has TVConv_k=3 there",
}


@pytest.mark.filterwarnings("ignore::UserWarning")  # torch: quantized tensors are deprecated
@pytest.mark.parametrize("kind", list(_ODD_SAID))
def test_tensors_no_trained_network_holds_are_one_line(cli: Any, tmp_path: Path, kind: str) -> None:
    """Before: a sparse tensor failed in the NaN check, an integer or bool weight in torch's
    load_state_dict (internal error, exit 3); a complex one loaded with its imaginary part dropped;
    a bool TVConv_k was read as k=1 and blamed the generator's shape."""
    model = make_model()
    key, bad = _odd_tensor(kind, model.state_dict())
    ckpt = lightning_checkpoint(model)
    ckpt["state_dict"][f"model.{key}"] = bad
    save_lightning(ckpt, path := tmp_path / "odd.ckpt")
    said = _ODD_SAID[kind].replace(key, f"model.{key}") if kind in ("sparse", "quantized", "complex") else _ODD_SAID[kind]
    for argv in (["inspect", path], ["bake", path, "-o", tmp_path / "odd.baked.pt"], ["export", path, "-o", tmp_path / "odd.onnx"]):
        r = cli(*argv)
        lines = r.stderr.strip().splitlines()
        assert r.exit_code == 2 and len(lines) == 1 and "Traceback" not in r.stderr + r.stdout, (argv[0], r.stderr)
        assert lines[0].startswith(f"error: {path}: {said}; "), lines[0]
    assert not list(tmp_path.glob("odd.baked*")) and not list(tmp_path.glob("odd.onnx*"))


# a tensor pickled with protocol < 4 names torch.storage._load_from_bytes: refused as code, rightly
@pytest.mark.parametrize("content,protocol", [("tensors", 4), ("tensors", 5), ("plain", 0), ("plain", 2), ("plain", 4), ("plain", 5)])
def test_a_plain_pickle_is_named_as_such_not_corrupt(cli: Any, tmp_path: Path, protocol: int, content: str) -> None:
    """Before: a state dict written with pickle.dump (not torch.save) was "not a readable PyTorch
    checkpoint (unpickling failed: Unsupported operand 149); the file may be corrupt; fetch it again",
    or "Invalid magic number; corrupt file?": fetching it again gives the same file."""
    obj: dict[str, Any] = {"conv.weight": torch.zeros(2, 2)} if content == "tensors" else {"epoch": 3, "lr": [0.1]}
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    r = cli("inspect", path)
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == 2 and len(lines) == 1 and "Traceback" not in r.stderr + r.stdout, r.stderr
    assert lines[0].startswith(f"error: {path} is a plain Python pickle (pickle.dump), not a file torch.save wrote; tvexport reads"), lines[0]
    assert "corrupt" not in lines[0] and "fetch it again" not in lines[0] and "torch.save(pickle.load(" in lines[0]
    path.write_bytes(path.read_bytes()[:-1])  # a damaged pickle is no plain one
    assert "plain Python pickle" not in cli("inspect", path).stderr


def test_the_plain_pickle_hint_runs_for_a_path_with_a_quote(cli: Any, tmp_path: Path) -> None:
    """Before: the hint's re-save line put the path in single quotes, so a path holding one (o'brien.pkl)
    gave a line that does not parse."""
    import ast

    path = tmp_path / "o'brien.pkl"
    path.write_bytes(pickle.dumps({"epoch": 3}, protocol=4))
    line = cli("inspect", path).stderr.strip().splitlines()[0]
    code = line[line.index("torch.save(pickle.load("):]
    code = code[: code.index("'model.pt')") + len("'model.pt')")]
    call = ast.parse(code).body[0].value  # a syntax error before
    assert ast.literal_eval(call.args[0].args[0].args[0]) == str(path)


@pytest.mark.parametrize(
    ("changed", "said"),
    [
        # C read from a negative channels buffer: before, k = round(complex root) raised TypeError (exit 3)
        ({_LAYER + "TVConv_k": None, _LAYER + "channels": torch.tensor(-8)}, f"1 missing key ({_LAYER}TVConv_k)"),
        # posi_chans read from a map that is not (1, P, h, w): before, "expects (1, 96, 96, 96)"
        ({_LAYER + "posi_map": torch.zeros(96, 96)}, f"shape mismatch for {_LAYER}posi_map: checkpoint (96, 96), face_mobilenetv2_x0_1 expects (1, 8, 96, 96)"),
        ({_LAYER + "posi_map": torch.zeros(8, 96, 96)}, f"shape mismatch for {_LAYER}posi_map: checkpoint (8, 96, 96), face_mobilenetv2_x0_1 expects (1, 8, 96, 96)"),
        # a TVConv_k that is no integer buffer (3.0, or a bool) beside a generator whose C*k*k gives
        # k=2: before, "records kernel size TVConv_k=2", a value the file does not record
        *(({_LAYER + "TVConv_k": k, _LAYER + "weight_layers.2.weight": torch.zeros(32, 8, 3, 3)},
           f"shape mismatch for {_LAYER}weight_layers.2.weight: checkpoint (32, 8, 3, 3), face_mobilenetv2_x0_1 expects (72, 8, 3, 3)")
          for k in (torch.tensor(3.0), torch.tensor(True))),
    ],
    ids=["negative-channels", "posi_map-2d", "posi_map-3d", "float-k-even-generator", "bool-k-even-generator"],
)
@pytest.mark.parametrize("arch", [None, "face_mobilenetv2_x0_1"])
def test_damaged_tv_layer_shapes_are_read_as_they_are(cli: Any, tmp_path: Path, changed: dict[str, torch.Tensor | None], said: str, arch: str | None) -> None:
    """TV settings are read only from keys of the form they have in the reference layout; the
    state-dict check then names what is wrong with the others."""
    sd = make_model(tv=dataclasses.replace(SMALL_TV, posi_chans=8)).state_dict()
    for key, value in changed.items():
        if value is None:
            del sd[key]
        else:
            sd[key] = value
    torch.save(sd, path := tmp_path / "damaged.pt")
    r = cli("inspect", path, *(["--arch", arch] if arch else []))
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == 2 and len(lines) == 1 and "Traceback" not in r.stderr + r.stdout, r.stderr
    assert lines[0].startswith(f"error: {path}: ") and said in lines[0], lines[0]


@pytest.mark.parametrize("stray", ["weight_layers.1000.weight", "weight_layers.1000.0.weight"])
def test_a_stray_generator_key_is_unexpected_not_a_deeper_generator(cli: Any, tmp_path: Path, stray: str) -> None:
    """Before: the largest index under weight_layers set the generator's depth, so one stray key
    ``weight_layers.1000.weight`` built a 1000-block generator and listed 50,965 missing keys
    (with 100000: minutes, then out of memory); now it is the one unexpected key."""
    sd = make_model().state_dict() | {_LAYER + stray: torch.zeros(1)}
    torch.save(sd, path := tmp_path / "stray.pt")
    r = cli("inspect", path)
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == 2 and len(lines) == 1, r.stderr
    assert lines[0] == f"error: {path}: state dict does not match face_mobilenetv2_x0_1: 1 unexpected key ({_LAYER}{stray}); check --arch, or that the file is complete"


@pytest.mark.parametrize("damaged", [False, True], ids=["plain", "cut"])
@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_a_refused_plain_pickle_is_read_once(tmp_path: Path, protocol: int, damaged: bool) -> None:
    """Before: where torch's unpickler refused a plain pickle (protocols 4, 5), its opcodes were
    walked twice: once for pickled callables, once more to tell a plain pickle."""
    import pickletools

    data = pickle.dumps({"epoch": 3, "lr": [0.1]}, protocol=protocol)
    (path := tmp_path / "m.pkl").write_bytes(data[:-1] if damaged else data)
    walks: list[str] = []
    genops = pickletools.genops

    def counted(pickle: Any, *args: Any, **kwargs: Any) -> Any:
        walks.append(str(getattr(pickle, "name", pickle)))
        return genops(pickle, *args, **kwargs)

    with mock.patch("pickletools.genops", counted), pytest.raises(TvexportError) as err:
        read_checkpoint(path)
    assert ("plain Python pickle" in str(err.value)) != damaged, err.value
    assert walks == [str(path)] if not damaged else walks in ([], [str(path)]), walks  # a cut one may end in torch's EOFError


# The network's state dict as the training scripts that keep it beside other state save it
# (torchvision's references: {"model": ..., "optimizer": ..., "lr_scheduler": ..., "epoch": ..., "args": ...})
def _torchvision_layout(sd: dict[str, torch.Tensor]) -> dict[str, Any]:
    return {"model": sd, "optimizer": {"state": {}, "param_groups": [{"lr": 0.1, "params": [0, 1]}]},
            "lr_scheduler": {"last_epoch": 3}, "epoch": 3, "args": argparse.Namespace(lr=0.1, epochs=90)}


@pytest.mark.parametrize("layout", ["model", "model-of-dataparallel", "state_dict-alone"])
def test_a_state_dict_under_one_container_key_loads(tmp_path: Path, layout: str) -> None:
    """Before: ``{"model": state_dict, ...}`` (torchvision's training scripts) was refused, "no model
    state dict found (top-level keys: model, ...)"; it is unambiguous and loads like the others."""
    model = make_model()
    sd = model.state_dict()
    obj = {
        "model": _torchvision_layout(sd),
        "model-of-dataparallel": _torchvision_layout({f"module.{k}": v for k, v in sd.items()}),
        "state_dict-alone": {"state_dict": sd},
    }[layout]
    torch.save(obj, path := tmp_path / "m.pth")
    loaded = read_checkpoint(path)
    assert loaded.state_dict.keys() == sd.keys() and loaded.dropped == {}
    _same_outputs(model, load_checkpoint(path))


@pytest.mark.parametrize(
    ("obj", "keys"),
    [
        (lambda sd: {"state_dict": sd, "model": sd}, "state_dict, model"),
        (lambda sd: {"model_state_dict": sd, "model": sd, "epoch": 3}, "model_state_dict, model"),
        (lambda sd: {"epoch": 3, "state_dict": sd, "model_state_dict": sd}, "state_dict, model_state_dict"),
    ],
    ids=["state_dict+model", "model_state_dict+model", "state_dict+model_state_dict"],
)
def test_several_container_state_dicts_are_refused_naming_them(cli: Any, tmp_path: Path, obj: Any, keys: str) -> None:
    """Before: a file holding more than one state dict under the keys tvexport reads took the first
    it looked for, silently; now which one is the network is asked for, in one line."""
    torch.save(obj(make_model().state_dict()), path := tmp_path / "two.pt")
    r = cli("inspect", path)
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == 2 and len(lines) == 1 and "Traceback" not in r.stderr + r.stdout, r.stderr
    assert lines[0].startswith(f"error: {path}: several state dicts ({keys}); tvexport cannot tell which is the network; "), lines[0]
    first = keys.split(", ")[0]
    assert f"torch.save(torch.load({str(path)!r}, weights_only=True)[{first!r}], 'model.pt')" in lines[0], lines[0]


@pytest.mark.parametrize("fmt", ["state_dict", "pth.tar"])
def test_a_stray_model_key_beside_a_network_is_refused_not_taken_as_the_network(cli: Any, tmp_path: Path, fmt: str) -> None:
    """Before: one ``model.x`` entry among a plain state dict's keys made it a LightningModule's:
    ``x`` was kept as the whole network and every other key dropped ("unknown architecture")."""
    model = make_model()
    saved = model.state_dict() | {"model.x": torch.zeros(3)}
    _save_as(fmt, model, saved, path := tmp_path / f"stray.{fmt}")
    r = cli("inspect", path)
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == 2 and len(lines) == 1 and "Traceback" not in r.stderr + r.stdout, r.stderr
    n = len(saved) - 1
    assert lines[0].startswith(
        f"error: {path}: 1 key starts with model. (model.x) beside {n} that do not (features.0.0.weight, features.0.1.weight, features.0.1.bias, ...): "
        "tvexport cannot tell which is the network; "
    ), lines[0]
    assert "delete the model.* keys" in lines[0] and "model. prefix" in lines[0], lines[0]


def test_a_lightning_module_with_other_training_modules_keeps_its_model(tmp_path: Path) -> None:
    """A Lightning .ckpt's LightningModule may hold more than ``model`` and ``head`` (a loss with a
    buffer): only ``model.*`` is the network, as before."""
    model = make_model()
    ckpt = lightning_checkpoint(model)
    ckpt["state_dict"]["criterion.class_weight"] = torch.ones(10)
    save_lightning(ckpt, path := tmp_path / "m.ckpt")
    loaded = read_checkpoint(path)
    assert loaded.format == "lightning" and loaded.dropped == {"head.weight": (512, 10), "criterion.class_weight": (10,)}
    _same_outputs(model, load_checkpoint(path))


@pytest.mark.parametrize("k", [1, 5, 7])
@pytest.mark.parametrize("arch", [None, "face_mobilenetv2_x0_1"])
def test_a_tv_kernel_size_buffer_contradicting_the_generator_is_one_line(cli: Any, tmp_path: Path, k: int, arch: str | None) -> None:
    """Before: the layer ``k`` is detected from recorded TVConv_k=5 beside a generator made for k=3,
    and the error was a shape mismatch of weight_layers.2.weight (expects (200, 8, 3, 3))."""
    sd = make_model().state_dict()
    sd[_LAYER + "TVConv_k"], sd[_LAYER + "TVConv_k_square"] = torch.tensor(k), torch.tensor(k * k)
    torch.save(sd, path := tmp_path / "k.pt")
    r = cli("inspect", path, *(["--arch", arch] if arch else []))
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == 2 and len(lines) == 1 and "Traceback" not in r.stderr + r.stdout, r.stderr
    assert lines[0].startswith(
        f"error: {path}: TV layer {_LAYER[:-1]} records TVConv_k={k}, but its weights imply k=3 "
        f"({_LAYER}weight_layers.2.weight has 72 outputs for 8 channels); "
    ), lines[0]


def test_a_checkpoints_optional_fields_are_keyword_only(tmp_path: Path) -> None:
    """Before: ``Checkpoint(path, fmt, sd, {"lr": 0.1})`` bound the fourth argument to ``hparams``
    by position; the file, its format and its state dict stay positional."""
    sd = {"w": torch.zeros(1)}
    with pytest.raises(TypeError):
        Checkpoint(tmp_path / "m.pt", "state_dict", sd, {"lr": 0.1})  # type: ignore[misc]
    assert Checkpoint(tmp_path / "m.pt", "state_dict", sd, hparams={"lr": 0.1}).hparams == {"lr": 0.1}


def test_checkpoint_repr_is_a_summary_not_the_weights(face_ckpt: Path, tmp_path: Path) -> None:
    """`tvexport.read_checkpoint(path)` at a REPL or as a notebook cell's value prints its repr.
    Before: the dataclass repr printed every tensor (720 kB for the 3.7 MB demo checkpoint; a baked
    file's payload printed them twice). Now: path, format, tensor and value counts, and the small
    dicts (hparams, dropped keys, meta)."""
    from tvexport.bake import bake_model, save_baked

    ckpt = read_checkpoint(face_ckpt)
    text = repr(ckpt)
    values = sum(t.numel() for t in ckpt.state_dict.values())
    assert len(text) < 1500, text[:300]
    assert text.startswith(f"Checkpoint(path={ckpt.path!r}, format='lightning', state_dict=<{len(ckpt.state_dict)} tensors, {values:,} values>"), text
    assert "dropped={'head.weight': (512, 10)}" in text and "tensor(" not in text
    baked = read_checkpoint(save_baked(bake_model(make_model(), verify=False), tmp_path / "m.baked.pt"))
    text = repr(baked)
    assert len(text) < 1500 and "tensor(" not in text and f"payload=<{len(baked.payload)} entries>" in text, text[:300]


def test_checkpoint_repr_counts_tensors_only(tmp_path: Path) -> None:
    """Before: a Checkpoint made by hand with a non-tensor entry was shown as "<2 tensors, 6 values>"
    (every entry counted as a tensor, only tensors' values summed)."""
    ckpt = Checkpoint(tmp_path / "m.pt", "state_dict", {"w": torch.zeros(2, 3), "step": 5})  # type: ignore[dict-item]
    assert "state_dict=<1 tensor, 6 values, 1 other entry>" in repr(ckpt), repr(ckpt)
    two = Checkpoint(tmp_path / "m.pt", "state_dict", {"w": torch.zeros(2, 3), "b": torch.zeros(3)})
    assert "state_dict=<2 tensors, 9 values>" in repr(two), repr(two)
