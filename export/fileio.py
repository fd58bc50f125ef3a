"""Safe output files and folders: refuse to overwrite without ``force``, write atomically.

Every command that writes outputs uses these, so a failure never leaves a half-written file
or folder behind and an existing output is never lost by accident.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from nanomamba.errors import KwsError


class OutputExistsError(KwsError):
    """The output path exists and ``--force`` was not given."""


class OutputPathError(KwsError):
    """The output cannot be created where asked (its folder cannot be made or written)."""


def check_parent_writable(path: os.PathLike | str) -> None:
    """Refuse an output whose folder can neither be found nor created, before any work.

    Probes the nearest existing ancestor of ``path``'s folder by creating (and removing) an
    empty temp folder in it, so read-only or virtual file systems (``/proc``) are caught
    as well as missing permissions. Creates nothing that stays.

    Raises:
        OutputPathError: ``{path}: cannot create the output ...`` (names the ancestor and
            the OS reason).
    """
    anc = Path(os.path.abspath(path)).parent
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        raise OutputPathError(f"{path}: cannot create the output: {anc} is not a folder")
    try:
        os.rmdir(tempfile.mkdtemp(dir=anc, prefix=".kws-probe-"))
    except OSError as err:
        raise OutputPathError(f"{path}: cannot create the output in {anc}: "
                              f"{err.strerror or err}") from None


def make_parent(path: os.PathLike | str) -> Path:
    """``mkdir -p`` of ``path``'s folder; returns that folder.

    Raises:
        OutputPathError: the folder cannot be created (OS reason in the message).
    """
    parent = Path(path).parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputPathError(f"{path}: cannot create the output folder {parent}: "
                              f"{err.strerror or err}") from None
    return parent


def _os_error(path, err: OSError) -> OutputPathError:
    return OutputPathError(f"{path}: cannot write the output: {err.strerror or err}")


def umask_mode(path: os.PathLike | str) -> None:
    """Give a finished temp file 0o666 (folder: 0o777) minus the process umask.

    ``tempfile.mkstemp``/``mkdtemp`` create 0o600/0o700, so without this every output would
    be readable only by its creator, unlike a file written with ``open(path, "w")``.
    """
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, (0o777 if os.path.isdir(path) else 0o666) & ~mask)


_RENAME_NOREPLACE = 1          # linux/fs.h
_AT_FDCWD = -100


def _renameat2_noreplace(src: str, dst: str) -> bool:
    """Linux ``renameat2(src, dst, RENAME_NOREPLACE)``: False when unavailable (no glibc
    wrapper, an old kernel, a file system without the flag); raises FileExistsError when
    ``dst`` exists, OSError for any other failure."""
    import ctypes
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    if fn(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), dst)


def place_new(tmp: Path, path: Path) -> None:
    """Rename the finished ``tmp`` (file or folder) to ``path`` only if ``path`` does not
    exist, as one step: a path that appeared since :func:`check_output` (even an empty
    folder, which a plain ``os.rename`` would silently replace) is never touched.

    Linux: ``renameat2(RENAME_NOREPLACE)``. Elsewhere a file is hard-linked into place
    (``link`` never replaces) and a folder is renamed after a last existence check
    (``rename`` onto a non-empty folder or a file fails anyway).

    Raises:
        OutputExistsError: ``path`` exists (``tmp`` is left for the caller to delete).
        OutputPathError: any other OS failure.
    """
    appeared = "appeared while this command ran; nothing was replaced"
    try:
        if _renameat2_noreplace(str(tmp), str(path)):
            return
        if not tmp.is_dir():
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise
            except OSError:                  # no hard links on this file system
                pass
            else:
                os.unlink(tmp)
                return
        if os.path.lexists(path):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path))
        os.rename(tmp, path)
    except OSError as err:
        if err.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
            raise OutputExistsError(_exists_message(path, appeared)) from None
        raise _os_error(path, err) from None


def _exists_message(path: Path, why: str = "") -> str:
    if os.path.islink(path) and not path.exists():
        why = f"a symlink to a missing target{'; ' + why if why else ''}"
        return f"{path}: exists ({why}); use --force to replace it"
    kind = "folder" if path.is_dir() else "file" if path.exists() else "path"
    why = f" ({why})" if why else ""
    return f"{path}: output {kind} exists{why}; use --force to overwrite it"


def check_output(path: os.PathLike | str, force: bool, expect: str | None = None,
                 inputs: "list[os.PathLike | str] | tuple" = ()) -> Path:
    """Refuse an existing output unless ``force``, an output that is or contains one of the
    ``inputs`` or the current folder, and an output whose folder cannot be created
    (:func:`check_parent_writable`). A dangling symlink at ``path`` counts as existing.

    Args:
        path: the output file or folder.
        force: replace an existing output.
        expect: "file" or "folder": refuse an existing path of the other kind even with
            ``force`` (``--force`` never turns a folder into a file or a file into a folder).
        inputs: the command's input files/folders: replacing the output must never delete
            one of them, even with ``force``.
    Raises:
        OutputExistsError: ``path`` exists and not ``force`` (message names --force), or is
            of the other kind than ``expect``, or is (or contains) an input or the current
            folder (replacing it would delete the folder the command runs in; ``--force``
            does not help).
        OutputPathError: the folder of ``path`` cannot be created.
    """
    path = Path(path)
    out = Path(os.path.realpath(path))
    cwd = Path(os.path.realpath(os.getcwd()))
    if out == cwd or out in cwd.parents:
        raise OutputExistsError(f"{path}: is the current folder (or contains it); "
                                f"choose another output")
    for inp in inputs:
        if not isinstance(inp, (str, os.PathLike)):
            continue                      # an in-memory source (e.g. a Bundle object)
        src = Path(os.path.realpath(inp))
        if src == out or out in src.parents:
            what = "is" if src == out else "contains"
            raise OutputExistsError(f"{path}: the output {what} the input {inp}; "
                                    f"choose another output path")
    if expect == "file" and path.is_dir():
        raise OutputExistsError(f"{path}: is a directory, expected a file name")
    if expect == "folder" and path.exists() and not path.is_dir():
        raise OutputExistsError(f"{path}: is a file, expected a folder name")
    if os.path.lexists(path) and not force:
        raise OutputExistsError(_exists_message(path))
    check_parent_writable(path)
    return path


def atomic_write_bytes(path: os.PathLike | str, data: bytes, *, force: bool = False) -> Path:
    """Write ``data`` to ``path`` via a temp file in the same folder, then rename it into
    place (``os.replace`` with ``force``; without it a rename that never replaces a file
    that appeared meanwhile, :func:`place_new`).

    Raises:
        OutputExistsError: ``path`` exists and not ``force`` (checked at the start and
            again, atomically, at the final rename).
        OutputPathError: the folder of ``path`` cannot be created or written.
    """
    path = check_output(path, force, expect="file")
    make_parent(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise _os_error(path, err) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        umask_mode(tmp)
        if force:
            os.replace(tmp, path)
        else:
            place_new(Path(tmp), path)
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

    Yields the temp folder to fill (relative when ``path`` is). On success the old folder
    (if any, with ``force``) is replaced; on any exception the temp folder is deleted and
    the old one is untouched. Without ``force`` the final rename never replaces anything:
    a path that appeared while the folder was being filled (another run, a user's
    ``mkdir``) is kept and the new output discarded (:func:`place_new`).

    Raises:
        OutputExistsError: ``path`` exists and not ``force`` (checked at the start and
            again, atomically, at the final rename).
        OutputPathError: the folder of ``path`` cannot be created or written.
    """
    path = check_output(path, force, expect="folder")
    make_parent(path)
    try:
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    except OSError as err:
        raise _os_error(path, err) from None
    try:
        yield tmp
        umask_mode(tmp)
        if not force:
            place_new(tmp, path)
        elif os.path.islink(path):
            # a symlink (to a folder, or dangling): the link itself is the output, replaced
            # like a file; its target is left alone. rmtree refuses links, so a link moved
            # aside as below was left behind as a hidden ``.NAME.XXXX.old``.
            os.unlink(path)
            os.replace(tmp, path)
        elif path.exists():
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


def path_list(value, what: str = "inputs") -> list[Path]:
    """A list of paths given to a function that takes several (clips, folders).

    A single str, bytes or PathLike is refused, not taken as one path: iterating a string
    would treat each character as a path (``"/"`` then globs the whole file system).

    Args:
        value: a list, tuple or other iterable of str/PathLike.
        what: the argument's name, for the message.
    Returns:
        the paths as :class:`pathlib.Path`, in order.
    Raises:
        TypeError: ``value`` is a single path, not iterable, or holds a non-path item.
    """
    if isinstance(value, (str, bytes, os.PathLike)):
        raise TypeError(f"{what} must be a list of paths, got a single "
                        f"{type(value).__name__} {str(value)!r}; pass [path]")
    try:
        items = list(value)
    except TypeError:
        raise TypeError(f"{what} must be a list of paths, got "
                        f"{type(value).__name__}") from None
    for item in items:
        if not isinstance(item, (str, os.PathLike)):
            raise TypeError(f"{what} must be a list of paths, got an item of type "
                            f"{type(item).__name__} ({item!r})")
    return [Path(p) for p in items]
