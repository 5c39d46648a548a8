"""Operators' steering of the selection, as pure rules: retired and preferred fits, validity epochs.

The rows come from ``db.steering`` (one query for the window); ``rules.select`` applies them. A
validity epoch closes a time boundary: a calibrator on one side of ``boundary_gps`` never serves a
target on the other side (a receiver swap, a cable change). An epoch naming receivers or tiles
leaves the solution served but NaNs those tiles instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Epoch:
    """One validity epoch in force: its boundary (GPS seconds), what it covers and why."""

    epoch_id: int
    boundary_gps: int
    reason: str
    receivers: tuple[int, ...] = ()  # both empty: the whole solution
    tiles: tuple[int, ...] = ()

    @property
    def whole(self) -> bool:
        """Whether it refuses the whole solution (no receivers or tiles named)."""
        return not self.receivers and not self.tiles

    def describe(self) -> str:
        """The epoch as a 404 or a page names it."""
        scope = ""
        if self.receivers:
            scope += f" for receivers {list(self.receivers)}"
        if self.tiles:
            scope += f" for tiles {list(self.tiles)}"
        return f"validity epoch {self.epoch_id} at GPS {self.boundary_gps}{scope} ({self.reason})"


def crosses(epoch: Epoch, cal_obsid: int, target_obsid: int) -> bool:
    """Whether the epoch's boundary lies between the calibrator and the target (boundary = start of the new side)."""
    return min(cal_obsid, target_obsid) < epoch.boundary_gps <= max(cal_obsid, target_obsid)


def between(epochs: Iterable[Epoch], cal_obsid: int, target_obsid: int) -> list[Epoch]:
    """The epochs whose boundary separates this calibrator from the target, earliest boundary first."""
    return sorted((e for e in epochs if crosses(e, cal_obsid, target_obsid)), key=lambda e: (e.boundary_gps, e.epoch_id))


@dataclass(frozen=True)
class Masking:
    """What the partial epochs between a calibrator and a target NaN in the served solution."""

    receivers: frozenset[int] = frozenset()
    tiles: frozenset[int] = frozenset()
    epoch_ids: tuple[int, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.receivers or self.tiles)


def masking(epochs: Iterable[Epoch]) -> Masking:
    """The union of the receivers and tiles the given (partial) epochs name."""
    epochs = [e for e in epochs if not e.whole]
    return Masking(receivers=frozenset(r for e in epochs for r in e.receivers),
                   tiles=frozenset(t for e in epochs for t in e.tiles),
                   epoch_ids=tuple(e.epoch_id for e in epochs))
