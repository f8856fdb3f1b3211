"""The one exception type for user mistakes, and exit codes the CLI maps it to."""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Iterator

EXIT_OK = 0
EXIT_MISMATCH = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3


class TvexportError(Exception):
    """A problem with the user's input or environment, reported as one line.

    ``str(err)`` is the whole message: what went wrong, which file, how to fix it. Options are
    named as the command line spells them (``--batch``), for the Python API's callers too: the CLI
    is a thin layer over the API, a check serves both and cannot tell who called, and each keyword
    is its option's name. A keyword named in a form no command takes stays a keyword
    (``input_size=(112, 112)``: the CLI parses ``--input-size HxW`` itself; ``bake_checkpoint``'s
    ``seed``, which ``tvexport bake`` does not have).
    """

    exit_code: int = EXIT_BAD_INPUT

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if not hint else f"{message}; {hint}")


class MismatchError(TvexportError):
    """A numerical comparison (bake verification, export validation) failed its tolerance."""

    exit_code = EXIT_MISMATCH


class MissingDependencyError(TvexportError):
    """An optional backend (onnxruntime, triton, tensorrt, CUDA) is not available."""


@contextlib.contextmanager
def about_file(path: object | None) -> Iterator[None]:
    """Prefix ``path`` (the file the work inside reads; None: nothing) to a ``TvexportError``
    raised inside, keeping its type, hint and traceback: the one line then says which file, and
    ``--verbose`` still shows where it was raised."""
    try:
        yield
    except TvexportError as err:
        if path is None:
            raise
        raise type(err)(f"{path}: {err.message}", hint=err.hint).with_traceback(err.__traceback__) from None


def first_line(text: str | BaseException, *, limit: int | None = None, default: str | None = None) -> str:
    """The first non-blank line of ``text`` (an exception: its message), stripped and cut to ``limit``
    characters: what a one-line error quotes of another library's (often multi-line) message. Without
    such a line, ``default`` (None: an exception's type name, ``""`` for a text)."""
    line = next((ln.strip() for ln in str(text).splitlines() if ln.strip()), "")
    if not line:
        line = default if default is not None else (type(text).__name__ if isinstance(text, BaseException) else "")
    return line[:limit]


def missing(package: str, *, what: str, extra: str | None = None) -> MissingDependencyError:
    """Build the standard "install X" error for an optional dependency."""
    how = f"pip install 'tvexport[{extra}]'" if extra else f"pip install {package}"
    return MissingDependencyError(f"{what} needs {package}, which is not installed", hint=f"install it with: {how}")


def is_out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` is an allocator refusing a request (host or CUDA memory), not a bug."""
    if isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError":  # torch.OutOfMemoryError (CUDA)
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text.lower())


@contextlib.contextmanager
def sized_by_user(what: str, *, hint: str) -> Iterator[None]:
    """Turn an allocation refused while ``what`` runs into the one-line user error (``hint``: what
    to make smaller): the size was the user's choice (``--batch``, ``--input-size``), not a bug."""
    try:
        yield
    except (RuntimeError, MemoryError) as err:
        if not is_out_of_memory(err):
            raise
        raise out_of_memory(err, what=what, hint=hint) from None


# Where memory_limit reads the process's cgroup and the machine's memory (tests point them at a fake tree).
_PROC_CGROUP = "/proc/self/cgroup"
_CGROUP_MOUNT = "/sys/fs/cgroup"
_MEMINFO = "/proc/meminfo"


def _read_bytes(path: str) -> int | None:
    """A cgroup limit file's number of bytes; None for "max" (no limit) or a file that is missing,
    unreadable or holds something else."""
    try:
        with open(path) as f:
            text = f.read().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def _cgroup_memory_limit(swap_total: int) -> int | None:
    """The most bytes the process's memory cgroup and its ancestors let it use, RAM and swap
    (``swap_total``: the machine's swap) together; None where no limit can be read. cgroup v2
    (``0::/path``: ``memory.max`` plus ``memory.swap.max``) and v1 (``N:memory:/path``:
    ``memory.limit_in_bytes``, ``memory.memsw.limit_in_bytes`` where swap is counted). Each level
    from the process's cgroup up to the mount's root counts: a parent's limit applies to its
    children, and in a container the mount's root is often the container's own cgroup."""
    try:
        with open(_PROC_CGROUP) as f:
            entries = [line.rstrip("\n").split(":", 2) for line in f]
    except (OSError, UnicodeDecodeError):
        return None
    limits: list[int] = []
    for entry in entries:
        if len(entry) != 3 or not entry[2].startswith("/"):
            continue
        _, controllers, path = entry
        if controllers == "":  # v2: one hierarchy, every controller
            base, ram_file, swap_file, both_file = _CGROUP_MOUNT, "memory.max", "memory.swap.max", None
        elif "memory" in controllers.split(","):
            base, ram_file, swap_file, both_file = os.path.join(_CGROUP_MOUNT, "memory"), "memory.limit_in_bytes", None, "memory.memsw.limit_in_bytes"
        else:
            continue
        parts = [p for p in path.split("/") if p]
        ram: list[int] = []
        swap = [swap_total]
        both: list[int] = []
        for depth in range(len(parts), -1, -1):  # the cgroup itself, then each ancestor up to the mount's root
            level = os.path.join(base, *parts[:depth])
            for name, found in ((ram_file, ram), (swap_file, swap), (both_file, both)):
                value = _read_bytes(os.path.join(level, name)) if name else None
                if value is not None:
                    found.append(value)
        if ram:
            limits.append(min([min(ram) + min(swap), *both]))
    return min(limits) if limits else None


def memory_limit() -> int | None:
    """The most bytes this process may allocate: the smallest of its address-space limit
    (``ulimit -v``), its memory cgroup's limit (a container's memory, swap included) and the
    machine's RAM plus swap; None where none can be read. Files that are missing or unreadable
    are skipped."""
    limits = []
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft != resource.RLIM_INFINITY:
            limits.append(soft)
    except (ImportError, OSError, ValueError):  # no resource module (Windows)
        pass
    swap = 0
    try:
        with open(_MEMINFO) as f:
            kb = {k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in f if ":" in line) if k in ("MemTotal", "SwapTotal")}
        swap = kb.get("SwapTotal", 0) * 1024
        if "MemTotal" in kb:
            limits.append(kb["MemTotal"] * 1024 + swap)
    except (OSError, ValueError, IndexError):
        try:
            limits.append(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (AttributeError, OSError, ValueError):
            pass
    cgroup = _cgroup_memory_limit(swap)
    if cgroup is not None:
        limits.append(cgroup)
    return min(limits) if limits else None


def refuse_oversized_input(shape: tuple[int, ...], *, itemsize: int, what: str, hint: str) -> None:
    """Refuse, before any work, a run whose input tensor of ``shape`` alone (``itemsize`` bytes an
    element) is more than the process may allocate: the same one line an allocation refused while
    ``what`` runs gives (``sized_by_user``). Only a sure refusal: a run whose input fits may still
    need more than memory holds, which the allocator then refuses."""
    limit = memory_limit()
    nbytes = math.prod(shape) * itemsize
    if limit is not None and nbytes > limit:
        raise TvexportError(f"not enough memory to {what} (an input of {nbytes / 1e9:.1f} GB was refused: "
                            f"this process can allocate at most {limit / 1e9:.1f} GB)", hint=hint)


def out_of_memory(err: BaseException, *, what: str, hint: str) -> TvexportError:
    """The one-line error for an allocation that failed: ``what`` was being done, ``hint`` what to make smaller."""
    text = str(err)
    asked = ""
    marker = "you tried to allocate "
    if marker in text:  # torch's CPU allocator: "... you tried to allocate 320000000000 bytes."
        count = text.split(marker, 1)[1].split(" ", 1)[0]
        if count.isdigit():
            asked = f" (one allocation of {int(count) / 1e9:.1f} GB was refused)"
    return TvexportError(f"not enough memory to {what}{asked}", hint=hint)


class CallbackFailures:
    """What callbacks that a runtime catches and swallows (TensorRT's Python plugins, onnxruntime's
    Python ops) raised, one line each, kept for the call that ran them: ``collecting()`` gives the
    list of the call (a build, a run) made inside its ``with`` block, keyed by the thread that makes
    it, so that calls running at the same time in several threads neither report nor clear each
    other's. A callback the runtime makes from a thread of its own, which runs no such call, is kept
    for every call then running: one call, as usual, gets it; of several, none can tell whose it is.
    Without a call running, ``record`` keeps nothing."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[int, list[str]] = {}  # thread id -> the lines of the call that thread runs

    @contextlib.contextmanager
    def collecting(self) -> Iterator[list[str]]:
        me = threading.get_ident()
        lines: list[str] = []
        with self._lock:
            if me in self._calls:
                raise RuntimeError("this thread is already collecting callback failures")
            self._calls[me] = lines
        try:
            yield lines
        finally:
            with self._lock:
                del self._calls[me]

    def record(self, line: str) -> None:
        with self._lock:
            own = self._calls.get(threading.get_ident())
            for lines in [own] if own is not None else list(self._calls.values()):
                lines.append(line)
