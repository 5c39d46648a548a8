"""The database backend: the observation and tile rows we already have (read only, never written here)."""

from __future__ import annotations

from chalicelib.db import selection as queries
from chalicelib.records import Observation
from chalicelib.solutions import TileInfo


def tiles(obsid: int) -> list[TileInfo]:
    """The observation's observation_tile rows in Antenna order (empty when none are recorded)."""
    return queries.observation_tiles(obsid)


def observation(obsid: int) -> Observation | None:
    """The observation as mwa_setting, schedule_metadata, rf_stream and observation_tile have it, or None."""
    return queries.observation(obsid)


def is_complete(obs: Observation) -> bool:
    """Whether the database row needs nothing from the metafits: channels, gain value and tiles all present."""
    return bool(obs.channels) and obs.gain_control_value is not None and bool(obs.tiles)
