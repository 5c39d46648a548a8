"""Shared pieces of the metadata tests: an independent reading of a metafits TILEDATA, the local server, settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.mwa_files import mwa_file

FETCHED = 1365977896  # a real metafits the local metadata server has (3C444, 144 tiles, channels 157..180)
STORED = 1369821496  # a real metafits the tests put in the products bucket (HydA, 144 tiles, 18 flagged)


def metafits_path(obsid: int) -> Path:
    """The real fixture metafits of an observation (fails the test when missing)."""
    return mwa_file(str(obsid), f"{obsid}_metafits.fits")


def tiledata(obsid: int) -> list[tuple[int, int, str, int, int, bool]]:
    """(Antenna, Tile, TileName, Rx, Slot, flagged in either pol) per tile, read straight from TILEDATA with astropy."""
    from astropy.io import fits

    by_antenna: dict[int, list] = {}
    with fits.open(metafits_path(obsid)) as hdus:
        for row in hdus["TILEDATA"].data:
            by_antenna.setdefault(int(row["Antenna"]), []).append(row)
    return [(a, int(rows[0]["Tile"]), str(rows[0]["TileName"]).strip(), int(rows[0]["Rx"]), int(rows[0]["Slot"]),
             any(int(r["Flag"]) != 0 for r in rows)) for a, rows in sorted(by_antenna.items())]


def as_tuples(tiles) -> list[tuple[int, int, str, int, int, bool]]:
    """TileInfo records as the tuples tiledata() gives."""
    return [(t.antenna, t.tile_id, t.name, t.rx, t.slot, t.flagged) for t in tiles]


def primary_header(obsid: int) -> dict:
    """The fixture metafits' primary header cards the tests compare with."""
    from astropy.io import fits

    header = fits.getheader(metafits_path(obsid), 0)
    return {k: header[k] for k in ("GPSTIME", "EXPOSURE", "FILENAME", "CHANNELS", "ATTEN_DB")}


@pytest.fixture
def local_metadata(monkeypatch):
    """The devstack metadata server on a free loopback port, the service pointed at it, short time limits."""
    from devstack import metadata_server

    server = metadata_server.start()
    for name, value in server.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CALIB_METADATA_CONNECT_TIMEOUT_S", "1")
    monkeypatch.setenv("CALIB_METADATA_TOTAL_TIMEOUT_S", "3")
    yield server
    server.stop()
