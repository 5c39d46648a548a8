"""The table's line-model error: how far a calibration_solutions row's phase line is from the fit's own solutions.

A row holds one straight phase line per pol, ``phi(nu) = intercept - 2 pi nu delay_m / c``
(``shared/docs/domain.md``). The fit's solution files hold the phase itself. Per tile and pol the
*model error* is the rms, over the tile's usable chanblocks, of the wrapped difference between the
file's phase relative to the reference tile (``angle(J_tile * conj(J_ref))``) and the row's line.
Unweighted and unclipped: every usable chanblock counts once, because the question is what a user of
the row gets on the whole band, not how well the fit's clipped, weighted least squares did. (The
ingest's ``x/y_phase_sigma_resid`` is that weighted rms over the *kept* chanblocks only, so on tiles
whose phase bends it is smaller than the model error; see tests/test_model_error.py.)

On obs 1369821496: 0.03-0.2 rad on the core and hex tiles, 0.55-0.61 rad on the 14 long-baseline tiles.

Pure numpy; :func:`phase_curves` turns read solutions into the inputs, :func:`model_error` computes it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from chalicelib.angles import wrap_phase
from chalicelib.instrument import SPEED_OF_LIGHT

POLS = ("x", "y")  # XX (Jones index 0) -> x_*, YY (index 3) -> y_*


@dataclass
class PhaseCurves:
    """Every tile's phase relative to the reference tile, per chanblock and pol (NaN = unusable)."""

    tile_ids: np.ndarray  # (n,) ascending
    freqs_hz: np.ndarray  # (c,)
    phase: np.ndarray  # (n, c, 2) rad in [-pi, pi), pols X, Y; NaN where the tile or reference has no usable solution
    reference_tile_id: int


@dataclass
class ModelError:
    """Per tile (tile-id order) the rms of file phase minus table line, X and Y (NaN: no line or no data)."""

    tile_ids: np.ndarray  # (n,)
    x_rms: np.ndarray  # (n,) rad
    y_rms: np.ndarray  # (n,) rad
    n_chanblocks: np.ndarray  # (n, 2) chanblocks each rms was taken over


def line_phase(intercept: np.ndarray | float, delay_m: np.ndarray | float, freqs_hz: np.ndarray) -> np.ndarray:
    """The row's phase line at the given frequencies, ``intercept - 2 pi nu delay / c`` (unwrapped), broadcast."""
    i = np.asarray(intercept, dtype=np.float64)[..., None]
    d = np.asarray(delay_m, dtype=np.float64)[..., None]
    return i - 2.0 * np.pi * np.asarray(freqs_hz, dtype=np.float64) * d / SPEED_OF_LIGHT


def phase_curves(jones: np.ndarray, usable: np.ndarray, freqs_hz: np.ndarray, tile_ids: np.ndarray,
                 reference_tile_id: int) -> PhaseCurves:
    """Phases of ``J_tile * conj(J_ref)`` (XX, YY) of solutions ``jones`` (n, c, 4); ``usable`` (n, c) or (c,) bool."""
    jones = np.asarray(jones, dtype=np.complex128)
    tile_ids = np.asarray(tile_ids, dtype=np.int64)
    order = np.argsort(tile_ids, kind="stable")
    jones, tile_ids = jones[order], tile_ids[order]
    ok = np.broadcast_to(np.asarray(usable, dtype=bool), jones.shape[:2])
    ok = ok[order] if ok.ndim == 2 and ok.shape[0] == len(order) else ok
    ref = int(np.flatnonzero(tile_ids == int(reference_tile_id))[0])
    j = jones[:, :, [0, 3]]
    with np.errstate(invalid="ignore"):
        z = j * np.conj(j[ref][None, :, :])
    good = ok[:, :, None] & ok[ref][None, :, None] & np.isfinite(z) & (np.abs(z) > 0)
    phase = np.where(good, np.angle(z), np.nan)
    return PhaseCurves(tile_ids=tile_ids, freqs_hz=np.asarray(freqs_hz, dtype=np.float64), phase=phase,
                       reference_tile_id=int(reference_tile_id))


def model_error(curves: PhaseCurves, lines: Mapping[int, Sequence[float]]) -> ModelError:
    """rms over usable chanblocks of wrap(file phase - row line) per tile and pol.

    ``lines[tileid] = (x_intercept, x_delay_m, y_intercept, y_delay_m)``; a tile without a line,
    or whose line is NaN (a flagged row), or with no usable chanblock gets NaN.
    """
    n = len(curves.tile_ids)
    params = np.full((n, 2, 2), np.nan)  # tile, pol, (intercept, delay)
    for i, t in enumerate(curves.tile_ids):
        if int(t) in lines:
            xi, xd, yi, yd = (float(v) if v is not None else np.nan for v in lines[int(t)])
            params[i] = ((xi, xd), (yi, yd))
    model = line_phase(params[..., 0], params[..., 1], curves.freqs_hz)  # (n, 2, c)
    diff = wrap_phase(curves.phase - np.moveaxis(model, 1, 2))  # (n, c, 2)
    ok = np.isfinite(diff)
    count = ok.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rms = np.sqrt((np.where(ok, diff, 0.0) ** 2).sum(axis=1) / count)
    rms = np.where(count > 0, rms, np.nan)
    return ModelError(tile_ids=curves.tile_ids, x_rms=rms[:, 0], y_rms=rms[:, 1], n_chanblocks=count)


def reference_from_rows(lines: Mapping[int, Sequence[float]], candidates: Sequence[int]) -> int | None:
    """The reference tile of a fit from its rows: the lowest tile id whose line is exactly 0 in both pols."""
    zero = sorted(t for t in candidates if t in lines and all(float(v) == 0.0 for v in lines[t]))
    return zero[0] if zero else None


def lines_of(rows: Sequence[object]) -> dict[int, tuple[float, float, float, float]]:
    """tileid -> (x_intercept, x_delay_m, y_intercept, y_delay_m) of SolutionRow records."""
    return {int(r.tileid): (r.x_intercept, r.x_delay_m, r.y_intercept, r.y_delay_m) for r in rows}  # type: ignore[attr-defined]


def line_model_error(jones: np.ndarray, usable: np.ndarray, freqs_hz: np.ndarray, tile_ids: np.ndarray,
                     reference_tile_id: int, rows: Sequence[object]) -> ModelError:
    """The model error of SolutionRow ``rows`` against solutions ``jones`` (n, c, 4): phase_curves, then model_error."""
    return model_error(phase_curves(jones, usable, freqs_hz, tile_ids, reference_tile_id), lines_of(rows))
