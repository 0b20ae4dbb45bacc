"""Stop requests during ``fit``: SIGTERM (a cluster preempting the job) and Ctrl-C.

Lightning notes a SIGTERM and stops at the end of the current training step; ``LastCheckpoint``
then saves that step (:mod:`dfn.callbacks.run`). A first Ctrl-C is turned into the same request
instead of an exception in the middle of a step (a second one aborts at once). DataLoader
workers ignore the SIGINT that a terminal sends to every process of the foreground job. A
SIGTERM sent to every process of a job (``scancel``, ``kill -- -PGID``) also ends the workers,
and the main process then fails with a dead-worker error: send it to the main process only,
or use ``num_workers: 0``.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Iterator

from lightning.pytorch import Trainer
from lightning.pytorch.utilities.exceptions import SIGTERMException

from dfn.callbacks.run import last_good_checkpoint


class Stopped(Exception):
    """``fit`` stopped on request; ``status`` is the conventional exit status (128 + signal)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@contextmanager
def stop_gracefully_on_interrupt(trainer: Trainer) -> Iterator[None]:
    """Run ``trainer.fit`` inside: Ctrl-C asks for a graceful stop (as SIGTERM does), and the stop
    surfaces as :class:`Stopped` naming the step and the checkpoint that holds it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[signal.Signals] = []

    def on_sigint(signum: int, frame: object) -> None:
        if received or signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            raise KeyboardInterrupt          # a second Ctrl-C, or before training started
        received.append(signal.SIGINT)
        print("\ndfn: Ctrl-C: finishing the current step and saving last.ckpt (Ctrl-C again aborts "
              "without saving)", file=sys.stderr)
        os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    except SIGTERMException:
        cause = received[0] if received else signal.SIGTERM
        raise Stopped(f"stopped by {cause.name} after step {trainer.global_step}; saved: "
                      f"{last_good_checkpoint(trainer)}. Continue with --ckpt_path last.",
                      128 + cause.value) from None
    finally:
        signal.signal(signal.SIGINT, previous)
