"""get_cal_solution and get_cal_fits: parameters in, a redirect or JSON out."""

from __future__ import annotations

from collections.abc import Mapping

from chalice import Response

from chalicelib import params
from chalicelib.errors import BadRequest
from chalicelib.observability import metrics
from chalicelib.selection.rules import Criteria
from chalicelib.selection.service import choose
from chalicelib.solution_zip import FINE_CHAN_KHZ, FORMATS, Request, deliver
from chalicelib.web import json_response, redirect

def criteria(query: Mapping[str, str] | None, *, any_gain: bool = False, need_fit: bool = True) -> Criteria:
    """The selection parameters shared by the endpoints."""
    return Criteria(
        max_time_separation=params.max_time_separation(query),
        allow_after=params.flag(query, "allow_after", default=True),
        prefer_fitid=params.integer(query, "prefer_fitid", minimum=0),
        any_gain=any_gain,
        need_fit=need_fit,
    )


def obs_id(query: Mapping[str, str] | None, name: str = "obs_id") -> int:
    """The required observation id (GPS seconds)."""
    return params.observation_id(query, name)


def get_cal_solution(query: Mapping[str, str] | None) -> Response:
    """302 to a presigned zip of the best solution for obs_id."""
    obs = obs_id(query)
    req = Request(
        obs_id=obs,
        output_format=params.choice(query, "output_format", FORMATS, default="aocal"),
        fine_chan_khz=_fine_chan(query),
        nocache=params.flag(query, "nocache", default=False),
    )
    outcome = choose(obs, criteria(query))
    best = outcome.selection.best
    metrics.add_metric(name="SolutionsServed", unit="Count", value=1)
    url = deliver(req, best, outcome.target.channels, download_name=f"{obs}_cal_solution.zip")
    return redirect(url)


def get_cal_fits(query: Mapping[str, str] | None) -> Response:
    """Every candidate fit as {fitid: [calid, offset, filename]}, best first."""
    obs = obs_id(query)
    outcome = choose(obs, criteria(query))
    body = {str(c.fit.fitid): [c.calibrator.obsid, c.offset, c.fit.solution_key]
            for c in outcome.selection.candidates}
    return json_response(body)


def _fine_chan(query: Mapping[str, str] | None) -> int:
    value = params.integer(query, "fine_chan_khz", default=40)
    if value not in FINE_CHAN_KHZ:
        raise BadRequest(f"fine_chan_khz must be one of {', '.join(map(str, FINE_CHAN_KHZ))}, got {value}",
                         parameter="fine_chan_khz")
    return value
