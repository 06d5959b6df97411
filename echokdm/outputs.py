"""The one way echokdm writes results: into an output folder it owns, each file atomically (:func:`atomic_write`,
also for caches and checkpoints outside such a folder)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import os
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from echokdm.errors import OutputError

#: marks a folder as echokdm's; also its lock file (``flock``, held while a run writes there; names the holder)
MARKER = ".echokdm"
#: errors of a full, read-only or forbidden output location (reported as one OutputError line)
UNWRITABLE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM)
#: suffix of the temporary files of :func:`atomic_write` (only a killed process leaves one behind)
PART = ".part"
_UMASK = os.umask(0o022)
os.umask(_UMASK)


class OutputDir:
    """An output folder that echokdm creates and owns.

    A folder is accepted when it does not exist, is empty, or was made by echokdm (holds the
    ``.echokdm`` marker). A non-empty folder is refused unless ``overwrite`` is set, in which case
    only an echokdm folder is cleared. Files are written to a temporary name and renamed into place,
    so a killed run never leaves a half-written file. While the object lives (or until :meth:`release`)
    it holds an exclusive ``flock`` on the marker: a second run into the same folder is refused with the
    first one's pid and command line, and a killed holder's lock goes with its process (never stale).

    Args:
        path: the folder.
        overwrite: clear an existing echokdm folder first.
        resume: keep an existing echokdm folder's contents (for resumable commands).
        inputs: the command's input paths: an output folder that equals or contains one of them, or lies
            inside an input folder, is refused (clearing or writing it would change the input).
        lock: take the folder's lock (ranks of one batch other than rank 0 share rank 0's).

    Raises:
        OutputError: the path is empty, a file, a non-empty foreign folder, an input or holds one, cannot be
            written, or another run holds its lock.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        overwrite: bool = False,
        resume: bool = False,
        inputs: Iterable[str | os.PathLike | None] = (),
        lock: bool = True,
    ) -> None:
        self.path = Path(path)
        self._lock: int | None = None
        self.check(path, overwrite, resume, inputs)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            if lock:
                self._lock = hold_lock(self.path / MARKER, f"output folder {self.path}")
            else:
                (self.path / MARKER).touch()
        except OSError as e:
            raise OutputError(f"cannot write to output folder {self.path}: {e.strerror or e}") from None
        if not resume:
            for child in self.path.iterdir():
                if child.name != MARKER:
                    shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()

    def release(self) -> None:
        """Let other runs use the folder (also done when the object is collected or the process ends)."""
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def __del__(self) -> None:
        self.release()

    @staticmethod
    def check(
        path: str | os.PathLike,
        overwrite: bool = False,
        resume: bool = False,
        inputs: Iterable[str | os.PathLike | None] = (),
    ) -> None:
        """Raise the error :class:`OutputDir` would raise for ``path``, without creating or clearing anything
        (lets a command refuse its output folder before long work).

        Raises:
            OutputError: the path is empty, a file, a non-empty foreign folder, a non-empty echokdm folder
                without ``overwrite`` or ``resume``, an input or a folder that holds or lies in one (see
                :class:`OutputDir`), or in a place this process cannot write to.
        """
        if not str(path).strip():
            raise OutputError("the output folder is empty ('')")
        p = Path(path)
        check_apart(p, inputs)
        if p.exists() and not p.is_dir():
            raise OutputError(f"output path {p} exists and is not a folder")
        existing = next(a for a in (p.absolute(), *p.absolute().parents) if a.exists())
        if not existing.is_dir():
            raise OutputError(f"output folder {p} cannot be made: {existing} is a file")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise OutputError(f"cannot write to output folder {p}: {existing} is read-only or not writable")
        if p.is_dir() and any(p.iterdir()):
            if not (p / MARKER).exists():
                raise OutputError(f"output folder {p} is not empty and was not made by echokdm")
            if not (overwrite or resume):
                raise OutputError(f"output folder {p} is not empty; pass --overwrite to replace it")

    def file(self, name: str | os.PathLike) -> Path:
        """Path of ``name`` inside the folder (sub-folders are created)."""
        p = self.path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def atomic(self, name: str | os.PathLike) -> contextlib.AbstractContextManager[Path]:
        """Yield a temporary path to write ``name`` to; it is renamed into place when the block ends
        (:func:`atomic_write`)."""
        return atomic_write(self.path / name)

    @classmethod
    @contextlib.contextmanager
    def transaction(
        cls, path: str | os.PathLike, overwrite: bool = False, inputs: Iterable[str | os.PathLike | None] = ()
    ) -> Iterator[OutputDir]:
        """An :class:`OutputDir` for files that only make sense together: when the block fails, what it wrote
        goes (the folder, when the block made it; else everything in it but the marker).

        Raises:
            OutputError: as :class:`OutputDir`.
        """
        existed = Path(path).exists()
        out = cls(path, overwrite=overwrite, inputs=inputs)
        try:
            yield out
        except BaseException:
            out._clear(remove=not existed)
            raise
        finally:
            out.release()

    def _clear(self, remove: bool) -> None:
        if remove:
            shutil.rmtree(self.path, ignore_errors=True)
            return
        for child in self.path.iterdir():
            if child.name != MARKER:
                shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink(missing_ok=True)

    def write_text(self, name: str | os.PathLike, text: str) -> Path:
        """Write ``text`` atomically to ``name`` as UTF-8 (bytes of a path that are not UTF-8 are shown as
        ``\\xff`` escapes)."""
        with self.atomic(name) as tmp:
            tmp.write_text(text, encoding="utf-8", errors="backslashreplace")
        return self.file(name)

    def write_json(self, name: str | os.PathLike, obj: Any) -> Path:
        """Write ``obj`` as indented JSON atomically to ``name``."""
        return self.write_text(name, json_text(obj) + "\n")


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` to write to; it is renamed onto ``path`` when the block ends and
    removed when the block fails, so a killed or failed writer never leaves a half-written ``path``.

    Raises:
        OutputError: the location is full, read-only or forbidden.
    """
    final, tmp = Path(path), None
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=final.suffix + PART, dir=final.parent)
        os.close(fd)
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; outputs get the usual permissions
        os.replace(tmp, final)
    except OSError as e:
        _unlink(tmp)
        if e.errno in UNWRITABLE:
            raise OutputError(f"cannot write {final}: {e.strerror}") from None
        raise
    except BaseException:
        _unlink(tmp)
        raise


def json_text(obj: Any) -> str:
    """``obj`` as indented, valid JSON: NaN and infinities (which JSON lacks) become null."""
    return json.dumps(_finite(obj), indent=2, sort_keys=False, default=_json_default, allow_nan=False)


def _finite(o: Any) -> Any:
    import numpy as np

    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    if isinstance(o, np.ndarray):
        return _finite(o.tolist())
    if isinstance(o, np.generic):
        o = o.item()
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return o


def check_apart(out: str | os.PathLike, inputs: Iterable[str | os.PathLike | None]) -> None:
    """Refuse an output folder that equals or contains an input, or lies inside an input folder.

    Raises:
        OutputError: naming the input.
    """
    o = _real(out)
    for i in inputs:
        if i is None or not str(i) or not os.path.lexists(i):
            continue
        p = _real(i)
        if p == o or o in p.parents:
            raise OutputError(f"output folder {out} holds the input {i}; choose an --out outside the inputs")
        if p in o.parents and p.is_dir():
            raise OutputError(f"output folder {out} lies inside the input folder {i}; choose an --out outside it")


def hold_lock(path: str | os.PathLike, what: str) -> int:
    """Take an exclusive ``flock`` on ``path`` (created) and write this process's pid, start and command into
    it; the lock lasts until the returned descriptor is closed or the process ends (a killed holder's lock is
    gone at once, so a lock is never stale).

    Raises:
        OutputError: another live process holds it (named by its pid, start time and command line).
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "another process"
        os.close(fd)
        raise OutputError(f"{what} is in use by another echokdm run ({' '.join(holder.split())}); "
                          "wait for it to finish or stop it") from None
    os.ftruncate(fd, 0)
    started = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime())
    command = shlex.join(["echokdm", *sys.argv[1:]])
    os.pwrite(fd, f"pid {os.getpid()} since {started}: {command}\n".encode(errors="replace"), 0)
    return fd


def _real(p: str | os.PathLike) -> Path:
    return Path(os.path.realpath(os.path.abspath(os.fsdecode(p))))


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _unlink(p: str | os.PathLike | None) -> None:
    if p is not None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(p)
