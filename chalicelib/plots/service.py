"""Serving the diagnostic plots: render once, keep in the products bucket, redirect to it.

``GET /calib/plot/<kind>?fitid=<fitid>&obsid=<obsid>[&width=480|960|1440]`` answers 302 to a
presigned URL of the PNG at that width (default 1440, the full drawing; ``pngs``), and
``&format=json`` gives the data behind the plot instead. ``obsid`` may be left out when the fit
has one observation. A plot is drawn once, at 1440 px, and stored at every width at once (the
smaller ones downscaled from it), so a page's ``srcset`` never renders a plot twice.

Cache keys (products bucket) hold everything a plot depends on, so a stored plot never goes stale
and nothing has to be invalidated by hand:

- tilediff, gains, phasefit (this fit only; phasefit also reads the fit's solution files in the
  calibration bucket, which never change): ``plots/v2/<kind>/<obsid>/<fitid>/<width>px.png``
- timediff, gaintimes (7 days), xydiff (30 days):
  ``plots/v2/<kind>/<obsid>/<fitid>/w<n>-<digest>/<width>px.png``
  where n is the number of (fitid, obsid) rows of calibration_fits with an observation in
  [obsid - window, obsid] and digest the first 16 hex digits of the md5 of that sorted set. A new
  fit of an observation in the window (or one deleted) changes the key of exactly the plots whose
  window holds it; every other stored plot stays valid. Fits are immutable once written (ingest
  never rewrites a (fitid, obsid)); observation_tile rows of an observation do not change.
  When validity epochs in force have a boundary in (obsid - window, obsid] (these plots draw
  them, ``plots.epochs``), ``-e<m>-<digest>`` follows: their count and the first 12 hex digits of
  the md5 of their rows (id, boundary, receivers, tiles, reason). Adding an epoch, or ending one,
  in the window gives the plot a new key; with none the key is as it was before epochs were drawn.
- ``v2`` is the drawing version: bump ``CACHE_VERSION`` when a plot's look changes (v1 was the
  one-width RGBA PNG).

An observation's own rows (observation_tile: tile names, receivers, flags; rf_stream channels) are
taken as fixed once written. If an observation is re-ingested with different tiles or flags,
``forget_observation(obsid)`` drops its stored plots (the other observations' plots use only tile
ids and values from it, so they stay valid).

``stored_png_redirect`` stores and serves any other drawing the same way (once, at every width, then
a 302), under a key its caller makes: the comparison plot's (``compare.plot.cache_key``).

Browsers keep them: each object is stored with ``Cache-Control: public, max-age=31536000,
immutable`` (S3 answers every GET with it), and the 302 to it is signed as of the hour (or half the
expiry, when shorter: :func:`url_window`), so every view within it gets the same URL, and carries
``Cache-Control: public, max-age=<until that URL expires, less a margin>``: a second view asks
nothing. A fit's plots are drawn when it lands (:mod:`chalicelib.plots.prerender`).

Superseded objects are never read again; a lifecycle rule on the ``plots/`` prefix (e.g. expire
after 90 days) bounds the bucket, and an expired plot is simply rendered again.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from chalice import Response

from chalicelib import gpstime, metadata, params, storage
from chalicelib.config import settings
from chalicelib.db import summary as sql
from chalicelib.errors import BadRequest, NotFound
from chalicelib.plain import plain
from chalicelib.plots import KINDS, pngs
from chalicelib.presigned import rounded_down
from chalicelib.web import json_response, redirect

CACHE_VERSION = "v2"
FORMATS = ("png", "json")
# Stored plots never change under their key: a browser may keep one for a year without asking again.
IMMUTABLE = "public, max-age=31536000, immutable"
URL_STEP_S = 3600  # plot URLs are signed as of the hour (at most), so a page view within it reuses them
URL_MARGIN_S = 120  # a cached redirect ends this long before its URL does: time for the download it starts


def plot_module(kind: str):
    if kind not in KINDS:
        raise NotFound(f"no plot {kind[:40]!r}; plots are {', '.join(KINDS)}", parameter="kind")
    return importlib.import_module(f"chalicelib.plots.{kind}")


def window_of(kind: str) -> int:
    return int(plot_module(kind).DEPENDS_ON_WINDOW_S)


def cache_key(kind: str, ctx: Mapping[str, Any], width: int = pngs.FULL_WIDTH) -> str:
    """The products-bucket key of a plot at one width (see the module doc)."""
    base = f"plots/{CACHE_VERSION}/{kind}/{int(ctx['obsid'])}/{int(ctx['fitid'])}"
    if window_of(kind) != 0:
        base += f"/w{int(ctx['window_fits'])}-{str(ctx['window_digest'])[:16]}"
        if int(ctx.get("window_epochs") or 0):
            base += f"-e{int(ctx['window_epochs'])}-{str(ctx['window_epochs_digest'])[:12]}"
    return f"{base}/{int(width)}px.png"


def width_of(query: Mapping[str, str] | None) -> int:
    """The ``width`` asked for (pixels; default the full drawing); 400 unless it is one served."""
    width = params.integer(query, "width", default=pngs.FULL_WIDTH)
    if width not in pngs.WIDTHS:
        raise BadRequest(f"width must be one of {', '.join(map(str, pngs.WIDTHS))} (pixels), got {width}",
                         parameter="width")
    return int(width)


def context(kind: str, fitid: int, obsid: int | None) -> dict[str, Any]:
    """The fit of the observation with its window fingerprint (fits and validity epochs, ``epochs``
    the latter's rows); NotFound / BadRequest as due."""
    if obsid is None:
        obs = sql.fit_observations(fitid)
        if not obs:
            raise NotFound(f"there is no calibration fit {fitid}", parameter="fitid")
        if len(obs) > 1:
            raise BadRequest(f"fit {fitid} has {len(obs)} observations: give obsid", parameter="obsid")
        obsid = int(obs[0]["obsid"])
    ctx = sql.plot_context(fitid, obsid, window_of(kind))
    if ctx is None:
        raise NotFound(f"there is no calibration fit {fitid} of observation {obsid}", parameter="obsid")
    epochs = ctx.get("epochs")
    ctx["epochs"] = json.loads(epochs) if isinstance(epochs, str) else list(epochs or [])
    return ctx


def meta(ctx: Mapping[str, Any]) -> dict[str, Any]:
    ran = gpstime.fit_ran_at(ctx.get("fit_time"), int(ctx["fitid"]))
    return {"obsname": ctx.get("obsname"), "creator": ctx.get("creator"),
            "ran_awst": gpstime.format_awst(ran, seconds=False)}


def plot_data(kind: str, ctx: Mapping[str, Any]) -> dict[str, Any]:
    """Fetch the rows the plot needs and compute its data."""
    mod = plot_module(kind)
    fitid, obsid = int(ctx["fitid"]), int(ctx["obsid"])
    common = dict(fitid=fitid, obsid=obsid, creator=ctx.get("creator"), meta=meta(ctx))
    tiles = metadata.tile_rows(obsid)  # observation_tile rows, else the metafits' (a site-pipeline fit)
    gains = kind in ("gains", "gaintimes")
    sols = sql.fit_solutions(fitid, obsid, gains=gains)
    tileids = sorted({int(t["tileid"]) for t in tiles} | {int(s["tileid"]) for s in sols})
    window = window_of(kind)
    if kind == "tilediff":
        return mod.compute(tiles, sols, **common)
    if kind == "phasefit":
        from chalicelib.db.modelerror import fit_line_rows
        from chalicelib.ingest.fitfiles import fit_curves

        return mod.compute(tiles, fit_line_rows(fitid, obsid), fit_curves(fitid, obsid),
                           channels=ctx.get("frequencies"), threshold_rad=settings().model_error_threshold_rad,
                           **common)
    if kind == "gains":
        return mod.compute(tiles, sols, channels=ctx.get("frequencies"), **common)
    epochs = ctx.get("epochs") or []  # the validity epochs of the window, as the cache key names them
    if kind in ("timediff", "xydiff"):
        history = sql.window_delay_blocks(obsid - window, obsid, tileids)
        return mod.compute(tiles, sols, history, window_s=window, epochs=epochs, **common)
    history = sql.window_gain_blocks(obsid - window, obsid, tileids)
    return mod.compute(tiles, sols, history, channels=ctx.get("frequencies"),
                       channels_by_obs=sql.window_channels(obsid - window, obsid), window_s=window, epochs=epochs,
                       **common)


def render(kind: str, data: Mapping[str, Any]) -> bytes:
    return plot_module(kind).render(data)


def _store_every_width(key_at: Callable[[int], str], full: bytes, width: int) -> None:
    """Store the full-width PNG and its downscaled widths, each immutable for browsers (its key names its content)."""
    bucket = settings().products_bucket
    for w in sorted(pngs.WIDTHS, key=lambda w: w == width):  # the one asked for last: it exists, all do
        storage.put_object(bucket, key_at(w), full if w == pngs.FULL_WIDTH else pngs.scaled(full, w),
                           content_type="image/png", cache_control=IMMUTABLE)


def ensure_stored(kind: str, ctx: Mapping[str, Any], width: int = pngs.FULL_WIDTH) -> tuple[str, bool]:
    """The plot's key at ``width`` in the products bucket; when missing, the plot is rendered once
    and stored at every width (``pngs.WIDTHS``). Returns (key, rendered_now)."""
    key = cache_key(kind, ctx, width)
    if storage.exists(settings().products_bucket, key):
        return key, False
    _store_every_width(lambda w: cache_key(kind, ctx, w), render(kind, plot_data(kind, ctx)), width)
    return key, True


def stored_png_redirect(key_at: Callable[[int], str], draw: Callable[[], bytes],
                        width: int = pngs.FULL_WIDTH) -> Response:
    """A 302 to the PNG stored at ``key_at(width)``; when it is missing, ``draw()`` (a full-width PNG)
    runs once and is stored at every width. For drawings that are not a fit's plot (the comparison)."""
    key = key_at(width)
    if not storage.exists(settings().products_bucket, key):
        _store_every_width(key_at, draw(), width)
    return cacheable_redirect(key)


def cacheable_redirect(key: str) -> Response:
    """The 302 to a stored PNG: its URL signed as of the current window (``url_window``), the redirect cacheable till then."""
    signed_at, max_age = url_window(gpstime.now(), settings().presign_expiry_s)
    url = storage.presigned_url(settings().products_bucket, key, content_type="image/png", signed_at=signed_at)
    return redirect(url, cache_control=f"public, max-age={max_age}" if max_age > 0 else "no-store")


def forget_observation(obsid: int) -> int:
    """Delete every stored plot of the observation (all fits, all kinds); returns how many."""
    bucket = settings().products_bucket
    return sum(storage.delete_prefix(bucket, f"plots/{CACHE_VERSION}/{kind}/{int(obsid)}/") for kind in KINDS)


def plot_response(kind: str, query: Mapping[str, str] | None) -> Response:
    """GET /calib/plot/{kind}: 302 to the stored PNG at the width asked (or the plot's data as JSON)."""
    plot_module(kind)
    fitid = params.integer(query, "fitid", required=True, minimum=0)
    obsid = params.integer(query, "obsid", minimum=0)
    fmt = params.choice(query, "format", FORMATS, default="png")
    width = width_of(query)
    ctx = context(kind, fitid, obsid)
    if fmt == "json":
        return json_response(plain(plot_data(kind, ctx)))  # NaN stays NaN: json_response nulls it
    key, _ = ensure_stored(kind, ctx, width)
    return cacheable_redirect(key)


def url_window(now: datetime, expiry_s: int) -> tuple[datetime, int]:
    """(the moment a plot URL handed out ``now`` is signed as of, how many seconds a browser may keep
    the redirect to it): ``now`` rounded down to the hour, or to half the expiry when that is
    shorter, so every URL keeps at least half its life; the redirect is kept until the URL expires,
    less ``URL_MARGIN_S`` for the download it leads to."""
    step = max(1, min(URL_STEP_S, int(expiry_s) // 2))
    signed_at = rounded_down(now, step)
    left = (signed_at + timedelta(seconds=int(expiry_s)) - now).total_seconds()
    return signed_at, max(0, int(left) - URL_MARGIN_S)
