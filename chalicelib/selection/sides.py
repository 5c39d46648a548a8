"""Which two calibrators a target's solution is interpolated between (pure: ranked candidates in, sides out)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from chalicelib.selection.rules import Candidate, Target
from chalicelib.solutions.interpolate import weight


@dataclass(frozen=True)
class Sides:
    """The two (calibrator, fit) a target's solution is interpolated from, and the weight on the one before."""

    before: Candidate
    after: Candidate
    weight: float  # w on ``before``; 1 - w on ``after``


def choose_sides(target: Target, candidates: Sequence[Candidate]) -> Sides | None:
    """The nearest candidate calibrator strictly before and strictly after the target, each with its best fit.

    ``candidates`` are ranked (``rules.select``: every rule and gate passed, best first); a
    calibrator's fit is its first in that order. None -- serve the normal (nearest) answer --
    when one side has no candidate, or a calibrator starts at the target's own start.
    """
    fitted = [c for c in candidates if c.fit is not None]
    if any(c.calibrator.obsid == target.obsid for c in fitted):
        return None
    before = [c for c in fitted if c.calibrator.obsid < target.obsid]
    after = [c for c in fitted if c.calibrator.obsid > target.obsid]
    if not before or not after:
        return None
    t_b = max(c.calibrator.obsid for c in before)
    t_a = min(c.calibrator.obsid for c in after)
    b = next(c for c in before if c.calibrator.obsid == t_b)
    a = next(c for c in after if c.calibrator.obsid == t_a)
    return Sides(before=b, after=a, weight=weight(target.obsid, t_b, t_a))
