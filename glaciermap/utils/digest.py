"""SHA-256 of a file's content: one definition for resume fingerprints and map provenance."""

from __future__ import annotations

import hashlib
import os


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of the file at ``path`` (read in chunks)."""
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()
