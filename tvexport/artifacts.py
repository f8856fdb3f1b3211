"""Recognise tvexport's own artefacts (ONNX graphs, AOTInductor packages, TensorRT engines, and
the JSON sidecars beside the last two) by their content, to say what a file is and which command
takes it where something else was expected.

Standard library only: nothing here loads a model, so checkpoint reading can ask first.
"""

from __future__ import annotations

import dataclasses
import json
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from .errors import TvexportError

ArtifactKind = Literal["onnx", "aoti", "tensorrt"]

AOTI_SIDECAR_FORMAT = "tvexport-aoti"
ENGINE_SIDECAR_FORMAT = "tvexport-tensorrt-engine"
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
_SIDECAR_KINDS: dict[str, ArtifactKind] = {AOTI_SIDECAR_FORMAT: "aoti", ENGINE_SIDECAR_FORMAT: "tensorrt"}
_MAX_SIDECAR_BYTES = 1 << 20

# kind -> (what it is, the command that makes it, the validate backend that runs it)
_KINDS: dict[ArtifactKind, tuple[str, str, str]] = {
    "onnx": ("an ONNX model", "tvexport export", "onnxruntime"),
    "aoti": ("an AOTInductor package", "tvexport export --format aoti", "aoti"),
    "tensorrt": ("a TensorRT engine", "tvexport build", "tensorrt"),
}
# validate backend -> the kind of artefact it runs (the default backend of each kind, and the others)
BACKEND_KINDS: dict[str, ArtifactKind] = {backend: kind for kind, (_, _, backend) in _KINDS.items()}
BACKEND_KINDS.update({"openvino": "onnx", "openvino-bf16": "onnx"})


# what a file named with a suffix is taken to be (by users, runners, onnxruntime, trtexec); the
# longest suffix first (``.baked.pt`` before ``.pt``)
OutputKind = Literal["onnx", "aoti", "tensorrt", "baked", "checkpoint"]
_SUFFIX_KINDS: tuple[tuple[str, OutputKind], ...] = (
    (".baked.pt", "baked"), (".onnx", "onnx"), (".pt2", "aoti"), *((s, "tensorrt") for s in ENGINE_SUFFIXES),
    (".pth.tar", "checkpoint"), (".ckpt", "checkpoint"), (".pth", "checkpoint"), (".pt", "checkpoint"), (".tar", "checkpoint"),
)
_OUTPUT_WHAT: dict[OutputKind, str] = {
    "onnx": "an ONNX model", "aoti": "an AOTInductor package", "tensorrt": "a TensorRT engine",
    "baked": "a baked file", "checkpoint": "a torch checkpoint",
}
# how to make each kind instead, for check_output_suffix's hint ({path}: the output, {source}: the input)
MAKE_KIND: dict[OutputKind, str] = {
    "onnx": "export an ONNX model with: tvexport export {source} -o {path}",
    "aoti": "export an AOTInductor package with: tvexport export {source} -o {path}",
    "baked": "make a baked file with: tvexport bake {source} -o {path}",
    "tensorrt": "build an engine from a --tv-op plugin ONNX model with: tvexport build MODEL.onnx -o {path}",
}


def suffix_kind(path: str | Path) -> tuple[str, OutputKind] | None:
    """(suffix, kind) a file named ``path`` is taken to be by its name, or None for a suffix
    tvexport does not know (``model.onnx`` -> (".onnx", "onnx"), ``m.baked.pt`` -> (".baked.pt", "baked"))."""
    name = Path(path).name.lower()
    return next(((suffix, kind) for suffix, kind in _SUFFIX_KINDS if name.endswith(suffix) and len(name) > len(suffix)), None)


def export_format_of(path: str | Path | None) -> str | None:
    """The ``tvexport export --format`` a known output suffix calls for (.onnx: onnx, .pt2: aoti), else None."""
    found = suffix_kind(path) if path is not None else None
    return found[1] if found is not None and found[1] in ("onnx", "aoti") else None


def check_output_suffix(
    path: str | Path, *, writes: OutputKind, by: str, how: Mapping[OutputKind, str] = MAKE_KIND, source: str | Path | None = None,
) -> None:
    """Refuse an output named with the suffix of another kind of file than the one written
    (``writes``, by the command ``by``): the runners, onnxruntime, trtexec and the user would take it for that. ``how``:
    per kind, how to make that kind instead (default ``MAKE_KIND``; ``{path}``: the output, ``{source}``: the input,
    CHECKPOINT when not given), for the hint. A suffix tvexport does not know, or none, passes; the two torch kinds
    (baked, checkpoint) are one here."""
    found = suffix_kind(path)
    if found is None:
        return
    suffix, kind = found
    torch_file = {"baked", "checkpoint"}
    if kind == writes or (kind in torch_file and writes in torch_file):
        return
    path = Path(path)
    right = {"onnx": ".onnx", "aoti": ".pt2", "tensorrt": ".engine", "baked": ".baked.pt", "checkpoint": ".baked.pt"}[writes]
    fix = f"name it {path.with_name(path.name[: -len(suffix)] + right)}"
    if kind in how:
        fix += f", or {how[kind].format(path=path, source=source or 'CHECKPOINT')}"
    raise TvexportError(f"-o {path}: {suffix} names {_OUTPUT_WHAT[kind]}, but {by} writes {_OUTPUT_WHAT[writes]}", hint=fix)


def sidecar_path(path: Path) -> Path:
    """``model.pt2`` -> ``model.pt2.json``, ``model.engine`` -> ``model.engine.json``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def external_data_path(path: Path) -> Path:
    """``model.onnx`` -> ``model.onnx.data``: where an external-data ONNX export keeps its weights."""
    path = Path(path)
    return path.with_name(path.name + ".data")


@dataclasses.dataclass(frozen=True)
class Artifact:
    """A file tvexport made: ``path`` itself, or (``describes`` set) the JSON sidecar of one."""

    path: Path
    kind: ArtifactKind
    sidecar: dict[str, Any] | None = None  # the JSON description, where there is one
    describes: Path | None = None  # when ``path`` is a sidecar: the artefact it describes
    by_tvexport: bool = True

    @property
    def what(self) -> str:
        return _KINDS[self.kind][0]

    @property
    def made_by(self) -> str:
        return _KINDS[self.kind][1]

    @property
    def backend(self) -> str:
        """The ``tvexport validate --backend`` that runs it."""
        return _KINDS[self.kind][2]

    @property
    def arch(self) -> str | None:
        """The architecture recorded in the sidecar (ONNX graphs record theirs in metadata)."""
        arch = (self.sidecar or {}).get("arch")
        return arch if isinstance(arch, str) else None

    @property
    def atom(self) -> str | None:
        atom = (self.sidecar or {}).get("atom")
        return atom if isinstance(atom, str) else None

    def describe(self) -> str:
        """``demo.pt2 is an AOTInductor package (made by tvexport export --format aoti)``."""
        if self.describes is not None:
            return f"{self.path} is the JSON description of {self.what} ({self.describes.name}), written by {self.made_by}"
        made = f" (made by {self.made_by})" if self.by_tvexport else ""
        return f"{self.path} is {self.what}{made}"

    def usage(self) -> str:
        """Which commands take it."""
        target = self.describes or self.path
        run = f"tvexport validate {target} --against CHECKPOINT"
        if self.kind == "onnx":
            return f"check it with: {run}; build a TensorRT engine from a plugin graph with: tvexport build {target}"
        return f"check it with: {run}"

    def not_a_checkpoint(self) -> TvexportError:
        """The error for a command that wanted a checkpoint (inspect, bake, export, --against)."""
        return TvexportError(
            f"{self.describe()}, not a checkpoint",
            hint=f"give the checkpoint (.ckpt, .pth.tar) or .baked.pt it came from; {self.usage()}",
        )


def _read_sidecar(path: Path) -> dict[str, Any] | None:
    try:
        if path.stat().st_size > _MAX_SIDECAR_BYTES:
            return None
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") in _SIDECAR_KINDS else None


def _zip_names(path: Path) -> list[str] | str:
    """The member names of the zip archive ``path``, or why it cannot be read (a truncated file has
    no central directory)."""
    try:
        with zipfile.ZipFile(path) as zf:
            return zf.namelist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        return str(err) or type(err).__name__


def _is_aoti_package(path: Path) -> bool | str:
    """True for an AOTInductor package, False for another zip archive, or why the archive cannot be read."""
    names = _zip_names(path)
    return names if isinstance(names, str) else any("/data/aotinductor/" in f"/{name}" for name in names)


def damaged_package(path: Path, reason: str) -> TvexportError:
    """The error for an AOTInductor package whose zip archive cannot be read (``reason``); the hint
    re-exports over ``path`` (the checkpoint it came from is not recorded: CHECKPOINT)."""
    return TvexportError(f"{path} is a damaged AOTInductor package, truncated or corrupt ({reason})",
                         hint=f"copy the whole file again, or export it again with: tvexport export CHECKPOINT --format aoti -o {path} --force")


def check_package_archive(path: Path) -> None:
    """Refuse a package whose zip archive (a file opening as one: ``PK``) cannot be read, e.g. one
    cut short: torch's loader would blame the torch version. A file that is no zip archive at all
    passes (the loader says so)."""
    with path.open("rb") as f:
        if f.read(2) != b"PK":
            return
    names = _zip_names(path)
    if isinstance(names, str):
        raise damaged_package(path, names)


def _looks_like_onnx(path: Path, head: bytes) -> tuple[bool, bool]:
    """(is ONNX, made by tvexport): a ModelProto opens with ir_version (field 1, a small varint)
    and producer_name (field 2); tvexport writes producer 'tvexport'."""
    proto = len(head) >= 3 and head[0] == 0x08 and head[1] < 0x80 and head[2] == 0x12
    ours = proto and head[3:4] == bytes([len(b"tvexport")]) and head[4:12] == b"tvexport"
    return proto or path.suffix.lower() == ".onnx", ours


def identify(path: str | Path) -> Artifact | None:
    """What tvexport artefact ``path`` is, or None (a checkpoint, or something else). A zip archive
    that cannot be read and is named .pt2 (or has an AOTInductor description beside it) is refused
    as a damaged package."""
    path = Path(path)
    if not path.is_file():
        return None
    with path.open("rb") as f:
        head = f.read(64)
    if head.lstrip()[:1] == b"{":
        data = _read_sidecar(path)
        if data is not None:
            described = path.with_name(path.name[: -len(".json")]) if path.name.endswith(".json") else path
            return Artifact(path, _SIDECAR_KINDS[data["format"]], data, described)
        return None
    if head.startswith(b"PK"):
        package = _is_aoti_package(path)
        if package is True:
            return Artifact(path, "aoti", _read_sidecar(sidecar_path(path)))
        side = _read_sidecar(sidecar_path(path))
        if package is not False and (path.suffix.lower() == ".pt2" or (side is not None and side["format"] == AOTI_SIDECAR_FORMAT)):
            raise damaged_package(path, package)  # a zip archive cut short: a checkpoint's is the checkpoint reader's to report
        return None
    is_onnx, ours = _looks_like_onnx(path, head)
    if is_onnx:
        return Artifact(path, "onnx", by_tvexport=ours)
    side = _read_sidecar(sidecar_path(path))
    if side is not None and side["format"] == ENGINE_SIDECAR_FORMAT:
        return Artifact(path, "tensorrt", side)
    if path.suffix.lower() in ENGINE_SUFFIXES:
        return Artifact(path, "tensorrt", by_tvexport=False)
    return None
