"""A checkpoint's network: its architecture (detected, or given) and the model built from its
state dict. Reads what tvexport.checkpoint read; the checkpoint module knows nothing of models."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ..checkpoint import Checkpoint, damaged_metadata
from ..errors import TvexportError, about_file
from ..layers import TVConv
from .registry import ArchConfig, _first_tv_prefix, _tv_settings, create_model, detect_arch, resolve_arch


def arch_config_for(ckpt: Checkpoint, *, arch: str | None = None) -> ArchConfig:
    """The architecture of ``ckpt``: detected from its keys, or ``arch`` if given (a baked file
    records its own: another ``arch`` is refused)."""
    if ckpt.format == "baked":
        assert ckpt.payload is not None
        try:
            cfg = ArchConfig.from_dict(ckpt.payload["arch"])
            _ = (cfg.name, cfg.input_shape)  # an unknown family or a bad width fails here, not in a later message
        except (KeyError, TypeError, ValueError, AttributeError, TvexportError) as err:
            raise damaged_metadata(ckpt.path, err) from None
        if arch is not None and resolve_arch(arch).name != cfg.name:  # it would be ignored
            raise TvexportError(f"--arch {arch} contradicts {ckpt.path}, a baked {cfg.name} (a baked file records its architecture)", hint="drop --arch")
        return cfg
    sd = ckpt.state_dict
    if arch is None:
        with about_file(ckpt.path):
            return detect_arch(sd, hparams=ckpt.hparams)
    cfg = resolve_arch(arch)
    try:
        detected = detect_arch(sd, hparams=ckpt.hparams)
        if detected.family == cfg.family:
            return dataclasses.replace(detected, width=cfg.width)
    except TvexportError:
        pass
    tv_prefix = _first_tv_prefix(sd)
    if tv_prefix is not None:
        with about_file(ckpt.path):
            tv = _tv_settings(sd, tv_prefix)
        return dataclasses.replace(cfg, atom="tvconv", tv=tv)
    return dataclasses.replace(cfg, atom="dwconv")


def check_state_dict(model: nn.Module, sd: Mapping[str, torch.Tensor], *, source: Path, arch_name: str) -> None:
    """Raise one clear line when ``sd`` does not fit ``model`` (missing, unexpected, mis-shaped keys)."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key{'s' * (len(missing) > 1)} ({', '.join(missing[:3])}{', ...' * (len(missing) > 3)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key{'s' * (len(unexpected) > 1)} ({', '.join(unexpected[:3])}{', ...' * (len(unexpected) > 3)})")
        raise TvexportError(f"{source}: state dict does not match {arch_name}: {'; '.join(parts)}", hint="check --arch, or that the file is complete")
    for k, v in expected.items():
        if tuple(sd[k].shape) != tuple(v.shape):
            raise TvexportError(
                f"{source}: shape mismatch for {k}: checkpoint {tuple(sd[k].shape)}, {arch_name} expects {tuple(v.shape)}",
                hint="check --arch (width, TV settings), or that the file is not corrupt",
            )
    for k, v in expected.items():
        if v.is_floating_point() and not sd[k].is_floating_point():  # assign=True would make it an integer weight: torch raises
            raise TvexportError(
                f"{source}: {k} holds {str(sd[k].dtype).removeprefix('torch.')} values, but {arch_name} has floating-point weights there",
                hint="the file is damaged or was not saved from a trained network; fetch or save the checkpoint again",
            )
    _check_tv_buffers(model, sd, source=source, arch_name=arch_name)


def _check_tv_buffers(model: nn.Module, sd: Mapping[str, torch.Tensor], *, source: Path, arch_name: str) -> None:
    """Refuse a TV layer whose recorded geometry (the reference's integer buffers ``TVConv_k``,
    ``TVConv_k_square``, ``stride``, ``channels``, ``h``, ``w``) contradicts the architecture's.
    The bake uses the architecture's, so without this check such a file would bake, and verify,
    as if it held other values; the reference's own forward reads them."""
    for name, layer in model.named_modules():
        if not isinstance(layer, TVConv):
            continue
        g = layer.geometry
        expected = {"TVConv_k": g.k, "TVConv_k_square": g.k * g.k, "stride": g.stride, "channels": g.channels, "h": g.h, "w": g.w}
        for buffer, value in expected.items():
            key = f"{name}.{buffer}"
            stored = sd.get(key)
            if not isinstance(stored, torch.Tensor) or stored.numel() != 1:
                continue  # a missing or mis-shaped key is named by the checks above
            number = stored.item()
            if number != value:
                shown = f"{number:g}" if isinstance(number, float) else str(number)
                raise TvexportError(
                    f"{source}: TV layer {name} records {buffer}={shown}, but {arch_name} has {buffer}={value} there",
                    hint="the file is damaged or was saved from another network; check --arch, or fetch or save the checkpoint again",
                )


def build_from_state_dict(cfg: ArchConfig, sd: Mapping[str, torch.Tensor], *, source: Path) -> nn.Module:
    """Build ``cfg``'s network without initialising weights, then load ``sd`` into it (strict)."""
    with torch.device("meta"):
        model = create_model(cfg)
    check_state_dict(model, sd, source=source, arch_name=cfg.name)
    model.load_state_dict(sd, strict=True, assign=True)
    model.float()
    stale = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if stale:  # a tensor the constructor made that is not in the state dict
        raise RuntimeError(f"tensors left uninitialised after loading: {stale[:3]}")
    model.tvexport_config = cfg  # type: ignore[assignment]
    return model.eval()
