-- The MWA tables the service reads, with the MWA database's names (see README "Schema"),
-- plus the columns and tables of our own that the request queue and file index need.

CREATE TABLE IF NOT EXISTS mwa_setting (
    starttime   bigint PRIMARY KEY,          -- the obsid: GPS start second
    stoptime    bigint NOT NULL,
    obsname     text NOT NULL,
    creator     text,
    projectid   text,
    mode        text,
    modtime     timestamptz DEFAULT now()
);

CREATE TABLE IF NOT EXISTS schedule_metadata (
    observation_number bigint PRIMARY KEY REFERENCES mwa_setting(starttime) ON DELETE CASCADE,
    calibration        boolean NOT NULL DEFAULT false,
    calibrators        text
);

-- The observation's receiver channels and analogue attenuation.
CREATE TABLE IF NOT EXISTS rf_stream (
    starttime          bigint NOT NULL REFERENCES mwa_setting(starttime) ON DELETE CASCADE,
    number             integer NOT NULL DEFAULT 0,
    frequencies        integer[] NOT NULL,   -- the 24 receiver (coarse) channel numbers
    gain_control_value double precision,     -- ATTEN_DB
    PRIMARY KEY (starttime, number)
);

-- The tiles of each observation as its metafits TILEDATA has them (one row per tile).
CREATE TABLE IF NOT EXISTS observation_tile (
    obsid      bigint NOT NULL REFERENCES mwa_setting(starttime) ON DELETE CASCADE,
    tileid     integer NOT NULL,             -- metafits Tile
    tile_name  text NOT NULL,                -- metafits TileName
    antenna    integer NOT NULL,             -- 0-based metafits Antenna index
    rx         integer NOT NULL,
    slot       integer NOT NULL,
    flagged    boolean NOT NULL DEFAULT false,
    PRIMARY KEY (obsid, tileid),
    UNIQUE (obsid, antenna)
);

CREATE TABLE IF NOT EXISTS calibration_fits (
    fitid               bigint NOT NULL,     -- Unix seconds (old) or microseconds (current)
    obsid               bigint NOT NULL,
    code_version        text,
    fit_time            timestamptz,
    creator             text,
    fit_niter           integer,
    fit_limit           double precision,
    source_list         text,
    num_sources         integer,
    calibration_command text,
    gain_max_cutoff     double precision,
    PRIMARY KEY (fitid, obsid)
);

CREATE TABLE IF NOT EXISTS calibration_solutions (
    fitid                bigint NOT NULL,
    obsid                bigint NOT NULL,
    tileid               integer NOT NULL,
    x_delay_m            double precision,
    x_intercept          double precision,
    x_gains              double precision[],
    y_delay_m            double precision,
    y_intercept          double precision,
    y_gains              double precision[],
    x_gains_pol0         double precision[],
    x_gains_pol1         double precision[],
    y_gains_pol0         double precision[],
    y_gains_pol1         double precision[],
    x_gains_sigma_resid  double precision[],
    y_gains_sigma_resid  double precision[],
    x_phase_sigma_resid  double precision,
    x_phase_chi2dof      double precision,
    x_phase_fit_quality  double precision,
    y_phase_sigma_resid  double precision,
    y_phase_chi2dof      double precision,
    y_phase_fit_quality  double precision,
    x_gains_fit_quality  double precision,
    y_gains_fit_quality  double precision,
    PRIMARY KEY (fitid, obsid, tileid),
    FOREIGN KEY (fitid, obsid) REFERENCES calibration_fits(fitid, obsid) ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS calibration_request (
    id                             serial PRIMARY KEY,
    cal_id                         bigint NOT NULL,
    realtime                       boolean NOT NULL DEFAULT false,
    bulk_request                   boolean NOT NULL DEFAULT false,
    request_added_datetime         timestamptz NOT NULL DEFAULT now(),
    calibration_started_datetime   timestamptz,
    calibration_completed_datetime timestamptz,
    calibration_fit_id             bigint,
    calibration_error_datetime     timestamptz,
    calibration_error_message      text,
    -- ours: who asked, and the state of their callback
    target_obs_id                  bigint,
    asvo_job_id                    bigint,
    callback_url                   text,
    request_key                    text UNIQUE,  -- idempotency: one request per queued message
    callback_state                 text NOT NULL DEFAULT 'none'
        CHECK (callback_state IN ('none', 'pending', 'delivered', 'failed')),
    callback_attempts              integer NOT NULL DEFAULT 0,
    callback_next_attempt          timestamptz,
    callback_delivered_datetime    timestamptz,
    CHECK (calibration_completed_datetime IS NULL OR calibration_error_datetime IS NULL)
);
-- The MWA database has calibration_request already, without our columns: CREATE TABLE IF NOT
-- EXISTS then leaves it as it is, so add them (no-ops on a database this file just created).
ALTER TABLE calibration_request ADD COLUMN IF NOT EXISTS target_obs_id bigint;
ALTER TABLE calibration_request ADD COLUMN IF NOT EXISTS asvo_job_id bigint;
ALTER TABLE calibration_request ADD COLUMN IF NOT EXISTS callback_url text;
ALTER TABLE calibration_request ADD COLUMN IF NOT EXISTS request_key text UNIQUE;
ALTER TABLE calibration_request ADD COLUMN IF NOT EXISTS callback_state text NOT NULL DEFAULT 'none'
    CHECK (callback_state ~ '^(none|pending|delivered|failed)$');
ALTER TABLE calibration_request ADD COLUMN IF NOT EXISTS callback_attempts integer NOT NULL DEFAULT 0;
ALTER TABLE calibration_request ADD COLUMN IF NOT EXISTS callback_next_attempt timestamptz;
ALTER TABLE calibration_request ADD COLUMN IF NOT EXISTS callback_delivered_datetime timestamptz;

-- Every callback attempt: when, and what came back.
CREATE TABLE IF NOT EXISTS calibration_request_callback_attempt (
    id           serial PRIMARY KEY,
    request_id   integer NOT NULL REFERENCES calibration_request(id) ON DELETE CASCADE,
    attempted_at timestamptz NOT NULL DEFAULT now(),
    http_status  integer,
    error        text
);

-- Files of a fit in the calibration bucket (the hyperdrive solution file get_cal_fits names).
CREATE TABLE IF NOT EXISTS calibration_fit_file (
    fitid      bigint NOT NULL,
    obsid      bigint NOT NULL,
    kind       text NOT NULL DEFAULT 'hyperdrive',
    bucket_key text NOT NULL,
    PRIMARY KEY (fitid, obsid, kind)
);

-- What the endpoints ask.
CREATE INDEX IF NOT EXISTS rf_stream_gain_idx ON rf_stream (gain_control_value, starttime);
CREATE INDEX IF NOT EXISTS schedule_metadata_calibration_idx
    ON schedule_metadata (observation_number) WHERE calibration;
CREATE INDEX IF NOT EXISTS calibration_fits_obsid_idx ON calibration_fits (obsid, fitid DESC);
CREATE INDEX IF NOT EXISTS calibration_fits_fit_time_idx ON calibration_fits (fit_time);
CREATE INDEX IF NOT EXISTS calibration_solutions_fit_idx ON calibration_solutions (fitid, obsid);
CREATE INDEX IF NOT EXISTS calibration_solutions_tile_idx ON calibration_solutions (tileid, obsid);
CREATE INDEX IF NOT EXISTS calibration_request_open_idx
    ON calibration_request (cal_id) WHERE calibration_completed_datetime IS NULL
                                     AND calibration_error_datetime IS NULL;
CREATE INDEX IF NOT EXISTS calibration_request_callback_idx
    ON calibration_request (callback_next_attempt) WHERE callback_state = 'pending';
