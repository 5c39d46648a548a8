"""The demo data generator (devstack.demo) and its seeding of a real PostgreSQL."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from datetime import datetime, timedelta

import numpy as np
import pytest
from astropy.io import fits as pyfits

from chalicelib import db, gpstime
from chalicelib.formats.metafits import read_metafits
from chalicelib.records import SOLUTION_COLUMNS
from devstack import demo
from tests.mwa_files import mwa_file

REAL_TARGET, REAL_CAL, REAL_FITID = 1457904016, 1457865688, 1773831785589944


@pytest.fixture(scope="module")
def data() -> demo.DemoData:
    mwa_file(str(REAL_TARGET), f"{REAL_TARGET}_metafits.fits")  # fail, never skip, when missing
    return demo.generate()


@pytest.fixture(scope="module")
def week() -> demo.DemoData:
    """Eight days (2026-03-14 .. 03-22, with the real observations) for the seeding tests."""
    return demo.generate(days=8)


@pytest.fixture(scope="module")
def all_fits(data):
    return list(data.fits)


@pytest.fixture(scope="module")
def real_tiles():
    return read_metafits(mwa_file(str(REAL_TARGET), f"{REAL_TARGET}_metafits.fits")).tiles


def _nan_row(row) -> bool:
    return math.isnan(row.x_delay_m)


def _values(row):
    """Every float of a row, flattened (None left out)."""
    out = []
    for c in SOLUTION_COLUMNS[1:]:
        v = getattr(row, c)
        if v is None:
            continue
        out.extend(v if isinstance(v, list) else [v])
    return out


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return (math.isnan(a) and math.isnan(b)) or a == b


# --------------------------------------------------------------------------------------------
# the generator


def test_month_includes_the_real_observations(data):
    assert data.days == 30
    assert data.start_gps < REAL_CAL < REAL_TARGET + 600 <= data.end_gps
    assert data.end_gps - (REAL_TARGET + 600) < 5 * 86400  # the month ends a few days after it
    by_id = {o.obsid: o for o in data.observations}
    target, cal = by_id[REAL_TARGET], by_id[REAL_CAL]
    assert target.obsname == "_PSR_J1453-6413_Ch121" and not target.calibration
    assert target.stoptime == REAL_TARGET + 600 and len(target.tiles) == 256
    assert cal.calibration and cal.calibrators == demo.REAL_CAL_SOURCE == "PicA"
    assert cal.channels == target.channels == list(range(109, 133))
    assert cal.gain_control_value == 1.0
    assert [t.tile_id for t in cal.tiles] == [t.tile_id for t in target.tiles]


# CALIBDATA column -> calibration_solutions column stem (x_ or y_ by the row's Pol)
CALIBDATA_SCALARS = {"Calib_Delay": "delay_m", "intercept": "intercept", "phase_fit_quality": "phase_fit_quality",
                     "gains_fit_quality": "gains_fit_quality"}
CALIBDATA_ARRAYS = {"Calib_Gains": "gains", "gains_pol0": "gains_pol0", "gains_pol1": "gains_pol1"}


def _calibdata():
    """The real metafits' CALIBDATA table and header, read with astropy alone."""
    with pyfits.open(mwa_file(str(REAL_TARGET), f"{REAL_TARGET}_metafits.fits")) as hdus:
        return hdus["CALIBDATA"].data.copy(), hdus["CALIBDATA"].header.copy()


def test_real_fit_is_the_calibdata(data, all_fits):
    table, header = _calibdata()
    real = [(f, rows) for f, rows in all_fits if f.fitid == REAL_FITID]
    assert len(real) == 1
    fit, rows = real[0]
    assert (fit.fitid, fit.obsid) == (header["CALFIT"], header["CALOBSID"]) == (REAL_FITID, REAL_CAL)
    assert (fit.creator, fit.code_version) == (header["CALCRTR"], header["CALCDVER"]) == ("calvin", "1.1.3")
    assert fit.fit_time == datetime.fromisoformat(header["CALDTIME"]) and fit.fit_time.tzinfo is not None
    by_tile = {r.tileid: r for r in rows}
    assert len(rows) == len(by_tile) == 256 == len(table) // 2
    for cell in table:  # one CALIBDATA row per input: X and Y of each tile
        row = by_tile[int(cell["Tile"])]
        p = cell["Pol"].strip().lower() + "_"
        for column, stem in CALIBDATA_SCALARS.items():
            assert _same(getattr(row, p + stem), float(cell[column])), (cell["Tile"], column)
        for column, stem in CALIBDATA_ARRAYS.items():
            assert _same(getattr(row, p + stem), [float(v) for v in cell[column]]), (cell["Tile"], column)
    # CALIBDATA has no residuals or chi^2: those stay empty
    assert all(getattr(r, c) is None for r in rows for c in SOLUTION_COLUMNS if "chi2" in c or "sigma" in c)
    # the calibrator observation's flagged tiles are those the real fit could not solve
    cal = next(o for o in data.observations if o.obsid == REAL_CAL)
    assert {t.tile_id for t in cal.tiles if t.flagged} == {r.tileid for r in rows if _nan_row(r)}


def test_array_is_the_real_one_with_8_tiles_per_receiver(data, real_tiles):
    real_ids = {t.tile_id: t for t in real_tiles}
    full = [o for o in data.observations if len(o.tiles) == 256]
    sub = [o for o in data.observations if len(o.tiles) == 128]
    assert len(full) + len(sub) == len(data.observations)
    assert sub, "some targets use a 128-tile subarray"
    assert all(not o.calibration for o in sub)
    for obs in data.observations:
        per_rx = Counter(t.rx for t in obs.tiles)
        assert set(per_rx.values()) == {8}, obs.obsid
        assert [t.antenna for t in obs.tiles] == list(range(len(obs.tiles)))
        ids = [t.tile_id for t in obs.tiles]
        assert ids == sorted(ids)  # Antenna in tile-id order, as real metafits number them
        for t in obs.tiles:
            r = real_ids[t.tile_id]
            assert (t.name, t.rx, t.slot) == (r.name, r.rx, r.slot)
        if len(obs.tiles) == 256:
            assert sorted(per_rx) == sorted({t.rx for t in real_tiles})
            assert 12 not in per_rx and 16 not in per_rx and len(per_rx) == 32
    moved = [t for o in sub for t in o.tiles if t.antenna != real_ids[t.tile_id].antenna]
    assert moved, "subarray Antenna numbers differ from the full array's"


def test_schedule_is_plausible(data):
    obs = data.observations
    assert [o.obsid for o in obs] == sorted(o.obsid for o in obs)
    assert all(o.obsid % 8 == 0 for o in obs)
    assert all(a.stoptime <= b.obsid for a, b in zip(obs, obs[1:])), "observations overlap"
    assert all(data.start_gps <= o.obsid and o.stoptime <= data.end_gps for o in obs)
    for o in obs:
        assert len(o.channels) == 24 and o.channels == sorted(set(o.channels))
    cals = data.calibrators
    per_day = Counter(data.day_of(o.obsid) for o in cals)
    assert len(per_day) == 30 and min(per_day.values()) >= 4
    sources = Counter(o.calibrators for o in cals)
    assert {"HydA", "PicA", "3C444"} <= set(sources) and len(sources) >= 3
    assert all(o.stoptime - o.obsid == 120 for o in cals)
    assert all(o.obsname in (f"Cal_{o.calibrators}_Ch{o.channels[12]}", f"AllSky_cal_{o.calibrators}") for o in cals)
    assert any(o.channels[1] - o.channels[0] == 5 for o in cals), "some picket-fence calibrators"
    targets = [o for o in obs if not o.calibration]
    assert targets and all(o.calibrators is None for o in targets)
    assert any(o.obsname.startswith("EoR0_") for o in targets)
    gains = Counter(o.gain_control_value for o in obs)
    assert len(gains) > 1 and gains.most_common(1)[0][0] == 1.0
    assert {o.gain_control_value for o in cals} > {1.0}


def test_fits_both_creators_and_fitid_magnitudes(data):
    fits = data.fits.records
    creators = Counter(f.creator for f in fits)
    assert creators["calvin"] and creators["mwa"]
    unix = lambda dt: (dt - datetime(1970, 1, 1, tzinfo=dt.tzinfo))  # noqa: E731
    for f in fits:
        if f.creator == "calvin":
            assert 1.5e15 < f.fitid < 2e15
            assert f.fitid == unix(f.fit_time) // timedelta(microseconds=1) or f.fitid == REAL_FITID
            assert f.code_version.startswith("1.")
        else:
            assert 1.5e9 < f.fitid < 2e9
            assert f.fitid == unix(f.fit_time) // timedelta(seconds=1)
            assert f.code_version.startswith("0.17.")
        assert f.fit_niter is not None and f.fit_limit is not None
    assert len({(f.fitid, f.obsid) for f in fits}) == len(fits)


def test_fit_times_follow_their_observations(data):
    by_id = {o.obsid: o for o in data.observations}
    span = defaultdict(list)
    for f in data.fits.records:
        span[f.fitid].append(by_id[f.obsid])
    for f in data.fits.records:
        last_stop = max(o.stoptime for o in span[f.fitid])
        delay = (f.fit_time - gpstime.gps_to_datetime(last_stop)).total_seconds()
        assert 60 <= delay <= 8 * 86400, (f.fitid, delay)
        assert by_id[f.obsid].calibration


def test_mwa_fits_span_two_observations(data):
    by_id = {o.obsid: o for o in data.observations}
    obsids = defaultdict(list)
    for f in data.fits.records:
        obsids[f.fitid].append(f)
    spanning = [fs for fs in obsids.values() if len(fs) > 1]
    assert spanning
    for fs in spanning:
        assert len(fs) == 2 and {f.creator for f in fs} == {"mwa"}
        a, b = sorted((by_id[f.obsid] for f in fs), key=lambda o: o.obsid)
        assert a.calibrators == b.calibrators and a.channels != b.channels
        assert b.obsid == a.stoptime + 8  # back to back
        assert fs[0].fit_time == fs[1].fit_time


def test_refits_and_calibrators_without_fits(data):
    fits = data.fits.records
    per_obs = defaultdict(list)
    for f in fits:
        per_obs[f.obsid].append(f)
    twice = {o: fs for o, fs in per_obs.items() if len({f.fitid for f in fs}) > 1}
    assert twice
    for fs in twice.values():
        assert len({f.fit_time for f in fs}) == len(fs)
    cal_ids = {o.obsid for o in data.calibrators}
    assert data.uncalibrated and set(data.uncalibrated) == cal_ids - set(per_obs)
    assert set(per_obs) <= cal_ids


def test_nan_rows_are_exactly_the_flagged_tiles(data, all_fits):
    by_id = {o.obsid: o for o in data.observations}
    all_nan = 0
    extra_failures = 0
    for i, (fit, rows) in enumerate(all_fits):
        obs = by_id[fit.obsid]
        assert [r.tileid for r in rows] == [t.tile_id for t in obs.tiles]
        nan = {r.tileid for r in rows if _nan_row(r)}
        assert nan == data.fits.flagged_tileids(i)
        assert {t.tile_id for t in obs.tiles if t.flagged} <= nan
        extra_failures += len(nan - {t.tile_id for t in obs.tiles if t.flagged})
        if len(nan) == len(rows):
            all_nan += 1
        for r in rows:
            values = _values(r)
            if fit.fitid == REAL_FITID:  # the real NaN rows keep CALIBDATA's zero pol0/pol1
                values = [r.x_delay_m, r.y_delay_m, r.x_intercept, r.y_intercept, *r.x_gains, *r.y_gains]
            if r.tileid in nan:
                assert all(math.isnan(v) for v in values), (fit.fitid, r.tileid)
            else:
                assert all(math.isfinite(v) for v in values), (fit.fitid, r.tileid)
    assert all_nan == 1  # the edge case: one fit where every tile failed
    assert extra_failures > 0  # a few tiles fail in single fits


def test_reference_tile_and_value_ranges(all_fits):
    lines = zeros = 0
    for fit, rows in all_fits:
        good = [r for r in rows if not _nan_row(r)]
        if not good:
            continue
        ref = min(good, key=lambda r: r.tileid)
        assert (ref.x_delay_m, ref.x_intercept, ref.y_delay_m, ref.y_intercept) == (0.0, 0.0, 0.0, 0.0)
        if fit.fitid == REAL_FITID:
            continue
        for r in good:
            assert -math.pi <= r.x_intercept < math.pi and -math.pi <= r.y_intercept < math.pi
            assert len(r.x_gains) == len(r.y_gains) == 24
            assert all(0.05 < g < 5 for g in r.x_gains + r.y_gains)
            for q in (r.x_phase_fit_quality, r.y_phase_fit_quality, r.x_gains_fit_quality, r.y_gains_fit_quality):
                assert 0.0 <= q <= 1.0
            assert r.x_phase_chi2dof > 0 and r.y_phase_sigma_resid > 0
            assert all(s > 0 for s in r.x_gains_sigma_resid + r.y_gains_sigma_resid)
        pq = [r.x_phase_fit_quality for r in good]
        assert np.median(pq) > 0.8
        if all(v == 0.0 for r in good for v in r.x_gains_pol1):
            zeros += 1
        else:
            lines += 1
    assert zeros and lines


def test_gain_lines_pass_through_the_channel_gains(data, all_fits):
    by_id = {o.obsid: o for o in data.observations}
    checked = 0
    for fit, rows in all_fits:
        nu = np.array(by_id[fit.obsid].channels) * 1.28e6
        for r in rows:
            if _nan_row(r) or all(v == 0.0 for v in r.x_gains_pol1):
                continue
            line = np.array(r.x_gains_pol0) + np.array(r.x_gains_pol1) * nu
            assert np.allclose(line, r.x_gains, rtol=1e-9)
            checked += 1
    assert checked


def test_delays_are_stable_with_a_few_changes(data, all_fits):
    """Per tile over the month: cm-level scatter for most, steps/drifts for a few. Only fits whose
    reference is tile 11 are compared (another reference shifts every delay by its offset)."""
    per_tile = defaultdict(list)
    for fit, rows in all_fits:
        good = [r for r in rows if not _nan_row(r)]
        if fit.fitid == REAL_FITID or not good or min(r.tileid for r in good) != 11:
            continue
        for r in good:
            per_tile[r.tileid].append(r.x_delay_m)
    spread = np.array([np.ptp(v) for v in per_tile.values() if len(v) > 20])
    assert np.median(spread) < 0.15  # metres: noise of a few cm
    assert (spread > 0.4).sum() >= 2  # drifting or jumping tiles
    offsets = [np.median(v) for v in per_tile.values()]
    assert np.std(offsets) > 1.0  # cable and fibre offsets of metres


def test_deterministic_for_a_seed():
    a = demo.generate(days=6, seed=7)
    b = demo.generate(days=6, seed=7)
    c = demo.generate(days=6, seed=8)
    assert a.observations == b.observations
    assert a.fits.records == b.fits.records
    for (fa, ra), (fb, rb) in zip(a.fits, b.fits):
        assert fa == fb
        assert all(_same(getattr(x, k), getattr(y, k)) for x, y in zip(ra, rb) for k in SOLUTION_COLUMNS)
    assert [o.obsid for o in a.observations] != [o.obsid for o in c.observations]


def test_fewer_tiles_keep_whole_receivers():
    small = demo.generate(days=3, n_tiles=128, end_gps=demo.REAL_CAL_OBSID - 86400)
    assert small.n_tiles == 128 and not small.real_included
    for obs in small.observations:
        assert set(Counter(t.rx for t in obs.tiles).values()) == {8}
        assert len(obs.tiles) in (128, 64)
    full = [o for o in small.observations if len(o.tiles) == 128]
    # the 16 receivers of the lowest tile ids: the Phase I tiles 11..18, 21..28, .., 161..168
    assert {t.tile_id for t in full[0].tiles} == {10 * a + b for a in range(1, 17) for b in range(1, 9)}
    fit, rows = small.fits[0]
    assert len(rows) == 128
    with pytest.raises(ValueError):
        demo.generate(days=1, n_tiles=100)


def test_a_busier_schedule_for_benchmarks():
    """(6, 10) calibrators a day: the ~11 fits a day that make five years ~20,000 fits."""
    days = 20
    end = demo.REAL_CAL_OBSID - 86400
    usual = demo.generate(days=days, end_gps=end)
    busy = demo.generate(days=days, end_gps=end, calibrators_per_day=(6, 10))
    per_day = Counter(busy.day_of(o.obsid) for o in busy.calibrators)
    assert max(per_day.values()) > len(demo.SOURCES)  # more than one a source on some days
    assert len(busy.fits) / days > 9.5 > 8 > len(usual.fits) / days
    # a source observed twice in a day keeps its observations apart in time
    obs = sorted(busy.observations, key=lambda o: o.obsid)
    assert all(a.stoptime <= b.obsid for a, b in zip(obs, obs[1:]))
    with pytest.raises(ValueError):
        demo.generate(days=1, calibrators_per_day=(5, 4))


# --------------------------------------------------------------------------------------------
# seeding


def test_seed_database_counts_and_values(clean_db, week):
    data = week
    assert demo.is_seeded() is False
    counts = demo.seed_database(data)
    assert demo.is_seeded() is True

    fits = data.fits.records
    n_rows = sum(len(next(o for o in data.observations if o.obsid == f.obsid).tiles) for f in fits)
    assert counts["observations"] == len(data.observations)
    assert counts["fits"] == len(fits) and counts["solutions"] == n_rows
    one = lambda sql: db.query(sql)[0]["n"]  # noqa: E731
    assert one("SELECT count(*) AS n FROM mwa_setting") == len(data.observations)
    assert one("SELECT count(*) AS n FROM schedule_metadata WHERE calibration") == len(data.calibrators)
    assert one("SELECT count(*) AS n FROM rf_stream") == len(data.observations)
    bare = demo.tileless_targets(data)  # every 5th target is seeded without tile rows (its metafits has them)
    assert one("SELECT count(*) AS n FROM observation_tile") == sum(len(o.tiles) for o in data.observations
                                                                    if o.obsid not in bare)
    assert one(f"SELECT count(*) AS n FROM observation_tile WHERE obsid IN ({','.join(map(str, bare))})") == 0
    assert one("SELECT count(*) AS n FROM calibration_fits") == len(fits)
    assert one("SELECT count(DISTINCT fitid) AS n FROM calibration_fits") == len({f.fitid for f in fits})
    assert one("SELECT count(*) AS n FROM calibration_solutions") == n_rows
    gains = {r["g"]: r["n"] for r in db.query(
        "SELECT gain_control_value AS g, count(*) AS n FROM rf_stream GROUP BY 1")}
    assert gains == dict(Counter(o.gain_control_value for o in data.observations))
    sub = next(o for o in data.observations if len(o.tiles) == 128 and o.obsid not in bare)
    assert one(f"SELECT count(*) AS n FROM observation_tile WHERE obsid = {sub.obsid}") == 128

    # seeding again replaces the observations and keeps the fits already there
    again = demo.seed_database(data)
    assert again["fits"] == 0 and again["skipped_fits"] == len(fits)
    assert one("SELECT count(*) AS n FROM calibration_solutions") == n_rows


def test_seeded_real_fit_equals_calibdata(clean_db, week):
    assert week.real_included
    demo.seed_database(week)
    table, _header = _calibdata()
    rows = {r["tileid"]: r for r in db.query(
        "SELECT * FROM calibration_solutions WHERE fitid = :f AND obsid = :o", {"f": REAL_FITID, "o": REAL_CAL})}
    assert len(rows) == 256
    fit = db.query("SELECT * FROM calibration_fits WHERE fitid = :f", {"f": REAL_FITID})
    assert len(fit) == 1 and fit[0]["creator"] == "calvin" and fit[0]["code_version"] == "1.1.3"
    for cell in table:
        row = rows[int(cell["Tile"])]
        p = cell["Pol"].strip().lower() + "_"
        for column, stem in CALIBDATA_SCALARS.items():
            assert _same(row[p + stem], float(cell[column])), (cell["Tile"], column)
        for column, stem in CALIBDATA_ARRAYS.items():
            assert _same(list(row[p + stem]), [float(v) for v in cell[column]]), (cell["Tile"], column)


def test_seeded_generated_fits_equal_the_generated_rows(clean_db, week):
    demo.seed_database(week)
    all_fits = list(week.fits)
    picks = [i for i, (f, _) in enumerate(all_fits) if f.fitid != REAL_FITID][::10]
    picks.append(next(i for i, (f, rows) in enumerate(all_fits) if all(_nan_row(r) for r in rows)))
    for i in picks:
        fit, rows = all_fits[i]
        got = {r["tileid"]: r for r in db.query(
            "SELECT * FROM calibration_solutions WHERE fitid = :f AND obsid = :o", {"f": fit.fitid, "o": fit.obsid})}
        assert len(got) == len(rows)
        for r in rows:
            g = got[r.tileid]
            for c in SOLUTION_COLUMNS[1:]:
                want = getattr(r, c)
                have = g[c]
                assert _same(list(have) if isinstance(have, list) else have, want), (fit.fitid, r.tileid, c)
        stored = db.query("SELECT * FROM calibration_fits WHERE fitid = :f AND obsid = :o",
                          {"f": fit.fitid, "o": fit.obsid})[0]
        assert stored["fit_time"] == fit.fit_time and stored["creator"] == fit.creator


def test_every_fifth_target_is_seeded_without_tiles_and_has_a_metafits(week, tmp_path):
    from chalicelib.formats.metafits import read_metafits

    targets = sorted(o.obsid for o in week.observations if not o.calibration and o.obsid != REAL_TARGET)
    bare = demo.tileless_targets(week)
    assert bare == set(targets[::5]) and len(bare) >= 5
    assert demo.tileless_targets(demo.generate(days=8)) == bare  # deterministic

    assert demo.write_metafits(week, tmp_path, bare) == len(bare)
    by_id = {o.obsid: o for o in week.observations}
    for obsid in sorted(bare)[:3]:
        info = read_metafits((tmp_path / f"{obsid}_metafits.fits").read_bytes())
        obs = by_id[obsid]
        assert info.obsid == obsid and list(info.channels) == list(obs.channels)
        assert [(t.antenna, t.tile_id, t.name, t.rx, t.slot) for t in info.tiles] == \
            [(t.antenna, t.tile_id, t.name, t.rx, t.slot) for t in obs.tiles]
