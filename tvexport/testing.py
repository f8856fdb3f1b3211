"""Helpers for tests and demos: realistic random weights and checkpoints in the reference layouts.

Nothing here is needed to bake or export; it exists so that tests (ours and users') can build
the files the reference training code writes without Lightning, CUDA or the original data.
"""

from __future__ import annotations

import contextlib
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .layers import TVConv
from .models.registry import config_of


@torch.no_grad()
def randomize_(model: nn.Module, *, seed: int = 0, calibrate: bool = True, conditioned: bool = True) -> nn.Module:
    """Give every ``posi_map``, LayerNorm and BatchNorm random values, in place.

    ``posi_map`` initialises to ones (all positions equal), so a bake that mixed up positions
    would still pass on a fresh model; randomising it makes position errors visible. Without
    ``calibrate`` the BatchNorm statistics are random too (means ~0.1, variances 0.5-1.5).
    With ``calibrate`` they are then measured on random inputs, as training would leave them.
    Random inputs vary far less than real images, and statistics measured on them alone make
    every BatchNorm subtract a large mean from nearly constant features (outputs small relative
    to the activations), which turns float32 rounding into 1e-5..1e-4 output noise; so by default
    (``conditioned``) the variance kept is the raw second moment (var + mean^2), keeping the
    network as well conditioned as a trained one. ``conditioned=False`` keeps the measured
    variance: an ill-conditioned network, for testing tolerance rules.
    """
    gen = torch.Generator().manual_seed(seed)

    def rnd(t: torch.Tensor | None, scale: float, offset: float = 0.0) -> None:
        if t is not None:  # norms without affine parameters or running statistics have None
            t.copy_(offset + scale * torch.randn(t.shape, generator=gen))

    for m in model.modules():
        if isinstance(m, TVConv):
            rnd(m.posi_map, 1.0)
        elif isinstance(m, nn.LayerNorm):
            rnd(m.weight, 0.2, 1.0)
            rnd(m.bias, 0.1)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            rnd(m.weight, 0.2, 1.0)
            rnd(m.bias, 0.1)
            rnd(m.running_mean, 0.1)
            if m.running_var is not None:
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))
    if calibrate:
        bns = [m for m in model.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) and m.running_var is not None]
        momenta = [m.momentum for m in bns]
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batches
        model.train()
        shape = config_of(model).input_shape
        model(torch.rand((4, *shape), generator=gen) * 2 - 1)
        for m, mom in zip(bns, momenta):
            m.momentum = mom
            if conditioned:
                m.running_var.add_(m.running_mean.square())
    return model.eval()


@contextlib.contextmanager
def _importable(module: str, name: str, obj: Any) -> Iterator[None]:
    """Make ``module.name`` resolve to ``obj`` while pickling (so pickle writes that GLOBAL); afterwards
    modules added for it are removed, and a module that was there (Lightning installed) gets its
    own ``name`` back."""
    parts = module.split(".")
    added = []
    for i in range(1, len(parts) + 1):
        mod_name = ".".join(parts[:i])
        if mod_name not in sys.modules:
            sys.modules[mod_name] = types.ModuleType(mod_name)
            added.append(mod_name)
    target = sys.modules[module]
    missing = object()
    before = getattr(target, name, missing)
    setattr(target, name, obj)
    try:
        yield
    finally:
        if before is missing:
            delattr(target, name)
        else:
            setattr(target, name, before)
        for mod_name in added:
            del sys.modules[mod_name]


def lightning_checkpoint(
    model: nn.Module, *, num_classes: int = 10, hparams: dict[str, Any] | None = None, head_weight: torch.Tensor | None = None, epoch: int = 37
) -> dict[str, Any]:
    """The dict a PyTorch Lightning 1.4.6 run of the reference face code saves."""
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    state["head.weight"] = head_weight if head_weight is not None else torch.randn(512, num_classes)
    params = [p for p in model.parameters()]
    return {
        "epoch": epoch,
        "global_step": 1000 * (epoch + 1),
        "pytorch-lightning_version": "1.4.6",
        "state_dict": state,
        "callbacks": {"__MODEL_CHECKPOINT__": {
            "monitor": "mean_val_acc", "best_model_score": torch.tensor(91.5), "best_model_path": "model-epoch=37.ckpt",
            "current_score": torch.tensor(91.5), "dirpath": "./model_ckpt/",
        }},
        "optimizer_states": [{"state": {}, "param_groups": [
            {"lr": 1e-4, "momentum": 0.9, "dampening": 0, "weight_decay": 5e-4, "nesterov": False, "params": list(range(len(params) + 1))},
        ]}],
        "lr_schedulers": [{
            "milestones": __import__("collections").Counter([22, 30, 35]), "gamma": 0.1, "base_lrs": [0.1], "last_epoch": epoch + 1,
            "_step_count": epoch + 2, "verbose": False, "_get_lr_called_within_step": False, "_last_lr": [1e-4],
        }],
        "hparams_name": "hparams",
        "hyper_parameters": dict(hparams or {}),
    }


class _ModelCheckpointKey:
    """Pickled as ``pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint`` (a class used as a dict key)."""


def save_lightning(ckpt: dict[str, Any], path: str | Path) -> None:
    """Save like Lightning 1.4: ``callbacks`` keyed by the ModelCheckpoint class object."""
    module = "pytorch_lightning.callbacks.model_checkpoint"
    key = type("ModelCheckpoint", (), {"__module__": module})
    ckpt = dict(ckpt)
    ckpt["callbacks"] = {key if k == "__MODEL_CHECKPOINT__" else k: v for k, v in ckpt["callbacks"].items()}
    with _importable(module, "ModelCheckpoint", key):
        torch.save(ckpt, path)


def save_pth_tar(model: nn.Module, path: str | Path, *, data_parallel: bool = False, best_mean_dice: float = 0.9) -> None:
    """The ``checkpoint_best.pth.tar`` the reference segmentation trainer writes."""
    sd = model.state_dict()
    if data_parallel:
        sd = {f"module.{k}": v for k, v in sd.items()}
    torch.save(
        {
            "epoch": 39,
            "iteration": 12000,
            "arch": "DataParallel" if data_parallel else type(model).__name__,
            "optim_state_dict": {"state": {}, "param_groups": [{"lr": 2e-4, "betas": (0.9, 0.99), "eps": 1e-8, "weight_decay": 0, "amsgrad": False, "params": [0]}]},
            "model_state_dict": sd,
            "learning_rate_gen": 2e-4,
            "best_mean_dice": best_mean_dice,
        },
        path,
    )
