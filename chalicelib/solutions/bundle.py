"""The solution zip of get_cal_solution: Jones rebuilt from the database for the target's tiles, cached in S3.

``WRITERS`` is the one place an output format is chosen (format -> writer and file name);
``resolve_format`` turns ``auto`` into one of them, once per request, when the ``ZipSpec`` is made.
``solution_files`` is the pure part (solution in, files out); ``build`` adds the database and
``deliver`` the products-bucket cache and the presigned URL.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from chalicelib import observability, storage
from chalicelib.config import settings
from chalicelib.db import selection as queries
from chalicelib.errors import NotFound
from chalicelib.formats.aocal import write_aocal
from chalicelib.formats.bundle import build_zip
from chalicelib.formats.flags import casa_flag_script, flagged_tiles_text
from chalicelib.formats.hyperdrive import write_hyperdrive
from chalicelib.solutions.rebuild import assemble
from chalicelib.solutions.solution import CalibrationSolution

FINE_CHAN_KHZ = (10, 20, 40, 80, 160, 320, 640, 1280)


@dataclass(frozen=True)
class Writer:
    """How one output format is written: the writer and the solution file's name in the zip."""

    write: Callable[[CalibrationSolution], bytes]
    file_name: str  # formatted with cal_obsid


WRITERS: dict[str, Writer] = {
    "aocal": Writer(write_aocal, "{cal_obsid}.bin"),
    "hyperdrive": Writer(write_hyperdrive, "{cal_obsid}_solutions.fits"),
}
AUTO = "auto"  # hyperdrive when the fit has a hyperdrive file in the calibration bucket, else aocal
FORMATS = (*WRITERS, AUTO)


def resolve_format(output_format: str, fit_has_hyperdrive_file: bool) -> str:
    """The format actually written: ``auto`` becomes hyperdrive or aocal, any other stays as asked."""
    if output_format == AUTO:
        return "hyperdrive" if fit_has_hyperdrive_file else "aocal"
    if output_format not in WRITERS:
        raise ValueError(f"unknown output format {output_format!r}")
    return output_format


@dataclass(frozen=True)
class ZipSpec:
    """One solution zip: the target it is for, the fit it serves, and how the solution is written."""

    obs_id: int  # the target: its tiles and channels, and the name of the flag files
    target_channels: tuple[int, ...]  # the target's receiver channels
    cal_obsid: int
    cal_stoptime: int
    cal_channels: tuple[int, ...]  # the calibrator's receiver channels (the gains columns, ascending)
    fitid: int
    output_format: str  # a key of WRITERS (resolve_format has turned ``auto`` into one)
    fine_chan_khz: int = 40
    nocache: bool = False
    variant: tuple[str, ...] = ()  # names files the caller adds (e.g. "metafits"), so its zips are cached apart
    nan_tiles: frozenset[int] = frozenset()  # tile ids served as NaN (a partial validity epoch); name it in variant
    nan_receivers: frozenset[int] = frozenset()  # receivers whose tiles are served as NaN

    def __post_init__(self) -> None:
        if self.output_format not in WRITERS:
            raise ValueError(f"output format {self.output_format!r} is not resolved to one of {', '.join(WRITERS)}")


def solution_files(sol: CalibrationSolution, name_obsid: int, output_format: str) -> dict[str, bytes]:
    """The files of the zip: the solution, the flagged tiles and the CASA flag script."""
    writer = WRITERS[output_format]
    flagged = sol.flagged_antennas()
    names = {t.antenna: t.name for t in sol.tiles}
    return {
        writer.file_name.format(cal_obsid=sol.cal_obsid): writer.write(sol),
        f"{name_obsid}_flagged_tiles.txt": flagged_tiles_text(flagged).encode(),
        f"{name_obsid}_flags.py": casa_flag_script(name_obsid, [names[a] for a in flagged]).encode(),
    }


def cache_key(spec: ZipSpec) -> str:
    """Where the zip is kept in the products bucket: names obs, fit, format, resolution and variant."""
    extra = "".join(f"-{v}" for v in spec.variant)
    return (f"cal_solutions/{spec.obs_id}/{spec.obs_id}_cal{spec.cal_obsid}_fit{spec.fitid}"
            f"_{spec.output_format}_{spec.fine_chan_khz}khz{extra}.zip")


def build(spec: ZipSpec, extra_files: Mapping[str, bytes] | None = None) -> bytes:
    """Build the zip bytes for one (calibrator, fit) from the database."""
    rows = queries.solution_rows(spec.fitid, spec.cal_obsid)
    if not rows:
        raise NotFound(f"fit {spec.fitid} of calibrator {spec.cal_obsid} has no solution rows")
    tiles = queries.observation_tiles(spec.obs_id) or queries.observation_tiles(spec.cal_obsid)
    if not tiles:
        raise NotFound(f"no tile list is recorded for observation {spec.obs_id} or its calibrator {spec.cal_obsid}")
    if spec.nan_tiles or spec.nan_receivers:  # a tile the fit lacks is NaN
        masked = set(spec.nan_tiles) | {t.tile_id for t in tiles if t.rx in spec.nan_receivers}
        rows = [r for r in rows if r["tileid"] not in masked]
    sol = assemble(rows, spec.cal_channels, tiles, spec.target_channels, spec.fine_chan_khz * 1e3,
                   (float(spec.cal_obsid), float(spec.cal_stoptime)), spec.cal_obsid, spec.fitid)
    files = solution_files(sol, spec.obs_id, spec.output_format)
    files.update(extra_files or {})
    return build_zip(files)


def deliver(spec: ZipSpec, download_name: str,
            extra_files: Callable[[], Mapping[str, bytes]] | None = None) -> str:
    """The presigned URL of the zip, built and stored unless an identical one is cached.

    ``extra_files()`` is called only when the zip is built (its files may cost a database trip).
    """
    cfg = settings()
    key = cache_key(spec)
    if spec.nocache or not storage.exists(cfg.products_bucket, key):
        observability.count(observability.CACHE_MISS)
        body = build(spec, extra_files() if extra_files else None)
        storage.put_object(cfg.products_bucket, key, body, "application/zip")
    else:
        observability.count(observability.CACHE_HIT)
    return storage.presigned_url(cfg.products_bucket, key, download_name=download_name,
                                 content_type="application/zip")
