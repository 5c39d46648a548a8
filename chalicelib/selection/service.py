"""Selection with the database: the target, the calibrators near it, and the 404 that explains."""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.db import selection as queries
from chalicelib.db import steering as steering_queries
from chalicelib.errors import BadRequest, NotFound
from chalicelib.selection.rules import Criteria, Selection, Target, prefer_problem, select, window


STEERING_CODES = ("retired", "epoch")  # rejections an operator caused (README "Operating the selection")


@dataclass
class Outcome:
    """The target and the ranked selection for it."""

    target: Target
    selection: Selection


def load_target(obs_id: int) -> Target:
    """The target observation; 400 when it is not in the schedule."""
    target = queries.target(obs_id)
    if target is None:
        raise BadRequest(f"observation {obs_id} does not exist in the schedule database", parameter="obs_id")
    if not target.channels:
        raise BadRequest(f"observation {obs_id} has no receiver channels recorded", parameter="obs_id")
    return target


def choose(obs_id: int, criteria: Criteria) -> Outcome:
    """Rank the candidates for obs_id; 404 with what was searched when there is none."""
    target = load_target(obs_id)
    low, high = window(target, criteria)
    calibrators = queries.calibrators_near(obs_id, low, high)
    epochs = steering_queries.epochs_between(low, high)
    sel = select(target, calibrators, criteria, epochs=epochs)
    problem = prefer_problem(target, calibrators, criteria, sel, epochs)
    if problem:
        raise NotFound(problem, parameter="prefer_fitid", searched=_searched(target, criteria, low, high))
    if not sel.candidates:
        what = "calibration fit" if criteria.need_fit else "calibrator observation"
        nearest = sel.rejected[0] if sel.rejected else None
        steered = [r for r in sel.rejected if r.code in STEERING_CODES]
        because = f"; operators' steering: calibrator {steered[0].obsid} {steered[0].reason}" if steered else ""
        raise NotFound(
            f"no valid {what} for observation {obs_id} within {criteria.max_time_separation} s{because}",
            steering=[{"cal_id": r.obsid, "code": r.code, "reason": r.reason} for r in steered],
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
