"""Files that appear whole or not at all: write to a temporary name beside the target, rename.

The temporary file lives in the target's own folder, never in ``$TMPDIR``: a rename is atomic
only within one file system, and run directories on clusters often live on another one than
``/tmp`` (a move across file systems is a copy that truncates the target first).
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

PARTIAL = ".partial"  # suffix of every temporary file: `remove_partials` finds them by it


@contextmanager
def written_whole(target: str | Path, suffix: str = PARTIAL) -> Iterator[Path]:
    """``with written_whole(target) as tmp:`` write ``tmp``; when the block succeeds it is flushed
    to disk (fsync) and renamed onto ``target``, and the folder's entry is synced too; when it
    fails it is removed. So ``target`` is never half-written, even after a crash or power loss, and
    an existing one stays intact until the new one is complete. The temporary file,
    ``.<name>.<random><suffix>`` in ``target``'s folder, gets the permissions a new file would get.
    An ``OSError`` (a full disk, a read-only folder) names ``target``, not the temporary file."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    except OSError as error:
        raise OSError(error.errno, error.strerror, str(target)) from error
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)                     # mkstemp's 0600 -> as any new file
        yield Path(tmp)
        _fsync_file(tmp)
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except OSError as error:
        raise OSError(error.errno, error.strerror, str(target)) from error
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def remove_partials(folder: str | Path) -> list[Path]:
    """Delete the temporary files that :func:`written_whole` left in ``folder`` when its process
    was killed mid-write (``.<name>.<random>.partial``); returns what was removed."""
    folder = Path(folder)
    removed = sorted(folder.glob(f".*{PARTIAL}")) if folder.is_dir() else []
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def _fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable; file systems that cannot sync a folder are skipped."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
