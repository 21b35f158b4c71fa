"""How every Snakemake script adapter runs its one call into the package.

Snakemake tells the user to read the rule's ``log:`` file, so that is where the
whole package log and the final error go, as well as to the terminal. A bad
input or config (:class:`~glaciermap.errors.GlacierMapError`) ends as one line
that names the file or key, without a traceback, unless ``GLACIERMAP_DEBUG`` is
set; any other exception is a bug and keeps its traceback, in the log too.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from glaciermap.errors import GlacierMapError, Interrupted
from glaciermap.utils import progress
from glaciermap.utils.atomic import output_error
from glaciermap.utils.logs import setup_logging

log = logging.getLogger("glaciermap")
DEBUG_VARIABLE = "GLACIERMAP_DEBUG"


def debugging() -> bool:
    """True when ``GLACIERMAP_DEBUG`` asks for tracebacks of input errors."""
    return os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")


@contextlib.contextmanager
def job(log_file: str | Path | None) -> Iterator[None]:
    """Log to ``log_file`` and stderr; turn an input error into one line and exit status 1."""
    setup_logging(log_file)
    progress.configure(mode="log")  # progress lines into the rule's log, not a bar
    try:
        yield
    except GlacierMapError as exc:
        log.error("%s", exc)
        if debugging():
            raise
        raise SystemExit(1) from None
    except Interrupted as exc:  # SIGTERM: state saved, the retry continues
        log.warning("%s", exc)
        raise SystemExit(exc.exit_code) from None
    except OSError as exc:
        said = output_error(exc, exc.filename or "an output")
        if said is None:  # not a full disk or a permission: a bug
            log.exception("unexpected error (a bug: please report it with this log)")
            raise
        log.error("%s", said)
        if debugging():
            raise
        raise SystemExit(1) from None
    except Exception:
        log.exception("unexpected error (a bug: please report it with this log)")
        raise
