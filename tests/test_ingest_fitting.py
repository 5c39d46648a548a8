"""Phase/gain fits of hyperdrive solutions -> calibration_solutions rows (chalicelib.ingest.fitting).

The fixture tests check the acceptance criteria on the real fit of obs 1369821496 (24 hyperdrive
files, one per coarse channel, 144 tiles). The originals they compare with are read here straight
from the FITS files with astropy, independently of the code under test; the rows are turned back
into Jones with chalicelib.solutions.rebuild.rebuild_jones (the domain.md formula).
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
import pytest

from chalicelib.ingest.fit_inputs import load_fit_inputs, receiver_channel_of
from chalicelib.ingest.fitting import FitInputs, FitOptions, fit_result, fit_solutions
from chalicelib.instrument import SPEED_OF_LIGHT
from chalicelib.records import SOLUTION_COLUMNS, SolutionRow
from chalicelib.solutions.rebuild import SolutionArrays, rebuild_jones
from tests.real_fit import fixture_files

N_COARSE = 24
ARRAYS = ["x_gains", "y_gains", "x_gains_pol0", "x_gains_pol1", "y_gains_pol0", "y_gains_pol1",
          "x_gains_sigma_resid", "y_gains_sigma_resid"]
SCALARS = [c for c in SOLUTION_COLUMNS if c != "tileid" and c not in ARRAYS]


# ------------------------------------------------------------------------------------------------
# the real fixture


@pytest.fixture(scope="module")
def fixture_fit() -> dict:
    solutions, metafits = fixture_files()
    t0 = time.perf_counter()
    inputs = load_fit_inputs(solutions, metafits)
    rows = fit_solutions(inputs)
    elapsed = time.perf_counter() - t0
    return {"inputs": inputs, "rows": rows, "elapsed": elapsed}


def _is_all_nan(row: SolutionRow) -> bool:
    scalars = [getattr(row, c) for c in SCALARS]
    arrays = [getattr(row, c) for c in ARRAYS]
    return all(v is not None and math.isnan(v) for v in scalars) and all(
        v is not None and len(v) == N_COARSE and all(math.isnan(x) for x in v) for v in arrays
    )


def _rebuilt(rows: list[SolutionRow], channels: list[int]) -> np.ndarray:
    """Jones from the rows with the domain formula (chalicelib.solutions.rebuild), (tile in row order, chan, 4)."""
    arrays = SolutionArrays.from_rows([vars(r) for r in rows], N_COARSE)
    return rebuild_jones(arrays, channels, 40_000.0)


def test_fixture_rows_flags_and_reference(fixture_fit: dict, originals: dict) -> None:
    rows = fixture_fit["rows"]
    assert len(rows) == 144
    ids = [r.tileid for r in rows]
    assert ids == sorted(ids)
    assert set(ids) == set(originals["tile_of"].tolist())

    # the metafits-flagged tiles, counted straight from TILEDATA Flag
    flagged_ids = {int(t) for t, f in zip(originals["tile_of"], originals["flagged"]) if f}
    assert len(flagged_ids) == 18
    nan_ids = {r.tileid for r in rows if _is_all_nan(r)}
    assert nan_ids == flagged_ids

    ref = rows[ids.index(11)]
    assert ref.tileid == min(set(ids) - flagged_ids) == 11
    assert ref.x_delay_m == 0.0 and ref.x_intercept == 0.0
    assert ref.y_delay_m == 0.0 and ref.y_intercept == 0.0

    for r in rows:
        if r.tileid in flagged_ids:
            continue
        for pol in "xy":
            assert math.isfinite(getattr(r, f"{pol}_delay_m"))
            assert -math.pi <= getattr(r, f"{pol}_intercept") < math.pi
            assert abs(getattr(r, f"{pol}_delay_m")) < 50  # residual cable delays: metres, not km
            assert 0.0 < getattr(r, f"{pol}_phase_fit_quality") <= 1.0
            assert 0.0 < getattr(r, f"{pol}_gains_fit_quality") <= 1.0
            assert getattr(r, f"{pol}_phase_sigma_resid") >= 0.0
            assert getattr(r, f"{pol}_phase_chi2dof") >= 0.0
            gains = np.array(getattr(r, f"{pol}_gains"))
            assert gains.shape == (N_COARSE,) and np.all(gains > 0)
            assert np.all(np.array(getattr(r, f"{pol}_gains_sigma_resid")) >= 0)


def _phase_residuals(fixture_fit: dict, originals: dict) -> dict[str, dict[int, np.ndarray]]:
    """Per pol and tile id: the wrapped phase of original/ref minus rebuilt per chanblock (NaN where unusable)."""
    rows = fixture_fit["rows"]
    rebuilt = _rebuilt(rows, originals["channels"])
    J = originals["jones"]
    tile_of = list(originals["tile_of"])
    ref_ant = tile_of.index(11)
    out: dict[str, dict[int, np.ndarray]] = {"x": {}, "y": {}}
    for pol, p in (("x", 0), ("y", 3)):
        for i, row in enumerate(rows):
            if _is_all_nan(row) or row.tileid == 11:
                continue
            ant = tile_of.index(row.tileid)
            with np.errstate(invalid="ignore"):
                divided = J[ant, :, p] * np.conj(J[ref_ant, :, p]) / np.abs(J[ref_ant, :, p])
                diff = np.angle(divided * np.conj(rebuilt[i, :, p]))
            ok = originals["usable"] & np.isfinite(divided) & np.isfinite(rebuilt[i, :, p])
            out[pol][row.tileid] = np.where(ok, diff, np.nan)
    return out


def _phase_rms(fixture_fit: dict, originals: dict) -> dict[str, dict[int, tuple[float, float]]]:
    """Per pol and tile id: (rms of rebuilt - original/ref phase, rms of the best possible straight line)."""
    freqs = np.asarray(originals["freqs"])
    out: dict[str, dict[int, tuple[float, float]]] = {"x": {}, "y": {}}
    for pol, per_tile in _phase_residuals(fixture_fit, originals).items():
        for tileid, residual in per_tile.items():
            ok = np.isfinite(residual)
            diff = residual[ok]
            ours = float(np.sqrt(np.mean(diff**2)))
            # the best any straight line can do: our line plus the least-squares line through our
            # (wrapped) residuals, i.e. the unweighted, unclipped least-squares phase line
            design = np.c_[np.ones(ok.sum()), freqs[ok] / 1e8]
            coef, *_ = np.linalg.lstsq(design, diff, rcond=None)
            out[pol][tileid] = (ours, float(np.sqrt(np.mean((diff - design @ coef) ** 2))))
    return out


def test_fixture_rebuilt_phase_matches_originals(fixture_fit: dict, originals: dict) -> None:
    """Rebuilt phases match the originals divided by the reference tile to < 0.2 rad rms wherever a line can.

    14 unflagged long-baseline tiles (LBF*/LBG*, ids 2041..2056) carry a smooth curved phase of
    up to ~2 rad relative to the core tiles (steepest at the low end of the 70-218 MHz picket
    fence): no straight line fits them better than ~0.56-0.61 rad rms, so "< 0.2 rad" cannot hold
    there for any delay + intercept row. For those the fit must be within 10 % of the best
    possible straight line (the curve itself is checked in the next test).
    """
    stats = _phase_rms(fixture_fit, originals)
    name_of = {int(t): n for t, n in zip(originals["tile_of"], originals["name_of"])}
    nonlinear: set[int] = set()
    for pol, per_tile in stats.items():
        assert len(per_tile) == 144 - 18 - 1
        for tileid, (ours, best) in per_tile.items():
            if best < 0.19:
                assert ours < 0.2, (pol, tileid, ours, best)
            else:
                nonlinear.add(tileid)
                assert ours <= 1.1 * best, (pol, tileid, ours, best)
            assert ours <= 1.15 * best + 0.01, (pol, tileid, ours, best)  # near-optimal everywhere
    assert all(name_of[t].startswith("LB") for t in nonlinear), sorted(nonlinear)
    assert len(nonlinear) == 14


def test_long_baseline_tiles_share_one_curve_the_rows_cannot_hold(fixture_fit: dict, originals: dict) -> None:
    """What the rows miss on the long-baseline tiles is one curve common to all 14 of them.

    LBF* and LBG* sit on opposite sides of the array, yet their residuals (original/ref minus
    rebuilt) follow the same curve to < 0.2 rad rms: a shared response of those tiles' signal
    path relative to the core, not per-tile noise or a per-tile fitting error. Each tile's own
    line (delay, intercept) is right; the curve is beyond what a calibration_solutions row holds.
    """
    residuals = _phase_residuals(fixture_fit, originals)
    name_of = {int(t): n for t, n in zip(originals["tile_of"], originals["name_of"])}
    long_baseline = sorted(t for t in residuals["x"] if name_of[t].startswith("LB"))
    assert len(long_baseline) == 14
    for pol, per_tile in residuals.items():
        curves = np.array([per_tile[t] for t in long_baseline])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # chanblocks unusable on every tile
            common = np.nanmean(curves, axis=0)
        assert np.sqrt(np.nanmean(common**2)) > 0.4, pol  # the curve is real and large
        channels = np.asarray(originals["freqs"]) < 90e6
        assert np.nanmean(np.abs(common[channels])) > 0.8, pol  # steepest at the low end
        for t, curve in zip(long_baseline, curves):
            rms = float(np.sqrt(np.nanmean(np.angle(np.exp(1j * (curve - common))) ** 2)))
            assert rms < 0.2, (pol, name_of[t], rms)


def test_fixture_gains_times_amplitude_is_one(fixture_fit: dict, originals: dict) -> None:
    rows = fixture_fit["rows"]
    J = originals["jones"]
    tile_of = list(originals["tile_of"])
    k = np.searchsorted(originals["channels"], receiver_channel_of(originals["freqs"]))
    for pol, p in (("x", 0), ("y", 3)):
        products, line_products = [], []
        for row in rows:
            if _is_all_nan(row):
                continue
            amp = np.abs(J[tile_of.index(row.tileid), :, p])
            ok = originals["usable"] & np.isfinite(amp)
            gains = np.array(getattr(row, f"{pol}_gains"))[k]
            line = (np.array(getattr(row, f"{pol}_gains_pol0"))[k]
                    + np.array(getattr(row, f"{pol}_gains_pol1"))[k] * originals["freqs"])
            products.append((amp * gains)[ok])
            line_products.append((amp * line)[ok])
        median = float(np.median(np.concatenate(products)))
        assert abs(median - 1.0) < 0.01, (pol, median)
        assert abs(float(np.median(np.concatenate(line_products))) - 1.0) < 0.01


# ------------------------------------------------------------------------------------------------
# synthetic solutions with known answers


def _synthetic(seed: int = 1) -> tuple[FitInputs, dict]:
    rng = np.random.default_rng(seed)
    channels = np.arange(55, 171, 5)  # the fixture's picket fence
    nu = (channels[:, None] * 1.28e6 - 640e3 + np.arange(32)[None, :] * 40e3).reshape(-1)
    k = np.repeat(np.arange(24), 32)
    tile_ids = np.array([101, 5, 37, 2001, 12, 64, 77])
    flagged = np.array([False, True, False, False, False, False, False])  # tile 5: lowest, but flagged
    n_t, n_c = len(tile_ids), len(nu)
    delay = {"x": np.array([12.345, 3.0, -173.21, 48.0, 1.5, 0.0, 250.75]),
             "y": np.array([-7.5, 3.0, 95.125, -0.25, -2.5, 33.3, 0.6])}
    intercept = {"x": rng.uniform(-np.pi, np.pi, n_t), "y": rng.uniform(-np.pi, np.pi, n_t)}
    centre = channels * 1.28e6
    g0 = {p: rng.uniform(0.5, 2.0, (n_t, 24)) for p in "xy"}
    g1 = {p: rng.uniform(-2e-7, 2e-7, (n_t, 24)) for p in "xy"}  # per Hz, ~ +-13 % across a channel
    jones = np.zeros((n_t, n_c, 4), dtype=np.complex128)
    for pol, p in (("x", 0), ("y", 3)):
        phi = intercept[pol][:, None] - 2 * np.pi * nu[None, :] * delay[pol][:, None] / SPEED_OF_LIGHT
        gain = g0[pol][:, k] + g1[pol][:, k] * (nu - centre[k])[None, :]  # 1/|J|
        jones[:, :, p] = np.exp(1j * (phi + rng.normal(0, 0.002, phi.shape))) / gain
        jones[:, :, p] *= 1 + rng.normal(0, 0.002, phi.shape)
    jones[:, :, 1:3] = 0.01 * (rng.normal(size=(n_t, n_c, 2)) + 1j * rng.normal(size=(n_t, n_c, 2)))
    # outliers: random phase and 3x amplitude in 12 chanblocks per tile and pol
    outliers = np.zeros((n_t, n_c, 4), dtype=bool)
    for t in range(n_t):
        for p in (0, 3):
            bad = rng.choice(n_c, 12, replace=False)
            outliers[t, bad, p] = True
            jones[t, bad, p] = 3 * np.exp(1j * rng.uniform(-np.pi, np.pi, 12)) * np.abs(jones[t, bad, p])
    jones[2, 100:110] = np.nan  # a hole in one tile
    weights = np.ones(n_c)
    edges = np.isin(np.arange(n_c) % 32, [0, 1, 30, 31])
    weights[edges] = 0.0  # hyperdrive RESULTS NaN at the coarse-channel edges
    jones[:, edges, 0] *= np.exp(1j * 2.0)  # garbage there must be ignored
    inputs = FitInputs(jones=jones, freqs_hz=nu, coarse_index=k, weights=weights, tile_ids=tile_ids,
                       tile_flagged=flagged, n_coarse=24)
    truth = {"delay": delay, "intercept": intercept, "g0": g0, "g1": g1, "centre": centre, "ref": 4,
             "outliers": outliers}
    return inputs, truth


def _wrap(a: np.ndarray) -> np.ndarray:
    return np.mod(a + np.pi, 2 * np.pi) - np.pi


def test_synthetic_recovers_delays_intercepts_and_gains() -> None:
    inputs, truth = _synthetic()
    res = fit_result(inputs)
    rows = res.rows()
    assert [r.tileid for r in rows] == sorted(inputs.tile_ids.tolist())
    assert res.reference_tile_id == 12  # tile 5 is lower but flagged
    order = np.argsort(inputs.tile_ids)
    ref = truth["ref"]
    for pol in "xy":
        fit = getattr(res, pol)
        for row_i, t in enumerate(order):
            row = rows[row_i]
            if inputs.tile_flagged[t]:
                assert _is_all_nan(row)
                continue
            want_delay = truth["delay"][pol][t] - truth["delay"][pol][ref]
            want_icpt = _wrap(truth["intercept"][pol][t] - truth["intercept"][pol][ref])
            got_delay = getattr(row, f"{pol}_delay_m")
            got_icpt = getattr(row, f"{pol}_intercept")
            assert abs(got_delay - want_delay) < 1e-3, (pol, inputs.tile_ids[t], got_delay, want_delay)
            assert abs(_wrap(np.array(got_icpt - want_icpt))) < 1e-3, (pol, inputs.tile_ids[t])
            # 12 outliers of ~ 700 chanblocks (+ the reference's 12) are clipped, nothing else; the
            # reference's own phase is exactly 0 everywhere, so all its chanblocks fit
            quality = getattr(row, f"{pol}_phase_fit_quality")
            assert quality == 1.0 if t == ref else 0.95 < quality < 1.0
            assert getattr(row, f"{pol}_phase_sigma_resid") < 0.01
            # gains: the channel mean of 1/|J| and the line through it
            p = 0 if pol == "x" else 3
            used = (inputs.weights[t] > 0) & np.isfinite(inputs.jones[t, :, p]) & ~truth["outliers"][t, :, p]
            used_mean = np.array([
                np.mean(truth["g0"][pol][t, kk] + truth["g1"][pol][t, kk]
                        * (inputs.freqs_hz[(inputs.coarse_index == kk) & used] - truth["centre"][kk]))
                for kk in range(24)
            ])
            np.testing.assert_allclose(getattr(row, f"{pol}_gains"), used_mean, rtol=3e-3)
            pol0 = np.array(getattr(row, f"{pol}_gains_pol0"))
            pol1 = np.array(getattr(row, f"{pol}_gains_pol1"))
            np.testing.assert_allclose(pol0 + pol1 * truth["centre"], truth["g0"][pol][t], rtol=5e-3)
            np.testing.assert_allclose(pol1, truth["g1"][pol][t], atol=1.5e-8)  # noise: ~3e-9 per Hz
            assert getattr(row, f"{pol}_gains_fit_quality") == 1.0
        assert np.all(fit.delay_m[res.tile_ids == 12] == 0.0)
        assert np.all(fit.intercept[res.tile_ids == 12] == 0.0)


def test_synthetic_rows_rebuild_to_the_input_jones() -> None:
    inputs, _ = _synthetic(seed=2)
    rows = fit_solutions(inputs)
    channels = list(range(55, 171, 5))
    rebuilt = _rebuilt(rows, channels)
    order = np.argsort(inputs.tile_ids)
    ref = int(np.flatnonzero(inputs.tile_ids == 12)[0])
    for i, t in enumerate(order):
        if inputs.tile_flagged[t]:
            assert np.isnan(rebuilt[i]).all()
            continue
        for p in (0, 3):
            divided = inputs.jones[t, :, p] * np.conj(inputs.jones[ref, :, p]) / np.abs(inputs.jones[ref, :, p])
            ok = (inputs.weights[t] > 0) & np.isfinite(divided)
            diff = np.angle(divided[ok] * np.conj(rebuilt[i, ok, p]))
            assert np.median(np.abs(diff)) < 0.01
            assert np.median(np.abs(inputs.jones[t, ok, p]) / np.abs(rebuilt[i, ok, p])) == pytest.approx(1, abs=0.01)


def test_tile_without_usable_solutions_gets_nan_row_and_is_not_reference() -> None:
    inputs, _ = _synthetic(seed=3)
    inputs.jones[4] = np.nan  # tile 12, would-be reference
    res = fit_result(inputs)
    assert res.reference_tile_id == 37
    rows = {r.tileid: r for r in res.rows()}
    assert _is_all_nan(rows[12]) and _is_all_nan(rows[5])
    assert rows[37].x_delay_m == 0.0 and rows[37].y_intercept == 0.0
    assert sum(_is_all_nan(r) for r in rows.values()) == 2


def test_options_no_gain_clipping_still_fits() -> None:
    inputs, truth = _synthetic(seed=4)
    res = fit_result(inputs, FitOptions(gain_clip_sigma=None))
    # without clipping the 3x outliers (1/|J| / 3) pull a channel's mean down by a few per cent at most
    assert np.all(np.isfinite(res.x.gains[~res.flagged]))
    assert res.x.delay_m[res.tile_ids == 101][0] == pytest.approx(12.345 - 1.5, abs=1e-3)
