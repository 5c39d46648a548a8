"""The fit page's data: the fit, its observations (with plots) and its median-delay tables.

Parameters: ``fitid`` (required); ``rx_sort`` and ``tile_sort`` ('column' ascending, '-column'
descending; see ``fitstats``); ``format`` html (default), csv or json; ``table`` receivers or
tiles (which table a CSV holds; JSON gives both unless one is named).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from chalicelib import gpstime, metadata, params
from chalicelib.config import settings
from chalicelib.db import summary as sql
from chalicelib.errors import NotFound
from chalicelib.plots import figure, layout
from chalicelib.summary import fitstats, page

FORMATS = ("html", "csv", "json")
TABLES = ("receivers", "tiles")
EAGER_PLOTS = 2  # the first plots load at once (the first one first); the rest when scrolled near


def compare_links(fitid: int, obsid: int) -> list[dict[str, str]]:
    """Links to /calib/compare: with the previous fit of this calibrator, and with the newest fit of its source."""
    partners = sql.comparison_partners(fitid, obsid)
    out = []
    for key, label in (("previous", "previous fit of this calibrator"), ("newest_of_source", "newest fit of this source")):
        other = partners[key]
        if other:
            out.append({"label": f"compare with the {label} ({other['fitid']})",
                        "url": "compare?" + urlencode({"fitid_a": fitid, "obsid_a": obsid, "fitid_b": other["fitid"],
                                                       "obsid_b": other["obsid"]})})
    return out


def load(fitid: int) -> dict[str, Any]:
    """The fit's header, observations and tables (unsorted); NotFound when there is no such fit."""
    obs_rows = sql.fit_observations(fitid)
    if not obs_rows:
        raise NotFound(f"there is no calibration fit {fitid}", parameter="fitid")
    first = obs_rows[0]
    ran = gpstime.fit_ran_at(first.get("fit_time"), fitid)
    delays = with_tiles(sql.fit_delays(fitid))
    solution_tiles: dict[int, set[int]] = {}
    for r in delays:
        solution_tiles.setdefault(int(r["obsid"]), set()).add(int(r["tileid"]))
    return {
        "fitid": fitid,
        "creator": first.get("creator") or "",
        "code_version": first.get("code_version") or "",
        "ran": ran,
        "ran_awst": gpstime.format_awst(ran),
        "ran_utc": gpstime.format_utc(ran),
        "niter_limit": page.niter_limit(first.get("fit_niter"), first.get("fit_limit")),
        "source_list": first.get("source_list") or "",
        "retired": first.get("retired"),  # an operator retired it: the reason
        "observations": [{**page.observation_entry(fitid, int(r["obsid"]), r.get("obsname")),
                          "compare": compare_links(fitid, int(r["obsid"]))} for r in obs_rows],
        "receivers": fitstats.receiver_medians(delays),
        "solution_tiles": solution_tiles,
        "tiles": fitstats.tile_medians(delays, settings().model_error_threshold_rad),
        "model_error_threshold_rad": settings().model_error_threshold_rad,
    }


def plot_figures(fit: dict[str, Any]) -> list[dict[str, Any]]:
    """The fit's observations, each plot with its <img> attributes (``page.plot_image``) and how it
    loads: the first ``EAGER_PLOTS`` at once (the first with high priority), the others lazily.

    A plot's pixel size comes from the observation's tiles (its rows of receivers), the same way
    the plot lays them out, so it is known without drawing anything."""
    out = []
    index = 0
    for obs in fit["observations"]:
        obsid = obs["obsid"]
        refs = layout.tile_refs(sql.observation_tiles(obsid), sorted(fit["solution_tiles"].get(obsid, ())))
        size = figure.pixel_size(refs)
        plots = []
        for p in obs["plots"]:
            img = page.plot_image(p["kind"], fit["fitid"], obsid, size)
            img["loading"] = "eager" if index < EAGER_PLOTS else "lazy"
            img["priority"] = index == 0
            plots.append(img)
            index += 1
        out.append({**obs, "plots": plots})
    return out


def with_tiles(delays: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The delay rows with receiver, slot, name and flag from the metafits where observation_tile has none.

    A site-pipeline fit's observation has no observation_tile rows: its metafits says which receiver each
    tile is on (metadata.tile_rows), so the receiver table and the tile names are filled in.
    """
    for obsid in sorted({int(r["obsid"]) for r in delays if r.get("rx") is None}):
        by_tile = {int(t["tileid"]): t for t in metadata.tile_rows(obsid)}
        for r in delays:
            t = by_tile.get(int(r["tileid"])) if int(r["obsid"]) == obsid and r.get("rx") is None else None
            if t is not None:
                r.update(tile_name=t["tile_name"], rx=t["rx"], slot=t["slot"], flagged=t["flagged"])
    return delays


def sort_links(fitid: int, which: str, current: str | None, other: dict[str, str | None],
               columns: tuple[str, ...], default: str) -> list[dict[str, Any]]:
    """Header cells of a sortable table: each links to ``?sort`` on its column (toggling)."""
    col, desc = fitstats.parse_sort(current, columns, default)
    out = []
    for c in columns:
        active = c == col
        target = f"-{c}" if active and not desc else c
        query = {"fitid": fitid, **{k: v for k, v in other.items() if v}, which: target}
        out.append({
            "column": c,
            "title": fitstats.COLUMN_TITLES.get(c, c),
            "url": "fit?" + urlencode(query),
            "aria": ("descending" if desc else "ascending") if active else "none",
            "arrow": ("▼" if desc else "▲") if active else "",
        })
    return out


def html_data(query: Mapping[str, str] | None, fit: dict[str, Any]) -> dict[str, Any]:
    """The template's view of a loaded fit, tables sorted as asked."""
    fitid = fit["fitid"]
    rx_sort = params.text(query, "rx_sort", max_length=40)
    tile_sort = params.text(query, "tile_sort", max_length=40)
    return {
        **fit,
        "observations": plot_figures(fit),
        "receivers": fitstats.sort_rows(fit["receivers"], rx_sort, fitstats.RECEIVER_COLUMNS,
                                        fitstats.DEFAULT_RECEIVER_SORT),
        "tiles": fitstats.sort_rows(fit["tiles"], tile_sort, fitstats.TILE_COLUMNS, fitstats.DEFAULT_TILE_SORT),
        "receiver_columns": sort_links(fitid, "rx_sort", rx_sort, {"tile_sort": tile_sort},
                                       fitstats.RECEIVER_COLUMNS, fitstats.DEFAULT_RECEIVER_SORT),
        "tile_columns": sort_links(fitid, "tile_sort", tile_sort, {"rx_sort": rx_sort},
                                   fitstats.TILE_COLUMNS, fitstats.DEFAULT_TILE_SORT),
        "links": {
            "receivers_csv": page.fit_url(fitid, format="csv", table="receivers"),
            "tiles_csv": page.fit_url(fitid, format="csv", table="tiles"),
            "receivers_json": page.fit_url(fitid, format="json", table="receivers"),
            "tiles_json": page.fit_url(fitid, format="json", table="tiles"),
            "json": page.fit_url(fitid, format="json"),
        },
    }


def json_body(fit: dict[str, Any], table: str | None) -> dict[str, Any]:
    """The JSON answer: the fit's header and its tables (or the one named)."""
    body: dict[str, Any] = {
        "fitid": fit["fitid"],
        "creator": fit["creator"],
        "code_version": fit["code_version"],
        "fit_time": gpstime.as_utc(fit["ran"]).isoformat(),
        "fit_time_awst": gpstime.to_awst(fit["ran"]).isoformat(),
        "observations": [{"obsid": o["obsid"], "obsname": o["obsname"]} for o in fit["observations"]],
        "units": "m",
        "model_error_units": "rad",
        "model_error_threshold_rad": fit["model_error_threshold_rad"],
    }
    for t in TABLES:
        if table in (None, t):
            body[t] = fit[t]
    return body
