"""Write files atomically: a reader sees the old file or the complete new one, never half of it."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_open(
    path: str | os.PathLike[str], mode: str = "w", *, encoding: str | None = "utf-8"
) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success it is fsynced and renamed over ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    binary = "b" in mode
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the mode a plain open() would
    try:
        with os.fdopen(fd, mode, encoding=None if binary else encoding, newline=None if binary else "") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_open(path, "w") as fh:
        fh.write(text)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)


class AtomicSet:
    """Write several files that belong together: all of them appear, or none (the old files stay).

    Each :meth:`write_bytes` goes to a temporary file beside its target; :meth:`commit` renames them all over
    their targets (renames that do not fail on a full disk); leaving the ``with`` block without ``commit``, or
    with an error, removes the temporary files and leaves the targets as they were.
    """

    def __init__(self) -> None:
        self._pending: list[tuple[str, Path]] = []

    def __enter__(self) -> AtomicSet:
        return self

    def write_bytes(self, path: str | os.PathLike[str], data: bytes) -> Path:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        self._pending.append((tmp, target))
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        return target

    def commit(self) -> list[Path]:
        """Rename every temporary file over its target; returns the targets."""
        done = [target for _tmp, target in self._pending]
        for tmp, target in self._pending:
            os.replace(tmp, target)
        self._pending = []
        return done

    def __exit__(self, *_exc: object) -> None:
        for tmp, _target in self._pending:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        self._pending = []
