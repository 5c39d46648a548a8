"""An observation's tiles as the summary and plot code reads them: observation_tile rows, the metafits' if none."""

from __future__ import annotations

from typing import Any

from chalicelib.errors import BadRequest
from chalicelib.metadata.source import observation_tiles


def tile_rows(obsid: int) -> list[dict[str, Any]]:
    """The tiles as observation_tile rows (tileid, tile_name, antenna, rx, slot, flagged) by receiver and slot.

    From the database, else the metafits (:func:`observation_tiles`); [] when the metadata service does not
    know the observation (a fit page names fits, not observations: no tiles is the honest answer there).
    MetadataUnavailable (503) when the service is down or answers garbage.
    """
    try:
        tiles = observation_tiles(obsid)
    except BadRequest:
        return []
    rows = [{"tileid": t.tile_id, "tile_name": t.name, "antenna": t.antenna, "rx": t.rx, "slot": t.slot,
             "flagged": t.flagged} for t in tiles]
    return sorted(rows, key=lambda r: (r["rx"] is None, r["rx"] or 0, r["slot"] or 0, r["tileid"] or 0))
