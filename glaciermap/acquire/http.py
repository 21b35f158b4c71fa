"""Network access shared by the STAC and GLIMS downloads: GDAL options and errors."""

from __future__ import annotations

from typing import Any

import requests

from glaciermap.errors import InputDataError


class DownloadError(InputDataError):
    """A remote source could not be read; the message names the URL."""


def gdal_http_options(timeout_s: float, retries: int) -> dict[str, Any]:
    """GDAL config options for reading remote COGs with HTTP range requests only.

    Without ``GDAL_DISABLE_READDIR_ON_OPEN`` GDAL lists the remote "directory"
    looking for side-car files, which costs requests and fails on object stores.
    """
    return {
        "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
        "GDAL_HTTP_TIMEOUT": str(int(max(1, round(timeout_s)))),
        "GDAL_HTTP_CONNECTTIMEOUT": str(int(max(1, round(timeout_s)))),
        "GDAL_HTTP_MAX_RETRY": str(retries),
        "GDAL_HTTP_RETRY_DELAY": "1",
    }


def vsicurl_path(href: str) -> str:
    """GDAL path of a remote asset; only http(s) hrefs are read."""
    if not href.startswith(("http://", "https://")):
        raise DownloadError(f"asset href is not an http(s) URL: {href}")
    return f"/vsicurl/{href}"


def check_reachable(url: str, timeout_s: float, retries: int) -> None:
    """Ask for the first byte of ``url``, so that a missing file, a refused
    connection or a timeout is reported as such (GDAL reports all of them as
    "not recognized as being in a supported file format")."""
    get_bytes(url, {}, timeout_s, retries, headers={"Range": "bytes=0-0"})


def get_bytes(
    url: str,
    params: dict[str, str],
    timeout_s: float,
    retries: int,
    headers: dict[str, str] | None = None,
) -> bytes:
    """GET ``url`` and return the body; network failures become :class:`DownloadError`."""
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(max_retries=retries)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    try:
        response = session.get(url, params=params, headers=headers, timeout=timeout_s)
        response.raise_for_status()
    except requests.RequestException as exc:
        raise DownloadError(f"download from {url} failed (timeout {timeout_s:g} s): {exc}") from exc
    finally:
        session.close()
    return response.content
