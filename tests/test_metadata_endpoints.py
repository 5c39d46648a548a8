"""The endpoints on a database like the MWA's: no observation_tile rows at all, tiles from the metadata service.

The database holds only the MWA tables' rows (mwa_setting, schedule_metadata, rf_stream,
calibration_fits, calibration_solutions); the devstack metadata server (a real HTTP server on
loopback) serves the real fixture metafits. get_cal_solution, get_cal_fits, the deprecated endpoints,
the fit page and a plot all answer, with the tiles of the metafits (compared with TILEDATA read
straight from the files). A metadata service that is down, slow, says 404, sends garbage or 50 MB
gives the documented answer through the endpoints, within the time limit.
"""

from __future__ import annotations

import io
import socket
import threading
import time
import zipfile
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import requests
from astropy.io import fits
from chalice.test import Client

from chalicelib import db
from chalicelib.formats.metafits import calibdata_rows, fit_from_metafits, read_metafits
from tests.factories import fit, observation, seed, solution_rows
from tests.flag_script import tiles_flagged
from tests.metadata_support import FETCHED, metafits_path, tiledata

TARGET = 1457904016  # a real target metafits (256 tiles, channels 109..132) whose CALIBDATA holds a real fit
TARGET_CAL = 1457865688  # that fit's calibrator: the metadata service has no metafits of it
SITE_FIT = 1_700_000_000_000_000  # a site-pipeline fit of the calibrator FETCHED (144 tiles, channels 157..180)
FIFTY_MB = 50 * 1024 * 1024
TOTAL_S = 2  # CALIB_METADATA_TOTAL_TIMEOUT_S in the misbehaving-service tests
SLOW_S = 10  # how long the slow service waits before it answers
BOUND_S = TOTAL_S + 3.5  # the fetch's limit plus the endpoint's own work on a busy test machine; < SLOW_S


@pytest.fixture
def client(clean_db, aws):
    from app import app

    with Client(app) as c:
        yield c


def seed_mwa_tables() -> None:
    """The target only in mwa_setting/schedule_metadata (not in rf_stream); two calibrators with fits; no tiles."""
    info = read_metafits(metafits_path(TARGET))
    real_fit = fit_from_metafits(info)
    assert real_fit.obsid == TARGET_CAL
    fetched_tiles = [t[1] for t in tiledata(FETCHED)]
    seed([observation(TARGET_CAL, calibration=True, channels=range(109, 133), tiles=[]),
          observation(FETCHED, calibration=True, channels=range(157, 181), tiles=[], name="Cal_3C444_Ch169")],
         [(real_fit, calibdata_rows(info)),
          (fit(SITE_FIT, FETCHED), solution_rows(fetched_tiles, nan_tiles=fetched_tiles[:3]))])
    db.execute("INSERT INTO mwa_setting (starttime, stoptime, obsname) VALUES (:o, :s, 'psr')",
               {"o": TARGET, "s": TARGET + 600})
    db.execute("INSERT INTO schedule_metadata (observation_number, calibration) VALUES (:o, false)", {"o": TARGET})
    assert db.query("SELECT count(*) AS n FROM observation_tile")[0]["n"] == 0
    assert db.query("SELECT count(*) AS n FROM rf_stream WHERE starttime = :o", {"o": TARGET})[0]["n"] == 0


def fetch_zip(client, path: str) -> zipfile.ZipFile:
    r = client.http.get(path)
    assert r.status_code == 302, r.body
    got = requests.get(r.headers["Location"], timeout=10)  # moto serves the presigned URL
    assert got.status_code == 200
    return zipfile.ZipFile(io.BytesIO(got.content))


def bin_antennas(data: bytes) -> int:
    """The AO-cal header's antenna count (domain.md layout)."""
    import struct

    return struct.unpack_from("<6I", data, 8)[3]


def names_by_antenna(obsid: int) -> list[str]:
    return [t[2] for t in tiledata(obsid)]


def test_get_cal_solution_takes_the_target_and_its_tiles_from_the_metadata_service(client, local_metadata, tmp_path):
    seed_mwa_tables()

    z = fetch_zip(client, f"/calib/get_cal_solution?obs_id={TARGET}")

    assert bin_antennas(z.read(f"{TARGET_CAL}.bin")) == len(tiledata(TARGET)) == 256
    listed = [int(x) for x in z.read(f"{TARGET}_flagged_tiles.txt").decode().split()]
    with fits.open(metafits_path(TARGET)) as hdus:  # the fit's failed tiles: NaN delays in CALIBDATA
        cd = hdus["CALIBDATA"].data
        failed = {int(r["Tile"]) for r in cd if np.isnan(float(r["Calib_Delay"]))}
    antenna_of = {t[1]: t[0] for t in tiledata(TARGET)}
    assert listed == sorted(antenna_of[t] for t in failed) and listed
    names = names_by_antenna(TARGET)
    assert tiles_flagged(z.read(f"{TARGET}_flags.py").decode(), names, tmp_path) == [names[a] for a in listed]
    assert local_metadata.requests == [f"/metadata/fits?obs_id={TARGET}"]  # fetched once, then the stored copy

    r = client.http.get(f"/calib/get_cal_fits?obs_id={TARGET}")
    assert r.status_code == 200, r.body
    assert str(TARGET_CAL) in r.body.decode()
    assert len(local_metadata.requests) == 1


def test_the_deprecated_obsid_endpoint_serves_the_fetched_metafits_with_the_fit(client, local_metadata):
    seed_mwa_tables()

    z = fetch_zip(client, f"/calib/get_calfile_for_obsid?obs_id={TARGET}")

    assert bin_antennas(z.read(f"{TARGET_CAL}.bin")) == 256
    with fits.open(io.BytesIO(z.read(f"{TARGET}.metafits"))) as got, fits.open(metafits_path(TARGET)) as real:
        assert got[0].header["GPSTIME"] == TARGET
        assert got[0].header["CHANNELS"] == real[0].header["CHANNELS"]
        assert [str(n).strip() for n in got["TILEDATA"].data["TileName"]] == \
            [str(n).strip() for n in real["TILEDATA"].data["TileName"]]  # the published file, not a generated one
    assert local_metadata.requests == [f"/metadata/fits?obs_id={TARGET}"]


def test_the_deprecated_calid_endpoint_and_a_zero_separation_solution_use_the_calibrators_metafits(
        client, local_metadata, tmp_path):
    seed_mwa_tables()
    names = names_by_antenna(FETCHED)

    for path in (f"/calib/get_calfile_for_calid?cal_id={FETCHED}",
                 f"/calib/get_cal_solution?obs_id={FETCHED}&max_time_separation=0"):
        z = fetch_zip(client, path)
        assert bin_antennas(z.read(f"{FETCHED}.bin")) == 144
        listed = [int(x) for x in z.read(f"{FETCHED}_flagged_tiles.txt").decode().split()]
        assert listed == [0, 1, 2]  # the three tiles the fit failed on, first in Antenna order
        assert tiles_flagged(z.read(f"{FETCHED}_flags.py").decode(), names, tmp_path) == names[:3]
    assert local_metadata.requests == [f"/metadata/fits?obs_id={FETCHED}"]


def test_the_fit_page_and_plots_show_the_receivers_and_names_of_the_metafits(client, local_metadata):
    seed_mwa_tables()
    real = tiledata(FETCHED)

    r = client.http.get(f"/calib/fit?fitid={SITE_FIT}&format=json")

    assert r.status_code == 200, r.body
    body = r.json_body
    assert [row["rx"] for row in body["receivers"]] == sorted({t[3] for t in real})
    by_id = {row["tileid"]: row for row in body["tiles"]}
    assert {tid: (row["tile_name"], row["rx"], row["slot"]) for tid, row in by_id.items()} == \
        {t[1]: (t[2], t[3], t[4]) for t in real}
    html = client.http.get(f"/calib/fit?fitid={SITE_FIT}")
    assert html.status_code == 200 and real[5][2] in html.body.decode()

    plot = client.http.get(f"/calib/plot/tilediff?fitid={SITE_FIT}&obsid={FETCHED}&format=json")
    assert plot.status_code == 200, plot.body
    assert sorted((t["tileid"], t["name"], t["rx"]) for t in plot.json_body["tiles"]) == \
        sorted((t[1], t[2], t[3]) for t in real)
    assert local_metadata.requests == [f"/metadata/fits?obs_id={FETCHED}"]


# ---------------------------------------------------------------------------------------------
# The metadata service misbehaving, seen through the endpoints


class Scripted:
    """A real HTTP server on 127.0.0.1 whose GET answer is a function of the handler."""

    def __init__(self, answer: Callable[[BaseHTTPRequestHandler], None]) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                try:
                    answer(self)
                except OSError:  # the client went away
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/metadata/fits?obs_id="

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _send(h: BaseHTTPRequestHandler, status: int, body: bytes) -> None:
    h.send_response(status)
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)


def _slow(h: BaseHTTPRequestHandler) -> None:
    time.sleep(SLOW_S)
    _send(h, 200, metafits_path(TARGET).read_bytes())


def _fifty_mb(declare: bool) -> Callable[[BaseHTTPRequestHandler], None]:
    def answer(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        if declare:
            h.send_header("Content-Length", str(FIFTY_MB))
        h.end_headers()
        chunk = bytes(256 * 1024)
        for _ in range(FIFTY_MB // len(chunk)):
            h.wfile.write(chunk)
    return answer


CASES = {
    "down": (None, 503, "cannot be reached"),
    "slow": (_slow, 503, "timed out"),
    "404": (lambda h: _send(h, 404, b"no such observation"), 400, "does not exist"),
    "garbage": (lambda h: _send(h, 200, b"<html>Service temporarily unavailable</html>"), 503,
                "not a readable metafits"),
    "50 MB declared": (_fifty_mb(True), 503, "bytes"),
    "50 MB undeclared": (_fifty_mb(False), 503, "bytes"),
}
ENDPOINTS = ("get_cal_solution", "get_cal_fits", "get_calfile_for_obsid")


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("case", list(CASES))
def test_a_misbehaving_metadata_service_gives_the_documented_answer_in_bounded_time(client, aws, monkeypatch,
                                                                                     endpoint, case):
    seed_mwa_tables()
    answer, status, says = CASES[case]
    server = Scripted(answer) if answer else None
    if server is None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{s.getsockname()[1]}/metadata/fits?obs_id="  # closed again: nothing listens
    else:
        url = server.url
    monkeypatch.setenv("CALIB_METADATA_URL", url)
    monkeypatch.setenv("CALIB_METADATA_ALLOW_HOSTS", "127.0.0.1")
    monkeypatch.setenv("CALIB_METADATA_CONNECT_TIMEOUT_S", "1")
    monkeypatch.setenv("CALIB_METADATA_TOTAL_TIMEOUT_S", str(TOTAL_S))
    try:
        t0 = time.monotonic()
        r = client.http.get(f"/calib/{endpoint}?obs_id={TARGET}")
        elapsed = time.monotonic() - t0
    finally:
        if server is not None:
            server.stop()

    assert r.status_code == status, r.body
    body = r.json_body
    assert set(body) >= {"error", "message"} and says in body["message"], body
    if status == 503:
        assert body["error"] == "metadata_unavailable" and "metadata service" in body["message"]
    else:
        assert body["parameter"] == "obs_id" and str(TARGET) in body["message"]
    assert elapsed < BOUND_S
    assert aws["s3"].list_objects_v2(Bucket="test-products", Prefix="metadata/").get("KeyCount") == 0  # nothing kept
