-- Operators steer what is served (README "Operating the selection"): retired fits, the preferred
-- fit of a calibrator, validity epochs, and the append-only audit trail of every change.
-- Only the admin routes (role calib_admin) write these tables; the API's read-only role reads them.

-- A retired fit is never served nor a candidate; restoring it removes its row (the audit keeps it).
CREATE TABLE IF NOT EXISTS calibration_fit_retirement (
    fitid      bigint PRIMARY KEY,
    reason     text NOT NULL,
    retired_by text NOT NULL,
    retired_at timestamptz NOT NULL DEFAULT now()
);

-- At most one preferred fit per calibrator observation: preferring another replaces the row.
CREATE TABLE IF NOT EXISTS calibration_fit_preference (
    cal_obsid    bigint PRIMARY KEY,
    fitid        bigint NOT NULL,
    reason       text NOT NULL,
    preferred_by text NOT NULL,
    preferred_at timestamptz NOT NULL DEFAULT now()
);

-- A validity epoch: no calibrator on one side of boundary_gps serves a target on the other side.
-- receivers / tiles NULL: the whole solution; else only those receivers' / tiles' solutions (NaN).
CREATE TABLE IF NOT EXISTS validity_epoch (
    epoch_id     bigserial PRIMARY KEY,
    boundary_gps bigint NOT NULL,
    receivers    integer[],
    tiles        integer[],
    reason       text NOT NULL,
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    ended_at     timestamptz,
    ended_by     text,
    end_reason   text
);
CREATE INDEX IF NOT EXISTS validity_epoch_boundary_idx ON validity_epoch (boundary_gps) WHERE ended_at IS NULL;

-- Every change: who (IAM principal ARN, or 'local'), when, why. Append-only: updates and deletes
-- do nothing (the rules below), and no role but the owner may even try.
CREATE TABLE IF NOT EXISTS operator_audit (
    audit_id  bigserial PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT now(),
    who       text NOT NULL,
    action    text NOT NULL,
    fitid     bigint,
    cal_obsid bigint,
    epoch_id  bigint,
    why       text NOT NULL,
    detail    text
);
CREATE INDEX IF NOT EXISTS operator_audit_at_idx ON operator_audit (at);
CREATE OR REPLACE RULE operator_audit_no_update AS ON UPDATE TO operator_audit DO INSTEAD NOTHING;
CREATE OR REPLACE RULE operator_audit_no_delete AS ON DELETE TO operator_audit DO INSTEAD NOTHING;
REVOKE UPDATE, DELETE, TRUNCATE ON operator_audit FROM PUBLIC;
