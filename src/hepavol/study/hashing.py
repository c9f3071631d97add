"""Content hashes of inputs (SHA-256), so that a run skips work whose inputs have not changed.

A file hashes its bytes; a folder (a DICOM series) hashes the sorted list of its files' relative paths and
hashes, so renaming, adding, removing or changing any file changes it; ``hash_files`` does the same for a series
given as a list of files (a DICOM series in a folder shared with other series).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from hepavol.errors import InputError

__all__ = ["hash_files", "hash_json", "hash_path"]

_CHUNK = 1 << 20


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise InputError(f"cannot read '{path}' to hash it: {exc.strerror}. Check that the file exists.") from None
    return digest.hexdigest()


def hash_files(files: Iterable[str | os.PathLike[str]], *, root: str | os.PathLike[str] | None = None) -> str:
    """SHA-256 over the sorted (relative path, content hash) pairs of ``files`` (hashed on 4 threads)."""
    paths = sorted(Path(f) for f in files)
    base = Path(root) if root is not None else None
    with ThreadPoolExecutor(max_workers=4) as pool:
        hashes = list(pool.map(_hash_file, paths))
    digest = hashlib.sha256()
    for path, h in zip(paths, hashes):
        name = path.relative_to(base).as_posix() if base is not None else path.name
        digest.update(f"{name}\0{h}\n".encode())
    return digest.hexdigest()


def hash_path(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes, or of a folder's files (recursively, see :func:`hash_files`)."""
    p = Path(path)
    if p.is_file():
        return _hash_file(p)
    if p.is_dir():
        return hash_files((f for f in p.rglob("*") if f.is_file()), root=p)
    raise InputError(f"cannot hash '{path}': no such file or folder. Check the path.")


def hash_json(value: Any) -> str:
    """SHA-256 of a JSON-serialisable value in canonical form (sorted keys, no spaces)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()
