"""The acceptance rule (tvexport.accuracy) where numbers stop being numbers, and its statistics."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from conftest import make_model, write_checkpoint
from tvexport.accuracy import Comparison, Reference, Tolerance, compare_outputs
from tvexport.bake import bake_model
from tvexport.errors import TvexportError


def _overflowing_model(peak: float = 1e36) -> nn.Module:
    """A face network whose last Linear has finite weights up to ``peak``: at 1e36 float32
    activations overflow there, float64 ones do not, and the baked weights (its BatchNorm folded
    in, x ~127) still fit float32; at 1e38 the baked weights overflow float32 too."""
    model = make_model()
    linear = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        linear.weight.div_(linear.weight.abs().max()).mul_(math.sqrt(peak)).mul_(math.sqrt(peak))
    return model


def test_tolerance_options_are_keyword_only() -> None:
    """House standard: options are keyword-only (before: ``Tolerance(1e-5, 1e-6)`` read as rtol, atol)."""
    with pytest.raises(TypeError):
        Tolerance(1e-5)  # type: ignore[misc]
    assert Tolerance(rtol=1e-5, atol=1e-6) == Tolerance.default("float32", atol=1e-6)


def test_nonfinite_error_or_allowance_never_passes() -> None:
    tol = Tolerance(rtol=1e-5)
    base = dict(name="out", max_rel=0.0, p99_abs=0.0, cosine=1.0, ref_max=1.0, baseline_max_rel=None, tolerance=tol)
    assert not Comparison(max_abs=math.inf, baseline_max_abs=0.0, **base).ok  # type: ignore[arg-type]
    assert not Comparison(max_abs=math.nan, baseline_max_abs=0.0, **base).ok  # type: ignore[arg-type]
    assert not Comparison(max_abs=1e3, baseline_max_abs=math.inf, **base).ok  # type: ignore[arg-type]
    assert not Comparison(max_abs=0.0, baseline_max_abs=math.inf, **base).ok  # type: ignore[arg-type]
    assert Comparison(max_abs=0.0, baseline_max_abs=0.0, **base).ok  # type: ignore[arg-type]


def test_nonfinite_float32_baseline_is_refused_in_one_line() -> None:
    """A float32 original that overflows where the float64 truth is finite gives no yardstick:
    refused, whatever the candidate (before, the allowance became inf and anything passed)."""
    truth = np.array([1.0, 2.0, 6e38])
    baseline = np.array([1.0, 2.0, np.inf], dtype=np.float32)  # truth in float32
    for got in (np.array([1000.0, -5.0, 0.0]), baseline, truth):
        with pytest.raises(TvexportError, match="float32 network computes Inf/NaN.*float64 truth is finite") as err:
            compare_outputs("out", got, truth, tolerance=Tolerance(rtol=1e-5), baseline=baseline)
        assert "\n" not in str(err.value) and err.value.hint


def test_bake_of_a_network_float32_cannot_run_is_refused() -> None:
    model = _overflowing_model()
    ref = Reference(model)
    x = torch.rand(2, *ref.config.input_shape) * 2 - 1
    assert bool(torch.isfinite(ref.truth(x)).all()) and not bool(torch.isfinite(ref.float32(x)).all())
    with pytest.raises(TvexportError, match="float32 network computes Inf/NaN"):
        bake_model(model)
    assert bake_model(model, verify=False).report is None  # what --no-verify promises still holds


def test_cli_bake_refuses_it_and_writes_nothing(cli, tmp_path: Path) -> None:
    src = write_checkpoint(_overflowing_model(), tmp_path / "overflow.ckpt", "lightning")
    out = tmp_path / "overflow.baked.pt"
    r = cli("bake", src, "-o", out)
    assert r.exit_code == 2, (r.stdout, r.stderr)
    assert "float32 network computes Inf/NaN" in r.stderr and str(src) in r.stderr and "Traceback" not in r.stderr + r.stdout
    assert not out.exists() and list(tmp_path.iterdir()) == [src]


def test_bake_refuses_weights_that_overflow_float32_once_baked(cli, tmp_path: Path) -> None:
    """Finite float64 weights whose BatchNorm folding exceeds float32: refused in one line, even
    unverified (before, --no-verify wrote a file holding Inf and exited 0)."""
    model = _overflowing_model(1e38)
    for verify in (True, False):
        with pytest.raises(TvexportError, match=r"output_layer\.layer2\.0\.weight \(baked\) overflows float32") as err:
            bake_model(model, verify=verify)
        assert "\n" not in str(err.value) and "damaged or diverged" in (err.value.hint or "")
    src = write_checkpoint(model, tmp_path / "overflow.ckpt", "lightning")
    out = tmp_path / "overflow.baked.pt"
    r = cli("bake", src, "-o", out, "--no-verify")
    assert r.exit_code == 2, (r.stdout, r.stderr)
    assert "overflows float32" in r.stderr and "Traceback" not in r.stderr + r.stdout
    assert not out.exists() and list(tmp_path.iterdir()) == [src]


@pytest.mark.parametrize("n", [1, 2, 10, 100, 1001])
def test_p99_abs_is_the_profiling_percentile(n: int) -> None:
    """One meaning of "p99" in tvexport: linear interpolation (tvexport.profile.stats.percentile),
    not the lower order statistic (for two values that was the minimum)."""
    from tvexport.profile.stats import percentile

    truth = np.ones(n)
    errors = np.linspace(0.0, 1.0, n)
    c = compare_outputs("out", truth + errors, truth, tolerance=Tolerance(rtol=1e-5))
    assert c.p99_abs == pytest.approx(percentile(list(errors), 99), abs=1e-15)
    if n == 2:
        assert c.p99_abs == pytest.approx(0.99)
