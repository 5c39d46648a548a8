"""SQL of a fit's hyperdrive solution files (``calibration_fit_solution_file``): record them, read them back."""

from __future__ import annotations

from collections.abc import Sequence

from chalicelib import db
from chalicelib.solutions.files import SolutionFile

_UPSERT = (
    "INSERT INTO calibration_fit_solution_file"
    " (fitid, obsid, bucket_key, coarse_channels, n_chanblocks, n_timeblocks, chanblock_hz, size)"
    " SELECT :f, :o, :key, CAST(:channels AS integer[]), :n_chan, :n_time, :width, :size"
    " WHERE EXISTS (SELECT 1 FROM calibration_fits WHERE fitid = :f AND obsid = :o)"
    " ON CONFLICT (fitid, obsid, bucket_key) DO UPDATE SET coarse_channels = EXCLUDED.coarse_channels,"
    " n_chanblocks = EXCLUDED.n_chanblocks, n_timeblocks = EXCLUDED.n_timeblocks,"
    " chanblock_hz = EXCLUDED.chanblock_hz, size = EXCLUDED.size"
    " RETURNING bucket_key"
)


def record(tx: db.Transaction, fitid: int, obsid: int, files: Sequence[SolutionFile]) -> int:
    """Record the fit's files (replacing what is recorded under the same keys); returns how many were written.

    A file of a fit that is not in calibration_fits is not written (the backfill records it later).
    """
    written = 0
    for f in files:
        written += len(tx.run(_UPSERT, {"f": fitid, "o": obsid, "key": f.bucket_key,
                                        "channels": list(f.coarse_channels), "n_chan": f.n_chanblocks,
                                        "n_time": f.n_timeblocks, "width": f.chanblock_hz, "size": f.size}))
    return written


def record_now(fitid: int, obsid: int, files: Sequence[SolutionFile]) -> int:
    """:func:`record` in its own transaction."""
    with db.transaction() as tx:
        return record(tx, fitid, obsid, files)


def of_fit(fitid: int, obsid: int) -> list[SolutionFile]:
    """The recorded solution files of one fit, in key order (empty when it has none)."""
    rows = db.query(
        "SELECT bucket_key, coarse_channels, n_chanblocks, n_timeblocks, chanblock_hz, size"
        " FROM calibration_fit_solution_file WHERE fitid = :f AND obsid = :o ORDER BY bucket_key",
        {"f": fitid, "o": obsid},
    )
    return [SolutionFile(bucket_key=r["bucket_key"], coarse_channels=tuple(sorted(r["coarse_channels"])),
                         n_chanblocks=int(r["n_chanblocks"]), n_timeblocks=int(r["n_timeblocks"]),
                         chanblock_hz=float(r["chanblock_hz"]), size=int(r["size"])) for r in rows]


def fit_state() -> tuple[set[tuple[int, int]], set[tuple[int, int]]]:
    """(every (fitid, obsid) in calibration_fits, those with recorded solution files): what the backfill needs."""
    known = {(int(r["fitid"]), int(r["obsid"])) for r in db.query("SELECT fitid, obsid FROM calibration_fits")}
    with_files = {(int(r["fitid"]), int(r["obsid"])) for r in db.query(
        "SELECT DISTINCT fitid, obsid FROM calibration_fit_solution_file")}
    return known, with_files


def gain_max_cutoff(fitid: int, obsid: int) -> float | None:
    """The fit's calibration_fits.gain_max_cutoff (None when unset or no such fit)."""
    rows = db.query("SELECT gain_max_cutoff FROM calibration_fits WHERE fitid = :f AND obsid = :o",
                    {"f": fitid, "o": obsid})
    value = rows[0]["gain_max_cutoff"] if rows else None
    return None if value is None else float(value)


def observation_span(obsid: int) -> tuple[int, int] | None:
    """(start, stop) GPS seconds of an observation, or None when it is not in mwa_setting."""
    rows = db.query("SELECT starttime, stoptime FROM mwa_setting WHERE starttime = :o", {"o": obsid})
    return (int(rows[0]["starttime"]), int(rows[0]["stoptime"])) if rows else None
