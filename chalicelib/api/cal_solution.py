"""get_cal_solution, get_cal_fits and get_cal_selection: parameters in, a redirect or JSON out.

The endpoint layer: it reads the query (``params``, ``selection.criteria``), chooses the fit
(``selection.service``; ``selection.sides`` for interpolate=1) and hands the zip to
``solutions.bundle``; nothing below imports it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from chalice import Response

from chalicelib import params
from chalicelib.db import solution_files
from chalicelib.errors import BadRequest
from chalicelib.observability import metrics
from chalicelib.selection.criteria import interpolate, solution_criteria
from chalicelib.selection.rules import Candidate, Criteria, Target
from chalicelib.selection.service import Outcome, choose, explanation
from chalicelib.selection.sides import choose_sides
from chalicelib.solutions.bundle import FINE_CHAN_KHZ, FORMATS, Side, ZipSpec, deliver, resolve_format
from chalicelib.solutions.files import SolutionFile
from chalicelib.solutions.sources import (FILE, SOURCES, TABLE, TABLE_FINE_CHAN_KHZ, default_source,
                                          interpolated_width_khz, native_width_khz, resolve_source, served_width_khz)
from chalicelib.web import json_response, redirect


def get_cal_solution(query: Mapping[str, str] | None) -> Response:
    """302 to a presigned zip of the best solution for obs_id (interpolated between two calibrators if asked)."""
    obs = params.observation_id(query)
    output_format = params.choice(query, "output_format", FORMATS, default="aocal")
    source = params.choice(query, "source", SOURCES, default=default_source(output_format))
    fine_chan_khz = _fine_chan(query)
    nocache = params.flag(query, "nocache", default=False)
    wanted = solution_criteria(query)
    interp = interpolate(query)
    outcome = choose(obs, wanted)
    spec = solution_spec(outcome, wanted, interp, output_format=output_format, fine_chan_khz=fine_chan_khz,
                         nocache=nocache, source=source)
    metrics.add_metric(name="SolutionsServed", unit="Count", value=1)
    return redirect(deliver(spec, download_name=f"{obs}_cal_solution.zip"))


def get_cal_fits(query: Mapping[str, str] | None) -> Response:
    """Every candidate fit as {fitid: [calid, offset, filename]}, best first (through the same gates)."""
    obs = params.observation_id(query)
    wanted = solution_criteria(query)
    interpolate(query)  # validated as on get_cal_solution; the list is the same either way
    outcome = choose(obs, wanted)
    body = {str(c.fit.fitid): [c.calibrator.obsid, c.offset, c.fit.solution_key]
            for c in outcome.selection.candidates}
    return json_response(body)


def get_cal_selection(query: Mapping[str, str] | None) -> Response:
    """Why get_cal_solution serves what it serves for obs_id: the explanation (``selection.explain``) as JSON."""
    return json_response(selection_explanation(query))


def selection_explanation(query: Mapping[str, str] | None) -> dict:
    """The explanation for the query's obs_id and selection parameters (the page renders the same dict)."""
    obs = params.observation_id(query)
    output_format = params.choice(query, "output_format", FORMATS, default="aocal")  # accepted as on get_cal_solution
    params.choice(query, "source", SOURCES, default=default_source(output_format))
    _fine_chan(query)
    params.flag(query, "nocache", default=False)
    wanted = solution_criteria(query)
    return explanation(obs, wanted, interpolate=interpolate(query))


def solution_spec(outcome: Outcome, wanted: Criteria, interp: bool, *, output_format: str, fine_chan_khz: int | None,
                  nocache: bool, source: str = TABLE) -> ZipSpec:
    """The zip for the outcome: the nearest fit, or both sides' when interpolating (never with prefer_fitid).

    Interpolating, the source is resolved for both fits (``sources``: ``file`` needs both fits' files,
    ``best`` is ``file`` only when both have them) and both are served on one grid."""
    target = outcome.target
    sides = None
    if interp and wanted.prefer_fitid is None:
        sides = choose_sides(target, outcome.selection.candidates)
    correct_to = target if wanted.correct_attenuation else None
    if sides is None:
        return zip_spec(target.obsid, outcome.selection.best, target.channels, output_format=output_format,
                        fine_chan_khz=fine_chan_khz, nocache=nocache, source=source, correct_to=correct_to)
    served_b, files_b = _source(sides.before, target.channels, source)
    served_a, files_a = _source(sides.after, target.channels, source)
    if served_b == FILE and served_a == FILE:
        served = FILE
        width = interpolated_width_khz(fine_chan_khz, native_width_khz(files_b, target.channels),
                                       native_width_khz(files_a, target.channels))
    else:
        served, width = TABLE, TABLE_FINE_CHAN_KHZ if fine_chan_khz is None else fine_chan_khz
    spec = _spec(target.obsid, sides.before, target.channels, served, files_b, width, output_format=output_format,
                 nocache=nocache, variant=(), correct_to=correct_to)
    after = sides.after.calibrator
    return replace(spec, weight=sides.weight,
                   after=Side(cal_obsid=after.obsid, cal_stoptime=after.stoptime, cal_channels=tuple(after.channels),
                              fitid=sides.after.fit.fitid,
                              cal_db=after.gain_control_value if wanted.correct_attenuation else None))


def zip_spec(obs_id: int, cand: Candidate, target_channels: Sequence[int], *, output_format: str,
             fine_chan_khz: int | None, nocache: bool, variant: tuple[str, ...] = (), source: str = TABLE,
             correct_to: Target | None = None) -> ZipSpec:
    """The zip of the chosen (calibrator, fit) for the target; ``auto``, the source and the width are resolved here, once.

    ``fine_chan_khz`` None: 40 kHz from the table, the native chanblock width from the files.
    ``correct_to``: the target whose attenuation the Jones are scaled to (correct_attenuation=1).
    """
    served, files = _source(cand, target_channels, source)
    if served == FILE:
        width = served_width_khz(fine_chan_khz, native_width_khz(files, target_channels))
    else:
        width = TABLE_FINE_CHAN_KHZ if fine_chan_khz is None else fine_chan_khz
    return _spec(obs_id, cand, target_channels, served, files, width, output_format=output_format, nocache=nocache,
                 variant=variant, correct_to=correct_to)


def _source(cand: Candidate, target_channels: Sequence[int], source: str) -> tuple[str, list[SolutionFile]]:
    """One (calibrator, fit)'s source, ``table`` or ``file`` (404: ``file`` without files), and its files."""
    cal, fit = cand.calibrator, cand.fit
    files = solution_files.of_fit(fit.fitid, cal.obsid) if source != TABLE else []
    return resolve_source(source, files, target_channels, fit.fitid, cal.obsid), files


def _spec(obs_id: int, cand: Candidate, target_channels: Sequence[int], served: str, files: Sequence[SolutionFile],
          width: float, *, output_format: str, nocache: bool, variant: tuple[str, ...],
          correct_to: Target | None) -> ZipSpec:
    """The ZipSpec of a (calibrator, fit) whose source and width are resolved."""
    cal, fit = cand.calibrator, cand.fit
    if cand.masking:  # partial validity epochs: those tiles NaN, cached apart
        variant = variant + ("epoch" + "-".join(map(str, sorted(cand.masking.epoch_ids))),)
    return ZipSpec(obs_id=obs_id, target_channels=tuple(target_channels), cal_obsid=cal.obsid,
                   cal_stoptime=cal.stoptime, cal_channels=tuple(cal.channels), fitid=fit.fitid,
                   output_format=resolve_format(output_format, bool(fit.solution_key) or bool(files)),
                   fine_chan_khz=width, nocache=nocache, variant=variant, source=served,
                   target_db=correct_to.gain_control_value if correct_to else None,
                   cal_db=cal.gain_control_value if correct_to else None,
                   nan_tiles=cand.masking.tiles, nan_receivers=cand.masking.receivers)


def _fine_chan(query: Mapping[str, str] | None) -> int | None:
    """The fine_chan_khz asked for (one of FINE_CHAN_KHZ), or None when the query does not say."""
    value = params.integer(query, "fine_chan_khz")
    if value is not None and value not in FINE_CHAN_KHZ:
        raise BadRequest(f"fine_chan_khz must be one of {', '.join(map(str, FINE_CHAN_KHZ))}, got {value}",
                         parameter="fine_chan_khz")
    return value
