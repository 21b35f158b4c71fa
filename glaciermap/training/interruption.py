"""SIGTERM handling: SLURM pre-emption asks a job to stop; the run saves and exits non-zero."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from glaciermap.errors import Interrupted

log = logging.getLogger(__name__)


class RunInterrupted(Interrupted):
    """Raised after a run saved its state because it was asked to stop."""

    def __init__(self, signum: int, checkpoint: str) -> None:
        super().__init__(
            f"stopped by {signal.Signals(signum).name}; state saved in {checkpoint}, "
            "run again to continue"
        )
        self.signum = signum
        self.exit_code = 128 + signum  # the shell's convention for "killed by signal"


class StopFlag:
    """Set by the signal handler; the training loop checks it between batches."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __bool__(self) -> bool:
        return self.signum is not None


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[StopFlag]:
    """Within the block, SIGTERM sets the yielded flag instead of killing the process.

    Python only lets the main thread install handlers; elsewhere the flag stays
    unset and SIGTERM keeps its usual effect.
    """
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        log.warning(
            "received %s: saving a checkpoint after this batch", signal.Signals(signum).name
        )
        flag.signum = signum

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGTERM, previous)
