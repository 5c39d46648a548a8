"""Time conversions of the calibration pages.

- obsid: GPS seconds; Unix = GPS + 315964782 (the leap seconds to date, as everywhere in MWA tools).
- fitid: the time the fit ran: Unix seconds in old fits (< 1e11, i.e. ~1.5e9), Unix microseconds in
  current ones (~1.7e15).
- AWST = UTC+8, no daylight saving (the telescope's and its engineers' time zone).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

GPS_UNIX_OFFSET = 315964782
FITID_MICROSECONDS_FROM = 100_000_000_000  # fitids at or above this are Unix microseconds
AWST = timezone(timedelta(hours=8), "AWST")
UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def gps_to_unix(gps: float) -> float:
    return gps + GPS_UNIX_OFFSET


def unix_to_gps(unix: float) -> float:
    return unix - GPS_UNIX_OFFSET


def gps_to_datetime(gps: float) -> datetime:
    """The aware UTC datetime of a GPS second count."""
    return UNIX_EPOCH + timedelta(seconds=gps_to_unix(gps))


def datetime_to_gps(dt: datetime) -> int:
    """GPS seconds of an aware datetime (whole seconds, floor)."""
    if dt.tzinfo is None:
        raise ValueError("an aware datetime is required")
    delta = dt - UNIX_EPOCH
    return delta.days * 86400 + delta.seconds - GPS_UNIX_OFFSET


def fitid_to_datetime(fitid: int) -> datetime:
    """When the fit ran, from its id: Unix seconds below 1e11, else Unix microseconds."""
    fitid = int(fitid)
    if fitid < FITID_MICROSECONDS_FROM:
        return UNIX_EPOCH + timedelta(seconds=fitid)
    return UNIX_EPOCH + timedelta(microseconds=fitid)


def fit_ran_at(fit_time: datetime | None, fitid: int) -> datetime:
    """The time the fit ran: the fit_time column when set, else decoded from the fitid."""
    if fit_time is not None:
        return fit_time if fit_time.tzinfo else fit_time.replace(tzinfo=timezone.utc)
    return fitid_to_datetime(fitid)


def to_awst(dt: datetime) -> datetime:
    return dt.astimezone(AWST)


def format_awst(dt: datetime | None, seconds: bool = True) -> str:
    """'2026-03-18 18:43:05' in AWST ('' for None)."""
    if dt is None:
        return ""
    return to_awst(dt).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def form_value(dt: datetime) -> str:
    """The value of an <input type=datetime-local> showing this time in AWST."""
    return to_awst(dt).strftime("%Y-%m-%dT%H:%M")


_DATE_TIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?$"
)


def parse_form_time(text: str, *, end: bool = False) -> int:
    """A time from the summary form as GPS seconds.

    Accepts a GPS second count (an obsid, digits only), or an AWST date / date-time as an
    <input type=datetime-local> sends it ('2026-03-18T09:30', seconds optional, ' ' for 'T').
    A date alone means the start of that day, or for an ``end`` its last second (the day included);
    likewise a time without seconds is, for an ``end``, the last second of that minute. So a range
    shown in the form's minutes (``form_value``) reads back as the same range.
    Raises ValueError with a readable message otherwise.
    """
    s = (text or "").strip()
    if not s:
        raise ValueError("a time is required")
    if s.isascii() and s.isdigit():  # str.isdigit() alone takes "²", which int() refuses
        if len(s) > 12:
            raise ValueError(f"{s[:20]!r} is too large for GPS seconds")
        return int(s)
    m = _DATE_TIME.match(s)
    if not m:
        raise ValueError(f"{s[:40]!r} is neither YYYY-MM-DD[THH:MM[:SS]] (AWST) nor GPS seconds")
    y, mo, d, hh, mm, ss = m.groups()
    try:
        dt = datetime(int(y), int(mo), int(d), int(hh or 0), int(mm or 0), int(ss or 0), tzinfo=AWST)
    except ValueError as exc:
        raise ValueError(f"{s[:40]!r} is not a valid date: {exc}") from None
    if end and hh is None:
        return datetime_to_gps(dt + timedelta(days=1)) - 1
    if end and ss is None:
        return datetime_to_gps(dt) + 59
    return datetime_to_gps(dt)
