"""The real hyperdrive fit of obs 1369821496 (../shared/fixtures/mwa): its files, and an independent reading of them.

A pytest plugin (``pytest_plugins`` in conftest.py): the ``originals`` fixture reaches every test module.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.mwa_files import mwa_file

OBSID = "1369821496"


def fixture_files() -> tuple[list[Path], Path]:
    """The 24 per-coarse-channel solution files (sorted by name) and the metafits; fails when they are missing."""
    folder = mwa_file(OBSID)
    solutions = sorted(folder.glob(f"hyp_soln_{OBSID}_ch*_solutions.fits"))
    assert len(solutions) == 24, solutions
    return solutions, mwa_file(OBSID, f"{OBSID}_metafits.fits")


@pytest.fixture(scope="module")
def originals() -> dict:
    """The fixture read directly with astropy: Jones per metafits Antenna over all chanblocks, freq-sorted."""
    from astropy.io import fits

    solutions, metafits = fixture_files()
    with fits.open(metafits) as hdus:
        td = hdus["TILEDATA"].data
        antenna = np.asarray(td["Antenna"]).astype(int)
        tile = np.asarray(td["Tile"]).astype(int)
        flag = np.asarray(td["Flag"]).astype(int)
        names = [str(n).strip() for n in td["TileName"]]
        channels = sorted(int(c) for c in hdus[0].header["CHANNELS"].split(","))
    n_ant = antenna.max() + 1
    tile_of = np.zeros(n_ant, dtype=int)
    name_of = [""] * n_ant
    flagged = np.zeros(n_ant, dtype=bool)
    for a, t, f, n in zip(antenna, tile, flag, names):
        tile_of[a] = t
        name_of[a] = n
        flagged[a] |= f != 0

    jones, freqs, usable = [], [], []
    for path in solutions:
        with fits.open(path) as hdus:
            raw = np.asarray(hdus["SOLUTIONS"].data, dtype=np.float64)[0]  # (tile, chan, 8)
            ant = np.asarray(hdus["TILES"].data["Antenna"]).astype(int)
            j = np.full((n_ant, raw.shape[1], 4), np.nan, dtype=np.complex128)
            j[ant] = raw[..., 0::2] + 1j * raw[..., 1::2]
            jones.append(j)
            freqs.append(np.asarray(hdus["CHANBLOCKS"].data["Freq"], dtype=np.float64))
            ok = np.isfinite(np.asarray(hdus["RESULTS"].data, dtype=np.float64)[0])
            ok &= np.asarray(hdus["CHANBLOCKS"].data["Flag"]).astype(int) == 0
            usable.append(ok)
    freqs_all = np.concatenate(freqs)
    order = np.argsort(freqs_all)
    return {
        "jones": np.concatenate(jones, axis=1)[:, order],
        "freqs": freqs_all[order],
        "usable": np.concatenate(usable)[order],
        "tile_of": tile_of,
        "name_of": name_of,
        "flagged": flagged,
        "channels": channels,
    }
