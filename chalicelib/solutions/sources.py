"""Where a served solution comes from: the ``calibration_solutions`` rows (``table``) or the fit's own files (``file``).

``table`` rebuilds the Jones from one delay and one intercept per tile and pol (the line model);
``file`` converts the fit's hyperdrive solution files exactly (:mod:`chalicelib.solutions.exact`);
``best`` is ``file`` when the fit has recorded files, else ``table``. The defaults: ``table`` for
AO-cal (what old callers got), ``best`` for hyperdrive and auto.

Interpolated (``interpolate=1``): ``file`` needs both fits' files (else the one-sided 404 for the
fit lacking them); ``best`` is ``file`` only when both fits resolve to ``file``, else ``table`` for
both. Both sides are served on one grid (:func:`interpolated_width_khz`).
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


def interpolated_width_khz(requested_khz: float | None, native_before_khz: float, native_after_khz: float) -> float:
    """The one grid two fits' files are combined on: the requested width, else the coarser native one.

    The width must be a whole multiple of both native widths (400 naming the one it is not, as one
    fit's answer does); without a request, natives of which the coarser is not a multiple of the finer are a 409.
    """
    if requested_khz is None:
        coarse, fine = max(native_before_khz, native_after_khz), min(native_before_khz, native_after_khz)
        ratio = coarse / fine
        if abs(ratio - round(ratio)) > 1e-9:
            raise Conflict(f"the two fits' solution files have native chanblock widths {native_before_khz:g} and "
                           f"{native_after_khz:g} kHz, and neither is a whole multiple of the other: ask for a "
                           "fine_chan_khz that is a multiple of both (or source=table)", parameter="fine_chan_khz")
        return float(coarse)
    for native in (native_before_khz, native_after_khz):
        served_width_khz(requested_khz, native)
    return float(requested_khz)
