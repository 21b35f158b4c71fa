"""Write outputs atomically, so a crash never leaves a half-written file behind.

Snakemake treats an existing output as complete; writing to a temporary file in
the same folder and renaming it at the end makes every output all-or-nothing.
:func:`staged_folder` does the same for a folder of outputs that belong
together (``glaciermap predict``): a crash leaves the earlier set or the new
one, never a mix. A full disk or a path that cannot be written ends as one
:class:`~glaciermap.errors.OutputError` line naming the path.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import tempfile
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import NoReturn

from glaciermap.errors import OutputError

log = logging.getLogger(__name__)

# errno values that are the user's to fix, not bugs: said in one line.
_OUTPUT_ERRNOS = {
    errno.ENOSPC: "disk full while writing {path}",
    errno.EDQUOT: "disk quota exceeded while writing {path}",
    errno.EACCES: "no permission to write {path}",
    errno.EPERM: "no permission to write {path}",
    errno.EROFS: "read-only file system: cannot write {path}",
    errno.ENOTDIR: "cannot write {path}: a part of its folder path is a file",
    errno.EISDIR: "cannot write {path}: it is an existing folder",
    errno.EEXIST: "cannot create the folder of {path}: a file of that name exists",
}


def output_error(exc: BaseException, path: str | os.PathLike[str]) -> OutputError | None:
    """The one-line error of a failed write of ``path``; None when it is not the user's to fix.

    GDAL reports a full disk in its message rather than with an errno.
    """
    if not isinstance(exc, OSError):
        return None
    code = exc.errno
    if code is None and "No space left on device" in str(exc):
        code = errno.ENOSPC
    template = _OUTPUT_ERRNOS.get(code) if code is not None else None
    return OutputError(template.format(path=path)) if template else None


def _reraise(exc: OSError, path: Path) -> NoReturn:
    said = output_error(exc, path)
    if said is None:
        raise exc
    raise said from exc


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    On any exception the temporary file is removed and ``path`` is left untouched.
    The temporary name keeps the suffix so that format drivers (GDAL, pyogrio)
    that look at the extension still work.
    """
    target = Path(path)
    if target.is_dir():
        raise OutputError(f"cannot write {target}: it is an existing folder")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{target.stem}.", suffix=target.suffix or ".tmp", dir=target.parent
        )
    except OSError as exc:
        _reraise(exc, target)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()  # drivers that refuse to overwrite get a fresh name
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        said = output_error(exc, target)
        if said is not None:
            raise said from exc
        raise


@contextlib.contextmanager
def staged_folder(folder: str | os.PathLike[str], outputs: Collection[str]) -> Iterator[Path]:
    """Yield a staging folder for the set of files ``outputs``; swap it with ``folder`` at the end.

    The new set is written beside ``folder`` (``.NAME.staging``); only when all of
    it is written is ``folder`` renamed aside (``.NAME.replaced``) and the staging
    folder renamed onto it, so a crash at any moment leaves the earlier set or the
    new one. The next run removes a stale staging folder and, when a crash fell
    between the two renames, puts the earlier set back first. A ``folder`` that
    is a file or holds files other than ``outputs`` is refused (OutputError).
    """
    target = Path(folder)
    staging = target.with_name(f".{target.name}.staging")
    replaced = target.with_name(f".{target.name}.replaced")
    _recover(target, staging, replaced)
    if target.exists() and not target.is_dir():
        raise OutputError(f"output folder {target} is an existing file")
    if target.is_dir():
        others = sorted(p.name for p in target.iterdir() if p.name not in outputs)
        if others:
            raise OutputError(
                f"output folder {target} holds files glaciermap does not write there "
                f"({', '.join(others[:5])}): give an empty folder or an earlier output folder"
            )
    try:
        staging.mkdir(parents=True)
    except OSError as exc:
        _reraise(exc, staging)
    try:
        yield staging
        if target.exists():
            os.rename(target, replaced)
        os.rename(staging, target)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        said = output_error(exc, target)
        if said is not None:
            raise said from exc
        raise
    shutil.rmtree(replaced, ignore_errors=True)


@contextlib.contextmanager
def staged_files(targets: Sequence[str | os.PathLike[str]]) -> Iterator[list[Path]]:
    """Yield paths in one staging folder for ``targets`` (files of one folder); move them
    all onto their targets only once every one is written.

    A failure leaves every target untouched; a stale staging folder of a killed
    run is removed on the next one. (The moves at the end are one rename each;
    Snakemake marks a job killed among them incomplete and reruns it.)
    """
    paths = [Path(target) for target in targets]
    staging = paths[0].with_name(f".{paths[0].name}.staging")
    if staging.exists():
        shutil.rmtree(staging)
        log.warning("removed the stale staging folder %s of an interrupted run", staging)
    try:
        staging.mkdir(parents=True)
    except OSError as exc:
        _reraise(exc, staging)
    try:
        staged = [staging / path.name for path in paths]
        yield staged
        for path, target in zip(staged, paths, strict=True):
            os.replace(path, target)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        said = output_error(exc, paths[0])
        if said is not None:
            raise said from exc
        raise
    shutil.rmtree(staging, ignore_errors=True)


def _recover(target: Path, staging: Path, replaced: Path) -> None:
    """Undo what an interrupted :func:`staged_folder` left: never a mixed set."""
    if replaced.exists():
        if target.exists():
            shutil.rmtree(replaced)
        else:  # killed between the two renames: the earlier set is complete
            os.rename(replaced, target)
            log.warning("%s: an interrupted run's swap was undone (earlier outputs kept)", target)
    if staging.exists():
        shutil.rmtree(staging)
        log.warning("%s: removed the stale staging folder of an interrupted run", target)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
