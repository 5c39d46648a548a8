"""get_cal_selection explains the validity epochs the service applies: the same calibrator refused, the same tiles NaN.

Real PostgreSQL and the Chalice test client; epochs opened through the admin route (127.0.0.1 on the dev stage).
"""

from __future__ import annotations

import json

import pytest
from chalice.test import Client

from tests.factories import fit, observation, seed, solution_rows, tiles

TARGET = 1_400_000_000
NEAR, FAR = TARGET - 600, TARGET - 5000
NEARFIT, FARFIT = 1_700_000_000_000_000, 1_650_000_000_000_000


@pytest.fixture
def client(clean_db, aws):
    """The target and two calibrators before it, one fit each; 16 tiles, 11..18 on receiver 1, 19..26 on 2."""
    from app import app

    ts = tiles(16)
    ids = [t.tile_id for t in ts]
    seed([observation(TARGET, tiles=ts), observation(NEAR, calibration=True, tiles=ts),
          observation(FAR, calibration=True, tiles=ts)],
         [(fit(NEARFIT, NEAR), solution_rows(ids)), (fit(FARFIT, FAR), solution_rows(ids))])
    with Client(app) as c:
        yield c


def call(client, method: str, path: str) -> tuple[int, dict]:
    r = client.http.request(method, path)
    return r.status_code, json.loads(r.body or b"null")


def test_the_explanation_applies_and_lists_the_epochs_in_force(client):
    status, whole = call(client, "POST", f"/calib/admin/epochs?boundary={NEAR - 100}&why=cable+change")
    assert status == 200, whole
    status, rx2 = call(client, "POST", f"/calib/admin/epochs?boundary={TARGET - 50}&why=rx2+swap&receivers=2")
    assert status == 200, rx2
    status, body = call(client, "GET", f"/calib/get_cal_selection?obs_id={TARGET}")
    assert status == 200, body
    cals = {c["cal_id"]: c for c in body["calibrators"]}
    assert cals[FAR]["code"] == "epoch" and f"validity epoch {whole['epoch_id']}" in cals[FAR]["reason"]
    assert body["choice"]["fitid"] == NEARFIT
    assert [(e["epoch_id"], e["whole"], e["applied"]) for e in body["epochs"]] == [
        (whole["epoch_id"], True, False), (rx2["epoch_id"], False, True)]
    codes = {t["tile_id"]: t["code"] for t in body["tiles"]}
    assert {t for t, c in codes.items() if c == "epoch"} == set(range(19, 27))  # receiver 2, as served (NaN)
    # an ended epoch no longer applies
    assert call(client, "POST", f"/calib/admin/epochs/{rx2['epoch_id']}/end?why=reverted")[0] == 200
    body = call(client, "GET", f"/calib/get_cal_selection?obs_id={TARGET}")[1]
    assert [e["epoch_id"] for e in body["epochs"]] == [whole["epoch_id"]]
    assert all(t["code"] is None for t in body["tiles"])
