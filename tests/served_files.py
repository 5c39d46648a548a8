"""What the service serves, read independently of the code that made it: the solution zip, the AO-cal .bin.

Helpers for test modules (import them from here, never from another test module).
"""

from __future__ import annotations

import io
import struct
import zipfile

import numpy as np
import requests


def fetch_zip(client, path: str) -> zipfile.ZipFile:
    """GET ``path`` (a 302 to a presigned SigV4 URL) and download the zip it points at (moto serves it)."""
    r = client.http.get(path)
    assert r.status_code == 302, r.body
    url = r.headers["Location"]
    got = requests.get(url, timeout=10)
    assert got.status_code == 200
    assert "X-Amz-Signature" in url and "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url  # SigV4
    return zipfile.ZipFile(io.BytesIO(got.content))


def read_bin(data: bytes):
    """An independent reading of the AO-cal layout in domain.md: (Jones, start, end)."""
    magic, = struct.unpack_from("<8s", data, 0)
    ftype, stype, n_int, n_ant, n_chan, n_pol = struct.unpack_from("<6I", data, 8)
    start, end = struct.unpack_from("<2d", data, 32)
    assert magic == b"MWAOCAL\0" and (ftype, stype, n_pol) == (0, 0, 4)
    assert len(data) == 48 + 64 * n_int * n_ant * n_chan
    values = np.frombuffer(data, dtype="<f8", offset=48).reshape(n_int, n_ant, n_chan, 4, 2)
    return values[..., 0] + 1j * values[..., 1], start, end
