"""SQL behind the deprecated get_calfile_for_obsid / get_calfile_for_calid (reads only)."""

from __future__ import annotations

from chalicelib import db
from chalicelib.db.selection import observation_tiles
from chalicelib.records import Observation

# Everything a CALIBDATA table carries, per tile of a fit (plus what the Jones rebuild needs).
CALIBDATA_FIELDS = ("tileid", "x_delay_m", "x_intercept", "x_gains", "x_gains_pol0", "x_gains_pol1",
                    "x_phase_fit_quality", "x_gains_fit_quality",
                    "y_delay_m", "y_intercept", "y_gains", "y_gains_pol0", "y_gains_pol1",
                    "y_phase_fit_quality", "y_gains_fit_quality")


def observation(obsid: int) -> Observation | None:
    """The observation as the schedule has it (mwa_setting, schedule_metadata, rf_stream, tiles)."""
    rows = db.query(
        "SELECT m.starttime, m.stoptime, m.obsname, m.creator, m.projectid, m.mode,"
        " sm.calibration, sm.calibrators, r.frequencies, r.gain_control_value"
        " FROM mwa_setting m"
        " LEFT JOIN schedule_metadata sm ON sm.observation_number = m.starttime"
        " LEFT JOIN rf_stream r ON r.starttime = m.starttime AND r.number = 0"
        " WHERE m.starttime = :obsid",
        {"obsid": obsid},
    )
    if not rows:
        return None
    r = rows[0]
    return Observation(
        obsid=int(r["starttime"]), stoptime=int(r["stoptime"]), obsname=r["obsname"],
        channels=sorted(r["frequencies"] or ()), gain_control_value=r["gain_control_value"],
        calibration=bool(r["calibration"]), calibrators=r["calibrators"], creator=r["creator"],
        projectid=r["projectid"], mode=r["mode"], tiles=observation_tiles(obsid),
    )


def calibdata_rows(fitid: int, obsid: int) -> list[dict]:
    """The fit's calibration_solutions rows with every column CALIBDATA writes, by tile id."""
    return db.query(
        f"SELECT {', '.join(CALIBDATA_FIELDS)} FROM calibration_solutions"
        " WHERE fitid = :fitid AND obsid = :obsid ORDER BY tileid",
        {"fitid": fitid, "obsid": obsid},
    )
