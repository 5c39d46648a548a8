"""Interpolating a solution in time between the calibrators before and after the target, checked by the formulas."""

from __future__ import annotations

import cmath
import math
from datetime import datetime, timezone

import numpy as np
import pytest

from chalicelib.solutions.rebuild import SolutionArrays, rebuild_jones
from chalicelib.selection.gates import FitQuality, GateInput
from chalicelib.selection.rules import Calibrator, Criteria, FitInfo, Target, select
from chalicelib.selection.sides import choose_sides
from chalicelib.solutions.interpolate import (combine_jones, cut_channels, interpolate_rows, reference_phase,
                                              shared_reference, weight)

C = 299792458.0
NAN = math.nan


def row(tileid: int, xd: float, xi: float, yd: float, yi: float, xg, yg, x_pol0=None, x_pol1=None) -> dict:
    return {"tileid": tileid, "x_delay_m": xd, "x_intercept": xi, "y_delay_m": yd, "y_intercept": yi,
            "x_gains": np.asarray(xg, dtype=float), "y_gains": np.asarray(yg, dtype=float),
            "x_gains_pol0": None if x_pol0 is None else np.asarray(x_pol0, dtype=float),
            "x_gains_pol1": None if x_pol1 is None else np.asarray(x_pol1, dtype=float),
            "y_gains_pol0": None, "y_gains_pol1": None}


def by_tile(rows):
    return {r["tileid"]: r for r in rows}


def mix_phase(w: float, a: float, b: float) -> float:
    """arg(w e^{ia} + (1 - w) e^{ib}), written out independently."""
    return cmath.phase(w * cmath.exp(1j * a) + (1 - w) * cmath.exp(1j * b))


def test_weights_at_both_ends_and_the_middle():
    assert weight(1000, 1000 - 1, 1000 + 999) == pytest.approx(999 / 1000, abs=1e-15)
    assert weight(1999, 1000, 2000) == pytest.approx(1 / 1000, abs=1e-15)
    assert weight(1500, 1000, 2000) == 0.5
    for t in (1000, 2000, 2500):
        with pytest.raises(ValueError):
            weight(t, 1000, 2000)


# the reference tile 11 is 0 on both sides, as every stored fit has it
BEFORE = [row(11, 0, 0, 0, 0, [1.0, 2.0], [3.0, 4.0]),
          row(12, 10.0, 0.5, -4.0, 1.0, [1.1, 2.2], [0.5, 0.6]),
          row(13, 2.0, 3.1, 1.0, -1.0, [1.0, 1.0], [1.0, 1.0])]
AFTER = [row(11, 0, 0, 0, 0, [2.0, 4.0], [1.0, 2.0]),
         row(12, 12.0, -0.5, -2.0, 1.5, [1.3, 2.6], [0.7, 0.8]),
         row(13, 4.0, -3.1, 3.0, -1.2, [3.0, 5.0], [1.0, 1.0]),
         row(14, 7.0, 0.25, 8.0, -0.25, [9.0, 9.5], [8.0, 8.5])]


@pytest.mark.parametrize("w", [1.0, 0.75, 0.5, 0.001, 0.0])
def test_rows_follow_the_interpolation_formulas(w):
    out = by_tile(interpolate_rows(BEFORE, AFTER, w))
    assert sorted(out) == [11, 12, 13, 14]
    b, a = by_tile(BEFORE)[12], by_tile(AFTER)[12]
    r = out[12]
    assert r["x_delay_m"] == pytest.approx(w * 10.0 + (1 - w) * 12.0, abs=1e-12)
    assert r["y_delay_m"] == pytest.approx(w * -4.0 + (1 - w) * -2.0, abs=1e-12)
    assert r["x_intercept"] == pytest.approx(mix_phase(w, 0.5, -0.5), abs=1e-12)
    assert r["y_intercept"] == pytest.approx(mix_phase(w, 1.0, 1.5), abs=1e-12)
    np.testing.assert_allclose(r["x_gains"], w * b["x_gains"] + (1 - w) * a["x_gains"], rtol=1e-14)
    np.testing.assert_allclose(r["y_gains"], w * b["y_gains"] + (1 - w) * a["y_gains"], rtol=1e-14)
    np.testing.assert_array_equal(r["x_gains_pol0"], [0.0, 0.0])  # neither side has a line: still "no fit"


def test_the_ends_reproduce_each_side():
    for w, side in ((1.0, BEFORE), (0.0, AFTER)):
        out = by_tile(interpolate_rows(BEFORE, AFTER, w))
        for t in (11, 12):
            s = by_tile(side)[t]
            for c in ("x_delay_m", "y_delay_m"):
                assert out[t][c] == pytest.approx(s[c], abs=1e-12)
            for c in ("x_intercept", "y_intercept"):
                assert out[t][c] == pytest.approx(s[c], abs=1e-12)
            np.testing.assert_allclose(out[t]["x_gains"], s["x_gains"], rtol=1e-15)


def test_intercepts_either_side_of_pi_average_to_pi_not_zero():
    out = by_tile(interpolate_rows(BEFORE, AFTER, 0.5))[13]
    assert abs(out["x_intercept"]) == pytest.approx(math.pi, abs=1e-12)
    assert -math.pi <= out["x_intercept"] < math.pi  # the stored convention, [-pi, pi)
    assert out["y_intercept"] == pytest.approx(-1.1, abs=1e-12)


def test_a_tile_missing_on_one_side_takes_the_others_and_on_neither_is_nan():
    before = BEFORE + [row(15, 1.0, 0.1, 1.0, 0.1, [1, 1], [1, 1]),
                       row(16, NAN, NAN, NAN, NAN, [NAN, NAN], [NAN, NAN])]
    after = AFTER + [row(15, NAN, NAN, NAN, NAN, [NAN, NAN], [NAN, NAN]),
                     row(16, NAN, NAN, NAN, NAN, [NAN, NAN], [NAN, NAN])]
    out = by_tile(interpolate_rows(before, after, 0.3))
    only_after, a = out[14], by_tile(AFTER)[14]  # not in the fit before
    assert (only_after["x_delay_m"], only_after["x_intercept"], only_after["y_delay_m"]) == (7.0, 0.25, 8.0)
    np.testing.assert_array_equal(only_after["x_gains"], a["x_gains"])
    only_before = out[15]  # NaN in the fit after
    assert (only_before["x_delay_m"], only_before["y_intercept"]) == (1.0, 0.1)
    np.testing.assert_array_equal(only_before["y_gains"], [1.0, 1.0])
    neither = out[16]
    assert all(math.isnan(neither[c]) for c in ("x_delay_m", "x_intercept", "y_delay_m", "y_intercept"))
    assert np.isnan(neither["x_gains"]).all()


def test_a_channel_without_amplitude_on_one_side_takes_the_others():
    before = [row(11, 0, 0, 0, 0, [NAN, 2.0], [3.0, 4.0])]
    after = [row(11, 0, 0, 0, 0, [5.0, 6.0], [1.0, NAN])]
    r = interpolate_rows(before, after, 0.25)[0]
    np.testing.assert_allclose(r["x_gains"], [5.0, 0.25 * 2.0 + 0.75 * 6.0], rtol=1e-15)
    np.testing.assert_allclose(r["y_gains"], [0.25 * 3.0 + 0.75 * 1.0, 4.0], rtol=1e-15)


def test_a_line_on_one_side_meets_the_flat_gain_of_the_other():
    """The interpolated amplitude is w G_b(nu) + (1 - w) G_a(nu) at every frequency, as rebuilt into Jones."""
    w, nu = 0.4, 110 * 1.28e6 - 640e3  # first fine channel of coarse channel 110 at 40 kHz
    before = [row(11, 0, 0, 0, 0, [1.5, 2.5], [1.0, 1.0], x_pol0=[1.4, 2.0], x_pol1=[1e-9, 3e-9])]
    after = [row(11, 0, 0, 0, 0, [3.0, 4.0], [1.0, 1.0])]  # old row: no line (None -> zeros)
    rows = interpolate_rows(before, after, w)
    g_expected = w * (2.0 + 3e-9 * nu) + (1 - w) * 4.0
    jones = rebuild_jones(SolutionArrays.from_rows(rows, 2), [109, 110], 40e3)
    assert abs(jones[0, 32, 0]) == pytest.approx(1 / g_expected, rel=1e-12)


def test_different_reference_tiles_are_brought_to_a_common_one():
    """Before refers to tile 11, after to tile 12 (11 failed there): both are referred to 12 first."""
    w = 0.5
    before = [row(11, 0, 0, 0, 0, [1, 1], [1, 1]), row(12, 1.0, 0.2, 0.0, 0.0, [1, 1], [1, 1]),
              row(13, 2.0, 0.5, 0.0, 0.0, [1, 1], [1, 1])]
    after = [row(11, NAN, NAN, NAN, NAN, [NAN, NAN], [NAN, NAN]), row(12, 0, 0, 0, 0, [1, 1], [1, 1]),
             row(13, 1.5, 0.1, 0.0, 0.0, [1, 1], [1, 1])]
    out = by_tile(interpolate_rows(before, after, w))
    assert out[12]["x_delay_m"] == 0.0 and out[12]["x_intercept"] == 0.0
    assert out[13]["x_delay_m"] == pytest.approx(w * (2.0 - 1.0) + (1 - w) * 1.5, abs=1e-12)
    assert out[13]["x_intercept"] == pytest.approx(mix_phase(w, 0.5 - 0.2, 0.1), abs=1e-12)
    assert (out[11]["x_delay_m"], out[11]["x_intercept"]) == pytest.approx((-1.0, -0.2), abs=1e-12)
    # phase differences between tiles are what the rebuilt Jones carry: tile 13 - tile 11 on the before side
    nu = 120 * 1.28e6
    phase = [i - 2 * math.pi * nu * d / C for d, i in ((out[t]["x_delay_m"], out[t]["x_intercept"]) for t in (11, 12))]
    assert cmath.phase(cmath.exp(1j * (phase[1] - phase[0]))) == pytest.approx(
        cmath.phase(cmath.exp(1j * (0.2 - 2 * math.pi * nu * 1.0 / C))), abs=1e-9)


def test_cut_channels_keeps_the_targets_channels_in_order():
    r = row(11, 0, 0, 0, 0, [1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0], x_pol0=[])
    out = cut_channels([r], [70, 50, 60, 80], [80, 60])
    np.testing.assert_array_equal(out[0]["x_gains"], [2.0, 4.0])  # channels 60 and 80 of 50, 60, 70, 80
    np.testing.assert_array_equal(out[0]["y_gains"], [6.0, 8.0])
    assert len(out[0]["x_gains_pol0"]) == 0 and out[0]["y_gains_pol0"] is None
    with pytest.raises(ValueError):
        cut_channels([r], [50, 60, 70, 80], [90])
    with pytest.raises(ValueError):
        cut_channels([r], [50, 60, 70], [60])  # gains that do not match the calibrator's channels


# ---- Jones from files

def test_jones_are_referred_to_each_sides_own_reference_then_mixed():
    rng = np.random.default_rng(3)
    shape = (3, 4, 4)  # tile, channel, XX XY YX YY
    jb = rng.normal(size=shape) + 1j * rng.normal(size=shape)
    ja = rng.normal(size=shape) + 1j * rng.normal(size=shape)
    jb[2, 1] = NAN  # tile 2 channel 1 missing before
    ja[2, 1] = NAN  # ... and after
    ja[1, 3, 2] = NAN  # tile 1 channel 3 missing after only
    w, ref_b, ref_a = 0.3, 0, 1
    out = combine_jones(jb, ja, w, ref_b, ref_a)

    def referred(j, ref, t, ch, p):
        col = 0 if p in (0, 2) else 3  # XX, YX follow the reference's XX phase; XY, YY its YY phase
        u = j[ref, ch, col] / abs(j[ref, ch, col])
        return j[t, ch, p] * u.conjugate()

    for t in range(3):
        for ch in range(4):
            for p in range(4):
                if (t, ch) == (2, 1):
                    assert cmath.isnan(out[t, ch, p])
                elif (t, ch) == (1, 3):
                    assert out[t, ch, p] == pytest.approx(referred(jb, ref_b, t, ch, p), rel=1e-12)
                else:
                    expected = w * referred(jb, ref_b, t, ch, p) + (1 - w) * referred(ja, ref_a, t, ch, p)
                    assert out[t, ch, p] == pytest.approx(expected, rel=1e-12, abs=1e-15)
    # the reference tile itself becomes real and positive on its diagonal
    r = reference_phase(jb, 0)
    np.testing.assert_allclose(r[0, :, 0].imag, 0, atol=1e-15)
    assert (r[0, :, 0].real > 0).all() and (r[0, :, 3].real > 0).all()


def test_one_reference_tile_for_both_sides_the_fits_own_when_it_serves_both():
    ones = np.ones((4, 3, 4), dtype=complex)  # tiles with ids 30, 20, 40, 10 (Antenna order), 3 channels
    ids = [30, 20, 40, 10]
    b, a = ones.copy(), ones.copy()
    b[:, 2] = NAN  # channel 2 flagged before: no tile has it on both sides, so it does not count
    assert shared_reference(b, a, ids, [20, 30]) == (1, 1)  # the fit before's own reference
    a[1, 0, 3] = 0  # tile 20 has no YY phase after in channel 0: the fit after's reference is next
    assert shared_reference(b, a, ids, [20, 30]) == (0, 0)
    a[0, 1] = NAN  # neither serves every channel: the tile usable on both in the most, lowest id first
    assert shared_reference(b, a, ids, [20, 30]) == (3, 3)
    assert shared_reference(b, a, ids, [None, 99]) == (3, 3)  # unknown references: the same rule
    only_b, only_a = ones.copy(), ones.copy()
    only_b[[0, 3]] = NAN
    only_a[[1, 2]] = NAN  # no tile on both sides: each side its own most usable, lowest id first
    assert shared_reference(only_b, only_a, ids, [20]) == (1, 3)


# ---- choosing the two sides

CH = tuple(range(109, 133))
T = Target(obsid=1_400_000_000, channels=CH, gain_control_value=1.0)


def cal(offset: int, *fitids: int) -> Calibrator:
    fits = tuple(FitInfo(fitid=f, fit_time=datetime.fromtimestamp(1_700_000_000 + f, tz=timezone.utc),
                         creator="calvin", any_good_tile=True) for f in fitids)
    return Calibrator(obsid=T.obsid + offset, stoptime=T.obsid + offset + 120, channels=CH, gain_control_value=1.0,
                      fits=fits)


def sides_of(cals, crit=Criteria(), gates=None):
    s = choose_sides(T, select(T, cals, crit, gates).candidates)
    if s is None:
        return None
    return (s.before.calibrator.obsid - T.obsid, s.before.fit.fitid, s.after.calibrator.obsid - T.obsid,
            s.after.fit.fitid, s.weight)


def test_the_nearest_calibrator_each_side_with_its_best_fit():
    cals = [cal(-3000, 1), cal(-1000, 2, 3), cal(500, 4), cal(4000, 5)]
    assert sides_of(cals) == (-1000, 3, 500, 4, 500 / 1500)


def test_calibrators_on_one_side_only_give_the_normal_answer():
    assert sides_of([cal(-3000, 1), cal(-1000, 2)]) is None
    assert sides_of([cal(300, 1), cal(900, 2)]) is None
    assert sides_of([cal(-1000, 1), cal(500, 2)], Criteria(allow_after=False)) is None
    assert sides_of([cal(0, 1), cal(-1000, 2), cal(500, 3)]) is None  # a calibrator at the target's start


def test_a_gated_calibrator_is_skipped_for_the_next_qualifying_one():
    cals = [cal(-3000, 1), cal(-1000, 2), cal(500, 3)]
    good = {t: True for t in range(11, 15)}

    def fq(fitid, c, solved):
        ids = sorted(solved)
        return FitQuality(fitid, c.obsid, tuple(ids), tuple(solved[t] for t in ids), (1.0,) * len(ids),
                          (1.0,) * len(ids))

    gates = GateInput(tile_ids=(11, 12, 13, 14), fits={
        (1, cals[0].obsid): fq(1, cals[0], good), (2, cals[1].obsid): fq(2, cals[1], {11: True}),
        (3, cals[2].obsid): fq(3, cals[2], good)})
    assert sides_of(cals, Criteria(min_tile_fraction=1.0), gates) == (-3000, 1, 500, 3, 500 / 3500)


# ---- rows as the database returns them, through to the zip's Jones

def test_database_rows_interpolate_into_the_solution_zips_jones(clean_db):
    from chalicelib.db import selection as queries
    from chalicelib.solutions.rebuild import assemble
    from tests.factories import fit as fit_row
    from tests.factories import observation, seed, solution_rows, tiles

    cal_b, cal_a = 1_300_000_000, 1_300_004_000
    ids = [11, 12, 13, 14]
    seed([observation(cal_b, calibration=True, tiles=tiles(ids)),
          observation(cal_a, calibration=True, tiles=tiles(ids), channels=range(115, 139))],
         [(fit_row(1_700_000_000_000_001, cal_b), solution_rows(ids, nan_tiles=(13,), pols_and_quality=True)),
          (fit_row(1_700_000_000_000_002, cal_a), solution_rows(ids, delay_scale=3.0, nan_tiles=(14,)))])
    target_channels = list(range(120, 133))  # both cover them, at different gains columns
    before = cut_channels(queries.solution_rows(1_700_000_000_000_001, cal_b), range(109, 133), target_channels)
    after = cut_channels(queries.solution_rows(1_700_000_000_000_002, cal_a), range(115, 139), target_channels)
    w = 0.25
    rows = interpolate_rows(before, after, w)
    sol = assemble(rows, target_channels, tiles(ids), target_channels, 40e3, (0.0, 1.0), cal_b, 0)
    jones = sol.jones[0]
    assert not np.isnan(jones[[0, 1, 2, 3]]).any()  # 13 comes from after alone, 14 from before alone
    # tile 12 (k = 1): X delay 0.5 before, 1.5 after; intercept 0.1 both; X gain 1.01 + 0.01 c per channel c,
    # the line pol0 = 1, pol1 = 1e-10 c before and flat after
    nu = 120 * 1.28e6 - 640e3  # first fine channel of channel 120: column 11 before, 5 after
    phi = 0.1 - 2 * math.pi * nu * (w * 0.5 + (1 - w) * 1.5) / C
    g = w * (1.0 + 1e-10 * 11 * nu) + (1 - w) * (1.0 + 0.01 * 5)
    assert jones[1, 0, 0] == pytest.approx(cmath.exp(1j * phi) / g, rel=1e-9)
