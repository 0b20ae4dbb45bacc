"""Files that appear whole or not at all: write to a temporary name beside the target, rename."""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def written_whole(target: str | Path, suffix: str = "") -> Iterator[Path]:
    """``with written_whole(target) as tmp:`` write ``tmp``; when the block succeeds it is renamed
    onto ``target`` (atomic on one file system), when it fails it is removed, so ``target`` is
    never half-written and an existing one stays intact until the new one is complete. The
    temporary file, ``.<name>.<random><suffix>`` in ``target``'s folder, gets the permissions a
    new file would get."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)                         # mkstemp's 0600 -> as any new file
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
