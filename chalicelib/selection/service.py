"""Selection with the database: the target, the calibrators near it, and the 404 that explains."""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib import metadata
from chalicelib.db import selection as queries
from chalicelib.errors import BadRequest, NotFound
from chalicelib.selection.rules import Criteria, Selection, Target, prefer_problem, select, window


@dataclass
class Outcome:
    """The target and the ranked selection for it."""

    target: Target
    selection: Selection


def load_target(obs_id: int) -> Target:
    """The target observation (channels and gain value from its metafits if not in rf_stream); 400 when unknown."""
    target = queries.target(obs_id)
    if target is None:
        raise BadRequest(f"observation {obs_id} does not exist in the schedule database", parameter="obs_id")
    if not target.channels:  # not in rf_stream: its channels and gain value from its metafits
        target = _from_metafits(target)
    if not target.channels:
        raise BadRequest(f"observation {obs_id} has no receiver channels recorded", parameter="obs_id")
    return target


def _from_metafits(target: Target) -> Target:
    """The target with the channels and gain value the database lacks read from its metafits (as they are if none)."""
    obs = metadata.observation_meta(target.obsid)
    if obs is None:
        return target
    return Target(obsid=target.obsid, channels=target.channels or tuple(sorted(obs.channels)),
                  gain_control_value=target.gain_control_value if target.gain_control_value is not None
                  else obs.gain_control_value)


def choose(obs_id: int, criteria: Criteria) -> Outcome:
    """Rank the candidates for obs_id; 404 with what was searched when there is none."""
    target = load_target(obs_id)
    low, high = window(target, criteria)
    calibrators = queries.calibrators_near(obs_id, low, high)
    sel = select(target, calibrators, criteria)
    problem = prefer_problem(target, calibrators, criteria, sel)
    if problem:
        raise NotFound(problem, parameter="prefer_fitid", searched=_searched(target, criteria, low, high))
    if not sel.candidates:
        what = "calibration fit" if criteria.need_fit else "calibrator observation"
        nearest = sel.rejected[0] if sel.rejected else None
        raise NotFound(
            f"no valid {what} for observation {obs_id} within {criteria.max_time_separation} s",
            searched=_searched(target, criteria, low, high),
            nearest_rejected=(
                {"cal_id": nearest.obsid, "offset": nearest.offset, "reason": nearest.reason} if nearest else None),
        )
    return Outcome(target=target, selection=sel)


def _searched(target: Target, criteria: Criteria, low: int, high: int) -> dict:
    return {
        "obs_id": target.obsid,
        "calibrator_starts_from": low,
        "calibrator_starts_to": high,
        "max_time_separation": criteria.max_time_separation,
        "allow_after": criteria.allow_after,
        "gain_control_value": None if criteria.any_gain else target.gain_control_value,
        "channels": list(target.channels),
    }
