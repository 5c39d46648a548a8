"""The calibrator selection rules, one by one, on plain records."""

from __future__ import annotations

from chalicelib.selection.rules import Criteria, Target, fitid_seconds, prefer_problem, select, window
from tests.selection_records import CH, T, cal, fit


def chosen(sel):
    return (sel.best.calibrator.obsid - T.obsid, sel.best.fit.fitid) if sel.best else None


def test_closest_calibrator_wins():
    sel = select(T, [cal(-5000, fit(1)), cal(3000, fit(2)), cal(-2000, fit(3))], Criteria())
    assert chosen(sel) == (-2000, 3)
    assert [c.offset for c in sel.candidates] == [2000, 3000, 5000]


def test_gain_value_must_match_unless_any_gain():
    cals = [cal(-100, fit(1), gain=2.0), cal(-900, fit(2))]
    sel = select(T, cals, Criteria())
    assert chosen(sel) == (-900, 2)
    assert sel.rejected[0].obsid == T.obsid - 100 and "gain_control_value" in sel.rejected[0].reason
    assert chosen(select(T, cals, Criteria(any_gain=True))) == (-100, 1)


def test_window_excludes_far_calibrators_and_zero_means_itself():
    cals = [cal(-90000, fit(1)), cal(0, fit(2))]
    assert [c.offset for c in select(T, cals, Criteria()).candidates] == [0]
    only_far = [cal(-90000, fit(1))]
    assert select(T, only_far, Criteria()).best is None
    assert select(T, only_far, Criteria(max_time_separation=100000)).best is not None
    assert chosen(select(T, [cal(0, fit(5)), cal(-10, fit(6))], Criteria(max_time_separation=0))) == (0, 5)
    assert window(T, Criteria(max_time_separation=0)) == (T.obsid, T.obsid)


def test_allow_after_zero_keeps_only_earlier_calibrators():
    cals = [cal(100, fit(1)), cal(-4000, fit(2))]
    assert chosen(select(T, cals, Criteria())) == (100, 1)
    sel = select(T, cals, Criteria(allow_after=False))
    assert chosen(sel) == (-4000, 2)
    assert "allow_after" in sel.rejected[0].reason
    assert window(T, Criteria(allow_after=False)) == (T.obsid - 86400, T.obsid)


def test_calibrator_must_cover_every_target_channel():
    short = cal(-10, fit(1), channels=CH[:-1])
    sel = select(T, [short, cal(-50, fit(2), channels=range(100, 140))], Criteria())
    assert chosen(sel) == (-50, 2)
    assert "[132]" in sel.rejected[0].reason
    # a picket-fence target is covered by a calibrator holding all its channels
    pf = Target(obsid=T.obsid, channels=(57, 62, 67), gain_control_value=1.0)
    assert select(pf, [cal(-1, fit(1), channels=range(55, 79))], Criteria()).best is not None


def test_a_fit_whose_tiles_all_failed_is_no_candidate():
    sel = select(T, [cal(-10, fit(1, good=False)), cal(-20, fit(2))], Criteria())
    assert chosen(sel) == (-20, 2)
    assert "failed" in sel.rejected[0].reason
    # on a calibrator with one failed and one good fit, only the good one is listed
    sel = select(T, [cal(-10, fit(1, good=False), fit(3))], Criteria())
    assert [c.fit.fitid for c in sel.candidates] == [3]


def test_most_recent_fit_on_the_chosen_calibrator_with_both_fitid_magnitudes():
    old_seconds = fit(1_700_000_000)  # ran 2023-11-14 (Unix seconds)
    new_micro = fit(1_700_000_500_000_000)  # ran 500 s later (Unix microseconds)
    sel = select(T, [cal(-10, old_seconds, new_micro)], Criteria())
    assert [c.fit.fitid for c in sel.candidates] == [1_700_000_500_000_000, 1_700_000_000]
    assert fitid_seconds(1_700_000_500_000_000) == 1_700_000_500.0
    # fit_time, when present, is what "most recent" means
    a = fit(10, when=2_000_000_000)
    b = fit(20, when=1_000_000_000)
    assert chosen(select(T, [cal(-10, a, b)], Criteria())) == (-10, 10)


def test_prefer_fitid_picks_that_fit_when_it_is_a_candidate():
    cals = [cal(-10, fit(100), fit(50)), cal(-5000, fit(7))]
    c = Criteria(prefer_fitid=7)
    sel = select(T, cals, c)
    assert chosen(sel) == (-5000, 7)
    assert prefer_problem(T, cals, c, sel) is None


def test_prefer_fitid_explains_why_it_is_not_a_candidate():
    cals = [cal(-10, fit(100)), cal(-20, fit(7), gain=3.0), cal(-30, fit(8, good=False))]
    for fitid, words in ((7, "gain_control_value"), (8, "failed on every tile"), (999, "not a fit")):
        c = Criteria(prefer_fitid=fitid)
        assert words in prefer_problem(T, cals, c, select(T, cals, c))


def test_ties_prefer_the_calibrator_before_the_target_then_the_larger_fitid():
    sel = select(T, [cal(600, fit(1)), cal(-600, fit(2))], Criteria())
    assert chosen(sel) == (-600, 2)
    same_time = fit(30, when=1_500_000_000), fit(40, when=1_500_000_000)
    assert chosen(select(T, [cal(-1, *same_time)], Criteria())) == (-1, 40)


def test_calibrators_without_fits_serve_add_cal_request_only():
    cals = [cal(-10)]
    assert select(T, cals, Criteria()).best is None
    assert "no calibration fit" in select(T, cals, Criteria()).rejected[0].reason
    sel = select(T, cals, Criteria(need_fit=False))
    assert sel.best.calibrator.obsid == T.obsid - 10 and sel.best.fit is None


def test_criteria_reads_the_selection_parameters_of_a_query():
    import pytest

    from chalicelib.errors import BadRequest
    from chalicelib.selection.criteria import criteria

    assert criteria(None) == criteria({}) == Criteria(max_time_separation=86400, allow_after=True, prefer_fitid=None)
    got = criteria({"max_time_separation": "600", "allow_after": "0", "prefer_fitid": "17", "other": "x"},
                   any_gain=True)
    assert got == Criteria(max_time_separation=600, allow_after=False, any_gain=True, prefer_fitid=17)
    assert got.need_fit  # a fit is what these endpoints serve
    for query, parameter in (({"max_time_separation": "-5"}, "max_time_separation"),
                             ({"allow_after": "yes"}, "allow_after"), ({"prefer_fitid": "-1"}, "prefer_fitid")):
        with pytest.raises(BadRequest) as bad:
            criteria(query)
        assert bad.value.parameter == parameter
