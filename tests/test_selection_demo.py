"""interpolate=1 and the selection explanation end to end on the demo data (devstack.demo, 8 days, the real array).

The target and its two calibrators are found here from the generated records with the selection
rules written out (same attenuation, channels covered, within a day, a fit with a solved tile;
the nearest on each side, its most recent fit), and the served Jones are checked against the
interpolation formulas evaluated here from the two fits' generated rows.
"""

from __future__ import annotations

import cmath
import json
import math

import numpy as np
import pytest

from tests.served_files import fetch_zip, read_bin

C = 299792458.0
DAY = 86400


@pytest.fixture
def client(demo_client):
    return demo_client


def _fits_of(data) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for i, s in enumerate(data.fits.specs):
        out.setdefault(s.fit.obsid, []).append(i)
    return out


def _solved_somewhere(data, i) -> bool:
    f, rows = data.fits[i]
    return any(not (math.isnan(r.x_delay_m) and math.isnan(r.y_delay_m)) for r in rows)


def _ran(fit) -> float:
    return fit.fit_time.timestamp()


def _sides(data):
    """(target, cal before, fit index, cal after, fit index) of the first 256-tile target between two calibrators
    of one source, by the rules written out here."""
    fits = _fits_of(data)
    usable = {o: [i for i in idx if _solved_somewhere(data, i)] for o, idx in fits.items()}
    cals = [o for o in data.calibrators if usable.get(o.obsid)]
    for t in sorted((o for o in data.observations if not o.calibration and len(o.tiles) == 256),
                    key=lambda o: o.obsid):
        q = [c for c in cals if c.gain_control_value == t.gain_control_value and set(t.channels) <= set(c.channels)
             and abs(c.obsid - t.obsid) <= DAY]
        before = [c for c in q if c.obsid < t.obsid]
        after = [c for c in q if c.obsid > t.obsid]
        if not before or not after:
            continue
        b, a = max(before, key=lambda c: c.obsid), min(after, key=lambda c: c.obsid)
        if b.calibrators != a.calibrators:
            continue

        def newest(c):
            return max(usable[c.obsid], key=lambda i: (_ran(data.fits.specs[i].fit), data.fits.specs[i].fit.fitid))
        return t, b, newest(b), a, newest(a)
    pytest.fail("the demo has no target between two calibrators of one source")


def _pol(rows, cal_channels, target_channels, pol):
    """{tileid: (delay, intercept, gains, pol0, pol1)} over the target's channels (pol0/pol1 zeros when absent)."""
    k = [sorted(cal_channels).index(ch) for ch in sorted(target_channels)]
    out = {}
    for r in rows:
        g = np.asarray(getattr(r, f"{pol}_gains"), float)[k]
        p0, p1 = (getattr(r, f"{pol}_gains_pol{n}") for n in (0, 1))
        p0 = np.zeros(len(k)) if not p0 else np.asarray(p0, float)[k]
        p1 = np.zeros(len(k)) if not p1 else np.asarray(p1, float)[k]
        out[r.tileid] = (getattr(r, f"{pol}_delay_m"), getattr(r, f"{pol}_intercept"), g, p0, p1)
    return out


def _amplitude(side, nu, n_fine):
    """1/|J| per fine channel: the straight line where pol0/pol1 are set, else the channel's gain; None unusable."""
    _, _, g, p0, p1 = side
    if not (np.all(np.isfinite(g)) and np.all(np.isfinite(p0)) and np.all(np.isfinite(p1))):
        return None
    line = (p0 != 0) | (p1 != 0)
    return np.where(np.repeat(line, n_fine), np.repeat(p0, n_fine) + np.repeat(p1, n_fine) * nu, np.repeat(g, n_fine))


def _expected_pol(b, a, w, tile_ids, nu, n_fine):
    """One pol's diagonal Jones of every target tile: both sides referred to the lowest tile both solve, combined."""
    def solved(side, t):
        return t in side and not (math.isnan(side[t][0]) or math.isnan(side[t][1]))

    both = sorted(t for t in set(b) & set(a) if solved(b, t) and solved(a, t))
    if both:
        r = both[0]
        b = {t: (v[0] - b[r][0], v[1] - b[r][1], *v[2:]) for t, v in b.items()}
        a = {t: (v[0] - a[r][0], v[1] - a[r][1], *v[2:]) for t, v in a.items()}
    out = np.full((len(tile_ids), nu.size), complex(np.nan, np.nan))
    for n, t in enumerate(tile_ids):
        sb, sa = solved(b, t), solved(a, t)
        if sb and sa:
            d = w * b[t][0] + (1 - w) * a[t][0]
            i = cmath.phase(w * cmath.exp(1j * b[t][1]) + (1 - w) * cmath.exp(1j * a[t][1]))
            ab, aa = _amplitude(b[t], nu, n_fine), _amplitude(a[t], nu, n_fine)
            amp = (w * ab + (1 - w) * aa) if ab is not None and aa is not None else (ab if ab is not None else aa)
        elif sb or sa:
            side = b[t] if sb else a[t]
            d, i, amp = side[0], side[1], _amplitude(side, nu, n_fine)
        else:
            continue
        if amp is None:
            continue
        out[n] = np.exp(1j * (i - 2 * np.pi * nu * d / C)) / amp
    return out


def test_a_target_between_two_calibrators_of_one_source_gets_the_interpolated_bin(client, demo_data):
    t, b, ib, a, ia = _sides(demo_data)
    (fit_b, rows_b), (fit_a, rows_a) = demo_data.fits[ib], demo_data.fits[ia]
    w = (a.obsid - t.obsid) / (a.obsid - b.obsid)
    assert 0 < w < 1
    z = fetch_zip(client, f"/calib/get_cal_solution?obs_id={t.obsid}&interpolate=1&nocache=1")
    name = f"{b.obsid}_{a.obsid}.bin"
    assert name in z.namelist()
    jones, start, end = read_bin(z.read(name))
    assert (start, end) == (b.obsid, a.stoptime)
    n_fine = 32
    nu = np.array([c * 1.28e6 - 640e3 + k * 40e3 for c in sorted(t.channels) for k in range(n_fine)])
    tile_ids = [x.tile_id for x in sorted(t.tiles, key=lambda x: x.antenna)]
    assert jones.shape == (1, len(tile_ids), nu.size, 4)
    xx = _expected_pol(_pol(rows_b, b.channels, t.channels, "x"), _pol(rows_a, a.channels, t.channels, "x"),
                       w, tile_ids, nu, n_fine)
    yy = _expected_pol(_pol(rows_b, b.channels, t.channels, "y"), _pol(rows_a, a.channels, t.channels, "y"),
                       w, tile_ids, nu, n_fine)
    bad = np.isnan(xx) | np.isnan(yy)
    got = jones[0]
    assert np.array_equal(np.isnan(got[:, :, 0]), bad)
    ok = ~bad
    assert ok.sum() > 100 * nu.size  # most tiles are solved
    np.testing.assert_allclose(got[:, :, 0][ok], xx[ok], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got[:, :, 3][ok], yy[ok], rtol=1e-9, atol=1e-12)
    flagged = [n for n in range(len(tile_ids)) if bad[n].all()]
    assert [int(x) for x in z.read(f"{t.obsid}_flagged_tiles.txt").decode().split()] == flagged
    note = z.read(f"{t.obsid}_flags.py").decode()
    assert f"fit {fit_b.fitid}" in note and f"fit {fit_a.fitid}" in note

    r = client.http.get(f"/calib/get_cal_selection?obs_id={t.obsid}&interpolate=1")
    choice = json.loads(r.body)["choice"]
    assert choice["mode"] == "interpolated"
    assert (choice["before"]["fitid"], choice["after"]["fitid"]) == (fit_b.fitid, fit_a.fitid)
    assert choice["before"]["weight"] == pytest.approx(w, abs=1e-15)


def _target_with_a_rejected_nearer_calibrator(data):
    """The first target whose nearest calibrator differs in attenuation or channels, while a farther one serves it."""
    usable = {o for o, idx in _fits_of(data).items() if any(_solved_somewhere(data, i) for i in idx)}
    for t in sorted((o for o in data.observations if not o.calibration), key=lambda o: o.obsid):
        near = sorted((c for c in data.calibrators if abs(c.obsid - t.obsid) <= DAY),
                      key=lambda c: (abs(c.obsid - t.obsid), c.obsid))
        good = [c for c in near if c.obsid in usable and c.gain_control_value == t.gain_control_value
                and set(t.channels) <= set(c.channels)]
        if good and near[0] is not good[0] and near[0].obsid in usable:
            return t, near, good[0]
    pytest.fail("the demo has no target with a rejected nearer calibrator")


def test_the_explanation_names_why_a_nearer_calibrator_was_rejected(client, demo_data):
    """A target whose nearest calibrator (by time) is not used: the explanation says why, and the page shows it."""
    t, near, chosen = _target_with_a_rejected_nearer_calibrator(demo_data)
    r = client.http.get(f"/calib/get_cal_selection?obs_id={t.obsid}")
    body = json.loads(r.body)
    assert [c["cal_id"] for c in body["calibrators"]] == [c.obsid for c in near]
    assert body["choice"]["cal_id"] == chosen.obsid
    first, cal = body["calibrators"][0], near[0]
    assert not first["accepted"] and first["reason"]
    if cal.gain_control_value != t.gain_control_value:
        assert first["code"] == "attenuation" and str(cal.gain_control_value) in first["reason"]
    else:
        assert first["code"] == "channels"
        assert str(sorted(set(t.channels) - set(cal.channels))) in first["reason"]
    page = client.http.get(f"/calib/selection?obs_id={t.obsid}").body.decode()
    assert first["reason"] in page.replace("&#39;", "'")


def test_an_empty_default_week_names_the_newest_fit_and_links_its_week(client, demo_data):
    import html
    import re

    records = demo_data.fits.records
    newest_obs = max(f.obsid for f in records)
    newest = max((f for f in records if f.obsid == newest_obs), key=lambda f: (f.fit_time, f.fitid))
    page = client.http.get("/calib/summary").body.decode()  # the last 7 days: long after the demo's March
    assert 'id="fits"' not in page
    note = re.search(r'<p id="newest-fit">(.*?)</p>', page, re.S)
    assert note and str(newest.fitid) in note.group(1)
    link = html.unescape(re.search(r'href="(summary\?[^"]+)"', note.group(1)).group(1))
    assert link == f"summary?start={newest_obs - 7 * DAY}&end={newest_obs}"
    week = client.http.get("/calib/" + link).body.decode()
    assert 'id="fits"' in week and 'id="newest-fit"' not in week
    assert f'href="selection?obs_id={newest_obs}"' in week  # every obsid links its selection page
    assert client.http.get(f"/calib/selection?obs_id={newest_obs}").status_code == 200
