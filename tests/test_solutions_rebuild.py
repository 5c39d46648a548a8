"""Jones rebuild from calibration_solutions fits, checked against the domain formula and real data."""

from __future__ import annotations

import cmath
import math

import numpy as np
import pytest
from astropy.io import fits

from chalicelib.solutions.rebuild import SolutionArrays, fine_channel_freqs, rebuild_jones
from tests.mwa_files import mwa_file

C = 299792458.0


def _random_rows(n_tiles: int, n_coarse: int, seed: int = 0, with_fits: bool = False) -> SolutionArrays:
    """Realistic magnitudes: delays up to a few hundred metres, amplitudes 1..2."""
    rng = np.random.default_rng(seed)
    kw = {}
    for p in "xy":
        kw[f"{p}_delay_m"] = rng.uniform(-300, 300, n_tiles)
        kw[f"{p}_intercept"] = rng.uniform(-math.pi, math.pi, n_tiles)
        kw[f"{p}_gains"] = rng.uniform(1.0, 2.0, (n_tiles, n_coarse))
        if with_fits:
            kw[f"{p}_gains_pol0"] = np.zeros((n_tiles, n_coarse))
            kw[f"{p}_gains_pol1"] = np.zeros((n_tiles, n_coarse))
    return SolutionArrays(**kw)


def _expected(rows: SolutionArrays, tile: int, k: int, nu: float) -> tuple[complex, complex]:
    """The domain.md formula for one tile, coarse channel and frequency, evaluated with plain Python."""

    def term(p: str) -> complex:
        delay = float(getattr(rows, f"{p}_delay_m")[tile])
        icpt = float(getattr(rows, f"{p}_intercept")[tile])
        gain = float(getattr(rows, f"{p}_gains")[tile][k])
        pol0 = getattr(rows, f"{p}_gains_pol0")
        pol1 = getattr(rows, f"{p}_gains_pol1")
        a = 0.0 if pol0 is None else float(pol0[tile][k])
        b = 0.0 if pol1 is None else float(pol1[tile][k])
        g = a + b * nu if (a != 0.0 or b != 0.0) else gain
        return cmath.exp(1j * (icpt - 2 * math.pi * nu * delay / C)) / g

    return term("x"), term("y")


def _assert_close(got: complex, want: complex) -> None:
    assert abs(got - want) <= 1e-12 * abs(want), (got, want)


def test_matches_formula_for_random_tiles_and_channels() -> None:
    coarse = [170, 55, 60, 133, 200, 255]  # picket fence, given unsorted; channel 255 = highest phase
    ascending = sorted(coarse)
    rows = _random_rows(40, len(coarse))
    jones = rebuild_jones(rows, coarse, 40e3)
    assert jones.shape == (40, len(coarse) * 32, 4) and jones.dtype == np.complex128

    rng = np.random.default_rng(1)
    for _ in range(300):
        t, k, i = int(rng.integers(40)), int(rng.integers(len(coarse))), int(rng.integers(32))
        nu = ascending[k] * 1.28e6 - 640e3 + i * 40e3
        jxx, jyy = _expected(rows, t, k, nu)
        got = jones[t, k * 32 + i]
        _assert_close(got[0], jxx)
        _assert_close(got[3], jyy)
        assert got[1] == 0 and got[2] == 0


def test_gain_is_one_over_amplitude_and_reference_tile_has_zero_phase() -> None:
    rows = _random_rows(3, 2)
    rows.x_delay_m[0] = rows.x_intercept[0] = 0.0  # the reference tile
    jones = rebuild_jones(rows, [100, 101], 10e3)
    assert jones.shape == (3, 256, 4)
    np.testing.assert_allclose(np.abs(jones[:, :128, 0]) * rows.x_gains[:, :1], 1.0, rtol=1e-14)
    np.testing.assert_allclose(np.abs(jones[:, 128:, 3]) * rows.y_gains[:, 1:], 1.0, rtol=1e-14)
    assert np.all(np.angle(jones[0, :, 0]) == 0.0)


def test_straight_line_gain_fit_is_used_when_present() -> None:
    rows = _random_rows(4, 3, with_fits=True)
    rows.x_gains[:] = 5.0  # would give |J| = 0.2 if (wrongly) used
    rows.x_gains_pol0[1, 0] = 1.2
    rows.x_gains_pol1[1, 0] = 2.5e-9  # amplitude rises ~0.3% across the coarse channel
    rows.x_gains_pol0[2, 2] = 1.7  # slope zero but intercept set: still the fit
    rows.y_gains_pol1[3, 1] = 1.0e-8  # intercept zero, slope set: still the fit
    coarse = [100, 120, 140]
    jones = rebuild_jones(rows, coarse, 40e3)
    for t, k in [(1, 0), (2, 2), (3, 1), (0, 0), (1, 1)]:  # the last two take x_gains
        for i in (0, 13, 31):
            nu = coarse[k] * 1.28e6 - 640e3 + i * 40e3
            jxx, jyy = _expected(rows, t, k, nu)
            _assert_close(jones[t, k * 32 + i, 0], jxx)
            _assert_close(jones[t, k * 32 + i, 3], jyy)
    nu0 = 100 * 1.28e6 - 640e3
    assert abs(jones[1, 0, 0]) == pytest.approx(1 / (1.2 + 2.5e-9 * nu0), rel=1e-14)
    assert abs(jones[0, 0, 0]) == pytest.approx(0.2, rel=1e-14)


def test_any_nan_input_flags_the_whole_jones_for_that_coarse_channel() -> None:
    rows = _random_rows(6, 4, with_fits=True)
    rows.x_delay_m[1] = np.nan  # whole tile
    rows.y_intercept[2] = np.nan  # whole tile, from the other pol
    rows.y_gains[3, 2] = np.nan  # one coarse channel
    rows.x_gains_pol1[4, 1] = np.nan  # a NaN fit coefficient
    rows.x_gains[5, 3] = 0.0  # an amplitude that cannot be inverted
    jones = rebuild_jones(rows, [60, 61, 62, 63], 80e3)  # 16 fine channels per coarse
    nan = np.isnan(jones)
    assert nan.all(axis=2).any() and not (nan.any(axis=2) & ~nan.all(axis=2)).any()  # all four or none
    flagged = nan.all(axis=2)
    expected = np.zeros((6, 64), dtype=bool)
    expected[1] = expected[2] = True
    expected[3, 32:48] = True
    expected[4, 16:32] = True
    expected[5, 48:64] = True
    np.testing.assert_array_equal(flagged, expected)
    assert np.isfinite(jones[0]).all()


def test_pol_fits_may_be_none() -> None:
    rows = _random_rows(3, 2)
    assert rows.x_gains_pol0 is None
    jones = rebuild_jones(rows, [130, 131], 40e3)
    nu = 131 * 1.28e6 - 640e3 + 7 * 40e3
    jxx, jyy = _expected(rows, 2, 1, nu)
    _assert_close(jones[2, 32 + 7, 0], jxx)
    _assert_close(jones[2, 32 + 7, 3], jyy)


def test_from_rows_stacks_database_rows() -> None:
    good = {
        "x_delay_m": 1.5, "x_intercept": 0.3, "x_gains": [1.1, 1.2], "x_gains_pol0": [], "x_gains_pol1": None,
        "y_delay_m": -2.0, "y_intercept": -0.1, "y_gains": [1.3, 1.4],
        "y_gains_pol0": [0.0, 1.0], "y_gains_pol1": [0.0, 1e-9],
    }
    flagged = {k: None for k in good}
    rows = SolutionArrays.from_rows([good, flagged], n_coarse=2)
    jones = rebuild_jones(rows, [100, 101], 40e3)
    assert np.isnan(jones[1]).all() and np.isfinite(jones[0]).all()
    nu = 101 * 1.28e6 - 640e3
    assert abs(jones[0, 32, 0]) == pytest.approx(1 / 1.2, rel=1e-14)
    assert abs(jones[0, 32, 3]) == pytest.approx(1 / (1.0 + 1e-9 * nu), rel=1e-14)
    assert abs(jones[0, 0, 3]) == pytest.approx(1 / 1.3, rel=1e-14)


def test_fine_channel_freqs_match_real_hyperdrive_chanblocks() -> None:
    header = fits.getheader(mwa_file("1369821496", "1369821496_metafits.fits"))
    channels = [int(c) for c in header["CHANNELS"].split(",")]
    real = []
    for ch in sorted(channels):
        path = mwa_file("1369821496", f"hyp_soln_1369821496_ch{ch}_solutions.fits")
        real.append(np.asarray(fits.getdata(path, "CHANBLOCKS")["Freq"], dtype=np.float64))
    np.testing.assert_array_equal(fine_channel_freqs(channels, 40e3), np.concatenate(real))


def test_fine_channel_freqs_layouts() -> None:
    np.testing.assert_array_equal(fine_channel_freqs([100], 1280e3), [128e6])  # N = 1: the coarse centre
    # odd N: symmetric about the coarse centre
    np.testing.assert_array_equal(fine_channel_freqs([100], 256e3), 128e6 + np.array([-512e3, -256e3, 0, 256e3, 512e3]))
    f10 = fine_channel_freqs([57, 56], 10e3)
    assert f10.size == 256 and f10[0] == 56 * 1.28e6 - 640e3 and f10[128] == 57 * 1.28e6 - 640e3
    assert np.all(np.diff(f10) == 10e3)
    for bad in (30e3, 0.0, -40e3, 2560e3):
        with pytest.raises(ValueError):
            fine_channel_freqs([100], bad)
    with pytest.raises(ValueError):
        fine_channel_freqs([100, 100], 40e3)


def test_real_fit_from_metafits_calibdata() -> None:
    path = mwa_file("1457904016", "1457904016_metafits.fits")
    with fits.open(path) as f:
        channels = [int(c) for c in f[0].header["CHANNELS"].split(",")]
        fine_hz = float(f[0].header["FINECHAN"]) * 1e3
        cal = f["CALIBDATA"].data
        pols = {p: cal[cal["Pol"] == p] for p in "XY"}
    per_pol = {}
    for p, rows in pols.items():
        rows = rows[np.argsort(rows["Antenna"])]
        assert rows["Antenna"].tolist() == list(range(256))
        per_pol[p] = {
            "delay_m": rows["Calib_Delay"].astype(np.float64),
            "intercept": rows["intercept"].astype(np.float64),
            "gains": rows["Calib_Gains"].astype(np.float64),
            "gains_pol0": rows["gains_pol0"].astype(np.float64),
            "gains_pol1": rows["gains_pol1"].astype(np.float64),
        }
    sa = SolutionArrays(**{f"{p.lower()}_{k}": v for p, d in per_pol.items() for k, v in d.items()})
    jones = rebuild_jones(sa, channels, fine_hz)
    n_fine = int(1.28e6 / fine_hz)
    assert jones.shape == (256, 24 * n_fine, 4)

    # NaN exactly where CALIBDATA has a NaN in either pol (per coarse channel)
    x, y = per_pol["X"], per_pol["Y"]
    bad = (
        np.isnan(x["gains"]) | np.isnan(y["gains"])
        | np.isnan(x["delay_m"])[:, None] | np.isnan(y["delay_m"])[:, None]
        | np.isnan(x["intercept"])[:, None] | np.isnan(y["intercept"])[:, None]
    )
    assert 0 < bad.all(axis=1).sum() < 256
    nan_jones = np.isnan(jones).reshape(256, 24, n_fine, 4)
    np.testing.assert_array_equal(nan_jones.all(axis=(2, 3)), bad)
    np.testing.assert_array_equal(nan_jones.any(axis=(2, 3)), bad)

    # amplitude: |J_xx| * Calib_Gains == 1 (the real fit has no pol0/pol1 line, so Calib_Gains is used)
    amp_x = np.abs(jones[..., 0]).reshape(256, 24, n_fine) * x["gains"][:, :, None]
    amp_y = np.abs(jones[..., 3]).reshape(256, 24, n_fine) * y["gains"][:, :, None]
    np.testing.assert_allclose(amp_x[~bad], 1.0, rtol=1e-13)
    np.testing.assert_allclose(amp_y[~bad], 1.0, rtol=1e-13)

    # phase: intercept - 2 pi nu delay / c, wrapped, at a few frequencies
    good_tiles = np.flatnonzero(~bad.any(axis=1))
    for k, i in [(0, 0), (11, 64), (23, n_fine - 1)]:
        nu = sorted(channels)[k] * 1.28e6 - 640e3 + i * fine_hz
        for t in good_tiles:
            for pol, col in (("X", 0), ("Y", 3)):
                d = per_pol[pol]
                want = d["intercept"][t] - 2 * math.pi * nu * d["delay_m"][t] / C
                got = cmath.phase(complex(jones[t, k * n_fine + i, col]))
                diff = (got - want + math.pi) % (2 * math.pi) - math.pi
                assert abs(diff) < 1e-9, (t, pol, k, i)
