"""SQL of the operators' steering: validity epochs in force, and the admin writes with their audit rows.

Reads run on the API's connection; writes (``retire``, ``restore``, ``prefer``, ``add_epoch``,
``end_epoch``) each run in one transaction that also appends the ``operator_audit`` row, so no
change is ever made without its who, when and why.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from chalicelib import db
from chalicelib.config import settings
from chalicelib.errors import BadRequest, Conflict
from chalicelib.selection.steering import Epoch


def epochs_between(low: int, high: int) -> tuple[Epoch, ...]:
    """The validity epochs in force whose boundary lies in (low, high]: one query for a selection window."""
    rows = db.query(
        "SELECT epoch_id, boundary_gps, receivers, tiles, reason FROM validity_epoch"
        " WHERE ended_at IS NULL AND boundary_gps > :low AND boundary_gps <= :high ORDER BY boundary_gps, epoch_id",
        {"low": low, "high": high})
    return tuple(_epoch(r) for r in rows)


def _epoch(r: dict) -> Epoch:
    return Epoch(epoch_id=r["epoch_id"], boundary_gps=r["boundary_gps"], reason=r["reason"],
                 receivers=tuple(r["receivers"] or ()), tiles=tuple(r["tiles"] or ()))


# --- the admin writes: each one transaction with its audit row --------------------------------------------------

_AUDIT_SQL = ("INSERT INTO operator_audit (who, action, fitid, cal_obsid, epoch_id, why, detail)"
              " VALUES (:who, :action, :fitid, :cal_obsid, :epoch_id, :why, :detail) RETURNING audit_id, at")


@contextmanager
def admin_transaction() -> Iterator[db.Transaction]:
    """A transaction as the admin role (``CALIB_ADMIN_DB_USER`` with its own secret), else on the usual connection.

    The admin role gets a connection of its own for the call and closes it after, so the API's
    read-only connection never gains write rights and the admin one is never kept open idle.
    """
    cfg = settings()
    if not cfg.admin_db_user:
        with db.transaction() as tx:
            yield tx
        return
    conn = db._open(replace(cfg, db_user=cfg.admin_db_user, db_password=None,
                            db_password_secret=cfg.admin_db_password_secret))
    try:
        conn.run("BEGIN")
        yield db.Transaction(conn)
        conn.run("COMMIT")
    finally:
        conn.close()


def _audit(tx: db.Transaction, who: str, action: str, why: str, *, fitid: int | None = None,
           cal_obsid: int | None = None, epoch_id: int | None = None, detail: dict | None = None) -> dict:
    row = tx.run(_AUDIT_SQL, {"who": who, "action": action, "fitid": fitid, "cal_obsid": cal_obsid,
                              "epoch_id": epoch_id, "why": why,
                              "detail": json.dumps(detail, sort_keys=True) if detail else None})[0]
    return {"audit_id": row["audit_id"], "at": row["at"].isoformat()}


def fit_obsids(fitid: int) -> list[int]:
    """The observations a fit covers (empty when there is no such fit)."""
    return [r["obsid"] for r in db.query("SELECT obsid FROM calibration_fits WHERE fitid = :f ORDER BY obsid",
                                         {"f": fitid})]


def _known_fit(tx: db.Transaction, fitid: int) -> list[int]:
    obsids = [r["obsid"] for r in tx.run("SELECT obsid FROM calibration_fits WHERE fitid = :f ORDER BY obsid",
                                         {"f": fitid})]
    if not obsids:
        raise BadRequest(f"fit {fitid} does not exist", parameter="fitid")
    return obsids


def retire(fitid: int, why: str, who: str) -> dict[str, Any]:
    """Retire a fit (never served, never a candidate); 409 when it already is."""
    with admin_transaction() as tx:
        obsids = _known_fit(tx, fitid)
        done = tx.run("INSERT INTO calibration_fit_retirement (fitid, reason, retired_by) VALUES (:f, :why, :who)"
                      " ON CONFLICT (fitid) DO NOTHING RETURNING fitid", {"f": fitid, "why": why, "who": who})
        if not done:
            raise Conflict(f"fit {fitid} is already retired", parameter="fitid")
        audit = _audit(tx, who, "retire", why, fitid=fitid, detail={"obsids": obsids})
    return {"fitid": fitid, "retired": True, "reason": why, **audit}


def restore(fitid: int, why: str, who: str) -> dict[str, Any]:
    """Restore a retired fit; 409 when it is not retired."""
    with admin_transaction() as tx:
        _known_fit(tx, fitid)
        gone = tx.run("DELETE FROM calibration_fit_retirement WHERE fitid = :f RETURNING reason", {"f": fitid})
        if not gone:
            raise Conflict(f"fit {fitid} is not retired", parameter="fitid")
        audit = _audit(tx, who, "restore", why, fitid=fitid, detail={"was_retired_because": gone[0]["reason"]})
    return {"fitid": fitid, "retired": False, **audit}


def prefer(fitid: int, why: str, who: str, cal_obsid: int | None = None) -> dict[str, Any]:
    """Prefer a fit on its calibrator, replacing any preferred before; 409 for a retired fit."""
    with admin_transaction() as tx:
        obsids = _known_fit(tx, fitid)
        if cal_obsid is None:
            if len(obsids) > 1:
                raise BadRequest(f"fit {fitid} covers observations {obsids}: name one with obsid", parameter="obsid")
            cal_obsid = obsids[0]
        elif cal_obsid not in obsids:
            raise BadRequest(f"fit {fitid} is not a fit of observation {cal_obsid} (it covers {obsids})",
                             parameter="obsid")
        if tx.run("SELECT 1 FROM calibration_fit_retirement WHERE fitid = :f", {"f": fitid}):
            raise Conflict(f"fit {fitid} is retired: restore it first", parameter="fitid")
        before = tx.run("SELECT fitid FROM calibration_fit_preference WHERE cal_obsid = :c FOR UPDATE", {"c": cal_obsid})
        tx.run("INSERT INTO calibration_fit_preference (cal_obsid, fitid, reason, preferred_by)"
               " VALUES (:c, :f, :why, :who) ON CONFLICT (cal_obsid) DO UPDATE SET fitid = EXCLUDED.fitid,"
               " reason = EXCLUDED.reason, preferred_by = EXCLUDED.preferred_by, preferred_at = now()",
               {"c": cal_obsid, "f": fitid, "why": why, "who": who})
        replaced = before[0]["fitid"] if before else None
        audit = _audit(tx, who, "prefer", why, fitid=fitid, cal_obsid=cal_obsid, detail={"replaced": replaced})
    return {"fitid": fitid, "cal_obsid": cal_obsid, "replaced": replaced, **audit}


def add_epoch(boundary_gps: int, why: str, who: str, receivers: tuple[int, ...] = (),
              tiles: tuple[int, ...] = ()) -> dict[str, Any]:
    """Open a validity epoch at ``boundary_gps`` (for those receivers/tiles only, if named)."""
    with admin_transaction() as tx:
        row = tx.run("INSERT INTO validity_epoch (boundary_gps, receivers, tiles, reason, created_by)"
                     " VALUES (:b, CAST(:rx AS integer[]), CAST(:tiles AS integer[]), :why, :who) RETURNING epoch_id",
                     {"b": boundary_gps, "rx": list(receivers) or None, "tiles": list(tiles) or None,
                      "why": why, "who": who})[0]
        audit = _audit(tx, who, "epoch_add", why, epoch_id=row["epoch_id"],
                       detail={"boundary_gps": boundary_gps, "receivers": list(receivers), "tiles": list(tiles)})
    return {"epoch_id": row["epoch_id"], "boundary_gps": boundary_gps, "receivers": list(receivers),
            "tiles": list(tiles), **audit}


def end_epoch(epoch_id: int, why: str, who: str) -> dict[str, Any]:
    """End a validity epoch (it no longer applies); 400 unknown, 409 already ended."""
    with admin_transaction() as tx:
        found = tx.run("SELECT ended_at FROM validity_epoch WHERE epoch_id = :e FOR UPDATE", {"e": epoch_id})
        if not found:
            raise BadRequest(f"validity epoch {epoch_id} does not exist", parameter="epoch_id")
        if found[0]["ended_at"] is not None:
            raise Conflict(f"validity epoch {epoch_id} has already ended", parameter="epoch_id")
        tx.run("UPDATE validity_epoch SET ended_at = now(), ended_by = :who, end_reason = :why WHERE epoch_id = :e",
               {"e": epoch_id, "who": who, "why": why})
        audit = _audit(tx, who, "epoch_end", why, epoch_id=epoch_id)
    return {"epoch_id": epoch_id, "ended": True, **audit}


def list_epochs(include_ended: bool = False) -> list[dict[str, Any]]:
    """Every validity epoch (in force only, unless asked), by boundary."""
    rows = db.query("SELECT * FROM validity_epoch" + ("" if include_ended else " WHERE ended_at IS NULL")
                    + " ORDER BY boundary_gps, epoch_id")
    return [_jsonable(r) for r in rows]


def audit_trail(limit: int = 100, fitid: int | None = None, epoch_id: int | None = None) -> list[dict[str, Any]]:
    """The audit rows, newest first (of one fit or epoch if asked)."""
    rows = db.query("SELECT * FROM operator_audit WHERE (CAST(:f AS bigint) IS NULL OR fitid = :f)"
                    " AND (CAST(:e AS bigint) IS NULL OR epoch_id = :e) ORDER BY audit_id DESC LIMIT :lim",
                    {"f": fitid, "e": epoch_id, "lim": limit})
    out = [_jsonable(r) for r in rows]
    for r in out:
        r["detail"] = json.loads(r["detail"]) if r["detail"] else None
    return out


def _jsonable(row: dict) -> dict[str, Any]:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}
