"""Building the C++ extension (``ext/``) against the installed openvino wheel, cached by source hash.

The wheel ships OpenVINO's headers and CMake config (``openvino/cmake``), so the extension builds
with the machine's own compiler: CMake (Ninja when present, else Make), Release, into a temporary
directory (removed on failure or Ctrl-C; one a killed build left is removed by the next build); the
library is then renamed into place, so a cache entry is either complete or absent.
The cache key hashes the sources, the openvino version, the compiler, the platform and the flags
CMake reads from the environment (CXXFLAGS, LDFLAGS, CMAKE_*): a new openvino wheel, an edited
source or other flags give a new build, anything else reuses the cached one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .._io import check_output_dir, refuse_dangling_symlink, refuse_empty, refuse_stdout, write_text_atomic
from ..errors import MissingDependencyError, TvexportError, missing

SOURCE_DIR = Path(__file__).resolve().parent / "ext"
LIBRARY = {"darwin": "libtvexport_openvino.dylib", "win32": "tvexport_openvino.dll"}.get(sys.platform, "libtvexport_openvino.so")
CACHE_ENV = "TVEXPORT_CACHE_DIR"

__all__ = [
    "ExtensionBuild", "build_extension", "build_key", "cache_dir", "compiler_command", "compiler_id", "extension_path", "find_compiler",
    "missing_build_tool", "openvino_cmake_dir",
]


@dataclasses.dataclass(frozen=True)
class ExtensionBuild:
    """A built (or cached) extension library."""

    path: Path
    key: str  # hash of sources, openvino version, compiler, platform
    cached: bool  # True: found up to date, nothing compiled
    seconds: float  # build time (0 when cached)
    info: dict[str, Any]  # openvino version, compiler, generator, ...

    def to_dict(self) -> dict[str, Any]:
        """The build as a JSON-serialisable dict, ``info``'s entries merged in."""
        return {"path": str(self.path), "key": self.key, "cached": self.cached, "seconds": self.seconds, **self.info}


def cache_dir() -> Path:
    """Where built extensions are kept: ``$TVEXPORT_CACHE_DIR`` or ``~/.cache/tvexport`` (XDG), ``/openvino``."""
    root = os.environ.get(CACHE_ENV) or os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "tvexport")
    return Path(root) / "openvino"


def openvino_cmake_dir() -> tuple[Path, str]:
    """The installed wheel's CMake config directory and its version (MissingDependencyError if absent)."""
    try:
        import openvino
    except ImportError:
        raise missing("openvino", what="the OpenVINO extension", extra="openvino") from None
    cmake = Path(openvino.__file__).resolve().parent / "cmake"
    if not (cmake / "OpenVINOConfig.cmake").is_file():
        raise MissingDependencyError(
            f"the installed openvino {openvino.__version__} has no CMake config (expected {cmake})",
            hint="install the PyPI wheel: pip install 'tvexport[openvino]'",
        )
    return cmake, str(openvino.__version__)


def _tool(name: str) -> str | None:
    """``name`` on PATH or beside the running interpreter (pip's cmake/ninja wheels put it there)."""
    found = shutil.which(name)
    if found:
        return found
    local = Path(sys.executable).parent / name
    return str(local) if local.is_file() and os.access(local, os.X_OK) else None


def compiler_command() -> list[str]:
    """The C++ compiler the extension build uses, with the arguments ``$CXX`` gives it: ``$CXX`` when
    set, read as CMake reads it (``CXX="g++ -m32"``: the compiler g++, and -m32 on every compile and
    link; refused when it names no compiler), else the first of c++, g++, clang++ on PATH;
    MissingDependencyError (one line, what to install) when there is none."""
    if cxx := os.environ.get("CXX"):
        if found := shutil.which(cxx):  # the whole value is the compiler (a path with spaces, too)
            return [found]
        try:
            words = shlex.split(cxx)
        except ValueError as err:  # an unclosed quote
            raise MissingDependencyError(f"CXX={cxx} cannot be split into a compiler and its arguments ({err})",
                                         hint="unset it or point it at a compiler") from None
        if words and (found := shutil.which(words[0])):
            return [found, *words[1:]]
        if len(words) > 1:
            raise MissingDependencyError(f"CXX={cxx!r}: its compiler {words[0]} was not found",
                                         hint="unset it or point it at a compiler (arguments may follow it, e.g. CXX='g++ -O2')")
        raise MissingDependencyError(f"CXX={cxx} not found", hint="unset it or point it at a compiler")
    for name in ["c++", "g++", "clang++"]:
        if found := shutil.which(name):
            return [found]
    raise MissingDependencyError(
        "building the OpenVINO extension needs a C++17 compiler (g++ >= 9 or clang++ >= 10), and none was found",
        hint="install one, e.g. apt-get install g++ (or set CXX)",
    )


def find_compiler() -> str:
    """The C++ compiler executable the extension build uses (``compiler_command()``'s first word:
    without the arguments ``$CXX`` may add)."""
    return compiler_command()[0]


def compiler_id(cxx: str) -> str:
    """The first line of ``cxx --version`` (``cxx`` itself where it says nothing): what cache keys hold."""
    try:
        out = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return cxx
    return (out.splitlines() or [cxx])[0].strip()


def _compiler_identity(command: list[str]) -> str:
    """What cache keys and sidecars record of the compiler: its ``--version`` line, then the
    arguments ``$CXX`` adds (none: the line alone, so plain builds keep their keys)."""
    return " ".join([compiler_id(command[0]), *(shlex.quote(arg) for arg in command[1:])])


def _sources() -> list[Path]:
    return sorted(p for p in SOURCE_DIR.iterdir() if p.is_file() and p.suffix in (".cpp", ".hpp", ".txt"))


def _build_environment() -> dict[str, str]:
    """The environment variables CMake reads at configure time that change the build: CXXFLAGS,
    LDFLAGS and every ``CMAKE_*`` one (less CMAKE_BUILD_PARALLEL_LEVEL, the job count); empty ones
    count as unset."""
    return {name: value for name, value in sorted(os.environ.items())
            if value and (name in ("CXXFLAGS", "LDFLAGS") or (name.startswith("CMAKE_") and name != "CMAKE_BUILD_PARALLEL_LEVEL"))}


def _key(openvino_version: str, compiler: str) -> str:
    h = hashlib.sha256()
    for path in _sources():
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    h.update(f"{openvino_version}|{compiler}|{sys.platform}|{platform.machine()}".encode())
    if env := _build_environment():  # absent: the keys of plain builds stay as they were
        h.update(b"\0" + json.dumps(env, sort_keys=True).encode())
    return h.hexdigest()[:16]


def _requirements() -> tuple[Path, str, str, list[str], str | None]:
    """(cmake dir, openvino version, cmake, compiler command, ninja); one-line errors for what is missing.
    ``missing_build_tool`` (the openvino-fused bench backend's ``available()``) asks this too, so the two agree."""
    cmake_dir, version = openvino_cmake_dir()
    cmake = _tool("cmake")
    if cmake is None:
        raise MissingDependencyError(
            "building the OpenVINO extension needs CMake >= 3.18, which was not found",
            hint="install it, e.g. apt-get install cmake (or pip install cmake)",
        )
    return cmake_dir, version, cmake, compiler_command(), _tool("ninja")


def missing_build_tool() -> str | None:
    """None when the extension can be built here (openvino's CMake config, CMake, a C++ compiler),
    else the one line that says what is missing and how to install it (what ``build_extension`` would raise)."""
    try:
        _requirements()
    except MissingDependencyError as err:
        return str(err)
    return None


def _unusable_cache(directory: Path, err: OSError) -> TvexportError:
    where = f" ({err.filename})" if err.filename and Path(err.filename) != directory else ""
    return TvexportError(f"cannot use {directory} as the OpenVINO extension cache: {err.strerror or err}{where}",
                         hint=f"set {CACHE_ENV} to a writable directory")


@contextlib.contextmanager
def _lock(directory: Path) -> Iterator[None]:
    """One build at a time per cache directory (other processes wait)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        handle = open(directory / ".lock", "w")
    except OSError as err:  # a file, /proc, read-only: one line, not a traceback
        raise _unusable_cache(directory, err) from None
    with handle:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory lock; builds still land atomically
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            _remove_stale_builds(directory)
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_stale_builds(root: Path) -> None:
    """Delete the ``.build-*`` directories of builds that were killed (SIGTERM, SIGKILL, a closed
    terminal: no exception ran their cleanup); called holding the lock, without which no build runs,
    so none of them is in use. Nothing reads them: this only frees their space."""
    for stale in root.glob(".build-*"):
        shutil.rmtree(stale, ignore_errors=True)


def _sidecar(lib: Path) -> Path:
    return lib.with_name(lib.name + ".json")


def _read_sidecar(lib: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(_sidecar(lib).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _run(cmd: list[str], *, log: list[str], cwd: Path) -> None:
    # In a process group of its own, ended whole if this process is interrupted (Ctrl-C, or
    # SIGTERM raised as it by the CLI): subprocess.run would kill cmake alone, leaving the
    # ninja and compiler processes it started running.
    posix = hasattr(os, "killpg")
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=posix)
    try:
        stdout, stderr = proc.communicate()
    except BaseException:
        with contextlib.suppress(OSError):
            if posix:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
        proc.wait()
        raise
    log += [f"$ {' '.join(cmd)}", stdout, stderr]
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (stderr + "\n" + stdout).splitlines() if ln.strip()]
        # a compiler diagnostic ("file:line: error: ...", "c++: error: ..."), else CMake's, else the last line:
        # a failed compiler check prints CMake's generic "CMake Error at ...cmake:63 (message):" first
        first = next((ln for ln in lines if re.search(r"\berror:", ln)), None) or next(
            (ln for ln in lines if "CMake Error" in ln), lines[-1] if lines else f"exit code {proc.returncode}")
        raise TvexportError(f"building the OpenVINO extension failed: {first[:300]}", hint="the full compiler output is in LOG")


def _compile(lib: Path, *, root: Path, key: str, jobs: int | None) -> ExtensionBuild:
    """Configure and build in a temporary directory; rename the library to ``lib``."""
    cmake_dir, version, cmake, cxx, ninja = _requirements()
    start = time.perf_counter()
    log: list[str] = []
    generator = ["-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={ninja}"] if ninja else []
    lib.parent.mkdir(parents=True, exist_ok=True)
    # removed on any exception, Ctrl-C included; an error while removing it (a compiler Ctrl-C has not
    # stopped yet still writing there) must not replace the build's own error: the next build sweeps it
    with tempfile.TemporaryDirectory(prefix=".build-", dir=root, ignore_cleanup_errors=True) as tmp:
        build = Path(tmp)
        try:
            _run([cmake, "-S", str(SOURCE_DIR), "-B", str(build), *generator, "-DCMAKE_BUILD_TYPE=Release",
                  f"-DCMAKE_CXX_COMPILER={';'.join(cxx)}", f"-DOpenVINO_DIR={cmake_dir}", f"-DTBB_DIR={cmake_dir}"], log=log, cwd=build)
            _run([cmake, "--build", str(build), "--parallel", str(jobs or os.cpu_count() or 2)], log=log, cwd=build)
        except TvexportError as err:
            log_path = root / "last-build.log"
            log_path.write_text("\n".join(log))
            raise TvexportError(err.message, hint=f"the full compiler output is in {log_path}") from None
        built = build / LIBRARY
        if not built.is_file():
            raise TvexportError(f"the OpenVINO extension build produced no {LIBRARY}", hint="this is a tvexport bug; please report it")
        _install(built, lib)
    info = {"openvino": version, "compiler": _compiler_identity(cxx), "generator": "Ninja" if ninja else "default", "platform": f"{sys.platform}-{platform.machine()}"}
    if env := _build_environment():
        info["environment"] = env
    seconds = time.perf_counter() - start
    write_text_atomic(_sidecar(lib), json.dumps({"key": key, "seconds": round(seconds, 2), **info}, indent=1) + "\n")
    return ExtensionBuild(lib, key, False, seconds, info)


def _install(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` atomically (a loaded library may be replaced, never half-written)."""
    staged = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    try:
        shutil.copy2(src, staged)
        os.replace(staged, dst)
    finally:
        staged.unlink(missing_ok=True)


def build_key(lib: str | Path) -> str | None:
    """The cache key (sources, openvino, compiler, platform) recorded beside a built library, None
    where nothing readable is recorded: two libraries with one key are the same build."""
    meta = _read_sidecar(Path(lib))
    key = meta.get("key") if meta is not None else None
    return key if isinstance(key, str) else None


def _up_to_date(lib: Path, key: str) -> ExtensionBuild | None:
    meta = _read_sidecar(lib) if lib.is_file() else None
    if meta is None or meta.get("key") != key:
        return None
    return ExtensionBuild(lib, key, True, 0.0, {k: v for k, v in meta.items() if k not in ("key", "seconds")})


def build_extension(*, output_dir: str | Path | None = None, force: bool = False, jobs: int | None = None) -> ExtensionBuild:
    """Build ``libtvexport_openvino`` (or find it up to date) and return where it is.

    It is built into the cache (``cache_dir()/<key>/``), where runners look for it. With
    ``output_dir`` it is then copied there too, with a ``.json`` sidecar (key, openvino,
    compiler); a library already there from other sources or another openvino is replaced only
    with ``force``, a directory of its name never; an empty ``output_dir`` string is refused
    (``"."`` names the current directory). Without ``output_dir``, ``force`` rebuilds an up-to-date cache entry.
    """
    if output_dir is not None:
        refuse_stdout(output_dir, what="a directory (for the library)")
        refuse_empty(output_dir, what="output directory", hint="give a directory for the library with -o (. for the current one)")
    _, version, _, cxx, _ = _requirements()
    key = _key(version, _compiler_identity(cxx))
    root = cache_dir()
    if output_dir is not None:
        out_lib = Path(output_dir) / LIBRARY
        if (done := _up_to_date(out_lib, key)) is not None and not force:
            return done  # nothing to write: a read-only directory holding it up to date is fine
        check_output_dir(out_lib.parent, file_hint="give a directory for the library with -o")
        if out_lib.is_dir() and not out_lib.is_symlink():  # --force too: _install's rename cannot replace a directory (a link to one, it can)
            raise TvexportError(f"{out_lib} is a directory, not a library file", hint="remove it, or give another directory with -o")
        if os.path.lexists(out_lib) and not force:  # lexists: a dangling symlink is there too, and _install's rename would replace it
            refuse_dangling_symlink(out_lib)  # its own line, not "built from other sources": it points nowhere
            raise TvexportError(f"{out_lib} exists and was built from other sources or for another openvino", hint="pass --force to replace it")
    rebuild = force and output_dir is None
    # an up-to-date entry is used without taking the lock: a read-only cache holding it is fine
    result = None if rebuild else _up_to_date(root / key / LIBRARY, key)
    if result is None:
        with _lock(root):
            cached = None if rebuild else _up_to_date(root / key / LIBRARY, key)  # built while we waited
            result = cached or _compile(root / key / LIBRARY, root=root, key=key, jobs=jobs)
    if output_dir is None:
        return result
    _install(result.path, out_lib)
    _install(_sidecar(result.path), _sidecar(out_lib))
    return dataclasses.replace(result, path=out_lib)


def extension_path() -> Path:
    """The extension library for this openvino and these sources, built into the cache if needed."""
    return build_extension().path
