"""The selection parameters of a query (max_time_separation, allow_after, prefer_fitid, the gates) as Criteria."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from chalicelib import params
from chalicelib.selection.rules import Criteria


def criteria(query: Mapping[str, str] | None, *, any_gain: bool = False) -> Criteria:
    """What get_cal_solution, get_cal_fits and get_calfile_for_obsid ask the selection for."""
    return Criteria(
        max_time_separation=params.max_time_separation(query),
        allow_after=params.flag(query, "allow_after", default=True),
        prefer_fitid=params.integer(query, "prefer_fitid", minimum=0),
        any_gain=any_gain,
    )


def solution_criteria(query: Mapping[str, str] | None) -> Criteria:
    """``criteria`` plus the gates and correct_attenuation, which get_cal_solution/get_cal_fits/get_cal_selection take."""
    return replace(
        criteria(query),
        min_tile_fraction=params.fraction(query, "min_tile_fraction"),
        min_phase_quality=params.fraction(query, "min_phase_quality"),
        correct_attenuation=params.flag(query, "correct_attenuation", default=False),
    )


def interpolate(query: Mapping[str, str] | None) -> bool:
    """``interpolate=1``: combine the nearest calibrators before and after the target (get_cal_solution)."""
    return params.flag(query, "interpolate", default=False)
