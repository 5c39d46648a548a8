"""The app shell: health, error answers, and the shape of every documented route."""

from __future__ import annotations

import json

import pytest
from chalice.test import Client


@pytest.fixture
def client(clean_db, aws):
    from app import app

    with Client(app) as c:
        yield c


def test_health_is_200_with_database_and_buckets(client):
    r = client.http.get("/calib/health")
    assert r.status_code == 200
    body = json.loads(r.body)
    assert body["ok"] is True
    assert set(body["checks"]) >= {"database", "calibration_bucket", "products_bucket"}


def test_health_is_503_when_a_bucket_is_missing(client, aws):
    aws["s3"].delete_bucket(Bucket="test-products")
    r = client.http.get("/calib/health")
    assert r.status_code == 503
    body = json.loads(r.body)
    assert body["checks"]["products_bucket"]["ok"] is False
    assert body["checks"]["database"]["ok"] is True


def test_database_down_is_503_json_not_a_stack_trace(client, monkeypatch):
    from chalicelib import db

    db.close()
    monkeypatch.setenv("CALIB_DB_UNIX_SOCK", "/nonexistent/.s.PGSQL.5432")
    monkeypatch.delenv("CALIB_DB_HOST", raising=False)
    r = client.http.get("/calib/health")
    assert r.status_code == 503
    assert "Traceback" not in r.body.decode()
    db.close()


def test_a_fault_of_ours_is_500_with_a_request_id_and_no_trace(client, monkeypatch):
    from chalicelib.api import cal_solution

    def boom(query):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(cal_solution, "get_cal_fits", boom)
    r = client.http.get("/calib/get_cal_fits?obs_id=1")
    assert r.status_code == 500
    body = json.loads(r.body)
    assert body["request_id"] and body["error"] == "internal_error"
    assert "secret internals" not in r.body.decode() and "Traceback" not in r.body.decode()
