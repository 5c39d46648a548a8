"""SQL that writes observations and fits (seeding, ingest)."""

from __future__ import annotations

from dataclasses import asdict

from chalicelib import db
from chalicelib.records import SOLUTION_COLUMNS, Fit, Observation, SolutionRow


def insert_observation(tx: db.Transaction, obs: Observation) -> None:
    """Write one observation with its rf_stream and tile rows (replacing an existing one)."""
    tx.run("DELETE FROM mwa_setting WHERE starttime = :obsid", {"obsid": obs.obsid})
    tx.run(
        "INSERT INTO mwa_setting (starttime, stoptime, obsname, creator, projectid, mode)"
        " VALUES (:obsid, :stoptime, :obsname, :creator, :projectid, :mode)",
        {"obsid": obs.obsid, "stoptime": obs.stoptime, "obsname": obs.obsname, "creator": obs.creator,
         "projectid": obs.projectid, "mode": obs.mode},
    )
    tx.run(
        "INSERT INTO schedule_metadata (observation_number, calibration, calibrators)"
        " VALUES (:obsid, :calibration, :calibrators)",
        {"obsid": obs.obsid, "calibration": obs.calibration, "calibrators": obs.calibrators},
    )
    tx.run(
        "INSERT INTO rf_stream (starttime, number, frequencies, gain_control_value)"
        " VALUES (:obsid, 0, CAST(:channels AS integer[]), :gain)",
        {"obsid": obs.obsid, "channels": sorted(obs.channels), "gain": obs.gain_control_value},
    )
    if obs.tiles:
        tx.run(
            "INSERT INTO observation_tile (obsid, tileid, tile_name, antenna, rx, slot, flagged)"
            " SELECT :obsid, * FROM unnest(CAST(:tileid AS integer[]), CAST(:name AS text[]),"
            " CAST(:antenna AS integer[]), CAST(:rx AS integer[]), CAST(:slot AS integer[]),"
            " CAST(:flagged AS boolean[]))",
            {"obsid": obs.obsid, "tileid": [t.tile_id for t in obs.tiles], "name": [t.name for t in obs.tiles],
             "antenna": [t.antenna for t in obs.tiles], "rx": [t.rx for t in obs.tiles],
             "slot": [t.slot for t in obs.tiles], "flagged": [t.flagged for t in obs.tiles]},
        )


_FIT_COLUMNS = ("fitid", "obsid", "code_version", "fit_time", "creator", "fit_niter", "fit_limit",
                "source_list", "num_sources", "calibration_command", "gain_max_cutoff")


def fit_exists(tx: db.Transaction, fitid: int, obsid: int) -> bool:
    """Whether calibration_fits already has this (fitid, obsid)."""
    return bool(tx.run("SELECT 1 FROM calibration_fits WHERE fitid = :f AND obsid = :o",
                       {"f": fitid, "o": obsid}))


def insert_fit(tx: db.Transaction, fit: Fit, rows: list[SolutionRow]) -> None:
    """Write one calibration_fits row and its calibration_solutions rows (one per tile)."""
    tx.run(
        f"INSERT INTO calibration_fits ({', '.join(_FIT_COLUMNS)})"
        f" VALUES ({', '.join(':' + c for c in _FIT_COLUMNS)})",
        {c: getattr(fit, c) for c in _FIT_COLUMNS},
    )
    if not rows:
        return
    # One statement for all tiles: each column is bound as an array and unnested row-wise.
    # Array columns would make a 2-D array, which unnest flattens, so each tile's array is bound
    # as an array literal in a text[] and cast back to float8[].
    scalar = [c for c in SOLUTION_COLUMNS if c != "tileid" and not _is_array(c)]
    arrays = [c for c in SOLUTION_COLUMNS if _is_array(c)]
    data = [asdict(r) for r in rows]
    params: dict[str, object] = {"fitid": fit.fitid, "obsid": fit.obsid,
                                 "tileid": [d["tileid"] for d in data]}
    select = ["u.tileid"]
    unnest_args = ["CAST(:tileid AS integer[])"]
    names = ["tileid"]
    for c in scalar:
        params[c] = [_float(d[c]) for d in data]
        unnest_args.append(f"CAST(:{c} AS float8[])")
        names.append(c)
        select.append(f"u.{c}")
    for c in arrays:
        params[c] = [_array_literal(d[c]) for d in data]
        unnest_args.append(f"CAST(:{c} AS text[])")
        names.append(c)
        select.append(f"CAST(u.{c} AS float8[])")
    tx.run(
        f"INSERT INTO calibration_solutions (fitid, obsid, {', '.join(names)})"
        f" SELECT :fitid, :obsid, {', '.join(select)}"
        f" FROM unnest({', '.join(unnest_args)}) AS u({', '.join(names)})",
        params,
    )


_ARRAY_COLUMNS = frozenset({"x_gains", "y_gains", "x_gains_pol0", "x_gains_pol1", "y_gains_pol0", "y_gains_pol1",
                            "x_gains_sigma_resid", "y_gains_sigma_resid"})


def _is_array(column: str) -> bool:
    return column in _ARRAY_COLUMNS


def _float(value: object) -> float | None:
    return None if value is None else float(value)  # NaN stays NaN


def _array_literal(values: object) -> str | None:
    """A float list as a PostgreSQL array literal ('{1.5,NaN}'), NaN kept, None as NULL."""
    if values is None:
        return None
    return "{" + ",".join("NaN" if v != v else repr(float(v)) for v in values) + "}"
