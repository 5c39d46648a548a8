"""Operators steer what is served, end to end: the admin routes, then get_cal_fits / get_cal_solution / legacy.

Real PostgreSQL (with migration 0006), moto S3, the Chalice test client on the dev stage (admin from 127.0.0.1).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from chalice.test import Client

from chalicelib import db
from tests.factories import fit, observation, seed, solution_rows, tiles
from tests.served_files import fetch_zip, read_bin

TARGET = 1_400_000_000
NEAR, FAR = TARGET - 600, TARGET - 5000  # two calibrators before the target
OLD, NEW, FARFIT = 1_699_000_000_000_000, 1_700_000_000_000_000, 1_650_000_000_000_000


@pytest.fixture
def client(clean_db, aws):
    """The target, a near calibrator with two fits (NEW the newer), a far one with one fit; 16 tiles, 2 receivers."""
    from app import app

    ts = tiles(16)
    ids = [t.tile_id for t in ts]
    seed([observation(TARGET, tiles=ts), observation(NEAR, calibration=True, tiles=ts),
          observation(FAR, calibration=True, tiles=ts)],
         [(fit(OLD, NEAR), solution_rows(ids)), (fit(NEW, NEAR), solution_rows(ids, delay_scale=2.0)),
          (fit(FARFIT, FAR), solution_rows(ids))])
    with Client(app) as c:
        yield c


def post(client, path: str):
    r = client.http.post(path)
    return r.status_code, json.loads(r.body or b"null")


def get(client, path: str):
    r = client.http.get(path)
    return r.status_code, json.loads(r.body or b"null")


def fits_served(client) -> list[int]:
    status, body = get(client, f"/calib/get_cal_fits?obs_id={TARGET}")
    assert status == 200, body
    return [int(k) for k in body]


def test_retire_hides_a_fit_and_restore_brings_it_back(client):
    assert fits_served(client) == [NEW, OLD, FARFIT]
    status, body = post(client, f"/calib/admin/retire?fitid={NEW}&why=cable+fault+on+rx+2")
    assert status == 200 and body["retired"] is True, body
    assert fits_served(client) == [OLD, FARFIT]
    status, body = get(client, f"/calib/get_cal_fits?obs_id={TARGET}&prefer_fitid={NEW}")
    assert status == 404 and "retired" in body["message"] and "cable fault on rx 2" in body["message"]
    assert post(client, f"/calib/admin/retire?fitid={NEW}&why=again")[0] == 409
    status, body = post(client, f"/calib/admin/restore?fitid={NEW}&why=cable+was+fine")
    assert status == 200, body
    assert fits_served(client) == [NEW, OLD, FARFIT]
    assert post(client, f"/calib/admin/restore?fitid={NEW}&why=again")[0] == 409


def test_every_fit_of_the_window_retired_is_a_404_naming_the_rule(client):
    for f in (NEW, OLD, FARFIT):
        assert post(client, f"/calib/admin/retire?fitid={f}&why=bad+week")[0] == 200
    status, body = get(client, f"/calib/get_cal_solution?obs_id={TARGET}")
    assert status == 404
    assert body["steering"][0]["code"] == "retired" and "bad week" in body["steering"][0]["reason"]
    assert "retired" in body["message"] and "retired" in body["nearest_rejected"]["reason"]
    status, body = get(client, f"/calib/get_calfile_for_calid?cal_id={NEAR}")
    assert status == 400 and "retired" in body["message"]


def test_a_preferred_fit_wins_on_its_calibrator_and_preferring_another_replaces_it(client):
    status, body = post(client, f"/calib/admin/prefer?fitid={OLD}&why=reference+fit")
    assert status == 200 and body["cal_obsid"] == NEAR and body["replaced"] is None, body
    assert fits_served(client) == [OLD, NEW, FARFIT]
    z = fetch_zip(client, f"/calib/get_cal_solution?obs_id={TARGET}")
    assert z.namelist()[0] == f"{NEAR}.bin"
    status, body = post(client, f"/calib/admin/prefer?fitid={NEW}&why=newer+is+better")
    assert status == 200 and body["replaced"] == OLD
    assert fits_served(client) == [NEW, OLD, FARFIT]
    assert db.query("SELECT count(*) AS n FROM calibration_fit_preference")[0]["n"] == 1
    # a retired fit cannot be preferred
    post(client, f"/calib/admin/retire?fitid={OLD}&why=x")
    assert post(client, f"/calib/admin/prefer?fitid={OLD}&why=y")[0] == 409


def test_an_epoch_refuses_older_calibrators_and_ending_it_lifts_that(client):
    boundary = NEAR - 10  # between FAR and NEAR: NEAR and the target are on the new side
    status, body = post(client, f"/calib/admin/epochs?boundary={TARGET - 100}&why=receiver+swap")
    assert status == 200, body
    epoch_id = body["epoch_id"]
    status, body = get(client, f"/calib/get_cal_fits?obs_id={TARGET}")
    assert status == 404
    assert body["steering"][0]["code"] == "epoch" and f"validity epoch {epoch_id}" in body["steering"][0]["reason"]
    assert "receiver swap" in body["message"]
    status, body = get(client, f"/calib/get_calfile_for_obsid?obs_id={TARGET}")
    assert status in (400, 404) and "validity epoch" in json.dumps(body)
    status, listed = get(client, "/calib/admin/epochs")
    assert [e["epoch_id"] for e in listed["epochs"]] == [epoch_id]
    assert post(client, f"/calib/admin/epochs/{epoch_id}/end?why=swap+reverted")[0] == 200
    assert post(client, f"/calib/admin/epochs/{epoch_id}/end?why=twice")[0] == 409
    assert get(client, "/calib/admin/epochs")[1]["epochs"] == []
    assert get(client, "/calib/admin/epochs?all=1")[1]["epochs"][0]["end_reason"] == "swap reverted"
    assert fits_served(client) == [NEW, OLD, FARFIT]
    # an epoch between the two calibrators leaves only the near one
    assert post(client, f"/calib/admin/epochs?boundary={boundary}&why=cable+change")[0] == 200
    assert fits_served(client) == [NEW, OLD]


def test_an_epoch_naming_tiles_serves_those_tiles_as_nan(client):
    ts = tiles(16)  # Antenna order; tiles 11..18 on receiver 1, 19..26 on receiver 2
    plain = fetch_zip(client, f"/calib/get_cal_solution?obs_id={TARGET}")
    jones_plain, _, _ = read_bin(plain.read(f"{NEAR}.bin"))
    assert not np.isnan(jones_plain).any()
    assert post(client, f"/calib/admin/epochs?boundary={TARGET - 100}&why=tile+13+recabled&tiles=13")[0] == 200
    assert post(client, f"/calib/admin/epochs?boundary={TARGET - 50}&why=rx2+swap&receivers=2")[0] == 200
    z = fetch_zip(client, f"/calib/get_cal_solution?obs_id={TARGET}")
    jones, _, _ = read_bin(z.read(f"{NEAR}.bin"))
    masked = {t.antenna for t in ts if t.tile_id == 13 or t.rx == 2}
    assert masked == {2} | set(range(8, 16))
    for ant in range(16):
        if ant in masked:
            assert np.isnan(jones[0, ant]).all(), ant
        else:
            assert np.array_equal(jones[0, ant], jones_plain[0, ant]), ant


def test_the_audit_trail_records_every_change_and_cannot_be_deleted(client):
    post(client, f"/calib/admin/retire?fitid={NEW}&why=w1")
    post(client, f"/calib/admin/restore?fitid={NEW}&why=w2")
    post(client, f"/calib/admin/prefer?fitid={OLD}&why=w3")
    eid = post(client, f"/calib/admin/epochs?boundary={TARGET}&why=w4&receivers=3,1")[1]["epoch_id"]
    post(client, f"/calib/admin/epochs/{eid}/end?why=w5")
    post(client, f"/calib/admin/retire?fitid={NEW}&why=w6")
    post(client, f"/calib/admin/retire?fitid={NEW}&why=refused")  # a 409 changes nothing and records nothing
    status, body = get(client, "/calib/admin/audit")
    assert status == 200
    trail = body["audit"]
    assert [(a["action"], a["why"]) for a in reversed(trail)] == [
        ("retire", "w1"), ("restore", "w2"), ("prefer", "w3"), ("epoch_add", "w4"), ("epoch_end", "w5"),
        ("retire", "w6")]
    assert {a["who"] for a in trail} == {"local"}
    assert trail[2]["detail"] == {"boundary_gps": TARGET, "receivers": [1, 3], "tiles": []}
    assert all(a["at"] for a in trail)
    assert [a["why"] for a in get(client, f"/calib/admin/audit?fitid={OLD}")[1]["audit"]] == ["w3"]
    # not through SQL either: updates and deletes leave the rows as they were
    db.execute("DELETE FROM operator_audit")
    db.execute("UPDATE operator_audit SET why = 'rewritten'")
    assert [a["why"] for a in get(client, "/calib/admin/audit")[1]["audit"]] == ["w6", "w5", "w4", "w3", "w2", "w1"]


def test_admin_bad_input_is_a_400_naming_the_parameter(client):
    for path, parameter in [
        (f"/calib/admin/retire?fitid={NEW}", "why"),
        ("/calib/admin/retire?why=x", "fitid"),
        ("/calib/admin/retire?fitid=123&why=x", "fitid"),  # no such fit
        ("/calib/admin/retire?fitid=abc&why=x", "fitid"),
        ("/calib/admin/epochs?why=x", "boundary"),
        ("/calib/admin/epochs?boundary=yesterday&why=x", "boundary"),
        ("/calib/admin/epochs?boundary=1400000000&why=x&tiles=1,a", "tiles"),
        ("/calib/admin/epochs/77/end?why=x", "epoch_id"),
        (f"/calib/admin/prefer?fitid={NEW}&why=x&obsid={FAR}", "obsid"),
    ]:
        status, body = post(client, path)
        assert status == 400 and body["parameter"] == parameter, (path, body)
    status, body = post(client, "/calib/admin/epochs?boundary=2024-05-01T00:00:00Z&why=iso")
    assert status == 200 and body["boundary_gps"] == 1398556818  # 2024-05-01 UTC + 18 leap seconds - GPS epoch


def test_the_explanation_applies_and_lists_the_epochs_in_force(client):
    status, whole = post(client, f"/calib/admin/epochs?boundary={NEAR - 100}&why=cable+change")
    assert status == 200, whole
    status, rx2 = post(client, f"/calib/admin/epochs?boundary={TARGET - 50}&why=rx2+swap&receivers=2")
    assert status == 200, rx2
    status, body = get(client, f"/calib/get_cal_selection?obs_id={TARGET}")
    assert status == 200, body
    cals = {c["cal_id"]: c for c in body["calibrators"]}
    assert cals[FAR]["code"] == "epoch" and f"validity epoch {whole['epoch_id']}" in cals[FAR]["reason"]
    assert body["choice"]["fitid"] == NEW
    assert [(e["epoch_id"], e["whole"], e["applied"]) for e in body["epochs"]] == [
        (whole["epoch_id"], True, False), (rx2["epoch_id"], False, True)]
    codes = {t["tile_id"]: t["code"] for t in body["tiles"]}
    assert {t for t, c in codes.items() if c == "epoch"} == set(range(19, 27))  # receiver 2: served as NaN
    # an ended epoch no longer applies
    assert post(client, f"/calib/admin/epochs/{rx2['epoch_id']}/end?why=reverted")[0] == 200
    body = get(client, f"/calib/get_cal_selection?obs_id={TARGET}")[1]
    assert [e["epoch_id"] for e in body["epochs"]] == [whole["epoch_id"]]
    assert all(t["code"] is None for t in body["tiles"])
