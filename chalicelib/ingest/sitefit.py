"""The site pipeline's landing (``<cal_id>_solutions.fits``): the model error of the rows it wrote, against that file.

The site pipeline writes its fit's ``calibration_solutions`` rows itself and then uploads the
whole-band hyperdrive file; its arrival tells the requests (:mod:`chalicelib.ingest.events`). Before
that, :func:`record_model_error` reads the file, places its tiles by the observation's
``observation_tile`` Antenna, computes the rows' line-model error
(:mod:`chalicelib.ingest.modelerror`) and writes it to ``calibration_model_error``. A fit whose rows
are not (yet) in the database, or whose observation has no tiles, is logged and skipped: the
callbacks never wait on it. Outages raise (the event is retried; the write replaces, so it is safe).
"""

from __future__ import annotations

from typing import Any

from chalicelib import db, storage
from chalicelib.ingest import layout
from chalicelib.observability import logger


def record_model_error(landed: layout.LandedFit) -> dict[str, Any]:
    """Compute and store the model error of a site-pipeline fit from its landed file; a small report."""
    from chalicelib.db.modelerror import fit_lines, write_model_error
    from chalicelib.db.summary import observation_tiles
    from chalicelib.ingest.fitfiles import curves_from_solutions
    from chalicelib.ingest.modelerror import model_error

    f = landed.file
    log = {"cal_id": f.cal_id, "fitid": f.fitid, "key": f.key}
    lines = fit_lines(f.fitid, f.cal_id)
    if not lines:
        logger.warning("model error not computed: the fit has no calibration_solutions rows", extra=log)
        return {"written": False, "reason": "no rows"}
    raw = storage.get_object(landed.bucket, f.key)  # an outage raises: the event is retried
    tiles = observation_tiles(f.cal_id)
    try:
        from chalicelib.formats.hyperdrive import read_hyperdrive

        curves = curves_from_solutions([read_hyperdrive(raw)], tiles, lines) if raw is not None else None
    except Exception as exc:  # noqa: BLE001 - astropy raises many kinds for a bad file
        logger.warning("model error not computed: the solutions file cannot be read",
                       extra={**log, "error": f"{type(exc).__name__}: {exc}"})
        return {"written": False, "reason": "unreadable file"}
    if curves is None:
        logger.warning("model error not computed: no tile of the file is known", extra=log)
        return {"written": False, "reason": "no tiles"}
    error = model_error(curves, lines)
    with db.transaction() as tx:
        n = write_model_error(tx, f.fitid, f.cal_id, error)
    logger.info("model error stored", extra={**log, "tiles": n})
    return {"written": True, "tiles": n}
