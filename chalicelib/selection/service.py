"""Selection with the database: the target, the calibrators near it, the gates' facts, and the 404 that explains."""

from __future__ import annotations

from dataclasses import dataclass, field

from chalicelib import metadata
from chalicelib.db import selection as queries
from chalicelib.db import steering as steering_queries
from chalicelib.errors import BadRequest, NotFound
from chalicelib.selection.explain import explain
from chalicelib.selection.gates import GateInput, gate_problem
from chalicelib.selection.rules import (Calibrator, Criteria, Rejection, Selection, Target, nearest_rejected,
                                        prefer_problem, select, window)


STEERING_CODES = ("retired", "epoch")  # rejections an operator caused (README "Operating the selection")


@dataclass
class Outcome:
    """The target, the ranked selection for it, and the calibrators it was made from."""

    target: Target
    selection: Selection
    calibrators: list[Calibrator] = field(default_factory=list)


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


def _all_fits(calibrators: list[Calibrator]) -> list[tuple[int, int]]:
    return [(f.fitid, c.obsid) for c in calibrators for f in c.fits]


def _from_metafits(target: Target) -> Target:
    """The target with the channels and gain value the database lacks read from its metafits (as they are if none)."""
    obs = metadata.observation_meta(target.obsid)
    if obs is None:
        return target
    return Target(obsid=target.obsid, channels=target.channels or tuple(sorted(obs.channels)),
                  gain_control_value=target.gain_control_value if target.gain_control_value is not None
                  else obs.gain_control_value)


def choose(obs_id: int, criteria: Criteria) -> Outcome:
    """Rank the candidates for obs_id (through the gates when one is on); 404 with what was searched when none."""
    target = load_target(obs_id)
    low, high = window(target, criteria)
    calibrators = queries.calibrators_near(obs_id, low, high)
    epochs = steering_queries.epochs_between(low, high)
    gates = None
    if criteria.gated:
        gates = GateInput.for_target(queries.observation_tiles(obs_id), queries.fit_qualities(_all_fits(calibrators)))
    sel = select(target, calibrators, criteria, gates, epochs=epochs)
    problem = prefer_problem(target, calibrators, criteria, sel, epochs)
    if problem:
        raise NotFound(problem, parameter="prefer_fitid", searched=_searched(target, criteria, low, high))
    if not sel.candidates:
        what = "calibration fit" if criteria.need_fit else "calibrator observation"
        gated = [r for r in sel.rejected if r.code == "gate"]
        details = {"gate": _gate_name(gated[0], criteria)} if gated else {}
        passing = f" passing {details['gate']}" if gated else ""
        steered = [r for r in sel.rejected if r.code in STEERING_CODES]
        because = f"; operators' steering: calibrator {steered[0].obsid} {steered[0].reason}" if steered else ""
        raise NotFound(
            f"no valid {what}{passing} for observation {obs_id} within {criteria.max_time_separation} s{because}",
            steering=[{"cal_id": r.obsid, "code": r.code, "reason": r.reason} for r in steered],
            searched=_searched(target, criteria, low, high), nearest_rejected=nearest_rejected(sel), **details)
    return Outcome(target=target, selection=sel, calibrators=calibrators)


def explanation(obs_id: int, criteria: Criteria, *, interpolate: bool) -> dict:
    """The JSON explanation of the selection for obs_id (``selection.explain``), every fit's facts from the database."""
    target = load_target(obs_id)
    low, high = window(target, criteria)
    calibrators = queries.calibrators_near(obs_id, low, high)
    tiles = queries.observation_tiles(obs_id)
    out = explain(target, tiles, calibrators, criteria, queries.fit_qualities(_all_fits(calibrators)),
                  interpolate=interpolate and criteria.prefer_fitid is None,
                  epochs=steering_queries.epochs_between(low, high))
    out["searched"] = _searched(target, criteria, low, high)
    return out


def _gate_name(rejection: Rejection, criteria: Criteria) -> str:
    """Which gate removed this fit: min_tile_fraction is checked first (gates.gate_problem)."""
    if rejection.figures and gate_problem(rejection.figures, criteria.min_tile_fraction, 0.0):
        return "min_tile_fraction"
    return "min_phase_quality"


def _searched(target: Target, criteria: Criteria, low: int, high: int) -> dict:
    return {
        "obs_id": target.obsid,
        "calibrator_starts_from": low,
        "calibrator_starts_to": high,
        "max_time_separation": criteria.max_time_separation,
        "allow_after": criteria.allow_after,
        "gain_control_value": None if criteria.any_gain or criteria.correct_attenuation else target.gain_control_value,
        "channels": list(target.channels),
        "min_tile_fraction": criteria.min_tile_fraction,
        "min_phase_quality": criteria.min_phase_quality,
    }
