"""Writing an ingested fit (chalicelib.ingest.store): the calibration_fits values, one transaction, no repeats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from chalicelib.records import Observation, SolutionRow
from tests.factories import flagged_row, flat_row, observation, tiles

CAL = 1369821496
FITID = 1685856000000002
HEADER = {"OBSID": str(CAL), "MAXITER": 50, "S_THRESH": 1e-8, "M_THRESH": 1e-4,
          "SOFTWARE": "Created by mwa_hyperdrive v0.2.1",
          "CMDLINE": "hyperdrive di-calibrate --data a.metafits b.uvfits --source-list /m/model-HydA.txt -o x.fits"}


def _rows(n: int = 3, nan: tuple[int, ...] = (12,)) -> list[SolutionRow]:
    """Tiles 11.. with delay and intercept 0.5 per tile (flat gains), the nan tiles failed."""
    return [flagged_row(t) if t in nan else flat_row(t, 0.5 * (t - 11), 0.5 * (t - 11))
            for t in range(11, 11 + n)]


def _obs() -> Observation:
    """CAL as the schedule records it: on HydA but not marked a calibration, three tiles, picket-fence channels."""
    return observation(CAL, name="AllSky_cal_HydA", channels=range(55, 171, 5), calibrators="HydA", tiles=tiles(3))


def test_fit_record_from_the_hyperdrive_header_and_the_caller():
    from chalicelib.ingest.store import DEFAULT_CREATOR, fit_record

    fit = fit_record(HEADER, fitid=FITID, obsid=CAL, fit_time=datetime(2025, 6, 1, 20, 0, tzinfo=timezone(timedelta(hours=8))))
    assert (fit.fitid, fit.obsid, fit.creator) == (FITID, CAL, DEFAULT_CREATOR)
    assert fit.fit_time == datetime(2025, 6, 1, 12, 0, tzinfo=UTC) and fit.fit_time.utcoffset() == timedelta(0)
    assert (fit.code_version, fit.fit_niter, fit.fit_limit) == ("Created by mwa_hyperdrive v0.2.1", 50, 1e-8)
    assert fit.source_list == "/m/model-HydA.txt" and fit.calibration_command == HEADER["CMDLINE"]

    given = fit_record(HEADER, fitid=FITID, obsid=CAL, creator="calvin", code_version="calvin 1.2")
    assert (given.creator, given.code_version) == ("calvin", "calvin 1.2")
    assert given.fit_time.tzinfo is not None and abs(given.fit_time - datetime.now(UTC)) < timedelta(seconds=10)

    bare = fit_record(None, fitid=FITID, obsid=CAL, fit_time=datetime(2025, 1, 1))  # naive = UTC
    assert (bare.code_version, bare.fit_niter, bare.fit_limit, bare.source_list) == (None, None, None, None)
    assert bare.fit_time == datetime(2025, 1, 1, tzinfo=UTC)
    assert fit_record({"MAXITER": "lots", "S_THRESH": float("nan")}, fitid=1, obsid=2).fit_niter is None


def test_store_writes_everything_once_and_a_repeat_nothing(clean_db):
    from chalicelib import db
    from chalicelib.ingest.store import fit_record, store_fit

    fit = fit_record(HEADER, fitid=FITID, obsid=CAL)
    first = store_fit(fit, _rows(), _obs(), bucket_key="fits/x/y/a.fits")
    assert (first.written, first.rows, first.nan_rows, first.observation_inserted, first.tiles_inserted) == (
        True, 3, 1, True, True)
    [sm] = db.query("SELECT calibration FROM schedule_metadata WHERE observation_number = :o", {"o": CAL})
    assert sm["calibration"] is True  # fitted as a calibrator: get_cal_solution may serve it
    [ff] = db.query("SELECT kind, bucket_key FROM calibration_fit_file")
    assert ff == {"kind": "hyperdrive", "bucket_key": "fits/x/y/a.fits"}

    again = store_fit(fit_record(HEADER, fitid=FITID, obsid=CAL, creator="other"), _rows(5), _obs())
    assert (again.written, again.rows) == (False, 0)
    assert db.query("SELECT count(*) AS n FROM calibration_solutions")[0]["n"] == 3
    assert db.query("SELECT creator FROM calibration_fits")[0]["creator"] == "mwa-calib-ingest"


def test_an_existing_observation_is_kept_and_only_gets_missing_tiles(clean_db):
    from chalicelib import db
    from chalicelib.db import writes
    from chalicelib.ingest.store import fit_record, store_fit

    with db.transaction() as tx:
        writes.insert_observation(tx, Observation(obsid=CAL, stoptime=CAL + 60, obsname="from the schedule",
                                                  channels=list(range(55, 171, 5)), gain_control_value=1.0,
                                                  calibration=True))
    stored = store_fit(fit_record(HEADER, fitid=FITID, obsid=CAL), _rows(), _obs())
    assert (stored.observation_inserted, stored.tiles_inserted) == (False, True)
    assert db.query("SELECT obsname, stoptime FROM mwa_setting")[0] == {"obsname": "from the schedule",
                                                                         "stoptime": CAL + 60}
    assert db.query("SELECT count(*) AS n FROM observation_tile")[0]["n"] == 3
    stored = store_fit(fit_record(HEADER, fitid=FITID + 1, obsid=CAL), _rows(), _obs())
    assert (stored.written, stored.observation_inserted, stored.tiles_inserted) == (True, False, False)


def test_a_failing_write_leaves_nothing(clean_db):
    from chalicelib import db
    from chalicelib.ingest.store import fit_record, store_fit

    rows = _rows()
    rows.append(rows[0])  # the same tile twice: the primary key refuses the rows
    with pytest.raises(Exception):
        store_fit(fit_record(HEADER, fitid=FITID, obsid=CAL), rows, _obs(), bucket_key="k")
    for table in ("mwa_setting", "observation_tile", "calibration_fits", "calibration_solutions",
                  "calibration_fit_file"):
        assert db.query(f"SELECT count(*) AS n FROM {table}")[0]["n"] == 0, table


def test_the_observation_must_be_the_fitted_one():
    from chalicelib.ingest.store import fit_record, store_fit

    with pytest.raises(ValueError, match="not the fitted calibrator"):
        store_fit(fit_record(None, fitid=1, obsid=CAL + 1), [], _obs())


def test_the_loader_keeps_the_lowest_channel_header_and_refuses_another_observation():
    from chalicelib.ingest.fit_inputs import load_fit_inputs
    from tests.mwa_files import mwa_file
    from tests.real_fit import fixture_files

    solutions, metafits = fixture_files()
    seen = []
    inputs = load_fit_inputs(solutions[:3], metafits, progress=seen.append)  # ch100, ch105, ch110
    assert seen == solutions[:3]
    assert "_ch100." in inputs.hyperdrive_header["CMDLINE"] and inputs.hyperdrive_header["MAXITER"] == 50
    other = mwa_file("1365977896", "1365977896_metafits.fits")
    with pytest.raises(ValueError, match="is of observation 1369821496, not 1365977896"):
        load_fit_inputs(solutions[:1], other)
    with pytest.raises(ValueError, match="no hyperdrive solution files"):
        load_fit_inputs([], metafits)
