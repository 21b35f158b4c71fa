"""Outputs all-or-nothing: one file (atomic_path), files of one job (staged_files), and a
full disk or an unwritable path said in one line naming it."""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

import pytest

from glaciermap.errors import OutputError
from glaciermap.utils.atomic import atomic_path, staged_files, staged_folder, write_text_atomic
from glaciermap.utils.jobs import job


def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_disk_full_is_one_line_naming_the_file_and_leaves_the_old_one(tmp_path):
    target = tmp_path / "table.csv"
    target.write_text("old")
    with pytest.raises(OutputError, match=rf"^disk full while writing {target}$"):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            disk_full()
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]


def test_gdal_disk_full_message_is_recognised(tmp_path):
    from rasterio.errors import RasterioIOError

    with pytest.raises(OutputError, match="disk full while writing"):
        with atomic_path(tmp_path / "map.tif"):
            raise RasterioIOError("map.tif: No space left on device")


def test_an_output_whose_folder_is_a_file_or_that_is_a_folder(tmp_path):
    (tmp_path / "results").write_text("x")
    with pytest.raises(OutputError, match=r"folder of \S*results/out\.json: a file of that name"):
        write_text_atomic(tmp_path / "results" / "out.json", "{}")
    (tmp_path / "folder.json").mkdir()
    with pytest.raises(OutputError, match=r"folder\.json: it is an existing folder"):
        write_text_atomic(tmp_path / "folder.json", "{}")


def test_staged_files_move_all_or_none_and_clean_a_stale_staging(tmp_path, caplog):
    targets = [tmp_path / "probability.tif", tmp_path / "mask.tif"]
    for target in targets:
        target.write_text("old")
    with pytest.raises(OutputError, match="disk full"):
        with staged_files(targets) as staged:
            staged[0].write_text("new")
            disk_full()
    assert [t.read_text() for t in targets] == ["old", "old"]
    stale = tmp_path / ".probability.tif.staging"
    stale.mkdir()
    (stale / "probability.tif").write_text("killed run")
    with caplog.at_level(logging.WARNING), staged_files(targets) as staged:
        for path in staged:
            path.write_text("new")
    assert [t.read_text() for t in targets] == ["new", "new"]
    assert "removed the stale staging folder" in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mask.tif", "probability.tif"]


def test_a_job_ending_with_a_full_disk_is_one_line_not_a_bug(tmp_path, capsys):
    log_file = tmp_path / "job.log"
    with pytest.raises(SystemExit) as stop, job(log_file):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "events.out"))
    assert stop.value.code == 1
    text = log_file.read_text()
    assert f"disk full while writing {tmp_path / 'events.out'}" in text
    assert "a bug" not in text and "Traceback" not in text
    logging.getLogger().handlers.clear()


def test_an_unwritable_output_folder_is_one_line(tmp_path, monkeypatch):
    """Tests may run as root, which permissions do not stop: the refusal is patched in."""

    def refused(self, *args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))

    monkeypatch.setattr(Path, "mkdir", refused)
    target = tmp_path / "locked" / "scores.json"
    with pytest.raises(OutputError, match=rf"^no permission to write {target}$"):
        write_text_atomic(target, "{}")
    with pytest.raises(OutputError, match=r"^no permission to write \S*\.out\.staging$"):
        with staged_folder(tmp_path / "out", ["mask.tif"]):
            pass
    assert list(tmp_path.iterdir()) == []
