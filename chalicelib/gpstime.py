"""Every time conversion of the service, in one place: GPS <-> UTC with leap seconds, AWST, fit ids, LST.

- An obsid is GPS seconds since 1980-01-06 00:00 UTC. GPS runs without leap seconds, so
  GPS - UTC grows by one at each IERS leap second: 18 s since 2017-01-01 (the last one so far),
  17 s in 2015-07 .. 2016-12, 16 s in 2012-07 .. 2015-06, and so on (``LEAP_SECONDS``). A fixed
  18 s is one second off from 2015-07 to 2016-12, two from 2012-07 to 2015-06, and so on.
- A leap second (23:59:60 UTC) has no Unix time and no ``datetime``: a GPS time inside one maps to
  the 00:00:00 that follows it, so GPS -> Unix never goes backwards; Unix -> GPS gives the one GPS
  time of that instant. GPS times before the GPS epoch (negative) are refused with ValueError.
- fitid: when the fit ran, Unix seconds in old fits (~1.5e9) and Unix microseconds in current ones
  (~1.7e15); ids from ``FITID_MICROSECONDS_FROM`` up are microseconds. ``fit_ran_sql`` is the same
  rule for PostgreSQL.
- AWST = UTC+8 without daylight saving (the telescope's and its engineers' zone): the summary
  form's times and the pages' clocks.
- ``now()`` is the one place the service reads the wall clock (tests pin it by replacing it).
"""

from __future__ import annotations

import bisect
import re
from datetime import datetime, timedelta, timezone

from chalicelib.instrument import MWA_LONGITUDE_DEG

UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
GPS_EPOCH_UNIX = 315_964_800  # Unix seconds of the GPS epoch, 1980-01-06 00:00:00 UTC
AWST = timezone(timedelta(hours=8), "AWST")
DAY_S = 86_400

# (Unix time of the UTC midnight from which it holds, GPS - UTC in seconds): the IERS leap
# seconds since the GPS epoch (Bulletin C; none announced after 2017-01-01).
LEAP_SECONDS: tuple[tuple[int, int], ...] = (
    (362_793_600, 1), (394_329_600, 2), (425_865_600, 3), (489_024_000, 4), (567_993_600, 5),
    (631_152_000, 6), (662_688_000, 7), (709_948_800, 8), (741_484_800, 9), (773_020_800, 10),
    (820_454_400, 11), (867_715_200, 12), (915_148_800, 13), (1_136_073_600, 14), (1_230_768_000, 15),
    (1_341_100_800, 16), (1_435_708_800, 17), (1_483_228_800, 18),
)
_LEAP_UNIX = [u for u, _ in LEAP_SECONDS]
_LEAP_GPS = [u - GPS_EPOCH_UNIX + n for u, n in LEAP_SECONDS]  # GPS time of each of those midnights

FITID_MICROSECONDS_FROM = 100_000_000_000  # fit ids at or above this are Unix microseconds, below Unix seconds


# ---- GPS <-> UTC ------------------------------------------------------------------------------


def gps_to_unix(gps: float) -> float:
    """Unix seconds (UTC) of a GPS time; an int stays an int. Inside a leap second: the next midnight."""
    if gps < 0:
        raise ValueError(f"GPS time {gps} is before the GPS epoch (1980-01-06)")
    k = bisect.bisect_right(_LEAP_GPS, gps)  # leap seconds already applied at this GPS time
    if k < len(_LEAP_GPS) and gps >= _LEAP_GPS[k] - 1:  # within the leap second 23:59:60
        return _LEAP_UNIX[k]
    return gps + GPS_EPOCH_UNIX - (LEAP_SECONDS[k - 1][1] if k else 0)


def unix_to_gps(unix: float) -> float:
    """GPS seconds of a Unix time (UTC); an int stays an int."""
    if unix < GPS_EPOCH_UNIX:
        raise ValueError(f"Unix time {unix} is before the GPS epoch (1980-01-06)")
    k = bisect.bisect_right(_LEAP_UNIX, unix)
    return unix - GPS_EPOCH_UNIX + (LEAP_SECONDS[k - 1][1] if k else 0)


def gps_to_datetime(gps: float) -> datetime:
    """The aware UTC datetime of a GPS time."""
    return UNIX_EPOCH + timedelta(seconds=gps_to_unix(gps))


def datetime_to_gps(dt: datetime) -> int:
    """GPS seconds of an aware datetime, in whole seconds (floor)."""
    if dt.tzinfo is None:
        raise ValueError("an aware datetime is required")
    return unix_to_gps((dt - UNIX_EPOCH) // timedelta(seconds=1))


def gps_to_unix_ms(gps: int) -> int:
    """A whole GPS second as Unix epoch milliseconds (Grafana's time axis)."""
    return int(gps_to_unix(int(gps))) * 1000


def first_gps_from_ms(unix_ms: int) -> int:
    """The first whole GPS second (>= 0) whose Unix time is at or after ``unix_ms``."""
    unix = -(-int(unix_ms) // 1000)
    if unix <= GPS_EPOCH_UNIX:
        return 0
    gps = unix_to_gps(unix)
    while gps > 0 and gps_to_unix(gps - 1) >= unix:  # a leap second shares the next second's Unix time
        gps -= 1
    return gps


def last_gps_until_ms(unix_ms: int) -> int:
    """The last whole GPS second whose Unix time is at or before ``unix_ms`` (-1: before the epoch)."""
    unix = int(unix_ms) // 1000
    if unix < GPS_EPOCH_UNIX:
        return -1
    return unix_to_gps(unix)


def format_utc(dt: datetime) -> str:
    """'2026-03-18 10:41:10 UTC'."""
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


# ---- sidereal time ----------------------------------------------------------------------------


def lst_hours(gps: float) -> float:
    """Local sidereal time at the MWA (hours) at a GPS time.

    The linear GMST series (USNO; within 0.1 s a century of the full IAU 1982 polynomial) on UTC
    for UT1, so good to ~1 s: what a generated metafits and the demo's schedule need."""
    days = gps_to_unix(gps) / DAY_S + 2440587.5 - 2451545.0  # since J2000.0
    return (18.697374558 + 24.06570982441908 * days + MWA_LONGITUDE_DEG / 15.0) % 24.0


# ---- ISO 8601 and the clock -------------------------------------------------------------------


def as_utc(dt: datetime) -> datetime:
    """An aware UTC datetime (a naive one is taken to be UTC already)."""
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def parse_iso(text: str) -> datetime:
    """An ISO 8601 time ('2024-05-01T00:00:00.000Z', '...+08:00', naive = UTC) as an aware UTC datetime.

    ValueError when it is not one (or not a string)."""
    if not isinstance(text, str):
        raise ValueError(f"an ISO 8601 time is a string, not {type(text).__name__}")
    return as_utc(datetime.fromisoformat(text.strip()))


def now() -> datetime:
    """The wall-clock time, aware UTC (the only clock reading; tests replace this function)."""
    return datetime.now(timezone.utc)


# ---- fit ids ----------------------------------------------------------------------------------


def fitid_seconds(fitid: int) -> float:
    """When the fit ran, as Unix seconds, from its id (seconds or microseconds)."""
    fitid = int(fitid)
    return fitid / 1e6 if fitid >= FITID_MICROSECONDS_FROM else float(fitid)


def fitid_to_datetime(fitid: int) -> datetime:
    """When the fit ran, from its id (exact to the microsecond)."""
    fitid = int(fitid)
    if fitid >= FITID_MICROSECONDS_FROM:
        return UNIX_EPOCH + timedelta(microseconds=fitid)
    return UNIX_EPOCH + timedelta(seconds=fitid)


def fit_ran_at(fit_time: datetime | None, fitid: int) -> datetime:
    """When the fit ran: the fit_time column when set (naive = UTC), else read from the fitid."""
    return as_utc(fit_time) if fit_time is not None else fitid_to_datetime(fitid)


def fitid_time_sql(fitid: str = "f.fitid") -> str:
    """SQL: the timestamptz a fit id column stands for (``fitid_to_datetime``'s rule)."""
    return (f"(timestamptz 'epoch' + CASE WHEN {fitid} >= {FITID_MICROSECONDS_FROM}"
            f" THEN {fitid} * interval '1 microsecond' ELSE {fitid} * interval '1 second' END)")


def fit_ran_sql(fit_time: str = "f.fit_time", fitid: str = "f.fitid") -> str:
    """SQL: when the fit ran, its fit_time column or else its id (``fit_ran_at``'s rule)."""
    return f"COALESCE({fit_time}, {fitid_time_sql(fitid)})"


# ---- AWST and the summary form ----------------------------------------------------------------


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


_FORM_YEARS = (1980, 9998)  # the form's times: from the GPS epoch to a year datetime can still step past
_LAST_FORM_GPS = datetime_to_gps(datetime(_FORM_YEARS[1] + 1, 1, 1, tzinfo=timezone.utc)) - 1
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
    Raises ValueError with a readable message otherwise (before the GPS epoch or after 9998 included).
    """
    s = (text or "").strip()
    if not s:
        raise ValueError("a time is required")
    if s.isascii() and s.isdigit():  # str.isdigit() alone takes "²", which int() refuses
        if len(s) > 12 or int(s) > _LAST_FORM_GPS:
            raise ValueError(f"{s[:20]!r} is too large for GPS seconds (after the year {_FORM_YEARS[1]})")
        return int(s)
    m = _DATE_TIME.match(s)
    if not m:
        raise ValueError(f"{s[:40]!r} is neither YYYY-MM-DD[THH:MM[:SS]] (AWST) nor GPS seconds")
    y, mo, d, hh, mm, ss = m.groups()
    try:
        dt = datetime(int(y), int(mo), int(d), int(hh or 0), int(mm or 0), int(ss or 0), tzinfo=AWST)
    except ValueError as exc:
        raise ValueError(f"{s[:40]!r} is not a valid date: {exc}") from None
    if dt < UNIX_EPOCH + timedelta(seconds=GPS_EPOCH_UNIX):
        raise ValueError(f"{s[:40]!r} is before the GPS epoch (1980-01-06 08:00 AWST)")
    if dt.year > _FORM_YEARS[1]:
        raise ValueError(f"{s[:40]!r} is after the year {_FORM_YEARS[1]}")
    if end and hh is None:
        return datetime_to_gps(dt + timedelta(days=1)) - 1
    if end and ss is None:
        return datetime_to_gps(dt + timedelta(minutes=1)) - 1
    return datetime_to_gps(dt)
