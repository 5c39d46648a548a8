"""Validity epochs on the time-window plots (timediff, xydiff, gaintimes): drawn when inside the window, in the key.

Hand-built data (summary_fixtures): fit F_CALVIN of A, with fits of C (3 days before A), D (10
days), E (40 days) in the database. Epochs are opened and ended as the admin routes do (db.steering).
"""

from __future__ import annotations

import io
import json
from urllib.parse import urlparse

import numpy as np
import pytest
from chalice.test import Client

from tests import summary_fixtures as fx

DAY = 86400
WINDOWS = {"timediff": 7 * DAY, "gaintimes": 7 * DAY, "xydiff": 30 * DAY}
MAGENTA = "#e377c2"  # the first epoch's colour


@pytest.fixture
def client(clean_db, aws):
    fx.seed()
    from app import app

    with Client(app) as c:
        yield c


def open_epoch(boundary: int, why: str, **scope) -> int:
    from chalicelib.db import steering

    return steering.add_epoch(boundary, why, "test", **scope)["epoch_id"]


def end_epoch(epoch_id: int) -> None:
    from chalicelib.db import steering

    steering.end_epoch(epoch_id, "reverted", "test")


def key(client, kind: str) -> str:
    r = client.http.get(f"/calib/plot/{kind}?fitid={fx.F_CALVIN}&obsid={fx.A}")
    assert r.status_code == 302, r.body
    return urlparse(r.headers["Location"]).path.lstrip("/")


def data(client, kind: str) -> dict:
    r = client.http.get(f"/calib/plot/{kind}?fitid={fx.F_CALVIN}&obsid={fx.A}&format=json")
    assert r.status_code == 200, r.body
    return json.loads(r.body)


def pixels_of(aws, k: str) -> np.ndarray:
    from PIL import Image

    body = aws["s3"].get_object(Bucket="test-products", Key=k)["Body"].read()
    return np.asarray(Image.open(io.BytesIO(body)).convert("RGB")).reshape(-1, 3).astype(int)


def count_colour(px: np.ndarray, hexcol: str) -> int:
    rgb = np.array([int(hexcol[i:i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(px - rgb).sum(axis=1) < 24).sum())


def test_an_epoch_inside_the_window_is_drawn_listed_and_changes_the_key(client, aws):
    before = {k: key(client, k) for k in (*WINDOWS, "tilediff")}
    plain_px = pixels_of(aws, before["timediff"])
    eid = open_epoch(fx.A - 2 * DAY, "receiver 3 swapped after the storm of the 14th")
    after = {k: key(client, k) for k in (*WINDOWS, "tilediff")}
    assert after["tilediff"] == before["tilediff"]  # no time axis: not drawn, key unchanged
    for kind, window in WINDOWS.items():
        assert after[kind] != before[kind], kind
        assert after[kind].startswith(before[kind].rsplit("/", 1)[0] + "-e1-"), (kind, after[kind])
        body = data(client, kind)
        assert [(e["epoch_id"], e["boundary_gps"]) for e in body["epochs"]] == [(eid, fx.A - 2 * DAY)]
        assert body["epochs"][0]["newness"] == pytest.approx(1 - 2 * DAY / window)  # its place in the window
        assert body["epochs"][0]["reason"] == "receiver 3 swapped after the storm of the 14th"
        assert all(t["epochs"] == [eid] for t in body["tiles"])  # a whole-solution epoch: every cell
    # the timediff PNG now has the epoch's lines; without it, it had none of that colour
    assert count_colour(plain_px, MAGENTA) == 0
    assert count_colour(pixels_of(aws, after["timediff"]), MAGENTA) > 200
    for kind in ("xydiff", "gaintimes"):
        assert count_colour(pixels_of(aws, after[kind]), MAGENTA) > 50, kind


def test_an_epoch_outside_the_window_is_not_drawn_and_leaves_the_key(client):
    before = {k: key(client, k) for k in WINDOWS}
    open_epoch(fx.A - 20 * DAY, "in xydiff's 30 days only")
    open_epoch(fx.A - 50 * DAY, "before every window")
    open_epoch(fx.A + DAY, "after the observation")
    after = {k: key(client, k) for k in WINDOWS}
    assert after["timediff"] == before["timediff"] and after["gaintimes"] == before["gaintimes"]
    assert data(client, "timediff")["epochs"] == [] and data(client, "gaintimes")["epochs"] == []
    assert after["xydiff"] != before["xydiff"]
    assert [e["reason"] for e in data(client, "xydiff")["epochs"]] == ["in xydiff's 30 days only"]


def test_an_ended_epoch_is_not_drawn_and_the_key_returns(client):
    before = key(client, "timediff")
    eid = open_epoch(fx.A - DAY, "cable change")
    with_epoch = key(client, "timediff")
    end_epoch(eid)
    assert data(client, "timediff")["epochs"] == []
    assert key(client, "timediff") == before != with_epoch


def test_an_epoch_of_some_receivers_or_tiles_is_drawn_on_their_cells_only(client, aws):
    rx = open_epoch(fx.A - 2 * DAY, "rx3 swap", receivers=(3,))
    tile = open_epoch(fx.A - DAY, "tile 12 recabled", tiles=(12,))
    body = data(client, "timediff")
    assert [e["epoch_id"] for e in body["epochs"]] == [rx, tile]  # by boundary
    cells = {t["tileid"]: t["epochs"] for t in body["tiles"]}
    assert all(cells[t] == [rx] for t in fx.RX3)
    assert cells[12] == [tile] and all(cells[t] == [] for t in fx.RX1 if t != 12) and cells[fx.LOOSE] == []
    px = pixels_of(aws, key(client, "timediff"))  # renders; both epochs' colours are drawn
    assert count_colour(px, MAGENTA) > 50 and count_colour(px, "#17becf") > 10


def test_epochs_in_window_and_their_labels():
    from chalicelib.plots import epochs

    rows = [{"epoch_id": 3, "boundary_gps": 1000, "reason": "b", "receivers": None, "tiles": None},
            {"epoch_id": 1, "boundary_gps": 400, "reason": "a " * 40, "receivers": [2], "tiles": None},
            {"epoch_id": 2, "boundary_gps": 300, "reason": "at the window's start: no fit before it inside"}]
    got = epochs.in_window(rows, obsid=1000, window_s=700)  # window (300, 1000]
    assert [(e["epoch_id"], e["newness"]) for e in got] == [(1, pytest.approx(1 - 600 / 700)), (3, 1.0)]
    assert epochs.label(got[1]) == "epoch 3: b"
    long = epochs.label(got[0])
    assert long.startswith("epoch 1 (some tiles): a a") and long.endswith("…") and len(long) < 60
    assert epochs.tile_epochs(got, tileid=21, rx=2) == [1, 3] and epochs.tile_epochs(got, tileid=21, rx=1) == [3]


def test_many_epochs_keep_the_legend_to_its_row_and_are_all_drawn():
    from chalicelib.plots import epochs, timediff

    rows = [{"epoch_id": i, "boundary_gps": fx.A - i * 3600, "reason": f"swap {i}"} for i in range(1, 8)]
    tile_rows = [{"tileid": t.tile_id, "tile_name": t.name, "rx": t.rx, "slot": t.slot, "flagged": t.flagged}
                 for t in fx.tiles()]
    sols = [{"tileid": t, "x_delay_m": x, "y_delay_m": y}
            for t in fx.solution_tiles(fx.F_CALVIN, fx.A) for x, y in [fx.delay(t, fx.F_CALVIN, fx.A)]]
    d = timediff.compute(tile_rows, sols, [], fitid=fx.F_CALVIN, obsid=fx.A, creator="calvin", epochs=rows)
    assert [e["epoch_id"] for e in d["epochs"]] == [7, 6, 5, 4, 3, 2, 1]  # by boundary, all drawn
    labels = [text for text, _ in epochs.legend_entries(d)]
    assert labels == ["epoch 7: swap 7", "epoch 6: swap 6", "epoch 5: swap 5", "+4 more epochs"]
    assert timediff.render(d)[:8] == b"\x89PNG\r\n\x1a\n"
