"""A fit's solution files in the calibration bucket, read back as phase curves (the model error and the phasefit plot).

:func:`solution_file_keys` is the ONE place that knows which files hold a fit's solutions; today it
reads ``calibration_fit_file`` (kind hyperdrive) and, for a manifest-ingested fit, that prefix's
``manifest.json``; a fit without a recorded file is taken to be a site-pipeline fit,
``fits/<obsid>/<fitid>/<obsid>_solutions.fits``. When a table listing every solution file of a fit
lands, only this function changes.

:func:`curves_from_solutions` (pure) turns read hyperdrive solutions plus the observation's tiles
(``observation_tile``: Antenna -> tile id, flag) and the fit's rows into
:class:`~chalicelib.ingest.modelerror.PhaseCurves`: chanblocks of every file concatenated in
frequency order, timeblocks averaged (NaN-aware) as the ingest does, usable chanblocks those hyperdrive
converged on and did not flag, phases relative to the fit's reference tile (the lowest tile id whose
row is exactly 0 in both pols; else the lowest unflagged tile with solutions).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from chalicelib import storage
from chalicelib.config import settings
from chalicelib.ingest.modelerror import PhaseCurves, phase_curves, reference_from_rows


def solution_file_keys(fitid: int, obsid: int) -> list[str]:
    """Keys (calibration bucket) of the fit's solution files, in the order the fit lists them."""
    from chalicelib.db import query
    from chalicelib.ingest import layout

    rows = query("SELECT bucket_key FROM calibration_fit_file WHERE fitid = :f AND obsid = :o AND kind = 'hyperdrive'",
                 {"f": fitid, "o": obsid})
    prefix = f"{layout.PREFIX}{int(obsid)}/{int(fitid)}/"
    if not rows:
        return [f"{prefix}{int(obsid)}_solutions.fits"]
    key = str(rows[0]["bucket_key"])
    if key.rsplit("/", 1)[-1] == f"{int(obsid)}_solutions.fits":
        return [key]
    raw = storage.get_object(settings().cal_bucket, key.rsplit("/", 1)[0] + "/" + layout.MANIFEST_NAME)
    if raw is None:
        return [key]
    return [key.rsplit("/", 1)[0] + "/" + name for name in layout.Manifest.parse(raw).solutions]


def read_solutions(keys: Sequence[str]) -> list[Any]:
    """The hyperdrive solutions (CalibrationSolution) of the given calibration-bucket keys; [] when any is missing."""
    from chalicelib.formats.hyperdrive import read_hyperdrive
    from chalicelib.ingest.landing import fetch
    from chalicelib.ingest.layout import LandingError

    try:
        bodies = fetch(settings().cal_bucket, list(keys))
    except LandingError:  # not (or no longer) all in the bucket: no curves rather than part of a band
        return []
    return [read_hyperdrive(bodies[k]) for k in keys]


def curves_from_solutions(solutions: Sequence[Any], tiles: Iterable[Mapping[str, Any]],
                          lines: Mapping[int, Sequence[float]]) -> PhaseCurves | None:
    """Phase curves of read solutions (see the module doc); None when no tile can be placed or referenced."""
    from chalicelib.ingest.fit_inputs import weights_from_results

    by_antenna = {int(t["antenna"]): t for t in tiles if t.get("antenna") is not None}
    if not solutions or not by_antenna:
        return None
    antennas = np.array(sorted(by_antenna), dtype=np.int64)
    slot = {int(a): i for i, a in enumerate(antennas)}
    jones_parts, freq_parts, ok_parts = [], [], []
    flagged = np.array([bool(by_antenna[int(a)].get("flagged")) for a in antennas])
    for sol in solutions:
        if sol.n_times == 1:
            j = sol.jones[0]
        else:
            with np.errstate(invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                j = np.nanmean(sol.jones, axis=0)
        full = np.full((len(antennas), sol.n_chans, 4), complex(np.nan, np.nan))
        for row, t in enumerate(sol.tiles):
            if t.antenna in slot:
                full[slot[t.antenna]] = j[row]
                flagged[slot[t.antenna]] |= bool(t.flagged)
        jones_parts.append(full)
        freq_parts.append(np.asarray(sol.freqs_hz, dtype=np.float64))
        ok_parts.append(weights_from_results(sol.results, sol.chanblock_flags, sol.n_chans) > 0)
    freqs = np.concatenate(freq_parts)
    order = np.argsort(freqs, kind="stable")
    jones = np.concatenate(jones_parts, axis=1)[:, order]
    usable = np.broadcast_to(np.concatenate(ok_parts)[order], jones.shape[:2]) & ~flagged[:, None]
    tile_ids = np.array([int(by_antenna[int(a)]["tileid"]) for a in antennas], dtype=np.int64)
    has_data = (usable & np.isfinite(jones[:, :, [0, 3]]).all(axis=2)).any(axis=1)
    ref = reference_from_rows(lines, [int(t) for t, ok in zip(tile_ids, has_data) if ok])
    if ref is None:
        if not has_data.any():
            return None
        ref = int(tile_ids[has_data].min())
    return phase_curves(jones, usable, freqs[order], tile_ids, ref)


def fit_curves(fitid: int, obsid: int) -> PhaseCurves | None:
    """The fit's phase curves read from its files in the calibration bucket (None: no files or no rows)."""
    from chalicelib.db.modelerror import fit_lines
    from chalicelib.db.summary import observation_tiles

    from chalicelib.errors import StorageUnavailable
    from chalicelib.observability import logger

    lines = fit_lines(fitid, obsid)
    if not lines:
        return None
    keys = solution_file_keys(fitid, obsid)
    try:
        solutions = read_solutions(keys)
    except StorageUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - a file in the bucket that is not hyperdrive: draw the lines only
        logger.warning("solution files of the fit cannot be read", extra={
            "fitid": fitid, "obsid": obsid, "keys": list(keys[:3]), "error": f"{type(exc).__name__}: {exc}"})
        return None
    return curves_from_solutions(solutions, observation_tiles(obsid), lines)
