"""Safe output files and folders: refuse to overwrite without ``force``, write atomically.

Every command that writes outputs uses these, so a failure never leaves a half-written file
or folder behind and an existing output is never lost by accident.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from nanomamba.errors import KwsError


class OutputExistsError(KwsError):
    """The output path exists and ``--force`` was not given."""


def umask_mode(path: os.PathLike | str) -> None:
    """Give a finished temp file 0o666 (folder: 0o777) minus the process umask.

    ``tempfile.mkstemp``/``mkdtemp`` create 0o600/0o700, so without this every output would
    be readable only by its creator, unlike a file written with ``open(path, "w")``.
    """
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, (0o777 if os.path.isdir(path) else 0o666) & ~mask)


def check_output(path: os.PathLike | str, force: bool, expect: str | None = None) -> Path:
    """Refuse an existing output unless ``force``.

    Args:
        path: the output file or folder.
        force: replace an existing output.
        expect: "file" or "folder": refuse an existing path of the other kind even with
            ``force`` (``--force`` never turns a folder into a file or a file into a folder).
    Raises:
        OutputExistsError: ``path`` exists and not ``force`` (message names --force), or is
            of the other kind than ``expect``.
    """
    path = Path(path)
    if expect == "file" and path.is_dir():
        raise OutputExistsError(f"{path}: is a directory, expected a file name")
    if expect == "folder" and path.exists() and not path.is_dir():
        raise OutputExistsError(f"{path}: is a file, expected a folder name")
    if path.exists() and not force:
        kind = "folder" if path.is_dir() else "file"
        raise OutputExistsError(f"{path}: output {kind} exists; use --force to overwrite it")
    return path


def atomic_write_bytes(path: os.PathLike | str, data: bytes, *, force: bool = False) -> Path:
    """Write ``data`` to ``path`` via a temp file in the same folder and ``os.replace``.

    Raises:
        OutputExistsError: ``path`` exists and not ``force``.
    """
    path = check_output(path, force, expect="file")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        umask_mode(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_write_text(path: os.PathLike | str, text: str, *, force: bool = False) -> Path:
    """UTF-8 text version of :func:`atomic_write_bytes` (newlines kept as given)."""
    return atomic_write_bytes(path, text.encode("utf-8"), force=force)


@contextlib.contextmanager
def atomic_output_dir(path: os.PathLike | str, *, force: bool = False) -> Iterator[Path]:
    """Build an output folder in a temp sibling, then swap it into place.

    Yields the temp folder to fill. On success the old folder (if any, with ``force``) is
    replaced; on any exception the temp folder is deleted and the old one is untouched.

    Raises:
        OutputExistsError: ``path`` exists and not ``force``.
    """
    path = check_output(path, force, expect="folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
        umask_mode(tmp)
        if path.exists():
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".old"))
            os.rmdir(old)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
