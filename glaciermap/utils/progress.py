"""Progress of long loops (prediction blocks, training batches, chips), one way everywhere.

A tqdm bar when stderr is a terminal; otherwise (Snakemake and SLURM logs, pipes)
the same status line (done/total, rate, elapsed, ETA) as a log record at most
every ``interval`` seconds, never one line per step. ``glaciermap -q`` turns it
off; ``--progress-interval`` or ``GLACIERMAP_PROGRESS_INTERVAL`` sets the
interval of the log lines (default 30 s); Snakemake jobs always write log lines
(:func:`glaciermap.utils.jobs.job`), so they reach the rule's log file.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from glaciermap.errors import ConfigError

log = logging.getLogger("glaciermap.progress")
T = TypeVar("T")

ProgressMode = Literal["auto", "bar", "log", "off"]
INTERVAL_VARIABLE = "GLACIERMAP_PROGRESS_INTERVAL"
DEFAULT_INTERVAL_S = 30.0
BAR_REFRESH_S = 0.5  # a terminal bar redraws at most this often
# A log line: the bar's numbers without its drawing.
LOG_LINE_FORMAT = (
    "{desc}: {percentage:3.0f}% {n_fmt}/{total_fmt} {unit} "
    "[{elapsed}<{remaining}, {rate_fmt}{postfix}]"
)


@dataclass
class ProgressSettings:
    """``auto``: a bar on a terminal, log lines elsewhere; ``interval`` None: the
    environment's ``GLACIERMAP_PROGRESS_INTERVAL``, else 30 s."""

    mode: ProgressMode = "auto"
    interval: float | None = None


_settings = ProgressSettings()


def configure(mode: ProgressMode | None = None, interval: float | None = None) -> None:
    """Set how progress shows for the rest of the process (the command line, a job)."""
    if mode is not None:
        _settings.mode = mode
    if interval is not None:
        if interval < 0:
            raise ConfigError(f"progress interval {interval} s: must be 0 or more")
        _settings.interval = interval


def log_interval() -> float:
    """Seconds between two progress log lines."""
    if _settings.interval is not None:
        return _settings.interval
    text = os.environ.get(INTERVAL_VARIABLE, "").strip()
    if not text:
        return DEFAULT_INTERVAL_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0:
        raise ConfigError(f"{INTERVAL_VARIABLE}={text!r}: not a number of seconds >= 0")
    return value


def resolved_mode() -> Literal["bar", "log", "off"]:
    if _settings.mode != "auto":
        return _settings.mode
    return "bar" if sys.stderr.isatty() else "log"


class LogLineProgress(tqdm):
    """tqdm whose status line goes to the log, at most every ``mininterval`` seconds;
    nothing before the first step, the final line on close when ``leave``."""

    monitor_interval = 0  # no monitor thread: lines are paced by mininterval alone

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.logged_n: float | None = None
        super().__init__(*args, file=io.StringIO(), bar_format=LOG_LINE_FORMAT, **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        # Not for a bar being cleared, before the first step, or twice for one count.
        if msg == "" or self.n in (self.initial, self.logged_n):
            return True
        self.logged_n = self.n
        log.info("%s", self.format_meter(**self.format_dict))
        return True


@contextlib.contextmanager
def progress(
    total: float | None,
    desc: str,
    unit: str,
    *,
    initial: float = 0,
    leave: bool = True,
    unit_scale: bool = False,
) -> Iterator[tqdm]:
    """A progress counter for ``total`` steps of ``unit``: call ``update(n)`` on it, and
    ``set_postfix_str(text, refresh=False)`` for extra state; ``unit_scale``: counts
    with SI prefixes (k, M)."""
    mode = resolved_mode()
    options: dict[str, Any] = {
        "total": total,
        "desc": desc,
        "unit": unit,
        "initial": initial,
        "leave": leave,
        "unit_scale": unit_scale,
    }
    if mode == "off":
        with tqdm(disable=True, **options) as bar:
            yield bar
    elif mode == "bar":
        with (
            logging_redirect_tqdm(),
            tqdm(file=sys.stderr, dynamic_ncols=True, mininterval=BAR_REFRESH_S, **options) as bar,
        ):
            yield bar
    else:
        interval = log_interval()
        # miniters=1: lines are paced by time alone (tqdm's adaptive miniters, and the
        # monitor thread that works with them, would print at their own pace).
        with LogLineProgress(mininterval=interval, miniters=1, **options) as bar:
            yield bar


def track(
    items: Iterable[T],
    total: float | None,
    desc: str,
    unit: str,
    *,
    initial: float = 0,
    leave: bool = True,
) -> Iterator[T]:
    """``items``, counting one step each time the loop body over an item is done."""
    with progress(total, desc, unit, initial=initial, leave=leave) as bar:
        for item in items:
            yield item
            bar.update()
