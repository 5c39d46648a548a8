"""Operators' steering in the pure selection rules: retired and preferred fits, validity epochs."""

from __future__ import annotations

from dataclasses import replace

from chalicelib.selection.rules import Criteria, nearest_rejected, prefer_problem, select
from chalicelib.selection.steering import Epoch, between
from tests.selection_records import T, cal, fit


def fitids(sel):
    return [c.fit.fitid for c in sel.candidates]


def test_a_retired_fit_is_never_a_candidate_and_the_next_fit_serves():
    c = cal(-100, fit(1, when=1000), replace(fit(2, when=2000), retired="bad cable on rx 7"))
    sel = select(T, [c], Criteria())
    assert fitids(sel) == [1]


def test_a_calibrator_with_only_retired_fits_is_rejected_naming_the_reason():
    near = cal(-100, replace(fit(2), retired="bad cable on rx 7"))
    far = cal(-5000, fit(3))
    sel = select(T, [near, far], Criteria())
    assert fitids(sel) == [3]
    assert sel.rejected[0].code == "retired" and "bad cable on rx 7" in sel.rejected[0].reason
    alone = select(T, [near], Criteria())
    assert alone.best is None
    assert "retired" in nearest_rejected(alone)["reason"]


def test_prefer_fitid_of_a_retired_fit_is_refused_with_its_reason():
    c = cal(-100, fit(1), replace(fit(2), retired="RFI storm"))
    crit = Criteria(prefer_fitid=2)
    sel = select(T, [c], crit)
    assert prefer_problem(T, [c], crit, sel) == "fit 2 is retired: RFI storm"


def test_the_preferred_fit_wins_on_its_calibrator_but_not_over_a_closer_calibrator():
    c = cal(-100, fit(1, when=1000), replace(fit(2, when=500), preferred=True), fit(3, when=3000))
    assert fitids(select(T, [c], Criteria())) == [2, 3, 1]
    closer = cal(-50, fit(9, when=10))
    assert fitids(select(T, [c, closer], Criteria()))[0] == 9


def test_an_epoch_refuses_calibrators_across_it_in_either_direction():
    epoch = Epoch(epoch_id=4, boundary_gps=T.obsid - 1000, reason="receiver 7 swapped")
    before, after = cal(-2000, fit(1)), cal(-500, fit(2))
    sel = select(T, [before, after], Criteria(), epochs=(epoch,))
    assert fitids(sel) == [2]
    refused = [r for r in sel.rejected if r.obsid == before.obsid][0]
    assert refused.code == "epoch" and "validity epoch 4" in refused.reason and "receiver 7 swapped" in refused.reason
    # a target before the boundary is not served by a calibrator after it either
    early = replace(T, obsid=T.obsid - 1500)
    assert fitids(select(early, [before, after], Criteria(), epochs=(epoch,))) == [1]


def test_the_boundary_belongs_to_the_new_side():
    epoch = Epoch(epoch_id=1, boundary_gps=T.obsid, reason="cable change")
    assert between([epoch], T.obsid - 1, T.obsid) == [epoch]  # calibrator just before, target at T
    assert between([epoch], T.obsid, T.obsid + 10) == []  # both at or after T


def test_an_epoch_naming_tiles_keeps_the_calibrator_and_masks_those_tiles():
    epoch = Epoch(epoch_id=5, boundary_gps=T.obsid - 1000, reason="tiles 21, 22 recabled", tiles=(21, 22))
    rx = Epoch(epoch_id=6, boundary_gps=T.obsid - 900, reason="rx 3 swapped", receivers=(3,))
    sel = select(T, [cal(-2000, fit(1)), cal(-3000, fit(2))], Criteria(), epochs=(epoch, rx))
    assert fitids(sel) == [1, 2]
    m = sel.best.masking
    assert m.tiles == {21, 22} and m.receivers == {3} and set(m.epoch_ids) == {5, 6}
    # a calibrator on the same side as the target is not masked
    same_side = select(T, [cal(-100, fit(3))], Criteria(), epochs=(epoch,))
    assert not same_side.best.masking
