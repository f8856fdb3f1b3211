"""What is benchmarked: the TV network from SRC and its baselines of the same architecture."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._io import refuse_stdin
from ..bake import bake_model, check_bake, load_checkpoint, model_from_baked
from ..checkpoint import read_checkpoint, refuse_nonfinite
from ..errors import TvexportError
from ..models.loading import arch_config_for, build_from_state_dict
from ..models.registry import ArchConfig, Atom, config_of, create_model, list_models, resolve_arch
from ..resize import parse_input_size, resize_unbaked
from .backends import Form

__all__ = ["Network", "Subject", "load_subject", "parse_input_size"]


@dataclasses.dataclass
class Network:
    """One network of a comparison, in the forms backends ask for.

    ``unbaked`` is the trainable network (TVConv generators run per call; BatchNorm unfolded), or
    None when only a baked file was given. ``baked`` is made on first use: TVConv generators
    replaced by their constant kernels and BatchNorm folded -- for a baseline only the folding,
    so that every baked comparison is deployment form against deployment form.
    """

    label: str  # "tvconv", "dwconv", "dense"
    origin: str  # where the weights came from, for the report
    unbaked: nn.Module | None
    baked_model: nn.Module | None = None

    @property
    def atom(self) -> str:
        """The network's layer type (its configuration's ``atom``)."""
        return self.config.atom

    @property
    def config(self) -> ArchConfig:
        """The architecture configuration (of the unbaked network, else the baked one)."""
        model = self.unbaked if self.unbaked is not None else self.baked_model
        assert model is not None
        return config_of(model)

    def form(self, form: Form) -> nn.Module | None:
        """The network in ``form``: unbaked (None for a baked file) or baked (a baked file's, else made on
        first use: the TV network's bake verified against the unbaked one, a baseline's only BatchNorm-folded)."""
        if form == "unbaked":
            return self.unbaked
        if self.baked_model is None:
            assert self.unbaked is not None
            # The TV bake is verified against the unbaked network (timing a wrong network would be
            # meaningless); a baseline's bake is plain BatchNorm folding.
            result = bake_model(self.unbaked, verify=self.label == "tvconv")
            check_bake(result)
            self.baked_model = result.model
        return self.baked_model

    def to_dict(self) -> dict[str, Any]:
        """Label, atom and origin, for the report."""
        return {"label": self.label, "atom": self.atom, "origin": self.origin}


@dataclasses.dataclass
class Subject:
    """The TV network (``networks[0]``) and its baselines, all of architecture ``config``."""

    config: ArchConfig
    source: dict[str, Any]
    networks: list[Network]

    @property
    def tv(self) -> Network:
        """The TV network (``networks[0]``)."""
        return self.networks[0]

    @property
    def baselines(self) -> list[Network]:
        """The baseline networks (``networks[1:]``)."""
        return self.networks[1:]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """One input's (channels, height, width)."""
        return self.config.input_shape


def _random(cfg: ArchConfig, *, seed: int) -> nn.Module:
    from ..testing import randomize_

    torch.manual_seed(seed)
    return randomize_(create_model(cfg), seed=seed)


def _load_tv(src: str | Path, *, arch: str | None, seed: int, input_size: tuple[int, int] | None) -> tuple[ArchConfig, Callable[[], Network], dict[str, Any]]:
    """SRC's architecture, what builds its TV network (a baked file's is built already: its
    architecture is read from the network), and where it came from."""
    path = Path(src)
    if path.exists():
        ckpt = read_checkpoint(path)
        if ckpt.format == "baked":
            model = model_from_baked(ckpt, arch=arch)
            return config_of(model), lambda: Network("tvconv", f"baked file {path.name}", None, model), {"kind": "baked", "path": str(path)}
        refuse_nonfinite(ckpt)
        cfg = arch_config_for(ckpt, arch=arch)
        if cfg.atom != "tvconv":
            raise TvexportError(
                f"{path} is a {cfg.name} {cfg.atom} baseline without TVConv layers",
                hint=f"benchmark the TVConv checkpoint and pass this file as --baseline {path}",
            )

        def build() -> Network:
            return Network("tvconv", f"checkpoint {path.name}", build_from_state_dict(cfg, ckpt.state_dict, source=ckpt.path))

        return cfg, build, {"kind": "checkpoint", "path": str(path), "format": ckpt.format}
    try:
        cfg = resolve_arch(str(src))
    except TvexportError:
        raise TvexportError(
            f"{src} is neither an existing file nor a known architecture",
            hint=f"give a checkpoint, a .baked.pt file or one of: {', '.join(list_models())}",
        ) from None
    if arch is not None and resolve_arch(arch).name != cfg.name:
        raise TvexportError(f"--arch {arch} contradicts SRC {src}", hint="give the architecture once")
    if input_size is not None:  # random weights can be made at any size
        cfg = cfg.with_input_size(input_size)
    return cfg, lambda: Network("tvconv", "random weights, reference TV settings", _random(cfg, seed=seed)), {"kind": "registry", "arch": cfg.name}


def _baseline_from_file(path: Path, cfg: ArchConfig) -> Network:
    if not path.exists():
        raise TvexportError(f"baseline {path} does not exist", hint="--baseline takes a DWConv (or dense) checkpoint of the same architecture; check the path")
    model = load_checkpoint(path)
    bcfg = config_of(model)
    if bcfg.atom == "tvconv":
        raise TvexportError(f"baseline {path} is a TVConv network", hint="--baseline takes a DWConv (or dense) checkpoint of the same architecture")
    if (bcfg.family, bcfg.width) != (cfg.family, cfg.width):
        raise TvexportError(f"baseline {path} is a {bcfg.name}, but the TV network is a {cfg.name}", hint="compare networks of the same architecture and width")
    if bcfg.input_size != cfg.input_size:  # a TV network re-baked for another size: the baseline runs there too
        model = resize_unbaked(model, cfg.input_size)
    return Network(bcfg.atom, f"checkpoint {path.name}", model)


def load_subject(
    src: str | Path,
    *,
    arch: str | None = None,
    baseline: str | Path | None = None,
    dense: bool = False,
    input_size: tuple[int, int] | None = None,
    seed: int = 0,
    before_build: Callable[[ArchConfig, bool], None] | None = None,
) -> Subject:
    """Load SRC (checkpoint, baked file, or registry name with random weights) and its baselines.

    The DWConv baseline is ``create_model(name, atom="dwconv")`` with random weights unless
    ``baseline`` names a checkpoint; ``dense`` adds the dense-conv baseline where the zoo has one
    (DeepLabV3+ only). ``input_size`` must be the network's size (the trained one unless SRC was
    re-baked for another): TVConv only runs there; an architecture name is built at that size.
    Baselines are built at the network's size. ``before_build(config, unbaked)`` is called with the
    architecture, and whether the TV network will have its unbaked form, after the checks that need
    no network and before a checkpoint's or an architecture name's networks are built (``tvexport
    bench`` refuses there a batch whose input cannot fit in memory, ``refuse_oversized_batch``).
    """
    refuse_stdin(src, what="SRC")
    refuse_stdin(baseline, what="--baseline")
    cfg, build_tv, source = _load_tv(src, arch=arch, seed=seed, input_size=input_size)
    if input_size is not None and tuple(input_size) != tuple(cfg.input_size):
        h, w = cfg.input_size
        kind = "trained" if cfg.input_hw is None else "re-baked"
        raise TvexportError(
            f"{cfg.name} runs only at its {kind} input size {h}x{w}, not {input_size[0]}x{input_size[1]}",
            hint=f"TVConv kernels are per position: re-bake it for that size (tvexport bake CKPT --input-size {input_size[0]}x{input_size[1]}), or omit --input-size",
        )
    if before_build is not None:
        before_build(cfg, source["kind"] != "baked")
    tv = build_tv()
    given = _baseline_from_file(Path(baseline), cfg) if baseline is not None else None
    if (dense or (given is not None and given.label == "dense")) and "dense" not in cfg.spec.atoms:
        raise TvexportError(
            f"the zoo has no dense baseline for {cfg.family}",
            hint="only deeplabv3plus_mobilenetv2 has one (its original ASPP); a face-net dense baseline would replace each depthwise conv "
                 "by a full 3x3 conv, which the reference never trained",
        )
    networks = [tv]
    baseline_atoms: tuple[Atom, ...] = ("dwconv", "dense")
    for i, atom in enumerate(baseline_atoms):
        if atom == "dense" and not dense and not (given is not None and given.label == "dense"):
            continue
        if given is not None and given.label == atom:
            networks.append(given)
        else:
            networks.append(Network(atom, "random weights", _random(cfg.with_atom(atom), seed=seed + 1 + i)))
    return Subject(cfg, source, networks)
