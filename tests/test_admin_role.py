"""The admin writes as the database role README's "Roles" paragraph creates, with the password of its secret.

The role is made in the test's database by README's own SQL block (so the block is what is tested);
its password comes from a moto Secrets Manager secret, and the server is made to check passwords
(SCRAM) for the test's roles, so a login with another password is refused.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pg8000.native
import pytest

from chalicelib import db
from tests.factories import fit, observation, seed, solution_rows, tiles

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
ADMIN = f"calib_admin_t{os.getpid()}"
READER = f"calib_ro_t{os.getpid()}"
PASSWORDS = {ADMIN: "admin-pw-7Qx", READER: "ro-pw-3Lm"}
SECRET = {ADMIN: "mwa-calib/db-password-admin", READER: "mwa-calib/db-password-ro"}
CAL, FITID, FITID2 = 1_400_000_600, 1_700_000_000_000_000, 1_700_000_000_000_001
ARN = "arn:aws:sts::123456789012:assumed-role/mwa-operators/jane"
CONTEXT = {"identity": {"sourceIp": "203.0.113.9", "userArn": ARN}}


def _readme_sql(role: str, password: str) -> list[str]:
    """README's statements for calib_admin (the Roles paragraph's SQL block), for this role and password."""
    roles = README.split("**Roles.**", 1)[1]
    block = re.search(r"```sql\n(.*?)```", roles, re.S).group(1)
    statements = [s.strip() for s in block.split(";") if s.strip()]
    assert statements[0].startswith("CREATE ROLE calib_admin LOGIN PASSWORD")
    return [re.sub(r"\bcalib_admin\b", role, s).replace("'...'", f"'{password}'") for s in statements]


def _drop(role: str) -> None:
    if db.query("SELECT 1 FROM pg_roles WHERE rolname = :r", {"r": role}):
        db.execute(f"DROP OWNED BY {role}")
        db.execute(f"DROP ROLE {role}")


def _connect(role: str, password: str | None) -> pg8000.native.Connection:
    where = ({"unix_sock": os.environ["CALIB_DB_UNIX_SOCK"]} if os.environ.get("CALIB_DB_UNIX_SOCK")
             else {"host": os.environ["CALIB_DB_HOST"], "port": int(os.environ["CALIB_DB_PORT"])})
    return pg8000.native.Connection(user=role, password=password, database=os.environ["CALIB_DB_NAME"], **where)


def _as_owner(database: dict[str, str], *statements: str) -> None:
    """Run statements as the session's superuser (whatever role the service's connection has now)."""
    conn = _connect(database["CALIB_DB_USER"], database.get("CALIB_DB_PASSWORD"))
    try:
        for statement in statements:
            conn.run(statement)
    finally:
        conn.close()


@pytest.fixture
def passwords_checked(clean_db):
    """The server asks the test's roles for their passwords (SCRAM); the session's superuser is untouched."""
    hba = Path(db.query("SHOW hba_file")[0]["hba_file"])
    before = hba.read_text()
    hba.write_text(f"local all {ADMIN},{READER} scram-sha-256\nhost all {ADMIN},{READER} all scram-sha-256\n" + before)
    db.query("SELECT pg_reload_conf()")
    db.execute(f"CREATE ROLE {READER} LOGIN PASSWORD 'not-yet'")
    try:
        deadline = time.monotonic() + 10
        while True:  # the server reloads its rules a moment after the signal
            try:
                _connect(READER, "a-wrong-password").close()
            except (pg8000.native.DatabaseError, pg8000.native.InterfaceError):  # refused
                break
            assert time.monotonic() < deadline, "the server does not check the test roles' passwords"
            time.sleep(0.05)
        _drop(READER)
        yield
    finally:
        db.close()  # the superuser again (a test may have switched the API's connection)
        hba.write_text(before)
        db.query("SELECT pg_reload_conf()")
        _drop(ADMIN)
        _drop(READER)


@pytest.fixture
def prod_roles(passwords_checked, aws, monkeypatch):
    """As in prod: the API's connection as a read-only role, the admin writes as README's calib_admin."""
    import boto3

    from chalicelib import secrets

    ts = tiles(8)
    seed([observation(CAL, calibration=True, tiles=ts)],
         [(fit(f, CAL), solution_rows([t.tile_id for t in ts])) for f in (FITID, FITID2)])
    for statement in _readme_sql(ADMIN, PASSWORDS[ADMIN]):
        db.execute(statement)
    db.execute(f"CREATE ROLE {READER} LOGIN PASSWORD '{PASSWORDS[READER]}'")
    db.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {READER}")
    sm = boto3.client("secretsmanager", region_name="ap-southeast-2")
    for role in (ADMIN, READER):
        sm.create_secret(Name=SECRET[role], SecretString=json.dumps({"username": role, "password": PASSWORDS[role]}))
    secrets.forget()
    monkeypatch.setenv("CALIB_ADMIN_AUTH", "iam")
    monkeypatch.setenv("CALIB_DB_USER", READER)
    monkeypatch.delenv("CALIB_DB_PASSWORD", raising=False)
    monkeypatch.setenv("CALIB_DB_PASSWORD_SECRET", SECRET[READER])
    monkeypatch.setenv("CALIB_ADMIN_DB_USER", ADMIN)
    monkeypatch.setenv("CALIB_ADMIN_DB_PASSWORD_SECRET", SECRET[ADMIN])
    yield sm
    secrets.forget()


def _steer() -> list[str]:
    """Every admin write through the routes' code, as an operator; the actions of the audit trail, oldest first."""
    from chalicelib.admin import actions

    assert actions.retire({"fitid": str(FITID2), "why": "rx 4 cable"}, CONTEXT).status_code == 200
    assert actions.restore({"fitid": str(FITID2), "why": "fault after the fit"}, CONTEXT).status_code == 200
    assert actions.prefer({"fitid": str(FITID), "why": "reference fit"}, CONTEXT).status_code == 200
    assert actions.prefer({"fitid": str(FITID2), "why": "better reference"}, CONTEXT).status_code == 200
    added = actions.add_epoch({"boundary": "1400000000", "why": "receiver 12 swapped", "receivers": "12"}, CONTEXT)
    assert added.status_code == 200
    epoch = json.loads(added.body)["epoch_id"]
    assert actions.end_epoch(str(epoch), {"why": "swap reverted"}, CONTEXT).status_code == 200
    trail = json.loads(actions.audit({}, CONTEXT).body)["audit"]
    assert {a["who"] for a in trail} == {ARN}
    return [a["action"] for a in reversed(trail)]


def test_the_admin_writes_log_in_as_calib_admin_and_succeed_with_readmes_grants(prod_roles):
    from chalicelib.db import steering

    assert db.query("SELECT current_user AS u")[0]["u"] == READER  # the API's own connection
    with steering.admin_transaction() as tx:
        assert tx.run("SELECT session_user AS s, current_user AS u")[0] == {"s": ADMIN, "u": ADMIN}

    assert _steer() == ["retire", "restore", "prefer", "prefer", "epoch_add", "epoch_end"]

    assert db.query("SELECT current_user AS u")[0]["u"] == READER  # it never gained write rights
    with pytest.raises(pg8000.native.DatabaseError, match="permission denied"):
        db.execute("DELETE FROM calibration_fit_preference")
    assert db.query("SELECT cal_obsid, fitid FROM calibration_fit_preference") == [{"cal_obsid": CAL, "fitid": FITID2}]
    assert db.query("SELECT count(*) AS n FROM calibration_fit_retirement")[0]["n"] == 0
    (epoch,) = db.query("SELECT receivers, ended_by, end_reason FROM validity_epoch")
    assert epoch == {"receivers": [12], "ended_by": ARN, "end_reason": "swap reverted"}


def test_the_admin_role_writes_only_the_steering_tables_and_never_rewrites_the_audit(prod_roles):
    from chalicelib.db import steering

    _steer()
    trail = db.query("SELECT * FROM operator_audit ORDER BY audit_id")
    for sql in ("DELETE FROM calibration_solutions", "UPDATE calibration_fits SET fitid = fitid",
                "INSERT INTO observation_tile SELECT * FROM observation_tile LIMIT 0", "TRUNCATE operator_audit"):
        with pytest.raises(pg8000.native.DatabaseError, match="permission denied"), steering.admin_transaction() as tx:
            tx.run(sql)
            pytest.fail(f"{ADMIN} may run {sql}")
    for sql in ("UPDATE operator_audit SET why = 'rewritten'", "DELETE FROM operator_audit"):
        with steering.admin_transaction() as tx:  # the table's rules make these do nothing
            tx.run(sql)
    assert db.query("SELECT * FROM operator_audit ORDER BY audit_id") == trail
    assert db.query("SELECT count(*) AS n FROM calibration_solutions")[0]["n"] == 2 * 8


def test_a_wrong_password_in_the_admin_secret_is_a_503_and_changes_nothing(prod_roles):
    from chalicelib import secrets
    from chalicelib.admin import actions
    from chalicelib.errors import DatabaseUnavailable

    prod_roles.put_secret_value(SecretId=SECRET[ADMIN],
                                SecretString=json.dumps({"username": ADMIN, "password": "stale"}))
    secrets.forget()
    with pytest.raises(DatabaseUnavailable) as err:
        actions.retire({"fitid": str(FITID), "why": "x"}, CONTEXT)
    assert err.value.status == 503 and "stale" not in err.value.message
    assert db.query("SELECT count(*) AS n FROM operator_audit")[0]["n"] == 0


def test_the_same_writes_as_the_read_only_role_are_refused(prod_roles, monkeypatch):
    from chalicelib.admin import actions

    monkeypatch.setenv("CALIB_ADMIN_DB_USER", READER)  # the admin writes on the API's read-only role
    monkeypatch.setenv("CALIB_ADMIN_DB_PASSWORD_SECRET", SECRET[READER])
    calls = [(actions.retire, {"fitid": str(FITID), "why": "x"}), (actions.prefer, {"fitid": str(FITID), "why": "x"}),
             (actions.add_epoch, {"boundary": "1400000000", "why": "x"})]
    for action, query in calls:
        with pytest.raises(pg8000.native.DatabaseError, match="permission denied"):
            action(query, CONTEXT)
    for table in ("calibration_fit_retirement", "calibration_fit_preference", "validity_epoch", "operator_audit"):
        assert db.query(f"SELECT count(*) AS n FROM {table}")[0]["n"] == 0, table


@pytest.mark.parametrize("left_out", range(1, len(_readme_sql(ADMIN, "x"))))
def test_every_grant_of_readmes_block_is_needed(prod_roles, database, left_out):
    statements = _readme_sql(ADMIN, PASSWORDS[ADMIN])
    _as_owner(database, f"DROP OWNED BY {ADMIN}", f"DROP ROLE {ADMIN}",
              *(s for i, s in enumerate(statements) if i != left_out))
    with pytest.raises(pg8000.native.DatabaseError, match="permission denied"):
        _steer()
