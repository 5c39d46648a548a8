"""chalicelib.gpstime: GPS <-> UTC with leap seconds, fit ids (Python and SQL), AWST, ISO 8601, LST.

The expected values are written here, from sources independent of the code under test:

- real observations: obsid 1120493008 started 2015-07-09 16:03:11 UTC, 1060000000 on
  2013-08-08 12:26:24 UTC (MWA observation pages), and the real metafits' GPSTIME/DATE-OBS/UNIXTIME
  (read with astropy in the test);
- astropy: ``Time(gps, format='gps').utc.iso`` (its own leap-second table, from ERFA) and its mean
  sidereal time;
- GNU date for the Unix/AWST clock readings:
    TZ=UTC date -d @1773830470                          -> 2026-03-18 10:41:10 (obsid 1457865688)
    TZ=Australia/Perth date -d @1773830000              -> 2026-03-18 18:33:20 AWST
    TZ=Australia/Perth date -d @1773831785.589944       -> 2026-03-18 19:03:05 AWST
    TZ=Australia/Perth date -d @1500000000              -> 2017-07-14 10:40:00 AWST
    TZ=UTC date -d @1436457791                          -> 2015-07-09 16:03:11
"""

from __future__ import annotations

import random
import time
import warnings
from datetime import datetime, timedelta, timezone

import pytest
from astropy.io import fits
from astropy.time import Time

from chalicelib import db, gpstime
from tests.mwa_files import mwa_file

UTC = timezone.utc


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def astropy_utc(gps):
    """astropy's reading of GPS time(s) as UTC, 'YYYY-MM-DD HH:MM:SS' (23:59:60 in a leap second)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ERFA's "dubious year" for dates past its table
        iso = Time(gps, format="gps").utc.iso
    return iso[:19] if isinstance(iso, str) else [t[:19] for t in iso]


# ---- GPS <-> UTC ------------------------------------------------------------------------------

TRUTHS = [  # (obsid, UTC start, GPS - UTC then)
    (1060000000, utc(2013, 8, 8, 12, 26, 24), 16),
    (1120493008, utc(2015, 7, 9, 16, 3, 11), 17),
    (1457865688, utc(2026, 3, 18, 10, 41, 10), 18),
]


@pytest.mark.parametrize("obsid, when, leap", TRUTHS)
def test_gps_to_utc_both_ways_with_the_leap_seconds_of_the_time(obsid, when, leap):
    assert gpstime.gps_to_datetime(obsid) == when
    assert gpstime.datetime_to_gps(when) == obsid
    assert gpstime.datetime_to_gps(when + timedelta(microseconds=999_999)) == obsid  # whole seconds, floor
    unix = int(when.timestamp())
    assert gpstime.gps_to_unix(obsid) == unix == obsid + 315_964_800 - leap
    assert gpstime.unix_to_gps(unix) == obsid
    assert gpstime.gps_to_unix_ms(obsid) == unix * 1000
    assert astropy_utc(obsid) == when.strftime("%Y-%m-%d %H:%M:%S")


def test_the_2015_observation_is_not_a_fixed_offset_away():
    # The old fixed offset (+315964782) put it at 16:03:12; 2013 two seconds late.
    assert gpstime.gps_to_unix_ms(1120493008) == 1436457791000
    assert gpstime.gps_to_unix_ms(1060000000) == 1375964784000


@pytest.mark.parametrize("obsid", [1347318488, 1365977896, 1369821496, 1457904016])
def test_real_metafits_dates(obsid):
    header = fits.getheader(mwa_file(str(obsid), f"{obsid}_metafits.fits"))
    assert header["GPSTIME"] == obsid
    assert gpstime.gps_to_datetime(obsid).strftime("%Y-%m-%dT%H:%M:%S") == header["DATE-OBS"]
    if "UNIXTIME" in header:
        assert gpstime.gps_to_unix(obsid) == header["UNIXTIME"]


def test_agrees_with_astropy_from_1980_to_2030():
    rng = random.Random(1980)
    samples = [rng.randrange(0, 1_600_000_000) for _ in range(20000)]
    for gps, ref in zip(samples, astropy_utc(samples)):
        if ref.endswith(":60"):
            continue  # inside a leap second: see the next test
        assert gpstime.gps_to_datetime(gps).strftime("%Y-%m-%d %H:%M:%S") == ref, gps
        assert gpstime.unix_to_gps(gpstime.gps_to_unix(gps)) == gps


def test_every_leap_second_of_the_table_agrees_with_astropy():
    """Around each leap second: astropy's UTC ('23:59:60' inside it) and ours, second by second."""
    for unix_midnight, leap in gpstime.LEAP_SECONDS:
        inside = unix_midnight - 315_964_800 + leap - 1  # GPS second of 23:59:60
        assert astropy_utc(inside).endswith("23:59:60")
        assert astropy_utc(inside - 1).endswith("23:59:59") and astropy_utc(inside + 1).endswith("00:00:00")
        midnight = datetime.fromtimestamp(unix_midnight, tz=UTC)
        assert gpstime.gps_to_datetime(inside - 1) == midnight - timedelta(seconds=1)
        assert gpstime.gps_to_datetime(inside + 1) == midnight
        assert gpstime.datetime_to_gps(midnight) == inside + 1
        assert gpstime.datetime_to_gps(midnight - timedelta(seconds=1)) == inside - 1


def test_the_leap_second_of_2016_12_31():
    # astropy: GPS 1167264016 = 2016-12-31 23:59:59, 1167264017 = 23:59:60, 1167264018 = 2017-01-01 00:00:00
    before, leap, after = 1167264016, 1167264017, 1167264018
    assert [astropy_utc(g) for g in (before, leap, after)] == [
        "2016-12-31 23:59:59", "2016-12-31 23:59:60", "2017-01-01 00:00:00"]
    assert gpstime.gps_to_datetime(before) == utc(2016, 12, 31, 23, 59, 59)
    # 23:59:60 has no datetime nor Unix time: it is shown as the midnight that ends it
    assert gpstime.gps_to_datetime(leap) == gpstime.gps_to_datetime(after) == utc(2017, 1, 1)
    assert gpstime.gps_to_unix(leap) == gpstime.gps_to_unix(after) == 1483228800
    assert gpstime.datetime_to_gps(utc(2017, 1, 1)) == after
    assert gpstime.datetime_to_gps(utc(2016, 12, 31, 23, 59, 59)) == before
    # GPS -> Unix never goes backwards, even within the leap second
    steps = [before + k / 4 for k in range(13)]
    unix = [gpstime.gps_to_unix(g) for g in steps]
    assert unix == sorted(unix) and unix[0] == 1483228799 and unix[-1] == 1483228801
    assert gpstime.gps_to_unix(before + 0.5) == 1483228799.5
    # Unix -> GPS jumps the leap second
    assert gpstime.unix_to_gps(1483228799.5) == before + 0.5
    assert gpstime.unix_to_gps(1483228800) == after


def test_millisecond_bounds_keep_the_leap_second_where_it_is_shown():
    """Grafana's range ends (epoch ms) -> the first and last obsid whose shown time is inside."""
    leap_ms = 1483228800000  # 2017-01-01 00:00:00, where GPS 1167264017 (23:59:60) and 1167264018 are shown
    assert gpstime.first_gps_from_ms(leap_ms) == 1167264017
    assert gpstime.first_gps_from_ms(leap_ms + 1) == 1167264019
    assert gpstime.first_gps_from_ms(leap_ms - 1000) == 1167264016
    assert gpstime.last_gps_until_ms(leap_ms) == 1167264018
    assert gpstime.last_gps_until_ms(leap_ms - 1) == 1167264016
    assert gpstime.first_gps_from_ms(1436457791000) == gpstime.last_gps_until_ms(1436457791999) == 1120493008
    assert gpstime.first_gps_from_ms(1436457791001) == 1120493009


def test_before_the_gps_epoch_is_refused_or_clamped():
    assert gpstime.gps_to_datetime(0) == utc(1980, 1, 6)
    with pytest.raises(ValueError, match="GPS epoch"):
        gpstime.gps_to_unix(-1)
    with pytest.raises(ValueError, match="GPS epoch"):
        gpstime.unix_to_gps(315_964_799)
    with pytest.raises(ValueError, match="GPS epoch"):
        gpstime.datetime_to_gps(utc(1979, 12, 31))
    assert gpstime.first_gps_from_ms(0) == 0 and gpstime.first_gps_from_ms(-10**14) == 0
    assert gpstime.last_gps_until_ms(0) == -1  # no observation before 1980
    with pytest.raises(ValueError, match="aware"):
        gpstime.datetime_to_gps(datetime(2020, 1, 1))


# ---- sidereal time ----------------------------------------------------------------------------


@pytest.mark.parametrize("gps", [1060000000, 1120493008, 1369821496, 1457904016])
def test_lst_at_the_mwa_matches_astropy_to_a_second(gps):
    from astropy.utils import iers

    with iers.conf.set_temp("auto_download", False), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref_deg = Time(gps, format="gps").sidereal_time("mean", longitude=116.67081524).deg
    diff_s = ((gpstime.lst_hours(gps) * 15.0 - ref_deg + 180.0) % 360.0 - 180.0) * 240.0  # 1 deg = 240 s
    assert abs(diff_s) < 1.0


# ---- fit ids ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fitid, awst", [
    (1773830000, "2026-03-18 18:33:20"),  # Unix seconds (old 'mwa' fits)
    (1773831785589944, "2026-03-18 19:03:05"),  # Unix microseconds (current fits)
    (1500000000, "2017-07-14 10:40:00"),
    (1500000000000000, "2017-07-14 10:40:00"),
])
def test_fitid_in_seconds_and_microseconds_show_the_same_clock(fitid, awst):
    assert gpstime.format_awst(gpstime.fitid_to_datetime(fitid)) == awst


def test_fitid_unit_boundary():
    assert gpstime.fitid_to_datetime(99_999_999_999) == utc(5138, 11, 16, 9, 46, 39)  # still seconds
    assert gpstime.fitid_to_datetime(100_000_000_000) == utc(1970, 1, 2, 3, 46, 40)  # microseconds from here
    assert gpstime.fitid_seconds(99_999_999_999) == 99_999_999_999.0
    assert gpstime.fitid_seconds(100_000_000_000) == 100_000.0
    assert gpstime.fitid_seconds(1773831785589944) == 1773831785.589944
    assert gpstime.fitid_to_datetime(1773831785589944) == utc(2026, 3, 18, 11, 3, 5, 589944)


def test_fit_time_wins_over_fitid():
    ft = utc(2026, 3, 15, 10, 0)
    assert gpstime.format_awst(gpstime.fit_ran_at(ft, 1773830000)) == "2026-03-15 18:00:00"
    assert gpstime.fit_ran_at(datetime(2026, 3, 15, 10, 0), 1773830000) == ft  # naive = UTC
    assert gpstime.format_awst(gpstime.fit_ran_at(None, 1773830000)) == "2026-03-18 18:33:20"


SQL_FITIDS = [1, 1_500_000_000, 1773830000, 99_999_999_998, 99_999_999_999, 100_000_000_000,
              100_000_000_001, 1_500_000_000_000_000, 1773831785589944, 1_700_000_000_000_001]


def test_the_sql_fragment_reads_fit_ids_as_python_does(clean_db):
    """fit_ran_sql evaluated in the real PostgreSQL, ids on both sides of the unit threshold."""
    set_at = utc(2020, 2, 29, 12, 0, 0, 5)
    for fitid in SQL_FITIDS:
        rows = db.query(f"SELECT {gpstime.fitid_time_sql('CAST(:id AS bigint)')} AS t,"
                        f" {gpstime.fit_ran_sql('CAST(NULL AS timestamptz)', 'CAST(:id AS bigint)')} AS ran,"
                        f" {gpstime.fit_ran_sql('CAST(:set AS timestamptz)', 'CAST(:id AS bigint)')} AS kept",
                        {"id": fitid, "set": set_at.isoformat()})
        r = rows[0]
        assert r["t"] == r["ran"] == gpstime.fitid_to_datetime(fitid), fitid
        assert r["kept"] == set_at
    # and the literal values at the threshold, as the Python test above has them
    got = {f: db.query(f"SELECT {gpstime.fitid_time_sql('CAST(:id AS bigint)')} AS t", {"id": f})[0]["t"]
           for f in (99_999_999_999, 100_000_000_000, 1773831785589944)}
    assert got == {99_999_999_999: utc(5138, 11, 16, 9, 46, 39), 100_000_000_000: utc(1970, 1, 2, 3, 46, 40),
                   1773831785589944: utc(2026, 3, 18, 11, 3, 5, 589944)}


# ---- AWST and the summary form ----------------------------------------------------------------


def test_form_times_are_awst_and_end_includes_its_minute_or_day():
    a = 1457865688  # 2026-03-18 10:41:10 UTC = 18:41:10 AWST
    assert gpstime.parse_form_time("2026-03-18T18:41") == a - 10
    assert gpstime.parse_form_time("2026-03-18T18:41", end=True) == a - 10 + 59
    assert gpstime.parse_form_time("2026-03-18 18:41:10") == a
    assert gpstime.parse_form_time("2026-03-18T18:41:10", end=True) == a
    midnight_awst = a - (18 * 3600 + 41 * 60 + 10)
    assert gpstime.parse_form_time("2026-03-18") == midnight_awst
    assert gpstime.parse_form_time("2026-03-18", end=True) == midnight_awst + 86399
    assert gpstime.parse_form_time(" 1457865688 ") == a  # GPS seconds pass through
    assert gpstime.form_value(gpstime.gps_to_datetime(a)) == "2026-03-18T18:41"


def test_form_times_before_2017_count_their_leap_seconds():
    # 1120493008 = 2015-07-09 16:03:11 UTC = 2015-07-10 00:03:11 AWST
    assert gpstime.parse_form_time("2015-07-10T00:03:11") == 1120493008
    assert gpstime.form_value(gpstime.gps_to_datetime(1120493008)) == "2015-07-10T00:03"
    assert gpstime.format_awst(gpstime.gps_to_datetime(1060000000)) == "2013-08-08 20:26:24"
    # the minute that holds a leap second has 61 of them: 2017-01-01 07:59 AWST is 23:59 UTC
    assert gpstime.parse_form_time("2017-01-01T07:59", end=True) - gpstime.parse_form_time("2017-01-01T07:59") == 60


@pytest.mark.parametrize("bad", ["", "yesterday", "2026-02-30", "2026-03-18T25:00", "18/03/2026", "1" * 13,
                                 "1979-12-31", "1980-01-06T07:59", "9" * 12, "9999-12-31"])
def test_bad_form_times_are_refused(bad):
    with pytest.raises(ValueError):
        gpstime.parse_form_time(bad)


def test_format_utc():
    assert gpstime.format_utc(datetime(2015, 7, 10, 0, 3, 11, tzinfo=gpstime.AWST)) == "2015-07-09 16:03:11 UTC"


# ---- ISO 8601 and the clock -------------------------------------------------------------------


def test_parse_iso_gives_aware_utc():
    assert gpstime.parse_iso("2024-05-01T00:00:00.000Z") == utc(2024, 5, 1)
    assert gpstime.parse_iso(" 2024-05-01T08:00:10+08:00 ") == utc(2024, 5, 1, 0, 0, 10)
    assert gpstime.parse_iso("2024-05-01T08:00:10+08:00").tzinfo == UTC
    assert gpstime.parse_iso("2026-03-18T11:03:05.588925") == utc(2026, 3, 18, 11, 3, 5, 588925)  # naive = UTC
    for bad in ("", "now-6h", "2024-13-01", None, 1714521600):
        with pytest.raises(ValueError):
            gpstime.parse_iso(bad)  # type: ignore[arg-type]


def test_now_is_aware_utc_wall_clock():
    t = gpstime.now()
    assert t.tzinfo is not None and t.utcoffset() == timedelta(0)
    assert abs(t.timestamp() - time.time()) < 5
