"""SQL behind calibrator selection: the target observation and the calibrators near it."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from chalicelib import db
from chalicelib.records import Observation
from chalicelib.selection.gates import FitQuality
from chalicelib.selection.rules import Calibrator, FitInfo, Target
from chalicelib.solutions import TileInfo

# Calibrators are few (several a day): everything within the window is fetched, nearest first.
MAX_CALIBRATORS = 5000


_OBSERVATION_SQL = (
    "SELECT m.starttime, m.stoptime, m.obsname, m.creator, m.projectid, m.mode,"
    " sm.calibration, sm.calibrators, r.frequencies, r.gain_control_value"
    " FROM mwa_setting m"
    " LEFT JOIN schedule_metadata sm ON sm.observation_number = m.starttime"
    " LEFT JOIN rf_stream r ON r.starttime = m.starttime AND r.number = 0"
    " WHERE m.starttime = :obsid"
)


def _observation_row(obsid: int) -> dict | None:
    rows = db.query(_OBSERVATION_SQL, {"obsid": obsid})
    return rows[0] if rows else None


def target(obsid: int) -> Target | None:
    """The observation's channels and gain value, or None when it is not in the schedule."""
    r = _observation_row(obsid)
    if r is None:
        return None
    return Target(obsid=obsid, channels=tuple(sorted(r["frequencies"] or ())),
                  gain_control_value=r["gain_control_value"])


def observation(obsid: int) -> Observation | None:
    """The whole observation as the schedule has it (mwa_setting, schedule_metadata, rf_stream, tiles)."""
    r = _observation_row(obsid)
    if r is None:
        return None
    return Observation(
        obsid=int(r["starttime"]), stoptime=int(r["stoptime"]), obsname=r["obsname"],
        channels=sorted(r["frequencies"] or ()), gain_control_value=r["gain_control_value"],
        calibration=bool(r["calibration"]), calibrators=r["calibrators"], creator=r["creator"],
        projectid=r["projectid"], mode=r["mode"], tiles=observation_tiles(obsid),
    )


def calibrators_near(obsid: int, low: int, high: int) -> list[Calibrator]:
    """Calibrator observations starting in [low, high], nearest to obsid first, with all fits."""
    rows = db.query(
        """
        WITH cals AS (
            SELECT m.starttime, m.stoptime, r.frequencies, r.gain_control_value
            FROM schedule_metadata sm
            JOIN mwa_setting m ON m.starttime = sm.observation_number
            LEFT JOIN rf_stream r ON r.starttime = m.starttime AND r.number = 0
            WHERE sm.calibration AND sm.observation_number BETWEEN :low AND :high
            ORDER BY abs(sm.observation_number - :obsid), sm.observation_number
            LIMIT :lim
        )
        SELECT c.starttime, c.stoptime, c.frequencies, c.gain_control_value,
               f.fitid, f.fit_time, f.creator, ff.bucket_key, rt.reason AS retired, (pf.fitid IS NOT NULL) AS preferred,
               EXISTS (SELECT 1 FROM calibration_solutions s
                       WHERE s.fitid = f.fitid AND s.obsid = f.obsid
                         AND (s.x_delay_m <> 'NaN'::float8 OR s.y_delay_m <> 'NaN'::float8)) AS any_good
        FROM cals c
        LEFT JOIN calibration_fits f ON f.obsid = c.starttime
        LEFT JOIN calibration_fit_file ff
               ON ff.fitid = f.fitid AND ff.obsid = f.obsid AND ff.kind = 'hyperdrive'
        LEFT JOIN calibration_fit_retirement rt ON rt.fitid = f.fitid
        LEFT JOIN calibration_fit_preference pf ON pf.cal_obsid = f.obsid AND pf.fitid = f.fitid
        """,
        {"obsid": obsid, "low": low, "high": high, "lim": MAX_CALIBRATORS},
    )
    cals: dict[int, dict] = {}
    for r in rows:
        c = cals.setdefault(r["starttime"], {"row": r, "fits": []})
        if r["fitid"] is not None:
            c["fits"].append(FitInfo(fitid=r["fitid"], fit_time=r["fit_time"], creator=r["creator"],
                                     any_good_tile=bool(r["any_good"]), solution_key=r["bucket_key"],
                                     retired=r["retired"], preferred=bool(r["preferred"])))
    return [
        Calibrator(obsid=k, stoptime=v["row"]["stoptime"], channels=tuple(sorted(v["row"]["frequencies"] or ())),
                   gain_control_value=v["row"]["gain_control_value"], fits=tuple(v["fits"]))
        for k, v in cals.items()
    ]


def observation_tiles(obsid: int) -> list[TileInfo]:
    """The observation's tiles in Antenna order (empty when we have no tile rows for it)."""
    rows = db.query(
        "SELECT antenna, tileid, tile_name, rx, slot, flagged FROM observation_tile"
        " WHERE obsid = :obsid ORDER BY antenna",
        {"obsid": obsid},
    )
    return [TileInfo(antenna=r["antenna"], tile_id=r["tileid"], name=r["tile_name"], rx=r["rx"], slot=r["slot"],
                     flagged=r["flagged"]) for r in rows]


SOLUTION_SCALARS = ("x_delay_m", "x_intercept", "y_delay_m", "y_intercept")
QUALITY_SCALARS = ("x_phase_fit_quality", "x_gains_fit_quality", "y_phase_fit_quality", "y_gains_fit_quality")
SOLUTION_ARRAYS = ("x_gains", "x_gains_pol0", "x_gains_pol1", "y_gains", "y_gains_pol0", "y_gains_pol1")


def solution_rows(fitid: int, obsid: int, quality: bool = False) -> list[dict]:
    """The columns a Jones rebuild needs (and the quality figures if asked), one dict per tile (arrays as numpy).

    Arrays travel as text and are parsed by numpy: pg8000's own float8[] decoding costs ~1 ms a row.
    """
    arrays = ", ".join(f"array_to_string({c}, ',') AS {c}" for c in SOLUTION_ARRAYS)
    scalars = SOLUTION_SCALARS + (QUALITY_SCALARS if quality else ())
    rows = db.query(
        f"SELECT tileid, {', '.join(scalars)}, {arrays} FROM calibration_solutions"
        " WHERE fitid = :fitid AND obsid = :obsid ORDER BY tileid",
        {"fitid": fitid, "obsid": obsid},
    )
    for r in rows:
        for c in SOLUTION_ARRAYS:
            text = r[c]
            r[c] = None if text is None else np.array(text.split(",") if text else [], dtype=np.float64)
    return rows


def fit_record(fitid: int, obsid: int) -> dict | None:
    """The calibration_fits row, or None."""
    rows = db.query("SELECT * FROM calibration_fits WHERE fitid = :fitid AND obsid = :obsid",
                    {"fitid": fitid, "obsid": obsid})
    return rows[0] if rows else None


# One row per fit: its tile ids ascending, "solved" flags and X/Y phase_fit_quality as text lists
# (numpy parses them; pg8000's float8[] decoding is slow). The (fitid, obsid) pairs drive an index
# lookup per fit on calibration_solutions' primary key, so the cost follows the fits asked, not the table.
_FIT_QUALITY_SQL = """
    SELECT k.fitid, k.obsid,
           string_agg(s.tileid::text, ',' ORDER BY s.tileid) AS tiles,
           string_agg(CASE WHEN s.x_delay_m <> 'NaN'::float8 AND s.x_intercept <> 'NaN'::float8
                            AND s.y_delay_m <> 'NaN'::float8 AND s.y_intercept <> 'NaN'::float8
                           THEN '1' ELSE '0' END, ',' ORDER BY s.tileid) AS solved,
           string_agg(coalesce(s.x_phase_fit_quality::text, 'NaN'), ',' ORDER BY s.tileid) AS xq,
           string_agg(coalesce(s.y_phase_fit_quality::text, 'NaN'), ',' ORDER BY s.tileid) AS yq
    FROM unnest(CAST(:fitids AS bigint[]), CAST(:obsids AS bigint[])) AS k(fitid, obsid)
    JOIN calibration_solutions s ON s.fitid = k.fitid AND s.obsid = k.obsid
    GROUP BY k.fitid, k.obsid
"""


def fit_qualities(fits: Iterable[tuple[int, int]]) -> dict[tuple[int, int], FitQuality]:
    """The quality gates' facts of every (fitid, obsid) given, in one query; a fit without rows is left out.

    Pass every fit of the window's calibrators: ``[(f.fitid, c.obsid) for c in cals for f in c.fits]``.
    A tile is solved when its X and Y delay and intercept are all non-NaN (and not NULL).
    """
    pairs = sorted(set((int(f), int(o)) for f, o in fits))
    if not pairs:
        return {}
    rows = db.query(_FIT_QUALITY_SQL, {"fitids": [f for f, _ in pairs], "obsids": [o for _, o in pairs]})

    def floats(text: str) -> tuple[float, ...]:
        return tuple(np.array(text.split(","), dtype=np.float64).tolist())

    return {
        (r["fitid"], r["obsid"]): FitQuality(
            fitid=r["fitid"], obsid=r["obsid"], tiles=tuple(int(t) for t in r["tiles"].split(",")),
            solved=tuple(v == "1" for v in r["solved"].split(",")),
            x_phase_quality=floats(r["xq"]), y_phase_quality=floats(r["yq"]))
        for r in rows
    }
