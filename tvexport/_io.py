"""Checks on input and output paths; atomic output files (written beside the target, renamed into place on success)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import TvexportError


def refuse_stdout(path: str | Path, *, what: str = "a binary file") -> None:
    """Refuse ``-`` (stdout by convention) where the output is a file or directory: without this
    check a binary artefact would land in a file named ``-``."""
    if str(path) == "-":
        raise TvexportError(f"-o -: the output is {what}, which cannot go to stdout", hint="give a path instead of -")


def refuse_empty(path: str | Path, *, what: str, hint: str) -> None:
    """Refuse an empty name (``-o "$OUT"`` with OUT unset), which Path would read as ``.``;
    ``what``: what the name is for (e.g. "output"), ``hint``: how to fix it."""
    if isinstance(path, str) and not path:
        raise TvexportError(f"{what} '' is an empty name (an unset variable?)", hint=hint)


def output_file(path: str | Path) -> Path:
    """``path`` as a Path; an empty name is refused (Path would read it as ``.``, the current
    directory), and so is a name ending with a slash (``-o dir.onnx/``), which names a directory:
    Path would drop the slash and write a file of that name."""
    refuse_empty(path, what="output", hint="give a file name with -o, or leave -o out for the default")
    if isinstance(path, str) and path.endswith(("/", os.sep)) and path.rstrip("/" + os.sep):
        bare = path.rstrip("/" + os.sep)
        hint = "give a file inside that directory" if Path(bare).is_dir() else f"give a file name: -o {bare}, or a file inside that directory"
        raise TvexportError(f"output {path} ends with a slash, which names a directory, but the output is a file", hint=hint)
    return Path(path)


def refuse_stdin(path: str | Path | None, *, what: str) -> None:
    """Refuse ``-`` (stdin by convention) where an input file is read (``what``: which one): without
    this check a file named ``-`` would be read, or reported missing. None (no such input) passes."""
    if path is not None and str(path) == "-":
        raise TvexportError(f"{what} -: reading from stdin is not supported", hint="give a path instead of -")


def check_input_file(path: str | Path, *, what: str, dir_hint: str, empty_hint: str, missing_hint: str = "check the path") -> Path:
    """Fail with one line when the input ``path`` is missing, a directory (``what``: what it should
    be instead, e.g. "a checkpoint file"), not a regular file (a pipe, a device), unreadable or
    empty; each ``*_hint`` says how to fix that case."""
    path = Path(path)
    if not path.exists():
        raise TvexportError(f"{path}: no such file", hint=missing_hint)
    if path.is_dir():
        raise TvexportError(f"{path} is a directory, not {what}", hint=dir_hint)
    if not path.is_file():  # its size says nothing: a pipe or a device is 0 bytes however much it holds
        raise TvexportError(f"{path} is not a regular file (a pipe, socket or device?)", hint="copy what it holds into a file and give that path")
    if not os.access(path, os.R_OK):
        raise TvexportError(f"{path} is not readable (permission denied)", hint="make it readable (chmod u+r) or copy it somewhere you can read it")
    if path.stat().st_size == 0:
        raise TvexportError(f"{path} is empty (0 bytes)", hint=empty_hint)
    return path


def check_exported_file(path: str | Path, *, what: str, dir_hint: str, missing_hint: str = "check the path") -> Path:
    """``check_input_file`` for a file tvexport exported (``what``: e.g. "an ONNX model"): an empty
    one is an export or copy that did not finish."""
    return check_input_file(path, what=what, dir_hint=dir_hint, empty_hint="the export or copy did not finish; export it again", missing_hint=missing_hint)


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether ``a`` and ``b`` are one existing file, however spelt (a symlink, ``..``, a hard link)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them is missing (or cannot be looked at)
        return False


def refuse_input_as_output(path: str | Path, *, source: Path | None) -> Path:
    """Refuse ``-`` and an output ``path`` that is the ``source`` it is made from (however spelt): the
    gravest mistakes, for a command that checks the output's name before whether it exists."""
    refuse_stdout(path)
    path = Path(path)
    if source is not None and same_file(path, source):
        raise TvexportError(f"output {path} is the input file", hint="give another output path with -o")
    return path


def check_output_path(path: Path, *, force: bool, source: Path | None = None, probe: bool = True) -> Path:
    """Fail early (before any work) when ``path`` cannot be written (or is the ``source`` it is made from, or ``-``);
    ``probe``: as ``check_output_dir``'s."""
    path = refuse_input_as_output(path, source=source)
    if path.is_dir():
        raise TvexportError(f"output {path} is a directory", hint="give a file name")
    if os.path.lexists(path) and not force:  # a dangling symlink too: the rename would replace it
        refuse_dangling_symlink(path, what="output ")  # not "already exists": there is nothing at its target
        raise TvexportError(f"output {path} already exists", hint="pass --force to overwrite it")
    check_output_dir(path.parent, probe=probe)
    return path


def refuse_dangling_symlink(path: Path, *, what: str = "", hint: str = "remove the link, or pass --force to replace it") -> None:
    """Refuse an output ``path`` that is a symlink to nothing (``what``: the line's prefix, e.g.
    "output "): exists() says no, but it is there, and the rename (--force) replaces the link
    (``hint``: how to fix it where nothing replaces it, e.g. an output directory)."""
    if path.is_symlink() and not path.exists():
        raise TvexportError(f"{what}{path} is a symlink to {os.readlink(path)}, which does not exist", hint=hint)


def check_output_dir(path: str | Path, *, file_hint: str = "choose another output path", probe: bool = True) -> Path:
    """Fail early when the directory ``path`` that outputs go into is a file (``file_hint``: how to
    fix that), missing (a symlink to nothing: said so) or not writable. Writable means a file can be made there, as the atomic
    writer will: with ``probe`` (the early checks) a temporary file is created and removed
    (``os.access`` alone passes for root where nothing can be created, e.g. /proc or /sys); a probe
    that cannot be removed (an append-only directory) is left behind. ``atomic_output`` passes
    ``probe=False``: its own temporary file is the probe."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise TvexportError(f"output directory {path} is a file, not a directory", hint=file_hint)
    if not path.is_dir():
        # "create it first" would fail: the link is there, its target is not
        refuse_dangling_symlink(path, what="output directory ", hint="create the directory it names, or give another one")
        raise TvexportError(f"output directory {path} does not exist", hint="create it first")
    if not os.access(path, os.W_OK | os.X_OK):
        raise TvexportError(f"output directory {path} is not writable", hint="choose another output path")
    if probe:
        try:
            fd, name = tempfile.mkstemp(prefix=".tvexport-probe-", suffix=".tmp", dir=path)
        except OSError as err:
            raise TvexportError(f"cannot write in {path} ({err.strerror or err})", hint="choose another output path") from None
        try:
            os.close(fd)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(name)
    return path


@contextlib.contextmanager
def atomic_output(path: Path, *, force: bool) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s directory; rename it to ``path`` if the block succeeds.

    If the block raises (or the process is interrupted), the temporary file is removed and any
    previous ``path`` stays untouched.
    """
    path = check_output_path(Path(path), force=force, probe=False)  # the mkstemp below is the probe
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise TvexportError(f"cannot write in {path.parent} ({err.strerror})", hint="choose another output path") from None
    tmp = Path(tmp_name)
    try:
        os.close(fd)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; outputs get ordinary file permissions
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise TvexportError(f"could not write {path} ({err.strerror or err})", hint="check free disk space and permissions") from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_text_atomic(path: Path, text: str, *, force: bool = True) -> None:
    """Write a small text file (report, sidecar) atomically."""
    with atomic_output(path, force=force) as tmp:
        tmp.write_text(text)
