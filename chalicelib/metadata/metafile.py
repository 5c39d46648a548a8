"""One observation's metafits file: its bytes and what they say, checked to describe THAT observation."""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.formats.metafits import MetafitsInfo, read_metafits


class NotItsMetafits(ValueError):
    """The bytes are not a readable metafits file of the observation asked for."""


@dataclass(frozen=True)
class MetafitsFile:
    """A checked metafits file of one observation, and where it came from ("stored" or "fetched")."""

    obsid: int
    body: bytes
    info: MetafitsInfo
    source: str


def checked(obsid: int, body: bytes, source: str) -> MetafitsFile:
    """Read ``body`` as the metafits of ``obsid``; NotItsMetafits says why it is not one."""
    try:
        info = read_metafits(body)
    except Exception as exc:  # noqa: BLE001 - astropy raises many types for bytes that are not FITS
        raise NotItsMetafits(f"not a readable metafits file ({type(exc).__name__}: {exc})"[:300]) from None
    if info.obsid != obsid:
        raise NotItsMetafits(f"a metafits of observation {info.obsid} (GPSTIME), not of {obsid}")
    if not info.tiles:
        raise NotItsMetafits(f"the metafits of {obsid} lists no tiles (empty TILEDATA)")
    return MetafitsFile(obsid=obsid, body=body, info=info, source=source)
