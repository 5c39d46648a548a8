"""Zip bundles of several output files, byte-identical for identical input (cacheable, ETag-friendly)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping

FIXED_DATE_TIME = (1980, 1, 1, 0, 0, 0)  # earliest date a zip entry can carry
COMPRESS_LEVEL = 6  # zlib's default, fixed so output never depends on library defaults
_UNIX = 3  # ZipInfo.create_system for Unix, so external_attr holds the file mode
_FILE_MODE = 0o100644  # regular file, rw-r--r--


def _check_name(name: str) -> None:
    """Refuse entry names that would unpack outside the target folder or differently per platform."""
    parts = name.split("/")
    if not name or name.startswith("/") or "\\" in name or ".." in parts or "" in parts or "." in parts:
        raise ValueError(f"unsafe zip entry name: {name!r}")


def build_zip(files: Mapping[str, bytes]) -> bytes:
    """Deflate ``files`` (name -> content) into one zip with fixed timestamps, so equal input gives equal bytes.

    Entries are sorted by name; names that could unpack outside the target folder are refused.
    """
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name in sorted(files):
            _check_name(name)
            info = zipfile.ZipInfo(name, date_time=FIXED_DATE_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = _UNIX
            info.external_attr = _FILE_MODE << 16
            zf.writestr(info, bytes(files[name]), compress_type=zipfile.ZIP_DEFLATED, compresslevel=COMPRESS_LEVEL)
    return buf.getvalue()
