"""dfn's bookkeeping entries of a checkpoint, read once per file version.

The CLI asks for them before Lightning loads the checkpoint (model check, W&B resume), and the
callbacks name pictures and test results by the checkpoint's step; all share one cached read.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import torch

from dfn.errors import CheckpointMismatch

ENTRIES = ("dfn_model", "wandb_run_id", "global_step")


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """``{"dfn_model", "wandb_run_id", "global_step"}`` (those present) of the checkpoint at ``path``."""
    stat = Path(path).stat()
    return _checkpoint_entries(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _checkpoint_entries(path: str, mtime_ns: int, size: int) -> dict[str, Any]:
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated or foreign file: name it
        raise CheckpointMismatch(f"cannot read checkpoint {path}: {error}. Pass a .ckpt written by "
                                 "`python -m dfn fit`.") from error
    return {key: checkpoint[key] for key in ENTRIES if key in checkpoint}
