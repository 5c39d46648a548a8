"""Choosing the calibrator and fit for a target observation: pure rules on plain records.

The database module fetches every calibrator observation near the target (with its fits); these
functions decide which are candidates, rank them, and explain why the nearest others were not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from chalicelib.gpstime import fitid_seconds


@dataclass(frozen=True)
class Target:
    """The observation a solution is wanted for."""

    obsid: int
    channels: tuple[int, ...]
    gain_control_value: float | None


@dataclass(frozen=True)
class FitInfo:
    """One fit of a calibrator: its id, when it ran, and whether any tile has a solution."""

    fitid: int
    fit_time: datetime | None
    creator: str | None
    any_good_tile: bool
    solution_key: str | None = None  # the fit's hyperdrive file in the calibration bucket

    @property
    def ran_at(self) -> float:
        """Unix seconds the fit ran: fit_time, else the fit id (seconds or microseconds)."""
        if self.fit_time is not None:
            return self.fit_time.timestamp()
        return fitid_seconds(self.fitid)


@dataclass(frozen=True)
class Calibrator:
    """A calibrator observation near the target, with all its fits."""

    obsid: int
    stoptime: int
    channels: tuple[int, ...]
    gain_control_value: float | None
    fits: tuple[FitInfo, ...] = ()


@dataclass(frozen=True)
class Criteria:
    """What the caller asked for."""

    max_time_separation: int = 86400
    allow_after: bool = True
    any_gain: bool = False
    prefer_fitid: int | None = None
    need_fit: bool = True  # add_cal_request wants a calibrator to fit, not a fit


@dataclass(frozen=True)
class Candidate:
    """A usable (calibrator, fit) pair; ``fit`` is None only when fits were not required."""

    calibrator: Calibrator
    fit: FitInfo | None
    offset: int


@dataclass(frozen=True)
class Rejection:
    """A calibrator that was not a candidate, and why."""

    obsid: int
    offset: int
    reason: str


@dataclass
class Selection:
    """Ranked candidates (best first) and the rejected calibrators (nearest first)."""

    candidates: list[Candidate] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)

    @property
    def best(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None


def window(target: Target, criteria: Criteria) -> tuple[int, int]:
    """The calibrator start times searched: [target - max, target + max] (or up to the target)."""
    low = target.obsid - criteria.max_time_separation
    high = target.obsid + (criteria.max_time_separation if criteria.allow_after else 0)
    return low, high


def _reason(target: Target, cal: Calibrator, criteria: Criteria) -> str | None:
    """Why this calibrator cannot serve the target, or None when it can."""
    offset = cal.obsid - target.obsid
    if abs(offset) > criteria.max_time_separation:
        return f"starts {abs(offset)} s from the target, beyond max_time_separation"
    if offset > 0 and not criteria.allow_after:
        return "starts after the target and allow_after=0"
    if not criteria.any_gain and cal.gain_control_value != target.gain_control_value:
        return (f"gain_control_value {cal.gain_control_value} differs from the target's "
                f"{target.gain_control_value}")
    missing = sorted(set(target.channels) - set(cal.channels))
    if missing:
        return f"does not cover the target's coarse channels {missing}"
    if criteria.need_fit:
        if not cal.fits:
            return "has no calibration fit"
        if not any(f.any_good_tile for f in cal.fits):
            return "every fit failed on every tile"
    return None


def _fit_order(fits: tuple[FitInfo, ...]) -> list[FitInfo]:
    """A calibrator's usable fits, most recent first (ties: the larger fit id)."""
    return sorted((f for f in fits if f.any_good_tile), key=lambda f: (-f.ran_at, -f.fitid))


def _cal_order(target: Target, cal: Calibrator) -> tuple[int, int]:
    """Closest in time first; at equal distance the calibrator before the target."""
    return abs(cal.obsid - target.obsid), cal.obsid


def select(target: Target, calibrators: list[Calibrator], criteria: Criteria) -> Selection:
    """Rank every usable (calibrator, fit) for the target, best first, as get_cal_fits lists them."""
    out = Selection()
    for cal in sorted(calibrators, key=lambda c: _cal_order(target, c)):
        offset = abs(cal.obsid - target.obsid)
        reason = _reason(target, cal, criteria)
        if reason:
            out.rejected.append(Rejection(cal.obsid, offset, reason))
            continue
        if not criteria.need_fit:
            out.candidates.append(Candidate(cal, None, offset))
            continue
        out.candidates.extend(Candidate(cal, fit, offset) for fit in _fit_order(cal.fits))
    if criteria.prefer_fitid is not None:
        preferred = [c for c in out.candidates if c.fit and c.fit.fitid == criteria.prefer_fitid]
        out.candidates = preferred + [c for c in out.candidates if c not in preferred]
    return out


def prefer_problem(target: Target, calibrators: list[Calibrator], criteria: Criteria,
                   selection: Selection) -> str | None:
    """Why ``prefer_fitid`` is not a candidate for this target, or None when it is (or not asked)."""
    fitid = criteria.prefer_fitid
    if fitid is None or (selection.best and selection.best.fit and selection.best.fit.fitid == fitid):
        return None
    for cal in calibrators:
        for fit in cal.fits:
            if fit.fitid == fitid:
                reason = _reason(target, cal, criteria)
                if reason:
                    return f"fit {fitid} is of calibrator {cal.obsid}, which {reason}"
                if not fit.any_good_tile:
                    return f"fit {fitid} failed on every tile"
    return f"fit {fitid} is not a fit of any calibrator within the search window"
