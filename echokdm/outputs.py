"""The one way echokdm writes results: into an output folder it owns, each file atomically (:func:`atomic_write`,
also for caches and checkpoints outside such a folder)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from echokdm.errors import OutputError

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
    so a killed run never leaves a half-written file.

    Args:
        path: the folder.
        overwrite: clear an existing echokdm folder first.
        resume: keep an existing echokdm folder's contents (for resumable commands).

    Raises:
        OutputError: the path is a file, a non-empty foreign folder, or cannot be written.
    """

    def __init__(self, path: str | os.PathLike, overwrite: bool = False, resume: bool = False) -> None:
        self.path = Path(path)
        self.check(self.path, overwrite, resume)
        if self.path.is_dir() and any(self.path.iterdir()) and not resume:
            for child in self.path.iterdir():
                shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            (self.path / MARKER).touch()
        except OSError as e:
            raise OutputError(f"cannot write to output folder {self.path}: {e.strerror or e}") from None

    @staticmethod
    def check(path: str | os.PathLike, overwrite: bool = False, resume: bool = False) -> None:
        """Raise the error :class:`OutputDir` would raise for ``path``, without creating or clearing anything
        (lets a command refuse its output folder before long work).

        Raises:
            OutputError: the path is a file, a non-empty foreign folder, a non-empty echokdm folder
                without ``overwrite`` or ``resume``, or in a place this process cannot write to.
        """
        p = Path(path)
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
    def transaction(cls, path: str | os.PathLike, overwrite: bool = False) -> Iterator[OutputDir]:
        """An :class:`OutputDir` for files that only make sense together: when the block fails, what it wrote
        goes (the folder, when the block made it; else everything in it but the marker).

        Raises:
            OutputError: as :class:`OutputDir`.
        """
        existed = Path(path).exists()
        out = cls(path, overwrite=overwrite)
        try:
            yield out
        except BaseException:
            out._clear(remove=not existed)
            raise

    def _clear(self, remove: bool) -> None:
        if remove:
            shutil.rmtree(self.path, ignore_errors=True)
            return
        for child in self.path.iterdir():
            if child.name != MARKER:
                shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink(missing_ok=True)

    def write_text(self, name: str | os.PathLike, text: str) -> Path:
        """Write ``text`` atomically to ``name``."""
        with self.atomic(name) as tmp:
            tmp.write_text(text)
        return self.file(name)

    def write_json(self, name: str | os.PathLike, obj: Any) -> Path:
        """Write ``obj`` as indented JSON atomically to ``name``."""
        return self.write_text(name, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


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
