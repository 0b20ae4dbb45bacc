"""Checkpoint files written whole on every file system (Lightning's own go through ``$TMPDIR``).

Lightning's ``TorchCheckpointIO`` writes through an fsspec transaction: a temporary file in
``$TMPDIR``, moved onto the target at the end. When the run directory is on another file system
(network or scratch storage on a cluster, ``/tmp`` on a local disk), that move is a copy that
truncates the target first, so a kill during it destroys ``last.ckpt``. :class:`AtomicCheckpointIO`
writes beside the target instead (:func:`dfn.atomic.written_whole`: fsync, rename, fsync the folder).
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Optional

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.plugins.io import AsyncCheckpointIO, TorchCheckpointIO

from dfn.atomic import written_whole


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose saves are atomic on any local or network file system."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path,
                        storage_options: Optional[Any] = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        buffer = io.BytesIO()              # serialised first: torch.save to a file on a full disk
        torch.save(checkpoint, buffer)     # raises a RuntimeError; a plain write, an OSError
        with written_whole(path) as tmp:
            tmp.write_bytes(buffer.getbuffer())


def use_atomic_checkpoints(trainer: Trainer) -> None:
    """Make ``trainer`` save through :class:`AtomicCheckpointIO`, unless the user configured a
    checkpoint IO of their own (``--trainer.plugins``), which is kept."""
    strategy = trainer.strategy
    current = strategy.checkpoint_io
    if isinstance(current, AsyncCheckpointIO):              # wrapping the default
        if type(current.checkpoint_io) is TorchCheckpointIO:
            current.checkpoint_io = AtomicCheckpointIO()
    elif type(current) is TorchCheckpointIO:
        strategy.checkpoint_io = AtomicCheckpointIO()
