"""The model zoo: architecture configs, ``create_model`` and detection from a state dict."""

from __future__ import annotations

import dataclasses
import numbers
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal

import torch
from torch import nn

from ..errors import TvexportError
from .deeplab import SEG_INPUT, DeepLabV3PlusMobileNetV2
from .face import FACE_INPUT, MOBILENETV2_SETTING, SHUFFLENETV2_STAGES, FaceMobileNetV2, FaceShuffleNetV2, mobilenetv2_channels

Atom = Literal["tvconv", "dwconv", "dense"]

MOBILENETV2_WIDTHS = (0.1, 0.2, 0.3, 0.5, 1.0)  # the reference's named variants; any width in [0.1, 1] builds
SHUFFLENETV2_WIDTHS = tuple(sorted(SHUFFLENETV2_STAGES))
MIN_INPUT_SIZE = 16  # every zoo network's total stride: below it the deepest TV layers keep a single position anyway


@dataclasses.dataclass(frozen=True, kw_only=True)
class TVSettings:
    """TVConv hyper-parameters shared by all TV layers of a network (reference argument names in ``kwargs``)."""

    k: int = 3
    posi_chans: int = 4
    inter_chans: int = 64
    inter_layers: int = 3
    bias: bool = False

    def kwargs(self) -> dict[str, object]:
        """These settings under the reference implementation's argument names (``TVConv_k``, ...)."""
        return {
            "TVConv_k": self.k,
            "TVConv_posi_chans": self.posi_chans,
            "TVConv_inter_chans": self.inter_chans,
            "TVConv_inter_layers": self.inter_layers,
            "TVConv_Bias": self.bias,
        }


@dataclasses.dataclass(frozen=True)
class ArchConfig:
    """Everything needed to rebuild a network of the zoo (stored in baked files).

    ``input_hw`` is the (H, W) the network is built for when it is not the trained size (a
    network re-baked for another input size); None means the trained size. Set it with
    ``with_input_size``, which checks the size.
    """

    family: str
    _: dataclasses.KW_ONLY
    width: float = 1.0
    atom: Atom = "tvconv"
    tv: TVSettings = TVSettings()
    drop_ratio: float = 0.0
    num_classes: int = 2
    input_hw: tuple[int, int] | None = None

    @property
    def spec(self) -> ArchSpec:
        """The family's ``ArchSpec`` (its widths, atoms and builder)."""
        return FAMILIES[self.family]

    @property
    def name(self) -> str:
        """Registry name, e.g. ``face_mobilenetv2_x0_1``."""
        return self.spec.name_of(self)

    @property
    def trained_input_size(self) -> tuple[int, int]:
        """The (H, W) the family is trained at (96x96 face, 256x256 segmentation)."""
        return self.spec.input_size

    @property
    def input_size(self) -> tuple[int, int]:
        """The (H, W) this network runs at."""
        return self.input_hw if self.input_hw is not None else self.spec.input_size

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """One input's (channels, height, width): ``(3, *input_size)``."""
        return (3, *self.input_size)

    def with_atom(self, atom: Atom) -> ArchConfig:
        """A copy of this configuration built with ``atom`` layers."""
        return dataclasses.replace(self, atom=atom)

    def with_input_size(self, size: tuple[int, int]) -> ArchConfig:
        """This architecture at input (H, W); every TV layer's (h, w) follows from its stride chain.

        Any H, W >= ``MIN_INPUT_SIZE`` works: strided convs round up (ceil(n / 2)) as at the
        trained size. Raises ``TvexportError`` (one line) otherwise.
        """
        h, w = (int(n) for n in size)
        if min(h, w) < MIN_INPUT_SIZE:
            raise TvexportError(
                f"input size {h}x{w} is too small for {self.name}: valid sizes are HxW with H, W >= {MIN_INPUT_SIZE} (its total stride)",
                hint=f"its trained size is {'x'.join(map(str, self.trained_input_size))}",
            )
        return dataclasses.replace(self, input_hw=None if (h, w) == self.trained_input_size else (h, w))

    def to_dict(self) -> dict[str, Any]:
        """The settings that shape this network: ``tv`` is None without TVConv layers, and only
        segmentation networks have ``num_classes`` (face networks output an embedding)."""
        d = dataclasses.asdict(self)
        if self.atom != "tvconv":
            d["tv"] = None
        if self.spec.task != "segmentation":
            del d["num_classes"]
        d["input_hw"] = list(self.input_hw) if self.input_hw is not None else None
        d["name"] = self.name
        d["input_size"] = list(self.input_size)
        d["trained_input_size"] = list(self.trained_input_size)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ArchConfig:
        """Inverse of ``to_dict``; dicts written before ``input_hw`` existed mean the trained size."""
        fields = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in fields}
        kw["tv"] = TVSettings(**(kw.get("tv") or {}))
        input_hw = kw.pop("input_hw", None)
        cfg = cls(**kw)
        return cfg.with_input_size(input_hw) if input_hw is not None else cfg


@dataclasses.dataclass(frozen=True)
class ArchSpec:
    """One architecture family of the zoo."""

    family: str
    task: str
    input_size: tuple[int, int]
    widths: tuple[float, ...]
    atoms: tuple[Atom, ...]
    builder: Callable[[ArchConfig], nn.Module]
    reference_names: Mapping[str, float] = dataclasses.field(default_factory=dict)

    def name_of(self, cfg: ArchConfig) -> str:
        """The registry name of ``cfg``: the family, plus ``_x<width>`` with ``_`` for the point (``_x0_1``,
        ``_x1_0``) where the family has several widths."""
        if len(self.widths) <= 1:
            return self.family
        return f"{self.family}_x{_width_tag(cfg.width)}"


def _width_tag(width: float) -> str:
    return f"{width:g}".replace(".", "_") if "." in f"{width:g}" else f"{width:g}_0"


def _build_face_mnv2(cfg: ArchConfig) -> nn.Module:
    if not 0.1 <= cfg.width <= 1.0:
        raise TvexportError(f"face_mobilenetv2 width must be in [0.1, 1.0], got {cfg.width}")
    return FaceMobileNetV2(cfg.width, tv=cfg.tv.kwargs() if cfg.atom == "tvconv" else None, drop_ratio=cfg.drop_ratio, input_size=cfg.input_size)


def _build_face_snv2(cfg: ArchConfig) -> nn.Module:
    if cfg.width not in SHUFFLENETV2_STAGES:
        raise TvexportError(f"face_shufflenetv2 width must be one of {list(SHUFFLENETV2_WIDTHS)}, got {cfg.width}")
    return FaceShuffleNetV2(cfg.width, tv=cfg.tv.kwargs() if cfg.atom == "tvconv" else None, drop_ratio=cfg.drop_ratio, input_size=cfg.input_size)


def _build_deeplab(cfg: ArchConfig) -> nn.Module:
    return DeepLabV3PlusMobileNetV2(
        atom=cfg.atom, tv=cfg.tv.kwargs() if cfg.atom == "tvconv" else None, num_classes=cfg.num_classes, input_size=cfg.input_size
    )


FAMILIES: dict[str, ArchSpec] = {
    spec.family: spec
    for spec in (
        ArchSpec(
            "face_mobilenetv2", "face", (FACE_INPUT, FACE_INPUT), MOBILENETV2_WIDTHS, ("tvconv", "dwconv"), _build_face_mnv2,
            {f"mobilenet_v2_x{_width_tag(w)}": w for w in MOBILENETV2_WIDTHS},
        ),
        ArchSpec(
            "face_shufflenetv2", "face", (FACE_INPUT, FACE_INPUT), SHUFFLENETV2_WIDTHS, ("tvconv", "dwconv"), _build_face_snv2,
            {f"shufflenet_v2_x{_width_tag(w)}": w for w in SHUFFLENETV2_WIDTHS},
        ),
        ArchSpec(
            "deeplabv3plus_mobilenetv2", "segmentation", (SEG_INPUT, SEG_INPUT), (1.0,), ("tvconv", "dwconv", "dense"), _build_deeplab,
            {"deeplabv3plus_mobilenet": 1.0},
        ),
    )
}


def list_models() -> list[str]:
    """Registry names of the zoo (each accepts ``atom=``)."""
    return [FAMILIES[f].name_of(ArchConfig(f, width=w)) for f in FAMILIES for w in FAMILIES[f].widths]


def resolve_arch(name: str) -> ArchConfig:
    """Parse a registry name (``face_mobilenetv2_x0_5``), a family name, or a reference model name
    (``mobilenet_v2_x0_1``, ``deeplabv3plus_mobilenet``) into a config with default settings."""
    key = name.strip().lower().replace("-", "_")
    for spec in FAMILIES.values():
        if key in spec.reference_names:
            return ArchConfig(spec.family, width=spec.reference_names[key])
        if key == spec.family:
            return ArchConfig(spec.family, width=spec.widths[-1] if len(spec.widths) > 1 else 1.0)
        m = re.fullmatch(re.escape(spec.family) + r"_x(\d+)_(\d+)", key)
        if m:
            width = float(f"{m.group(1)}.{m.group(2)}")
            if len(spec.widths) == 1 and width != spec.widths[0]:  # its builder has no width: x0_5 would be recorded, not built
                break
            return ArchConfig(spec.family, width=width)
    raise TvexportError(f"unknown architecture {name!r}", hint=f"known: {', '.join(list_models())}")


def create_model(
    arch: str | ArchConfig,
    *,
    atom: Atom | None = None,
    tv: TVSettings | None = None,
    input_size: tuple[int, int] | None = None,
    pretrained_state: Mapping[str, torch.Tensor] | None = None,
) -> nn.Module:
    """Build a zoo network (random weights unless ``pretrained_state``), in eval mode.

    ``arch`` is a registry name (``list_models()``), a reference model name or an ``ArchConfig``;
    ``atom`` (``"tvconv"``, ``"dwconv"``, or ``"dense"`` for DeepLabV3+) and ``tv``
    (``TVSettings``; only TV networks keep them, baselines have none) replace the config's. ``input_size`` (H, W) builds it for another input than
    the trained one (TV layers sized for it). The returned module carries its config as
    ``model.tvexport_config``.
    """
    cfg = resolve_arch(arch) if isinstance(arch, str) else arch
    if atom is not None:
        cfg = dataclasses.replace(cfg, atom=atom)
    if tv is not None:
        cfg = dataclasses.replace(cfg, tv=tv)
    if input_size is not None:
        cfg = cfg.with_input_size(input_size)
    if cfg.atom != "tvconv":
        cfg = dataclasses.replace(cfg, tv=TVSettings())  # baselines have no TV settings
    if cfg.atom not in cfg.spec.atoms:
        raise TvexportError(f"{cfg.family} has no atom {cfg.atom!r}", hint=f"choose one of {list(cfg.spec.atoms)}")
    model = cfg.spec.builder(cfg)
    if pretrained_state is not None:
        model.load_state_dict(pretrained_state, strict=True)
    model.tvexport_config = cfg  # type: ignore[assignment]
    return model.eval()


def config_of(model: nn.Module) -> ArchConfig:
    """The architecture and settings ``model`` was built with (``create_model``, ``load_checkpoint``,
    a baked file); ``TvexportError`` for a module tvexport did not build."""
    cfg = getattr(model, "tvexport_config", None)
    if not isinstance(cfg, ArchConfig):
        raise TvexportError("model was not built by tvexport (no tvexport_config)", hint="build it with tvexport.create_model or load_checkpoint")
    return cfg


# --------------------------------------------------------------------------------------------
# Detection from a state dict
# --------------------------------------------------------------------------------------------

def _size(sd: Mapping[str, torch.Tensor], key: str, dim: int) -> int | None:
    """``sd[key].shape[dim]``, or None when the key (or that dimension) is absent."""
    t = sd.get(key)
    return int(t.shape[dim]) if isinstance(t, torch.Tensor) and t.dim() > dim else None


def _scalar(sd: Mapping[str, torch.Tensor], key: str) -> int | None:
    """The integer a one-element integer buffer holds, or None when it is absent or not one integer
    (a bool or float one is left to the state-dict check, which names it)."""
    t = sd.get(key)
    integer = isinstance(t, torch.Tensor) and not t.is_floating_point() and not t.is_complex() and t.dtype != torch.bool
    return int(t) if integer and t.numel() == 1 else None


def _generator_depth(sd: Mapping[str, torch.Tensor], prefix: str) -> int | None:
    """How many modules a generator at ``prefix`` (``...weight_layers.``) holds: blocks
    (``i.0.weight``, ...) then one final conv (``i.weight``); None when none of its keys is there.

    The first final conv decides, else the blocks counted from 0: a stray key with a large index
    is an unexpected key for the state-dict check, not a generator that deep (building one with
    millions of blocks took minutes or ran out of memory).
    """
    finals, blocks = [], set()
    for key in sd:
        if key.startswith(prefix):
            index, _, rest = key[len(prefix):].partition(".")
            if index.isdigit():
                if rest == "weight":
                    finals.append(int(index))
                else:
                    blocks.add(int(index))
    if finals:
        return min(finals) + 1
    count = 0
    while count in blocks:
        count += 1
    return count + 1 if count else None


def _tv_settings(sd: Mapping[str, torch.Tensor], prefix: str) -> TVSettings:
    """Read TVConv hyper-parameters from the keys and shapes of one TV layer at ``prefix``.

    A layer missing some of its keys still gives settings (each read from whichever key holds
    it, else the default): the state-dict check then names the missing keys.
    """
    gen, bias, posi = prefix + "weight_layers.", prefix + "bias_layers.", prefix + "posi_map"
    depth = _generator_depth(sd, gen) or _generator_depth(sd, bias)
    inter_layers = depth - 2 if depth is not None and depth >= 2 else TVSettings.inter_layers
    final = inter_layers + 1
    # the first conv's outputs, else the final conv's inputs, of either generator
    widths = [_size(sd, f"{g}0.0.weight", 0) for g in (gen, bias)] + [_size(sd, f"{g}{final}.weight", 1) for g in (gen, bias)]
    inter_chans = next((n for n in widths if n), TVSettings.inter_chans)
    # a (1, P, h, w) map's P, else the first conv's inputs
    posi_chans = [_size(sd, posi, 1) if _size(sd, posi, 3) is not None else None] + [_size(sd, f"{g}0.0.weight", 1) for g in (gen, bias)]
    # the final conv's C*k*k outputs and C (the buffer, or the bias generator's C outputs) give k
    channels = _scalar(sd, prefix + "channels") or _size(sd, f"{bias}{final}.weight", 0)
    ckk = _size(sd, f"{gen}{final}.weight", 0)
    root = round((ckk / channels) ** 0.5) if ckk and channels and channels > 0 else 0  # a negative C: no complex root
    implied = root if root * root * (channels or 0) == ckk else None
    k = recorded = _scalar(sd, prefix + "TVConv_k")
    if k is None:
        k = implied
    if k is None or k < 1 or k % 2 != 1:
        if recorded is not None:  # a k read off the shapes is not what the file records: the state-dict check names the shape
            raise TvexportError(
                f"TV layer {prefix.rstrip('.')} records kernel size TVConv_k={k}, not a positive odd number",
                hint="the file is damaged or not a reference TVConv checkpoint; fetch it again",
            )
        k = TVSettings.k
    elif implied is not None and implied != k:  # without this, the model built for the buffer's k named a shape mismatch
        raise TvexportError(
            f"TV layer {prefix.rstrip('.')} records TVConv_k={k}, but its weights imply k={implied} "
            f"({gen}{final}.weight has {ckk} outputs for {channels} channels)",
            hint="the file is damaged or not a reference TVConv checkpoint; fetch it again",
        )
    return TVSettings(
        k=k,
        posi_chans=next((n for n in posi_chans if n), TVSettings.posi_chans),
        inter_chans=inter_chans,
        inter_layers=inter_layers,
        bias=any(key.startswith(bias) for key in sd),
    )


def _first_tv_prefix(sd: Mapping[str, torch.Tensor]) -> str | None:
    for key in sd:
        if key.endswith("posi_map"):
            return key[: -len("posi_map")]
    return None


def _drop_ratio(value: Any) -> float:
    """A ``drop_ratio`` hyper-parameter that is a usable dropout probability in (0, 1], else 0:
    the keys then decide (dropout is inert at inference; only its presence shapes the keys)."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, str)):
        return 0.0
    try:
        drop = float(value)
    except ValueError:
        return 0.0
    return drop if 0.0 < drop <= 1.0 else 0.0  # NaN fails both


def detect_arch(sd: Mapping[str, torch.Tensor], *, hparams: Mapping[str, Any] | None = None) -> ArchConfig:
    """Infer the architecture and its settings from a (prefix-stripped) state dict; ``hparams``
    (the checkpoint's hyperparameters) may name the model and its dropout ratio.

    Raises ``TvexportError`` listing the known architectures when nothing matches.
    """
    hparams = hparams or {}
    tv_prefix = _first_tv_prefix(sd)
    tv = _tv_settings(sd, tv_prefix) if tv_prefix is not None else TVSettings()
    drop = _drop_ratio(hparams.get("drop_ratio"))

    if any(k.startswith("classifier.aspp.") for k in sd):  # any ASPP key: a file missing any one is recognised
        # any TV layer makes it TV, any inverted-residual ASPP branch DW: one key missing from the
        # first branch is then named as missing, not the whole ASPP as another atom's
        if tv_prefix is not None:
            atom: Atom = "tvconv"
        elif any(k.startswith(("classifier.aspp.convs.1.0.conv.", "classifier.aspp.convs.2.0.conv.", "classifier.aspp.convs.3.0.conv.")) for k in sd):
            atom = "dwconv"
        else:
            atom = "dense"
        # the logits conv's outputs (its weight, else its bias); a mis-shaped one is named by the state-dict check
        num_classes = _size(sd, "classifier.classifier.3.weight", 0) or _size(sd, "classifier.classifier.3.bias", 0) or 2
        return ArchConfig("deeplabv3plus_mobilenetv2", width=1.0, atom=atom, tv=tv, num_classes=num_classes)

    atom = "tvconv" if tv_prefix is not None else "dwconv"
    has_dropout = "output_layer.layer1.0.weight" in sd
    if has_dropout and drop == 0.0:
        drop = 0.5  # inert at inference; only its presence changes the key layout
    if not has_dropout:
        drop = 0.0

    # the families by their top-level modules, so that a file missing any one key is still
    # recognised and the state-dict check names that key
    tops = {k.partition(".")[0] for k in sd}
    if {"features", "output_layer"} <= tops:
        stem = _size(sd, "features.0.0.weight", 0)  # None (a 0-d tensor): the blocks decide, the state-dict check names it
        outs = _block_outs(sd)  # the blocks found: a missing one is named by the state-dict check
        named = hparams.get("model_name")
        candidates = []
        if isinstance(named, str) and named in FAMILIES["face_mobilenetv2"].reference_names:
            candidates.append(FAMILIES["face_mobilenetv2"].reference_names[named])
        candidates += list(MOBILENETV2_WIDTHS) + [round(0.1 + 0.05 * i, 2) for i in range(19)]
        for width in candidates:
            expected_stem, expected_outs = mobilenetv2_channels(width)
            if outs and all(expected_outs[i - 1] == c for i, c in outs.items()) and stem in (None, expected_stem):
                return ArchConfig("face_mobilenetv2", width=width, atom=atom, tv=tv, drop_ratio=drop)
        raise TvexportError(f"state dict looks like a face MobileNetV2 but its channels (stem {stem}, blocks {list(outs.values())[:3]}...) match no width in [0.1, 1.0]",
                            hint="tvexport reads the reference widths 0.1-1.0 (steps of 0.05): check that the file is a complete reference checkpoint")

    if {"conv1", "stage2", "output_layer"} <= tops:
        # the stage-2 branch width: either branch's first 1x1 conv outputs it
        branch = _size(sd, "stage2.0.branch1.2.weight", 0) or _size(sd, "stage2.0.branch2.0.weight", 0)
        for width, chans in SHUFFLENETV2_STAGES.items():
            if chans[1] // 2 == branch:
                return ArchConfig("face_shufflenetv2", width=width, atom=atom, tv=tv, drop_ratio=drop)
        raise TvexportError(
            f"state dict looks like a face ShuffleNetV2 but its stage-2 width {branch * 2 if branch else '(unreadable)'} matches no known width ({list(SHUFFLENETV2_WIDTHS)})",
            hint=f"tvexport reads the reference's ShuffleNetV2 {', '.join(f'x{w} (stage 2: {c[1]})' for w, c in SHUFFLENETV2_STAGES.items())}: "
            "check that the file is a complete reference checkpoint",
        )

    some = ", ".join(list(sd)[:3])
    raise TvexportError(
        f"unknown architecture (keys start {some})",
        hint=f"known: {', '.join(list_models())}; pass --arch if it is one of them",
    )


def _block_outs(sd: Mapping[str, torch.Tensor]) -> dict[int, int]:
    """Output channels of each MobileNetV2 block found (block index -> channels of its pw-linear
    BatchNorm), blocks whose key is missing left out."""
    outs = {}
    for i in range(1, sum(n for _, _, n, _ in MOBILENETV2_SETTING) + 1):
        found = [k for k in (f"features.{i}.conv.2.weight", f"features.{i}.conv.3.weight") if k in sd and sd[k].dim() == 1]
        if found:
            outs[i] = int(sd[found[-1]].shape[0])
    return outs
