"""The zoo: reference key layout, detection from state dicts, registry names."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from tvexport.errors import TvexportError
from tvexport.layers import TVConv
from tvexport.models import FAMILIES, ArchConfig, TVSettings, create_model, detect_arch, list_models, resolve_arch

ALL = [(name, atom) for name in list_models() for atom in FAMILIES[resolve_arch(name).family].atoms]


@pytest.mark.parametrize("name,atom", ALL)
def test_detection_round_trip(name: str, atom: str) -> None:
    tv = TVSettings(k=5, inter_chans=8, inter_layers=2, bias=True, posi_chans=3)
    model = create_model(name, atom=atom, tv=tv)  # type: ignore[arg-type]
    assert detect_arch(model.state_dict()) == model.tvexport_config


def test_reference_layer_placement_and_counts() -> None:
    with torch.device("meta"):
        mnv2 = create_model("face_mobilenetv2_x0_1")
        snv2 = create_model("face_shufflenetv2_x0_5")
        seg = create_model("deeplabv3plus_mobilenetv2")
    tv = lambda m: {n: l for n, l in m.named_modules() if isinstance(l, TVConv)}  # noqa: E731
    m_tv, s_tv, d_tv = tv(mnv2), tv(snv2), tv(seg)
    assert len(m_tv) == 17 and sum(l.geometry.stride == 2 for l in m_tv.values()) == 4
    assert "features.1.conv.0.0" in m_tv and "features.2.conv.1.0" in m_tv
    assert m_tv["features.1.conv.0.0"].geometry.h == 96  # first conv has stride 1
    assert len(s_tv) == 19 and sum(l.geometry.stride == 2 for l in s_tv.values()) == 6
    assert "stage2.0.branch1.0" in s_tv and "stage4.3.branch2.3" in s_tv
    assert list(d_tv) == [f"classifier.aspp.convs.{i}.0.conv.1.0" for i in (1, 2, 3)]
    assert all(l.geometry.channels == 1920 and l.geometry.h == 16 for l in d_tv.values())
    # parameter counts quoted from the reference (REFERENCE.md)
    assert round(sum(p.numel() for p in mnv2.parameters()) / 1e6, 1) == 16.4
    assert round(sum(p.numel() for p in seg.parameters()) / 1e6, 1) == 36.9
    baked = lambda d: sum(l.geometry.kernel_numel for l in d.values())  # noqa: E731
    assert round(baked(m_tv) / 1e6, 2) == 4.08 and round(baked(s_tv) / 1e6, 2) == 1.34 and round(baked(d_tv) / 1e6, 1) == 13.3


def test_segmentation_keys_match_reference_names() -> None:
    with torch.device("meta"):
        sd = create_model("deeplabv3plus_mobilenetv2").state_dict()
    for key in (
        "backbone.low_level_features.0.0.weight",
        "backbone.high_level_features.4.conv.0.0.weight",
        "backbone.high_level_features.17.conv.3.weight",
        "classifier.project.0.weight",
        "classifier.aspp.convs.0.0.weight",
        "classifier.aspp.convs.1.0.conv.0.0.weight",
        "classifier.aspp.convs.1.0.conv.1.0.posi_map",
        "classifier.aspp.convs.4.1.weight",
        "classifier.aspp.project.0.weight",
        "classifier.classifier.3.bias",
    ):
        assert key in sd, key


@pytest.mark.parametrize("name", ["face_mobilenetv2_x0_1", "face_shufflenetv2_x0_5", "deeplabv3plus_mobilenetv2"])
def test_forward_shapes(name: str) -> None:
    model = create_model(name, tv=TVSettings(inter_chans=4, inter_layers=0))
    cfg = model.tvexport_config
    with torch.no_grad():
        y = model(torch.zeros(2, *cfg.input_shape))
    assert y.shape == ((2, 512) if cfg.spec.task == "face" else (2, 2, 256, 256))


def test_names() -> None:
    assert resolve_arch("mobilenet_v2_x0_1").name == "face_mobilenetv2_x0_1"
    assert resolve_arch("face_mobilenetv2_x0_25").width == 0.25
    assert resolve_arch("shufflenet_v2_x1_5").name == "face_shufflenetv2_x1_5"
    assert resolve_arch("deeplabv3plus_mobilenet").family == "deeplabv3plus_mobilenetv2"
    with pytest.raises(TvexportError, match="known: face_mobilenetv2_x0_1"):
        resolve_arch("resnet50")


def test_detect_arch_takes_hparams_by_keyword_only() -> None:
    """Options are keyword-only in the public API: before, ``detect_arch(sd, hparams)`` was accepted."""
    model = create_model(dataclasses.replace(resolve_arch("face_mobilenetv2_x0_1"), drop_ratio=0.3))
    sd = model.state_dict()
    with pytest.raises(TypeError, match="positional argument"):
        detect_arch(sd, {"drop_ratio": 0.3})  # type: ignore[misc]
    assert detect_arch(sd, hparams={"drop_ratio": 0.3}) == model.tvexport_config  # the ratio only the hparams hold


def test_unknown_state_dict() -> None:
    with pytest.raises(TvexportError, match="unknown architecture"):
        detect_arch({"fc.weight": torch.zeros(3, 3)})


def test_unknown_mobilenetv2_width_is_one_line_with_a_hint() -> None:
    """A face MobileNetV2 state dict whose channels match no reference width: what, and how to fix."""
    sd = dict(create_model("face_mobilenetv2_x0_1").state_dict())
    sd["features.0.0.weight"] = torch.zeros(7, *sd["features.0.0.weight"].shape[1:])  # a stem no width has
    with pytest.raises(TvexportError) as info:
        detect_arch(sd)
    assert "match no width" in info.value.message and "stem 7" in info.value.message
    assert info.value.hint and "reference widths" in info.value.hint and "\n" not in str(info.value)


def test_missing_baseline_is_one_line_with_a_hint(tmp_path: Path) -> None:
    from tvexport.profile import load_subject

    with pytest.raises(TvexportError) as info:
        load_subject("face_mobilenetv2_x0_1", baseline=tmp_path / "missing.ckpt")
    assert "does not exist" in info.value.message and info.value.hint and "--baseline takes" in info.value.hint


@pytest.mark.parametrize(
    ("name", "key", "value", "said"),
    [
        ("face_mobilenetv2_x0_1", "features.0.0.weight", torch.tensor(1.0), "shape mismatch for features.0.0.weight: checkpoint (), face_mobilenetv2_x0_1 expects (8, 3, 3, 3)"),
        ("face_shufflenetv2_x0_5", "stage2.0.branch1.2.weight", torch.tensor(1.0), "shape mismatch for stage2.0.branch1.2.weight: checkpoint (), face_shufflenetv2_x0_5 expects (24, 24, 1, 1)"),
        ("deeplabv3plus_mobilenetv2", "classifier.classifier.3.weight", torch.tensor(1.0), "shape mismatch for classifier.classifier.3.weight: checkpoint (), deeplabv3plus_mobilenetv2 expects (2, 256, 1, 1)"),
        # torchvision's ShuffleNetV2 x2.0 (stage 2: 244): what, and which widths tvexport reads
        ("face_shufflenetv2_x0_5", "stage2.0.branch1.2.weight", torch.zeros(122, 24, 1, 1),
         "its stage-2 width 244 matches no known width ([0.5, 1.0, 1.5]); tvexport reads the reference's ShuffleNetV2 x0.5 (stage 2: 48), x1.0 (stage 2: 116), x1.5 (stage 2: 176)"),
    ],
    ids=["mnv2-stem-0d", "snv2-branch-0d", "deeplab-logits-0d", "snv2-x2.0"],
)
def test_detection_keys_of_the_wrong_form_are_one_line(cli, tmp_path: Path, name: str, key: str, value: torch.Tensor, said: str) -> None:
    """Before: a 0-d tensor at a key detection reads a width from raised IndexError (internal
    error, exit 3); a ShuffleNetV2 of another width said nothing of how to fix it."""
    sd = create_model(name, tv=TVSettings(inter_chans=4, inter_layers=0)).state_dict() | {key: value}
    torch.save(sd, path := tmp_path / "m.pt")
    r = cli("inspect", path)
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == 2 and len(lines) == 1 and "Traceback" not in r.stderr + r.stdout, r.stderr
    assert lines[0].startswith(f"error: {path}: ") and said in lines[0], lines[0]


@pytest.mark.parametrize(("atom", "missing"), [("tvconv", "classifier.aspp.convs.1.0.conv.1.0.posi_map"), ("dwconv", "classifier.aspp.convs.1.0.conv.1.0.weight")])
def test_deeplab_atom_survives_a_key_missing_from_the_first_aspp_branch(cli, tmp_path: Path, atom: str, missing: str) -> None:
    """Before: the atom was read from one key of the first ASPP branch; without it the file was
    taken for the dense ASPP (18 missing keys, 83 unexpected ones) instead of naming the one key."""
    sd = create_model("deeplabv3plus_mobilenetv2", atom=atom, tv=TVSettings(inter_chans=4, inter_layers=0)).state_dict()  # type: ignore[arg-type]
    del sd[missing]
    assert detect_arch(sd).atom == atom
    torch.save(sd, path := tmp_path / "checkpoint_best.pth.tar")
    r = cli("inspect", path)
    assert r.exit_code == 2 and r.stderr.strip() == (
        f"error: {path}: state dict does not match deeplabv3plus_mobilenetv2: 1 missing key ({missing}); check --arch, or that the file is complete"), r.stderr


@pytest.mark.parametrize(
    ("name", "missing"),
    [
        ("face_mobilenetv2_x0_5", "features.0.0.weight"),
        ("face_mobilenetv2_x0_5", "output_layer.layer2.0.weight"),
        ("face_mobilenetv2_x0_5", "features.1.conv.2.weight"),
        ("face_mobilenetv2_x0_5", "features.5.conv.3.weight"),
        ("face_mobilenetv2_x0_5", "features.17.conv.3.weight"),
        ("face_shufflenetv2_x1_5", "conv1.0.weight"),
        ("face_shufflenetv2_x1_5", "stage2.0.branch1.2.weight"),
        # before review40: "unknown architecture (keys start backbone...)"
        ("deeplabv3plus_mobilenetv2", "classifier.aspp.project.0.weight"),
    ],
)
def test_a_network_missing_one_key_is_recognised_and_the_key_named(cli, tmp_path: Path, name: str, missing: str) -> None:
    """Before: each family was recognised by fixed keys (DeepLabV3+: one) and a MobileNetV2's
    width by its blocks up to the first one missing; without any of these keys the file was an
    "unknown architecture" or "match[ed] no width", and the missing key went unnamed."""
    sd = create_model(name, tv=TVSettings(inter_chans=4, inter_layers=0)).state_dict()
    del sd[missing]
    assert detect_arch(sd).name == name
    torch.save(sd, path := tmp_path / "m.pt")
    r = cli("inspect", path)
    assert r.exit_code == 2 and r.stderr.strip() == f"error: {path}: state dict does not match {name}: 1 missing key ({missing}); check --arch, or that the file is complete", r.stderr


def test_a_width_of_a_one_width_family_is_refused() -> None:
    """Before: ``deeplabv3plus_mobilenetv2_x0_5`` resolved to width 0.5, which the builder ignored:
    a width-1.0 network whose config (and baked file) recorded 0.5."""
    assert resolve_arch("deeplabv3plus_mobilenetv2_x1_0").name == "deeplabv3plus_mobilenetv2"
    with pytest.raises(TvexportError, match=r"unknown architecture 'deeplabv3plus_mobilenetv2_x0_5'; known: .*deeplabv3plus_mobilenetv2"):
        resolve_arch("deeplabv3plus_mobilenetv2_x0_5")


def test_settings_dataclasses_take_their_options_by_keyword() -> None:
    """Before: ``TVSettings(5, 4, 64)`` or ``ArchConfig("face_mobilenetv2", 0.5, "dwconv")`` bound
    options by position (a swapped pair silently built another network); the family stays positional."""
    with pytest.raises(TypeError):
        TVSettings(5)  # type: ignore[misc]
    with pytest.raises(TypeError):
        ArchConfig("face_mobilenetv2", 0.5)  # type: ignore[misc]
    cfg = ArchConfig("face_mobilenetv2", width=0.5, atom="tvconv", tv=TVSettings(k=5))
    assert cfg.name == "face_mobilenetv2_x0_5" and cfg.tv.k == 5 and ArchConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("name", ["face_mobilenetv2_x0_1", "face_shufflenetv2_x0_5", "deeplabv3plus_mobilenetv2"])
def test_the_reference_init_runs_on_a_real_device_only_and_loading_fills_every_tensor(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A network built on the meta device (shapes for a state dict to fill: load_checkpoint, resize,
    baked files) draws no random init: ``normal_`` there imports torch._dynamo, ~1.5 s a process.
    Built on the CPU it gets the reference's init as before; loaded, every tensor is the file's."""
    from tvexport.bake import load_checkpoint
    from tvexport.testing import randomize_

    drawn: list[str] = []
    normal = torch.Tensor.normal_

    def spy(self: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        drawn.append(self.device.type)
        return normal(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(torch.Tensor, "normal_", spy)
    tv = TVSettings(k=5, inter_chans=4, inter_layers=0, bias=True)
    with torch.device("meta"):
        create_model(name, tv=tv)
    assert drawn == []

    torch.manual_seed(0)
    model = create_model(name, tv=tv)
    assert drawn and set(drawn) == {"cpu"}
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.weight.numel() >= 4096]
    fan_out = name.startswith("face_")  # the face networks' reference: kaiming_normal_(mode="fan_out"); DeepLab's: fan_in
    for conv in convs:
        w = conv.weight
        fan = w.shape[0] * w[0, 0].numel() if fan_out else w[0].numel()
        assert abs(w.std().item() / (2 / fan) ** 0.5 - 1) < 0.1, conv
    if fan_out:
        linear = next(m for m in model.modules() if isinstance(m, torch.nn.Linear))
        assert abs(linear.weight.std().item() / 0.01 - 1) < 0.1 and not linear.bias.any()
    assert all(torch.equal(m.posi_map, torch.ones_like(m.posi_map)) for m in model.modules() if isinstance(m, TVConv))

    randomize_(model, calibrate=False)
    torch.save(model.state_dict(), tmp_path / "m.pt")
    loaded = load_checkpoint(tmp_path / "m.pt").state_dict()
    saved = model.state_dict()
    assert loaded.keys() == saved.keys()
    for key, value in saved.items():  # posi_map random, the TV layers' int64 geometry buffers, BN counters
        assert loaded[key].dtype == value.dtype and loaded[key].device.type == "cpu" and torch.equal(loaded[key], value), key
