"""Reading checkpoints safely: format detection, prefix stripping, clear errors.

Every file goes through ``torch.load(weights_only=True)``: tensors and plain containers only,
plus a short allow-list of harmless names that real checkpoints contain (Lightning 1.x keys its
``callbacks`` by the ModelCheckpoint *class*; hyper-parameters may be an AttributeDict;
metrics may be numpy scalars). Nothing in a checkpoint is ever executed.
"""

from __future__ import annotations

import argparse
import codecs
import dataclasses
import pickle
import re
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import torch

from ._io import check_input_file, refuse_stdin
from .artifacts import identify
from .errors import TvexportError, first_line

CheckpointFormat = Literal["lightning", "pth.tar", "container", "state_dict", "baked"]
# Top-level keys training scripts keep the network's state dict under: Lightning's ``state_dict``,
# the reference segmentation trainer's ``model_state_dict``, ``model`` (torchvision's training
# references, beside ``optimizer``, ``lr_scheduler``, ``epoch``, ``args``): the "container" format
_CONTAINER_KEYS = ("state_dict", "model_state_dict", "model")
BAKED_FORMAT = "tvexport.baked"


def _stand_in(module: str, name: str, *, as_dict: bool = False) -> type:
    """A class that unpickles in place of ``module.name`` without importing it.

    Plain stand-ins only ever serve as dict keys (Lightning keys ``callbacks`` by class).
    ``as_dict`` stand-ins are for dict subclasses (AttributeDict): creating one yields a plain
    ``dict``, the only mapping type the weights-only unpickler lets fill with items.
    """
    attrs: dict[str, Any] = {"__module__": module, "__doc__": f"Stand-in for {module}.{name}; holds no code."}
    if as_dict:
        attrs["__new__"] = staticmethod(lambda cls, *args, **kwargs: {})
    cls = type(name, (), attrs)
    cls.__qualname__ = name
    return cls


def _safe_globals() -> list[Any]:
    names: list[Any] = [
        _stand_in("pytorch_lightning.callbacks.model_checkpoint", "ModelCheckpoint"),
        _stand_in("pytorch_lightning.callbacks.early_stopping", "EarlyStopping"),
        _stand_in("pytorch_lightning.callbacks.lr_monitor", "LearningRateMonitor"),
        _stand_in("lightning.pytorch.callbacks.model_checkpoint", "ModelCheckpoint"),
        _stand_in("pytorch_lightning.utilities.parsing", "AttributeDict", as_dict=True),
        _stand_in("lightning.fabric.utilities.data", "AttributeDict", as_dict=True),
        argparse.Namespace,
    ]
    try:
        import numpy as np

        scalar = np._core.multiarray.scalar if hasattr(np, "_core") else np.core.multiarray.scalar  # type: ignore[attr-defined]
        names += [(scalar, "numpy.core.multiarray.scalar"), (scalar, "numpy._core.multiarray.scalar"), np.dtype]
        names += [type(np.dtype(t)) for t in ("float64", "float32", "float16", "int64", "int32", "bool")]
    except ImportError:  # numpy is optional for torch
        pass
    return names


@dataclasses.dataclass
class Checkpoint:
    """A checkpoint read from disk: its deployable state dict and what was around it."""

    path: Path
    format: CheckpointFormat
    state_dict: dict[str, torch.Tensor]
    _: dataclasses.KW_ONLY
    hparams: dict[str, Any] = dataclasses.field(default_factory=dict)
    dropped: dict[str, tuple[int, ...]] = dataclasses.field(default_factory=dict)
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)
    payload: dict[str, Any] | None = None  # the whole file, for baked files

    def __repr__(self) -> str:
        # The dataclass repr would print every tensor (720 kB for the 3.7 MB demo checkpoint) where a
        # REPL or notebook shows the object: count them instead, and name the keys of a large dict
        # (a baked file's meta holds its whole verification report).
        def brief(d: dict[str, Any] | None) -> str:
            if d is None:
                return "None"
            text = repr(d)
            return text if len(text) <= 300 else f"<{len(d)} entries: {', '.join(map(str, list(d)[:8]))}{', ...' if len(d) > 8 else ''}>"

        tensors = [t for t in self.state_dict.values() if isinstance(t, torch.Tensor)]
        others = len(self.state_dict) - len(tensors)  # none from read_checkpoint; a Checkpoint made by hand may hold any
        counts = f"{len(tensors)} tensor{'s' * (len(tensors) != 1)}, {sum(t.numel() for t in tensors):,} values"
        if others:
            counts += f", {others} other entr{'ies' if others != 1 else 'y'}"
        payload = "None" if self.payload is None else f"<{len(self.payload)} entries>"
        return (f"Checkpoint(path={self.path!r}, format={self.format!r}, state_dict=<{counts}>, "
                f"hparams={brief(self.hparams)}, dropped={brief(self.dropped)}, meta={brief(self.meta)}, payload={payload})")

    @property
    def nonfinite(self) -> list[str]:
        """Names of floating tensors holding NaN or Inf."""
        return [k for k, v in self.state_dict.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]

    @property
    def num_bytes(self) -> int:
        """The file's size in bytes."""
        return self.path.stat().st_size


def check_checkpoint_file(path: Path) -> None:
    """Fail with one line when ``path`` is not a readable, non-empty file to read a checkpoint from
    (missing, a directory, ``-``, ...)."""
    refuse_stdin(path, what="checkpoint")
    check_input_file(
        path, what="a checkpoint file", dir_hint="give the checkpoint file inside it", empty_hint="the copy or download did not finish; fetch it again"
    )


_MAGIC = {
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"%PDF": "a PDF document",
    b"\x93NUMPY": "a NumPy .npy array",
    b"\x1f\x8b": "a gzip archive",
    b"\x89HDF": "an HDF5 file (Keras?)",
}


def _is_safetensors(head: bytes, size: int) -> bool:
    """A safetensors file: an 8-byte little-endian header length, then that many bytes of JSON."""
    n = int.from_bytes(head[:8], "little") if len(head) >= 9 else 0
    return 2 <= n <= size - 8 and head[8:9] == b"{"


def _is_torchscript(names: list[str]) -> bool:
    """Whether zip member ``names`` hold TorchScript's ``code/`` or ``constants.pkl`` (torch.jit.save)."""
    return any(name.partition("/")[2] == "constants.pkl" or name.partition("/")[2].startswith("code/") for name in names)


def is_torchscript_file(path: Path) -> bool:
    """Whether ``path`` is a TorchScript model (torch.jit.save), read from its zip directory only
    (False: not a zip archive, or unreadable)."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError):
        return False
    return _is_torchscript(names)


_NEEDS = "tvexport reads training checkpoints (Lightning .ckpt, .pth.tar) and state dicts saved with torch.save(model.state_dict(), path)"


def _other_format(path: Path, zf: zipfile.ZipFile | None) -> TvexportError | None:
    """The error for a valid file of a format tvexport does not read (TorchScript, safetensors),
    recognised from its header or its zip directory ``zf`` (None: not a zip): nothing in it is loaded."""
    with path.open("rb") as f:
        head = f.read(16)
    if _is_safetensors(head, path.stat().st_size):
        return TvexportError(
            f"{path} is a safetensors file, not a PyTorch checkpoint; {_NEEDS}",
            hint=f"give the training checkpoint, or convert this file: torch.save(safetensors.torch.load_file('{path}'), 'model.pt')",
        )
    if zf is not None and _is_torchscript(zf.namelist()):
        return TvexportError(
            f"{path} is a TorchScript model (torch.jit.save), not a checkpoint; {_NEEDS}",
            hint=f"give the training checkpoint, or, if you trust this file (loading it runs its code): torch.save(torch.jit.load('{path}').state_dict(), 'model.pt')",
        )
    return None


def _check_torch_zip(path: Path, zf: zipfile.ZipFile) -> None:
    """Refuse an intact zip archive (its CRCs checked) that torch.save did not write: torch's holds
    ``<prefix>/data.pkl``; without this, torch calls it damaged or asks for a bug report."""
    names = zf.namelist()
    if not any(name.rpartition("/")[2] == "data.pkl" for name in names):
        raise TvexportError(f"{path} is a zip archive but not a PyTorch checkpoint ({_zip_contents(names)}); {_NEEDS}", hint="give the file torch.save wrote")


def _zip_contents(names: list[str]) -> str:
    """What a zip archive that is no checkpoint holds, in a few words (``it looks like a NumPy .npz archive``)."""
    files = [name for name in names if not name.endswith("/")]
    if files and all(name.endswith(".npy") for name in files):
        return "it looks like a NumPy .npz archive"
    if not files:
        return "it holds no files"
    shown = ", ".join(files[:3])
    return f"it holds {shown}" + (f" and {len(files) - 3} more" if len(files) > 3 else "")


def _clip(text: str, limit: int = 120) -> str:
    """The first line of ``text``, cut at a word boundary to at most ``limit`` characters."""
    line = first_line(text)
    if len(line) <= limit:
        return line
    return line[:limit].rsplit(" ", 1)[0] + " ..."


def describe_file(path: Path) -> str | None:
    """What a file that is not what was expected looks like (``a text file``, ``a PNG image``), if known."""
    with path.open("rb") as f:
        head = f.read(64)
    for magic, what in _MAGIC.items():
        if head.startswith(magic):
            return what
    if _is_safetensors(head, path.stat().st_size):
        return "a safetensors file"
    if zipfile.is_zipfile(path) and is_torchscript_file(path):
        return "a TorchScript model"
    try:  # text first: a JSON file that mentions "onnx", or is named .onnx, is no protobuf
        text = codecs.getincrementaldecoder("utf-8")().decode(head)  # a multi-byte character cut at byte 64 is still text
    except UnicodeDecodeError:
        text = None
    if text is not None and text and all(c.isprintable() or c in "\t\r\n" for c in text) and not zipfile.is_zipfile(path):
        return "a JSON file" if text.lstrip()[:1] in ("{", "[") else "a text file"
    if b"onnx" in head.lower() or head[:1] == b"\x08":  # a ModelProto starts with field 1, ir_version: byte 0x08
        return "an ONNX model or other protobuf file"
    return None


_CORRUPT_HINT = "the copy or download did not finish; fetch it again"


def _open_zip(path: Path) -> zipfile.ZipFile | None:
    """``path``'s zip directory, read once for every check before torch loads it (None: not a
    zip archive, e.g. a legacy pickle); a directory that cannot be read is refused as corrupt."""
    if not zipfile.is_zipfile(path):  # the end record only
        return None
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as err:
        raise TvexportError(f"{path} is truncated or corrupt ({err})", hint=_CORRUPT_HINT) from None


def _check_zip_integrity(path: Path, zf: zipfile.ZipFile) -> None:
    """torch's zip reader does not verify CRCs: a flipped byte would load as a silently different
    weight or hyper-parameter. Check every record's CRC first (about 1 GB/s)."""
    try:
        bad = zf.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as err:
        raise TvexportError(f"{path} is truncated or corrupt ({err})", hint=_CORRUPT_HINT) from None
    if bad is not None:
        raise TvexportError(f"{path} is corrupt (checksum mismatch in {bad})", hint="the file was damaged in transfer or on disk; fetch it again")


@dataclasses.dataclass(frozen=True)
class _PickleScan:
    """What a raw (non-zip) pickle holds, read opcode by opcode (nothing executes)."""

    callables: list[str]  # the callables it names beyond torch's and the containers'
    plain: bool  # one complete pickle and nothing else (``pickle.dump``)


def _scan_pickle(path: Path, *, max_ops: int = 10_000_000) -> _PickleScan:
    """One walk over a raw pickle's opcodes for both questions its refusal asks.

    torch's safe unpickler stops at the first opcode it does not support (e.g. protocol 4's
    FRAME) before it sees a malicious global; this finds the global anyway, to say so. A plain
    pickle (``pickle.dump``) ends at its STOP with the file: torch.save's files are zip archives,
    or (legacy) several pickles followed by raw tensor data.
    """
    import pickletools

    if zipfile.is_zipfile(path):
        return _PickleScan([], plain=False)
    found: list[str] = []
    strings: list[str] = []  # the last two string arguments: STACK_GLOBAL's module and name
    plain = False
    try:
        with open(path, "rb") as f:
            for i, (op, arg, _) in enumerate(pickletools.genops(f)):
                if i >= max_ops:
                    break
                if op.name in ("GLOBAL", "INST") and isinstance(arg, str):
                    found.append(arg.replace(" ", "."))
                elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                    found.append(f"{strings[-2]}.{strings[-1]}")
                elif isinstance(arg, str):
                    strings = [*strings[-1:], arg]
                if op.name == "STOP":
                    plain = f.tell() == path.stat().st_size
                    break
    except Exception:  # noqa: BLE001 - a damaged pickle: report what was found before the damage
        pass
    allowed = ("torch.", "collections.OrderedDict", "builtins.set", "_codecs.encode")
    return _PickleScan([name for name in found if not name.startswith(allowed)], plain=plain)


# A checkpoint file's suffixes, longest first where one ends another (".pth.tar" before ".tar").
CHECKPOINT_SUFFIXES = (".pth.tar", ".ckpt", ".pth", ".pt", ".tar")


def output_beside(source: Path, suffix: str, *, strip: tuple[str, ...] = CHECKPOINT_SUFFIXES) -> Path:
    """``source`` with the first of ``strip`` it ends in replaced by ``suffix`` (``model.pth.tar``,
    ".baked.pt" -> ``model.baked.pt``); a directory-like ``.`` or ``/`` (and ``""``, which is
    ``.``), with no name to take, fails with the input's one line."""
    source = Path(source)
    if not source.name:
        check_checkpoint_file(source)
    name = source.name
    for end in strip:
        if name.endswith(end):
            name = name[: -len(end)]
            break
    return source.with_name(name + suffix)


def _plain_pickle_error(path: Path) -> TvexportError:
    return TvexportError(
        f"{path} is a plain Python pickle (pickle.dump), not a file torch.save wrote; {_NEEDS}",
        hint=f"if you trust the file (unpickling it can run code), re-save it: torch.save(pickle.load(open({str(path)!r}, 'rb')), 'model.pt')",
    )


def _torch_load(path: Path) -> Any:
    check_checkpoint_file(path)
    artifact = identify(path)  # an exported model where a checkpoint belongs: say what it is
    if artifact is not None:
        raise artifact.not_a_checkpoint()
    zf = _open_zip(path)
    try:
        other = _other_format(path, zf)  # before torch reads it: torch calls a TorchScript archive "damaged" for weights_only
        if other is not None:
            raise other
        if zf is not None:
            _check_zip_integrity(path, zf)
            _check_torch_zip(path, zf)
    finally:
        if zf is not None:
            zf.close()
    try:
        with torch.serialization.safe_globals(_safe_globals()), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Detected pickle protocol 4": our errors say what matters
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        text = str(err)
        m = re.search(r"GLOBAL ([\w.]+)", text) or re.search(r"Unsupported global: ([\w. ]+)", text)
        # torch names the global it refused; where its unpickler stopped earlier, read the opcodes (once)
        named = m if "Weights only load failed" in text else None
        scan = _PickleScan([named.group(1).split()[-1]], plain=False) if named else _scan_pickle(path)
        if scan.callables:
            raise TvexportError(
                f"refused to load {path}: it would execute pickled code ({scan.callables[0]}); "
                "tvexport loads tensors only and never runs code from a checkpoint",
                hint="if you trust the file, re-save just its state_dict with torch.save",
            ) from None
        if scan.plain:
            raise _plain_pickle_error(path) from None
        what = describe_file(path)
        if what:
            raise TvexportError(f"{path} is not a PyTorch checkpoint (it looks like {what})", hint="give a .ckpt, .pth(.tar) or .pt file") from None
        detail = re.search(r"WeightsUnpickler error:\s*(.+)", text)
        reason = _clip(detail.group(1) if detail else text)
        raise TvexportError(f"{path} is not a readable PyTorch checkpoint (unpickling failed: {reason})", hint="the file may be corrupt; fetch it again") from None
    except (EOFError, zipfile.BadZipFile) as err:
        raise TvexportError(f"{path} is truncated or corrupt ({type(err).__name__})", hint="the copy or download did not finish; fetch it again") from None
    except RuntimeError as err:
        text = str(err)
        if "zip" in text.lower() or "archive" in text.lower() or "PytorchStreamReader" in text:
            raise TvexportError(f"{path} is truncated or corrupt (its zip archive is damaged)", hint="the copy or download did not finish; fetch it again") from None
        if _scan_pickle(path).plain:  # torch's legacy reader: "Invalid magic number; corrupt file?"
            raise _plain_pickle_error(path) from None
        raise TvexportError(f"{path} could not be read as a PyTorch checkpoint ({_clip(text)})", hint="the file may be corrupt; fetch it again") from None
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError, MemoryError, UnicodeDecodeError, OSError) as err:
        what = describe_file(path)
        if what:
            raise TvexportError(f"{path} is not a PyTorch checkpoint (it looks like {what})", hint="give a .ckpt, .pth(.tar) or .pt file") from None
        first = _clip(str(err))
        raise TvexportError(f"{path} is truncated or corrupt ({type(err).__name__}: {first})", hint="fetch the file again") from None


# Prefixes a wrapper puts before every key of the network it wraps: DataParallel / DDP / SWA's
# AveragedModel (``module.``), torch.compile (``_orig_mod.``); wrappers nest (``module.module.``).
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
# Entries a wrapper adds beside the wrapped network's keys: torch.optim.swa_utils.AveragedModel's count
_WRAPPER_BOOKKEEPING = ("n_averaged",)
# Training-only modules of the reference LightningModule beside its network (the AM-Softmax head);
# no zoo network has a top-level ``head``
_TRAINING_ONLY = ("head.",)


def _model_keys(
    path: Path, sd: Mapping[str, torch.Tensor], *, lightning: bool = False
) -> tuple[dict[str, torch.Tensor], dict[str, tuple[int, ...]]]:
    """The network's own entries of a state dict saved through wrappers, and the dropped rest (key -> shape).

    The one unwrapping of every format (``.ckpt``, ``.pth.tar``, plain state dict), applied until
    nothing changes: a wrapper prefix (``_WRAPPER_PREFIXES``) is stripped when it prefixes every key
    but a wrapper's bookkeeping (SWA's ``n_averaged``, dropped); of a LightningModule's keys only
    ``model.*`` are kept and stripped; the training head ``head.*`` beside the network is dropped.
    ``model.*`` beside other keys than the head is a LightningModule's only where the file is a
    Lightning checkpoint (``lightning``): elsewhere, which part is the network is asked for.
    """
    out = dict(sd)
    dropped: dict[str, tuple[int, ...]] = {}

    def keep(inside: str | None, drop: list[str]) -> dict[str, torch.Tensor]:
        dropped.update({k: tuple(out[k].shape) for k in drop})
        kept = {k: v for k, v in out.items() if k not in drop}
        return {k[len(inside):]: v for k, v in kept.items()} if inside else kept

    while True:
        wrapper = next((p for p in _WRAPPER_PREFIXES if any(k.startswith(p) for k in out)
                        and all(k.startswith(p) or k in _WRAPPER_BOOKKEEPING for k in out)), None)
        if wrapper is not None:
            out = keep(wrapper, [k for k in out if not k.startswith(wrapper)])
        elif any(k.startswith("model.") for k in out):
            others = [k for k in out if not k.startswith("model.")]
            if not lightning and not all(k.startswith(_TRAINING_ONLY) for k in others):
                raise _mixed_model_keys(path, [k for k in out if k.startswith("model.")], others)
            out = keep("model.", others)
        elif (head := [k for k in out if k.startswith(_TRAINING_ONLY)]) and len(head) < len(out):
            out = keep(None, head)
        else:
            return out, dropped


def _listed(keys: list[str], limit: int = 3) -> str:
    return ", ".join(keys[:limit]) + ", ..." * (len(keys) > limit)


def _mixed_model_keys(path: Path, model: list[str], others: list[str]) -> TvexportError:
    """The error for a state dict (not a Lightning .ckpt's) holding ``model.*`` keys beside other
    network-like keys: a LightningModule's network, or a stray entry beside a plain network's."""
    n, m = len(model), len(others)
    return TvexportError(
        f"{path}: {n} key{'s' * (n > 1)} start{'s' * (n == 1)} with model. ({_listed(model)}) beside {m} that do{'es' * (m == 1)} not "
        f"({_listed(others)}): tvexport cannot tell which is the network",
        hint="a LightningModule's network is the model.* keys: save those without the model. prefix; "
        "if the others are the network, delete the model.* keys; then torch.save the state dict again",
    )


def _tensor_dict(path: Path, sd: Any, where: str) -> dict[str, torch.Tensor]:
    if not isinstance(sd, Mapping) or not sd:
        raise TvexportError(f"{path}: {where} is not a non-empty state dict", hint="is this a model checkpoint?")
    bad = [k for k, v in sd.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise TvexportError(f"{path}: {where} holds non-tensor entries ({', '.join(map(str, bad[:3]))})", hint="is this a model checkpoint?")
    _refuse_unusual(path, sd)
    return dict(sd)


def _unusual(t: torch.Tensor) -> str | None:
    """What makes ``t`` no plain weight tensor (sparse, quantized, nested, complex), or None."""
    if t.is_nested:
        return "a nested tensor"
    if t.layout != torch.strided:
        return f"a sparse tensor ({str(t.layout).removeprefix('torch.')})"
    if t.is_quantized:
        return f"a quantized tensor ({str(t.dtype).removeprefix('torch.')})"
    if t.is_complex():
        return f"a complex tensor ({str(t.dtype).removeprefix('torch.')})"
    return None


def _refuse_unusual(path: Path, sd: Mapping[str, torch.Tensor]) -> None:
    """One line for a state dict holding tensors no network of the zoo has: loading one into a
    model raised torch's errors (or, for complex ones, silently dropped the imaginary part)."""
    for key, t in sd.items():
        what = _unusual(t)
        if what is not None:
            raise TvexportError(
                f"{path}: {key} is {what}; tvexport reads dense, real-valued weights",
                hint="re-save the state dict with plain tensors (.to_dense(), .dequantize()); a TVConv network has no complex weights",
            )


def _hparams(value: Any) -> dict[str, Any]:
    """Lightning's ``hyper_parameters`` as a dict: a mapping (AttributeDict) or a Namespace.
    Anything else (a string, a list) is ignored: hyper-parameters are hints only, like a
    ``model_name`` that is not a string."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, argparse.Namespace):
        return dict(vars(value))
    return {}


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Load ``path`` safely and normalise it to a deployable state dict.

    Formats: PyTorch Lightning ``.ckpt`` (``state_dict``), ``.pth.tar`` with ``model_state_dict``,
    a dict holding it under ``model`` ("container"), a plain state dict, and tvexport's baked
    files; a file holding several of those state dicts is refused. The first four are unwrapped alike
    (``_model_keys``): a LightningModule's ``model.``, DataParallel's / SWA's ``module.`` and
    torch.compile's ``_orig_mod.`` prefixes are removed, however nested; training-only keys (the
    AM-Softmax ``head.weight``, SWA's ``n_averaged``) are dropped and listed in ``dropped``.
    """
    path = Path(path)
    obj = _torch_load(path)
    if not isinstance(obj, Mapping):
        raise TvexportError(f"{path} holds a {type(obj).__name__}, not a checkpoint dict", hint="save a state_dict (a dict of tensors)")

    if obj.get("format") == BAKED_FORMAT:
        sd = _tensor_dict(path, obj.get("state_dict"), "baked state_dict")
        bake = obj.get("bake", {})
        if not isinstance(bake, Mapping):
            raise damaged_metadata(path, TvexportError(f"its bake record is of type {type(bake).__name__}, not a dict"))
        return Checkpoint(path, "baked", sd, hparams={}, meta=dict(bake), payload=dict(obj))

    held = [key for key in _CONTAINER_KEYS if isinstance(obj.get(key), Mapping) and any(isinstance(v, torch.Tensor) for v in obj[key].values())]
    if len(held) > 1:
        raise TvexportError(
            f"{path}: several state dicts ({', '.join(held)}); tvexport cannot tell which is the network",
            hint=f"save the network's alone, e.g. torch.save(torch.load({str(path)!r}, weights_only=True)[{held[0]!r}], 'model.pt')",
        )
    container = held[0] if held else next((key for key in _CONTAINER_KEYS if isinstance(obj.get(key), Mapping)), None)
    if container is None and "model_state_dict" in obj:
        container = "model_state_dict"  # named as not a state dict below

    if container == "state_dict":
        raw = _tensor_dict(path, obj["state_dict"], "state_dict")
        hparams = _hparams(obj.get("hyper_parameters"))
        sd, dropped = _model_keys(path, raw, lightning="pytorch-lightning_version" in obj)
        meta = {k: obj[k] for k in ("epoch", "global_step", "pytorch-lightning_version") if k in obj}
        return Checkpoint(path, "lightning", sd, hparams=hparams, dropped=dropped, meta=meta)

    if container in ("model_state_dict", "model"):
        sd, dropped = _model_keys(path, _tensor_dict(path, obj[container], container))
        meta = {k: obj[k] for k in ("epoch", "iteration", "arch", "best_mean_dice") if k in obj and not isinstance(obj[k], torch.Tensor)}
        return Checkpoint(path, "pth.tar" if container == "model_state_dict" else "container", sd, dropped=dropped, meta=meta)

    if all(isinstance(v, torch.Tensor) for v in obj.values()):
        sd, dropped = _model_keys(path, _tensor_dict(path, obj, "file"))  # as inside a .ckpt: saved from a LightningModule, SWA, DataParallel
        return Checkpoint(path, "state_dict", sd, dropped=dropped)

    keys = ", ".join(map(str, list(obj)[:5]))
    raise TvexportError(f"{path}: no model state dict found (top-level keys: {keys})", hint="expected a Lightning .ckpt, a .pth.tar with model_state_dict, a dict with the state dict under model, or a state dict")


NONFINITE_HINT = "the checkpoint is damaged or diverged; fix or retrain it (tvexport bake --allow-nonfinite bakes it anyway)"


def refuse_nonfinite(ckpt: Checkpoint, *, hint: str = NONFINITE_HINT) -> None:
    """One line naming the file and the first tensors that hold NaN/Inf."""
    n = len(ckpt.nonfinite)
    if n:
        raise TvexportError(
            f"{ckpt.path}: {n} weight tensor{'s' * (n > 1)} hold{'s' * (n == 1)} NaN/Inf ({', '.join(ckpt.nonfinite[:3])}{', ...' * (n > 3)})",
            hint=hint,
        )


def damaged_metadata(path: Path, err: BaseException) -> TvexportError:
    """The one error for a baked file whose description cannot be used."""
    detail = err.message if isinstance(err, TvexportError) else f"{type(err).__name__}: {err}"
    return TvexportError(f"{path}: baked file metadata is damaged ({detail})", hint="re-bake it from the original checkpoint")
