"""SQL that writes observations and fits (seeding, ingest)."""

from __future__ import annotations

import functools
import io
import struct
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from typing import Any

import numpy as np

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
    insert_observation_tiles(tx, obs.obsid, obs.tiles)


def insert_observation_tiles(tx: db.Transaction, obsid: int, tiles: list) -> None:
    """Write the observation_tile rows of an observation (its metafits TILEDATA tiles, TileInfo)."""
    if tiles:
        tx.run(
            "INSERT INTO observation_tile (obsid, tileid, tile_name, antenna, rx, slot, flagged)"
            " SELECT :obsid, * FROM unnest(CAST(:tileid AS integer[]), CAST(:name AS text[]),"
            " CAST(:antenna AS integer[]), CAST(:rx AS integer[]), CAST(:slot AS integer[]),"
            " CAST(:flagged AS boolean[]))",
            {"obsid": obsid, "tileid": [t.tile_id for t in tiles], "name": [t.name for t in tiles],
             "antenna": [t.antenna for t in tiles], "rx": [t.rx for t in tiles],
             "slot": [t.slot for t in tiles], "flagged": [t.flagged for t in tiles]},
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


def copy_solutions(tx: db.Transaction, blocks: Iterable[tuple[int, int, Mapping[str, Any]]]) -> int:
    """Bulk-write calibration_solutions rows with one binary ``COPY ... FROM STDIN`` (demo seeding).

    Each block is ``(fitid, obsid, columns)``: ``columns["tileid"]`` is a 1-D int array, each other
    SolutionRow column a 1-D float array (scalar columns) or a 2-D one, one row per tile (array
    columns); a column left out is NULL. Values are sent as float8 bits, so NaN and every digit are
    kept. The calibration_fits rows must exist already. Returns the number of rows written. About
    ten times faster than ``insert_fit`` for 256-tile fits (no float text formatting or parsing).
    """
    parts = [b"PGCOPY\n\xff\r\n\x00", struct.pack(">ii", 0, 0)]
    n_rows = 0
    for fitid, obsid, columns in blocks:
        tileid = np.asarray(columns["tileid"], dtype=np.int64)
        if tileid.size == 0:
            continue
        present = tuple((c, np.asarray(columns[c], dtype=np.float64)) for c in SOLUTION_COLUMNS[1:]
                        if columns.get(c) is not None)
        dtype = _copy_dtype(tuple((c, a.shape[1] if a.ndim == 2 else 0) for c, a in present))
        rec = np.zeros(tileid.size, dtype=dtype)
        rec["n"] = 3 + len(SOLUTION_COLUMNS) - 1
        rec["fitid_len"], rec["fitid"] = 8, fitid
        rec["obsid_len"], rec["obsid"] = 8, obsid
        rec["tileid_len"], rec["tileid"] = 4, tileid
        for c in SOLUTION_COLUMNS[1:]:
            rec[c + "_len"] = -1  # NULL unless given
        for c, a in present:
            if a.ndim == 2:
                width = a.shape[1]
                rec[c + "_len"] = 20 + 12 * width
                rec[c + "_hdr"] = (1, 0, 701, width, 1)  # ndim, has-null, float8 oid, length, lower bound
                rec[c + "_el"]["len"] = 8
                rec[c + "_el"]["v"] = a
            else:
                rec[c + "_len"] = 8
                rec[c] = a
        parts.append(rec.tobytes())
        n_rows += tileid.size
    if not n_rows:
        return 0
    parts.append(struct.pack(">h", -1))
    columns_sql = ", ".join(("fitid", "obsid", *SOLUTION_COLUMNS))
    tx.copy_in(f"COPY calibration_solutions ({columns_sql}) FROM STDIN WITH (FORMAT binary)",
               io.BytesIO(b"".join(parts)))
    return n_rows


@functools.lru_cache(maxsize=64)
def _copy_dtype(present: tuple[tuple[str, int], ...]) -> np.dtype:
    """The big-endian record layout of one binary-COPY tuple for the given (column, array width) set."""
    widths = dict(present)
    fields: list[tuple] = [("n", ">i2"), ("fitid_len", ">i4"), ("fitid", ">i8"), ("obsid_len", ">i4"),
                           ("obsid", ">i8"), ("tileid_len", ">i4"), ("tileid", ">i4")]
    for c in SOLUTION_COLUMNS[1:]:
        fields.append((c + "_len", ">i4"))
        if c not in widths:
            continue
        if widths[c]:
            fields.append((c + "_hdr", ">i4", (5,)))
            fields.append((c + "_el", [("len", ">i4"), ("v", ">f8")], (widths[c],)))
        else:
            fields.append((c, ">f8"))
    return np.dtype(fields)
