"""Quality gates on a candidate fit: how many of the target's tiles it solves, and how well it fitted them.

Two gates, both off at their default 0 (plain data in, plain data out):

``min_tile_fraction`` (0..1)
    The fit qualifies only when ``served / counted >= min_tile_fraction``. ``counted`` are the
    target's tiles that are not flagged in the target's metafits (a tile the observer flags
    anyway needs no solution; a target with no tile list counts the fit's own tiles, as the
    solution zip then serves the fit's tiles). ``served`` are those of them the fit has a
    usable solution for: a row exists and its X and Y delay and intercept are all non-NaN
    (any NaN among them makes the rebuilt Jones NaN in every channel).
``min_phase_quality`` (0..1)
    The fit qualifies only when the median ``phase_fit_quality`` of the served tiles, X and Y
    pooled (NaN/NULL figures left out), is at least ``min_phase_quality``. No figure at all is
    a failure when the gate is on.

The SQL layer fills one :class:`FitQuality` per fit (``chalicelib.db.selection.fit_qualities``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from chalicelib.solutions import TileInfo


@dataclass(frozen=True)
class FitQuality:
    """One fit's per-tile facts, tile ids ascending: solved or not, and the X/Y phase_fit_quality (NaN unknown)."""

    fitid: int
    obsid: int
    tiles: tuple[int, ...] = ()
    solved: tuple[bool, ...] = ()
    x_phase_quality: tuple[float, ...] = ()
    y_phase_quality: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        n = len(self.tiles)
        if not (len(self.solved) == len(self.x_phase_quality) == len(self.y_phase_quality) == n):
            raise ValueError("tiles, solved and the phase qualities must have one entry per tile")

    @property
    def solved_tiles(self) -> frozenset[int]:
        """Tile ids the fit has a usable solution for."""
        return frozenset(t for t, ok in zip(self.tiles, self.solved) if ok)


@dataclass(frozen=True)
class GateFigures:
    """What the gates measured on one fit for one target."""

    tiles_counted: int
    tiles_served: int
    tile_fraction: float | None  # None when no tile was counted
    median_phase_quality: float | None  # None when no served tile has a figure

    def as_dict(self) -> dict:
        """JSON-able figures (for the 404 body and the explanation)."""
        return {"tiles_counted": self.tiles_counted, "tiles_served": self.tiles_served,
                "tile_fraction": self.tile_fraction, "median_phase_quality": self.median_phase_quality}


@dataclass(frozen=True)
class GateInput:
    """The target's counted tile ids and the facts of every fit in the window, keyed by (fitid, cal obsid)."""

    tile_ids: tuple[int, ...]
    fits: Mapping[tuple[int, int], FitQuality] = field(default_factory=dict)

    @classmethod
    def for_target(cls, tiles: Sequence[TileInfo], fits: Mapping[tuple[int, int], FitQuality]) -> GateInput:
        """The gate input for a target: its tiles not flagged in its metafits are the ones counted."""
        return cls(tile_ids=tuple(t.tile_id for t in tiles if not t.flagged), fits=fits)

    def figures(self, fitid: int, obsid: int) -> GateFigures:
        """The figures of one fit (a fit without rows serves no tile)."""
        return measure(self.fits.get((fitid, obsid)) or FitQuality(fitid, obsid), self.tile_ids)


def measure(quality: FitQuality, tile_ids: Sequence[int]) -> GateFigures:
    """Served fraction of ``tile_ids`` (the fit's own tiles when empty) and the median X/Y phase quality of those served."""
    counted = sorted(set(tile_ids)) if tile_ids else list(quality.tiles)
    index = {t: i for i, t in enumerate(quality.tiles)}
    served = [index[t] for t in counted if t in index and quality.solved[index[t]]]
    pooled = np.array([quality.x_phase_quality[i] for i in served] + [quality.y_phase_quality[i] for i in served],
                      dtype=np.float64)
    pooled = pooled[np.isfinite(pooled)]
    return GateFigures(
        tiles_counted=len(counted), tiles_served=len(served),
        tile_fraction=len(served) / len(counted) if counted else None,
        median_phase_quality=float(np.median(pooled)) if pooled.size else None,
    )


def gate_problem(figures: GateFigures, min_tile_fraction: float, min_phase_quality: float) -> str | None:
    """Which gate the fit fails, with its figures, or None when it passes both."""
    if min_tile_fraction > 0 and (figures.tile_fraction is None or figures.tile_fraction < min_tile_fraction):
        if figures.tile_fraction is None:
            return "fails min_tile_fraction: no target tile to count"
        return (f"fails min_tile_fraction: {figures.tiles_served} of the target's {figures.tiles_counted} tiles "
                f"({figures.tile_fraction:.6g}) have a solution, below {min_tile_fraction:g}")
    if min_phase_quality > 0:
        median = figures.median_phase_quality
        if median is None:
            return "fails min_phase_quality: no phase_fit_quality recorded for the tiles it serves"
        if median < min_phase_quality:
            return (f"fails min_phase_quality: median phase_fit_quality {median:.6g} over its "
                    f"{figures.tiles_served} served tiles, below {min_phase_quality:g}")
    return None
