"""Observation metadata when the database lacks it: the tiles (and channels, gain value, ...) of an observation.

Every solution needs the observation's tiles (tile id, name, Antenna index, receiver, slot, flag).
Our ``observation_tile`` table has them for what we ingested; the MWA database has no such table
(the metafits TILEDATA publishes it). So the answer comes from, in order (:mod:`.source`):

``database``    the rows we have (read only: the API's role may only SELECT);
``stored``      the metafits in the products bucket (``metadata/<obs_id>_metafits.fits``);
``webservice``  the MWA metadata web service (``CALIB_METADATA_URL``), bounded in time, size and
                address; what it sends is stored as above, so it is fetched once.

The entry points are the functions below (``tile_rows``: the tiles as the summary and plots read them).
Errors: ``BadRequest`` (parameter ``obs_id``)
when the metadata service says the observation does not exist; ``MetadataUnavailable`` (503)
when it is down, slow, answers garbage or too much; ``StorageUnavailable`` when S3 cannot be read.
"""

from __future__ import annotations

from chalicelib.metadata.metafile import MetafitsFile
from chalicelib.metadata.rows import tile_rows
from chalicelib.metadata.source import metafits, observation_meta, observation_tiles

__all__ = ["MetafitsFile", "metafits", "observation_meta", "observation_tiles", "tile_rows"]
