"""Choosing the calibrator and fit for a target observation: pure rules on plain records.

The database module fetches every calibrator observation near the target (with its fits); these
functions decide which are candidates, rank them, and explain why the nearest others were not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from chalicelib.gpstime import fitid_seconds
from chalicelib.selection.gates import GateFigures, GateInput, gate_problem
from chalicelib.selection.steering import Epoch, Masking, between, masking


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
    retired: str | None = None  # an operator retired it: the reason (never served, never a candidate)
    preferred: bool = False  # an operator preferred it on its calibrator (wins there)

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
    min_tile_fraction: float = 0.0  # quality gates (selection.gates); 0 = off
    min_phase_quality: float = 0.0
    correct_attenuation: bool = False  # any attenuation, the solution scaled to the target's (solutions.attenuation)

    @property
    def gated(self) -> bool:
        """Whether a quality gate is on."""
        return self.min_tile_fraction > 0 or self.min_phase_quality > 0


@dataclass(frozen=True)
class Candidate:
    """A usable (calibrator, fit) pair; ``fit`` is None only when fits were not required."""

    calibrator: Calibrator
    fit: FitInfo | None
    offset: int
    masking: Masking = Masking()  # receivers/tiles partial validity epochs NaN in what is served


@dataclass(frozen=True)
class Rejection:
    """A calibrator that was not a candidate, and why."""

    obsid: int
    offset: int
    reason: str
    code: str = ""  # beyond_window, after_target, attenuation, attenuation_unknown, channels, no_fit, all_fits_failed, gate, retired, epoch
    fitid: int | None = None  # set for a fit that failed a quality gate
    figures: GateFigures | None = None


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


def _check(target: Target, cal: Calibrator, criteria: Criteria,
           epochs: tuple[Epoch, ...] = ()) -> tuple[str, str] | None:
    """(code, reason) this calibrator cannot serve the target, or None when it can."""
    offset = cal.obsid - target.obsid
    if abs(offset) > criteria.max_time_separation:
        return "beyond_window", f"starts {abs(offset)} s from the target, beyond max_time_separation"
    if offset > 0 and not criteria.allow_after:
        return "after_target", "starts after the target and allow_after=0"
    same_gain = cal.gain_control_value == target.gain_control_value
    if criteria.correct_attenuation and not same_gain and None in (cal.gain_control_value,
                                                                   target.gain_control_value):
        return "attenuation_unknown", (f"gain_control_value {cal.gain_control_value} vs the target's "
                                       f"{target.gain_control_value}: unknown, so it cannot be corrected")
    if not (criteria.any_gain or criteria.correct_attenuation) and not same_gain:
        return "attenuation", (f"gain_control_value {cal.gain_control_value} differs from the target's "
                               f"{target.gain_control_value}")
    missing = sorted(set(target.channels) - set(cal.channels))
    if missing:
        return "channels", f"does not cover the target's coarse channels {missing}"
    if criteria.need_fit:
        if not cal.fits:
            return "no_fit", "has no calibration fit"
        if not any(f.any_good_tile for f in cal.fits):
            return "all_fits_failed", "every fit failed on every tile"
        if all(f.retired for f in cal.fits if f.any_good_tile):
            retired = "; ".join(f"fit {f.fitid}: {f.retired}" for f in cal.fits if f.retired)
            return "retired", f"every fit is retired ({retired})"
    refusing = [e for e in between(epochs, cal.obsid, target.obsid) if e.whole]
    if refusing:
        return "epoch", f"is on the other side of {refusing[0].describe()}"
    return None


def _reason(target: Target, cal: Calibrator, criteria: Criteria, epochs: tuple[Epoch, ...] = ()) -> str | None:
    """Why this calibrator cannot serve the target, or None when it can."""
    found = _check(target, cal, criteria, epochs)
    return found[1] if found else None


def _fit_order(fits: tuple[FitInfo, ...]) -> list[FitInfo]:
    """A calibrator's usable fits: the preferred one, then most recent first (ties: the larger fit id); never retired ones."""
    return sorted((f for f in fits if f.any_good_tile and not f.retired),
                  key=lambda f: (not f.preferred, -f.ran_at, -f.fitid))


def _cal_order(target: Target, cal: Calibrator, criteria: Criteria) -> tuple[int, bool, int]:
    """Closest in time first; at equal distance (when correcting) the target's own attenuation, then the earlier."""
    other_gain = criteria.correct_attenuation and cal.gain_control_value != target.gain_control_value
    return abs(cal.obsid - target.obsid), other_gain, cal.obsid


def select(target: Target, calibrators: list[Calibrator], criteria: Criteria,
           gates: GateInput | None = None, epochs: tuple[Epoch, ...] = ()) -> Selection:
    """Rank every usable (calibrator, fit) for the target, best first, as get_cal_fits lists them.

    With a quality gate on, ``gates`` holds the fits' facts; a fit failing a gate becomes a
    rejection (code ``gate``) naming the fit, the gate and its figures, in ranking order.
    ``epochs`` are the validity epochs in force (``steering``): a whole one refuses the calibrators
    across it (code ``epoch``), a partial one leaves them with a ``masking`` of tiles to NaN.
    """
    if criteria.gated and gates is None:
        raise ValueError("the quality gates need the fits' quality facts (GateInput)")
    out = Selection()
    for cal in sorted(calibrators, key=lambda c: _cal_order(target, c, criteria)):
        offset = abs(cal.obsid - target.obsid)
        found = _check(target, cal, criteria, epochs)
        if found:
            out.rejected.append(Rejection(cal.obsid, offset, found[1], code=found[0]))
            continue
        masked = masking(between(epochs, cal.obsid, target.obsid))
        if not criteria.need_fit:
            out.candidates.append(Candidate(cal, None, offset, masked))
            continue
        for fit in _fit_order(cal.fits):
            figures = gates.figures(fit.fitid, cal.obsid) if criteria.gated else None
            problem = gate_problem(figures, criteria.min_tile_fraction, criteria.min_phase_quality) if figures else None
            if problem:
                out.rejected.append(Rejection(cal.obsid, offset, f"fit {fit.fitid} {problem}", code="gate",
                                              fitid=fit.fitid, figures=figures))
            else:
                out.candidates.append(Candidate(cal, fit, offset, masked))
    if criteria.prefer_fitid is not None:
        preferred = [c for c in out.candidates if c.fit and c.fit.fitid == criteria.prefer_fitid]
        out.candidates = preferred + [c for c in out.candidates if c not in preferred]
    return out


def prefer_problem(target: Target, calibrators: list[Calibrator], criteria: Criteria,
                   selection: Selection, epochs: tuple[Epoch, ...] = ()) -> str | None:
    """Why ``prefer_fitid`` is not a candidate for this target, or None when it is (or not asked)."""
    fitid = criteria.prefer_fitid
    if fitid is None or (selection.best and selection.best.fit and selection.best.fit.fitid == fitid):
        return None
    for cal in calibrators:
        for fit in cal.fits:
            if fit.fitid == fitid:
                if fit.retired:
                    return f"fit {fitid} is retired: {fit.retired}"
                reason = _reason(target, cal, criteria, epochs)
                if reason:
                    return f"fit {fitid} is of calibrator {cal.obsid}, which {reason}"
                if not fit.any_good_tile:
                    return f"fit {fitid} failed on every tile"
                gated = [r for r in selection.rejected if r.fitid == fitid and r.obsid == cal.obsid]
                if gated:
                    return gated[0].reason
    return f"fit {fitid} is not a fit of any calibrator within the search window"


def nearest_rejected(selection: Selection) -> dict | None:
    """The 404's ``nearest_rejected``: the best-ranked fit a gate removed (with its figures), else the nearest rejection."""
    gated = [r for r in selection.rejected if r.code == "gate"]
    r = gated[0] if gated else (selection.rejected[0] if selection.rejected else None)
    if r is None:
        return None
    body = {"cal_id": r.obsid, "offset": r.offset, "reason": r.reason}
    if r.fitid is not None:
        body["fitid"] = r.fitid
    if r.figures is not None:
        body.update(r.figures.as_dict())
    return body
