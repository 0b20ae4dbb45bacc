"""Reproducible, resumable streams of on-the-fly training batches.

Every training batch is a pure function of ``(seed, rank, index)``: batch ``index`` of the stream
of rank ``rank`` is drawn with a ``torch.Generator`` seeded from those three numbers. So

* a run is reproducible from its seed (the global seed of ``seed_everything`` by default),
* DDP ranks draw different data (the rank is part of the seed),
* DataLoader workers draw nothing of their own: the sampler hands each worker batch indices and
  the worker regenerates exactly those batches, so the number of workers does not change the data,
* a resumed run continues the stream where it stopped: the sampler starts each epoch at the
  trainer's position (``global_step x accumulate_grad_batches`` batches already consumed), so
  ``N`` steps + resume + ``N`` steps sees the same batches as ``2N`` steps straight.

An epoch is ``batches_per_epoch`` consecutive stream indices; the epoch of a batch is
``index // batches_per_epoch``. Workers ignore SIGINT (a terminal's Ctrl-C reaches every
process): the main process stops at the end of a step and shuts them down (:mod:`dfn.harness.signals`).
"""
from __future__ import annotations

import os
import signal
from typing import Callable, Iterator, Optional

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset, Sampler, Subset

from dfn.errors import ConfigError, require_positive

Batch = dict[str, torch.Tensor]
HELD_OUT_STREAM = 2**31 - 1  # a stream "rank" no training run uses: held-out data is never trained on


def ignore_interrupts(worker_id: int) -> None:
    """``worker_init_fn`` of dfn's DataLoaders: a worker ignores SIGINT, which a terminal's Ctrl-C
    sends to every process in the foreground; the main process stops at the end of a step and
    shuts its workers down. SIGTERM keeps its default action: it is how the DataLoader and
    multiprocessing end their workers, and a worker that ignored it would hang their shutdown."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def batch_generator(seed: int, rank: int, index: int) -> torch.Generator:
    """A generator seeded from ``(seed, rank, index)`` through numpy's ``SeedSequence`` hashing."""
    state = np.random.SeedSequence([seed, rank, index]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


class SeededBatches(Dataset):
    """``dataset[index]`` is the whole batch ``make_batch(generator)`` for stream position ``index``."""

    def __init__(self, make_batch: Callable[[torch.Generator], Batch], seed: int, rank: int = 0) -> None:
        self.make_batch, self.seed, self.rank = make_batch, seed, rank

    def __getitem__(self, index: int) -> Batch:
        return self.make_batch(batch_generator(self.seed, self.rank, index))


class ResumableEpochSampler(Sampler[int]):
    """Yields the stream indices from ``position()`` to the end of the current epoch.

    ``position`` is read when an epoch starts (in the main process), so the sampler follows the
    trainer through epochs and across a resume from a checkpoint.
    """

    def __init__(self, position: Callable[[], int], batches_per_epoch: int) -> None:
        require_positive("data.", batches_per_epoch=batches_per_epoch)
        self.position, self.batches_per_epoch = position, batches_per_epoch

    def __iter__(self) -> Iterator[int]:
        start = self.position()
        return iter(range(start, (start // self.batches_per_epoch + 1) * self.batches_per_epoch))

    def __len__(self) -> int:
        return self.batches_per_epoch


class StreamLoader(DataLoader):
    """A DataLoader that tells Lightning it resumes mid-epoch correctly (it is "stateful").

    Its position lives in the trainer (see :class:`ResumableEpochSampler`), which Lightning
    restores from the checkpoint, so there is no state of its own to save.
    """

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state_dict: dict) -> None:
        pass


class StreamDataModule(LightningDataModule):
    """Base DataModule whose training data is an endless seeded stream of whole batches.

    Subclasses implement ``_train_batch(generator) -> Batch`` and set ``batch_size`` (for the
    held-out loaders), ``batches_per_epoch`` and ``num_workers``; ``seed`` is the data seed, or the global seed (``PL_GLOBAL_SEED``) if ``None``.
    """

    def __init__(self, seed: Optional[int], batches_per_epoch: int, num_workers: int) -> None:
        super().__init__()
        if seed is not None and not 0 <= seed < 2 ** 32:
            raise ConfigError(f"data.seed must be from 0 to {2 ** 32 - 1} (or null: the global seed), got {seed}")
        if num_workers < 0:
            raise ConfigError(f"data.num_workers must be >= 0 (0: load in the main process), got {num_workers}")
        self._seed, self.batches_per_epoch, self.num_workers = seed, batches_per_epoch, num_workers

    @property
    def seed(self) -> int:
        return self._seed if self._seed is not None else int(os.environ.get("PL_GLOBAL_SEED", 0))

    def _train_batch(self, generator: torch.Generator) -> Batch:
        raise NotImplementedError

    def _train_position(self) -> int:
        trainer = self.trainer
        return 0 if trainer is None else trainer.global_step * trainer.accumulate_grad_batches

    def train_dataloader(self) -> DataLoader:
        rank = 0 if self.trainer is None else self.trainer.global_rank
        return StreamLoader(SeededBatches(self._train_batch, self.seed, rank), batch_size=None,
                            sampler=ResumableEpochSampler(self._train_position, self.batches_per_epoch),
                            num_workers=self.num_workers, persistent_workers=self.num_workers > 0,
                            worker_init_fn=ignore_interrupts)

    def _held_out_loader(self, dataset: Dataset, shard: bool = True) -> DataLoader:
        """A loader of a fixed set in order, ``batch_size`` at a time: this rank's share of it
        (``shard``), or all of it."""
        return DataLoader(self._shard(dataset) if shard else dataset, batch_size=self.batch_size,
                          num_workers=self.num_workers, worker_init_fn=ignore_interrupts)

    def _shard(self, dataset: Dataset) -> Dataset:
        """This rank's share of a held-out set (every world_size-th item, no padding), so that
        metric sums synced across ranks equal the single-process ones."""
        trainer = self.trainer
        if trainer is None or trainer.world_size == 1:
            return dataset
        return Subset(dataset, range(trainer.global_rank, len(dataset), trainer.world_size))
