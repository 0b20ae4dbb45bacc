"""How a failed ``python -m dfn`` command ends: one line and an exit status, or a traceback.

* A user's mistake (the command line, a config value, an input file, a checkpoint):
  ``dfn: error: ...`` naming the key or file and the fix, status 2. dfn raises
  :class:`~dfn.errors.ConfigError` for all of its own; jsonargparse's ``ArgumentError`` and a
  library's ``FileNotFoundError`` count too, also when wrapped in another exception.
* A fault of the run, not of its inputs (a full or read-only disk, a NaN loss, another process of
  a distributed run that died): ``dfn: error: ...``, status 1.
* A requested stop (SIGTERM, Ctrl-C) after ``last.ckpt`` was saved: ``dfn: stopped ...``,
  status 128 + the signal.
* Anything else is a bug: its traceback is kept.
"""
from __future__ import annotations

import errno
import re
from pathlib import Path
from typing import Optional

import torch
import yaml
from jsonargparse import ArgumentError

from dfn.callbacks import NonFiniteLoss
from dfn.errors import ConfigError
from dfn.signals import Stopped

USER_ERRORS = (ConfigError, ArgumentError, FileNotFoundError, NonFiniteLoss)
WRITE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT}


def explain(error: BaseException) -> Optional[tuple[str, int]]:
    """``(line, exit status)`` for an error that ends a command in one line, else ``None``."""
    if isinstance(error, Stopped):
        return f"dfn: {error}", error.status
    cause = _user_error(error)
    if cause is None and _peer_died(error):
        reason = re.sub(r"^\[[^\]]*\]\s*", "", str(error).strip().splitlines()[-1]).split(". ")[0]
        return (f"dfn: error: another process of this distributed run died ({reason}); every checkpoint "
                "already written is intact: see that process's output for why, then resume with "
                "--ckpt_path last"), 1
    if cause is None:
        return None
    if isinstance(cause, OSError) and cause.errno in WRITE_ERRNOS:
        return (f"dfn: error: cannot write {cause.filename or 'an output file'}: {cause.strerror}. Free "
                "disk space or choose another --run_dir; every checkpoint already written is intact "
                "(each is written beside its final name, then renamed)."), 1
    message = str(cause)
    if "Original Traceback" in message:        # raised in a DataLoader worker: its last line is the error
        message = message.strip().splitlines()[-1].split(": ", 1)[-1]
    return f"dfn: error: {message}", 1 if isinstance(cause, NonFiniteLoss) else 2


def check_config_files(argv: list[str]) -> None:
    """A missing config file, or the file of a YAML syntax error (jsonargparse reports it without
    the file name), as one line with the fix."""
    for flag, value in zip(argv, argv[1:] + [""]):
        path = Path(value if flag in ("--config", "-c") else flag.partition("=")[2]
                    if flag.startswith("--config=") else "")
        if path.name and not path.exists():
            raise ConfigError(f"--config {path}: no such file; the experiments' configs are in the "
                              "repository's configs/ folder (e.g. configs/steerable.yaml)")
        if path.name and path.is_file():
            try:
                yaml.safe_load(path.read_text())
            except yaml.YAMLError as error:
                mark = getattr(error, "problem_mark", None)
                where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
                problem = getattr(error, "problem", None) or error
                raise ConfigError(f"{path}: not valid YAML ({problem}{where}); fix the file") from error


def _user_error(error: BaseException) -> Optional[BaseException]:
    """The user's mistake or the write fault behind ``error`` (jsonargparse wraps those raised
    while it instantiates classes), or ``None``."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, USER_ERRORS) or (isinstance(error, OSError) and error.errno in WRITE_ERRNOS):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def _peer_died(error: BaseException) -> bool:
    """A collective failed because another rank is gone (gloo: its connection closed or reset by
    the peer; NCCL and the c10d store: a ``DistError``)."""
    distributed_error = getattr(torch.distributed, "DistError", ())
    return isinstance(error, distributed_error) or any(
        sign in str(error) for sign in ("remote worker", "Connection closed by peer", "Connection reset by peer"))
