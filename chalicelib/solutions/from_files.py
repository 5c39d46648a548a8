"""A ``source=file`` solution: fetch the fit's files covering the target (each once, in parallel) and convert them.

The I/O around :func:`chalicelib.solutions.exact.exact_solution`: the recorded files
(``calibration_fit_solution_file``), the target's and the calibrator's tiles, the fit's
``gain_max_cutoff`` and the target's time span from the database, the files from the calibration bucket.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from chalicelib import storage
from chalicelib.config import settings
from chalicelib.db import selection as queries
from chalicelib.db import solution_files
from chalicelib.errors import Conflict, NotFound
from chalicelib.solutions.exact import exact_solution, nearest_timeblock
from chalicelib.solutions.files import SolutionFile, covering
from chalicelib.solutions.solution import CalibrationSolution, TileInfo

FETCH_THREADS = 8


def read_files(bucket: str, files: Sequence[SolutionFile]) -> list[CalibrationSolution]:
    """Fetch and read each file once, in parallel threads; 404 naming a recorded file the bucket no longer has."""
    from chalicelib.formats.hyperdrive import read_hyperdrive

    def one(f: SolutionFile) -> CalibrationSolution:
        raw = storage.get_object(bucket, f.bucket_key)
        if raw is None:
            raise NotFound(f"the fit's solution file s3://{bucket}/{f.bucket_key} is no longer there",
                           parameter="source")
        return read_hyperdrive(raw)

    with ThreadPoolExecutor(max_workers=max(1, min(FETCH_THREADS, len(files)))) as pool:
        return list(pool.map(one, files))


def file_solution(*, obs_id: int, target_channels: Sequence[int], cal_obsid: int, cal_stoptime: int, fitid: int,
                  width_hz: float, single_interval: bool, target_tiles: Sequence[TileInfo]) -> CalibrationSolution:
    """The target's solution from the fit's own files; one timeblock (nearest the target) when ``single_interval``."""
    needed = covering(solution_files.of_fit(fitid, cal_obsid), target_channels)
    if not needed:
        raise NotFound(f"fit {fitid} of calibrator {cal_obsid} has no solution file holding the target's channels",
                       parameter="source")
    sols = read_files(settings().cal_bucket, needed)
    timeblock = None
    if single_interval:
        span = solution_files.observation_span(obs_id) or (obs_id, obs_id)
        timeblock = nearest_timeblock(sols[0], span)
    try:
        return exact_solution(sols, target_tiles=target_tiles, cal_tiles=queries.observation_tiles(cal_obsid),
                              target_channels=target_channels, width_hz=width_hz,
                              gain_max_cutoff=solution_files.gain_max_cutoff(fitid, cal_obsid), timeblock=timeblock,
                              cal_obsid=cal_obsid, fitid=fitid, fallback_times=(float(cal_obsid), float(cal_stoptime)))
    except ValueError as exc:
        raise Conflict(f"the solution files of fit {fitid} cannot be served: {exc}", parameter="source") from exc
