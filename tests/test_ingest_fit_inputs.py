"""Reading a fit's hyperdrive files and metafits into FitInputs (chalicelib.ingest.fit_inputs).

The real fit of obs 1369821496 is read through the CalibrationSolution-returning hyperdrive
reader and compared with an independent astropy reading (tests.real_fit).
"""

from __future__ import annotations

import numpy as np
import pytest

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
