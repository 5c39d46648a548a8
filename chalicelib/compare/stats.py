"""Per-tile statistics of two Jones solutions over channels: |J_a|/|J_b| and arg(J_a conj(J_b)), XX and YY.

Pure numpy. For each tile and pol, over the channels where both are finite: the median and the rms
(sqrt of the mean square) of the amplitude ratio and of the phase difference (radians, wrapped to
[-pi, pi)), and how many channels were used. A tile with no such channel has null statistics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from chalicelib.angles import wrap_phase

POLS = {"XX": 0, "YY": 3}  # indexes in the (…, 4) Jones layout XX, XY, YX, YY


@dataclass(frozen=True)
class PolStats:
    """One tile's comparison in one pol."""

    channels: int
    amp_ratio_median: float | None
    amp_ratio_rms: float | None
    phase_diff_median: float | None
    phase_diff_rms: float | None


def ratio_and_phase(ja: np.ndarray, jb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """|J_a|/|J_b| and wrap(arg(J_a conj(J_b))), element by element (NaN where either is not finite or |J_b| = 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.abs(ja) / np.abs(jb)
    phase = wrap_phase(np.angle(ja * np.conj(jb)))
    bad = ~(np.isfinite(ja) & np.isfinite(jb)) | ~np.isfinite(ratio)
    return np.where(bad, np.nan, ratio), np.where(bad, np.nan, phase)


def _stats(ratio: np.ndarray, phase: np.ndarray) -> PolStats:
    ok = np.isfinite(ratio) & np.isfinite(phase)
    if not ok.any():
        return PolStats(0, None, None, None, None)
    r, p = ratio[ok], phase[ok]
    return PolStats(int(ok.sum()), float(np.median(r)), float(np.sqrt(np.mean(r ** 2))),
                    float(np.median(p)), float(np.sqrt(np.mean(p ** 2))))


def compare(ja: np.ndarray, jb: np.ndarray, tile_names: Sequence[str]) -> list[dict]:
    """One dict per tile (``tile``, then per pol the PolStats fields) for Jones of shape (tiles, chans, 4)."""
    if ja.shape != jb.shape or ja.ndim != 3 or ja.shape[2] != 4 or ja.shape[0] != len(tile_names):
        raise ValueError(f"two (tiles, chans, 4) Jones of one shape are needed, got {ja.shape} and {jb.shape}")
    out = []
    for i, name in enumerate(tile_names):
        row: dict = {"tile": name}
        for pol, k in POLS.items():
            ratio, phase = ratio_and_phase(ja[i, :, k], jb[i, :, k])
            row[pol] = _stats(ratio, phase).__dict__
        out.append(row)
    return out
