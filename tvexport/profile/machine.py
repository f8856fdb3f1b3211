"""Where a benchmark ran: CPU, cores, memory, OS, GPU, load, and library versions."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path
from typing import Any

from .._version import __version__

__all__ = ["l3_cache_bytes", "machine_info", "versions"]

# read from installed metadata (never imported): the runtimes a backend times, and onnxsim, which
# shapes the graphs the onnxruntime and openvino backends run
OPTIONAL_PACKAGES = ("numpy", "onnxruntime", "onnx", "onnxsim", "openvino", "tensorrt", "triton", "matplotlib")


def _cpuinfo() -> tuple[str | None, int | None]:
    """(model name, physical cores) from /proc/cpuinfo (Linux), else (None, None)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None, None
    model = None
    cores: set[tuple[str, str]] = set()
    phys = core = None
    for line in text.splitlines() + [""]:
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "model name" and model is None:
            model = value
        elif key == "physical id":
            phys = value
        elif key == "core id":
            core = value
        elif not line.strip():
            if phys is not None and core is not None:
                cores.add((phys, core))
            phys = core = None
    return model, (len(cores) or None)


def _memory_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def l3_cache_bytes(*, cache_dir: Path = Path("/sys/devices/system/cpu/cpu0/cache")) -> int | None:
    """Size of the level-3 cache CPU 0 sees (Linux sysfs, e.g. ``32768K``), or None where unknown."""
    units = {"K": 1024, "M": 1024**2, "G": 1024**3}
    try:
        for index in sorted(cache_dir.glob("index*")):
            if (index / "level").read_text().strip() == "3":
                size = (index / "size").read_text().strip()
                return int(size[:-1]) * units[size[-1]] if size[-1:] in units else int(size)
    except (OSError, ValueError):
        pass
    return None


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def machine_info(*, device: str = "cpu") -> dict[str, Any]:
    """CPU model, logical/physical cores, memory, OS, GPU (for cuda) and the 1/5/15-min load."""
    model, physical = _cpuinfo()
    gpu = None
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name()
    return {
        "cpu": model or platform.processor() or platform.machine(),
        "logical_cores": os.cpu_count(),
        "physical_cores": physical,
        "memory_bytes": _memory_bytes(),
        "os": platform.platform(),
        "machine": platform.machine(),
        "gpu": gpu,
        "load_average": load_average(),
    }


def versions() -> dict[str, str | None]:
    """python, torch, tvexport and the optional runtimes (None when not installed; not imported)."""
    import torch

    out: dict[str, str | None] = {"python": platform.python_version(), "torch": str(torch.__version__), "tvexport": __version__}
    for name in OPTIONAL_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    out["cuda"] = torch.version.cuda
    return out
