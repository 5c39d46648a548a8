"""The metafits copies in the products bucket (``<CALIB_METADATA_PREFIX><obs_id>_metafits.fits``).

They are the cache the API reads: one S3 GET instead of a call to the MWA metadata web service.
A stored copy that is unreadable or of another observation is treated as absent (and logged), so
a fresh fetch replaces it.
"""

from __future__ import annotations

from chalicelib import storage
from chalicelib.config import settings
from chalicelib.errors import StorageUnavailable
from chalicelib.metadata.metafile import MetafitsFile, NotItsMetafits, checked
from chalicelib.observability import logger


def key(obsid: int) -> str:
    """Where an observation's metafits is kept in the products bucket."""
    return f"{settings().metadata_prefix}{obsid}_metafits.fits"


def read(obsid: int) -> MetafitsFile | None:
    """The stored metafits of the observation, or None when there is none (or it is not usable)."""
    body = storage.get_object(settings().products_bucket, key(obsid))
    if body is None:
        return None
    try:
        return checked(obsid, body, "stored")
    except NotItsMetafits as exc:
        logger.warning("stored metafits not usable; ignoring it",
                       extra={"obsid": obsid, "key": key(obsid), "error": str(exc)})
        return None


def store(found: MetafitsFile) -> bool:
    """Keep a fetched metafits for the next answer; False (logged) when S3 refused it: the answer goes on."""
    try:
        storage.put_object(settings().products_bucket, key(found.obsid), found.body, content_type="application/fits")
    except StorageUnavailable as exc:
        logger.warning("fetched metafits not stored", extra={"obsid": found.obsid, "error": exc.message})
        return False
    return True
