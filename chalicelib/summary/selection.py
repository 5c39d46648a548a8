"""The selection page's data: the explanation (``selection.explain``) shaped for the template, and its form.

``/calib/selection?obs_id=...`` takes every selection parameter of get_cal_solution; the form
sends them back (GET), so the page is the explanation under other parameters. Links are
relative, as on the summary page.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlencode

from chalicelib import gpstime, params
from chalicelib.api.cal_solution import selection_explanation
from chalicelib.selection.criteria import interpolate, solution_criteria

FORM_FIELDS = ("obs_id", "max_time_separation", "allow_after", "prefer_fitid", "min_tile_fraction",
               "min_phase_quality", "interpolate", "correct_attenuation")


def selection_url(obsid: int) -> str:
    """The selection page of an observation (default parameters)."""
    return "selection?" + urlencode({"obs_id": obsid})


def page_data(query: Mapping[str, str] | None) -> dict[str, Any]:
    """Everything the selection template shows; BadRequest (naming the parameter) on a bad value.

    The page's form sends every field, empty ones too: on this page an empty field means "not given"."""
    query = {k: v for k, v in (query or {}).items() if v != ""}
    obs = params.observation_id(query)
    wanted = solution_criteria(query)
    interp = interpolate(query)
    exp = selection_explanation(query)  # every get_cal_solution parameter read (and refused) as there
    asked = {k: (query or {}).get(k) for k in FORM_FIELDS if (query or {}).get(k) not in (None, "")}
    passthrough = {k: v for k, v in asked.items() if k != "obs_id"}
    tiles = exp["tiles"]
    return {
        "exp": exp,
        "obs_id": obs,
        "form": {"obs_id": obs, "max_time_separation": wanted.max_time_separation,
                 "allow_after": wanted.allow_after, "prefer_fitid": "" if wanted.prefer_fitid is None
                 else wanted.prefer_fitid, "min_tile_fraction": f"{wanted.min_tile_fraction:g}",
                 "min_phase_quality": f"{wanted.min_phase_quality:g}", "interpolate": interp,
                 "correct_attenuation": wanted.correct_attenuation},
        "json_url": "get_cal_selection?" + urlencode({"obs_id": obs, **passthrough}),
        "solution_url": "get_cal_solution?" + urlencode({"obs_id": obs, **passthrough}),
        "calibrators": [_calibrator(c) for c in exp["calibrators"]],
        "tiles_served": sum(t["served"] for t in tiles),
        "tiles_unserved": [t for t in tiles if not t["served"]],
        "obs_time_utc": gpstime.gps_to_datetime(obs).strftime("%Y-%m-%d %H:%M:%S UTC"),
    }


def _calibrator(c: dict) -> dict:
    out = dict(c)
    out["obs_time_utc"] = gpstime.gps_to_datetime(c["cal_id"]).strftime("%Y-%m-%d %H:%M:%S UTC")
    out["fits"] = [{**f, "ran_awst": gpstime.format_awst(datetime.fromtimestamp(f["ran_at"], tz=timezone.utc)),
                    "fit_url": "fit?" + urlencode({"fitid": f["fitid"]})} for f in c["fits"]]
    return out
