"""Plain selection records for the rule tests: one target and calibrators at offsets from it."""

from __future__ import annotations

from datetime import datetime, timezone

from chalicelib.selection.rules import Calibrator, FitInfo, Target

CH = tuple(range(109, 133))
T = Target(obsid=1_400_000_000, channels=CH, gain_control_value=1.0)


def fit(fitid: int, good: bool = True, when: float | None = None) -> FitInfo:
    t = datetime.fromtimestamp(when, tz=timezone.utc) if when is not None else None
    return FitInfo(fitid=fitid, fit_time=t, creator="calvin", any_good_tile=good)


def cal(offset: int, *fits: FitInfo, gain: float = 1.0, channels=CH) -> Calibrator:
    return Calibrator(obsid=T.obsid + offset, stoptime=T.obsid + offset + 120, channels=tuple(channels),
                      gain_control_value=gain, fits=fits)
