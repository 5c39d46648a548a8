"""The explanation of a selection: every calibrator and fit with its reason, the choice, and every target tile."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from chalicelib.selection.explain import explain
from chalicelib.selection.gates import FitQuality
from chalicelib.selection.rules import Calibrator, Criteria, FitInfo, Target
from tests.factories import tiles

CH = tuple(range(109, 133))
T = Target(obsid=1_400_000_000, channels=CH, gain_control_value=1.0)
# six target tiles: 15 flagged in the target's metafits
TILES = tiles((11, 12, 13, 14, 15, 16), flagged=(15,))


def info(fitid: int, good: bool = True) -> FitInfo:
    return FitInfo(fitid=fitid, fit_time=datetime.fromtimestamp(1_700_000_000 + fitid, tz=timezone.utc),
                   creator="calvin", any_good_tile=good)


def cal(offset: int, *fits: FitInfo, gain: float = 1.0, channels=CH) -> Calibrator:
    return Calibrator(obsid=T.obsid + offset, stoptime=T.obsid + offset + 120, channels=tuple(channels),
                      gain_control_value=gain, fits=fits)


def facts(fitid: int, c: Calibrator, solved: dict[int, bool], q: float = 0.9) -> FitQuality:
    ids = sorted(solved)
    return FitQuality(fitid, c.obsid, tuple(ids), tuple(solved[t] for t in ids), (q,) * len(ids), (q,) * len(ids))


OTHER_GAIN = cal(-10, info(1), gain=9.0)
SHORT = cal(-20, info(2), channels=CH[:-2])
AFTER = cal(30, info(3))
NO_FIT = cal(-40)
GATED = cal(-50, info(4), info(5, good=False))
CHOSEN = cal(-60, info(6))
QUALITIES = {
    (4, GATED.obsid): facts(4, GATED, {11: True, 12: False}),
    # 13 NaN in the fit, 14 not in it at all, 15 not solved but flagged in the target anyway
    (6, CHOSEN.obsid): facts(6, CHOSEN, {11: True, 12: True, 13: False, 15: False, 16: True}),
}
ALL = [CHOSEN, AFTER, GATED, NO_FIT, SHORT, OTHER_GAIN]


def by_cal(out: dict) -> dict[int, dict]:
    return {c["cal_id"] - T.obsid: c for c in out["calibrators"]}


def test_rejected_nearer_calibrators_are_listed_with_their_reasons():
    out = explain(T, TILES, ALL, Criteria(allow_after=False, min_tile_fraction=0.5), QUALITIES)
    json.dumps(out)  # JSON-able as it is
    cals = by_cal(out)
    assert [c["cal_id"] - T.obsid for c in out["calibrators"]] == [-10, -20, 30, -40, -50, -60]  # nearest first
    assert {k: (c["accepted"], c["code"]) for k, c in cals.items()} == {
        -10: (False, "attenuation"), -20: (False, "channels"), 30: (False, "after_target"),
        -40: (False, "no_fit"), -50: (False, "gates"), -60: (True, None)}
    assert "9.0" in cals[-10]["reason"] and "[131, 132]" in cals[-20]["reason"]
    assert cals[30]["side"] == "after" and cals[-60]["side"] == "before" and cals[-60]["offset"] == 60
    gated = {f["fitid"]: f for f in cals[-50]["fits"]}
    assert gated[4]["code"] == "gate" and "min_tile_fraction" in gated[4]["reason"]
    # 1 of the 5 unflagged target tiles (11, 12, 13, 14, 16) is served by fit 4
    assert gated[4]["figures"]["tiles_served"] == 1 and gated[4]["figures"]["tile_fraction"] == 1 / 5
    assert gated[5]["code"] == "failed" and not gated[5]["accepted"]
    assert cals[-10]["fits"][0]["code"] == "calibrator" and not cals[-10]["fits"][0]["chosen"]
    chosen_fit = cals[-60]["fits"][0]
    assert chosen_fit["chosen"] and chosen_fit["accepted"] and chosen_fit["figures"]["tile_fraction"] == 3 / 5
    assert chosen_fit["figures"]["median_phase_quality"] == 0.9
    assert out["choice"] == {"mode": "nearest", "cal_id": CHOSEN.obsid, "fitid": 6, "offset": 60, "attenuation": None}
    assert out["nearest_rejected"] is None
    assert out["window"] == {"calibrator_starts_from": T.obsid - 86400, "calibrator_starts_to": T.obsid,
                             "max_time_separation": 86400, "allow_after": False}
    assert out["target"] == {"obs_id": T.obsid, "channels": list(CH), "gain_control_value": 1.0, "tiles": 6,
                             "tiles_flagged": 1}


def test_every_target_tile_is_served_or_flagged_with_why():
    out = explain(T, TILES, ALL, Criteria(allow_after=False, min_tile_fraction=0.5), QUALITIES,
                  model_error={16: 0.7, 11: 0.1}, model_error_max=0.5)
    assert out["choice"]["fitid"] == 6
    got = {t["tile_id"]: (t["served"], t["code"]) for t in out["tiles"]}
    assert got == {11: (True, None), 12: (True, None), 13: (False, "nan_in_fit"), 14: (False, "not_in_fit"),
                   15: (False, "flagged_in_target"), 16: (False, "model_error")}
    reasons = {t["tile_id"]: t["reason"] for t in out["tiles"]}
    assert "fit 6" in reasons[13] and "0.7" in reasons[16] and "0.5" in reasons[16]
    assert [t["antenna"] for t in out["tiles"]] == list(range(6))


def test_without_a_choice_the_explanation_names_what_the_404_names():
    out = explain(T, TILES, [OTHER_GAIN, GATED], Criteria(min_tile_fraction=0.5), QUALITIES)
    assert out["choice"] is None
    assert out["nearest_rejected"]["cal_id"] == GATED.obsid and out["nearest_rejected"]["fitid"] == 4
    assert all(not t["served"] for t in out["tiles"])


def test_interpolating_shows_both_sides_and_their_weights_and_correcting_the_factors():
    before, after = cal(-1000, info(7), gain=9.0), cal(3000, info(8))
    q = {(7, before.obsid): facts(7, before, {11: True}), (8, after.obsid): facts(8, after, {12: True, 13: False})}
    out = explain(T, TILES, [before, after], Criteria(correct_attenuation=True), q, interpolate=True)
    choice = out["choice"]
    assert choice["mode"] == "interpolated"
    assert (choice["before"]["cal_id"], choice["before"]["fitid"]) == (before.obsid, 7)
    assert choice["before"]["weight"] == pytest.approx(3000 / 4000, abs=1e-15)
    assert choice["after"]["weight"] == pytest.approx(1000 / 4000, abs=1e-15)
    assert choice["attenuation"]["before"]["factor"] == pytest.approx(10 ** ((1 - 9) / 20), rel=1e-15)
    assert choice["attenuation"]["after"] == {"target_db": 1.0, "cal_db": 1.0, "factor": 1.0}
    served = {t["tile_id"]: t["served"] for t in out["tiles"]}
    assert served == {11: True, 12: True, 13: False, 14: False, 15: False, 16: False}
    assert [f["chosen"] for c in out["calibrators"] for f in c["fits"]] == [True, True]
    # the nearest alone when asked not to interpolate, with its attenuation factor
    nearest = explain(T, TILES, [before, after], Criteria(correct_attenuation=True), q)["choice"]
    assert nearest["mode"] == "nearest" and nearest["fitid"] == 7
    assert nearest["attenuation"]["factor"] == pytest.approx(10 ** (-8 / 20), rel=1e-15)
    reasons = {t["tile_id"]: t["reason"] for t in out["tiles"]}
    assert reasons[13] == "NaN in fit 8; not in fit 7"
    assert reasons[14] == "not in fit 7 and fit 8"


def test_validity_epochs_are_applied_as_the_service_applies_them_and_listed():
    from chalicelib.selection.steering import Epoch

    near, far = cal(-100, info(7)), cal(-300, info(8))
    qualities = {(7, near.obsid): facts(7, near, {t.tile_id: True for t in TILES})}
    epochs = [Epoch(1, T.obsid - 200, "cable change"),  # whole: refuses far, not near
              Epoch(2, T.obsid - 50, "tile 12 recabled", tiles=(12,)),  # partial, between near and the target
              Epoch(3, T.obsid - 60, "rx 2 swapped", receivers=(2,))]  # partial; no target tile is on rx 2
    out = explain(T, TILES, [near, far], Criteria(allow_after=False), qualities, epochs=epochs)
    json.dumps(out)
    cals = by_cal(out)
    assert (cals[-300]["accepted"], cals[-300]["code"]) == (False, "epoch")
    assert "validity epoch 1" in cals[-300]["reason"] and cals[-100]["accepted"]
    assert out["choice"]["fitid"] == 7
    assert [(e["epoch_id"], e["whole"], e["applied"]) for e in out["epochs"]] == [
        (1, True, False), (3, False, True), (2, False, True)]  # by boundary
    fate = {t["tile_id"]: (t["served"], t["code"]) for t in out["tiles"]}
    assert fate == {11: (True, None), 12: (False, "epoch"), 13: (True, None), 14: (True, None),
                    15: (False, "flagged_in_target"), 16: (True, None)}
    assert next(t for t in out["tiles"] if t["tile_id"] == 12)["reason"] == "served as NaN: validity epoch 2"
    # without the epochs (as before) far would be listed as a usable calibrator and tile 12 served
    plain = explain(T, TILES, [near, far], Criteria(allow_after=False), qualities)
    assert by_cal(plain)[-300]["code"] is None and plain["epochs"] == []
    assert all(t["code"] != "epoch" for t in plain["tiles"])
