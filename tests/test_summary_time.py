"""Time conversions of the summary pages, checked against values computed with GNU date:

    TZ=UTC date -d @$((1457865688 + 315964782))         -> 2026-03-18 10:41:10
    TZ=Australia/Perth date -d @1773830000              -> 2026-03-18 18:33:20 AWST
    TZ=Australia/Perth date -d @1773831785.589944       -> 2026-03-18 19:03:05 AWST
    TZ=Australia/Perth date -d @1500000000              -> 2017-07-14 10:40:00 AWST
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from chalicelib.summary import timeconv


def test_gps_to_utc():
    assert timeconv.gps_to_datetime(1457865688) == datetime(2026, 3, 18, 10, 41, 10, tzinfo=timezone.utc)
    assert timeconv.datetime_to_gps(datetime(2026, 3, 18, 10, 41, 10, tzinfo=timezone.utc)) == 1457865688


@pytest.mark.parametrize("fitid, awst", [
    (1773830000, "2026-03-18 18:33:20"),  # Unix seconds (old 'mwa' fits)
    (1773831785589944, "2026-03-18 19:03:05"),  # Unix microseconds (current fits)
    (1500000000, "2017-07-14 10:40:00"),
    (1500000000000000, "2017-07-14 10:40:00"),
])
def test_fitid_in_seconds_and_microseconds_show_the_same_clock(fitid, awst):
    assert timeconv.format_awst(timeconv.fitid_to_datetime(fitid)) == awst


def test_fitid_unit_boundary():
    assert timeconv.fitid_to_datetime(99_999_999_999).year == 5138  # still seconds
    assert timeconv.fitid_to_datetime(100_000_000_000) == datetime(1970, 1, 2, 3, 46, 40, tzinfo=timezone.utc)


def test_fit_time_wins_over_fitid():
    ft = datetime(2026, 3, 15, 10, 0, tzinfo=timezone.utc)
    assert timeconv.format_awst(timeconv.fit_ran_at(ft, 1773830000)) == "2026-03-15 18:00:00"
    assert timeconv.format_awst(timeconv.fit_ran_at(None, 1773830000)) == "2026-03-18 18:33:20"


def test_form_times_are_awst_and_end_includes_its_minute_or_day():
    a = 1457865688  # 2026-03-18 10:41:10 UTC = 18:41:10 AWST
    assert timeconv.parse_form_time("2026-03-18T18:41") == a - 10
    assert timeconv.parse_form_time("2026-03-18T18:41", end=True) == a - 10 + 59
    assert timeconv.parse_form_time("2026-03-18 18:41:10") == a
    assert timeconv.parse_form_time("2026-03-18T18:41:10", end=True) == a
    midnight_awst = a - (18 * 3600 + 41 * 60 + 10)
    assert timeconv.parse_form_time("2026-03-18") == midnight_awst
    assert timeconv.parse_form_time("2026-03-18", end=True) == midnight_awst + 86399
    assert timeconv.parse_form_time(" 1457865688 ") == a  # GPS seconds pass through
    assert timeconv.form_value(timeconv.gps_to_datetime(a)) == "2026-03-18T18:41"


@pytest.mark.parametrize("bad", ["", "yesterday", "2026-02-30", "2026-03-18T25:00", "18/03/2026", "1" * 13])
def test_bad_form_times_are_refused(bad):
    with pytest.raises(ValueError):
        timeconv.parse_form_time(bad)
