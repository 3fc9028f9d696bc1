"""Write a folder so that it is either complete or absent: a temporary sibling, then one rename.

Saved with the model code (it is imported by ``modeling_motionpatch.py``), so it uses the standard library only.
"""

from __future__ import annotations

import ctypes
import os
import re
import secrets
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

TMP_INFIX = ".tmp-"
_RENAME_EXCHANGE = 2  # linux/fs.h


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``); ``False`` where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd = -100
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    errno = ctypes.get_errno()
    if errno in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: this file system cannot exchange
        return False
    raise OSError(errno, os.strerror(errno), str(a), None, str(b))


def replace_folder(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Move the complete folder ``src`` to ``dst``, replacing an older ``dst``.

    Where the file system can exchange two paths atomically (Linux), there is no moment at which ``dst`` is absent
    or half-written. Elsewhere an older ``dst`` is first renamed to a hidden ``.old-`` sibling; a crash between the
    two renames leaves ``dst`` absent and the old folder beside it.
    """
    src, dst = Path(src), Path(dst)
    if not dst.exists():
        os.replace(src, dst)
        return
    if dst.is_dir() and _exchange(src, dst):
        shutil.rmtree(src, ignore_errors=True)  # now holds the old folder
        return
    old = Path(tempfile.mkdtemp(prefix=f".{dst.name}.old-", dir=dst.parent))
    os.replace(dst, old / "old")
    try:
        os.replace(src, dst)
    except BaseException:
        os.replace(old / "old", dst)  # put the previous folder back
        raise
    shutil.rmtree(old, ignore_errors=True)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)  # the old folder is deleted afterwards, so sharing its files is safe and free
    except OSError:
        shutil.copy2(src, dst)


def _remove_stale_siblings(folder: Path) -> None:
    """Temporary siblings of ``folder`` left by processes that were killed (their pid is in the name)."""
    prefix = f".{folder.name}{TMP_INFIX}"
    for name in os.listdir(folder.parent):
        if not name.startswith(prefix):
            continue
        path, pid = folder.parent / name, name[len(prefix) :].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid():
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                shutil.rmtree(path, ignore_errors=True)
            except OSError:  # alive but not ours
                pass


#: weight shards and their index, as transformers' ``save_pretrained`` names them
_WEIGHT_SHARD = re.compile(r"model(\.[\w-]+)?(-\d{5}-of-\d{5}\.safetensors|\.safetensors\.index\.json)")


@contextmanager
def atomic_folder(
    folder: str | os.PathLike, keep: Callable[[str], bool] | None = lambda name: True
) -> Iterator[Path]:
    """Yield an empty temporary sibling of ``folder`` to write into; on success it replaces ``folder``.

    Args:
        folder: the folder to write (created or replaced).
        keep: which entries of an existing ``folder`` that the new content does not rewrite are carried over
            (hard-linked, else copied), so that writing into a folder keeps its other files as an in-place write
            would; ``None`` replaces the folder with the new content only.

    A crash or ``kill -9`` before the end leaves ``folder`` as it was (or absent) and a temporary sibling named
    ``.{name}.tmp-{pid}-*``, which the next write to ``folder`` removes; an exception removes it at once.
    """
    folder = Path(os.path.realpath(folder))
    if keep is not None and folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{str(folder)!r} is a file; save into a folder path (it is created if absent).")
    folder.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_siblings(folder)
    tmp = folder.parent / f".{folder.name}{TMP_INFIX}{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()  # the umask's permissions (mkdtemp would make the saved folder private)
    try:
        if folder.is_dir():
            shutil.copymode(folder, tmp)
        yield tmp
        if keep is not None and folder.is_dir():
            for entry in os.scandir(folder):
                target = tmp / entry.name
                if target.exists() or not keep(entry.name):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.copytree(entry.path, target, symlinks=True, copy_function=_link_or_copy)
                elif entry.is_symlink():
                    os.symlink(os.readlink(entry.path), target)
                else:
                    _link_or_copy(entry.path, str(target))
        cwd = os.getcwd()
        replace_folder(tmp, folder)
        if cwd == str(folder) or cwd.startswith(str(folder) + os.sep):
            try:
                os.chdir(cwd)  # the process's working directory was the old folder (or inside it)
            except OSError:
                pass
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def save_atomically(
    save: Callable[..., object],
    save_directory: str | os.PathLike,
    *,
    push_to_hub: bool = False,
    keep: Callable[[str], bool] | None = None,
    **kwargs,
):
    """``save(tmp, push_to_hub=..., **kwargs)`` (a transformers ``save_pretrained``) into :func:`atomic_folder`.

    ``keep`` defaults to every file of an existing folder except weight shards (``model-00001-of-00003.safetensors``
    and their index), which transformers also removes when a new save does not rewrite them.

    With ``push_to_hub=True`` the Hub repository defaults to the name of ``save_directory`` (not of the temporary
    folder), as transformers does.
    """
    if push_to_hub:
        kwargs.setdefault("repo_id", Path(os.path.realpath(save_directory)).name)
    if keep is None:
        keep = lambda name: not _WEIGHT_SHARD.fullmatch(name)  # noqa: E731
    with atomic_folder(save_directory, keep=keep) as tmp:
        return save(tmp, push_to_hub=push_to_hub, **kwargs)


__all__ = ["atomic_folder", "replace_folder", "save_atomically"]
