-- The table's line-model error per fit, observation and tile (chalicelib/ingest/modelerror.py):
-- rms over the usable chanblocks of (the fit file's phase relative to the reference tile) minus
-- (the calibration_solutions row's line), X and Y, radians. Filled when a fit lands (manifest
-- ingest or the site pipeline's <cal_id>_solutions.fits). Only adds: older code ignores it.
CREATE TABLE IF NOT EXISTS calibration_model_error (
    fitid        bigint NOT NULL,
    obsid        bigint NOT NULL,
    tileid       integer NOT NULL,
    x_phase_rms  double precision,
    y_phase_rms  double precision,
    PRIMARY KEY (fitid, obsid, tileid)
);
