"""The solution zip of get_cal_solution: Jones rebuilt from the database for the target's tiles.

``assemble`` is the pure part (rows in, CalibrationSolution out); ``deliver`` adds the database,
the products-bucket cache and the presigned URL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from chalicelib import observability, storage
from chalicelib.config import settings
from chalicelib.db import selection as queries
from chalicelib.errors import NotFound
from chalicelib.formats.bundle import build_zip
from chalicelib.formats.flags import casa_flag_script, flagged_tiles_text
from chalicelib.jones import SolutionArrays, rebuild_jones
from chalicelib.selection.rules import Candidate
from chalicelib.solution import CalibrationSolution, TileInfo

FINE_CHAN_KHZ = (10, 20, 40, 80, 160, 320, 640, 1280)
FORMATS = ("aocal", "hyperdrive", "auto")


@dataclass(frozen=True)
class Request:
    """What the zip is built for."""

    obs_id: int
    output_format: str = "aocal"
    fine_chan_khz: int = 40
    nocache: bool = False
    with_metafits: bool = False  # the deprecated get_calfile_for_obsid adds <obs_id>.metafits
    cache_tag: str = ""  # names a variant of the zip's content in its cache key (e.g. a generated metafits)


def assemble(rows: Sequence[Mapping], cal_channels: Sequence[int], tiles: Sequence[TileInfo],
             target_channels: Sequence[int], fine_chan_hz: float, times_gps: tuple[float, float],
             cal_obsid: int, fitid: int) -> CalibrationSolution:
    """Jones for the target: its tiles in its Antenna order, its coarse channels, one interval.

    ``rows`` are calibration_solutions rows of the calibrator (gains over ``cal_channels``
    ascending). A target tile the fit lacks is NaN; gains columns are cut to the target's channels.
    """
    cal_sorted = sorted(cal_channels)
    arrays = SolutionArrays.from_rows(rows, len(cal_sorted))
    by_tile = {int(r["tileid"]): i for i, r in enumerate(rows)}
    tile_idx = np.array([by_tile.get(t.tile_id, -1) for t in tiles], dtype=int)
    col = {ch: k for k, ch in enumerate(cal_sorted)}
    chan_idx = np.array([col[ch] for ch in sorted(target_channels)], dtype=int)
    sub = _subset(arrays, tile_idx, chan_idx)
    jones = rebuild_jones(sub, sorted(target_channels), fine_chan_hz)
    from chalicelib.jones import fine_channel_freqs

    freqs = fine_channel_freqs(sorted(target_channels), fine_chan_hz)
    return CalibrationSolution(jones=jones[np.newaxis], tiles=list(tiles), freqs_hz=freqs,
                               times_gps=[times_gps], cal_obsid=cal_obsid, fitid=fitid)


def _subset(a: SolutionArrays, tile_idx: np.ndarray, chan_idx: np.ndarray) -> SolutionArrays:
    """Rows picked by tile_idx (-1 = missing tile -> NaN) and gains columns by chan_idx."""
    missing = tile_idx < 0
    safe = np.where(missing, 0, tile_idx)

    def one(v: np.ndarray) -> np.ndarray:
        out = v[safe].astype(np.float64, copy=True)
        out[missing] = np.nan
        return out

    def two(v: np.ndarray | None, fill: float) -> np.ndarray | None:
        if v is None:
            return None
        out = v[np.ix_(safe, chan_idx)].astype(np.float64, copy=True)
        out[missing] = fill
        return out

    return SolutionArrays(
        x_delay_m=one(a.x_delay_m), x_intercept=one(a.x_intercept), x_gains=two(a.x_gains, np.nan),
        x_gains_pol0=two(a.x_gains_pol0, 0.0), x_gains_pol1=two(a.x_gains_pol1, 0.0),
        y_delay_m=one(a.y_delay_m), y_intercept=one(a.y_intercept), y_gains=two(a.y_gains, np.nan),
        y_gains_pol0=two(a.y_gains_pol0, 0.0), y_gains_pol1=two(a.y_gains_pol1, 0.0),
    )


def solution_files(sol: CalibrationSolution, name_obsid: int, output_format: str) -> dict[str, bytes]:
    """The files of the zip: the solution, the flagged tiles and the CASA flag script."""
    flagged = sol.flagged_antennas()
    names = {t.antenna: t.name for t in sol.tiles}
    if output_format == "hyperdrive":
        from chalicelib.formats.hyperdrive import write_hyperdrive

        solution_name, solution = f"{sol.cal_obsid}_solutions.fits", write_hyperdrive(sol)
    else:
        from chalicelib.formats.aocal import write_aocal

        solution_name, solution = f"{sol.cal_obsid}.bin", write_aocal(sol)
    return {
        solution_name: solution,
        f"{name_obsid}_flagged_tiles.txt": flagged_tiles_text(flagged).encode(),
        f"{name_obsid}_flags.py": casa_flag_script(name_obsid, [names[a] for a in flagged]).encode(),
    }


def cache_key(req: Request, cand: Candidate, fmt: str) -> str:
    """Where the zip is kept in the products bucket: names obs, fit, format and resolution."""
    extra = ("-metafits" if req.with_metafits else "") + (f"-{req.cache_tag}" if req.cache_tag else "")
    return (f"cal_solutions/{req.obs_id}/{req.obs_id}_cal{cand.calibrator.obsid}_fit{cand.fit.fitid}"
            f"_{fmt}_{req.fine_chan_khz}khz{extra}.zip")


def resolved_format(req: Request, cand: Candidate) -> str:
    """``auto`` is hyperdrive when the fit has a hyperdrive file in the bucket, else aocal."""
    if req.output_format == "auto":
        return "hyperdrive" if cand.fit and cand.fit.solution_key else "aocal"
    return req.output_format


def build(req: Request, cand: Candidate, target_channels: Sequence[int], name_obsid: int | None = None,
          extra_files: Mapping[str, bytes] | None = None) -> bytes:
    """Build the zip bytes for one (calibrator, fit) from the database."""
    cal = cand.calibrator
    rows = queries.solution_rows(cand.fit.fitid, cal.obsid)
    if not rows:
        raise NotFound(f"fit {cand.fit.fitid} of calibrator {cal.obsid} has no solution rows")
    tiles = queries.observation_tiles(req.obs_id) or queries.observation_tiles(cal.obsid)
    if not tiles:
        raise NotFound(f"no tile list is recorded for observation {req.obs_id} or its calibrator {cal.obsid}")
    sol = assemble(rows, cal.channels, tiles, target_channels, req.fine_chan_khz * 1e3,
                   (float(cal.obsid), float(cal.stoptime)), cal.obsid, cand.fit.fitid)
    files = solution_files(sol, name_obsid or req.obs_id, resolved_format(req, cand))
    files.update(extra_files or {})
    return build_zip(files)


def deliver(req: Request, cand: Candidate, target_channels: Sequence[int], download_name: str,
            name_obsid: int | None = None, extra_files=None) -> str:
    """The presigned URL of the zip, built and stored unless an identical one is cached."""
    cfg = settings()
    key = cache_key(req, cand, resolved_format(req, cand))
    if req.nocache or not storage.exists(cfg.products_bucket, key):
        observability.count(observability.CACHE_MISS)
        files = extra_files() if callable(extra_files) else extra_files
        body = build(req, cand, target_channels, name_obsid, files)
        storage.put_object(cfg.products_bucket, key, body, "application/zip")
    else:
        observability.count(observability.CACHE_HIT)
    return storage.presigned_url(cfg.products_bucket, key, download_name=download_name,
                                 content_type="application/zip")
