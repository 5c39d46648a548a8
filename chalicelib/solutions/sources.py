"""Where a served solution comes from: the ``calibration_solutions`` rows (``table``) or the fit's own files (``file``).

``table`` rebuilds the Jones from one delay and one intercept per tile and pol (the line model);
``file`` converts the fit's hyperdrive solution files exactly (:mod:`chalicelib.solutions.exact`);
``best`` is ``file`` when the fit has recorded files, else ``table``. The defaults: ``table`` for
AO-cal (what old callers got), ``best`` for hyperdrive and auto.
"""

from __future__ import annotations

from collections.abc import Sequence

from chalicelib.errors import BadRequest, Conflict, NotFound
from chalicelib.solutions.files import SolutionFile, covering

TABLE = "table"
FILE = "file"
BEST = "best"
SOURCES = (TABLE, FILE, BEST)
TABLE_FINE_CHAN_KHZ = 40  # the table's default output resolution (32 fine channels per coarse channel)


def default_source(output_format: str) -> str:
    """``table`` for AO-cal, ``best`` for hyperdrive and auto."""
    return TABLE if output_format == "aocal" else BEST


def resolve_source(source: str, files: Sequence[SolutionFile], channels: Sequence[int], fitid: int,
                   cal_obsid: int) -> str:
    """``table`` or ``file``: ``best`` becomes ``file`` when files of the fit hold any of the target's channels;
    ``file`` without such files is a 404."""
    if source not in SOURCES:
        raise ValueError(f"unknown solution source {source!r}")
    held = bool(covering(files, channels))
    if source == BEST:
        return FILE if held else TABLE
    if source == FILE and not held:
        what = "for the target's channels" if files else "recorded"
        raise NotFound(f"fit {fitid} of calibrator {cal_obsid} has no hyperdrive solution files {what}: "
                       "ask for source=table (or best)", parameter="source")
    return source


def native_width_khz(files: Sequence[SolutionFile], channels: Sequence[int]) -> float:
    """The native chanblock width (kHz) of the files holding the channels; 409 when they differ."""
    widths = sorted({f.chanblock_hz for f in covering(files, channels)})
    if len(widths) > 1:
        raise Conflict(f"the fit's solution files have different chanblock widths ({widths} Hz)")
    return widths[0] / 1e3


def served_width_khz(requested_khz: float | None, native_khz: float) -> float:
    """The width a file answer has: the native one by default, or a whole multiple of it (averaged); else 400."""
    if requested_khz is None:
        return native_khz
    ratio = requested_khz / native_khz
    if ratio < 1 - 1e-9 or abs(ratio - round(ratio)) > 1e-9:
        raise BadRequest(f"fine_chan_khz={requested_khz:g} is not a whole multiple of the fit's native chanblock "
                         f"width of {native_khz:g} kHz (source=file serves {native_khz:g} kHz or multiples of it)",
                         parameter="fine_chan_khz")
    return float(requested_khz)
