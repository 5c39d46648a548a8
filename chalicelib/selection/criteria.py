"""The selection parameters of a query (max_time_separation, allow_after, prefer_fitid) as Criteria."""

from __future__ import annotations

from collections.abc import Mapping

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
