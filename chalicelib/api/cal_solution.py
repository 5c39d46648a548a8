"""get_cal_solution and get_cal_fits: parameters in, a redirect or JSON out.

The endpoint layer: it reads the query (``params``, ``selection.criteria``), chooses the fit
(``selection.service``) and hands the zip to ``solutions.bundle``; nothing below imports it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from chalice import Response

from chalicelib import params
from chalicelib.errors import BadRequest
from chalicelib.observability import metrics
from chalicelib.selection.criteria import criteria
from chalicelib.selection.rules import Candidate
from chalicelib.selection.service import choose
from chalicelib.solutions.bundle import FINE_CHAN_KHZ, FORMATS, ZipSpec, deliver, resolve_format
from chalicelib.web import json_response, redirect


def get_cal_solution(query: Mapping[str, str] | None) -> Response:
    """302 to a presigned zip of the best solution for obs_id."""
    obs = params.observation_id(query)
    output_format = params.choice(query, "output_format", FORMATS, default="aocal")
    fine_chan_khz = _fine_chan(query)
    nocache = params.flag(query, "nocache", default=False)
    outcome = choose(obs, criteria(query))
    spec = zip_spec(obs, outcome.selection.best, outcome.target.channels, output_format=output_format,
                    fine_chan_khz=fine_chan_khz, nocache=nocache)
    metrics.add_metric(name="SolutionsServed", unit="Count", value=1)
    return redirect(deliver(spec, download_name=f"{obs}_cal_solution.zip"))


def get_cal_fits(query: Mapping[str, str] | None) -> Response:
    """Every candidate fit as {fitid: [calid, offset, filename]}, best first."""
    obs = params.observation_id(query)
    outcome = choose(obs, criteria(query))
    body = {str(c.fit.fitid): [c.calibrator.obsid, c.offset, c.fit.solution_key]
            for c in outcome.selection.candidates}
    return json_response(body)


def zip_spec(obs_id: int, cand: Candidate, target_channels: Sequence[int], *, output_format: str,
             fine_chan_khz: int, nocache: bool, variant: tuple[str, ...] = ()) -> ZipSpec:
    """The zip of the chosen (calibrator, fit) for the target; ``auto`` is resolved here, once."""
    cal, fit = cand.calibrator, cand.fit
    if cand.masking:  # partial validity epochs: those tiles NaN, cached apart
        variant = variant + ("epoch" + "-".join(map(str, sorted(cand.masking.epoch_ids))),)
    return ZipSpec(obs_id=obs_id, target_channels=tuple(target_channels), cal_obsid=cal.obsid,
                   cal_stoptime=cal.stoptime, cal_channels=tuple(cal.channels), fitid=fit.fitid,
                   output_format=resolve_format(output_format, bool(fit.solution_key)),
                   fine_chan_khz=fine_chan_khz, nocache=nocache, variant=variant,
                   nan_tiles=cand.masking.tiles, nan_receivers=cand.masking.receivers)


def _fine_chan(query: Mapping[str, str] | None) -> int:
    value = params.integer(query, "fine_chan_khz", default=40)
    if value not in FINE_CHAN_KHZ:
        raise BadRequest(f"fine_chan_khz must be one of {', '.join(map(str, FINE_CHAN_KHZ))}, got {value}",
                         parameter="fine_chan_khz")
    return value
