"""The order in which an observation's metadata is looked for: database, stored metafits, metadata service.

1. the database rows (observation_tile; mwa_setting, schedule_metadata, rf_stream), read only;
2. the products bucket's ``<CALIB_METADATA_PREFIX><obs_id>_metafits.fits``, the cache the API reads;
3. the MWA metadata web service (``CALIB_METADATA_URL``; empty: skipped). What it sends is checked
   (a readable metafits of THAT obsid, with tiles) and stored under the key of step 2, so the next
   answer needs no fetch. A file that fails the check is a 503 and is not stored.
"""

from __future__ import annotations

import time
from dataclasses import replace

from chalicelib.config import settings
from chalicelib.errors import MetadataUnavailable
from chalicelib.formats.metafits import observation_from_metafits
from chalicelib.metadata import database, stored
from chalicelib.metadata.metafile import MetafitsFile, NotItsMetafits, checked
from chalicelib.observability import logger
from chalicelib.records import Observation
from chalicelib.solutions import TileInfo


def metafits(obsid: int) -> MetafitsFile | None:
    """The observation's metafits: stored, else fetched (and stored); None when it is not stored and fetching is off."""
    found = stored.read(obsid)
    if found is not None:
        return found
    if not settings().metadata_url:
        return None
    from chalicelib.metadata import webservice  # http.client and ssl: ~20 ms of cold start, only on a fetch

    t0 = time.monotonic()
    body = webservice.fetch(obsid)
    try:
        found = checked(obsid, body, "fetched")
    except NotItsMetafits as exc:
        raise MetadataUnavailable(
            f"the MWA metadata service's answer for observation {obsid} is unusable: {exc}") from None
    kept = stored.store(found)
    logger.info("metafits fetched from the metadata service",
                extra={"obsid": obsid, "bytes": len(body), "seconds": round(time.monotonic() - t0, 3), "stored": kept})
    return found


def observation_tiles(obsid: int) -> list[TileInfo]:
    """The observation's tiles in Antenna order: the database's rows, else its metafits TILEDATA ([] if neither)."""
    rows = database.tiles(obsid)
    if rows:
        return rows
    found = metafits(obsid)
    return list(found.info.tiles) if found is not None else []


def observation_meta(obsid: int) -> Observation | None:
    """The observation (channels, gain value, times, name, tiles): the database's, what it lacks from the metafits.

    None when neither the database nor a metafits has it.
    """
    obs = database.observation(obsid)
    if obs is not None and database.is_complete(obs):
        return obs
    found = metafits(obsid)
    if found is None:
        return obs
    from_file = observation_from_metafits(found.info)
    if obs is None:
        return from_file
    return replace(
        obs,
        channels=obs.channels or from_file.channels,
        gain_control_value=obs.gain_control_value if obs.gain_control_value is not None
        else from_file.gain_control_value,
        tiles=obs.tiles or from_file.tiles,
    )
