"""Quality gates on candidate fits: the served tile fraction and the median phase-fit quality, in select and SQL."""

from __future__ import annotations

import json
import math
import statistics
from datetime import datetime, timezone

import pytest

from chalicelib import db
from chalicelib.db import selection as queries
from chalicelib.selection.gates import FitQuality, GateInput
from chalicelib.selection.rules import (Calibrator, Criteria, FitInfo, Target, nearest_rejected, prefer_problem,
                                        select)
from tests.factories import fit as fit_row
from tests.factories import flagged_row, observation, seed, solution_row, tiles

CH = tuple(range(109, 133))
T = Target(obsid=1_400_000_000, channels=CH, gain_control_value=1.0)
TARGET_TILES = tuple(range(11, 21))  # ten tiles


def info(fitid: int) -> FitInfo:
    return FitInfo(fitid=fitid, fit_time=datetime.fromtimestamp(1_700_000_000 + fitid, tz=timezone.utc),
                   creator="calvin", any_good_tile=True)


def cal(offset: int, *fits: FitInfo) -> Calibrator:
    return Calibrator(obsid=T.obsid + offset, stoptime=T.obsid + offset + 120, channels=CH, gain_control_value=1.0,
                      fits=fits)


def facts(fitid: int, obsid: int, solved: dict[int, bool], xq: float | dict = 1.0, yq: float | dict = 1.0
          ) -> FitQuality:
    ids = sorted(solved)

    def q(v, t):
        return v[t] if isinstance(v, dict) else v

    return FitQuality(fitid=fitid, obsid=obsid, tiles=tuple(ids), solved=tuple(solved[t] for t in ids),
                      x_phase_quality=tuple(q(xq, t) for t in ids), y_phase_quality=tuple(q(yq, t) for t in ids))


def gated(fq: FitQuality, ids=TARGET_TILES) -> GateInput:
    return GateInput(tile_ids=tuple(ids), fits={(fq.fitid, fq.obsid): fq})


def eight_of_ten(fitid: int, obsid: int) -> FitQuality:
    """Tiles 11..18 solved, 19 NaN in the fit, 20 missing from it."""
    return facts(fitid, obsid, {**{t: True for t in range(11, 19)}, 19: False})


@pytest.mark.parametrize("bound, passes", [(0.8, True), (0.8 - 1e-9, True), (0.8 + 1e-9, False), (1.0, False)])
def test_tile_fraction_gate_at_and_around_its_bound(bound, passes):
    c = cal(-100, info(1))
    sel = select(T, [c], Criteria(min_tile_fraction=bound), gated(eight_of_ten(1, c.obsid)))
    assert (sel.best is not None) is passes
    if not passes:
        r = sel.rejected[0]
        assert r.code == "gate" and r.fitid == 1
        assert "min_tile_fraction" in r.reason and "8 of the target's 10 tiles" in r.reason
        assert r.figures.tile_fraction == 8 / 10 and r.figures.tiles_served == 8


def test_target_tiles_flagged_in_its_metafits_are_not_counted():
    c = cal(-100, info(1))
    fq = eight_of_ten(1, c.obsid)
    target_tiles = tiles(TARGET_TILES, flagged=(19, 20))  # the two the fit lacks are flagged in the target anyway
    sel = select(T, [c], Criteria(min_tile_fraction=1.0), GateInput.for_target(target_tiles, {(1, c.obsid): fq}))
    assert sel.best is not None and sel.best.fit.fitid == 1


def test_a_target_without_tile_list_counts_the_fits_own_tiles():
    c = cal(-100, info(1))
    fq = eight_of_ten(1, c.obsid)  # 9 rows, 8 solved
    figures = GateInput(tile_ids=(), fits={(1, c.obsid): fq}).figures(1, c.obsid)
    assert (figures.tiles_served, figures.tiles_counted, figures.tile_fraction) == (8, 9, 8 / 9)


QX = {11: 0.9, 12: 0.8, 13: 0.7, 14: 0.6, 15: 0.95, 16: 0.85, 17: 0.3, 18: 0.2, 19: 0.99, 20: 0.99}
QY = {11: 0.5, 12: 0.4, 13: 0.65, 14: math.nan, 15: 0.75, 16: 0.55, 17: 0.45, 18: 0.35, 19: 0.99, 20: 0.99}


def quality_fit(c: Calibrator) -> FitQuality:
    """Ten tiles, 19 NaN (its 0.99 must not count), 20 not in the target; 14's Y figure unknown."""
    return facts(1, c.obsid, {**{t: True for t in range(11, 19)}, 19: False, 20: True}, QX, QY)


def expected_median() -> float:
    served = range(11, 19)
    pooled = [QX[t] for t in served] + [QY[t] for t in served if not math.isnan(QY[t])]
    return statistics.median(pooled)


def test_median_phase_quality_pools_x_and_y_over_the_served_target_tiles():
    c = cal(-100, info(1))
    ids = range(11, 20)  # tile 20 is not a target tile
    figures = gated(quality_fit(c), ids).figures(1, c.obsid)
    assert figures.median_phase_quality == pytest.approx(expected_median(), abs=1e-15)
    assert figures.tiles_served == 8


@pytest.mark.parametrize("delta, passes", [(0.0, True), (-1e-9, True), (1e-9, False)])
def test_phase_quality_gate_at_and_around_its_bound(delta, passes):
    c = cal(-100, info(1))
    bound = expected_median() + delta
    sel = select(T, [c], Criteria(min_phase_quality=bound), gated(quality_fit(c), range(11, 20)))
    assert (sel.best is not None) is passes
    if not passes:
        assert "min_phase_quality" in sel.rejected[0].reason and "median phase_fit_quality" in sel.rejected[0].reason


def test_no_recorded_quality_fails_the_phase_gate_only_when_it_is_on():
    c = cal(-100, info(1))
    fq = facts(1, c.obsid, {t: True for t in TARGET_TILES}, math.nan, math.nan)
    assert select(T, [c], Criteria(), gated(fq)).best is not None
    sel = select(T, [c], Criteria(min_phase_quality=0.1), gated(fq))
    assert sel.best is None and "no phase_fit_quality" in sel.rejected[0].reason


def test_zero_gates_change_nothing_even_for_a_fit_that_serves_no_target_tile():
    cals = [cal(-100, info(1), info(2)), cal(300, info(3))]
    none_served = GateInput(tile_ids=TARGET_TILES, fits={(1, cals[0].obsid): facts(1, cals[0].obsid, {99: True})})
    plain = select(T, cals, Criteria())
    with_facts = select(T, cals, Criteria(), none_served)
    assert with_facts.candidates == plain.candidates and with_facts.rejected == plain.rejected
    assert [c.fit.fitid for c in plain.candidates] == [2, 1, 3]


def test_gates_need_the_facts():
    with pytest.raises(ValueError):
        select(T, [cal(-100, info(1))], Criteria(min_tile_fraction=0.5))


def test_a_gated_nearer_fit_gives_way_to_a_farther_one_that_passes():
    near, far = cal(-100, info(1), info(2)), cal(-900, info(3))
    gates = GateInput(tile_ids=TARGET_TILES, fits={
        (1, near.obsid): eight_of_ten(1, near.obsid), (2, near.obsid): eight_of_ten(2, near.obsid),
        (3, far.obsid): facts(3, far.obsid, {t: True for t in TARGET_TILES})})
    sel = select(T, [near, far], Criteria(min_tile_fraction=0.9), gates)
    assert [c.fit.fitid for c in sel.candidates] == [3]
    # both fits of the nearer calibrator are rejected, the more recent (2) first
    assert [(r.obsid, r.fitid) for r in sel.rejected] == [(near.obsid, 2), (near.obsid, 1)]


def test_when_gates_remove_every_candidate_the_404_names_the_best_rejected_fit_with_figures():
    other_gain = Calibrator(obsid=T.obsid - 10, stoptime=T.obsid + 110, channels=CH, gain_control_value=5.0,
                            fits=(info(7),))
    near, far = cal(-100, info(1), info(2)), cal(-900, info(3))
    gates = GateInput(tile_ids=TARGET_TILES, fits={
        (1, near.obsid): eight_of_ten(1, near.obsid),
        (2, near.obsid): facts(2, near.obsid, {11: True, 12: True}),
        (3, far.obsid): eight_of_ten(3, far.obsid)})
    sel = select(T, [other_gain, near, far], Criteria(min_tile_fraction=0.9), gates)
    assert sel.best is None
    body = nearest_rejected(sel)
    # the nearest calibrator (other attenuation) is not what the 404 names: the fit ranked first is
    assert body["cal_id"] == near.obsid and body["fitid"] == 2 and body["offset"] == 100
    assert (body["tiles_served"], body["tiles_counted"], body["tile_fraction"]) == (2, 10, 0.2)
    assert "min_tile_fraction" in body["reason"]
    json.dumps(body)
    # without gates the 404 keeps naming the nearest rejected calibrator
    no_fit = cal(-5)
    plain = nearest_rejected(select(T, [no_fit], Criteria()))
    assert plain == {"cal_id": no_fit.obsid, "offset": 5, "reason": "has no calibration fit"}


def test_prefer_fitid_on_a_gated_fit_says_which_gate():
    c = cal(-100, info(1))
    crit = Criteria(min_tile_fraction=0.9, prefer_fitid=1)
    gates = gated(eight_of_ten(1, c.obsid))
    problem = prefer_problem(T, [c], crit, select(T, [c], crit, gates))
    assert "fit 1" in problem and "min_tile_fraction" in problem


# ---- the SQL behind the facts, on the real database

CAL = 1_300_000_000


def _seed_two_fits() -> tuple[int, int]:
    fit_a, fit_b = 1_700_000_000_000_001, 1_700_000_000_000_002
    rows_a = [solution_row(11, 0, x_phase_fit_quality=0.5, y_phase_fit_quality=0.25),
              solution_row(12, 1, x_phase_fit_quality=0.75, y_phase_fit_quality=None),
              flagged_row(13),
              solution_row(14, 3, y_intercept=math.nan, x_phase_fit_quality=0.9, y_phase_fit_quality=0.1)]
    rows_b = [solution_row(11, 0, x_phase_fit_quality=1.0, y_phase_fit_quality=0.875)]
    seed([observation(CAL, calibration=True, tiles=tiles(4))],
         [(fit_row(fit_a, CAL), rows_a), (fit_row(fit_b, CAL), rows_b), (fit_row(1_700_000_000_000_003, CAL), [])])
    return fit_a, fit_b


def test_fit_qualities_reads_solved_tiles_and_phase_quality_of_every_fit_in_one_query(clean_db):
    fit_a, fit_b = _seed_two_fits()
    got = queries.fit_qualities([(fit_a, CAL), (fit_b, CAL), (1_700_000_000_000_003, CAL), (fit_a, CAL + 1)])
    assert set(got) == {(fit_a, CAL), (fit_b, CAL)}  # no rows: no facts (it then serves no tile)
    a = got[(fit_a, CAL)]
    assert a.tiles == (11, 12, 13, 14)
    assert a.solved == (True, True, False, False)  # 13 all NaN, 14 has a NaN Y intercept
    assert a.x_phase_quality[:2] == (0.5, 0.75) and a.y_phase_quality[0] == 0.25
    assert math.isnan(a.y_phase_quality[1]) and math.isnan(a.x_phase_quality[2])  # NULL and NaN
    assert got[(fit_b, CAL)].solved == (True,) and got[(fit_b, CAL)].y_phase_quality == (0.875,)
    assert queries.fit_qualities([]) == {}
    # what the gate makes of them for a target of tiles 11..14
    fig = GateInput(tile_ids=(11, 12, 13, 14), fits=got).figures(fit_a, CAL)
    assert (fig.tiles_served, fig.tile_fraction) == (2, 0.5)
    assert fig.median_phase_quality == statistics.median([0.5, 0.75, 0.25])


def test_fit_qualities_looks_fits_up_by_index_not_by_scanning_the_table(clean_db):
    """With many other fits stored (and statistics current), the plan reads calibration_solutions by (fitid, obsid)."""
    fit_a, fit_b = _seed_two_fits()
    db.execute("INSERT INTO calibration_fits (fitid, obsid, fit_time, creator)"
               " SELECT g, :cal, now(), 'bulk' FROM generate_series(1, 1000) g", {"cal": CAL})
    db.execute("INSERT INTO calibration_solutions (fitid, obsid, tileid, x_delay_m, x_intercept, y_delay_m,"
               " y_intercept) SELECT f, :cal, t, 0, 0, 0, 0 FROM generate_series(1, 1000) f,"
               " generate_series(11, 42) t", {"cal": CAL})
    db.execute("ANALYZE calibration_solutions")
    plan = db.query("EXPLAIN (FORMAT JSON) " + queries._FIT_QUALITY_SQL,
                    {"fitids": [fit_a, fit_b], "obsids": [CAL, CAL]})
    scans = _scans(plan[0]["QUERY PLAN"][0]["Plan"])
    assert scans["calibration_solutions"] in {"Index Scan", "Index Only Scan", "Bitmap Heap Scan"}


def _scans(node: dict, out: dict | None = None) -> dict:
    """Relation name -> how the plan reads it."""
    out = {} if out is None else out
    if "Relation Name" in node:
        out[node["Relation Name"]] = node["Node Type"]
    for child in node.get("Plans", []):
        _scans(child, out)
    return out
