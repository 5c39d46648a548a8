"""The deprecated get_calfile_for_obsid with the prod stage's settings: it never queues a fit without the API key.

The API function runs with the behaviour settings prod gives it in .chalice/config.json (the ones
naming AWS resources stay the test's). With ``add_request=1`` it still serves a solution that
exists; when none does, the 400 says nothing was queued and how to queue one.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
import requests
from chalice.test import Client

from tests.factories import fit, observation, seed, solution_rows

CONFIG = json.loads((Path(__file__).resolve().parent.parent / ".chalice" / "config.json").read_text())
# settings that name a resource of the deployment, not how the service behaves
WHERE = ("CALIB_DB_", "CALIB_CAL_BUCKET", "CALIB_PRODUCTS_BUCKET", "CALIB_REQUEST_QUEUE_URL", "POWERTOOLS_",
         "MPLCONFIGDIR", "CALIB_CALLBACK_SIGNING_SECRET")
T0 = 1_400_000_000
CAL = T0 - 600
FITID = 1_700_000_000_000_000


def _prod_api_env() -> dict[str, str]:
    prod = CONFIG["stages"]["prod"]
    env = {**CONFIG["environment_variables"], **prod["environment_variables"],
           **prod["lambda_functions"]["api_handler"].get("environment_variables", {})}
    return {k: v for k, v in env.items() if not k.startswith(WHERE)}


@pytest.fixture
def prod_client(clean_db, aws, monkeypatch):
    env = _prod_api_env()
    assert env["CALIB_LEGACY_ADD_REQUEST"] == "0"
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    from app import app

    with Client(app) as c:
        yield c


def test_prod_still_serves_an_existing_solution_with_add_request(prod_client, aws):
    seed([observation(CAL, calibration=True), observation(T0)], [(fit(FITID, CAL), solution_rows(range(11, 27)))])
    r = prod_client.http.get(f"/calib/get_calfile_for_obsid?obs_id={T0}&add_request=1")
    assert r.status_code == 302, r.body
    got = requests.get(r.headers["Location"], timeout=10)  # moto serves the presigned URL
    with zipfile.ZipFile(io.BytesIO(got.content)) as z:
        assert {f"{CAL}.bin", f"{T0}_flagged_tiles.txt", f"{T0}.metafits"} <= set(z.namelist())
    assert "Messages" not in aws["sqs"].receive_message(QueueUrl=aws["queue_url"])


def test_prod_queues_nothing_without_the_key_and_says_how_to_queue(prod_client, aws):
    seed([observation(CAL, calibration=True), observation(T0)])  # a calibrator to fit, no fit yet
    r = prod_client.http.get(f"/calib/get_calfile_for_obsid?obs_id={T0}&add_request=1")
    assert r.status_code == 400  # the spec's "no calibration solution"
    body = json.loads(r.body)
    assert body["error"] == "bad_request" and body["parameter"] == "obs_id"
    assert "no calibration solution" in body["message"]
    request = body["calibration_request"]
    assert request["queued"] is False
    assert "no calibration request was queued" in request["message"]
    assert f"/calib/add_cal_request?obs_id={T0}" in request["message"] and "API key" in request["message"]
    assert "Messages" not in aws["sqs"].receive_message(QueueUrl=aws["queue_url"])
    # the way the message names does queue it (in prod API Gateway asks for the key first)
    assert prod_client.http.get(f"/calib/add_cal_request?obs_id={T0}").status_code == 200
    (msg,) = aws["sqs"].receive_message(QueueUrl=aws["queue_url"])["Messages"]
    assert (json.loads(msg["Body"])["obs_id"], json.loads(msg["Body"])["cal_id"]) == (T0, CAL)
