"""``python -m chalicelib.schema_check`` on real PostgreSQL databases, and the migrations only ever adding.

Databases: the session's migrated one (everything present), and one made to look like the MWA
database -- only the MWA tables, calibration_request without our columns, one column dropped, one
of another type, one extra -- where the check must name each difference and exit non-zero.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pg8000.native
import pytest

from chalicelib import schema_check
from chalicelib.db import catalog
from tests.mwa_files import PROJECT_ROOT

# The MWA database's calibration_request (domain.md): without the columns of ours.
MWA_CALIBRATION_REQUEST = """
CREATE TABLE calibration_request (
    id serial PRIMARY KEY, cal_id bigint NOT NULL, realtime boolean NOT NULL DEFAULT false,
    bulk_request boolean NOT NULL DEFAULT false, request_added_datetime timestamptz NOT NULL DEFAULT now(),
    calibration_started_datetime timestamptz, calibration_completed_datetime timestamptz,
    calibration_fit_id bigint, calibration_error_datetime timestamptz, calibration_error_message text)
"""
OUR_REQUEST_COLUMNS_IN_CREATE = {"target_obs_id", "asvo_job_id", "callback_url", "request_key", "callback_state",
                                 "callback_attempts", "callback_next_attempt", "callback_delivered_datetime"}


def run_cli(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "chalicelib.schema_check"], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=60, env={**os.environ, **env})


def admin(database_env: dict[str, str], dbname: str = "postgres") -> pg8000.native.Connection:
    kw = {"user": database_env["CALIB_DB_USER"], "database": dbname, "password": database_env.get("CALIB_DB_PASSWORD")}
    if "CALIB_DB_UNIX_SOCK" in database_env:
        kw["unix_sock"] = database_env["CALIB_DB_UNIX_SOCK"]
    else:
        kw.update(host=database_env["CALIB_DB_HOST"], port=int(database_env["CALIB_DB_PORT"]))
    return pg8000.native.Connection(**kw)


@pytest.fixture
def mwa_like(database):
    """A second database holding only the MWA tables, with the differences the check must find."""
    name = f"calib_mwa_like_{os.getpid()}"
    conn = admin(database)
    conn.run(f"DROP DATABASE IF EXISTS {name}")
    conn.run(f"CREATE DATABASE {name}")
    conn.close()
    conn = admin(database, name)
    for _migration, statement in schema_check.migration_statements():
        m = re.match(r"CREATE TABLE IF NOT EXISTS (\w+)", statement)
        if m and m.group(1) in schema_check.MWA_TABLES and m.group(1) != "calibration_request":
            conn.run(statement)
    conn.run(MWA_CALIBRATION_REQUEST)
    conn.run("ALTER TABLE calibration_solutions DROP COLUMN x_phase_chi2dof")
    conn.run("ALTER TABLE rf_stream ALTER COLUMN gain_control_value TYPE integer")
    conn.run("ALTER TABLE mwa_setting ADD COLUMN dataquality integer")  # the real one has more columns: fine
    conn.close()
    yield {**database, "CALIB_DB_NAME": name}
    conn = admin(database)
    conn.run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    conn.close()


def test_the_migrated_database_has_everything_and_the_check_exits_0(database):
    result = run_cli(database)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "result: no problems; the migrations would create 0 tables and add 0 columns" in result.stdout
    for table in schema_check.required_schema():
        assert re.search(rf"^  ok +{table}: (\d+) of \1 columns as needed$", result.stdout, re.M), table


def test_what_the_migrations_declare_is_exactly_what_postgresql_made_of_them(database):
    required = schema_check.required_schema()
    made = catalog.table_columns(required)

    assert set(made) == set(required)
    for name, table in required.items():
        assert {c.name: c.type for c in table.columns.values()} == made[name], name


def test_an_mwa_like_database_gets_each_difference_named_and_a_non_zero_exit(mwa_like):
    result = run_cli(mwa_like)
    out = result.stdout

    assert result.returncode == 1, out + result.stderr
    assert "    TYPE     rf_stream.gain_control_value: integer here, double precision needed" in out
    assert "    MISSING  calibration_solutions.x_phase_chi2dof: double precision needed;" in out
    for column in OUR_REQUEST_COLUMNS_IN_CREATE:
        assert re.search(rf"^    add      calibration_request\.{column}: .*added by 0001_schema.sql$", out, re.M), column
    assert "    add      calibration_request.callback_body: text, added by 0002_request_callback_body.sql" in out
    for ours in ("observation_tile", "calibration_request_callback_attempt", "calibration_fit_file"):
        assert re.search(rf"^  create   {ours}: \d+ columns, created by 0001_schema.sql$", out, re.M), ours
    assert "  ok       mwa_setting: 7 of 7 columns as needed; 1 other column not used" in out
    assert "  partial  calibration_solutions: 22 of 23 columns as needed" in out
    assert "result: 2 problems (1 missing, 1 of another type); the migrations would create 9 tables and add 9 columns" \
        in out


def test_the_findings_of_the_mwa_like_database(mwa_like, monkeypatch):
    for key, value in mwa_like.items():
        monkeypatch.setenv(key, value)

    findings, _ = schema_check.check()

    problems = {(f.status, f.table, f.column) for f in findings if f.problem}
    assert problems == {("TYPE", "rf_stream", "gain_control_value"),
                        ("MISSING", "calibration_solutions", "x_phase_chi2dof")}


def test_the_migrations_run_on_the_mwa_like_database_and_add_our_request_columns(mwa_like, monkeypatch):
    from chalicelib import db, migrate

    for key, value in mwa_like.items():
        monkeypatch.setenv(key, value)
    db.close()
    try:
        applied = migrate.apply()
        findings, _ = schema_check.check()
        columns = {r["column_name"] for r in db.query(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'calibration_request'")}
    finally:
        db.close()

    assert applied[0] == "0001_schema.sql"
    assert OUR_REQUEST_COLUMNS_IN_CREATE <= columns
    # only the two differences made on purpose remain: the migrations never alter the MWA's columns
    assert {(f.status, f.table, f.column) for f in findings if f.problem} == {
        ("TYPE", "rf_stream", "gain_control_value"), ("MISSING", "calibration_solutions", "x_phase_chi2dof")}


def test_an_absent_mwa_table_is_a_problem_and_an_absent_table_of_ours_is_created():
    required = schema_check.required_schema()
    present = {name: {c.name: c.type for c in t.columns.values()} for name, t in required.items()}
    del present["schedule_metadata"], present["calibration_fit_file"]

    findings = {(f.status, f.table) for f in schema_check.compare(required, present) if f.column is None}

    assert ("MISSING", "schedule_metadata") in findings
    assert ("create", "calibration_fit_file") in findings


def test_an_unreachable_database_exits_2(tmp_path):
    result = run_cli({"CALIB_DB_UNIX_SOCK": str(tmp_path / "no-such-socket"), "CALIB_DB_TIMEOUT_S": "2"})

    assert result.returncode == 2
    assert "cannot connect to the database" in result.stderr


def test_every_mwa_table_is_one_the_migrations_declare():
    assert set(schema_check.MWA_TABLES) <= set(schema_check.required_schema())


# --- the migrations only ever add ------------------------------------------------------------------

ADDING = (
    re.compile(r"^CREATE TABLE IF NOT EXISTS \w+ \(", re.I),
    re.compile(r"^CREATE (UNIQUE )?INDEX IF NOT EXISTS \w+ ON \w+ ", re.I),
    re.compile(r"^ALTER TABLE \w+ ADD COLUMN IF NOT EXISTS \w+ [^,]*$", re.I),
)
# our own append-only audit table (0006): the rules and the REVOKE that keep it append-only, on it alone
APPEND_ONLY = (
    re.compile(r"^CREATE OR REPLACE RULE \w+ AS ON (UPDATE|DELETE) TO operator_audit DO INSTEAD NOTHING$", re.I),
    re.compile(r"^REVOKE UPDATE, DELETE, TRUNCATE ON operator_audit FROM PUBLIC$", re.I),
)
# ON DELETE / ON UPDATE are foreign-key clauses, not statements
CHANGING = re.compile(r"\b(?:DROP|RENAME|TRUNCATE)\b|(?<!ON )\b(?:DELETE|UPDATE)\b"
                      r"|\bALTER\s+(?:COLUMN\s+)?\w+\s+(?:SET\s+DATA\s+)?TYPE\b", re.I)


def not_adding(statement: str) -> str | None:
    """Why a migration statement does more than add (None when it only adds, safely re-runnable)."""
    if any(p.match(statement) for p in APPEND_ONLY):
        return None
    if m := CHANGING.search(statement):
        return f"{m.group(0).upper()} in: {statement[:120]}"
    if not any(p.match(statement) for p in ADDING):
        return f"not a CREATE ... IF NOT EXISTS or ADD COLUMN IF NOT EXISTS: {statement[:120]}"
    return None


def test_the_migrations_only_ever_add():
    statements = schema_check.migration_statements()
    assert len(statements) > 10  # the files were read

    problems = [f"{migration}: {why}" for migration, s in statements if (why := not_adding(s))]

    assert problems == []


@pytest.mark.parametrize("statement", [
    "DROP TABLE rf_stream",
    "ALTER TABLE rf_stream ALTER COLUMN gain_control_value TYPE integer",
    "ALTER TABLE mwa_setting RENAME COLUMN obsname TO name",
    "ALTER TABLE calibration_solutions DROP COLUMN x_phase_chi2dof",
    "ALTER TABLE calibration_request ADD COLUMN asvo_job_id bigint",  # not re-runnable
    "CREATE TABLE mwa_setting (starttime bigint)",  # fails on the MWA database
    "UPDATE mwa_setting SET obsname = ''",
    "DELETE FROM calibration_fits",
    "ALTER TABLE rf_stream ALTER gain_control_value SET DATA TYPE integer",
])
def test_the_scan_catches_statements_that_change_or_cannot_rerun(statement):
    assert not_adding(" ".join(statement.split())) is not None
