"""The data behind each plot (``compute``): which points are drawn for a given tile.

Inputs are hand-built rows (summary_fixtures' formulas); expectations are written out from
the same formulas here, independently of the code under test. No database.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from chalicelib.plots import gains, gaintimes, layout, tilediff, timediff, xydiff
from tests import summary_fixtures as fx

DAY = 86400


def tile_rows(obsid: int) -> list[dict]:
    return [{"tileid": t.tile_id, "tile_name": t.name, "rx": t.rx, "slot": t.slot, "flagged": t.flagged}
            for t in fx.tiles()]


def solution_rows(fitid: int, obsid: int) -> list[dict]:
    out = []
    for tid in fx.solution_tiles(fitid, obsid):
        x, y = fx.delay(tid, fitid, obsid)
        gx, gy = fx.gains(tid, fitid, obsid)
        out.append({"tileid": tid, "x_delay_m": x, "y_delay_m": y, "x_gains": gx, "y_gains": gy})
    return out


def blocks(kind: str = "delays") -> list[dict]:
    """One history block per (fitid, obsid) of the whole data set, as the database gives them."""
    out = []
    for (fitid, obsid), (creator, *_rest) in fx.FITS.items():
        rows = solution_rows(fitid, obsid)
        b = {"fitid": fitid, "obsid": obsid, "creator": creator, "tileid": np.array([r["tileid"] for r in rows])}
        if kind == "delays":
            b["x_delay_m"] = np.array([r["x_delay_m"] for r in rows])
            b["y_delay_m"] = np.array([r["y_delay_m"] for r in rows])
        else:
            b["x_gains"] = np.array([r["x_gains"] for r in rows])
            b["y_gains"] = np.array([r["y_gains"] for r in rows])
        out.append(b)
    return out


def by_tile(data: dict) -> dict[int, dict]:
    return {t["tileid"]: t for t in data["tiles"]}


def alpha(age_s: float, window_s: float) -> float:
    return 0.9 - (0.9 - 0.12) * min(age_s / window_s, 1.0)


# ------------------------------------------------------------------ tilediff


def test_tilediff_draws_the_tile_over_every_other_unflagged_tile():
    data = tilediff.compute(tile_rows(fx.A), solution_rows(fx.F_CALVIN, fx.A), fitid=fx.F_CALVIN, obsid=fx.A,
                            creator="calvin")
    t = by_tile(data)
    assert set(t) == set(fx.RX1 + fx.RX3 + [fx.LOOSE])  # every tile, flagged and missing ones too
    assert (t[12]["x"], t[12]["y"]) == (0.12, -0.06)
    # others: every tile with a value except itself and the flagged one; 38 has no row in this fit
    others = [tid for tid in fx.RX1 + fx.RX3 + [fx.LOOSE] if tid not in (12, fx.FLAGGED, fx.MISSING_IN_CALVIN)]
    assert sorted(t[12]["others_x"].tolist()) == sorted(tid / 100 for tid in others)
    assert sorted(t[12]["others_y"].tolist()) == sorted(-tid / 200 for tid in others)
    assert t[fx.FLAGGED]["flagged"] and t[fx.FLAGGED]["no_data"] and math.isnan(t[fx.FLAGGED]["x"])
    assert not t[fx.MISSING_IN_CALVIN]["flagged"] and t[fx.MISSING_IN_CALVIN]["no_data"]
    assert t[fx.LOOSE]["rx"] is None and t[fx.LOOSE]["x"] == 0.99
    assert len(t[fx.FLAGGED]["others_x"]) == len(others) + 1  # a flagged tile still sees all others


def test_tilediff_leaves_a_flagged_tiles_finite_values_out_of_the_background():
    rows = solution_rows(fx.F_CALVIN, fx.A)
    for r in rows:
        if r["tileid"] == fx.FLAGGED:
            r["x_delay_m"], r["y_delay_m"] = 5.0, 6.0  # flagged in the metafits, yet fitted
    t = by_tile(tilediff.compute(tile_rows(fx.A), rows, fitid=fx.F_CALVIN, obsid=fx.A))
    assert 5.0 not in t[12]["others_x"].tolist()
    assert t[fx.FLAGGED]["x"] == 5.0  # its own circle is still drawn (and marked flagged)


# ------------------------------------------------------------------ timediff


def test_timediff_history_is_the_other_fits_of_the_previous_7_days():
    data = timediff.compute(tile_rows(fx.A), solution_rows(fx.F_CALVIN, fx.A), blocks(), fitid=fx.F_CALVIN,
                            obsid=fx.A, creator="calvin")
    assert data["window_s"] == 7 * DAY
    t = by_tile(data)[12]
    assert (t["x"], t["y"]) == (0.12, -0.06)
    h = t["history"]
    # in [A - 7 d, A]: the mwa fit of A (a re-fit, age 0) and both fits of C (3 days before);
    # not D (10 days), E (40 days), G (after A), nor this fit itself. Oldest first, then fitid.
    assert list(zip(h["fitid"].tolist(), h["obsid"].tolist())) == [
        (fx.F_C_MWA, fx.C), (fx.F_C_CALVIN, fx.C), (fx.F_MWA, fx.A)]
    assert h["creator"] == ["mwa", "calvin", "mwa"]
    assert h["age_s"].tolist() == [3 * DAY, 3 * DAY, 0]
    assert h["x"].tolist() == pytest.approx([0.12 + 0.3, 0.12 + 0.2, 0.12 + 0.05])
    assert h["y"].tolist() == pytest.approx([-0.06 - 0.1, -0.06 - 0.2, -0.06 + 0.02])
    assert h["alpha"].tolist() == pytest.approx([alpha(3 * DAY, 7 * DAY)] * 2 + [0.9])
    # the flagged tile has nothing anywhere; the loose tile has its history too
    assert len(by_tile(data)[fx.FLAGGED]["history"]["fitid"]) == 0
    assert len(by_tile(data)[fx.LOOSE]["history"]["fitid"]) == 3


def test_timediff_of_an_older_fit_sees_only_its_own_past():
    data = timediff.compute(tile_rows(fx.C), solution_rows(fx.F_C_CALVIN, fx.C), blocks(), fitid=fx.F_C_CALVIN,
                            obsid=fx.C, creator="calvin")
    h = by_tile(data)[12]["history"]
    # D is exactly 7 days before C: the window's edge is included (faintest); A and G are later
    assert h["fitid"].tolist() == [fx.F_D, fx.F_C_MWA]
    assert h["alpha"].tolist() == pytest.approx([0.12, 0.9])


# ------------------------------------------------------------------ xydiff


def test_xydiff_is_x_minus_y_over_30_days():
    data = xydiff.compute(tile_rows(fx.A), solution_rows(fx.F_CALVIN, fx.A), blocks(), fitid=fx.F_CALVIN,
                          obsid=fx.A, creator="calvin")
    assert data["window_s"] == 30 * DAY
    t = by_tile(data)[31]
    assert t["xy"] == pytest.approx(0.31 + 0.155)
    h = t["history"]
    assert list(zip(h["fitid"].tolist(), h["obsid"].tolist())) == [
        (fx.F_D, fx.D), (fx.F_C_MWA, fx.C), (fx.F_C_CALVIN, fx.C), (fx.F_MWA, fx.A)]  # E is 40 days back
    assert h["xy"].tolist() == pytest.approx([0.465 + 0.3, 0.465 + 0.4, 0.465 + 0.4, 0.465 + 0.03])
    assert h["alpha"][0] == pytest.approx(alpha(10 * DAY, 30 * DAY))
    assert math.isnan(by_tile(data)[fx.FLAGGED]["xy"]) and by_tile(data)[fx.FLAGGED]["no_data"]


# ------------------------------------------------------------------ gains


def test_gains_are_each_tiles_x_and_y_over_the_channels():
    data = gains.compute(tile_rows(fx.A), solution_rows(fx.F_CALVIN, fx.A), channels=fx.CONTIGUOUS[::-1],
                         fitid=fx.F_CALVIN, obsid=fx.A, creator="calvin")
    assert data["channels"] == fx.CONTIGUOUS and data["n_channels"] == 24  # sorted: the gains order
    t = by_tile(data)
    assert t[12]["x_gains"].tolist() == pytest.approx([1.012 + k / 100 for k in range(24)])
    assert t[12]["y_gains"].tolist() == pytest.approx([1.512 + k / 100 for k in range(24)])
    assert np.isnan(t[fx.FLAGGED]["x_gains"]).all() and t[fx.FLAGGED]["no_data"]
    assert np.isnan(t[fx.MISSING_IN_CALVIN]["y_gains"]).all() and t[fx.MISSING_IN_CALVIN]["no_data"]


# ------------------------------------------------------------------ gaintimes


def test_gaintimes_history_per_tile_and_channel():
    data = gaintimes.compute(tile_rows(fx.A), solution_rows(fx.F_CALVIN, fx.A), blocks("gains"),
                             channels=fx.CONTIGUOUS, channels_by_obs=fx.CHANNELS, fitid=fx.F_CALVIN, obsid=fx.A,
                             creator="calvin")
    t = by_tile(data)[12]
    h = t["history"]
    assert list(zip(h["fitid"].tolist(), h["obsid"].tolist())) == [
        (fx.F_C_MWA, fx.C), (fx.F_C_CALVIN, fx.C), (fx.F_MWA, fx.A)]
    assert h["x_gains"].shape == (3, 24)
    assert h["x_gains"][0].tolist() == pytest.approx([1.012 + k / 100 + 0.03 for k in range(24)])
    assert h["y_gains"][2].tolist() == pytest.approx([1.512 + k / 100 + 0.01 for k in range(24)])
    assert h["alpha"].tolist() == pytest.approx([alpha(3 * DAY, 7 * DAY)] * 2 + [0.9])


def test_gaintimes_matches_channels_by_number_not_position():
    # fit F_MWA of B (picket fence 55, 60, .., 170) against A's fits (109..132): shared channels
    # are 110, 115, 120, 125, 130 only
    data = gaintimes.compute(tile_rows(fx.B), solution_rows(fx.F_MWA, fx.B), blocks("gains"), channels=fx.PICKET,
                             channels_by_obs=fx.CHANNELS, fitid=fx.F_MWA, obsid=fx.B, creator="mwa")
    h = by_tile(data)[12]["history"]
    rows = {(f, o): i for i, (f, o) in enumerate(zip(h["fitid"].tolist(), h["obsid"].tolist()))}
    assert set(rows) == {(fx.F_C_MWA, fx.C), (fx.F_C_CALVIN, fx.C), (fx.F_CALVIN, fx.A), (fx.F_MWA, fx.A)}
    g = h["x_gains"][rows[(fx.F_CALVIN, fx.A)]]
    for k, ch in enumerate(fx.PICKET):
        if 109 <= ch <= 132:
            assert g[k] == pytest.approx(1.012 + (ch - 109) / 100), ch  # A's gains index = ch - 109
        else:
            assert math.isnan(g[k]), ch
    assert int(np.isfinite(g).sum()) == 5


def test_gaintimes_without_channel_numbers_matches_by_position_only_when_lengths_agree():
    align = gaintimes.aligner(None, 3, {})
    blk = {"obsid": 1, "tileid": [5, 6], "x_gains": [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]}
    assert align(blk, "x_gains").tolist() == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    blk = {"obsid": 1, "tileid": [5], "x_gains": [[1.0, 2.0]]}
    assert np.isnan(align(blk, "x_gains")).all()


# ------------------------------------------------------------------ layout


def test_layout_by_receiver_and_slot():
    refs = layout.tile_refs(tile_rows(fx.A), [fx.LOOSE])
    gs = layout.groups(refs)
    assert [g.label for g in gs] == ["Rx 1", "Rx 3", "Rx ?"]
    assert [c.tileid for c in gs[0].cells] == fx.RX1
    rows, where = layout.places(refs)
    assert len(rows) == 1
    assert where[11].x == 0 and where[18].x == 7 and where[31].x == 8 and where[fx.LOOSE].x == 16


def test_layout_of_256_tiles_is_8_rows_of_4_receivers():
    tiles = [layout.TileRef(tileid=1000 + i, name=f"T{i}", rx=i // 8 + 1, slot=i % 8 + 1, flagged=False)
             for i in range(256)]
    rows, where = layout.places(tiles)
    assert len(rows) == 8 and all(len(r) == 4 for r in rows)
    assert where[1000 + 255] == layout.Place(row=7, x=31.0)
    # a receiver with a gap keeps slot positions; a repeated slot keeps the tile after the others
    odd = [layout.TileRef(1, "a", 2, 1, False), layout.TileRef(2, "b", 2, 3, False),
           layout.TileRef(3, "c", 2, 3, False)]
    g = layout.groups(odd)[0]
    assert [c.tileid if c else None for c in g.cells] == [1, None, 2, None, None, None, None, None, 3]


def test_robust_limits_and_fading():
    v = np.concatenate([np.linspace(-1, 1, 500), [-260.0, -255.0]])
    lo, hi = layout.robust_limits(v)
    assert -3 < lo < -1 and 1 < hi < 3  # the two outliers are drawn at the edge instead
    lo, hi = layout.robust_limits([0.0, 1.0])
    assert lo < 0 and hi > 1
    assert layout.robust_limits([math.nan]) == (-1.0, 1.0)
    assert layout.fade_alpha(0, 7 * DAY) == pytest.approx(0.9)
    assert layout.fade_alpha(7 * DAY, 7 * DAY) == pytest.approx(0.12)
    assert layout.creator_colour("mwa", "x") != layout.creator_colour("calvin", "x")


def test_empty_and_all_failed_fits_still_render():
    from tests.plot_images import check_png

    empty = tilediff.compute([], [], fitid=1, obsid=2)
    assert empty["tiles"] == []
    assert tilediff.render(empty)[:4] == b"\x89PNG"
    rows = [{"tileid": t, "x_delay_m": math.nan, "y_delay_m": math.nan, "x_gains": [math.nan] * 24,
             "y_gains": None} for t in fx.RX1]
    d = gains.compute(tile_rows(fx.A)[:8], rows, channels=None, fitid=1, obsid=2)
    assert d["n_channels"] == 24 and all(t["no_data"] for t in d["tiles"])
    check_png(gains.render(d), min_height=300)
    d = timediff.compute(tile_rows(fx.A)[:8], rows, [], fitid=1, obsid=2)
    assert all(len(t["history"]["fitid"]) == 0 for t in d["tiles"])
    assert timediff.render(d)[:4] == b"\x89PNG"


def test_the_same_data_gives_the_same_png_in_every_process():
    """Earlier fits of several creators are drawn in a fixed order, not in a set's hash order.

    Two earlier fits of one observation with the same values but different creators put their
    faded points on the same pixels: which is drawn last decides the colour seen."""
    import hashlib
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = (
        "import hashlib\n"
        "from tests.test_plots_data import blocks, solution_rows, tile_rows\n"
        "from tests import summary_fixtures as fx\n"
        "from chalicelib.plots import timediff\n"
        "history = blocks()\n"
        "twin = next(b for b in history if b['creator'] == 'mwa' and b['obsid'] == fx.C)\n"
        "history.append({**twin, 'fitid': twin['fitid'] + 1, 'creator': 'calvin'})\n"
        "data = timediff.compute(tile_rows(fx.A), solution_rows(fx.F_CALVIN, fx.A), history, fitid=fx.F_CALVIN,"
        " obsid=fx.A, creator='calvin')\n"
        "assert {c for t in data['tiles'] for c in t['history']['creator']} >= {'mwa', 'calvin'}\n"
        "print(hashlib.sha256(timediff.render(data)).hexdigest())\n"
    )
    root = Path(__file__).resolve().parent.parent
    digests = set()
    for seed in ("1", "2", "3", "4", "5", "6"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", script], cwd=root, env=env, capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        digests.add(out.stdout.strip())
    assert len(digests) == 1 and len(next(iter(digests))) == len(hashlib.sha256().hexdigest())


@pytest.mark.parametrize("receivers, loose", [(0, 0), (2, 1), (5, 0), (16, 3), (32, 0)])
def test_a_plots_pixel_size_is_known_before_it_is_drawn(receivers, loose):
    """What the fit page writes in <img width height> is the size of the PNG that is then drawn:
    1440 px wide, and one more row of receivers per 4 receivers (or 8 loose tiles)."""
    import io

    from PIL import Image

    from chalicelib.plots import figure

    rows = [{"tileid": 100 * rx + s, "tile_name": f"T{rx}-{s}", "rx": rx, "slot": s, "flagged": False}
            for rx in range(1, receivers + 1) for s in range(1, 9)]
    sols = [{"tileid": r["tileid"], "x_delay_m": 0.1, "y_delay_m": -0.1} for r in rows]
    sols += [{"tileid": 9000 + i, "x_delay_m": 0.2, "y_delay_m": 0.3} for i in range(loose)]  # no receiver
    announced = figure.pixel_size(layout.tile_refs(rows, [s["tileid"] for s in sols]))
    png = tilediff.render(tilediff.compute(rows, sols, fitid=1, obsid=2))
    drawn = Image.open(io.BytesIO(png)).size
    assert announced == drawn
    groups = receivers + math.ceil(loose / 8)
    row_count = max(1, math.ceil(groups / 4))
    assert drawn[0] == 1440
    if row_count > 1:  # each further row adds the same height
        one_row = figure.pixel_size(layout.tile_refs(rows[:8], []))[1]
        per_row = (drawn[1] - one_row) / (row_count - 1)
        assert per_row == pytest.approx(285, abs=1)  # 1.9 in of axes + 0.95 in of labels, at 100 dpi
