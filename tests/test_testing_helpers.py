"""tvexport.testing: the helpers tests and demos build models and checkpoints with."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch
from torch import nn

from tvexport.models import create_model
from tvexport.testing import lightning_checkpoint, randomize_, save_lightning


@pytest.mark.parametrize("norm", [nn.BatchNorm2d(3, affine=False), nn.BatchNorm1d(3, track_running_stats=False),
                                  nn.LayerNorm(4, bias=False), nn.LayerNorm(4, elementwise_affine=False)],
                         ids=["bn-no-affine", "bn-no-stats", "ln-no-bias", "ln-no-affine"])
def test_randomize_norms_without_affine_or_stats(norm: nn.Module) -> None:
    """Before: AttributeError ('NoneType' object has no attribute 'copy_') on each of these."""
    randomize_(nn.Sequential(norm), calibrate=False)
    for name in ("weight", "running_var"):
        t = getattr(norm, name, None)
        if t is not None:
            assert not torch.all(t == 1.0), name  # randomised, not left at the initial ones


def test_calibrate_skips_a_batchnorm_without_running_stats() -> None:
    """Calibration resets and measures only the BatchNorms that keep running statistics (without
    the filter: AttributeError, 'NoneType' object has no attribute 'add_')."""
    model = create_model("face_mobilenetv2_x0_1")
    parent, name, bn = next((m, n, c) for m in model.modules() for n, c in m.named_children() if isinstance(c, nn.BatchNorm2d))
    setattr(parent, name, nn.BatchNorm2d(bn.num_features, track_running_stats=False))
    others = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d) and m.running_var is not None]
    randomize_(model, calibrate=True)
    assert getattr(parent, name).running_var is None
    assert others and all(m.num_batches_tracked.item() == 1 for m in others)  # each measured on the one calibration batch


def test_randomize_is_unchanged_for_full_norms() -> None:
    """Skipping absent tensors draws nothing for them: full norms get the values they always got."""
    bn, ln = nn.BatchNorm2d(3), nn.LayerNorm(4)
    randomize_(nn.Sequential(bn, ln), seed=5, calibrate=False)
    gen = torch.Generator().manual_seed(5)
    expected = [1.0 + 0.2 * torch.randn(3, generator=gen), 0.1 * torch.randn(3, generator=gen), 0.1 * torch.randn(3, generator=gen),
                0.5 + torch.rand(3, generator=gen), 1.0 + 0.2 * torch.randn(4, generator=gen), 0.1 * torch.randn(4, generator=gen)]
    for got, want in zip([bn.weight, bn.bias, bn.running_mean, bn.running_var, ln.weight, ln.bias], expected):
        torch.testing.assert_close(got.detach(), want, rtol=0, atol=0)


def test_save_lightning_restores_an_existing_model_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With Lightning installed, pickling under its ModelCheckpoint name must not leave the fake
    class in place of the real one (before: the process kept the fake afterwards)."""
    names = ["pytorch_lightning", "pytorch_lightning.callbacks", "pytorch_lightning.callbacks.model_checkpoint"]
    modules = {name: types.ModuleType(name) for name in names}
    real = type("ModelCheckpoint", (), {})
    modules[names[-1]].ModelCheckpoint = real  # type: ignore[attr-defined]
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    save_lightning(lightning_checkpoint(nn.Linear(2, 2)), tmp_path / "l.ckpt")
    assert sys.modules[names[-1]].ModelCheckpoint is real
    assert (tmp_path / "l.ckpt").stat().st_size > 0


def test_save_lightning_leaves_no_module_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ["pytorch_lightning", "pytorch_lightning.callbacks", "pytorch_lightning.callbacks.model_checkpoint"]:
        monkeypatch.delitem(sys.modules, name, raising=False)
    save_lightning(lightning_checkpoint(nn.Linear(2, 2)), tmp_path / "l.ckpt")
    assert "pytorch_lightning" not in sys.modules and "pytorch_lightning.callbacks.model_checkpoint" not in sys.modules


def test_save_lightning_removes_the_class_it_added(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The module is there but has no ModelCheckpoint: the fake one is removed afterwards, not left
    in the module (before mend35e: it stayed)."""
    names = ["pytorch_lightning", "pytorch_lightning.callbacks", "pytorch_lightning.callbacks.model_checkpoint"]
    for name in names:
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    save_lightning(lightning_checkpoint(nn.Linear(2, 2)), tmp_path / "l.ckpt")
    assert not hasattr(sys.modules[names[-1]], "ModelCheckpoint")
    assert all(name in sys.modules for name in names)  # modules that were there stay


def test_one_extension_fixture_for_every_test_file() -> None:
    """The OpenVINO extension's fixture is tests/conftest.py's alone (skips where the build tools are
    missing, fails where the build fails): before, test_openvino.py and test_openvino_pointwise.py
    each had their own (without the skip: those files skip as a whole), three to keep alike."""
    import ast

    defined = []
    for path in sorted(Path(__file__).resolve().parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name == "extension" and any("fixture" in ast.unparse(d) for d in node.decorator_list):
                defined.append(path.name)
    assert defined == ["conftest.py"]


def test_importtime_lines_are_read_by_one_helper() -> None:
    """``-X importtime`` output is split by conftest's split_importtime alone: before, three copies
    of the parsing (heavy_imports, check_render_refusals, the export refusals' fresh-process test)."""
    from conftest import split_importtime

    stderr = ("import time: self [us] | cumulative | imported package\n"
              "import time:       310 |        310 |   _io\n"
              "import time:      2048 |     912345 | torch._inductor.config\n"
              "\n"
              "error: too big; give a smaller batch\n")
    assert split_importtime(stderr) == ({"_io", "torch._inductor.config"}, ["error: too big; give a smaller batch"])  # the header is no module
    real = subprocess.run([sys.executable, "-X", "importtime", "-c", "pass"], capture_output=True, text=True, check=True).stderr
    assert real.startswith("import time: self [us] | cumulative | imported package\n"), real[:200]  # the header the split skips
    assert split_importtime(real) == ({line.rsplit("|", 1)[-1].strip() for line in real.splitlines()[1:]}, [])
    here = Path(__file__).resolve()
    parsers = sorted(path.name for path in here.parent.glob("*.py") if path != here  # this test names the pattern
                     for line in path.read_text().splitlines() if 'startswith("import time:")' in line)
    assert parsers == ["conftest.py"], parsers
