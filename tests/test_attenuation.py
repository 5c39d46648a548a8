"""Attenuation-corrected transfer: one real factor 10^(dA/20) on every Jones, and the selection rules that allow it."""

from __future__ import annotations

import cmath
import math
from datetime import datetime, timezone

import numpy as np
import pytest

from chalicelib.solutions.rebuild import SolutionArrays, rebuild_jones
from chalicelib.selection.rules import Calibrator, Criteria, FitInfo, Target, select
from chalicelib.solutions.attenuation import attenuation_factor, correct_jones, correct_rows

CH = tuple(range(109, 133))


def some_jones() -> np.ndarray:
    """Jones (tile, channel, 4) of varied amplitude and phase, one tile NaN."""
    rng = np.random.default_rng(7)
    j = (rng.uniform(0.2, 3.0, (5, 64, 4)) * np.exp(1j * rng.uniform(-math.pi, math.pi, (5, 64, 4))))
    j[2] = complex(math.nan, math.nan)
    return j


def test_equal_attenuation_returns_the_same_array_untouched():
    j = some_jones()
    before = j.tobytes()
    out = correct_jones(j, 1.0, 1.0)
    assert out is j and out.tobytes() == before


def test_a_1_db_calibrator_for_a_9_db_target_scales_every_jones_by_2_512_phases_unchanged():
    j = some_jones()
    out = correct_jones(j, 9.0, 1.0)
    factor = 10 ** (8 / 20)
    assert factor == pytest.approx(2.512, abs=5e-4)
    ok = np.isfinite(j)
    np.testing.assert_allclose(np.abs(out[ok]), np.abs(j[ok]) * factor, rtol=1e-12, atol=0)
    np.testing.assert_allclose(np.angle(out[ok]), np.angle(j[ok]), rtol=0, atol=1e-12)
    assert np.isnan(out[2]).all()
    # the other way round divides by the same factor
    np.testing.assert_allclose(np.abs(correct_jones(j, 1.0, 9.0)[ok]), np.abs(j[ok]) / factor, rtol=1e-12)
    assert attenuation_factor(-6, 1) == pytest.approx(10 ** (-7 / 20), rel=1e-15)


def test_corrected_rows_rebuild_to_the_corrected_jones():
    row = {"tileid": 11, "x_delay_m": 3.0, "x_intercept": 0.4, "y_delay_m": -1.0, "y_intercept": -2.0,
           "x_gains": np.full(2, 1.5), "x_gains_pol0": np.array([1.2, 0.0]), "x_gains_pol1": np.array([2e-9, 0.0]),
           "y_gains": np.array([0.8, 0.9]), "y_gains_pol0": None, "y_gains_pol1": None}
    out = correct_rows([row], 9.0, 1.0)[0]
    f = 10 ** (8 / 20)
    assert out["x_delay_m"] == 3.0 and out["y_intercept"] == -2.0
    np.testing.assert_allclose(out["x_gains"], [1.5 / f, 1.5 / f], rtol=1e-15)
    np.testing.assert_allclose(out["x_gains_pol0"], [1.2 / f, 0.0], rtol=1e-15)  # a zero "no fit" stays zero
    assert out["y_gains_pol0"] is None
    # the rebuilt XX of channel 110 (fine channel 0 at 40 kHz): exp(i phi) / G with G = gains (no line there)
    jones = rebuild_jones(SolutionArrays.from_rows(correct_rows([row], 9.0, 1.0), 2), [109, 110], 40e3)
    nu = 110 * 1.28e6 - 640e3
    expected = cmath.exp(1j * (0.4 - 2 * math.pi * nu * 3.0 / 299792458.0)) / (1.5 / f)
    assert jones[0, 32, 0] == pytest.approx(expected, rel=1e-12)
    assert correct_rows([row], 1.0, 1.0)[0] is row


# ---- the rules

T = Target(obsid=1_400_000_000, channels=CH, gain_control_value=1.0)


def cal(offset: int, fitid: int, gain: float | None) -> Calibrator:
    f = FitInfo(fitid=fitid, fit_time=datetime(2024, 1, 1, tzinfo=timezone.utc), creator="calvin", any_good_tile=True)
    return Calibrator(obsid=T.obsid + offset, stoptime=T.obsid + offset + 120, channels=CH, gain_control_value=gain,
                      fits=(f,))


def best(cals, crit):
    b = select(T, cals, crit).best
    return (b.calibrator.obsid - T.obsid, b.fit.fitid) if b else None


def test_correct_attenuation_accepts_another_attenuation():
    cals = [cal(-100, 1, 9.0), cal(-900, 2, 1.0)]
    assert best(cals, Criteria()) == (-900, 2)
    assert best(cals, Criteria(correct_attenuation=True)) == (-100, 1)
    assert best(cals, Criteria(any_gain=True)) == (-100, 1)  # the deprecated flag keeps its meaning


def test_at_equal_distance_the_targets_own_attenuation_wins_when_correcting():
    before_other, after_same = cal(-600, 1, 9.0), cal(600, 2, 1.0)
    assert best([before_other, after_same], Criteria(correct_attenuation=True)) == (600, 2)
    # any_gain does not prefer: the earlier calibrator wins the tie as always
    assert best([before_other, after_same], Criteria(any_gain=True)) == (-600, 1)
    # with both of the target's attenuation, the earlier one still wins
    assert best([cal(-600, 1, 1.0), cal(600, 2, 1.0)], Criteria(correct_attenuation=True)) == (-600, 1)
    # a nearer calibrator of another attenuation still beats a farther one of the target's
    assert best([cal(-599, 1, 9.0), after_same], Criteria(correct_attenuation=True)) == (-599, 1)


def test_an_unknown_attenuation_cannot_be_corrected():
    sel = select(T, [cal(-100, 1, None), cal(-900, 2, 9.0)], Criteria(correct_attenuation=True))
    assert sel.best.fit.fitid == 2
    assert sel.rejected[0].code == "attenuation_unknown"
