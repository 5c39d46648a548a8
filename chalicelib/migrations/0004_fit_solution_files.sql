-- Every hyperdrive solution file of a fit in the calibration bucket, and the coarse channels it
-- covers, so get_cal_solution?source=file fetches just the files it needs without listing the
-- bucket. Recorded when a fit lands (manifest ingest; the site pipeline's <cal_id>_solutions.fits)
-- and by the backfill (python -m chalicelib.ingest.backfill). Only adds: calibration_fit_file
-- (the one file get_cal_fits names) is unchanged.
CREATE TABLE IF NOT EXISTS calibration_fit_solution_file (
    fitid           bigint NOT NULL,
    obsid           bigint NOT NULL,
    bucket_key      text NOT NULL,
    coarse_channels integer[] NOT NULL,          -- receiver channels of its chanblocks, ascending
    n_chanblocks    integer NOT NULL,
    n_timeblocks    integer NOT NULL,
    chanblock_hz    double precision NOT NULL,   -- its native chanblock width
    size            bigint NOT NULL,             -- bytes
    PRIMARY KEY (fitid, obsid, bucket_key),
    FOREIGN KEY (fitid, obsid) REFERENCES calibration_fits(fitid, obsid) ON DELETE CASCADE
);
