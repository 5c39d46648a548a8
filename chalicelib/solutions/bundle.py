"""The solution zip of get_cal_solution: the target's Jones (rebuilt from the rows, or the fit's own files), cached in S3.

``ZipSpec.source`` says which (:mod:`chalicelib.solutions.sources`): ``table`` rebuilds from
``calibration_solutions`` (:mod:`rebuild`), ``file`` converts the fit's hyperdrive files exactly
(:mod:`from_files`); the cache key of a file answer carries ``-file``. Interpolated, ``file``
combines both fits' files (:func:`interpolated_from_files`, ``interpolate.combine_jones``), ``table``
their rows (:func:`interpolated`).

``WRITERS`` is the one place an output format is chosen (format -> writer and file name);
``resolve_format`` turns ``auto`` into one of them, once per request, when the ``ZipSpec`` is made.
``solution_files`` is the pure part (solution in, files out); ``build`` adds the database and
``deliver`` the products-bucket cache and the presigned URL.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from chalicelib import metadata, observability, storage
from chalicelib.config import settings
from chalicelib.db import selection as queries
from chalicelib.errors import NotFound
from chalicelib.formats.aocal import write_aocal
from chalicelib.formats.bundle import build_zip
from chalicelib.formats.flags import casa_flag_script, flagged_tiles_text
from chalicelib.formats.hyperdrive import write_hyperdrive
from chalicelib.solutions.attenuation import attenuation_factor, correct_jones, correct_rows
from chalicelib.solutions.interpolate import combine_jones, cut_channels, interpolate_rows, shared_reference
from chalicelib.solutions.rebuild import assemble
from chalicelib.solutions.solution import CalibrationSolution
from chalicelib.solutions.sources import FILE, TABLE

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
class Side:
    """The second calibrator fit of an interpolated zip (the one after the target)."""

    cal_obsid: int
    cal_stoptime: int
    cal_channels: tuple[int, ...]
    fitid: int
    cal_db: float | None = None  # its gain_control_value (for correct_attenuation)


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
    fine_chan_khz: float = 40  # the width served (source=file: the native chanblock width or a multiple)
    nocache: bool = False
    variant: tuple[str, ...] = ()  # names files the caller adds (e.g. "metafits"), so its zips are cached apart
    after: Side | None = None  # interpolate: the calibrator after the target; cal_obsid/fitid are the one before
    weight: float = 1.0  # interpolate: w on cal_obsid/fitid, 1 - w on ``after`` (solutions.interpolate.weight)
    target_db: float | None = None  # correct_attenuation: the target's gain_control_value (None: no correction)
    cal_db: float | None = None  # correct_attenuation: the calibrator's (cal_obsid) gain_control_value
    source: str = TABLE  # TABLE (rebuilt from the rows) or FILE (the fit's own hyperdrive files)
    nan_tiles: frozenset[int] = frozenset()  # tile ids served as NaN (a partial validity epoch); name it in variant
    nan_receivers: frozenset[int] = frozenset()  # receivers whose tiles are served as NaN

    def __post_init__(self) -> None:
        if self.output_format not in WRITERS:
            raise ValueError(f"output format {self.output_format!r} is not resolved to one of {', '.join(WRITERS)}")
        if self.source not in (TABLE, FILE):
            raise ValueError(f"solution source {self.source!r} is not resolved to {TABLE} or {FILE}")


def solution_files(sol: CalibrationSolution, name_obsid: int, output_format: str, *,
                   solution_name: str | None = None, note: str | None = None) -> dict[str, bytes]:
    """The files of the zip: the solution, the flagged tiles and the CASA flag script (``note`` in its header)."""
    writer = WRITERS[output_format]
    flagged = sol.flagged_antennas()
    names = {t.antenna: t.name for t in sol.tiles}
    name = solution_name if solution_name is not None else str(sol.cal_obsid)
    return {
        writer.file_name.format(cal_obsid=name): writer.write(sol),
        f"{name_obsid}_flagged_tiles.txt": flagged_tiles_text(flagged).encode(),
        f"{name_obsid}_flags.py": casa_flag_script(name_obsid, [names[a] for a in flagged], note=note).encode(),
    }


def _factor(spec: ZipSpec, cal_db: float | None) -> float:
    """The attenuation factor applied to one calibrator's Jones (1 when not correcting or equal)."""
    if spec.target_db is None or cal_db is None or cal_db == spec.target_db:
        return 1.0
    return attenuation_factor(spec.target_db, cal_db)


def _corrected(spec: ZipSpec) -> bool:
    return _factor(spec, spec.cal_db) != 1.0 or (spec.after is not None and _factor(spec, spec.after.cal_db) != 1.0)


def solution_name(spec: ZipSpec) -> str:
    """What the solution file is named after: the calibrator, or both calibrators when interpolated."""
    return f"{spec.cal_obsid}_{spec.after.cal_obsid}" if spec.after else str(spec.cal_obsid)


def note(spec: ZipSpec) -> str | None:
    """The flag script's header note: the interpolation and the attenuation factor applied (None for a plain zip)."""
    lines = []
    if spec.after:
        lines.append(f"Solution interpolated in time: weight {spec.weight:.6g} on calibrator {spec.cal_obsid} "
                     f"fit {spec.fitid}, {1 - spec.weight:.6g} on calibrator {spec.after.cal_obsid} "
                     f"fit {spec.after.fitid}.")
    sides = [(spec.cal_obsid, spec.cal_db)] + ([(spec.after.cal_obsid, spec.after.cal_db)] if spec.after else [])
    for cal, db_ in sides:
        f = _factor(spec, db_)
        if f != 1.0:
            lines.append(f"Attenuation corrected: Jones of calibrator {cal} x 10^(({spec.target_db:g} - {db_:g})/20) "
                         f"= {f:.6g} (target {spec.target_db:g} dB, calibrator {db_:g} dB).")
    return "\n".join(lines) or None


def cache_key(spec: ZipSpec) -> str:
    """Where the zip is kept in the products bucket: names obs, fit(s), weight, correction, format, resolution,
    source (file) and variant."""
    extra = ("-file" if spec.source == FILE else "") + "".join(f"-{v}" for v in spec.variant)
    interp = f"_cal{spec.after.cal_obsid}_fit{spec.after.fitid}_w{spec.weight:.12g}" if spec.after else ""
    corr = f"_atten{spec.target_db:g}db" if _corrected(spec) else ""
    return (f"cal_solutions/{spec.obs_id}/{spec.obs_id}_cal{spec.cal_obsid}_fit{spec.fitid}{interp}{corr}"
            f"_{spec.output_format}_{spec.fine_chan_khz:g}khz{extra}.zip")


def _rows(fitid: int, cal_obsid: int) -> list[dict]:
    rows = queries.solution_rows(fitid, cal_obsid)
    if not rows:
        raise NotFound(f"fit {fitid} of calibrator {cal_obsid} has no solution rows")
    return rows


def _target_tiles(spec: ZipSpec) -> list:
    """The target's tiles in Antenna order (the calibrator's when the target has none recorded)."""
    tiles = metadata.observation_tiles(spec.obs_id) or metadata.observation_tiles(spec.cal_obsid)
    if not tiles:
        raise NotFound(f"no tile list is recorded for observation {spec.obs_id} or its calibrator {spec.cal_obsid}")
    return tiles


def interpolated(spec: ZipSpec, tiles: list) -> CalibrationSolution:
    """The solution combined from both sides' rows (each cut to the target's channels and corrected), then rebuilt.

    One interval, from the start of the calibrator before to the end of the one after.
    """
    after = spec.after
    sides = []
    for fitid, cal, channels, cal_db in ((spec.fitid, spec.cal_obsid, spec.cal_channels, spec.cal_db),
                                         (after.fitid, after.cal_obsid, after.cal_channels, after.cal_db)):
        rows = cut_channels(_rows(fitid, cal), channels, spec.target_channels)
        if _factor(spec, cal_db) != 1.0:
            rows = correct_rows(rows, spec.target_db, cal_db)
        sides.append(rows)
    rows = interpolate_rows(sides[0], sides[1], spec.weight)
    return assemble(rows, spec.target_channels, tiles, spec.target_channels, spec.fine_chan_khz * 1e3,
                    (float(spec.cal_obsid), float(after.cal_stoptime)), spec.cal_obsid, spec.fitid)


def fit_reference(fitid: int, cal_obsid: int) -> int | None:
    """The fit's reference tile id: the lowest tile its rows hold at delay and intercept exactly 0 in both pols."""
    from chalicelib.db.modelerror import fit_lines
    from chalicelib.ingest.modelerror import reference_from_rows

    lines = {t: line for t, line in fit_lines(fitid, cal_obsid).items() if None not in line}
    return reference_from_rows(lines, sorted(lines))


def interpolated_from_files(spec: ZipSpec, tiles: list) -> tuple[CalibrationSolution, str]:
    """Both fits' own files on the target's tiles and one grid (each corrected), referred to one tile and combined.

    Each side is its one-sided file answer's timeblock nearest the target; the result has one
    interval, as the table's interpolation. Also returns the flag-script note naming the reference.
    """
    from chalicelib.solutions.from_files import file_solution

    after = spec.after
    jones, refs, first = [], [], None
    for fitid, cal, stop, cal_db in ((spec.fitid, spec.cal_obsid, spec.cal_stoptime, spec.cal_db),
                                     (after.fitid, after.cal_obsid, after.cal_stoptime, after.cal_db)):
        sol = file_solution(obs_id=spec.obs_id, target_channels=spec.target_channels, cal_obsid=cal,
                            cal_stoptime=stop, fitid=fitid, width_hz=spec.fine_chan_khz * 1e3, single_interval=True,
                            target_tiles=tiles)
        first = sol if first is None else first
        j = sol.jones[0]
        jones.append(correct_jones(j, spec.target_db, cal_db) if _factor(spec, cal_db) != 1.0 else j)
        refs.append(fit_reference(fitid, cal))
    ids = [t.tile_id for t in tiles]
    ref_b, ref_a = shared_reference(jones[0], jones[1], ids, refs)
    combined = combine_jones(jones[0], jones[1], spec.weight, ref_b, ref_a)
    if ref_b == ref_a:
        where = f"tile {ids[ref_b]} on both sides"
    else:
        where = f"tile {ids[ref_b]} on the fit before, tile {ids[ref_a]} on the fit after (no tile serves both)"
    text = (f"Jones from each fit's own solution files at {spec.fine_chan_khz:g} kHz, each side divided by the "
            f"phase of its reference tile ({where}) before combining.")
    return CalibrationSolution(jones=combined[None], tiles=list(tiles), freqs_hz=first.freqs_hz,
                               times_gps=[(float(spec.cal_obsid), float(after.cal_stoptime))],
                               cal_obsid=spec.cal_obsid, fitid=spec.fitid), text


def _solution(spec: ZipSpec) -> tuple[CalibrationSolution, str | None]:
    """The target's solution: two fits interpolated (rows or files), the fit's own files (source=file), or its
    rows; then the attenuation correction when asked. Also a line for the flag script's note (or None)."""
    tiles = _target_tiles(spec)
    if spec.after is not None and spec.source == FILE:
        sol, text = interpolated_from_files(spec, tiles)
        return _masked(spec, sol), text
    if spec.after is not None:
        return _masked(spec, interpolated(spec, tiles)), None
    if spec.source == FILE:
        from chalicelib.solutions.from_files import file_solution

        sol = file_solution(obs_id=spec.obs_id, target_channels=spec.target_channels, cal_obsid=spec.cal_obsid,
                            cal_stoptime=spec.cal_stoptime, fitid=spec.fitid, width_hz=spec.fine_chan_khz * 1e3,
                            single_interval=spec.output_format == "aocal", target_tiles=tiles)
    else:
        sol = assemble(_rows(spec.fitid, spec.cal_obsid), spec.cal_channels, tiles, spec.target_channels,
                       spec.fine_chan_khz * 1e3, (float(spec.cal_obsid), float(spec.cal_stoptime)), spec.cal_obsid,
                       spec.fitid)
    if _factor(spec, spec.cal_db) != 1.0:
        sol.jones = correct_jones(sol.jones, spec.target_db, spec.cal_db)
    return _masked(spec, sol), None


def _masked(spec: ZipSpec, sol: CalibrationSolution) -> CalibrationSolution:
    """The tiles a partial validity epoch refuses (by tile id or receiver) served as NaN, from any source."""
    if not (spec.nan_tiles or spec.nan_receivers):
        return sol
    bad = [i for i, t in enumerate(sol.tiles) if t.tile_id in spec.nan_tiles or t.rx in spec.nan_receivers]
    if bad:
        sol.jones = sol.jones.copy()
        sol.jones[:, bad] = complex(float("nan"), float("nan"))
    return sol


def build(spec: ZipSpec, extra_files: Mapping[str, bytes] | None = None) -> bytes:
    """Build the zip bytes for one (calibrator, fit), or two interpolated, from the database (source=file: its files)."""
    sol, text = _solution(spec)
    header = "\n".join(line for line in (note(spec), text) if line) or None
    files = solution_files(sol, spec.obs_id, spec.output_format, solution_name=solution_name(spec), note=header)
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
