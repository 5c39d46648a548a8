"""The database module and migrations against a real PostgreSQL."""

from __future__ import annotations

import math
from datetime import datetime, timezone

import numpy as np
import pytest

from chalicelib import db, migrate
from chalicelib.db import writes
from chalicelib.errors import DatabaseUnavailable
from chalicelib.records import Fit, Observation, SolutionRow
from tests.factories import flagged_row, observation, tiles


def test_migrations_create_the_mwa_tables(clean_db):
    tables = {r["table_name"] for r in db.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")}
    for name in ("mwa_setting", "schedule_metadata", "rf_stream", "observation_tile", "calibration_fits",
                 "calibration_solutions", "calibration_request", "calibration_request_callback_attempt"):
        assert name in tables
    cols = {r["column_name"]: r["data_type"] for r in db.query(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'calibration_solutions'")}
    assert cols["x_gains"] == "ARRAY" and cols["x_delay_m"] == "double precision"
    assert {"x_gains_pol0", "y_gains_pol1", "x_phase_chi2dof", "y_gains_fit_quality"} <= set(cols)


def test_migrations_reapplied_change_nothing(clean_db):
    before = db.query("SELECT name, applied_at FROM schema_migrations ORDER BY name")
    assert migrate.apply() == []
    assert db.query("SELECT name, applied_at FROM schema_migrations ORDER BY name") == before
    assert [r["name"] for r in before] == [p.name for p in migrate.pending(set())]


def test_migrations_on_a_fresh_database(database):
    import pg8000.native
    import os

    kwargs = {"user": os.environ["CALIB_DB_USER"]}
    if os.environ.get("CALIB_DB_UNIX_SOCK"):
        kwargs["unix_sock"] = os.environ["CALIB_DB_UNIX_SOCK"]
    else:
        kwargs.update(host=os.environ["CALIB_DB_HOST"], port=int(os.environ["CALIB_DB_PORT"]))
    admin = pg8000.native.Connection(database=os.environ["CALIB_DB_NAME"], **kwargs)
    admin.run("DROP DATABASE IF EXISTS calib_fresh")
    admin.run("CREATE DATABASE calib_fresh")
    admin.close()
    old = os.environ["CALIB_DB_NAME"]
    os.environ["CALIB_DB_NAME"] = "calib_fresh"
    try:
        assert migrate.apply() == [p.name for p in migrate.pending(set())]
        assert migrate.apply() == []
    finally:
        os.environ["CALIB_DB_NAME"] = old
        db.close()


def _obs(obsid: int) -> Observation:
    """A 16-tile calibrator with tile 14 flagged in the metafits."""
    return observation(obsid, calibration=True, tiles=tiles(16, flagged=(14,)))


def test_fit_rows_round_trip_with_nan_and_numpy(clean_db):
    obs = _obs(1300000000)
    fit = Fit(fitid=1_700_000_000_123_456, obsid=obs.obsid, fit_time=datetime(2023, 11, 14, tzinfo=timezone.utc),
              creator="calvin", code_version="1.1.3")
    gains = np.linspace(1.0, 2.0, 24)
    rows = [SolutionRow(tileid=11, x_delay_m=np.float64(1.25), x_intercept=0.5, x_gains=gains, y_delay_m=-2.0,
                        y_intercept=0.1, y_gains=list(gains), x_gains_pol0=[0.0] * 24),
            flagged_row(14)]
    with db.transaction() as tx:
        writes.insert_observation(tx, obs)
        writes.insert_fit(tx, fit, rows)
    got = db.query("SELECT * FROM calibration_solutions ORDER BY tileid")
    assert [r["tileid"] for r in got] == [11, 14]
    assert got[0]["x_delay_m"] == 1.25 and got[0]["x_gains"] == pytest.approx(gains.tolist(), abs=0)
    assert got[0]["x_gains_pol0"] == [0.0] * 24 and got[0]["x_gains_pol1"] is None
    assert math.isnan(got[1]["x_delay_m"]) and all(math.isnan(v) for v in got[1]["y_gains"])
    f = db.query("SELECT fitid, fit_time FROM calibration_fits")[0]
    assert f["fitid"] == 1_700_000_000_123_456 and f["fit_time"].tzinfo is not None
    assert db.query("SELECT frequencies FROM rf_stream")[0]["frequencies"] == list(range(109, 133))
    assert db.query("SELECT count(*) AS n FROM observation_tile WHERE flagged")[0]["n"] == 1


def test_transaction_rolls_back_everything_on_error(clean_db):
    obs = _obs(1300000100)
    with pytest.raises(ZeroDivisionError):
        with db.transaction() as tx:
            writes.insert_observation(tx, obs)
            1 / 0
    assert db.query("SELECT count(*) AS n FROM mwa_setting")[0]["n"] == 0


def test_dead_connection_is_reopened_once(clean_db):
    conn = db.connection()
    pid = db.query("SELECT pg_backend_pid() AS pid")[0]["pid"]
    # Kill our own backend from a second connection: the next query finds the socket dead.
    db.close()
    other = db.connection()
    victim_pid = db.query("SELECT pg_backend_pid() AS pid")[0]["pid"]
    import pg8000.native, os

    kwargs = {"user": os.environ["CALIB_DB_USER"], "database": os.environ["CALIB_DB_NAME"]}
    if os.environ.get("CALIB_DB_UNIX_SOCK"):
        kwargs["unix_sock"] = os.environ["CALIB_DB_UNIX_SOCK"]
    else:
        kwargs.update(host=os.environ["CALIB_DB_HOST"], port=int(os.environ["CALIB_DB_PORT"]))
    killer = pg8000.native.Connection(**kwargs)
    killer.run("SELECT pg_terminate_backend(:p)", p=victim_pid)
    killer.close()
    assert db.query("SELECT 41 + 1 AS x")[0]["x"] == 42
    assert db.query("SELECT pg_backend_pid() AS pid")[0]["pid"] not in (victim_pid,)
    assert conn is not other and pid is not None


def test_unreachable_database_is_a_503_error(clean_db, monkeypatch):
    db.close()
    monkeypatch.setenv("CALIB_DB_UNIX_SOCK", "/nonexistent/.s.PGSQL.5432")
    with pytest.raises(DatabaseUnavailable) as exc:
        db.query("SELECT 1")
    assert exc.value.status == 503
    db.close()
