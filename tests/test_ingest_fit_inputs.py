"""Reading a fit's hyperdrive files and metafits into FitInputs (chalicelib.ingest.fit_inputs).

The real fit of obs 1369821496 is read through the CalibrationSolution-returning hyperdrive
reader and compared with an independent astropy reading (tests.real_fit). A metafits of another
array layout (two TileNames swapped) must be refused, naming the Antenna, never fitted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from chalicelib.ingest.fit_inputs import load_fit_inputs, receiver_channel_of, weights_from_results
from tests.real_fit import OBSID, fixture_files


@pytest.fixture(scope="module")
def loaded():
    solutions, metafits = fixture_files()
    return load_fit_inputs(solutions, metafits)


def test_the_real_files_give_the_originals_per_metafits_antenna(loaded, originals: dict) -> None:
    np.testing.assert_array_equal(loaded.jones, originals["jones"])  # every value and NaN
    np.testing.assert_array_equal(loaded.freqs_hz, originals["freqs"])
    np.testing.assert_array_equal(loaded.tile_ids, originals["tile_of"])
    np.testing.assert_array_equal(loaded.tile_flagged, originals["flagged"])  # the files flag no tile themselves
    np.testing.assert_array_equal(loaded.weights[0] > 0, originals["usable"])
    assert loaded.hyperdrive_header["MAXITER"] == 50 and "_ch55." in loaded.hyperdrive_header["CMDLINE"]


def test_load_any_file_order_and_bytes(loaded) -> None:
    solutions, metafits = fixture_files()
    shuffled = list(reversed(solutions))
    inputs = load_fit_inputs([p.read_bytes() for p in shuffled], metafits.read_bytes())
    ref = loaded
    assert inputs.coarse_channels == list(range(55, 171, 5))
    assert inputs.n_coarse == 24 and inputs.obsid == int(OBSID)
    np.testing.assert_array_equal(inputs.freqs_hz, ref.freqs_hz)
    np.testing.assert_array_equal(inputs.coarse_index, np.repeat(np.arange(24), 32))
    np.testing.assert_array_equal(inputs.jones, ref.jones)
    assert inputs.weights[0].sum() == 24 * 28  # RESULTS NaN for the 2 edge chanblocks each side


def test_weights_from_results() -> None:
    res = np.array([[np.nan, 1e-9, 2e-6, np.nan]])
    np.testing.assert_array_equal(weights_from_results(res), [0, 1, 1, 0])
    np.testing.assert_array_equal(weights_from_results(res[0], np.array([0, 1, 0, 0])), [0, 0, 1, 0])
    np.testing.assert_array_equal(weights_from_results(None, n_chanblocks=3), [1, 1, 1])
    two_timeblocks = np.array([[np.nan, 1e-9], [np.nan, np.nan]])
    np.testing.assert_array_equal(weights_from_results(two_timeblocks), [0, 1])


def test_receiver_channel_of_fine_channels() -> None:
    nu = np.array([69.76e6, 70.4e6, 71.0e6, 71.04e6, 217.6e6 + 600e3])
    np.testing.assert_array_equal(receiver_channel_of(nu), [55, 55, 55, 56, 170])


# ------------------------------------------------------------------------------------------------
# a metafits of another array layout


def swapped_metafits(tmp_path: Path, a: int = 3, b: int = 7) -> tuple[Path, str, str]:
    """The fixture's metafits with the TileNames of Antennas a and b swapped (both pols); returns it and the names."""
    _, metafits = fixture_files()
    with fits.open(metafits) as hdus:
        td = hdus["TILEDATA"].data
        antenna = np.asarray(td["Antenna"]).astype(int)
        name_a, name_b = str(td["TileName"][antenna == a][0]), str(td["TileName"][antenna == b][0])
        td["TileName"][antenna == a] = name_b
        td["TileName"][antenna == b] = name_a
        out = tmp_path / f"{OBSID}_metafits.fits"
        hdus.writeto(out)
    return out, name_a, name_b


def test_a_metafits_of_another_layout_is_refused_naming_the_first_antenna(tmp_path: Path) -> None:
    metafits, name_3, name_7 = swapped_metafits(tmp_path)
    assert name_3 != name_7
    solutions, _ = fixture_files()
    with pytest.raises(ValueError) as refused:
        load_fit_inputs(solutions, metafits)
    message = str(refused.value)
    assert f"Antenna 3 is {name_3!r} in the solutions but {name_7!r} in the metafits" in message, message
    assert "Antenna 7" not in message  # the first mismatch only
    assert solutions[0].name in message  # which file


def test_the_landing_fails_such_a_fit_and_writes_nothing(tmp_path, clean_db, aws, callback_env, receiver) -> None:
    from tests.test_ingest_landing import CAL, _failure, _land_manifest, _manifest, _nothing_written, _request, _upload

    metafits, name_3, name_7 = swapped_metafits(tmp_path)
    solutions, _ = fixture_files()
    _request(receiver.url)
    files = {p.name: p.read_bytes() for p in solutions[:2]}
    files[f"{CAL}_metafits.fits"] = metafits.read_bytes()
    _upload(aws, files)
    [report] = _land_manifest(aws, _manifest([p.name for p in solutions[:2]]))
    assert report["success"] is False and report["ingest"]["written"] is False
    message = _failure(receiver)["message"]
    assert f"Antenna 3 is {name_3!r} in the solutions but {name_7!r} in the metafits" in message, message
    _nothing_written()
